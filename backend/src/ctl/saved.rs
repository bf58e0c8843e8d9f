//! The login `fleetdeck ctl login` saves: the primary's URL and an API token, in
//! `<config dir>/fleetdeck/ctl.json` (`$XDG_CONFIG_HOME`, else `~/.config`, on Linux),
//! readable by its owner only. Flags and environment variables take precedence over it.

use std::io::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ctl::client::CtlError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLogin {
    pub url: String,
    pub token: Option<String>,
}

/// Where the login is kept.
pub fn path() -> Result<PathBuf, CtlError> {
    let dir = dirs::config_dir()
        .ok_or_else(|| CtlError::Local("cannot tell this user's config directory (is HOME set?)".into()))?;
    Ok(dir.join("fleetdeck").join("ctl.json"))
}

/// The saved login, if there is one.
pub fn load() -> Result<Option<SavedLogin>, CtlError> {
    let path = path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CtlError::Local(format!("cannot read {}: {e}", path.display()))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CtlError::Local(format!(
            "{} is not a saved login ({e}); run `fleetdeck ctl login` again",
            path.display()
        ))
    })
}

/// Saves `login`, readable and writable by this user only; returns where.
pub fn save(login: &SavedLogin) -> Result<PathBuf, CtlError> {
    let path = path()?;
    let failed = |e: std::io::Error| CtlError::Local(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(failed)?;
    // A file that existed before keeps its mode when opened: narrow it before writing.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(failed)?;
    let text = serde_json::to_string_pretty(login).map_err(|e| CtlError::Local(e.to_string()))?;
    file.write_all(format!("{text}\n").as_bytes()).map_err(failed)?;
    Ok(path)
}
