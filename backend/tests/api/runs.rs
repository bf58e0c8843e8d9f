//! Fleet-wide runs with a real primary and real secondary processes: one job per matching
//! node, nodes that cannot take one listed as skipped, rolling with `max_parallel` and
//! stopping on the first failure, cancelling, grouped output, bad requests.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, eventually, free_port, parse_env};

/// A secondary, online; its jobs see `ROLE=role` (the one way a test makes the same command
/// fail on one node only).
async fn node(primary: &TestPrimary, name: &str, role: &str) -> (String, NodeProcess) {
    let added = primary.add_node(name, &format!("http://127.0.0.1:{}", free_port())).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    let mut vars = parse_env(added["env"].as_str().unwrap());
    vars.push(("ROLE".into(), role.into()));
    vars.push(("NODE_LABELS".into(), "web".into()));
    let process = NodeProcess::spawn(&vars).await;
    // Online, and its labels heard (they come with its heartbeats).
    eventually(SECONDS, "the node online with its label", || async {
        let node = primary.node(&id).await;
        (node["status"] == "online" && node["labels"] == json!(["web"])).then_some(())
    })
    .await;
    (id, process)
}

/// The same command everywhere, failing where `ROLE=bad`.
const COMMAND: &str = r#"echo same output; test "${ROLE:-}" != bad"#;

async fn start(primary: &TestPrimary, body: Value) -> Value {
    let (status, run) = primary.post("/api/runs", body).await;
    assert_eq!(status, 201, "{run}");
    run
}

async fn finished(primary: &TestPrimary, id: &str, timeout: Duration) -> Value {
    eventually(timeout, "the run to finish", || async {
        let (_, run) = primary.get(&format!("/api/runs/{id}")).await;
        (run["status"] != "running").then_some(run)
    })
    .await
}

fn row<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["nodes"].as_array().unwrap().iter().find(|n| n["node_name"] == name).unwrap()
}

#[tokio::test]
async fn a_run_gives_each_matching_node_one_job_and_lists_the_ones_that_cannot_take_one() {
    let primary = TestPrimary::spawn().await;
    let (good, _a) = node(&primary, "alpha", "good").await;
    let (bad, _b) = node(&primary, "bravo", "bad").await;
    // Never started: pending.
    let ghost = primary.add_node("ghost", &format!("http://127.0.0.1:{}", free_port())).await;
    let ghost = ghost["node"]["id"].as_str().unwrap().to_owned();

    let run = start(&primary, json!({ "command": COMMAND, "all": true, "name": "uptime check" })).await;
    let id = run["id"].as_str().unwrap().to_owned();
    let names: Vec<&str> =
        run["nodes"].as_array().unwrap().iter().map(|n| n["node_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "bravo", "ghost", "primary"], "every node, by name");
    assert_eq!(run["all"], true);
    assert_eq!(row(&run, "ghost")["status"], "skipped");
    assert_eq!(row(&run, "ghost")["reason"], "pending when the run started");
    assert_eq!(row(&run, "ghost")["node_id"], ghost.as_str());
    assert_eq!(run["totals"]["nodes"], 4);
    assert_eq!(run["totals"]["skipped"], 1);

    let run = finished(&primary, &id, SECONDS).await;
    assert_eq!(run["status"], "failed", "{run}");
    let totals = &run["totals"];
    assert_eq!((totals["succeeded"].as_u64(), totals["failed"].as_u64()), (Some(2), Some(1)), "{totals}");
    assert_eq!(totals["active"], 0);
    assert_eq!(totals["waiting"], 0);
    assert_eq!(row(&run, "bravo")["status"], "failed");
    assert_eq!(row(&run, "bravo")["exit_code"], 1);
    assert_eq!(row(&run, "bravo")["node_id"], bad.as_str());
    assert_eq!(row(&run, "alpha")["exit_code"], 0);
    assert_eq!(row(&run, "alpha")["log_bytes"], "same output\n".len());
    assert!(row(&run, "alpha")["finished_at"].is_string());

    // Each node's job is an ordinary job of that node, marked with its run.
    let job = row(&run, "alpha")["job_id"].as_str().unwrap().to_owned();
    let (_, job) = primary.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(job["run_id"], id.as_str());
    assert_eq!(job["node_id"], good.as_str());
    assert_eq!(job["name"], "uptime check");

    // The same output from all three is one group.
    let (status, groups) = primary.get(&format!("/api/runs/{id}/output")).await;
    assert_eq!(status, 200, "{groups}");
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["text"], "same output\n");
    assert_eq!(groups[0]["node_ids"].as_array().unwrap().len(), 3);
    assert_eq!(groups[0]["truncated"], false);

    // Listed with its totals; audited; over, so it cannot be cancelled.
    let (_, list) = primary.get("/api/runs").await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["totals"], run["totals"]);
    assert!(list["items"][0].get("nodes").is_none(), "the list leaves the nodes out");
    let (status, body) = primary.post(&format!("/api/runs/{id}/cancel"), Value::Null).await;
    assert_eq!(status, 409, "{body}");
    let (_, audit) = primary.get(&format!("/api/audit?target={id}")).await;
    assert_eq!(audit["items"][0]["action"], "run_submitted");

    // By labels: only the nodes holding them (the primary and ghost have none).
    let run = start(&primary, json!({ "command": "true", "labels": ["web"] })).await;
    let names: Vec<&str> =
        run["nodes"].as_array().unwrap().iter().map(|n| n["node_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "bravo"]);
    assert_eq!(finished(&primary, run["id"].as_str().unwrap(), SECONDS).await["status"], "succeeded");
}

#[tokio::test]
async fn a_rolling_run_keeps_to_max_parallel_stops_on_failure_and_can_be_cancelled() {
    let primary = TestPrimary::spawn().await;
    let (a, _a) = node(&primary, "alpha", "good").await;
    let (b, _b) = node(&primary, "bravo", "bad").await;
    let (c, _c) = node(&primary, "charlie", "good").await;

    // In the order given, one at a time; bravo fails, so charlie never starts.
    let command = format!("sleep 1; {COMMAND}");
    let run = start(
        &primary,
        json!({ "command": command, "node_ids": [a, b, c], "max_parallel": 1, "stop_on_failure": true }),
    )
    .await;
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["totals"]["active"], 1);
    assert_eq!(run["totals"]["waiting"], 2);
    assert_eq!(row(&run, "bravo")["status"], "waiting");
    // Never two at once, looked at all along.
    let run = eventually(Duration::from_secs(30), "the rolling run to finish", || async {
        let (_, run) = primary.get(&format!("/api/runs/{id}")).await;
        assert!(run["totals"]["active"].as_u64() <= Some(1), "{run}");
        (run["status"] != "running").then_some(run)
    })
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(row(&run, "alpha")["status"], "succeeded");
    assert_eq!(row(&run, "bravo")["status"], "failed");
    assert_eq!(row(&run, "charlie")["status"], "skipped");
    assert_eq!(row(&run, "charlie")["reason"], "not started: the run stopped (node bravo did not succeed)");
    assert_eq!(run["stopped"], "stopped: node bravo did not succeed");

    // Two at a time over three, cancelled while the first two run: the third never starts.
    let run =
        start(&primary, json!({ "command": "sleep 30", "node_ids": [a, b, c], "max_parallel": 2 })).await;
    let id = run["id"].as_str().unwrap().to_owned();
    eventually(SECONDS, "two jobs running", || async {
        let (_, run) = primary.get(&format!("/api/runs/{id}")).await;
        let running = run["nodes"].as_array().unwrap().iter().filter(|n| n["status"] == "running").count();
        (running == 2).then_some(())
    })
    .await;
    let (status, run) = primary.post(&format!("/api/runs/{id}/cancel"), Value::Null).await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(row(&run, "charlie")["reason"], "the run was cancelled");
    let run = finished(&primary, &id, SECONDS).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["totals"]["cancelled"], 2);
    assert_eq!(run["totals"]["skipped"], 1);
    assert!(run["stopped"].as_str().unwrap().starts_with("cancelled by "), "{run}");
    let (_, audit) = primary.get(&format!("/api/audit?target={id}")).await;
    assert_eq!(audit["items"][0]["action"], "run_cancelled");
}

#[tokio::test]
async fn bad_run_requests_are_refused_and_start_nothing() {
    let primary = TestPrimary::spawn().await;
    let ghost = primary.add_node("ghost", &format!("http://127.0.0.1:{}", free_port())).await;
    let ghost = ghost["node"]["id"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases = [
        (json!({ "command": "true" }), 400, "exactly one of"),
        (json!({ "command": "true", "all": true, "labels": ["web"] }), 400, "exactly one of"),
        (json!({ "command": "true", "labels": [] }), 400, "exactly one of"),
        (json!({ "command": "true", "all": false }), 400, "exactly one of"),
        (json!({ "command": "", "all": true }), 400, "command"),
        (json!({ "command": "true", "all": true, "max_parallel": 0 }), 400, "max_parallel"),
        (json!({ "command": "true", "all": true, "stop_on_failure": true }), 400, "needs max_parallel"),
        (json!({ "command": "true", "labels": ["nobody-has-this"] }), 422, "no node has all of"),
        (json!({ "command": "true", "node_ids": [unknown] }), 422, "there is no node"),
        (json!({ "command": "true", "node_ids": ["not-an-id"] }), 400, "node_ids"),
        (json!({ "command": "true", "all": true, "timeout_sec": 0 }), 400, "timeout_sec"),
        (json!({ "command": "true", "all": true, "bogus": 1 }), 400, "bogus"),
        // Nobody who can take it: refused, saying who and why.
        (json!({ "command": "true", "node_ids": [ghost] }), 409, "ghost (pending)"),
    ];
    for (body, want, says) in cases {
        let (status, answer) = primary.post("/api/runs", body.clone()).await;
        assert_eq!(status, want, "{body} → {answer}");
        assert!(answer["error"]["message"].as_str().unwrap_or_default().contains(says), "{body} → {answer}");
    }
    let (_, runs) = primary.get("/api/runs").await;
    assert_eq!(runs["items"], json!([]));
    let (_, jobs) = primary.get("/api/jobs").await;
    assert_eq!(jobs["items"], json!([]));
    let (status, _) = primary.get(&format!("/api/runs/{unknown}")).await;
    assert_eq!(status, 404);
    let (status, _) = primary.get(&format!("/api/runs/{unknown}/output")).await;
    assert_eq!(status, 404);
}
