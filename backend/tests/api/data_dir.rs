//! `DATA_DIR`: private to the user Fleetdeck runs as, and a start refused over it says which
//! path is in the way.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use fleetdeck::{App, Config};

use crate::helpers::primary_vars;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// A primary (or with `extra`, anything else) on SQLite in `data_dir`, the database in it.
fn config(data_dir: &Path, extra: &[(&str, &str)]) -> Config {
    let mut vars = primary_vars(extra);
    vars.push(("DATA_DIR".into(), data_dir.display().to_string()));
    Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).unwrap()
}

#[tokio::test]
async fn a_primary_on_sqlite_keeps_what_it_writes_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("var").join("fleetdeck");
    let app = App::build(config(&data_dir, &[])).await.unwrap();

    assert_eq!(mode(&data_dir), 0o700, "DATA_DIR");
    assert_eq!(mode(&data_dir.join("spool")), 0o700, "the spool");
    // SQLite gives its WAL and shared-memory files the database file's mode.
    for name in
        ["fleetdeck.db", "fleetdeck.db-wal", "fleetdeck.db-shm", "node_id", "node_api_key", "master.key"]
    {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }
    let segments: Vec<PathBuf> =
        std::fs::read_dir(data_dir.join("spool")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!segments.is_empty());
    for segment in &segments {
        assert_eq!(mode(segment), 0o600, "{}", segment.display());
    }
    app.stop().await;
}

type Settings<'a> = &'a [(&'a str, &'a str)];

/// Why a node refuses to start in `data_dir`, in full (as `fleetdeck serve` prints it).
async fn refusal(data_dir: &Path, extra: &[(&str, &str)]) -> String {
    match App::build(config(data_dir, extra)).await {
        Ok(app) => {
            app.stop().await;
            panic!("started in {}", data_dir.display());
        }
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_start_refused_over_the_data_dir_names_the_path_in_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        let data_dir = dir.path().join(format!("data{n}"));
        std::fs::create_dir(&data_dir).unwrap();
        data_dir
    };
    let file_at = |path: &Path| std::fs::write(path, "in the way\n").unwrap();
    let dir_at = |path: &Path| std::fs::create_dir_all(path).unwrap();

    let data_dir = dir.path().join("a-file");
    file_at(&data_dir);
    let secondary: &[(&str, &str)] =
        &[("NODE_IS_PRIMARY", "false"), ("PRIMARY_NODE_URL", "http://127.0.0.1:9")];
    // DATA_DIR, the path in the way, the settings.
    let cases: Vec<(PathBuf, PathBuf, Settings)> = vec![
        // DATA_DIR itself is a file.
        (data_dir.clone(), data_dir, &[]),
        // So is DATA_DIR/spool.
        {
            let d = fresh();
            file_at(&d.join("spool"));
            (d.clone(), d.join("spool"), &[])
        },
        // A spool segment is a directory.
        {
            let d = fresh();
            dir_at(&d.join("spool").join("000000000000.log"));
            (d.clone(), d.join("spool").join("000000000000.log"), &[])
        },
        // The node ID file is a directory.
        {
            let d = fresh();
            dir_at(&d.join("node_id"));
            (d.clone(), d.join("node_id"), &[])
        },
        // The SQLite database is a directory.
        {
            let d = fresh();
            dir_at(&d.join("fleetdeck.db"));
            (d.clone(), d.join("fleetdeck.db"), &[])
        },
        // The master key file is a directory.
        {
            let d = fresh();
            dir_at(&d.join("master.key"));
            (d.clone(), d.join("master.key"), &[])
        },
        // On a secondary, the file keeping its primary's ID is a directory.
        {
            let d = fresh();
            dir_at(&d.join("primary_node_id"));
            (d.clone(), d.join("primary_node_id"), secondary)
        },
    ];
    for (data_dir, in_the_way, extra) in cases {
        let error = refusal(&data_dir, extra).await;
        assert!(
            error.contains(&in_the_way.display().to_string()),
            "{} not named in: {error}",
            in_the_way.display()
        );
    }
}
