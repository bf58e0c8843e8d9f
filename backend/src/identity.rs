//! This node's identity: its ID and API key, and (on a secondary) its primary's ID.
//!
//! Given in the environment, they are used as they are; otherwise they are generated once
//! and kept in `DATA_DIR`, so a restart never changes who a node is. Secret files are
//! created with mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::Config;
use crate::nodes::NodeId;
use crate::secrets::ApiKey;

const NODE_ID_FILE: &str = "node_id";
const API_KEY_FILE: &str = "node_api_key";
const PRIMARY_ID_FILE: &str = "primary_node_id";

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
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let id = match &config.node.id {
            Some(id) => id.clone(),
            None => {
                let path = dir.join(NODE_ID_FILE);
                let text = read_or_create_file(&path, || NodeId::generate().to_string(), false)?;
                NodeId::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
        };
        let api_key = match &config.node.api_key {
            Some(key) => key.clone(),
            None => {
                let path = dir.join(API_KEY_FILE);
                let text = read_or_create_secret_file(&path, || ApiKey::generate().expose().to_owned())?;
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

/// Keeps the learned primary ID (written to a temp file, then renamed into place).
pub fn store_primary_id(data_dir: &Path, id: &NodeId) -> anyhow::Result<()> {
    let path = primary_id_path(data_dir);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a secret file, or creates it with mode 0600 from `make`.
pub fn read_or_create_secret_file(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    read_or_create_file(path, make, true)
}

fn read_or_create_file(path: &Path, make: impl FnOnce() -> String, secret: bool) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let value = make();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{value}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_survives_a_restart_and_key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let config = Config::from_lookup(|name| (name == "DATA_DIR").then(|| data_dir.clone())).unwrap();
        let first = NodeIdentity::load_or_create(&config).unwrap();
        let second = NodeIdentity::load_or_create(&config).unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(first.api_key.expose(), second.api_key.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(API_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
