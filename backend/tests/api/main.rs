#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Fleetdeck's integration tests: real primaries (in-process, on loopback ports, each with
//! its own data directory and database) and real secondaries (child processes of the
//! `fleetdeck` binary). With `TEST_DATABASE_URL=postgres://…` every test runs on a
//! throw-away PostgreSQL database instead of a temp-file SQLite one.

mod alerts;
mod auth;
mod bad_input;
mod cluster;
mod ctl;
mod data_dir;
mod followers;
mod fuzz;
mod health;
mod helpers;
mod hosts;
mod jobs;
mod joining;
mod keys;
mod metrics;
mod migrations;
mod nodes;
mod openapi;
mod outbound;
mod primary_urls;
mod registration;
mod restart;
mod runs;
mod slow_clients;
mod stand_ins;
mod web_ui;

/// A file here that no `mod` line above names is never compiled, let alone run.
#[test]
fn every_test_file_is_declared() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let mut undeclared = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if path.extension().is_some_and(|e| e == "rs")
            && name != "main"
            && !main.contains(&format!("\nmod {name};"))
        {
            undeclared.push(name.to_owned());
        }
    }
    assert!(undeclared.is_empty(), "not declared in tests/api/main.rs: {undeclared:?}");
}
