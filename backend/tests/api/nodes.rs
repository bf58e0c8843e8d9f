//! Adding, listing, editing and removing nodes; a secondary started from the handed-out
//! `.env` comes online.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, free_port, parse_env};

#[tokio::test]
async fn health_answers_and_the_primary_lists_itself_online() {
    let primary = TestPrimary::spawn().await;
    let (status, body) = primary.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "fleetdeck");
    assert_eq!(primary.get("/api/ready").await.0, 200);

    let (_, list) = primary.get("/api/nodes").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["is_primary"], true);
    assert_eq!(items[0]["status"], "online");
    assert_eq!(items[0]["id"], primary.primary_id());

    let page = primary.http.get(format!("{}/", primary.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Fleetdeck"));

    let (_, info) = primary.get("/api/node/info").await;
    assert_eq!(info["role"], "primary");
    assert_eq!(info["id"], primary.primary_id());
}

#[tokio::test]
async fn a_node_added_through_the_api_comes_online_from_its_env_block() {
    let primary = TestPrimary::spawn().await;
    let port = free_port();
    let added = primary.add_node("web-1", &format!("http://127.0.0.1:{port}")).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    assert_eq!(added["node"]["status"], "pending");
    let key = added["api_key"].as_str().unwrap();
    assert!(key.len() >= 43, "key has at least 32 bytes of entropy");
    let env = added["env"].as_str().unwrap();
    for line in [
        "NODE_IS_PRIMARY=false".to_owned(),
        format!("NODE_ID={id}"),
        "NODE_NAME=web-1".to_owned(),
        format!("NODE_API_KEY={key}"),
        format!("NODE_API_ENDPOINT=http://127.0.0.1:{port}"),
        format!("PRIMARY_NODE_URL={}", primary.url),
        format!("PRIMARY_NODE_ID={}", primary.primary_id()),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from\n{env}");
    }
    // The key is shown once: reading the node never returns it.
    let node = primary.node(&id).await;
    assert!(!node.to_string().contains(key));

    let secondary = NodeProcess::spawn(&parse_env(env)).await;
    primary.wait_status(&id, "online", SECONDS).await;
    // What the heartbeat reported is written within a second (coalesced).
    let node = crate::helpers::eventually(SECONDS, "the reported version", || async {
        let node = primary.node(&id).await;
        (node["version"] == fleetdeck::VERSION).then_some(node)
    })
    .await;
    let first_seen = node["last_seen"].as_str().unwrap().to_owned();
    assert!(secondary.log().contains("heartbeat accepted"), "{}", secondary.log());
    // Later heartbeats move it on (written in batches, without the stats).
    primary.clock.advance(Duration::from_secs(1));
    crate::helpers::eventually(SECONDS, "a later last_seen", || async {
        let node = primary.node(&id).await;
        (node["last_seen"].as_str() > Some(first_seen.as_str())).then_some(())
    })
    .await;

    // Its stats reach the fleet view.
    let stats = crate::helpers::eventually(SECONDS, "the secondary's stats", || async {
        let (_, body) = primary.get("/api/system/stats").await;
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["node_id"] == id.as_str() && i["stats"].is_object())
            .cloned()
    })
    .await;
    assert!(stats["stats"]["cpu_count"].as_u64().unwrap() >= 1);
    assert!(stats["stats"]["memory"]["total_bytes"].as_u64().unwrap() > 0);
    // Throughput (0 until the node's second sample) and the sensors it has (maybe none).
    assert!(stats["stats"]["network"]["rx_bytes_per_sec"].as_f64().unwrap() >= 0.0, "{stats}");
    assert!(stats["stats"]["disk_io"]["write_bytes_per_sec"].as_f64().unwrap() >= 0.0, "{stats}");
    assert!(stats["stats"]["temperatures"].is_array(), "{stats}");
    // Charted on its page, with the throughput and the hottest sensor (null without one).
    let point = crate::helpers::eventually(SECONDS, "a stats sample for the charts", || async {
        let (_, history) = primary.get(&format!("/api/nodes/{id}/stats")).await;
        history["items"].as_array().and_then(|items| items.first().cloned())
    })
    .await;
    for field in ["cpu_percent", "net_rx", "net_tx", "disk_read", "disk_write"] {
        assert!(point[field].as_f64().unwrap() >= 0.0, "{field}: {point}");
    }
    assert!(point["temperature"].is_null() || point["temperature"].is_number(), "{point}");

    // The health history shows the transition.
    let (_, history) = primary.get(&format!("/api/nodes/{id}/history")).await;
    let first = &history["items"].as_array().unwrap()[0];
    assert_eq!(first["from"], "pending");
    assert_eq!(first["to"], "online");
}

#[tokio::test]
async fn labels_edited_on_the_primary_stay_unless_the_node_sets_node_labels() {
    let primary = TestPrimary::spawn().await;
    let added = primary
        .post("/api/nodes", json!({ "name": "own", "api_endpoint": format!("http://127.0.0.1:{}", free_port()), "labels": ["given"] }))
        .await
        .1;
    let env = added["env"].as_str().unwrap();
    assert!(!env.contains("NODE_LABELS"), "the generated .env leaves labels to the primary:\n{env}");
    let own = added["node"]["id"].as_str().unwrap().to_owned();
    let _own_node = NodeProcess::spawn(&parse_env(env)).await;
    primary.wait_status(&own, "online", SECONDS).await;
    assert_eq!(primary.node(&own).await["labels"], json!(["given"]));

    let mut pinned_vars = parse_env(
        primary.add_node("pinned", &format!("http://127.0.0.1:{}", free_port())).await["env"]
            .as_str()
            .unwrap(),
    );
    pinned_vars.push(("NODE_LABELS".into(), "from-node".into()));
    let pinned = pinned_vars.iter().find(|(k, _)| k == "NODE_ID").unwrap().1.clone();
    let _pinned_node = NodeProcess::spawn(&pinned_vars).await;
    primary.wait_status(&pinned, "online", SECONDS).await;

    // Both edited on the primary; after their next heartbeats (every 500 ms), the first keeps
    // the edit, the second is back to its NODE_LABELS.
    for id in [&own, &pinned] {
        assert_eq!(primary.put(&format!("/api/nodes/{id}"), json!({ "labels": ["edited"] })).await.0, 200);
    }
    crate::helpers::eventually(SECONDS, "the pinned node's heartbeat", || async {
        (primary.node(&pinned).await["labels"] == json!(["from-node"])).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(primary.node(&own).await["labels"], json!(["edited"]));
}

#[tokio::test]
async fn nodes_can_be_listed_filtered_paged_edited_and_removed() {
    let primary = TestPrimary::spawn().await;
    for (i, labels) in [(1, vec!["linux", "gpu"]), (2, vec!["linux"]), (3, vec!["arm64"])] {
        let (status, body) = primary
            .post(
                "/api/nodes",
                json!({ "name": format!("node-{i}"), "api_endpoint": format!("http://10.0.0.{i}:8080"), "labels": labels }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, gpu) = primary.get("/api/nodes?label=gpu").await;
    assert_eq!(names(&gpu), ["node-1"]);
    let (_, linux) = primary.get("/api/nodes?label=linux").await;
    assert_eq!(names(&linux), ["node-1", "node-2"]);
    let (_, pending) = primary.get("/api/nodes?status=pending").await;
    assert_eq!(names(&pending).len(), 3);
    let (_, search) = primary.get("/api/nodes?q=10.0.0.3").await;
    assert_eq!(names(&search), ["node-3"]);

    let (_, page1) = primary.get("/api/nodes?limit=2").await;
    assert_eq!(names(&page1), ["node-1", "node-2"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = primary.get(&format!("/api/nodes?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&page2), ["node-3", "primary"]);
    assert!(page2["next_cursor"].is_null());

    let id = gpu["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, edited) = primary
        .put(&format!("/api/nodes/{id}"), json!({ "name": "gpu-box", "labels": ["GPU", "cuda"] }))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["name"], "gpu-box");
    assert_eq!(edited["labels"], json!(["cuda", "gpu"]));

    let (status, _) = primary.delete(&format!("/api/nodes/{id}")).await;
    assert_eq!(status, 204);
    assert_eq!(primary.get(&format!("/api/nodes/{id}")).await.0, 404);
    assert_eq!(primary.delete(&format!("/api/nodes/{id}")).await.0, 404);

    // The primary cannot be removed or edited through the API.
    let me = primary.primary_id();
    let (status, body) = primary.delete(&format!("/api/nodes/{me}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(primary.put(&format!("/api/nodes/{me}"), json!({ "name": "x" })).await.0, 409);
}

#[tokio::test]
async fn every_administrative_action_on_nodes_is_audited() {
    let primary = TestPrimary::spawn().await;
    let added = primary.add_node("audited", "http://127.0.0.1:9").await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    assert_eq!(primary.put(&format!("/api/nodes/{id}"), json!({ "labels": ["x"] })).await.0, 200);
    assert_eq!(primary.post(&format!("/api/nodes/{id}/check"), serde_json::Value::Null).await.0, 200);
    assert_eq!(primary.post(&format!("/api/nodes/{id}/rotate-key"), serde_json::Value::Null).await.0, 200);
    assert_eq!(primary.delete(&format!("/api/nodes/{id}")).await.0, 204);

    let (_, audit) = primary.get(&format!("/api/audit?target={id}")).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["node_removed", "node_key_rotated", "node_checked", "node_updated", "node_added"]);
    // Each names the node as it was: the removed one still reads "audited".
    assert!(audit["items"].as_array().unwrap().iter().all(|e| e["target_name"] == "audited"), "{audit}");
    let entry = &audit["items"][0];
    assert_eq!(entry["actor"], "anonymous");
    assert_eq!(entry["source_ip"], "127.0.0.1");
    assert!(entry["at"].is_string());

    let (_, page) = primary.get("/api/audit?action=node_added&limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_primary_says_where_to_go_at_start_and_logs_json_lines_when_not_at_a_terminal() {
    let primary = NodeProcess::spawn(&[
        ("NODE_IS_PRIMARY".into(), "true".into()),
        ("NODE_NAME".into(), "first-start".into()),
        ("APP_ENV".into(), "production".into()),
        // Unset: decided by where the log goes (here a file, not a terminal).
        ("LOG_JSON".into(), String::new()),
    ])
    .await;
    let log = primary.log();
    let ready = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Fleetdeck is ready")))
        .unwrap_or_else(|| panic!("a JSON line saying where to go in\n{log}"));
    assert_eq!(ready["url"], primary.url);
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains(&format!("open {} in a browser", primary.url)), "{message}");
    assert!(message.contains("Nodes → Add node"), "{message}");
    assert!(ready["access"].as_str().unwrap().starts_with("user access is off"), "{ready}");
}

#[tokio::test]
async fn node_names_are_unique_whatever_their_case() {
    let primary = TestPrimary::spawn().await;
    primary.add_node("db-01", "http://127.0.0.1:9").await;
    let (status, refused) =
        primary.post("/api/nodes", json!({ "name": "DB-01", "api_endpoint": "http://127.0.0.1:9" })).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("a node named db-01 already exists"),
        "{refused}"
    );
    let other = primary.add_node("db-02", "http://127.0.0.1:9").await;
    let other_id = other["node"]["id"].as_str().unwrap();
    let (status, refused) = primary.put(&format!("/api/nodes/{other_id}"), json!({ "name": "Db-01" })).await;
    assert_eq!(status, 409, "{refused}");
    // A node may change the case of its own name.
    assert_eq!(primary.put(&format!("/api/nodes/{other_id}"), json!({ "name": "DB-02" })).await.0, 200);
}
