//! Several primaries in `PRIMARY_NODE_URL`: a secondary sticks to one, moves to the next
//! when it stops answering (wrapping around), and its job output reaches whichever answers.
//! And a primary behind Cloudflare Access, reached with a service token.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, eventually, free_port, parse_env};
use crate::stand_ins;

/// A URL nothing answers at: a port that was free a moment ago.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A secondary added on `primary` with label `label`, told `primaries` as its
/// `PRIMARY_NODE_URL`, heartbeating; returns its ID.
async fn secondary_of(primary: &TestPrimary, primaries: &str, label: &str) -> (String, NodeProcess) {
    let added = primary.add_node(label, &format!("http://127.0.0.1:{}", free_port())).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    let mut vars = parse_env(added["env"].as_str().unwrap());
    vars.retain(|(k, _)| k != "PRIMARY_NODE_URL");
    vars.push(("PRIMARY_NODE_URL".into(), primaries.into()));
    vars.push(("NODE_LABELS".into(), label.into()));
    let secondary = NodeProcess::spawn(&vars).await;
    // Online with its labels: its heartbeats got through (the health checker alone would
    // make it online too).
    eventually(SECONDS, "the secondary online, heartbeating", || async {
        let node = primary.node(&id).await;
        (node["status"] == "online" && node["labels"] == json!([label]) && node["version"].is_string())
            .then_some(())
    })
    .await;
    (id, secondary)
}

async fn job_when(primary: &TestPrimary, id: &str, status: &str, timeout: Duration) -> Value {
    eventually(timeout, &format!("job {id} to be {status}"), || async {
        let (_, job) = primary.get(&format!("/api/jobs/{id}")).await;
        (job["status"] == status).then_some(job)
    })
    .await
}

async fn stdout_of(primary: &TestPrimary, id: &str) -> String {
    let (status, page) = primary.get(&format!("/api/jobs/{id}/logs?limit=1000")).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["stream"] == "stdout")
        .map(|c| c["text"].as_str().unwrap())
        .collect()
}

/// Whether the secondary logged that `url` stopped answering.
fn moved_away_from(secondary: &NodeProcess, url: &str) -> bool {
    secondary.log().lines().any(|l| l.contains("the primary stopped answering") && l.contains(url))
}

#[tokio::test]
async fn a_secondary_whose_first_primary_is_down_works_through_the_next() {
    let primary = TestPrimary::spawn().await;
    let dead = dead_url();
    let (node, secondary) = secondary_of(&primary, &format!("{dead}, {}", primary.url), "failover").await;
    assert!(moved_away_from(&secondary, &dead), "{}", secondary.log());

    let (status, job) = primary
        .post("/api/jobs", json!({ "command": "echo from the secondary; exit 3", "labels": ["failover"] }))
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    let done = job_when(&primary, id, "failed", SECONDS).await;
    assert_eq!(done["assigned_node_id"], node.as_str());
    assert_eq!(done["exit_code"], 3, "{done}");
    assert_eq!(stdout_of(&primary, id).await, "from the secondary\n");
}

#[tokio::test]
async fn output_spooled_while_the_primary_is_away_wraps_around_to_it() {
    let mut primary = TestPrimary::spawn().await;
    let dead = dead_url();
    let (_, secondary) = secondary_of(&primary, &format!("{},{dead}", primary.url), "wrap").await;
    assert!(!moved_away_from(&secondary, &primary.url), "sticks to the first while it answers");

    let command = "for i in $(seq 1 30); do echo line $i; sleep 0.1; done";
    let (status, job) = primary.post("/api/jobs", json!({ "command": command, "labels": ["wrap"] })).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    job_when(&primary, id, "running", SECONDS).await;
    // The only live primary goes away mid-job: the node tries the dead one, then comes back.
    primary.stop().await;
    eventually(SECONDS, "the node to give up on both primaries once", || async {
        (moved_away_from(&secondary, &primary.url) && moved_away_from(&secondary, &dead)).then_some(())
    })
    .await;
    primary.restart().await;

    job_when(&primary, id, "succeeded", Duration::from_secs(30)).await;
    let expected: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    let stdout = eventually(SECONDS, "every line delivered", || async {
        let text = stdout_of(&primary, id).await;
        (text.len() >= expected.len()).then_some(text)
    })
    .await;
    assert_eq!(stdout, expected, "{}", secondary.log());
}

/// Behind Cloudflare Access with a service-auth policy (a stand-in gate): a secondary given
/// the service token heartbeats and ships its job's output through the gate; one without it
/// is refused there (403) and its heartbeats never arrive.
#[tokio::test]
async fn a_secondary_with_an_access_service_token_gets_through_access_and_one_without_does_not() {
    const ID: &str = "fleet-node.access";
    const SECRET: &str = "a-service-token-secret-for-tests";
    let primary = TestPrimary::spawn().await;
    let gate = stand_ins::access_gate(&primary.url, ID, SECRET);
    let secondary_behind = |name: &'static str, token: bool| {
        let (primary, gate_url) = (&primary, gate.url.clone());
        async move {
            let added = primary.add_node(name, &format!("http://127.0.0.1:{}", free_port())).await;
            let id = added["node"]["id"].as_str().unwrap().to_owned();
            let mut vars = parse_env(added["env"].as_str().unwrap());
            vars.retain(|(k, _)| k != "PRIMARY_NODE_URL");
            vars.push(("PRIMARY_NODE_URL".into(), gate_url));
            vars.push(("HEARTBEAT_INTERVAL".into(), "1s".into()));
            if token {
                vars.push(("CF_ACCESS_CLIENT_ID".into(), ID.into()));
                vars.push(("CF_ACCESS_CLIENT_SECRET".into(), SECRET.into()));
            }
            (id, NodeProcess::spawn(&vars).await)
        }
    };

    let (with_id, with) = secondary_behind("with-token", true).await;
    eventually(SECONDS, "the secondary's heartbeats through Access", || async {
        primary.node(&with_id).await["version"].is_string().then_some(())
    })
    .await;
    let (status, job) =
        primary.post("/api/jobs", json!({ "command": "echo through access", "node_id": with_id })).await;
    assert_eq!(status, 201, "{job}");
    let job_id = job["id"].as_str().unwrap();
    job_when(&primary, job_id, "succeeded", SECONDS).await;
    assert_eq!(stdout_of(&primary, job_id).await, "through access\n");
    let passed = gate.state.lock().unwrap().passed.clone();
    for path in
        [format!("/api/internal/nodes/{with_id}/heartbeat"), format!("/api/internal/jobs/{job_id}/logs")]
    {
        assert!(passed.iter().any(|(_, p)| *p == path), "{path} did not go through the gate: {passed:?}");
    }
    assert!(!with.log().contains(SECRET), "the secret reached the log");

    let (without_id, _without) = secondary_behind("without-token", false).await;
    let heartbeat = format!("/api/internal/nodes/{without_id}/heartbeat");
    eventually(SECONDS, "the gate to refuse the secondary without a token", || async {
        gate.state.lock().unwrap().refused.iter().any(|(_, p)| *p == heartbeat).then_some(())
    })
    .await;
    assert!(primary.node(&without_id).await["version"].is_null(), "no heartbeat of it reached the primary");
    assert!(gate.state.lock().unwrap().refused.iter().all(|(_, p)| !p.contains(&with_id)));
}
