//! Restarts: nothing about the fleet is forgotten, and nobody's identity changes.

use serde_json::json;

use crate::helpers::{NodeProcess, SECONDS, TestPrimary};

#[tokio::test]
async fn a_restarted_primary_keeps_every_node_its_state_and_keys() {
    let mut primary =
        TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", "a-registration-token-for-tests")]).await;
    let primary_id = primary.primary_id();
    let secondary = NodeProcess::spawn(&[
        ("PRIMARY_NODE_URL".into(), primary.url.clone()),
        ("REGISTRATION_TOKEN".into(), "a-registration-token-for-tests".into()),
        ("NODE_NAME".into(), "survivor".into()),
    ])
    .await;
    let id = secondary.node_info().await["id"].as_str().unwrap().to_owned();
    primary.wait_status(&id, "online", SECONDS).await;
    let (status, parked) = primary
        .post(
            "/api/nodes",
            json!({ "name": "parked", "api_endpoint": "http://127.0.0.1:9", "api_key": "p".repeat(40) }),
        )
        .await;
    assert_eq!(status, 201);
    let parked_id = parked["node"]["id"].as_str().unwrap().to_owned();
    let (_, before) = primary.get("/api/nodes").await;

    primary.restart().await;
    assert_eq!(primary.primary_id(), primary_id, "the primary's identity survives");
    let (_, after) = primary.get("/api/nodes").await;
    let summary = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["id"].to_string(), n["name"].to_string(), n["labels"].to_string()))
            .collect()
    };
    assert_eq!(summary(&before), summary(&after));
    assert_eq!(primary.node(&parked_id).await["status"], "pending");
    // The secondary keeps heartbeating into the restarted primary with the same key.
    primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(primary.heartbeat(&parked_id, &"p".repeat(40)).await.0, 200, "stored key still verifies");
}

#[tokio::test]
async fn a_restarted_secondary_keeps_its_identity() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", "a-registration-token-for-tests")]).await;
    let mut secondary = NodeProcess::spawn(&[
        ("PRIMARY_NODE_URL".into(), primary.url.clone()),
        ("REGISTRATION_TOKEN".into(), "a-registration-token-for-tests".into()),
        ("NODE_NAME".into(), "phoenix".into()),
    ])
    .await;
    let id = secondary.node_info().await["id"].as_str().unwrap().to_owned();
    primary.wait_status(&id, "online", SECONDS).await;
    let key_file = secondary.data_dir.join("node_api_key");
    let key_before = std::fs::read_to_string(&key_file).unwrap();

    secondary.restart().await;
    assert_eq!(secondary.node_info().await["id"], id.as_str());
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_before);
    let node = primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(node["name"], "phoenix");
    let (_, list) = primary.get("/api/nodes?q=phoenix").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "re-registration did not duplicate it");
    assert!(!secondary.log().contains("refused this node's registration"), "{}", secondary.log());
}

#[tokio::test]
async fn a_primary_refuses_to_start_with_a_master_key_that_does_not_open_its_database() {
    let mut primary = TestPrimary::spawn().await;
    primary.stop().await;
    let key_file = primary.data_dir().join("master.key");
    std::fs::write(&key_file, format!("{}\n", fleetdeck::secrets::random_token(32))).unwrap();
    let error = primary.try_start().await.expect_err("must refuse to start").to_string();
    assert!(error.contains("master key"), "{error}");
}

#[tokio::test]
async fn an_installation_from_before_the_key_check_gets_it_only_from_the_right_key() {
    use diesel::prelude::*;
    let mut primary = TestPrimary::spawn().await;
    primary.stop().await;
    // As a database from before several primaries: no check value yet.
    let url = fleetdeck::db::DatabaseUrl::parse(&primary.var("DATABASE_URL")).unwrap();
    let mut conn = fleetdeck::db::connect_once(&url).unwrap();
    let no_check: Option<Vec<u8>> = None;
    diesel::update(fleetdeck::db::schema::cluster::table)
        .set(fleetdeck::db::schema::cluster::key_check.eq(no_check))
        .execute(&mut conn)
        .unwrap();
    drop(conn);
    // A wrong key is refused, checked against a stored node key, and does not become the
    // check value: the right key still starts it afterwards.
    let key_file = primary.data_dir().join("master.key");
    let right = std::fs::read_to_string(&key_file).unwrap();
    std::fs::write(&key_file, format!("{}\n", fleetdeck::secrets::random_token(32))).unwrap();
    let error = primary.try_start().await.expect_err("must refuse to start").to_string();
    assert!(error.contains("master key"), "{error}");
    std::fs::write(&key_file, right).unwrap();
    primary.try_start().await.expect("the right key starts it");
}

#[test]
fn the_migrate_subcommand_prepares_a_fresh_data_directory_and_refuses_on_a_secondary() {
    let dir = tempfile::tempdir().unwrap();
    let run = |vars: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .arg("migrate")
            .env_clear()
            .env("ENV_FILE", dir.path().join("none.env"))
            .env("DATA_DIR", dir.path().join("fresh"))
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("fresh/fleetdeck.db").is_file());
    let out = run(&[("NODE_IS_PRIMARY", "false"), ("PRIMARY_NODE_URL", "http://127.0.0.1:9")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("secondary"));
}
