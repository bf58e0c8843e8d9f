//! This node's identity: its ID and API key, and (on a secondary) its primary's ID.
//!
//! Given in the environment, they are used as they are; otherwise they are generated once
//! and kept in `DATA_DIR`, so a restart never changes who a node is. Like everything in
//! `DATA_DIR`, their files are created with mode 0600 (`data_dir`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::Config;
use crate::data_dir;
use crate::nodes::NodeId;
use crate::secrets::ApiKey;

const NODE_ID_FILE: &str = "node_id";
const API_KEY_FILE: &str = "node_api_key";
const PRIMARY_ID_FILE: &str = "primary_node_id";
const JOINED_FILE: &str = "joined";

/// Who this node is.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub id: NodeId,
    pub api_key: ApiKey,
}

impl NodeIdentity {
    /// The configured identity, or the one kept in `DATA_DIR` (created on first start).
    pub fn load_or_create(config: &Config) -> anyhow::Result<NodeIdentity> {
        let dir = &config.data_dir;
        data_dir::create_dir(dir)?;
        let id = match &config.node.id {
            Some(id) => id.clone(),
            None => {
                let path = dir.join(NODE_ID_FILE);
                let text = data_dir::read_or_create_file(&path, || NodeId::generate().to_string())?;
                NodeId::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
        };
        let api_key = match &config.node.api_key {
            Some(key) => key.clone(),
            None => {
                let path = dir.join(API_KEY_FILE);
                let text = data_dir::read_or_create_file(&path, || ApiKey::generate().expose().to_owned())?;
                ApiKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
        };
        Ok(NodeIdentity { id, api_key })
    }
}

/// Where a secondary keeps the primary ID it learned from its first heartbeat reply.
pub fn primary_id_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PRIMARY_ID_FILE)
}

/// Present once a secondary has joined with its `JOIN_TOKEN` (which is spent from then on).
pub fn joined_path(data_dir: &Path) -> PathBuf {
    data_dir.join(JOINED_FILE)
}

/// The primary ID kept in `DATA_DIR`, if any.
pub fn load_primary_id(data_dir: &Path) -> anyhow::Result<Option<NodeId>> {
    let path = primary_id_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            NodeId::parse(text.trim()).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Keeps the learned primary ID (written to a new temp file, then renamed into place).
pub fn store_primary_id(dir: &Path, id: &NodeId) -> anyhow::Result<()> {
    let path = primary_id_path(dir);
    let tmp = path.with_extension("tmp");
    // A new file, so it gets its mode; one a crash left behind goes first.
    let _ = std::fs::remove_file(&tmp);
    data_dir::file_options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| writeln!(file, "{id}"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_survives_a_restart_and_its_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let config = Config::from_lookup(|name| (name == "DATA_DIR").then(|| data_dir.clone())).unwrap();
        let first = NodeIdentity::load_or_create(&config).unwrap();
        let second = NodeIdentity::load_or_create(&config).unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(first.api_key.expose(), second.api_key.expose());
        use std::os::unix::fs::PermissionsExt as _;
        for file in [API_KEY_FILE, NODE_ID_FILE] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        store_primary_id(dir.path(), &NodeId::generate()).unwrap();
        let mode = std::fs::metadata(primary_id_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{PRIMARY_ID_FILE}");
    }
}
