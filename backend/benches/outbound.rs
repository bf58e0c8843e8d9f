//! Outbound nodes: 10,000 sockets held by one primary (docs/BENCHMARKS.md).
//!
//! The primary runs in-process with production configuration (its background checker on a
//! one-hour tick; sweeps are driven by calling `HealthChecker::run_once`). The nodes are
//! simulated cheaply in a child process of this benchmark (so their memory and CPU are not
//! the primary's): one light WebSocket client per node, each with the node's own ID and key,
//! answering every `probe` call with a real stats snapshot and reconnecting after a drop
//! with the agent's own backoff (`agent::retry_delay`). The clients come from many loopback
//! addresses (127.1.x.y), at most 200 per address, as nodes from many machines do (the
//! primary caps connections per source address at 256).
//!
//! Measured: the time until every node is connected; the primary's RSS and CPU while the
//! sockets sit idle (the primary pings each every 15 s); one health sweep over all of them
//! (target: 5 s, as for inbound nodes); and, after the primary is stopped and started again
//! on the same port and data directory, the time until every node is back.
//!
//! Knobs (environment): BENCH_NODES (10000), BENCH_IDLE_SECS (30).
//!
//! `cargo bench -p fleetdeck --bench outbound`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleetdeck::App;
use fleetdeck::nodes::registry::NewNode;
use fleetdeck::nodes::{Labels, NodeName, NodeUrl};
use fleetdeck::protocol::{NodeAnswer, NodeCall, TunnelFrame};
use fleetdeck::secrets::ApiKey;
use fleetdeck::stats::{NodeFacts, StatsCollector};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

use common::{CpuSnapshot, env_number, verdict};

const TARGET_SWEEP: Duration = Duration::from_secs(5);
/// Set in the child's environment: where the primary is, and the file of node IDs and keys.
const CLIENTS_VAR: &str = "FLEETDECK_BENCH_OUTBOUND_CLIENTS";
/// Clients per loopback source address.
const PER_ADDRESS: usize = 200;

fn main() {
    if let Ok(spec) = std::env::var(CLIENTS_VAR) {
        run_clients(&spec);
        return;
    }
    let nodes = usize::try_from(env_number("BENCH_NODES", 10_000)).unwrap();
    let idle_secs = env_number("BENCH_IDLE_SECS", 30);
    let _log_lines = common::install_production_logging();
    println!("outbound nodes benchmark");
    println!("machine: {}", common::machine());

    let rt = common::server_runtime();
    let data_dir = tempfile::tempdir().unwrap();
    let nodes_file = data_dir.path().join("bench-nodes.txt");
    rt.block_on(async {
        let (rss_before, _) = common::rss_mib();
        let app = App::build(common::primary_config(data_dir.path(), &[])).await.unwrap();
        let address = app.address().unwrap();
        let registry = app.state().registry().unwrap().clone();
        let started = Instant::now();
        let mut list = String::new();
        for i in 0..nodes {
            let key = fleetdeck::secrets::random_token(32);
            let node = registry
                .create(NewNode {
                    id: None,
                    name: NodeName::parse(&format!("out-{i:05}")).unwrap(),
                    api_endpoint: NodeUrl::parse("http://127.0.0.1:1").unwrap(),
                    api_key: Some(ApiKey::parse(&key).unwrap()),
                    labels: Labels::default(),
                })
                .await
                .unwrap();
            list.push_str(&format!("{} {key}\n", node.node.id));
        }
        std::fs::write(&nodes_file, list).unwrap();
        let (rss_registered, _) = common::rss_mib();
        println!(
            "{nodes} nodes registered in {:.1} s; primary RSS {rss_before:.0} MiB before, {rss_registered:.0} MiB with the nodes",
            started.elapsed().as_secs_f64()
        );

        let mut clients = Clients::start(address, &nodes_file);
        let connect_started = Instant::now();
        let all_connected = wait_for(&registry, nodes, Duration::from_secs(300)).await;
        let connect_time = connect_started.elapsed();
        println!(
            "connect: {} of {nodes} sockets open after {:.1} s{}",
            registry.tunnels().count(),
            connect_time.as_secs_f64(),
            if all_connected { "" } else { " (gave up waiting)" }
        );

        // Idle: nothing but pings.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu_before = CpuSnapshot::take();
        let idle_started = Instant::now();
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        let idle_cpu = CpuSnapshot::take().total_since(&cpu_before);
        let (rss_idle, _) = common::rss_mib();
        let idle_pct = 100.0 * idle_cpu.as_secs_f64() / idle_started.elapsed().as_secs_f64();
        println!(
            "idle with {nodes} sockets for {idle_secs} s: primary RSS {rss_idle:.0} MiB ({:.1} KiB per socket over the registered nodes), CPU {:.2} s ({idle_pct:.1} % of one core)",
            (rss_idle - rss_registered) * 1024.0 / nodes as f64,
            idle_cpu.as_secs_f64()
        );

        // One sweep over all of them, over their sockets.
        let checker = app.state().checker().unwrap().clone();
        let mut sweeps = Vec::new();
        for _ in 0..3 {
            let cpu_before = CpuSnapshot::take();
            let sweep_started = Instant::now();
            let sweeping = checker.clone();
            let report = tokio::spawn(async move { sweeping.run_once().await }).await.unwrap().unwrap();
            let elapsed = sweep_started.elapsed();
            let cpu = CpuSnapshot::take().total_since(&cpu_before);
            let online = registry.counts().iter().find(|(s, _)| s.as_str() == "online").map_or(0, |(_, n)| *n);
            println!(
                "sweep: {report:?} in {:.2} s, primary CPU {:.2} s; online {online} [{}]",
                elapsed.as_secs_f64(),
                cpu.as_secs_f64(),
                verdict(elapsed < TARGET_SWEEP)
            );
            sweeps.push(elapsed);
        }

        // Restart the primary: every node reconnects. (What holds the registry holds the
        // database, and a second primary would find it still locked.)
        let config = app.state().config.as_ref().clone();
        drop((registry, checker));
        app.stop().await;
        let mut config = config;
        config.server_address = address;
        let restart_started = Instant::now();
        let app = App::build(config).await.unwrap();
        let registry = app.state().registry().unwrap().clone();
        let all_back = wait_for(&registry, nodes, Duration::from_secs(600)).await;
        let back_time = restart_started.elapsed();
        println!(
            "restart: {} of {nodes} sockets back {:.1} s after the primary started again{}",
            registry.tunnels().count(),
            back_time.as_secs_f64(),
            if all_back { "" } else { " (gave up waiting)" }
        );
        println!(
            "summary: connect {:.1} s, idle RSS {rss_idle:.0} MiB, idle CPU {idle_pct:.1} %, sweep {:.2}/{:.2}/{:.2} s, reconnect after restart {:.1} s",
            connect_time.as_secs_f64(),
            sweeps[0].as_secs_f64(),
            sweeps[1].as_secs_f64(),
            sweeps[2].as_secs_f64(),
            back_time.as_secs_f64()
        );
        clients.stop();
        app.stop().await;
    });
}

/// Waits until `nodes` sockets are open; whether they were within `timeout`.
async fn wait_for(registry: &fleetdeck::nodes::Registry, nodes: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while registry.tunnels().count() < nodes {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The child process running the simulated nodes.
struct Clients {
    child: std::process::Child,
}

impl Clients {
    fn start(primary: std::net::SocketAddr, nodes_file: &std::path::Path) -> Clients {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CLIENTS_VAR, format!("{primary} {}", nodes_file.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Clients { child }
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let mut out = String::new();
        if let Some(stdout) = self.child.stdout.take() {
            let _ = BufReader::new(stdout).read_to_string(&mut out);
        }
        let _ = self.child.wait();
        print!("{out}");
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulated nodes: one socket each, answering probes, reconnecting like the agent.
fn run_clients(spec: &str) {
    let (primary, file) = spec.split_once(' ').unwrap();
    let primary: std::net::SocketAddr = primary.parse().unwrap();
    let nodes: Vec<(String, String)> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, key) = l.split_once(' ').unwrap();
            (id.to_owned(), key.to_owned())
        })
        .collect();
    let collector =
        StatsCollector::new(NodeFacts { labels: Vec::new(), max_jobs: 2, data_dir: std::env::temp_dir() });
    let stats = Arc::new(serde_json::to_value(collector.latest()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let probes = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        for (i, (id, key)) in nodes.into_iter().enumerate() {
            let source = std::net::Ipv4Addr::new(
                127,
                1,
                u8::try_from(i / PER_ADDRESS / 250).unwrap(),
                u8::try_from((i / PER_ADDRESS) % 250 + 1).unwrap(),
            );
            tokio::spawn(client(primary, source, id, key, stats.clone(), probes.clone()));
        }
        // Run until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
    });
    let mut out = std::io::stdout();
    let _ = writeln!(out, "clients: {} probes answered", probes.load(Ordering::Relaxed));
}

async fn client(
    primary: std::net::SocketAddr,
    source: std::net::Ipv4Addr,
    id: String,
    key: String,
    stats: Arc<serde_json::Value>,
    probes: Arc<AtomicUsize>,
) {
    let mut failures = 0u32;
    loop {
        if session(primary, source, &id, &key, &stats, &probes).await {
            failures = 0;
        }
        failures += 1;
        tokio::time::sleep(fleetdeck::agent::retry_delay(failures + 1, rand::random())).await;
    }
}

/// One socket until it ends; whether it got as far as the hello.
async fn session(
    primary: std::net::SocketAddr,
    source: std::net::Ipv4Addr,
    id: &str,
    key: &str,
    stats: &serde_json::Value,
    probes: &AtomicUsize,
) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if socket.bind(std::net::SocketAddr::new(source.into(), 0)).is_err() {
        return false;
    }
    let Ok(stream) = socket.connect(primary).await else { return false };
    let mut request =
        format!("ws://{primary}/api/internal/nodes/{id}/connect").into_client_request().unwrap();
    request.headers_mut().insert("X-Node-ID", id.parse().unwrap());
    request.headers_mut().insert("X-Node-API-Key", key.parse().unwrap());
    let Ok((ws, _)) = tokio_tungstenite::client_async(request, stream).await else { return false };
    let (mut write, mut read) = ws.split();
    let Some(Ok(Message::Text(_hello))) = read.next().await else { return false };
    while let Some(Ok(message)) = read.next().await {
        match message {
            Message::Text(text) => {
                if let Ok(TunnelFrame::Call { id, call: NodeCall::Probe }) = serde_json::from_str(&text) {
                    probes.fetch_add(1, Ordering::Relaxed);
                    let answer =
                        TunnelFrame::Answer { id, answer: NodeAnswer { status: 200, body: stats.clone() } };
                    if write.send(Message::text(serde_json::to_string(&answer).unwrap())).await.is_err() {
                        break;
                    }
                }
            }
            Message::Close(_) => break,
            _ => {
                let _ = write.flush().await;
            }
        }
    }
    true
}
