//! The health checker against real secondary processes: killed, paused, resumed, and
//! checked on demand. Time beyond the first ticks is driven through the primary's clock.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, eventually, free_port, parse_env};

async fn failures(primary: &TestPrimary, id: &str) -> u64 {
    primary.node(id).await["consecutive_failures"].as_u64().unwrap()
}

#[tokio::test]
async fn a_killed_secondary_goes_offline_after_three_failed_checks_then_unreachable() {
    let primary = TestPrimary::spawn().await;
    let (id, mut secondary) = primary.online_secondary("doomed").await;
    secondary.kill();

    let node = primary.wait_status(&id, "offline", SECONDS).await;
    assert_eq!(node["consecutive_failures"], 3, "offline exactly at the third failure");
    assert!(
        node["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect: connection refused: is the node running"),
        "in words an operator can act on: {node}"
    );

    // Backing off: while the clock stands still, sweeps pass it by.
    primary.sweeps_pass(2).await;
    assert_eq!(failures(&primary, &id).await, 3);
    // Two minutes later it is due again.
    primary.clock.advance(Duration::from_secs(121));
    eventually(SECONDS, "the fourth failure", || async {
        (failures(&primary, &id).await == 4).then_some(())
    })
    .await;

    // Keep moving time until the eleventh failure makes it unreachable.
    let node = eventually(Duration::from_secs(30), "unreachable", || async {
        let node = primary.node(&id).await;
        if node["status"] == "unreachable" {
            return Some(node);
        }
        primary.clock.advance(Duration::from_secs(30 * 60));
        primary.sweeps_pass(2).await;
        None
    })
    .await;
    assert_eq!(node["consecutive_failures"], 11);

    let (_, history) = primary.get(&format!("/api/nodes/{id}/history")).await;
    let transitions: Vec<(Value, Value)> =
        history["items"].as_array().unwrap().iter().map(|c| (c["from"].clone(), c["to"].clone())).collect();
    assert_eq!(
        transitions,
        [
            ("offline".into(), "unreachable".into()),
            ("online".into(), "offline".into()),
            ("pending".into(), "online".into())
        ]
    );
}

#[tokio::test]
async fn a_paused_secondary_times_out_and_comes_back_when_resumed_and_check_now_bypasses_backoff() {
    let primary = TestPrimary::spawn().await;
    let (id, secondary) = primary.online_secondary("sleepy").await;
    secondary.pause();
    let node = primary.wait_status(&id, "offline", SECONDS).await;
    assert!(node["last_error"].as_str().unwrap().contains("no answer within"), "{node}");

    // Not due for two minutes of the primary's clock, yet "Check now" probes at once.
    let (status, checked) = primary.post(&format!("/api/nodes/{id}/check"), Value::Null).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["node"]["consecutive_failures"], 4);
    assert!(checked["error"].as_str().unwrap().contains("no answer within"), "{checked}");

    secondary.resume();
    let node = primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(node["consecutive_failures"], 0);

    // And a manual check of a healthy node reports no error.
    let (_, checked) = primary.post(&format!("/api/nodes/{id}/check"), Value::Null).await;
    assert!(checked["error"].is_null(), "{checked}");
    assert_eq!(checked["node"]["status"], "online");
}

#[tokio::test]
async fn a_probe_with_a_key_the_node_does_not_hold_is_a_failure() {
    let primary = TestPrimary::spawn().await;
    let port = free_port();
    let added = primary.add_node("mismatch", &format!("http://127.0.0.1:{port}")).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    // The secondary runs with a different key than the primary holds for it.
    let mut vars = parse_env(added["env"].as_str().unwrap());
    for (k, v) in &mut vars {
        if k == "NODE_API_KEY" {
            *v = "a-completely-different-key-that-is-long-enough".into();
        }
    }
    let _secondary = NodeProcess::spawn(&vars).await;
    let (status, checked) = primary.post(&format!("/api/nodes/{id}/check"), Value::Null).await;
    assert_eq!(status, 200);
    assert!(checked["error"].as_str().unwrap().contains("refused our credentials"), "{checked}");
    assert_eq!(checked["node"]["status"], "pending", "never reached");
}
