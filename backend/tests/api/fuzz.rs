//! A fuzz pass over every route: each field of each body, each query parameter and each path
//! ID gets a table of bad values for its type. Every answer must be a clear JSON refusal (4xx
//! with `error.code`), never a 5xx; a NUL anywhere is a 400 naming its field; and the
//! server, its heartbeat flush included, keeps working. Runs on SQLite and PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestPrimary, eventually, send};

/// What a field holds, and so which bad values it gets.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Id,
    Count,
    TextList,
    Map,
    Object,
}

const NUL: &str = "a\u{0}b";

fn bad_values(kind: Kind) -> Vec<Value> {
    let mut values = vec![json!(NUL), json!(true), json!({ "x": 1 })];
    match kind {
        Kind::Text => {
            values.extend([json!(5), json!(["x"]), json!("\u{1b}[31m\u{7}"), json!("x".repeat(70_000))]);
        }
        Kind::Id => values.extend([
            json!("0190F6C2-8F5A-7C1E-9A43-1D2B3C4D5E6F"),
            json!("{0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f}"),
            json!("urn:uuid:0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f"),
            json!("not-an-id"),
            json!(7),
        ]),
        Kind::Count => values.extend([
            json!(-1),
            json!(1.5),
            json!("5"),
            json!(18_446_744_073_709_551_615_u64),
            json!(1e300),
        ]),
        Kind::TextList => values.extend([
            json!([NUL]),
            json!(["ok", 3]),
            json!([null]),
            json!("not-a-list"),
            json!(vec!["x"; 5_000]),
        ]),
        Kind::Map => {
            values.extend([json!({ "A": NUL }), json!({ "A\u{0}": "x" }), json!({ "A": 5 }), json!([1])]);
        }
        Kind::Object => values.extend([json!({ "hostname": NUL }), json!("text"), json!([1])]),
    }
    values
}

/// One route and the fields of its body (JSON pointer, kind).
struct Route {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    fields: Vec<(&'static str, Kind)>,
    query: Vec<(&'static str, Kind)>,
    node: bool,
}

fn route(method: &str, path: impl Into<String>) -> Route {
    Route {
        method: method.parse().unwrap(),
        path: path.into(),
        body: None,
        fields: vec![],
        query: vec![],
        node: false,
    }
}

impl Route {
    fn body(mut self, body: Value, fields: &[(&'static str, Kind)]) -> Route {
        self.body = Some(body);
        self.fields = fields.to_vec();
        self
    }

    fn query(mut self, params: &[(&'static str, Kind)]) -> Route {
        self.query = params.to_vec();
        self
    }

    fn by_node(mut self) -> Route {
        self.node = true;
        self
    }
}

fn query_values(kind: Kind) -> Vec<String> {
    let mut values = vec!["a%00b", "%1b", "x%7F"];
    match kind {
        Kind::Count => values.extend(["-1", "abc", "1.5", "18446744073709551616", "99999999999999999999999"]),
        Kind::Id => values.extend(["NOT-AN-ID", "%7B0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f%7D"]),
        _ => values.extend(["%E2%80%AE", "%F0%9F%92%A9"]),
    }
    let mut values: Vec<String> = values.into_iter().map(str::to_owned).collect();
    values.push("y".repeat(5_000));
    values
}

/// Taken, or refused with a JSON error; never a server error.
fn assert_handled(what: &str, status: u16, body: &Value) {
    assert!(status < 500, "{what}: got {status}: {body}");
    if status >= 400 {
        assert!(body["error"]["code"].is_string(), "{what}: a JSON error body, got {status}: {body}");
    }
}

#[tokio::test]
async fn bad_values_in_every_field_of_every_route_get_clear_errors() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", "a-registration-token-for-tests")]).await;
    let added = primary.add_node("target", "http://127.0.0.1:9").await;
    let node = added["node"]["id"].as_str().unwrap().to_owned();
    let key = added["api_key"].as_str().unwrap().to_owned();
    let (_, job) = primary.post("/api/jobs", json!({ "command": "true", "node_id": node })).await;
    let job = job["id"].as_str().unwrap_or("0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f").to_owned();
    let (_, token) = primary.post("/api/tokens", json!({ "name": "t" })).await;
    let token = token["token"]["id"].as_str().unwrap().to_owned();

    let heartbeat = json!({
        "version": "1.0.0", "labels": [], "max_jobs": 2, "running_jobs": [], "uptime_secs": 1,
        "stats": { "hostname": "h", "os": "linux" },
    });
    let routes = vec![
        route("POST", "/api/nodes").body(
            json!({ "name": "n1", "api_endpoint": "http://127.0.0.1:9", "labels": ["a"] }),
            &[
                ("/name", Kind::Text),
                ("/api_endpoint", Kind::Text),
                ("/labels", Kind::TextList),
                ("/id", Kind::Id),
                ("/api_key", Kind::Text),
            ],
        ),
        route("PUT", format!("/api/nodes/{node}")).body(
            json!({ "name": "target" }),
            &[("/name", Kind::Text), ("/api_endpoint", Kind::Text), ("/labels", Kind::TextList)],
        ),
        route("GET", "/api/nodes").query(&[
            ("q", Kind::Text),
            ("status", Kind::Text),
            ("label", Kind::Text),
            ("limit", Kind::Count),
            ("cursor", Kind::Text),
        ]),
        route("GET", format!("/api/nodes/{node}/history")).query(&[("limit", Kind::Count), ("cursor", Kind::Text)]),
        route("GET", format!("/api/nodes/{node}/stats")).query(&[("since", Kind::Text)]),
        route("GET", "/api/history").query(&[("limit", Kind::Count), ("cursor", Kind::Text)]),
        route("POST", "/api/tokens")
            .body(json!({ "name": "tok" }), &[("/name", Kind::Text), ("/expires_in_days", Kind::Count)]),
        route("GET", "/api/audit").query(&[
            ("actor", Kind::Text),
            ("action", Kind::Text),
            ("target", Kind::Text),
            ("limit", Kind::Count),
            ("cursor", Kind::Text),
        ]),
        route("POST", "/api/jobs").body(
            json!({ "command": "true", "labels": ["nowhere-at-all"] }),
            &[
                ("/command", Kind::Text),
                ("/name", Kind::Text),
                ("/env", Kind::Map),
                ("/working_dir", Kind::Text),
                ("/timeout_sec", Kind::Count),
                ("/node_id", Kind::Id),
                ("/labels", Kind::TextList),
            ],
        ),
        route("GET", "/api/jobs").query(&[
            ("status", Kind::Text),
            ("node", Kind::Id),
            ("label", Kind::Text),
            ("q", Kind::Text),
            ("limit", Kind::Count),
            ("cursor", Kind::Text),
        ]),
        route("POST", "/api/runs").body(
            json!({ "command": "true", "labels": ["nowhere-at-all"] }),
            &[
                ("/command", Kind::Text),
                ("/name", Kind::Text),
                ("/env", Kind::Map),
                ("/working_dir", Kind::Text),
                ("/timeout_sec", Kind::Count),
                ("/labels", Kind::TextList),
                ("/node_ids", Kind::TextList),
                ("/max_parallel", Kind::Count),
            ],
        ),
        route("GET", "/api/runs").query(&[("limit", Kind::Count), ("cursor", Kind::Text)]),
        route("GET", format!("/api/jobs/{job}/logs")).query(&[("after_seq", Kind::Count), ("limit", Kind::Count)]),
        route("GET", format!("/api/jobs/{job}/logs/raw")).query(&[("stream", Kind::Text)]),
        route("POST", "/api/internal/nodes/register").body(
            json!({ "id": "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", "name": "self", "api_endpoint": "http://127.0.0.1:9", "api_key": "k".repeat(43) }),
            &[
                ("/id", Kind::Id),
                ("/name", Kind::Text),
                ("/api_endpoint", Kind::Text),
                ("/api_key", Kind::Text),
                ("/labels", Kind::TextList),
            ],
        ),
        route("POST", format!("/api/internal/nodes/{node}/heartbeat"))
            .body(
                heartbeat,
                &[
                    ("/version", Kind::Text),
                    ("/labels", Kind::TextList),
                    ("/max_jobs", Kind::Count),
                    ("/running_jobs", Kind::TextList),
                    ("/uptime_secs", Kind::Count),
                    ("/stats", Kind::Object),
                ],
            )
            .by_node(),
        route("POST", format!("/api/internal/jobs/{job}/status"))
            .body(
                json!({ "attempt": 1, "state": "running" }),
                &[
                    ("/attempt", Kind::Count),
                    ("/state", Kind::Text),
                    ("/exit_code", Kind::Count),
                    ("/error", Kind::Text),
                    ("/last_seq", Kind::Count),
                ],
            )
            .by_node(),
        route("POST", format!("/api/internal/jobs/{job}/logs"))
            .query(&[("attempt", Kind::Count), ("seq", Kind::Count), ("stream", Kind::Text)])
            .by_node(),
    ];

    let mut cases = 0;
    for r in &routes {
        let request = |path: &str| {
            let mut request = primary.http.request(r.method.clone(), format!("{}{path}", primary.url));
            if r.node {
                request = request.header("X-Node-ID", &node).header("X-Node-API-Key", &key);
            }
            if r.path.contains("/register") {
                request = request.header("X-Registration-Token", "a-registration-token-for-tests");
            }
            request
        };
        for &(pointer, kind) in &r.fields {
            for bad in bad_values(kind) {
                let mut body = r.body.clone().unwrap();
                let field = pointer.trim_start_matches('/');
                body.as_object_mut().unwrap().insert(field.to_owned(), bad.clone());
                let what = format!("{} {} {field}={}", r.method, r.path, truncated(&bad));
                let (status, answer) = send(request(&r.path).json(&body)).await;
                assert_handled(&what, status, &answer);
                if bad == json!(NUL) {
                    assert_eq!(status, 400, "{what}: {answer}");
                    let message = answer["error"]["message"].as_str().unwrap();
                    assert!(message.starts_with(field), "{what}: the field is named: {answer}");
                }
                cases += 1;
            }
        }
        for &(param, kind) in &r.query {
            for bad in query_values(kind) {
                let path = format!("{}?{param}={bad}", r.path);
                let bad = bad.as_str();
                let what = format!("{} {}", r.method, truncated(&json!(path)));
                let (status, answer) = send(request(&path).body("")).await;
                if bad.contains("%00") || bad.contains("%1b") || bad.contains("%7F") {
                    assert_eq!(status, 400, "{what}: {answer}");
                    assert!(
                        answer["error"]["message"].as_str().unwrap().starts_with(param),
                        "{what}: {answer}"
                    );
                } else {
                    assert_handled(&what, status, &answer);
                }
                cases += 1;
            }
        }
        // The path's IDs, in every other spelling.
        for id in [&node, &job, &token] {
            if r.path.contains(id.as_str()) {
                for other in
                    [id.to_uppercase(), format!("{{{id}}}"), format!("urn:uuid:{id}"), id.replace('-', "")]
                {
                    let path = r.path.replace(id.as_str(), &other);
                    let (status, answer) =
                        send(request(&path).json(r.body.as_ref().unwrap_or(&json!({})))).await;
                    assert_eq!(status, 400, "{} {path}: {answer}", r.method);
                    assert!(answer["error"]["message"].as_str().unwrap().starts_with("id:"), "{answer}");
                    cases += 1;
                }
            }
        }
    }
    let odd_paths = [
        ("DELETE", format!("/api/tokens/{}", token.to_uppercase())),
        ("GET", "/api/nodes/%00".into()),
        ("GET", "/api/jobs/a%00b".into()),
    ];
    for (method, path) in odd_paths {
        let (status, answer) =
            send(primary.http.request(method.parse().unwrap(), format!("{}{path}", primary.url))).await;
        assert_eq!(status, 400, "{path}: {answer}");
        cases += 1;
    }
    assert!(cases > 400, "{cases} cases");

    // Still serving, and the heartbeat flush still works: a heartbeat moves last_seen.
    let before = primary.node(&node).await["last_seen"].clone();
    primary.clock.advance(Duration::from_secs(5));
    let (status, _) = primary.heartbeat(&node, &key).await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), "last_seen to move", || async {
        (primary.node(&node).await["last_seen"] != before).then_some(())
    })
    .await;
    assert_eq!(primary.get("/api/nodes").await.0, 200);
}

fn truncated(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 80 { format!("{}…", &text[..80]) } else { text }
}
