//! Heartbeat ingest: authenticated heartbeats per second on one primary, against a bare
//! actix-web endpoint doing comparable HTTP work, measured in the same run with the same
//! load generator (SPEC benchmarks; docs/BENCHMARKS.md).
//!
//! The primary runs in-process with production configuration and logging (into a counting
//! sink) and `BENCH_NODES` registered secondaries. The load generator keeps
//! `BENCH_CONNECTIONS` keep-alive HTTP/1.1 connections, each sending one request at a time
//! (closed loop) while cycling through its share of the simulated nodes, so every request
//! carries a real node's ID and key and authenticates. Its client is a minimal hand-written
//! HTTP/1.1 writer/reader over prebuilt request bytes: on a machine this small the client
//! shares the CPUs with the server, and the cheaper it is the less it flatters the slower
//! target. The bare endpoint has the same route shape, parses the same JSON body into the
//! same `Heartbeat` type and answers a small JSON, with no middleware, auth or database.
//!
//! Knobs (environment): BENCH_NODES (10000), BENCH_CONNECTIONS (64), BENCH_SECONDS (10),
//! BENCH_WARMUP_SECONDS (2), BENCH_ROUNDS (2), BENCH_CLIENT_THREADS (1).
//!
//! `cargo bench -p fleetdeck --bench heartbeat_ingest`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use fleetdeck::App;
use fleetdeck::clock::{Clock as _, SystemClock};
use fleetdeck::nodes::registry::NewNode;
use fleetdeck::nodes::{Labels, NodeId, NodeName, NodeUrl};
use fleetdeck::protocol::{Heartbeat, HeartbeatReply};
use fleetdeck::stats::{NodeFacts, StatsCollector};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{CpuSnapshot, MachineCpu, ms, verdict};

const TARGET_RATIO: f64 = 0.5;
const TARGET_P99: Duration = Duration::from_millis(20);
const LABELS: [&str; 2] = ["amd64", "linux"];

struct Settings {
    nodes: usize,
    connections: usize,
    measure: Duration,
    warmup: Duration,
    rounds: usize,
    client_threads: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let num = |name: &str, default: u64| -> u64 {
            std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
        };
        Settings {
            nodes: num("BENCH_NODES", 10_000) as usize,
            connections: num("BENCH_CONNECTIONS", 64) as usize,
            measure: Duration::from_secs(num("BENCH_SECONDS", 10)),
            warmup: Duration::from_secs(num("BENCH_WARMUP_SECONDS", 2)),
            rounds: num("BENCH_ROUNDS", 2) as usize,
            client_threads: num("BENCH_CLIENT_THREADS", 1) as usize,
        }
    }
}

fn main() {
    let settings = Settings::from_env();
    let log_lines = common::install_production_logging();
    println!("heartbeat ingest benchmark");
    println!("machine: {}", common::machine());
    println!(
        "{} simulated secondaries, {} keep-alive connections on {} load-generator thread(s), {} s warm-up + {} s measured per target, {} round(s)",
        settings.nodes,
        settings.connections,
        settings.client_threads,
        settings.warmup.as_secs(),
        settings.measure.as_secs(),
        settings.rounds
    );

    // The primary's tasks run where production runs them: on a multi-threaded runtime with
    // one worker per CPU (`#[tokio::main]`); actix adds its own worker threads.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common::available_cpus())
        .thread_name("primary-rt")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .unwrap();

    let data_dir = tempfile::tempdir().unwrap();
    let (app, bare, bare_addr) = server_rt.block_on(async {
        let app = App::build(common::primary_config(data_dir.path(), &[])).await.unwrap();
        let (bare, bare_addr) = start_bare_endpoint();
        (app, bare, bare_addr)
    });

    let started = Instant::now();
    let body = heartbeat_body();
    let nodes = server_rt.block_on(register_nodes(&app, settings.nodes));
    println!(
        "registered {} nodes in {:.1} s; heartbeat body {} bytes",
        nodes.len(),
        started.elapsed().as_secs_f64(),
        body.len()
    );
    let primary_requests = Arc::new(build_requests(app.address(), &nodes, &body));
    let bare_requests = Arc::new(build_requests(bare_addr, &nodes, &body));

    // The first heartbeat of a node moves it from pending to online (a write); steady state
    // is what is measured, so every node sends one first, then the buffer is flushed.
    let started = Instant::now();
    let primed = client_rt.block_on(prime(app.address(), primary_requests.clone(), settings.connections));
    server_rt.block_on(async { app.state().registry().unwrap().flush_heartbeats().await.unwrap() });
    println!(
        "primed: {primed} nodes online after one heartbeat each ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let mut results: Vec<(Target, PhaseResult)> = Vec::new();
    for round in 1..=settings.rounds {
        for target in [Target::Bare, Target::Primary] {
            let (addr, requests) = match target {
                Target::Bare => (bare_addr, bare_requests.clone()),
                Target::Primary => (app.address(), primary_requests.clone()),
            };
            let lines_before = log_lines.load(std::sync::atomic::Ordering::Relaxed);
            let mut result = client_rt.block_on(run_load(addr, requests, &settings));
            result.log_lines = log_lines.load(std::sync::atomic::Ordering::Relaxed) - lines_before;
            println!("round {round}: {:<18} {}", target.name(), result.summary(settings.measure));
            results.push((target, result));
        }
    }
    let (rss, peak) = common::rss_mib();

    report(&settings, &results);
    println!(
        "process RSS at the end: {rss:.0} MiB (peak {peak:.0} MiB; primary, bare endpoint and load generator together)"
    );

    server_rt.block_on(async {
        bare.stop(true).await;
        app.stop().await;
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Bare,
    Primary,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Bare => "bare actix-web",
            Target::Primary => "fleetdeck primary",
        }
    }
}

/// A real snapshot of this machine, as a secondary's agent sends it.
fn heartbeat_body() -> Vec<u8> {
    let dir = std::env::temp_dir();
    let collector = StatsCollector::new(NodeFacts {
        labels: LABELS.map(str::to_owned).to_vec(),
        max_jobs: 2,
        data_dir: dir,
    });
    let heartbeat = Heartbeat {
        version: fleetdeck::VERSION.to_owned(),
        labels: LABELS.map(str::to_owned).to_vec(),
        max_jobs: 2,
        running_jobs: Vec::new(),
        stats: Some(collector.latest()),
        uptime_secs: 3600,
    };
    serde_json::to_vec(&heartbeat).unwrap()
}

/// Adds `n` secondaries through the registry (what `POST /api/nodes` does) and returns
/// their IDs and keys.
async fn register_nodes(app: &App, n: usize) -> Vec<(String, String)> {
    let registry = app.state().registry().unwrap();
    let labels = Labels::parse(&LABELS[..]).unwrap();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let issued = registry
            .create(NewNode {
                id: None,
                name: NodeName::parse(&format!("bench-{i:05}")).unwrap(),
                api_endpoint: NodeUrl::parse(&format!(
                    "http://10.{}.{}.{}:8080",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                ))
                .unwrap(),
                api_key: None,
                labels: labels.clone(),
            })
            .await
            .unwrap();
        nodes.push((issued.node.id.to_string(), issued.api_key.expose().to_owned()));
    }
    nodes
}

/// Every node's heartbeat request, byte for byte as the agent's HTTP client sends it.
fn build_requests(addr: SocketAddr, nodes: &[(String, String)], body: &[u8]) -> Vec<Vec<u8>> {
    nodes
        .iter()
        .map(|(id, key)| {
            let mut request = format!(
                "POST /api/internal/nodes/{id}/heartbeat HTTP/1.1\r\n\
                 host: {addr}\r\n\
                 user-agent: fleetdeck/{version}\r\n\
                 accept: */*\r\n\
                 x-node-id: {id}\r\n\
                 x-node-api-key: {key}\r\n\
                 content-type: application/json\r\n\
                 content-length: {len}\r\n\r\n",
                version = fleetdeck::VERSION,
                len = body.len(),
            )
            .into_bytes();
            request.extend_from_slice(body);
            request
        })
        .collect()
}

/// The comparison: the same route shape and body type on a plain actix-web server with the
/// primary's worker count, without middleware, authentication or database.
fn start_bare_endpoint() -> (actix_web::dev::ServerHandle, SocketAddr) {
    async fn heartbeat(path: web::Path<String>, body: web::Json<Heartbeat>) -> HttpResponse {
        let id = NodeId::parse(&path).unwrap_or_else(|_| NodeId::generate());
        std::hint::black_box(&body);
        HttpResponse::Ok().json(HeartbeatReply { primary_node_id: id, time: SystemClock.now() })
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let workers = common::available_cpus().clamp(2, 8);
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route("/api/internal/nodes/{id}/heartbeat", web::post().to(heartbeat))
    })
    .listen(listener)
    .unwrap()
    .disable_signals()
    .workers(workers)
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (handle, addr)
}

/// One keep-alive HTTP/1.1 connection sending one request at a time.
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Sends `request` and reads the whole response; returns its status.
    async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some(head_len) = find(&self.buf, b"\r\n\r\n") {
                let (status, body_len) = parse_head(&self.buf[..head_len])?;
                let total = head_len + 4 + body_len;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        self.buf.reserve(8 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status and `content-length` of a response head (both servers send a length).
fn parse_head(head: &[u8]) -> std::io::Result<(u16, usize)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let text = std::str::from_utf8(head).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad("chunked responses are not supported by this load generator"));
            }
        }
    }
    Ok((status, length.ok_or_else(|| bad("no content-length"))?))
}

/// Sends one heartbeat per node, spread over the connections; returns how many got 200.
async fn prime(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>, connections: usize) -> usize {
    let mut tasks = Vec::new();
    for c in 0..connections {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await.unwrap();
            let mut ok = 0;
            for request in requests.iter().skip(c).step_by(connections) {
                ok += usize::from(conn.round_trip(request).await.unwrap() == 200);
            }
            ok
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    ok
}

/// What one target did in its measured window.
#[derive(Debug, Default)]
struct PhaseResult {
    /// Latency of each request completed in the window, in microseconds.
    latencies_us: Vec<u32>,
    /// Responses other than 200 (by status) and I/O errors (status 0).
    errors: HashMap<u16, u64>,
    cpu: HashMap<&'static str, Duration>,
    /// Percent of all CPUs used by other processes, and stolen by the hypervisor.
    others_pct: f64,
    steal_pct: f64,
    log_lines: u64,
}

impl PhaseResult {
    fn requests(&self) -> usize {
        self.latencies_us.len()
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies_us, p)
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn summary(&self, measure: Duration) -> String {
        let rps = self.requests() as f64 / measure.as_secs_f64();
        format!(
            "{rps:>9.0} req/s  p50 {:>5} ms  p99 {:>5} ms  errors {}",
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            self.error_count()
        )
    }
}

/// Latencies must be sorted.
fn percentile(sorted_us: &[u32], p: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    Duration::from_micros(u64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]))
}

fn thread_group(name: &str) -> &'static str {
    if name.starts_with("actix-server wo") {
        "server workers"
    } else if name.starts_with("actix-server ac") {
        "server acceptor"
    } else if name.starts_with("tokio-rt-worker") {
        // `spawn_blocking` from a request handler runs on the actix worker's own runtime.
        "handler blocking"
    } else if name.starts_with("primary-rt") {
        "primary runtime"
    } else if name.starts_with("loadgen") {
        "load generator"
    } else {
        "other"
    }
}

/// Warm-up, then the measured window: `connections` closed-loop connections, each cycling
/// through its share of the nodes. Only requests completed inside the window count.
async fn run_load(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>, settings: &Settings) -> PhaseResult {
    let start = Instant::now();
    let from = start + settings.warmup;
    let until = from + settings.measure;
    let connections = settings.connections;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(64 * 1024);
            let mut errors: HashMap<u16, u64> = HashMap::new();
            let mut conn = Connection::open(addr).await.unwrap();
            let mine: Vec<usize> = (c..requests.len()).step_by(connections).collect();
            for &i in mine.iter().cycle() {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let outcome = conn.round_trip(&requests[i]).await;
                let done = Instant::now();
                let counted = done >= from && done <= until;
                match outcome {
                    Ok(200) if counted => {
                        latencies.push(u32::try_from((done - sent).as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(200) => {}
                    Ok(status) => *errors.entry(status).or_default() += u64::from(counted),
                    Err(_) => {
                        *errors.entry(0).or_default() += u64::from(counted);
                        conn = Connection::open(addr).await.unwrap();
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let before = (CpuSnapshot::take(), MachineCpu::take());
        tokio::time::sleep_until(until.into()).await;
        let ours = CpuSnapshot::take();
        let others = MachineCpu::take().others_since(&before.1, ours.total_since(&before.0), until - from);
        (ours.since(&before.0, thread_group), others)
    });
    let mut result = PhaseResult::default();
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        result.latencies_us.extend(latencies);
        for (status, n) in errors {
            *result.errors.entry(status).or_default() += n;
        }
    }
    result.errors.retain(|_, n| *n > 0);
    (result.cpu, (result.others_pct, result.steal_pct)) = sampler.await.unwrap();
    result.latencies_us.sort_unstable();
    result
}

fn report(settings: &Settings, results: &[(Target, PhaseResult)]) {
    let measured = settings.measure.as_secs_f64();
    let cpus = common::available_cpus() as f64;
    println!();
    println!(
        "{:<18} {:>5} {:>9} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}   {:>10} {:>10} {:>10} {:>10} {:>9} {:>7}",
        "target",
        "round",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "max ms",
        "server µs",
        "handler DB",
        "runtime µs",
        "client µs",
        "CPU busy",
        "others"
    );
    let mut totals: HashMap<Target, (usize, Vec<u32>)> = HashMap::new();
    let mut round_of: HashMap<Target, usize> = HashMap::new();
    for (target, r) in results {
        let round = round_of.entry(*target).or_default();
        *round += 1;
        let n = r.requests().max(1) as f64;
        let per_req = |group: &str| r.cpu.get(group).map_or(0.0, |d| d.as_secs_f64() * 1e6 / n);
        let busy: f64 = r.cpu.values().map(Duration::as_secs_f64).sum::<f64>() / (measured * cpus) * 100.0;
        println!(
            "{:<18} {:>5} {:>9} {:>6} {:>9.0} {:>7} {:>7} {:>7} {:>7} {:>7}   {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.0}% {:>6.0}%",
            target.name(),
            round,
            r.requests(),
            r.error_count(),
            r.requests() as f64 / measured,
            ms(r.percentile(50.0)),
            ms(r.percentile(90.0)),
            ms(r.percentile(99.0)),
            ms(r.percentile(99.9)),
            ms(r.percentile(100.0)),
            per_req("server workers") + per_req("server acceptor"),
            per_req("handler blocking"),
            per_req("primary runtime"),
            per_req("load generator"),
            busy,
            r.others_pct + r.steal_pct,
        );
        if !r.errors.is_empty() {
            println!("    non-200 answers by status (0 = I/O error): {:?}", r.errors);
        }
        if r.log_lines > 0 {
            println!("    log lines written during the run: {}", r.log_lines);
        }
        let total = totals.entry(*target).or_default();
        total.0 += 1;
        total.1.extend_from_slice(&r.latencies_us);
    }
    println!(
        "(server µs: CPU of the actix worker threads per request; handler DB: CPU of the blocking threads handlers start (database calls on the request path) per request; runtime µs: CPU of the primary's tokio runtime — database, flushes, background tasks — per request; client µs: the load generator's; CPU busy: this process's threads over {cpus} CPUs; others: other processes and hypervisor steal)"
    );

    let mut summarize = |target: Target| {
        let (rounds, mut latencies) = totals.remove(&target).unwrap_or_default();
        latencies.sort_unstable();
        let rps = latencies.len() as f64 / (measured * rounds.max(1) as f64);
        (rps, percentile(&latencies, 50.0), percentile(&latencies, 99.0))
    };
    let (bare_rps, bare_p50, bare_p99) = summarize(Target::Bare);
    let (primary_rps, primary_p50, primary_p99) = summarize(Target::Primary);
    let ratio = if bare_rps > 0.0 { primary_rps / bare_rps } else { 0.0 };
    let errors: u64 = results.iter().map(|(_, r)| r.error_count()).sum();
    let disturbed =
        results.iter().filter(|(_, r)| r.others_pct + r.steal_pct > common::DISTURBED_PCT).count();
    if disturbed > 0 {
        println!();
        println!(
            "NOTE: other processes used more than {:.0}% of the CPUs during {disturbed} of {} measurements; \
             those figures are not comparable. Rerun on a quiet machine.",
            common::DISTURBED_PCT,
            results.len()
        );
    }
    println!();
    println!("all rounds together:");
    println!("  bare actix-web     {bare_rps:>9.0} req/s  p50 {} ms  p99 {} ms", ms(bare_p50), ms(bare_p99));
    println!(
        "  fleetdeck primary  {primary_rps:>9.0} req/s  p50 {} ms  p99 {} ms",
        ms(primary_p50),
        ms(primary_p99)
    );
    println!();
    println!(
        "{}  primary throughput is {:.0}% of the bare endpoint's (target: at least {:.0}%)",
        verdict(ratio >= TARGET_RATIO),
        ratio * 100.0,
        TARGET_RATIO * 100.0
    );
    println!(
        "{}  primary p99 latency {} ms (target: under {} ms)",
        verdict(primary_p99 < TARGET_P99),
        ms(primary_p99),
        TARGET_P99.as_millis()
    );
    println!("{}  every heartbeat answered 200 ({errors} other answers)", verdict(errors == 0));
}
