//! Joining a machine with one command: join tokens (single use, expiring, revocable, refused
//! clearly), the install script the primary serves, run for real into a prefix, and the
//! installed binary joining, upgrading in place, and refusing a spent token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, client, eventually, free_port, parse_env, send};
use crate::stand_ins::raw_server;

/// A registration as a joining node sends it.
fn registration(id: &str, name: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "api_endpoint": "http://127.0.0.1:9",
        "api_key": format!("{id}-key"),
        "labels": ["reported"],
    })
}

async fn join(primary: &TestPrimary, from: [u8; 4], token: &str, body: &Value) -> (u16, Value) {
    let request = client(Some(from))
        .post(format!("{}/api/internal/nodes/register", primary.url))
        .header("X-Join-Token", token)
        .json(body);
    send(request).await
}

async fn node_count(primary: &TestPrimary) -> usize {
    primary.get("/api/nodes").await.1["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_join_token_admits_one_node_once_and_every_other_use_is_refused_clearly() {
    let primary = TestPrimary::spawn().await;
    let (status, issued) =
        primary.post("/api/nodes/join-tokens", json!({ "name": "edge-1", "labels": ["edge", "arm"] })).await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("fdj_") && token.len() > 40, "{token}");
    assert_eq!(issued["command"], format!("curl -fsSL {}/install.sh | sh -s -- --join {token}", primary.url));
    assert_eq!(issued["state"], "active");
    assert_eq!(issued["labels"], json!(["arm", "edge"]));
    let time = |field: &str| -> fleetdeck::clock::Timestamp {
        serde_json::from_value(issued[field].clone()).unwrap()
    };
    assert_eq!(time("expires_at").since(time("created_at")), Duration::from_secs(3600), "an hour by default");
    let id = issued["id"].as_str().unwrap().to_owned();

    // Listed, never with the token itself.
    let (_, list) = primary.get("/api/nodes/join-tokens").await;
    assert_eq!(list["items"][0]["id"], id);
    assert!(!list.to_string().contains(&token), "{list}");

    // The first node joins with the token's name and labels; the token is spent.
    let first = "0190f6c2-8f5a-7c1e-9a43-000000000001";
    let (status, joined) = join(&primary, [127, 0, 0, 61], &token, &registration(first, "whatever")).await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["node"]["name"], "edge-1");
    assert_eq!(joined["node"]["labels"], json!(["arm", "edge"]));
    let (_, list) = primary.get("/api/nodes/join-tokens").await;
    assert_eq!(list["items"][0]["state"], "used");
    assert_eq!(list["items"][0]["used_by"], first);
    // The same node again (its answer was lost): told it is registered.
    let (status, again) = join(&primary, [127, 0, 0, 61], &token, &registration(first, "whatever")).await;
    assert_eq!(status, 200, "{again}");

    // Another node with the spent token, a made-up one, a malformed one: 401, said clearly,
    // nothing registered.
    let nodes = node_count(&primary).await;
    let second = "0190f6c2-8f5a-7c1e-9a43-000000000002";
    let (status, refused) = join(&primary, [127, 0, 0, 62], &token, &registration(second, "second")).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("already used"), "{refused}");
    let made_up = format!("fdj_{}", "A".repeat(43));
    let (status, refused) = join(&primary, [127, 0, 0, 62], &made_up, &registration(second, "second")).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("unknown join token"), "{refused}");
    let (status, refused) =
        join(&primary, [127, 0, 0, 62], "not-a-join-token", &registration(second, "x")).await;
    assert_eq!(status, 401, "{refused}");

    // Expired: refused although never used.
    let (_, short) = primary.post("/api/nodes/join-tokens", json!({ "expires_in": 60 })).await;
    primary.clock.advance(Duration::from_secs(61));
    let (status, refused) =
        join(&primary, [127, 0, 0, 62], short["token"].as_str().unwrap(), &registration(second, "second"))
            .await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("expired"), "{refused}");
    let (_, list) = primary.get("/api/nodes/join-tokens").await;
    assert_eq!(list["items"][0]["state"], "expired");

    // Revoked: gone, then refused like a made-up one; revoking it again is a 404.
    let (_, revocable) = primary.post("/api/nodes/join-tokens", json!({})).await;
    let revocable_id = revocable["id"].as_str().unwrap();
    assert_eq!(primary.delete(&format!("/api/nodes/join-tokens/{revocable_id}")).await.0, 204);
    assert_eq!(primary.delete(&format!("/api/nodes/join-tokens/{revocable_id}")).await.0, 404);
    let (status, refused) = join(
        &primary,
        [127, 0, 0, 62],
        revocable["token"].as_str().unwrap(),
        &registration(second, "second"),
    )
    .await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(node_count(&primary).await, nodes, "nothing registered by a refused token");

    // Each refusal counted against its source: past 20 in a minute it is 429, even with a
    // good token; another address is not affected.
    for _ in 0..16 {
        join(&primary, [127, 0, 0, 62], &made_up, &registration(second, "second")).await;
    }
    let (_, fresh) = primary.post("/api/nodes/join-tokens", json!({})).await;
    let fresh = fresh["token"].as_str().unwrap();
    assert_eq!(join(&primary, [127, 0, 0, 62], fresh, &registration(second, "second")).await.0, 429);
    assert_eq!(join(&primary, [127, 0, 0, 63], fresh, &registration(second, "second")).await.0, 201);

    // Audited: created, used (the registration names its token), revoked.
    let (_, audit) = primary.get("/api/audit?limit=100").await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "join_token_created").count(), 4, "{actions:?}");
    assert!(actions.contains(&"join_token_revoked"), "{actions:?}");
    let registered = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "node_registered" && e["target"] == first)
        .expect("the join is audited");
    assert_eq!(registered["details"], format!("join token {id}"));
}

#[tokio::test]
async fn bad_join_token_requests_are_refused_with_the_field_named() {
    let primary = TestPrimary::spawn().await;
    for (body, field) in [
        (json!({ "expires_in": 59 }), "expires_in"),
        (json!({ "expires_in": 2_592_001 }), "expires_in"),
        (json!({ "name": "no spaces" }), "name"),
        (json!({ "labels": ["ok", "not ok"] }), "labels"),
        (json!({ "nmae": "typo" }), "nmae"),
    ] {
        let (status, answer) = primary.post("/api/nodes/join-tokens", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    assert_eq!(primary.get("/api/nodes/join-tokens").await.1["items"], json!([]));
    assert_eq!(primary.delete("/api/nodes/join-tokens/not-an-id").await.0, 400);
}

/// What `sha256sum` says of a file.
fn sha256_file(path: &Path) -> String {
    fleetdeck::secrets::hex(&Sha256::digest(std::fs::read(path).unwrap()))
}

/// Runs the install script with `args`: (exit success, stdout + stderr).
fn run_script(script: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("sh").arg(script).args(args).output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The script as the primary serves it, saved to a file.
async fn fetch_script(primary: &TestPrimary, dir: &Path) -> PathBuf {
    let response = primary.http.get(format!("{}/install.sh", primary.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let script = response.text().await.unwrap();
    assert!(script.starts_with("#!/bin/sh"), "{script}");
    assert!(script.contains(&format!("URL='{}'", primary.url)), "the primary's URL is baked in");
    let path = dir.join("install.sh");
    std::fs::write(&path, script).unwrap();
    path
}

#[tokio::test]
async fn the_install_script_installs_a_node_that_joins_once_upgrades_in_place_and_refuses_bad_downloads() {
    let primary = TestPrimary::spawn().await;
    // The primary under test runs inside this test binary: the Fleetdeck binary it serves is
    // the one cargo built, provided as an operator provides builds for other machines.
    let downloads = primary.data_dir().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let served = downloads.join(format!("fleetdeck-{}-{}", std::env::consts::OS, std::env::consts::ARCH));
    std::fs::copy(env!("CARGO_BIN_EXE_fleetdeck"), &served).unwrap();

    // Another architecture: a clear 404 that says how to provide a binary.
    let (status, answer) = primary.get("/api/download/fleetdeck?os=linux&arch=sparc64").await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("DATA_DIR/downloads/fleetdeck-linux-sparc64"),
        "{answer}"
    );
    assert_eq!(primary.get("/api/download/fleetdeck?arch=..%2Fx").await.0, 400);

    let work = tempfile::tempdir().unwrap();
    let script = fetch_script(&primary, work.path()).await;
    let (_, issued) = primary.post("/api/nodes/join-tokens", json!({ "labels": ["installed"] })).await;
    let token = issued["token"].as_str().unwrap().to_owned();
    let prefix = work.path().join("node-a");
    let install = |prefix: &Path, token: Option<&str>, extra: &[&str]| {
        let prefix = prefix.display().to_string();
        let mut args = vec!["--prefix", prefix.as_str(), "--no-service"];
        if let Some(token) = token {
            args.extend(["--join", token]);
        }
        args.extend(extra);
        run_script(&script, &args)
    };
    // By default the node connects outbound: no port, no endpoint.
    let (ok, output) = install(&prefix, Some(&token), &[]);
    assert!(ok, "{output}");

    // Installed: the binary as served (checksum), the configuration 0600, the unit.
    let binary = prefix.join("bin/fleetdeck");
    let env_file = prefix.join("etc/fleetdeck/fleetdeck.env");
    assert_eq!(sha256_file(&binary), sha256_file(&served));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
    let config = parse_env(&std::fs::read_to_string(&env_file).unwrap());
    let setting = |name: &str| config.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(setting("PRIMARY_NODE_URL").as_deref(), Some(primary.url.as_str()));
    assert_eq!(setting("JOIN_TOKEN").as_deref(), Some(token.as_str()));
    assert_eq!((setting("SERVER_ADDRESS"), setting("NODE_API_ENDPOINT")), (None, None));
    assert_eq!(setting("NODE_CONNECT").as_deref(), Some("outbound"));
    let unit_path = prefix.join("etc/fleetdeck/fleetdeck.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        format!("ExecStart={} serve", binary.display()),
        format!("Environment=ENV_FILE={}", env_file.display()),
        "User=fleetdeck".to_owned(),
        "NoNewPrivileges=true".to_owned(),
        "ProtectSystem=full".to_owned(),
        "Restart=on-failure".to_owned(),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
    }
    verify_unit(&unit_path, &unit);

    // Started, it joins: online, outbound, with the token's labels; the token spent.
    let mut node = NodeProcess::spawn_installed(&binary, &env_file).await;
    let id = std::fs::read_to_string(prefix.join("var/lib/fleetdeck/node_id")).unwrap().trim().to_owned();
    let online = primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(online["labels"], json!(["installed"]), "{}", node.log());
    assert_eq!(online["connect"], "outbound");
    let (_, list) = primary.get("/api/nodes/join-tokens").await;
    assert_eq!(list["items"][0]["state"], "used");
    assert_eq!(list["items"][0]["used_by"], id);
    assert!(prefix.join("var/lib/fleetdeck/joined").exists());

    // A second machine with the same token (this one reached at an endpoint) installs, but
    // the primary refuses it, and says so.
    let other = work.path().join("node-b");
    let port = free_port();
    let (listen, endpoint) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
    let (ok, output) = install(&other, Some(&token), &["--listen", &listen, "--endpoint", &endpoint]);
    assert!(ok, "{output}");
    let other_config = std::fs::read_to_string(other.join("etc/fleetdeck/fleetdeck.env")).unwrap();
    assert!(
        other_config.contains(&format!("SERVER_ADDRESS={listen}\nNODE_API_ENDPOINT={endpoint}\n")),
        "{other_config}"
    );
    let refused = NodeProcess::spawn_installed(
        &other.join("bin/fleetdeck"),
        &other.join("etc/fleetdeck/fleetdeck.env"),
    )
    .await;
    eventually(SECONDS, "the refusal in the second node's log", || async {
        refused.log().contains("already used").then_some(())
    })
    .await;
    let nodes = primary.get("/api/nodes").await.1;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 2, "the primary and one joined node: {nodes}");
    drop(refused);

    // Re-run without a token: an upgrade in place that keeps the configuration and identity.
    let before = std::fs::read_to_string(&env_file).unwrap();
    let (ok, output) = install(&prefix, None, &[]);
    assert!(ok, "{output}");
    assert!(output.contains("upgrading in place"), "{output}");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), before);
    node.restart().await;
    primary.wait_status(&id, "online", SECONDS).await;
    let kept = std::fs::read_to_string(prefix.join("var/lib/fleetdeck/node_id")).unwrap();
    assert_eq!(kept.trim(), id, "the same identity");

    // A download cut short or corrupted: the script stops before installing, says why, and
    // the binary in place stays as it was.
    let installed = sha256_file(&binary);
    let cut = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nX-Checksum-Sha256: 00\r\n\r\nonly a little".to_vec(),
    );
    let (ok, output) =
        run_script(&script, &["--url", &cut, "--prefix", &prefix.display().to_string(), "--no-service"]);
    assert!(!ok, "{output}");
    assert!(output.contains("failed or was cut off"), "{output}");
    let corrupt = raw_server(
        format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Checksum-Sha256: {}\r\n\r\nhello", "0".repeat(64))
            .into_bytes(),
    );
    let (ok, output) =
        run_script(&script, &["--url", &corrupt, "--prefix", &prefix.display().to_string(), "--no-service"]);
    assert!(!ok, "{output}");
    assert!(output.contains("the download is corrupt"), "{output}");
    assert_eq!(sha256_file(&binary), installed, "the installed binary is untouched");
    let leftovers: Vec<_> =
        std::fs::read_dir(prefix.join("bin")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["fleetdeck"], "no partial download left behind");

    // A new machine without a token, or with something that is not one: refused up front.
    let (ok, output) = install(&work.path().join("node-c"), None, &[]);
    assert!(!ok && output.contains("--join TOKEN is needed"), "{output}");
    let (ok, output) = install(&work.path().join("node-c"), Some("fdj_x;rm -rf /"), &[]);
    assert!(!ok && output.contains("takes a join token"), "{output}");
}

/// `systemd-analyze verify` on the unit, where the machine has it (its checks of the user
/// and binary need them to exist, so a copy naming root is checked).
fn verify_unit(path: &Path, unit: &str) {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit is checked by its lines only");
        return;
    };
    assert!(probe.status.success());
    let checked = path.with_file_name("fleetdeck-check.service");
    std::fs::write(&checked, unit.replace("User=fleetdeck", "User=root")).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&checked).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}
