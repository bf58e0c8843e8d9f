//! Alert storm: a fleet of 10,000 online nodes where 1,000 go down at once. Timed from
//! the moment the health checker's results are stored (one `store_probes` of 1,000 failed
//! probes, what a sweep's end does) until the receiver has every alert, with the primary's
//! CPU time and peak memory meanwhile; then the same storm to a channel that asks for
//! summaries (`summary_over` 10): how many messages it gets instead (SPEC §14; target:
//! every alert handed over in under 30 s).
//!
//! The primary runs in-process with production configuration (the background health
//! checker out of the way); the receiver, a webhook endpoint that counts what it gets, runs
//! in a child process of this benchmark so that its work is not counted as the primary's.
//!
//! Each storm (three of each kind) takes down nodes that were up; the figures are per storm,
//! then the median and maximum.
//!
//! Knobs (environment): BENCH_NODES (10000), BENCH_DOWN (1000), BENCH_ROUNDS (3).
//!
//! `cargo bench -p fleetdeck --bench alerts`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use fleetdeck::App;
use fleetdeck::alerts::model::{ChannelInput, RuleInput};
use fleetdeck::nodes::health::Health;
use fleetdeck::nodes::repo::ProbeRecord;
use fleetdeck::nodes::{NodeId, NodeStatus};
use fleetdeck::protocol::Heartbeat;

use common::{CpuSnapshot, MachineCpu, env_number, verdict};

const TARGET: Duration = Duration::from_secs(30);
/// Set in the receiver child's environment.
const RECEIVER_VAR: &str = "FLEETDECK_BENCH_RECEIVER";

fn main() {
    if std::env::var_os(RECEIVER_VAR).is_some() {
        run_receiver();
        return;
    }
    let nodes = usize::try_from(env_number("BENCH_NODES", 10_000)).unwrap();
    let down = usize::try_from(env_number("BENCH_DOWN", 1_000)).unwrap();
    let rounds = usize::try_from(env_number("BENCH_ROUNDS", 3)).unwrap();
    assert!(2 * rounds * down <= nodes, "BENCH_NODES must hold 2 × BENCH_ROUNDS × BENCH_DOWN nodes");
    let _log_lines = common::install_production_logging();
    println!("alert storm benchmark");
    println!("machine: {}", common::machine());
    let receiver = Receiver::start();
    println!(
        "{nodes} online nodes, {down} go down at once; receiver: a webhook on 127.0.0.1:{}",
        receiver.port
    );

    let rt = common::server_runtime();
    let data_dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let app = App::build(common::primary_config(data_dir.path(), &[])).await.unwrap();
        let ids = online_fleet(&app, nodes).await;
        let alerts = app.state().alerts().unwrap().clone();
        let webhook = |name: &str, summary_over: Option<u32>| ChannelInput {
            name: Some(name.into()),
            kind: Some("webhook".into()),
            url: Some(format!("http://127.0.0.1:{}/hook", receiver.port)),
            summary_over: Some(summary_over),
            ..ChannelInput::default()
        };
        let rule = |name: &str, channel: &str| RuleInput {
            name: Some(name.into()),
            event: Some("node_offline".into()),
            channels: Some(vec![channel.to_owned()]),
            ..RuleInput::default()
        };

        let mut storms = 0;
        for summary_over in [None, Some(10)] {
            let mode = if summary_over.is_some() { "summary_over=10" } else { "one message each" };
            let channel = alerts.create_channel(webhook(mode, summary_over)).await.unwrap();
            let made = alerts.create_rule(rule(mode, &channel.id)).await.unwrap();
            let mut times = Vec::new();
            for _ in 0..rounds {
                // Let the engine see the fleet online under the rule first; then a random
                // 0-1 s, so that storms fall at every phase of its once-a-second evaluation.
                let phase = Duration::from_millis(rand::random::<u64>() % 1000);
                tokio::time::sleep(Duration::from_secs(3) + phase).await;
                let victims = &ids[storms * down..(storms + 1) * down];
                storms += 1;
                let (cpu, machine) = (CpuSnapshot::take(), MachineCpu::take());
                common::reset_peak_rss();
                let started = Instant::now();
                knock_down(&app, victims).await;
                let stored = started.elapsed();
                let (messages, alerts_seen) = receiver.wait_for(down, started);
                let elapsed = started.elapsed();
                let used = CpuSnapshot::take().total_since(&cpu);
                let (rss, peak) = common::rss_mib();
                let (others, _) = MachineCpu::take().others_since(&machine, used, elapsed);
                println!(
                    "{mode}: {alerts_seen} alerts in {messages} messages, all handed over {:.2} s after they went down (stored in {:.2} s); primary CPU {:.2} s; RSS {rss:.0} MiB, peak {peak:.0} MiB; other processes {others:.0}% of the machine",
                    elapsed.as_secs_f64(),
                    stored.as_secs_f64(),
                    used.as_secs_f64(),
                );
                times.push(if alerts_seen == down { elapsed } else { Duration::MAX });
            }
            times.sort();
            let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
            println!(
                "{mode}: median {:.2} s, max {:.2} s over {rounds} storms (target < {} s) {}",
                median.as_secs_f64(),
                max.as_secs_f64(),
                TARGET.as_secs(),
                verdict(max < TARGET),
            );
            // The storms' nodes come back (no rule says so), so the next kind's new rule does
            // not find them down.
            bring_up(&app, &ids[..storms * down]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            alerts.delete_rule(&made.id).await.unwrap();
        }
        app.stop().await;
    });
    drop(receiver);
}

/// Adds `n` secondaries and brings them online with one heartbeat each.
async fn online_fleet(app: &App, n: usize) -> Vec<NodeId> {
    let started = Instant::now();
    let nodes = common::heartbeat_load::register_nodes(app, n).await;
    let ids: Vec<NodeId> = nodes.iter().map(|(id, _)| NodeId::parse(id).unwrap()).collect();
    bring_up(app, &ids).await;
    println!("fleet of {n} online in {:.1} s", started.elapsed().as_secs_f64());
    ids
}

/// One heartbeat from each of `nodes`: they are online.
async fn bring_up(app: &App, nodes: &[NodeId]) {
    let registry = app.state().registry().unwrap();
    for id in nodes {
        let hb = Heartbeat {
            version: "bench".into(),
            connect: fleetdeck::protocol::Connect::Inbound,
            labels: None,
            max_jobs: 1,
            running_jobs: Vec::new(),
            stats: None,
            uptime_secs: 1,
        };
        registry.heartbeat(id, hb).await.unwrap();
    }
}

/// Stores a failed third probe for each of `victims` at once: they are offline.
async fn knock_down(app: &App, victims: &[NodeId]) {
    let registry = app.state().registry().unwrap();
    let now = registry.now();
    let probes = victims
        .iter()
        .map(|id| {
            let node = registry.cached(id).unwrap();
            let record = ProbeRecord {
                id: id.clone(),
                expected_failures: node.health.failures,
                health: Health { status: NodeStatus::Offline, failures: 3 },
                at: now,
                error: Some("cannot connect".into()),
                stats: None,
            };
            (node, record)
        })
        .collect();
    registry.store_probes(probes, registry.leader_fence().unwrap()).await.unwrap();
}

/// The receiver child: one line per request, the number of alerts in it.
struct Receiver {
    port: u16,
    lines: mpsc::Receiver<usize>,
    child: std::process::Child,
}

impl Receiver {
    fn start() -> Receiver {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(RECEIVER_VAR, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port =
            line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("the receiver's port");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                if tx.send(line.trim().parse().unwrap_or(0)).is_err() {
                    return;
                }
            }
        });
        Receiver { port, lines, child }
    }

    /// Waits until `alerts` alerts arrived (or a minute passed): (messages, alerts).
    fn wait_for(&self, alerts: usize, since: Instant) -> (usize, usize) {
        let (mut messages, mut seen) = (0, 0);
        while seen < alerts {
            let left = Duration::from_secs(60).saturating_sub(since.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(n) => {
                    messages += 1;
                    seen += n;
                }
                Err(_) => break,
            }
        }
        (messages, seen)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_receiver() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let server = actix_web::HttpServer::new(|| {
            // A summary of a thousand alerts carries every body: about half a megabyte.
            actix_web::App::new().app_data(web::PayloadConfig::new(16 << 20)).route(
                "/hook",
                web::post().to(|body: web::Bytes| async move {
                    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let count = value["count"].as_u64().unwrap_or(1);
                    println!("{count}");
                    HttpResponse::Ok().finish()
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        println!("PORT {}", server.addrs()[0].port());
        server.run().await.unwrap();
    });
}
