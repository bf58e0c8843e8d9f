//! Node authentication and key rotation with a grace period.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, client, free_port, heartbeat_from, parse_env, send};

#[tokio::test]
async fn rotation_issues_a_new_key_and_the_old_one_works_only_during_the_grace_period() {
    let primary = TestPrimary::spawn().await;
    let old_key = "an-operator-chosen-key-of-at-least-32-chars";
    let (status, added) = primary
        .post(
            "/api/nodes",
            json!({ "name": "rotating", "api_endpoint": "http://127.0.0.1:9", "api_key": old_key }),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    assert_eq!(added["api_key"], old_key);
    assert_eq!(primary.heartbeat(&id, old_key).await.0, 200);

    let (status, rotated) = primary.post(&format!("/api/nodes/{id}/rotate-key"), Value::Null).await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert!(rotated["env"].as_str().unwrap().contains(&format!("NODE_API_KEY={new_key}")));
    assert!(rotated["previous_key_valid_until"].is_string());

    assert_eq!(primary.heartbeat(&id, &new_key).await.0, 200);
    assert_eq!(primary.heartbeat(&id, old_key).await.0, 200, "old key valid during the grace period");
    primary.clock.advance(Duration::from_secs(10 * 60 + 1));
    let (status, body) = primary.heartbeat(&id, old_key).await;
    assert_eq!(status, 401, "old key refused after the grace period: {body}");
    assert_eq!(primary.heartbeat(&id, &new_key).await.0, 200);

    // The primary's own key is not rotated through the API.
    let me = primary.primary_id();
    assert_eq!(primary.post(&format!("/api/nodes/{me}/rotate-key"), Value::Null).await.0, 409);
}

#[tokio::test]
async fn heartbeats_need_the_right_id_key_and_path() {
    let primary = TestPrimary::spawn().await;
    let a = primary.add_node("node-a", "http://127.0.0.1:9").await;
    let b = primary.add_node("node-b", "http://127.0.0.1:9").await;
    let (a_id, a_key) = (a["node"]["id"].as_str().unwrap(), a["api_key"].as_str().unwrap());
    let b_id = b["node"]["id"].as_str().unwrap();
    let http = client(Some([127, 0, 0, 21]));
    let url = &primary.url;

    let (status, body) = heartbeat_from(&http, url, a_id, a_id, a_key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["primary_node_id"], primary.primary_id());
    assert!(body["time"].is_string());

    // Someone else's path: authenticated, but not allowed.
    let (status, body) = heartbeat_from(&http, url, b_id, a_id, a_key).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    // Wrong key, unknown node, malformed ID, missing headers.
    let unknown = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
    for (path_id, id, key) in [
        (a_id, a_id, "wrong-key-wrong-key-wrong-key-wrong-key"),
        (b_id, b_id, a_key),
        (unknown, unknown, a_key),
        ("not-a-uuid", "not-a-uuid", a_key),
    ] {
        let (status, body) = heartbeat_from(&http, url, path_id, id, key).await;
        assert_eq!(status, 401, "{path_id}/{id}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, body) =
        send(http.post(format!("{url}/api/internal/nodes/{a_id}/heartbeat")).json(&json!({}))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("X-Node-ID"));

    // Not even the primary's own key makes heartbeats for the primary.
    let me = primary.primary_id();
    let own_key = primary.app().state().identity.api_key.expose().to_owned();
    assert_eq!(heartbeat_from(&http, url, &me, &me, &own_key).await.0, 403);

    // Node B never sent a good heartbeat: still pending.
    assert_eq!(primary.node(b_id).await["status"], "pending");
}

#[tokio::test]
async fn repeated_failed_authentication_is_rate_limited_per_source() {
    let primary = TestPrimary::spawn().await;
    let a = primary.add_node("node-a", "http://127.0.0.1:9").await;
    let (id, key) = (a["node"]["id"].as_str().unwrap(), a["api_key"].as_str().unwrap());
    let attacker = client(Some([127, 0, 0, 31]));
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            heartbeat_from(&attacker, &primary.url, id, id, "guess-guess-guess-guess-guess-guess").await.0,
        );
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // The limit slows guessing only: the right key still works from that source (nodes
    // behind one NAT must not be locked out by one misconfigured neighbour).
    assert_eq!(heartbeat_from(&attacker, &primary.url, id, id, key).await.0, 200);
    assert_eq!(
        heartbeat_from(&attacker, &primary.url, id, id, "guess-guess-guess-guess-guess-guess").await.0,
        429
    );
    assert_eq!(heartbeat_from(&client(Some([127, 0, 0, 32])), &primary.url, id, id, key).await.0, 200);
}

#[tokio::test]
async fn a_secondary_answers_only_its_primary_with_its_own_key() {
    let primary = TestPrimary::spawn().await;
    let added =
        primary.add_node("guarded", &format!("http://127.0.0.1:{}", crate::helpers::free_port())).await;
    let env = crate::helpers::parse_env(added["env"].as_str().unwrap());
    let secondary = crate::helpers::NodeProcess::spawn(&env).await;
    let key = added["api_key"].as_str().unwrap();
    let node_id = added["node"]["id"].as_str().unwrap();
    let http = client(Some([127, 0, 0, 41]));
    let stats = |id: String, key: String| {
        let http = http.clone();
        let url = format!("{}/api/internal/system/stats", secondary.url);
        async move { send(http.get(url).header("X-Node-ID", id).header("X-Node-API-Key", key)).await }
    };
    let (status, body) = stats(primary.primary_id(), key.to_owned()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["hostname"].is_string());
    // Its own ID (not the primary's), a wrong key, or nothing at all: refused.
    assert_eq!(stats(node_id.to_owned(), key.to_owned()).await.0, 401);
    assert_eq!(stats(primary.primary_id(), "nope-nope-nope-nope-nope-nope-nope".into()).await.0, 401);
    assert_eq!(send(http.get(format!("{}/api/internal/system/stats", secondary.url))).await.0, 401);
    // A secondary has no user API.
    assert_eq!(send(http.get(format!("{}/api/nodes", secondary.url))).await.0, 404);
}

/// A rotation the node has not been told about yet: for the whole grace period the primary
/// keeps reaching it (probes every 200 ms here, far past the node's limit of 20 refused
/// keys a minute) with the key it still holds, and jobs still run there.
#[tokio::test]
async fn a_node_still_on_its_old_key_stays_online_and_reachable_through_the_grace_period() {
    let primary = TestPrimary::spawn_with(&[("KEY_ROTATION_GRACE", "1h")]).await;
    let added = primary.add_node("unaware", &format!("http://127.0.0.1:{}", free_port())).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    let secondary = NodeProcess::spawn(&parse_env(added["env"].as_str().unwrap())).await;
    primary.wait_status(&id, "online", SECONDS).await;

    let (status, rotated) = primary.post(&format!("/api/nodes/{id}/rotate-key"), Value::Null).await;
    assert_eq!(status, 200, "{rotated}");
    // Many probe rounds (each one a call to the node) while the node still has its old key.
    let rounds = 40;
    for round in 0..rounds {
        let (status, checked) = primary.post(&format!("/api/nodes/{id}/check"), Value::Null).await;
        assert_eq!(status, 200, "{checked}");
        assert!(checked["error"].is_null(), "round {round}: {checked}\n{}", secondary.log());
        assert_eq!(checked["node"]["status"], "online", "round {round}: {checked}");
    }
    let (status, job) =
        primary.post("/api/jobs", json!({ "command": "echo still here", "node_id": id })).await;
    assert_eq!(status, 201, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let done = crate::helpers::eventually(SECONDS, "the job to finish", || async {
        let (_, job) = primary.get(&format!("/api/jobs/{job_id}")).await;
        matches!(job["status"].as_str(), Some("succeeded" | "failed")).then_some(job)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", secondary.log());
    assert!(
        !secondary.log().contains("rate_limited"),
        "the node never rate-limited its primary:\n{}",
        secondary.log()
    );
}
