//! Several primaries on one PostgreSQL, as real processes on loopback (SPEC §12): one
//! leader agreed by all, caches and live output that follow each other, jobs run once
//! across a kill -9 of the leader, a paused leader that acts on nothing when it wakes, a
//! lost database connection, and the refusals (a second primary on SQLite, another master
//! key). The PostgreSQL-only tests return at once on the SQLite run; the PostgreSQL run
//! (`TEST_DATABASE_URL`) is where they work, and CI runs both.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::helpers::{
    NodeProcess, SECONDS, TestDb, TestPrimary, client, eventually, heartbeat_from, parse_env, send,
};
use crate::metrics;

/// A throw-away PostgreSQL database, or `None` on the SQLite run: several primaries need
/// PostgreSQL, and the PostgreSQL run (CI runs both) covers what uses this.
fn postgres() -> Option<(tempfile::TempDir, TestDb)> {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path());
    db.is_postgres().then_some((dir, db))
}

/// Starts a primary process with `vars` that must refuse to start; returns what it said.
fn refused_start(dir: &std::path::Path, vars: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .env_clear()
        .env("ENV_FILE", dir.join("no.env"))
        .env("DATA_DIR", dir)
        .env("SERVER_ADDRESS", "127.0.0.1:0")
        .env("LOG_JSON", "false")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout)
}

/// The key every primary of a test shares.
fn master_key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// A primary process on `db`.
async fn primary(db: &TestDb, name: &str, extra: &[(&str, &str)]) -> NodeProcess {
    let mut vars: Vec<(String, String)> = [
        ("NODE_IS_PRIMARY", "true"),
        ("NODE_NAME", name),
        ("DATABASE_URL", db.url.as_str()),
        ("HEALTH_CHECK_INTERVAL", "500ms"),
        ("HEALTH_CHECK_TIMEOUT", "500ms"),
        ("JOB_LOST_AFTER", "3s"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if !extra.iter().any(|(k, _)| *k == "FLEETDECK_MASTER_KEY") {
        vars.push(("FLEETDECK_MASTER_KEY".into(), master_key(7)));
    }
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    NodeProcess::spawn(&vars).await
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    send(client(None).get(format!("{url}{path}"))).await
}

async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    send(client(None).post(format!("{url}{path}")).json(&body)).await
}

/// The leader's ID once every primary in `urls` names the same one.
async fn agreed_leader(urls: &[&str]) -> String {
    eventually(SECONDS, "every primary to name one leader", || async {
        let mut leaders = Vec::new();
        for url in urls {
            let (status, view) = get(url, "/api/cluster").await;
            leaders.push((status == 200).then(|| view["leader"]["id"].as_str().map(str::to_owned)).flatten());
        }
        let first = leaders[0].clone()?;
        leaders.iter().all(|l| l.as_deref() == Some(first.as_str())).then_some(first)
    })
    .await
}

async fn role(url: &str) -> String {
    get(url, "/api/ready").await.1["role"].as_str().unwrap_or_default().to_owned()
}

/// A secondary added through `via`, reporting to `report_to`.
async fn secondary(via: &str, name: &str, report_to: &str, labels: &[&str]) -> (NodeProcess, String) {
    let (status, issued) = post(
        via,
        "/api/nodes",
        json!({ "name": name, "api_endpoint": "http://127.0.0.1:9", "labels": labels }),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let id = issued["node"]["id"].as_str().unwrap().to_owned();
    let mut vars = parse_env(issued["env"].as_str().unwrap());
    vars.retain(|(k, _)| !["SERVER_ADDRESS", "NODE_API_ENDPOINT", "PRIMARY_NODE_URL"].contains(&k.as_str()));
    vars.push(("PRIMARY_NODE_URL".into(), report_to.to_owned()));
    vars.push(("NODE_MAX_JOBS".into(), "4".into()));
    let process = NodeProcess::spawn(&vars).await;
    // Its real address, through the primary it was added on.
    let (status, _) =
        send(client(None).put(format!("{via}/api/nodes/{id}")).json(&json!({ "api_endpoint": process.url })))
            .await;
    assert_eq!(status, 200);
    (process, id)
}

async fn wait_node(url: &str, id: &str, status: &str) {
    eventually(SECONDS, &format!("node {id} to be {status} on {url}"), || async {
        (get(url, &format!("/api/nodes/{id}")).await.1["status"] == status).then_some(())
    })
    .await;
}

async fn wait_job(url: &str, id: &str) -> Value {
    eventually(SECONDS, &format!("job {id} to finish"), || async {
        let job = get(url, &format!("/api/jobs/{id}")).await.1;
        matches!(job["status"].as_str(), Some("succeeded" | "failed" | "timed_out" | "cancelled" | "lost"))
            .then_some(job)
    })
    .await
}

/// Submits `n` jobs through `url` that each append a token of their own to `tally` on
/// node `node`; returns (job ID, token) pairs.
async fn tally_jobs(url: &str, node: &str, tally: &std::path::Path, n: usize) -> Vec<(String, String)> {
    let mut jobs = Vec::new();
    for _ in 0..n {
        let token = uuid::Uuid::new_v4().to_string();
        let command = format!("echo {token} >> {}", tally.display());
        let (status, job) = post(url, "/api/jobs", json!({ "command": command, "node_id": node })).await;
        assert_eq!(status, 201, "{job}");
        jobs.push((job["id"].as_str().unwrap().to_owned(), token));
    }
    jobs
}

/// Every job succeeded and ran exactly once (its token is in `tally` once).
async fn ran_once_each(url: &str, jobs: &[(String, String)], tally: &std::path::Path) {
    for (id, _) in jobs {
        let job = wait_job(url, id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let lines = std::fs::read_to_string(tally).unwrap_or_default();
    for (id, token) in jobs {
        assert_eq!(lines.lines().filter(|l| l == token).count(), 1, "job {id} ran once:\n{lines}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_primaries_share_the_fleet_and_the_follower_takes_over_a_killed_leader() {
    let Some((dir, db)) = postgres() else { return };
    // Two primaries started at the same instant: one leader, agreed by both.
    let (a, b) = tokio::join!(primary(&db, "alpha", &[]), primary(&db, "bravo", &[]));
    let mut primaries = [a, b];
    let leader_id = agreed_leader(&[primaries[0].url.as_str(), primaries[1].url.as_str()]).await;
    let (view_status, view) = get(&primaries[0].url, "/api/cluster").await;
    assert_eq!(view_status, 200);
    assert_eq!(view["primaries"].as_array().unwrap().len(), 2, "{view}");
    assert_eq!(view["primaries"].as_array().unwrap().iter().filter(|p| p["leader"] == true).count(), 1);
    let leading = usize::from(primaries[0].node_info().await["id"] != leader_id.as_str());
    let (leader_url, follower_url) = (primaries[leading].url.clone(), primaries[1 - leading].url.clone());
    assert_eq!(role(&leader_url).await, "leader");
    assert_eq!(role(&follower_url).await, "follower");

    // A node added on one primary authenticates on the other at once; removed on one, it
    // is refused on the other within a second.
    let (status, issued) =
        post(&leader_url, "/api/nodes", json!({ "name": "ghost", "api_endpoint": "http://127.0.0.1:9" }))
            .await;
    assert_eq!(status, 201);
    let (ghost, ghost_key) = (issued["node"]["id"].as_str().unwrap(), issued["api_key"].as_str().unwrap());
    let http = client(None);
    eventually(Duration::from_secs(1), "the follower to know the new node", || async {
        (heartbeat_from(&http, &follower_url, ghost, ghost, ghost_key).await.0 == 200).then_some(())
    })
    .await;
    let (status, _) = send(http.delete(format!("{leader_url}/api/nodes/{ghost}"))).await;
    assert_eq!(status, 204);
    let removed = Instant::now();
    eventually(Duration::from_secs(1), "the follower to refuse the removed node", || async {
        (heartbeat_from(&http, &follower_url, ghost, ghost, ghost_key).await.0 == 401).then_some(())
    })
    .await;
    assert!(removed.elapsed() < Duration::from_secs(1));

    // Secondaries: one heartbeating to the leader (with the follower as its second), one
    // to the follower; both online on both.
    let both = format!("{leader_url},{follower_url}");
    let (_worker, worker_id) = secondary(&follower_url, "worker", &both, &["work"]).await;
    let (mut spare, spare_id) = secondary(&leader_url, "spare", &follower_url, &["spare"]).await;
    for url in [&leader_url, &follower_url] {
        wait_node(url, &worker_id, "online").await;
        wait_node(url, &spare_id, "online").await;
    }

    // Jobs submitted on the follower run once each, routed by the leader.
    let tally = dir.path().join("tally");
    let ids = tally_jobs(&follower_url, &worker_id, &tally, 12).await;
    ran_once_each(&follower_url, &ids, &tally).await;

    // Each primary's /metrics shows the same fleet (both primaries and both secondaries
    // online, the 12 jobs done) and says whether it leads.
    for (url, leads) in [(&leader_url, 1.0), (&follower_url, 0.0)] {
        let text = eventually(SECONDS, "the fleet in both primaries' metrics", || async {
            let text = metrics::scrape(url, None).await.1;
            (metrics::sample(&text, r#"fleetdeck_nodes{status="online"}"#) == Some(4.0)
                && metrics::sample(&text, r#"fleetdeck_jobs{state="succeeded"}"#) == Some(12.0))
            .then_some(text)
        })
        .await;
        assert_eq!(metrics::sample(&text, "fleetdeck_leader"), Some(leads), "{url}");
    }

    // A browser following a job on the follower sees the output its node sends the leader.
    let command = "for i in $(seq 1 30); do echo line $i; sleep 0.05; done";
    let (_, job) =
        post(&follower_url, "/api/jobs", json!({ "command": command, "node_id": worker_id })).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let ws_url = format!("{}/api/jobs/{job_id}/logs/ws", follower_url.replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url).unwrap();
    request.headers_mut().insert("Origin", follower_url.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (mut seqs, mut text) = (Vec::new(), String::new());
    tokio::time::timeout(SECONDS, async {
        while let Some(Ok(msg)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("chunk") => {
                        seqs.push(v["seq"].as_u64().unwrap());
                        text.push_str(v["text"].as_str().unwrap());
                    }
                    Some("end") => return,
                    _ => {}
                }
            }
        }
    })
    .await
    .expect("the follow ends with the job");
    let expected: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text, expected, "every line once, in order");
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());

    // kill -9 the leader while it routes a batch: the follower leads within 10 s and
    // carries on.
    let tally_mid = dir.path().join("tally-mid");
    let in_flight = tally_jobs(&follower_url, &worker_id, &tally_mid, 8).await;
    let killed = Instant::now();
    primaries[leading].kill();
    eventually(Duration::from_secs(10), "the follower to lead", || async {
        (role(&follower_url).await == "leader").then_some(())
    })
    .await;
    let failover = killed.elapsed();
    assert!(failover < Duration::from_secs(10), "failover took {failover:?}");
    let text = metrics::scrape(&follower_url, None).await.1;
    assert_eq!(metrics::sample(&text, "fleetdeck_leader"), Some(1.0));
    // What the dead leader was routing ends, none run twice: those it had handed over run,
    // one it had marked but not handed over fails by reconciliation, the rest are routed now.
    let finished = eventually(Duration::from_secs(45), "the batch in flight to finish", || async {
        let mut finished = Vec::new();
        for (id, token) in &in_flight {
            let job = get(&follower_url, &format!("/api/jobs/{id}")).await.1;
            match job["status"].as_str() {
                Some("succeeded" | "failed" | "lost") => finished.push((job, token.clone())),
                _ => return None,
            }
        }
        Some(finished)
    })
    .await;
    let lines = std::fs::read_to_string(&tally_mid).unwrap_or_default();
    for (job, token) in finished {
        let runs = lines.lines().filter(|l| *l == token).count();
        let expected = usize::from(job["status"] == "succeeded");
        assert_eq!(runs, expected, "{job}");
    }
    // Its checker runs: a secondary killed now goes offline.
    spare.kill();
    wait_node(&follower_url, &spare_id, "offline").await;
    // The worker, which used the dead primary, goes on through the one left: new jobs run
    // there once each.
    wait_node(&follower_url, &worker_id, "online").await;
    let tally2 = dir.path().join("tally2");
    let jobs = tally_jobs(&follower_url, &worker_id, &tally2, 6).await;
    ran_once_each(&follower_url, &jobs, &tally2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_acts_on_nothing_when_it_resumes() {
    let Some((dir, db)) = postgres() else { return };
    // Its debug lines say when it dispatches a job or stores a sweep.
    let first = primary(&db, "alpha", &[("RUST_LOG", "info,fleetdeck=debug")]).await;
    agreed_leader(&[first.url.as_str()]).await;
    let second = primary(&db, "bravo", &[]).await;
    agreed_leader(&[first.url.as_str(), second.url.as_str()]).await;
    assert_eq!(role(&first.url).await, "leader");
    let both = format!("{},{}", first.url, second.url);
    let (_worker, worker_id) = secondary(&second.url, "worker", &both, &[]).await;
    wait_node(&second.url, &worker_id, "online").await;

    // Frozen: its session (and its lock) stay open, so the follower waits out the lease.
    first.pause();
    let paused = Instant::now();
    eventually(Duration::from_secs(20), "the follower to take over", || async {
        (role(&second.url).await == "leader").then_some(())
    })
    .await;
    assert!(paused.elapsed() >= Duration::from_secs(8), "taken over before the lease could expire");
    let tally = dir.path().join("tally");
    let jobs = tally_jobs(&second.url, &worker_id, &tally, 6).await;
    ran_once_each(&second.url, &jobs, &tally).await;

    // Awake again with stale beliefs: it writes nothing as leader and knows it follows.
    let log_before = first.log().len();
    first.resume();
    eventually(SECONDS, "the resumed primary to follow", || async {
        (role(&first.url).await == "follower").then_some(())
    })
    .await;
    let more = tally_jobs(&first.url, &worker_id, &tally, 6).await;
    ran_once_each(&second.url, &more, &tally).await;
    let since_resume = &first.log()[log_before..];
    for leader_only in ["job dispatched", "health sweep done", "jobs lost", "this primary leads now"] {
        assert!(!since_resume.contains(leader_only), "{leader_only:?} after resuming:\n{since_resume}");
    }
    assert_eq!(role(&second.url).await, "leader");

    // A running primary cannot be removed; once stopped (taken out of service) it can.
    let first_id = first.node_info().await["id"].as_str().unwrap().to_owned();
    let remove = || send(client(None).delete(format!("{}/api/nodes/{first_id}", second.url)));
    let (status, body) = remove().await;
    assert_eq!(status, 409, "{body}");
    let mut first = first;
    first.terminate();
    let (status, body) = remove().await;
    assert_eq!(status, 204, "{body}");
    let view = get(&second.url, "/api/cluster").await.1;
    assert_eq!(view["primaries"].as_array().unwrap().len(), 1, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_lapsed_term_changes_nothing() {
    // The fencing rule itself, on both backends: a leader whose term another primary took
    // over (a pause, a cut) can prepare writes, but none of them lands.
    let primary = TestPrimary::spawn().await;
    let state = primary.app().state();
    let registry = state.registry().unwrap().clone();
    let fence = registry.fence().expect("a lone primary leads");
    let (_, issued) =
        primary.post("/api/nodes", json!({ "name": "n1", "api_endpoint": "http://127.0.0.1:9" })).await;
    let id = fleetdeck::nodes::NodeId::parse(issued["node"]["id"].as_str().unwrap()).unwrap();

    // Another primary takes the lease (as after an expiry), one epoch on.
    let url = fleetdeck::db::DatabaseUrl::parse(&primary_database_url(&primary)).unwrap();
    let mut conn = fleetdeck::db::connect_once(&url).unwrap();
    {
        use fleetdeck::db::schema::leader_lease::dsl::*;
        diesel::update(leader_lease)
            .set((holder.eq("someone-else"), epoch.eq(fence.epoch + 1), expires_at.eq(i64::MAX)))
            .execute(&mut conn)
            .unwrap();
    }
    // A probe result written on the old term: refused, nothing stored.
    let node = registry.cached(&id).unwrap();
    let before = primary.node(id.as_str()).await;
    let record = fleetdeck::nodes::repo::ProbeRecord {
        id: id.clone(),
        expected_failures: node.health.failures,
        health: node.health.after_failure(),
        at: registry.now(),
        error: Some("stale".into()),
        stats: None,
    };
    let stored = registry.store_probes(vec![(node, record)], fence.clone()).await;
    assert!(matches!(stored, Err(fleetdeck::error::AppError::NotLeader(_))), "{stored:?}");
    assert_eq!(primary.node(id.as_str()).await, before, "nothing written");
    // So is every other leader-only write.
    let jobs = state.jobs().unwrap();
    assert!(matches!(jobs.prune().await, Err(fleetdeck::error::AppError::NotLeader(_))));
}

/// The database a test primary runs on.
fn primary_database_url(primary: &TestPrimary) -> String {
    primary.var("DATABASE_URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_primary_on_one_sqlite_file_refuses_to_start() {
    let first = TestPrimary::spawn().await;
    let url = primary_database_url(&first);
    if !url.starts_with("sqlite://") {
        return; // The PostgreSQL run: several primaries are allowed there.
    }
    let dir = tempfile::tempdir().unwrap();
    let log = refused_start(dir.path(), &[("DATABASE_URL", &url)]);
    assert!(log.contains("SQLite") && log.contains("PostgreSQL"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_with_another_master_key_refuses_to_start() {
    // (On SQLite the first primary holds the file; `restart` covers a changed key.)
    let Some((dir, db)) = postgres() else { return };
    let _first = primary(&db, "alpha", &[]).await;
    let other = master_key(9);
    let vars = [("DATABASE_URL", db.url.as_str()), ("NODE_NAME", "bravo"), ("FLEETDECK_MASTER_KEY", &other)];
    let log = refused_start(dir.path(), &vars);
    assert!(log.contains("FLEETDECK_MASTER_KEY"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_loses_its_database_stops_leading_and_recovers_by_itself() {
    let Some((_dir, db)) = postgres() else { return };
    let p = primary(&db, "alpha", &[]).await;
    agreed_leader(&[p.url.as_str()]).await;
    let (admin, name) = db.postgres().unwrap();
    let mut conn = diesel::PgConnection::establish(admin).unwrap();
    let cut = |conn: &mut diesel::PgConnection, allow: bool| {
        conn.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}")).unwrap();
        if !allow {
            conn.batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .unwrap();
        }
    };
    cut(&mut conn, false);
    // What needs the database answers 503; leadership lapses.
    eventually(SECONDS, "the primary to answer 503", || async {
        (get(&p.url, "/api/nodes").await.0 == 503).then_some(())
    })
    .await;
    eventually(SECONDS, "the primary to stop leading", || async {
        (get(&p.url, "/api/ready").await.0 == 503).then_some(())
    })
    .await;
    cut(&mut conn, true);
    eventually(SECONDS, "the primary to lead again", || async {
        (role(&p.url).await == "leader").then_some(())
    })
    .await;
    let (status, _) = get(&p.url, "/api/nodes").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_primaries_send_each_alert_once_and_a_new_leader_goes_on_where_the_last_stopped() {
    let Some((_dir, db)) = postgres() else { return };
    let (a, b) = tokio::join!(primary(&db, "alpha", &[]), primary(&db, "bravo", &[]));
    let mut primaries = [a, b];
    let leader_id = agreed_leader(&[primaries[0].url.as_str(), primaries[1].url.as_str()]).await;
    let leading = usize::from(primaries[0].node_info().await["id"] != leader_id.as_str());
    let (leader_url, follower_url) = (primaries[leading].url.clone(), primaries[1 - leading].url.clone());

    // Set up on the follower; the leader sends.
    let receiver = crate::stand_ins::Receiver::start();
    let channel = json!({ "name": "hook", "kind": "webhook", "url": format!("{}/webhook", receiver.url) });
    let (status, channel) = post(&follower_url, "/api/alerts/channels", channel).await;
    assert_eq!(status, 201, "{channel}");
    for (name, event) in [("down", "node_offline"), ("back", "node_online")] {
        let rule = json!({ "name": name, "event": event, "channels": [channel["id"]] });
        assert_eq!(post(&follower_url, "/api/alerts/rules", rule).await.0, 201);
    }
    let about = |name: &'static str| {
        let receiver = &receiver;
        move || {
            receiver
                .at("/webhook")
                .into_iter()
                .map(|r| r.json())
                .filter(|m| m["node"]["name"] == name)
                .collect::<Vec<Value>>()
        }
    };
    let worker_messages = about("worker");
    let both = format!("{leader_url},{follower_url}");
    let (mut worker, worker_id) = secondary(&follower_url, "worker", &both, &[]).await;
    wait_node(&leader_url, &worker_id, "online").await;

    worker.kill();
    wait_node(&follower_url, &worker_id, "offline").await;
    eventually(SECONDS, "the down message", || async { (worker_messages().len() == 1).then_some(()) }).await;

    // The leader dies mid-outage: the next one neither repeats the down message nor
    // forgets the outage.
    primaries[leading].kill();
    eventually(Duration::from_secs(20), "the follower to lead", || async {
        (role(&follower_url).await == "leader").then_some(())
    })
    .await;
    worker.restart().await;
    wait_node(&follower_url, &worker_id, "online").await;
    eventually(SECONDS, "the back message", || async { (worker_messages().len() == 2).then_some(()) }).await;
    // The dead primary is announced too, once.
    let dead = if leading == 0 { "alpha" } else { "bravo" };
    eventually(SECONDS, "the dead primary's down message", || async {
        (about(dead)().len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let messages = worker_messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(
        (messages[0]["event"].as_str(), messages[1]["event"].as_str()),
        (Some("node_offline"), Some("node_online"))
    );
    assert_eq!(about(dead)().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_reaches_an_outbound_node_through_the_primary_that_holds_its_socket() {
    let Some((_dir, db)) = postgres() else { return };
    let a = primary(&db, "alpha", &[]).await;
    let leader = agreed_leader(&[&a.url]).await;
    let b = primary(&db, "bravo", &[]).await;
    assert_eq!(agreed_leader(&[&a.url, &b.url]).await, leader, "the first primary keeps the lead");

    // An outbound node, added on the leader, whose socket goes to the other primary only.
    let (status, issued) =
        post(&a.url, "/api/nodes", json!({ "name": "far-away", "api_endpoint": "http://127.0.0.1:1" })).await;
    assert_eq!(status, 201, "{issued}");
    let id = issued["node"]["id"].as_str().unwrap().to_owned();
    let mut vars = parse_env(issued["env"].as_str().unwrap());
    vars.retain(|(k, _)| k != "PRIMARY_NODE_URL");
    vars.push(("PRIMARY_NODE_URL".into(), b.url.clone()));
    let _node = NodeProcess::spawn_outbound(&vars).await;
    wait_node(&a.url, &id, "online").await;

    // The leader's probe and "check now" go through the other primary's relay, once the
    // leader has heard (from the other primary, through the change log) who holds the socket.
    eventually(SECONDS, "a check through the relay", || async {
        let (status, checked) = post(&a.url, &format!("/api/nodes/{id}/check"), Value::Null).await;
        (status == 200 && checked["error"].is_null()).then_some(())
    })
    .await;
    eventually(SECONDS, "the node known as outbound on the leader", || async {
        (get(&a.url, &format!("/api/nodes/{id}")).await.1["connect"] == "outbound").then_some(())
    })
    .await;

    // So does a job the leader dispatches, and its output arrives.
    let (status, job) = post(&a.url, "/api/jobs", json!({ "command": "echo relayed", "node_id": id })).await;
    assert_eq!(status, 201, "{job}");
    let done = wait_job(&a.url, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let response =
        client(None).get(format!("{}/api/jobs/{}/logs/raw", a.url, job["id"].as_str().unwrap())).send().await;
    assert_eq!(response.unwrap().text().await.unwrap(), "relayed\n");
}
