//! Routed jobs, timed (docs/BENCHMARKS.md): `cargo bench -p fleetdeck --bench jobs`.
//!
//! A primary and four secondaries run in this process on loopback (SQLite, release build).
//! 1. Dispatch overhead: one trivial job at a time, from the submit request to the `running`
//!    event on the primary's event hub — p50 and p99 (targets: under 10 ms and 50 ms).
//! 2. Sustained routing: thousands of trivial jobs submitted by 32 concurrent clients, until
//!    all have succeeded — jobs per second (target: at least 500/s).
//! 3. Log throughput: one job writing 256 MB as fast as it can on a secondary, until every
//!    byte is stored on the primary — MB/s, checked byte for byte (target: 50 MB/s).
//!
//! `cargo bench -p fleetdeck --bench jobs -- sustained` runs only the parts named
//! (`dispatch`, `sustained`, `logs`), e.g. to profile one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fleetdeck::events::Event;
use fleetdeck::{App, Config};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const SECONDARIES: usize = 4;
const LATENCY_JOBS: usize = 300;
const SUSTAINED_JOBS: usize = 4000;
const CLIENTS: usize = 32;
const LOG_BYTES: u64 = 256 * 1024 * 1024;

fn secondary_config(data_dir: &std::path::Path, added: &Value, port: u16) -> Config {
    let mut env: HashMap<String, String> = added["env"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.insert("DATA_DIR".into(), data_dir.display().to_string());
    env.insert("SERVER_ADDRESS".into(), format!("127.0.0.1:{port}"));
    env.insert("NODE_LABELS".into(), "bench".into());
    env.insert("NODE_MAX_JOBS".into(), "64".into());
    env.insert("HEARTBEAT_INTERVAL".into(), "1s".into());
    Config::from_lookup(|name| env.get(name).cloned()).expect("secondary configuration is valid")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// Whether the command line asks for this part (no names: every part).
fn wanted(part: &str) -> bool {
    let names: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    names.is_empty() || names.iter().any(|n| n == part)
}

#[tokio::main]
async fn main() {
    let log_lines = common::install_production_logging();
    println!("jobs benchmark on {}", common::machine());
    let dir = tempfile::tempdir().unwrap();
    let primary =
        App::build(common::primary_config(&dir.path().join("primary"), &[("NODE_API_ENDPOINT", "")]))
            .await
            .unwrap();
    let url = primary.url().unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();

    let mut secondaries = Vec::new();
    for i in 0..SECONDARIES {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let added: Value = http
            .post(format!("{url}/api/nodes"))
            .json(
                &json!({ "name": format!("worker-{i}"), "api_endpoint": format!("http://127.0.0.1:{port}") }),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let config = secondary_config(&dir.path().join(format!("worker-{i}")), &added, port);
        secondaries.push(App::build(config).await.unwrap());
    }
    // Wait until every worker is online with its labels and capacity.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes: Value =
            http.get(format!("{url}/api/nodes?label=bench")).send().await.unwrap().json().await.unwrap();
        let ready = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] == "online" && n["max_jobs"] == 64)
            .count();
        if ready == SECONDARIES {
            break;
        }
        assert!(Instant::now() < deadline, "workers did not come online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let bench = Bench { http: http.clone(), url: url.clone(), primary: &primary };
    let mut rows = Vec::new();
    if wanted("dispatch") {
        rows.extend(bench.dispatch_overhead().await);
    }
    if wanted("sustained") {
        rows.push(bench.sustained_routing().await);
    }
    if wanted("logs") {
        rows.extend(bench.log_throughput().await);
    }
    println!();
    println!("| measure | result | target | verdict |");
    println!("|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!("(log lines written during the run: {})", log_lines.load(std::sync::atomic::Ordering::Relaxed));

    for s in secondaries {
        s.stop().await;
    }
    primary.stop().await;
}

struct Bench<'a> {
    http: reqwest::Client,
    url: String,
    primary: &'a App,
}

impl Bench<'_> {
    async fn submit(&self, command: String) -> String {
        submit(&self.http, &self.url, command).await
    }

    /// Submit to `running`, one job at a time.
    async fn dispatch_overhead(&self) -> Vec<String> {
        let mut events = self.primary.state().events.subscribe();
        let mut latencies = Vec::with_capacity(LATENCY_JOBS);
        for _ in 0..LATENCY_JOBS {
            let started = Instant::now();
            let id = self.submit("true".into()).await;
            loop {
                match events.recv().await {
                    Ok(Event::JobUpdated { job_id, status })
                        if job_id == id && status == fleetdeck::jobs::JobState::Running =>
                    {
                        break;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("events closed: {e}"),
                }
            }
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        vec![
            format!(
                "| dispatch overhead p50 ({LATENCY_JOBS} jobs, submit to running) | {:.2} ms | < 10 ms | {} |",
                ms(p50),
                verdict(p50 < Duration::from_millis(10))
            ),
            format!(
                "| dispatch overhead p99 | {:.2} ms | < 50 ms | {} |",
                ms(p99),
                verdict(p99 < Duration::from_millis(50))
            ),
        ]
    }

    /// Many clients submitting at once, until every job has succeeded.
    async fn sustained_routing(&self) -> String {
        let fleetdeck::api::state::Role::Primary(parts) = &self.primary.state().role else {
            unreachable!("the benchmark runs a primary")
        };
        let db = parts.db.clone();
        let finished_count = || {
            let db = db.clone();
            async move {
                use diesel::prelude::*;
                use fleetdeck::db::schema::jobs;
                db.run(|conn| {
                    jobs::table
                        .filter(jobs::status.eq_any(["succeeded", "failed"]))
                        .count()
                        .get_result::<i64>(conn)
                })
                .await
                .unwrap()
            }
        };
        let before = finished_count().await;
        let started = Instant::now();
        let machine = common::MachineCpu::take();
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (http, url, counter) = (self.http.clone(), self.url.clone(), counter.clone());
            clients.push(tokio::spawn(async move {
                while counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < SUSTAINED_JOBS {
                    submit(&http, &url, "true".into()).await;
                }
            }));
        }
        while finished_count().await - before < i64::try_from(SUSTAINED_JOBS).unwrap() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for c in clients {
            c.await.unwrap();
        }
        let wall = started.elapsed();
        let sustained = SUSTAINED_JOBS as f64 / wall.as_secs_f64();
        // Everything that ran on the machine meanwhile (the jobs' own processes included).
        let (busy, _) = common::MachineCpu::take().others_since(&machine, Duration::ZERO, wall);
        format!(
            "| sustained routing ({SUSTAINED_JOBS} jobs, {CLIENTS} clients, {SECONDARIES} secondaries; CPUs {busy:.0} % busy) | {sustained:.0} jobs/s | >= 500/s | {} |",
            verdict(sustained >= 500.0)
        )
    }

    /// One job writing as fast as it can, until every byte is stored; then checked.
    async fn log_throughput(&self) -> Vec<String> {
        let command = format!(
            "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c {LOG_BYTES}"
        );
        let id = self.submit(command).await;
        let job_url = format!("{}/api/jobs/{id}", self.url);
        let mut running_at = None;
        loop {
            let job: Value = self.http.get(&job_url).send().await.unwrap().json().await.unwrap();
            if running_at.is_none() && job["status"] != "queued" && job["status"] != "dispatched" {
                running_at = Some(Instant::now());
            }
            if job["status"] == "succeeded" && job["log_bytes"].as_u64() == Some(LOG_BYTES) {
                break;
            }
            assert!(
                !matches!(job["status"].as_str(), Some("failed" | "timed_out" | "cancelled" | "lost")),
                "{job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = running_at.unwrap().elapsed();
        let throughput = LOG_BYTES as f64 / 1e6 / elapsed.as_secs_f64();
        let stored = self
            .http
            .get(format!("{job_url}/logs/raw?stream=stdout"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
        let expected: Vec<u8> =
            line.iter().copied().cycle().take(usize::try_from(LOG_BYTES).unwrap()).collect();
        let exact = Sha256::digest(&stored) == Sha256::digest(&expected);
        vec![
            format!(
                "| log throughput ({} MiB, stored) | {throughput:.1} MB/s | >= 50 MB/s | {} |",
                LOG_BYTES >> 20,
                verdict(throughput >= 50.0)
            ),
            format!(
                "| log bytes exact | {} | byte-exact | {} |",
                if exact { "sha256 equal" } else { "DIFFER" },
                verdict(exact)
            ),
        ]
    }
}

async fn submit(http: &reqwest::Client, url: &str, command: String) -> String {
    let response = http
        .post(format!("{url}/api/jobs"))
        .json(&json!({ "command": command, "labels": ["bench"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}
