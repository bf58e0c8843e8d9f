//! Bad input of every kind gets the right status and a JSON error naming the problem,
//! changes nothing, and leaves the server serving.

use serde_json::{Value, json};

use crate::helpers::{TestPrimary, send};

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str, mentions: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "message {message:?} should mention {mentions:?}");
    // A validation error names its field as data too, and its message starts with it.
    if code == "validation_failed" {
        let field = body["error"]["field"].as_str().unwrap_or_else(|| panic!("no field in {body}"));
        assert!(message.starts_with(&format!("{field}: ")), "{body}");
    } else {
        assert!(body["error"].get("field").is_none(), "{body}");
    }
}

#[tokio::test]
async fn bad_node_requests_are_refused_with_clear_json_errors_and_change_nothing() {
    let primary = TestPrimary::spawn().await;
    primary.add_node("taken", "http://127.0.0.1:9").await;
    let (_, before) = primary.get("/api/nodes").await;
    let url = format!("{}/api/nodes", primary.url);
    let raw = |body: &'static str, content_type: &'static str| {
        send(primary.http.post(&url).header("content-type", content_type).body(body))
    };

    let (s, b) = raw("{\"name\": \"x\",", "application/json").await;
    assert_error(s, &b, 400, "bad_request", "not valid JSON");
    let (s, b) = raw("{\"name\":\"x\",\"api_endpoint\":\"http://h:1\"} {}", "application/json").await;
    assert_error(s, &b, 400, "bad_request", "trailing characters");
    let (s, b) = raw("{\"name\":\"x\",\"api_endpoint\":\"http://h\"}", "text/plain").await;
    assert_error(s, &b, 415, "unsupported_media_type", "application/json");

    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({ "api_endpoint": "http://h:1" }), 400, "bad_request", "missing field `name`"),
        (
            json!({ "name": "n", "api_endpoint": "http://h:1", "colour": "red" }),
            400,
            "validation_failed",
            "unknown field `colour`",
        ),
        (json!({ "name": 5, "api_endpoint": "http://h:1" }), 400, "validation_failed", "name"),
        (
            json!({ "name": "n", "api_endpoint": "http://h:1", "labels": ["ok", 3] }),
            400,
            "validation_failed",
            "labels[1]",
        ),
        (json!({ "name": "bad name!", "api_endpoint": "http://h:1" }), 400, "validation_failed", "name:"),
        (json!({ "name": "n", "api_endpoint": "ftp://h" }), 400, "validation_failed", "api_endpoint:"),
        (json!({ "name": "n", "api_endpoint": "not a url" }), 400, "validation_failed", "api_endpoint:"),
        // Said in words, not in the URL parser's ("relative URL without a base").
        (
            json!({ "name": "n", "api_endpoint": "10.0.0.5:8080" }),
            400,
            "validation_failed",
            "api_endpoint: not a valid URL: it needs a scheme: start it with http:// or https://",
        ),
        (
            json!({ "name": "n", "api_endpoint": "http://h:1", "id": "node-1" }),
            400,
            "validation_failed",
            "id:",
        ),
        (
            json!({ "name": "n", "api_endpoint": "http://h:1", "api_key": "short" }),
            400,
            "validation_failed",
            "api_key:",
        ),
        (
            json!({ "name": "n", "api_endpoint": "http://h:1", "labels": ["white space"] }),
            400,
            "validation_failed",
            "labels:",
        ),
        (json!({ "name": "taken", "api_endpoint": "http://h:1" }), 409, "conflict", "taken"),
        (
            json!({ "name": "n", "api_endpoint": "http://h:1", "id": primary.primary_id() }),
            409,
            "conflict",
            "primary",
        ),
    ];
    for (body, status, code, mentions) in cases {
        let (s, b) = primary.post("/api/nodes", body.clone()).await;
        assert_error(s, &b, status, code, mentions);
    }

    let huge = json!({ "name": "n", "api_endpoint": "http://h:1", "labels": vec!["x"; 200_000] });
    let (s, b) = primary.post("/api/nodes", huge).await;
    assert_error(s, &b, 413, "payload_too_large", "larger than");

    let unknown = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
    let (s, b) = primary.get(&format!("/api/nodes/{unknown}")).await;
    assert_error(s, &b, 404, "not_found", unknown);
    let (s, b) = primary.get("/api/nodes/not-a-uuid").await;
    assert_error(s, &b, 400, "validation_failed", "id:");
    let (s, b) = primary.post(&format!("/api/nodes/{unknown}/check"), Value::Null).await;
    assert_error(s, &b, 404, "not_found", unknown);
    let (s, b) = primary.post(&format!("/api/nodes/{unknown}/rotate-key"), Value::Null).await;
    assert_error(s, &b, 404, "not_found", unknown);
    let (s, b) = primary.get(&format!("/api/nodes/{unknown}/history")).await;
    assert_error(s, &b, 404, "not_found", unknown);
    let (s, b) = primary.put(&format!("/api/nodes/{unknown}"), json!({ "name": "zzz" })).await;
    assert_error(s, &b, 404, "not_found", unknown);
    let (s, b) = primary.put(&format!("/api/nodes/{unknown}"), json!({})).await;
    assert_error(s, &b, 400, "bad_request", "nothing to change");

    let (s, b) = primary.get("/api/nodes?status=sleeping").await;
    assert_error(s, &b, 400, "validation_failed", "status:");
    let (s, b) = primary.get("/api/nodes?limit=0").await;
    assert_error(s, &b, 400, "validation_failed", "limit:");
    let (s, b) = primary.get("/api/nodes?sort=name").await;
    assert_error(s, &b, 400, "bad_request", "sort");
    let (s, b) = primary.get("/api/no-such-thing").await;
    assert_error(s, &b, 404, "not_found", "/api/no-such-thing");
    let (s, b) = send(primary.http.patch(&url)).await;
    assert_error(s, &b, 405, "method_not_allowed", "PATCH");

    let (_, after) = primary.get("/api/nodes").await;
    // What a request could have changed (the health checker keeps probing meanwhile).
    let identity = |list: &Value| -> Vec<Value> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| json!([n["id"], n["name"], n["api_endpoint"], n["labels"], n["created_at"]]))
            .collect()
    };
    assert_eq!(identity(&before), identity(&after), "nothing changed");
    assert_eq!(primary.get("/api/health").await.0, 200);
}

#[tokio::test]
async fn a_bad_heartbeat_body_is_refused_and_the_node_stays_as_it_was() {
    let primary = TestPrimary::spawn().await;
    let added = primary.add_node("beater", "http://127.0.0.1:9").await;
    let (id, key) = (added["node"]["id"].as_str().unwrap(), added["api_key"].as_str().unwrap());
    let post = |body: Value| {
        send(
            primary
                .http
                .post(format!("{}/api/internal/nodes/{id}/heartbeat", primary.url))
                .header("X-Node-ID", id)
                .header("X-Node-API-Key", key)
                .json(&body),
        )
    };
    let (s, b) = post(json!({ "labels": [] })).await;
    assert_error(s, &b, 400, "bad_request", "missing field `version`");
    let (s, b) = post(json!({ "version": "1", "max_jobs": -1 })).await;
    assert_error(s, &b, 400, "validation_failed", "max_jobs");
    let (s, b) = post(json!({ "version": "1", "max_jobs": 1, "labels": ["bad label"] })).await;
    assert_error(s, &b, 400, "validation_failed", "labels");
    assert_eq!(primary.node(id).await["status"], "pending");
    // Unknown fields from (newer) nodes are ignored.
    let (s, b) = post(json!({ "version": "1", "max_jobs": 1, "from_the_future": true })).await;
    assert_eq!(s, 200, "{b}");
}

/// A NUL in a heartbeat (which PostgreSQL cannot store) is refused with its field named,
/// and the next heartbeats are written as usual: nothing is left to break the flush.
#[tokio::test]
async fn a_nul_in_a_heartbeat_is_refused_and_the_flush_keeps_working() {
    let primary = TestPrimary::spawn().await;
    let added = primary.add_node("nul", "http://127.0.0.1:9").await;
    let (id, key) = (added["node"]["id"].as_str().unwrap(), added["api_key"].as_str().unwrap());
    let url = format!("{}/api/internal/nodes/{id}/heartbeat", primary.url);
    let beat = |body: Value| {
        send(primary.http.post(&url).header("X-Node-ID", id).header("X-Node-API-Key", key).json(&body))
    };
    for (body, field) in [
        (json!({ "version": "1.0\u{0}", "max_jobs": 1 }), "version"),
        (json!({ "version": "1.0", "max_jobs": 1, "labels": ["a\u{0}"] }), "labels[0]"),
        (json!({ "version": "1.0", "max_jobs": 1, "stats": { "hostname": "h\u{0}" } }), "stats.hostname"),
        (json!({ "version": "1.0", "max_jobs": 1, "running_jobs": ["\u{0}"] }), "running_jobs[0]"),
        (json!({ "version": "1.0\u{1b}[2J", "max_jobs": 1 }), "version"),
    ] {
        let (status, answer) = beat(body).await;
        assert_error(status, &answer, 400, "validation_failed", &format!("{field}:"));
    }
    for _ in 0..3 {
        let before = primary.node(id).await["last_seen"].clone();
        primary.clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(beat(json!({ "version": "1.0", "max_jobs": 1 })).await.0, 200);
        crate::helpers::eventually(crate::helpers::SECONDS, "the heartbeat to be written", || async {
            (primary.node(id).await["last_seen"] != before).then_some(())
        })
        .await;
    }
    assert_eq!(primary.node(id).await["version"], "1.0");
}

/// Output chunks: a sequence number past what the database holds is refused, not clamped,
/// and an oversize chunk gets a JSON 413 like every other error.
#[tokio::test]
async fn chunk_numbers_and_sizes_out_of_range_get_json_errors() {
    let primary = TestPrimary::spawn().await;
    let added = primary.add_node("chunky", "http://127.0.0.1:9").await;
    let (id, key) = (added["node"]["id"].as_str().unwrap(), added["api_key"].as_str().unwrap());
    let job = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
    let chunk = |seq: &str, body: Vec<u8>| {
        send(
            primary
                .http
                .post(format!(
                    "{}/api/internal/jobs/{job}/logs?attempt=1&seq={seq}&stream=stdout",
                    primary.url
                ))
                .header("X-Node-ID", id)
                .header("X-Node-API-Key", key)
                .body(body),
        )
    };
    let (status, body) = chunk("9223372036854775808", b"x".to_vec()).await;
    assert_error(status, &body, 400, "validation_failed", "seq:");
    let (status, body) = chunk("18446744073709551615", b"x".to_vec()).await;
    assert_error(status, &body, 400, "validation_failed", "seq:");
    let (status, body) = chunk("0", vec![b'x'; 2 * 1024 * 1024]).await;
    assert_error(status, &body, 413, "payload_too_large", "larger than");
}
