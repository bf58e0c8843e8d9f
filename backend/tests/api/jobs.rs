//! Routed jobs with a real primary and real secondary processes: placement, output,
//! exit codes, timeouts, cancel, capacity, restarts of either side, live logs, bad input.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, client, eventually, free_port, parse_env, send};

/// A secondary added through the API with `labels` and `max_jobs`, online.
async fn worker(
    primary: &TestPrimary,
    name: &str,
    labels: &str,
    max_jobs: u32,
) -> (String, String, NodeProcess) {
    let added = primary.add_node(name, &format!("http://127.0.0.1:{}", free_port())).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    let key = added["api_key"].as_str().unwrap().to_owned();
    let mut vars = parse_env(added["env"].as_str().unwrap());
    vars.push(("NODE_LABELS".into(), labels.into()));
    vars.push(("NODE_MAX_JOBS".into(), max_jobs.to_string()));
    let secondary = NodeProcess::spawn(&vars).await;
    // Online, with its labels and capacity as its heartbeats told the primary.
    let wanted: Vec<&str> = labels.split(',').collect();
    eventually(Duration::from_secs(30), "the worker online with its labels and capacity", || async {
        let node = primary.node(&id).await;
        let has_labels = wanted.iter().all(|l| node["labels"].as_array().unwrap().iter().any(|v| v == l));
        (node["status"] == "online"
            && node["max_jobs"] == max_jobs
            && has_labels
            && node["version"].is_string())
        .then_some(())
    })
    .await;
    (id, key, secondary)
}

async fn submit(primary: &TestPrimary, body: Value) -> Value {
    let (status, job) = primary.post("/api/jobs", body).await;
    assert_eq!(status, 201, "{job}");
    job
}

async fn fetch_job(primary: &TestPrimary, id: &str) -> Value {
    let (status, job) = primary.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn wait_status(primary: &TestPrimary, id: &str, status: &str, timeout: Duration) -> Value {
    eventually(timeout, &format!("job {id} to be {status}"), || async {
        let job = fetch_job(primary, id).await;
        (job["status"] == status).then_some(job)
    })
    .await
}

async fn raw(primary: &TestPrimary, id: &str, stream: &str) -> Vec<u8> {
    let response = client(None)
        .get(format!("{}/api/jobs/{id}/logs/raw?stream={stream}", primary.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// Every stored chunk of a job, in order.
async fn stored_chunks(primary: &TestPrimary, id: &str) -> Vec<Value> {
    let mut chunks: Vec<Value> = Vec::new();
    loop {
        let after = chunks.last().map(|c| format!("&after_seq={}", c["seq"])).unwrap_or_default();
        let (_, page) = primary.get(&format!("/api/jobs/{id}/logs?limit=1000{after}")).await;
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        chunks.extend(items);
    }
    chunks
}

/// Every stored chunk of a job, checking the sequence numbers run 0, 1, 2… without a gap.
async fn all_chunks(primary: &TestPrimary, id: &str) -> Vec<Value> {
    let chunks = stored_chunks(primary, id).await;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["seq"], i as u64, "chunks in order, no gap, no duplicate");
    }
    chunks
}

fn text_of(chunks: &[Value], stream: &str) -> String {
    chunks.iter().filter(|c| c["stream"] == stream).map(|c| c["text"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn jobs_go_to_nodes_with_the_labels_and_spread_by_load() {
    let primary = TestPrimary::spawn().await;
    let (a, _, _wa) = worker(&primary, "gpu-a", "linux,gpu", 2).await;
    let (b, _, _wb) = worker(&primary, "cpu-b", "linux", 2).await;
    let (c, _, _wc) = worker(&primary, "cpu-c", "linux", 4).await;

    let gpu = submit(&primary, json!({ "command": "sleep 4", "labels": ["gpu"] })).await;
    let gpu = wait_status(&primary, gpu["id"].as_str().unwrap(), "running", SECONDS).await;
    assert_eq!(gpu["assigned_node_id"], a.as_str());

    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            submit(&primary, json!({ "command": "sleep 4", "labels": ["linux"] })).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let job = wait_status(&primary, id, "running", SECONDS).await;
        *per_node.entry(job["assigned_node_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    // Lowest (running + 1) / max_jobs each time, ties to the least recently used:
    // c (1/4), b (1/2), c (2/4), a (2/2 with the gpu job), b (2/2), c (3/4).
    assert_eq!(per_node.get(&a), Some(&1), "{per_node:?}");
    assert_eq!(per_node.get(&b), Some(&2), "{per_node:?}");
    assert_eq!(per_node.get(&c), Some(&3), "{per_node:?}");
    // The primary has no labels, so it took none of them.
    assert!(!per_node.contains_key(&primary.primary_id()));
}

#[tokio::test]
async fn a_queued_job_starts_when_a_fitting_node_comes_online_or_frees_a_slot() {
    let primary = TestPrimary::spawn().await;
    // A node with the label exists but is not online yet.
    let added = primary.add_node("late", &format!("http://127.0.0.1:{}", free_port())).await;
    let (status, _) = primary
        .put(&format!("/api/nodes/{}", added["node"]["id"].as_str().unwrap()), json!({ "labels": ["late"] }))
        .await;
    assert_eq!(status, 200);
    let waiting = submit(&primary, json!({ "command": "echo finally", "labels": ["late"] })).await;
    let id = waiting["id"].as_str().unwrap().to_owned();
    let queued = eventually(SECONDS, "a reason to wait", || async {
        let job = fetch_job(&primary, &id).await;
        job["queue_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no online node has labels late"))
            .then_some(job)
    })
    .await;
    assert_eq!(queued["status"], "queued");

    let mut vars = parse_env(added["env"].as_str().unwrap());
    vars.push(("NODE_LABELS".into(), "late".into()));
    vars.push(("NODE_MAX_JOBS".into(), "1".into()));
    let _late = NodeProcess::spawn(&vars).await;
    let done = wait_status(&primary, &id, "succeeded", SECONDS).await;
    assert_eq!(done["assigned_node_id"], added["node"]["id"]);

    // A full node: the next job waits for the slot, then goes at once.
    let first = submit(&primary, json!({ "command": "sleep 1.5", "labels": ["late"] })).await;
    wait_status(&primary, first["id"].as_str().unwrap(), "running", SECONDS).await;
    let second = submit(&primary, json!({ "command": "true", "labels": ["late"] })).await;
    let second_id = second["id"].as_str().unwrap();
    let waiting = eventually(SECONDS, "the busy reason", || async {
        let job = fetch_job(&primary, second_id).await;
        job["queue_reason"].as_str().is_some_and(|r| r.contains("busy")).then_some(job)
    })
    .await;
    assert_eq!(waiting["status"], "queued");
    wait_status(&primary, second_id, "succeeded", SECONDS).await;
}

#[tokio::test]
async fn tens_of_megabytes_of_output_arrive_complete_and_in_order() {
    let primary = TestPrimary::spawn().await;
    let (_, _, _w) = worker(&primary, "chatty", "big", 1).await;
    let job = submit(&primary, json!({ "command": "seq 1 3000000; echo done >&2", "labels": ["big"] })).await;
    let id = job["id"].as_str().unwrap();
    let done = wait_status(&primary, id, "succeeded", Duration::from_secs(60)).await;
    let expected: String = (1..=3_000_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(done["log_bytes"], expected.len() as u64 + 5);
    let stdout = raw(&primary, id, "stdout").await;
    assert_eq!(stdout.len(), expected.len());
    assert_eq!(Sha256::digest(&stdout), Sha256::digest(expected.as_bytes()), "byte-exact");
    assert_eq!(raw(&primary, id, "stderr").await, b"done\n");
    all_chunks(&primary, id).await;
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let primary = TestPrimary::spawn().await;
    let (_, _, _w) = worker(&primary, "exits", "exits", 3).await;
    let cases = [
        ("true", "succeeded", json!(0), None),
        ("echo out; echo err >&2; exit 7", "failed", json!(7), None),
        ("kill -9 $$", "failed", Value::Null, Some("killed by signal 9")),
    ];
    let mut ids = Vec::new();
    for (command, ..) in &cases {
        ids.push(
            submit(&primary, json!({ "command": command, "labels": ["exits"] })).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for ((_, status, code, error), id) in cases.iter().zip(&ids) {
        let job = wait_status(&primary, id, status, SECONDS).await;
        assert_eq!(&job["exit_code"], code, "{job}");
        if let Some(error) = error {
            assert!(job["error"].as_str().unwrap().contains(error), "{job}");
        }
    }
    let chunks = all_chunks(&primary, &ids[1]).await;
    assert_eq!(text_of(&chunks, "stdout"), "out\n");
    assert_eq!(text_of(&chunks, "stderr"), "err\n");
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group_even_children_ignoring_sigterm() {
    let primary = TestPrimary::spawn().await;
    let (_, _, _w) = worker(&primary, "slow", "slow", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let command = "sh -c 'trap \"\" TERM; echo $$ > child.pid; while true; do sleep 1; done' & \
                   echo $$ > parent.pid; trap '' TERM; wait";
    let job = submit(
        &primary,
        json!({ "command": command, "labels": ["slow"], "timeout_sec": 1, "working_dir": dir.path() }),
    )
    .await;
    let done = wait_status(&primary, job["id"].as_str().unwrap(), "timed_out", SECONDS).await;
    assert!(done["error"].as_str().unwrap().contains("timed out after 1s"), "{done}");
    let parent = std::fs::read_to_string(dir.path().join("parent.pid")).unwrap();
    let child = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
    eventually(SECONDS, "the process group gone", || async {
        (!alive(&parent) && !alive(&child)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn jobs_can_be_cancelled_running_or_queued_and_finished_ones_cannot() {
    let primary = TestPrimary::spawn().await;
    let (node, _, _w) = worker(&primary, "victim", "victim", 1).await;
    let running =
        submit(&primary, json!({ "command": "echo started; sleep 30", "labels": ["victim"] })).await;
    let running_id = running["id"].as_str().unwrap();
    wait_status(&primary, running_id, "running", SECONDS).await;
    // The node is full now: this one waits in the queue.
    let queued = submit(&primary, json!({ "command": "sleep 30", "node_id": node })).await;
    let queued_id = queued["id"].as_str().unwrap();

    let (status, cancelled) = primary.post(&format!("/api/jobs/{queued_id}/cancel"), Value::Null).await;
    assert_eq!(status, 202, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "a queued job is cancelled at once");

    let (status, _) = primary.post(&format!("/api/jobs/{running_id}/cancel"), Value::Null).await;
    assert_eq!(status, 202);
    let done = wait_status(&primary, running_id, "cancelled", SECONDS).await;
    assert_eq!(done["cancel_requested"], true);
    assert_eq!(text_of(&all_chunks(&primary, running_id).await, "stdout"), "started\n");

    let (status, body) = primary.post(&format!("/api/jobs/{running_id}/cancel"), Value::Null).await;
    assert_eq!(status, 409, "{body}");

    let (_, audit) = primary.get(&format!("/api/audit?target={running_id}")).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["job_cancelled", "job_submitted"]);
}

#[tokio::test]
async fn a_node_never_runs_more_than_node_max_jobs() {
    let primary = TestPrimary::spawn().await;
    let (node, _, _w) = worker(&primary, "single", "single", 1).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            submit(&primary, json!({ "command": "sleep 0.5", "labels": ["single"] })).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut max_active = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = primary.get(&format!("/api/jobs?node={node}")).await;
        let items = list["items"].as_array().unwrap();
        let active = items.iter().filter(|j| j["status"] == "running" || j["status"] == "dispatched").count();
        max_active = max_active.max(active);
        if items.iter().filter(|j| j["status"] == "succeeded").count() == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "all three done in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(max_active, 1);
}

/// Submits a job printing `line 1` … `line {n}`, `pause` seconds apart, on a node with
/// `label`; returns its ID once running, and the output it will have written.
async fn numbered_lines_running(primary: &TestPrimary, n: u32, pause: &str, label: &str) -> (String, String) {
    let command = format!("for i in $(seq 1 {n}); do echo line $i; sleep {pause}; done");
    let job = submit(primary, json!({ "command": command, "labels": [label] })).await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_status(primary, &id, "running", SECONDS).await;
    (id, (1..=n).map(|i| format!("line {i}\n")).collect())
}

/// Waits until the secondary `w` has run job `id` to its end (whether or not the primary
/// has heard of it yet).
async fn finished_on(w: &NodeProcess, id: &str) {
    eventually(SECONDS, "the job finished on the node", || async {
        w.log().lines().any(|l| l.contains("job finished") && l.contains(id)).then_some(())
    })
    .await;
}

/// A job's stored stdout, once at least `len` bytes of it have arrived.
async fn delivered_stdout(primary: &TestPrimary, id: &str, len: usize) -> String {
    eventually(SECONDS, "every chunk delivered", || async {
        let text = text_of(&all_chunks(primary, id).await, "stdout");
        (text.len() >= len).then_some(text)
    })
    .await
}

#[tokio::test]
async fn a_primary_restart_mid_job_loses_and_duplicates_nothing() {
    let mut primary = TestPrimary::spawn().await;
    let (_, _, _w) = worker(&primary, "steady", "steady", 1).await;
    let (id, expected) = numbered_lines_running(&primary, 40, "0.1", "steady").await;
    primary.stop().await;
    // The outage: a second and a half of the job's four seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    primary.restart().await;
    wait_status(&primary, &id, "succeeded", Duration::from_secs(30)).await;
    let stdout = delivered_stdout(&primary, &id, expected.len()).await;
    assert_eq!(stdout, expected);
}

#[tokio::test]
async fn output_spooled_while_the_primary_is_away_survives_a_secondary_restart() {
    let mut primary = TestPrimary::spawn().await;
    let (_, _, mut w) = worker(&primary, "spooler", "spooler", 1).await;
    let (id, expected) = numbered_lines_running(&primary, 20, "0.05", "spooler").await;
    // The job ends while the primary is away: its last chunks and its result are spooled.
    primary.stop().await;
    finished_on(&w, &id).await;
    // No goodbye: the spool on disk is all the node has when it comes back.
    w.kill();
    primary.restart().await;
    w.restart().await;
    wait_status(&primary, &id, "succeeded", Duration::from_secs(30)).await;
    let stdout = delivered_stdout(&primary, &id, expected.len()).await;
    assert_eq!(stdout, expected, "{}", w.log());
    assert!(w.log().contains("resuming delivery of spooled job output"), "{}", w.log());
}

#[tokio::test]
async fn a_corrupt_record_in_a_secondarys_spool_costs_only_its_own_output_after_a_restart() {
    let mut primary = TestPrimary::spawn().await;
    let (_, _, mut w) = worker(&primary, "scarred", "scarred", 1).await;
    let (id, expected) = numbered_lines_running(&primary, 30, "0.05", "scarred").await;
    primary.stop().await;
    finished_on(&w, &id).await;
    w.kill();
    primary.restart().await;

    // Damage one line spooled while the primary was away, with more spooled on both sides.
    let arrived = text_of(&stored_chunks(&primary, &id).await, "stdout");
    let arrived: Vec<&str> = arrived.split_inclusive('\n').collect();
    let waiting: Vec<&str> = expected.split_inclusive('\n').filter(|l| !arrived.contains(l)).collect();
    assert!(waiting.len() >= 5, "enough output waits in the spool: {waiting:?}");
    let target = waiting[waiting.len() / 2].as_bytes();
    let spool = w.data_dir.join("spool");
    let (segment, at) = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .find_map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(target.len()).position(|w| w == target).map(|at| (p, at))
        })
        .expect("the line in a spool segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    // The damaged record's output: the run of `line N` text around the line (its header ends
    // in `}`, the next record starts with a non-text marker).
    let is_text = |b: &u8| b"line 0123456789\n".contains(b);
    let start = bytes[..at].iter().rposition(|b| !is_text(b)).unwrap() + 1;
    let end = at + bytes[at..].iter().position(|b| !is_text(b)).unwrap_or(bytes.len() - at);
    let lost = String::from_utf8(bytes[start..end].to_vec()).unwrap();
    let lost: Vec<&str> = lost.split_inclusive('\n').collect();
    let last = expected.split_inclusive('\n').next_back().unwrap();
    assert!(!lost.contains(&waiting[0]) && !lost.contains(&last), "good records on both sides: {lost:?}");
    bytes[at + 5] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();

    w.restart().await;
    wait_status(&primary, &id, "succeeded", Duration::from_secs(30)).await;
    let survivors: String = expected.split_inclusive('\n').filter(|l| !lost.contains(l)).collect();
    let stdout = eventually(SECONDS, "every other line delivered", || async {
        let text = text_of(&stored_chunks(&primary, &id).await, "stdout");
        (text.len() >= survivors.len()).then_some(text)
    })
    .await;
    assert_eq!(stdout, survivors, "{}", w.log());
    assert!(w.log().contains("corrupt spool record"), "{}", w.log());
    assert_eq!(std::fs::read_dir(spool.join("corrupt")).map(Iterator::count).unwrap_or(0), 1);
}

#[tokio::test]
async fn a_killed_secondary_loses_its_job_and_a_late_report_changes_nothing() {
    let primary = TestPrimary::spawn().await;
    let (node, key, mut w) = worker(&primary, "doomed", "doomed", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let job = submit(
        &primary,
        json!({ "command": "echo $$ > job.pid; sleep 30", "labels": ["doomed"], "working_dir": dir.path() }),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let running = wait_status(&primary, &id, "running", SECONDS).await;
    w.kill();
    primary.wait_status(&node, "offline", SECONDS).await;
    primary.clock.advance(Duration::from_secs(10 * 60));
    let lost = wait_status(&primary, &id, "lost", SECONDS).await;
    assert!(lost["error"].as_str().unwrap().contains("stopped answering"));

    // The node comes back with news about that attempt: ignored.
    let report = json!({ "attempt": running["attempt"], "state": "succeeded", "exit_code": 0 });
    let (status, answer) = send(
        client(Some([127, 0, 0, 81]))
            .post(format!("{}/api/internal/jobs/{id}/status", primary.url))
            .header("X-Node-ID", &node)
            .header("X-Node-API-Key", &key)
            .json(&report),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], false);
    assert_eq!(fetch_job(&primary, &id).await["status"], "lost");

    // The crash left the job's processes running; the node's restart ends them, and its
    // own late word on that attempt changes nothing either.
    let pid = std::fs::read_to_string(dir.path().join("job.pid")).unwrap();
    assert!(alive(&pid), "an orphan outlives a SIGKILLed node");
    w.restart().await;
    eventually(SECONDS, "the orphan killed", || async { (!alive(&pid)).then_some(()) }).await;
    eventually(SECONDS, "the node's report on the old attempt delivered", || async {
        w.log().contains("ignored its report").then_some(())
    })
    .await;
    assert_eq!(fetch_job(&primary, &id).await["status"], "lost");
}

#[tokio::test]
async fn a_live_follower_joining_mid_job_sees_every_chunk_once_in_order() {
    let primary = TestPrimary::spawn().await;
    let (_, _, _w) = worker(&primary, "streamer", "streamer", 1).await;
    let job = submit(
        &primary,
        json!({ "command": "for i in $(seq 1 60); do echo tick $i; sleep 0.05; done", "labels": ["streamer"] }),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    // Join once some output is stored.
    eventually(SECONDS, "some output", || async {
        (fetch_job(&primary, &id).await["log_bytes"].as_u64() > Some(20)).then_some(())
    })
    .await;

    let ws_url = format!("{}/api/jobs/{id}/logs/ws", primary.url.replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url).unwrap();
    request.headers_mut().insert("Origin", primary.url.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut seqs = Vec::new();
    let mut text = String::new();
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(msg) = socket.next().await {
            let msg = msg.unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str().unwrap() {
                    "chunk" => {
                        seqs.push(v["seq"].as_u64().unwrap());
                        text.push_str(v["text"].as_str().unwrap());
                    }
                    "end" => return v,
                    other => panic!("unexpected {other}"),
                }
            }
        }
        panic!("closed without an end");
    })
    .await
    .unwrap();
    let _ = socket.close(None).await;
    assert_eq!(end["status"], "succeeded");
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "no gap, no duplicate");
    let expected: String = (1..=60).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(text, expected);

    // Reconnecting after the last seen seq replays only what came after.
    let half = seqs[seqs.len() / 2];
    let ws_url =
        format!("{}/api/jobs/{id}/logs/ws?after_seq={half}", primary.url.replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url).unwrap();
    request.headers_mut().insert("Origin", primary.url.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut first = None;
    while let Some(Ok(msg)) = socket.next().await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "chunk" && first.is_none() {
                first = v["seq"].as_u64();
            }
            if v["type"] == "end" {
                break;
            }
        }
    }
    assert_eq!(first, Some(half + 1));
    let _ = socket.send(tokio_tungstenite::tungstenite::Message::Close(None)).await;
}

#[tokio::test]
async fn bad_job_requests_and_reports_are_refused_and_change_nothing() {
    let primary = TestPrimary::spawn().await;
    let (node, key, _w) = worker(&primary, "judge", "judge", 2).await;
    let offline = primary.add_node("sleeper", "http://127.0.0.1:9").await;
    let offline_id = offline["node"]["id"].as_str().unwrap();

    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "command": "  " }), 400, "command"),
        (json!({ "command": "x".repeat(70_000) }), 413, "command"),
        (json!({ "command": "true", "timeout_sec": 0 }), 400, "timeout_sec"),
        (json!({ "command": "true", "timeout_sec": 100_000_000 }), 400, "timeout_sec"),
        (json!({ "command": "true", "node_id": "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f" }), 422, "node_id"),
        (json!({ "command": "true", "node_id": offline_id }), 409, "sleeper"),
        (json!({ "command": "true", "labels": ["unicorn"] }), 422, "unicorn"),
        (json!({ "command": "true", "node_id": node, "labels": ["judge"] }), 400, "not both"),
        (json!({ "command": "true", "priority": 1 }), 400, "priority"),
        (json!({ "command": "true", "env": { "1BAD": "x" } }), 400, "env"),
        // A bad name that happens to contain "variables" is still a bad name, not a size.
        (json!({ "command": "true", "env": { "my-variables": "x" } }), 400, "my-variables"),
        (json!({ "command": "true", "working_dir": "relative/dir" }), 400, "working_dir"),
    ];
    for (body, status, mentions) in cases {
        let (s, b) = primary.post("/api/jobs", body.clone()).await;
        assert_eq!(s, status, "{body}: {b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(mentions), "{body}: {b}");
    }
    let (_, list) = primary.get("/api/jobs").await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing was queued");
    assert_eq!(primary.get("/api/jobs/0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f").await.0, 404);
    assert_eq!(primary.get("/api/jobs?status=sleeping").await.0, 400);

    // A job the worker runs, and one the primary runs.
    let job = submit(&primary, json!({ "command": "echo hi", "labels": ["judge"] })).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let done = wait_status(&primary, &id, "succeeded", SECONDS).await;
    let attempt = done["attempt"].as_u64().unwrap();
    let mine = submit(&primary, json!({ "command": "true", "node_id": primary.primary_id() })).await;
    let mine_id = mine["id"].as_str().unwrap().to_owned();
    wait_status(&primary, &mine_id, "succeeded", SECONDS).await;

    let as_node = |path: String, body: Option<Value>, raw: Option<Vec<u8>>, who: (&str, &str)| {
        let mut req = client(Some([127, 0, 0, 91]))
            .post(format!("{}{path}", primary.url))
            .header("X-Node-ID", who.0)
            .header("X-Node-API-Key", who.1);
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some(raw) = raw {
            req = req.header("Content-Type", "application/octet-stream").body(raw);
        }
        send(req)
    };
    let me = (node.as_str(), key.as_str());
    // A chunk repeated: stored once.
    let chunk_path = format!("/api/internal/jobs/{id}/logs?attempt={attempt}&seq=0&stream=stdout");
    let (s, b) = as_node(chunk_path.clone(), None, Some(b"hi\n".to_vec()), me).await;
    assert_eq!((s, &b["stored"]), (200, &json!(false)), "{b}");
    assert_eq!(all_chunks(&primary, &id).await.len(), 1);
    // A status regression: ignored.
    let (s, b) = as_node(
        format!("/api/internal/jobs/{id}/status"),
        Some(json!({ "attempt": attempt, "state": "running" })),
        None,
        me,
    )
    .await;
    assert_eq!((s, &b["applied"]), (200, &json!(false)), "{b}");
    // An attempt that is over.
    let (s, _) = as_node(
        format!("/api/internal/jobs/{id}/status"),
        Some(json!({ "attempt": attempt + 5, "state": "failed" })),
        None,
        me,
    )
    .await;
    assert_eq!(s, 409);
    // Another node's job.
    let (s, _) = as_node(
        format!("/api/internal/jobs/{mine_id}/status"),
        Some(json!({ "attempt": 1, "state": "failed" })),
        None,
        me,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = as_node(
        format!("/api/internal/jobs/{mine_id}/logs?attempt=1&seq=9&stream=stdout"),
        None,
        Some(b"x".to_vec()),
        me,
    )
    .await;
    assert_eq!(s, 403);
    // A job it was never given.
    let (s, _) = as_node(
        "/api/internal/jobs/0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f/status".into(),
        Some(json!({ "attempt": 1, "state": "failed" })),
        None,
        me,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = as_node(
        format!("/api/internal/jobs/{id}/logs?attempt={attempt}&seq=1&stream=stdin"),
        None,
        Some(b"x".to_vec()),
        me,
    )
    .await;
    assert_eq!(s, 400);

    let after = fetch_job(&primary, &id).await;
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["log_bytes"], 3);
}

#[tokio::test]
async fn what_a_job_leaves_running_in_the_background_ends_with_it() {
    let primary = TestPrimary::spawn().await;
    let (_, _, _w) = worker(&primary, "tidy", "tidy", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let job = submit(
        &primary,
        json!({ "command": "sleep 30 & echo $! > bg.pid; echo spawned", "labels": ["tidy"], "working_dir": dir.path() }),
    )
    .await;
    wait_status(&primary, job["id"].as_str().unwrap(), "succeeded", SECONDS).await;
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
    eventually(SECONDS, "the background process gone", || async { (!alive(&pid)).then_some(()) }).await;
}

#[tokio::test]
async fn a_node_with_node_max_jobs_zero_takes_no_jobs() {
    let primary = TestPrimary::spawn_with(&[("NODE_MAX_JOBS", "0")]).await;
    let job = submit(&primary, json!({ "command": "true", "node_id": primary.primary_id() })).await;
    let id = job["id"].as_str().unwrap();
    let waiting = eventually(SECONDS, "the reason", || async {
        let job = fetch_job(&primary, id).await;
        job["queue_reason"].as_str().is_some_and(|r| r.contains("takes no jobs")).then_some(job)
    })
    .await;
    assert_eq!(waiting["status"], "queued");
}

#[tokio::test]
async fn a_job_queued_for_a_node_that_is_removed_is_cancelled_saying_so() {
    let primary = TestPrimary::spawn().await;
    let (node, _, worker) = worker(&primary, "doomed", "doomed", 1).await;
    let busy = submit(&primary, json!({ "command": "sleep 30", "node_id": node })).await;
    wait_status(&primary, busy["id"].as_str().unwrap(), "running", SECONDS).await;
    // The node is full: this one waits for it.
    let waiting = submit(&primary, json!({ "command": "true", "node_id": node })).await;
    let id = waiting["id"].as_str().unwrap();
    drop(worker);
    assert_eq!(primary.delete(&format!("/api/nodes/{node}")).await.0, 204);
    let job = wait_status(&primary, id, "cancelled", SECONDS).await;
    assert_eq!(job["error"], "its node was removed before it ran", "{job}");
}

#[tokio::test]
async fn every_one_of_many_quick_jobs_reports_its_end() {
    let primary = TestPrimary::spawn().await;
    let (node, _, _w) = worker(&primary, "busy", "busy", 16).await;
    for _ in 0..150 {
        submit(&primary, json!({ "command": "true", "labels": ["busy"] })).await;
    }
    eventually(Duration::from_secs(90), "150 jobs succeeded", || async {
        let (_, list) = primary.get(&format!("/api/jobs?node={node}&status=succeeded&limit=1000")).await;
        (list["items"].as_array().unwrap().len() == 150).then_some(())
    })
    .await;
}
