//! `DATA_DIR` holds a node's keys, the primary's SQLite database (every job's command and
//! output) and the spool of output not yet delivered: nothing in it is for other local users.
//! Every directory Fleetdeck creates there is 0700 and every file 0600, whatever the umask.
//!
//! At start it looks at what is already there and warns — path, mode and the `chmod` that
//! fixes it — about anything group or others have any permission on. It does not change
//! modes itself: what an operator set, or an older version left, is the operator's to change.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The mode of the directories Fleetdeck creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the files Fleetdeck creates.
pub const FILE_MODE: u32 = 0o600;
/// Warnings about one start's loose modes stop after this many paths.
const MAX_WARNINGS: usize = 20;

/// Creates the directory `path` and any missing parents with mode 0700; an existing
/// directory is left as it is.
pub fn create_dir(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Options that create a file with mode 0600 (an existing file keeps its mode); the caller
/// says how it is opened.
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Reads a file of `DATA_DIR`, or creates it (mode 0600) from `make`.
pub fn read_or_create_file(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let value = make();
    let mut file = file_options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{value}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(value)
}

/// Something group or others have permissions on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
}

impl Exposed {
    /// The command that takes group and others' permissions away.
    pub fn fix(&self) -> String {
        format!("chmod go-rwx {}", self.path.display())
    }
}

/// `root` and everything under it (symbolic links are not followed), then each of `extra`
/// that exists, that group or others have any permission on.
pub fn exposed(root: &Path, extra: &[PathBuf]) -> Vec<Exposed> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            // Popped in name order.
            children.sort_unstable_by(|a, b| b.cmp(a));
            todo.extend(children);
        }
        let mode = meta.permissions().mode() & 0o777;
        if !meta.file_type().is_symlink() && mode & 0o077 != 0 {
            found.push(Exposed { path, mode });
        }
    }
    for path in extra.iter().filter(|p| !p.starts_with(root)) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                found.push(Exposed { path: path.clone(), mode });
            }
        }
    }
    found
}

/// Warns about everything `exposed` finds in `data_dir` and among `extra` (the SQLite
/// database's files when they live elsewhere).
pub fn warn_if_exposed(data_dir: &Path, extra: &[PathBuf]) {
    let found = exposed(data_dir, extra);
    for item in found.iter().take(MAX_WARNINGS) {
        tracing::warn!(
            path = %item.path.display(),
            mode = format!("{:04o}", item.mode),
            fix = item.fix(),
            "other local users can reach this path in DATA_DIR (keys, job commands and output live there)"
        );
    }
    if found.len() > MAX_WARNINGS {
        tracing::warn!(
            more = found.len() - MAX_WARNINGS,
            fix = format!("chmod -R go-rwx {}", data_dir.display()),
            "more files in DATA_DIR other local users can reach"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn created_directories_and_files_are_private_whatever_was_asked_before() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        create_dir(&nested).unwrap();
        create_dir(&nested).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("a")).unwrap().permissions().mode() & 0o777, DIR_MODE);
        assert_eq!(std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777, DIR_MODE);
        let file = nested.join("f");
        file_options().write(true).create_new(true).open(&file).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(exposed(&dir.path().join("a"), &[]), Vec::new());
    }

    #[test]
    fn whatever_group_or_others_can_reach_is_found_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        create_dir(&root.join("spool")).unwrap();
        let private = root.join("node_api_key");
        let readable = root.join("fleetdeck.db");
        let segment = root.join("spool").join("000000000000.log");
        for (path, mode) in [(&private, 0o600), (&readable, 0o644), (&segment, 0o640)] {
            std::fs::write(path, "x").unwrap();
            set_mode(path, mode);
        }
        set_mode(&root.join("spool"), 0o755);
        // Elsewhere: a database outside DATA_DIR is looked at, a missing WAL file is not.
        let outside = dir.path().join("elsewhere.db");
        std::fs::write(&outside, "x").unwrap();
        set_mode(&outside, 0o604);
        let extra = [outside.clone(), dir.path().join("elsewhere.db-wal"), readable.clone()];

        let found = exposed(&root, &extra);
        let expected = vec![
            Exposed { path: readable, mode: 0o644 },
            Exposed { path: root.join("spool"), mode: 0o755 },
            Exposed { path: segment.clone(), mode: 0o640 },
            Exposed { path: outside, mode: 0o604 },
        ];
        assert_eq!(found, expected);
        assert_eq!(found[2].fix(), format!("chmod go-rwx {}", segment.display()));
    }
}
