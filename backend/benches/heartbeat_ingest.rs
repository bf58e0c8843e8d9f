//! Heartbeat ingest: authenticated heartbeats per second on one primary, against a bare
//! actix-web endpoint doing comparable HTTP work, measured in the same run with the same
//! load generator (SPEC benchmarks; docs/BENCHMARKS.md).
//!
//! The primary runs in-process with production configuration and logging (into a counting
//! sink) and `BENCH_NODES` registered secondaries. The load generator
//! (`common::heartbeat_load`) keeps `BENCH_CONNECTIONS` keep-alive HTTP/1.1 connections,
//! each sending one request at a time (closed loop) while cycling through its share of the
//! simulated nodes, so every request carries a real node's ID and key and authenticates.
//! Its client is a minimal hand-written HTTP/1.1 writer/reader over prebuilt request
//! bytes: on a machine this small the client shares the CPUs with the server, and the
//! cheaper it is the less it flatters the slower target. The bare endpoint has the same route shape, parses the same JSON body into the
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
use fleetdeck::nodes::NodeId;
use fleetdeck::protocol::{Heartbeat, HeartbeatReply};

use common::heartbeat_load::{
    PhaseResult, Window, build_requests, heartbeat_body, percentile, prime, register_nodes, run_load,
};
use common::{ms, verdict};

const TARGET_RATIO: f64 = 0.5;
const TARGET_P99: Duration = Duration::from_millis(20);
/// A `/metrics` scrape with every node in the cache (issue 14).
const TARGET_SCRAPE: Duration = Duration::from_millis(50);
const SCRAPES: usize = 100;

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
        let num = common::env_number;
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
    let server_rt = common::server_runtime();
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
    let primary_requests = Arc::new(build_requests(app.address().unwrap(), &nodes, &body));
    let bare_requests = Arc::new(build_requests(bare_addr, &nodes, &body));

    // The first heartbeat of a node moves it from pending to online (a write); steady state
    // is what is measured, so every node sends one first, then the buffer is flushed.
    let started = Instant::now();
    let primed =
        client_rt.block_on(prime(app.address().unwrap(), primary_requests.clone(), settings.connections));
    server_rt.block_on(async { app.state().registry().unwrap().flush_heartbeats().await.unwrap() });
    println!(
        "primed: {primed} nodes online after one heartbeat each ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let mut results: Vec<(Target, PhaseResult)> = Vec::new();
    for round in 1..=settings.rounds {
        for target in [Target::Bare, Target::Primary] {
            let to = match target {
                Target::Bare => (bare_addr, bare_requests.clone()),
                Target::Primary => (app.address().unwrap(), primary_requests.clone()),
            };
            let window = Window { warmup: settings.warmup, measure: settings.measure };
            let lines_before = log_lines.load(std::sync::atomic::Ordering::Relaxed);
            let mut result = client_rt.block_on(run_load(&[to], settings.connections, window));
            result.log_lines = log_lines.load(std::sync::atomic::Ordering::Relaxed) - lines_before;
            println!("round {round}: {:<18} {}", target.name(), result.summary(settings.measure));
            results.push((target, result));
        }
    }
    let (rss, peak) = common::rss_mib();
    let scrapes = client_rt.block_on(scrape_metrics(app.address().unwrap(), settings.nodes));

    report(&settings, &results);
    report_scrapes(&scrapes);
    println!(
        "process RSS at the end: {rss:.0} MiB (peak {peak:.0} MiB; primary, bare endpoint and load generator together)"
    );

    server_rt.block_on(async {
        bare.stop(true).await;
        app.stop().await;
    });
}

/// `SCRAPES` scrapes of `/metrics` one after another, after the heartbeat rounds (every
/// node online, the request histograms filled): each one's time to the last byte, and the
/// size of the last.
async fn scrape_metrics(address: SocketAddr, nodes: usize) -> (Vec<u32>, usize) {
    let http = reqwest::Client::new();
    let url = format!("http://{address}/metrics");
    let mut times = Vec::with_capacity(SCRAPES);
    let mut size = 0;
    for _ in 0..SCRAPES {
        let started = Instant::now();
        let text = http.get(&url).send().await.unwrap().text().await.unwrap();
        times.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        size = text.len();
        // The primary counts itself among the online nodes.
        let online = format!("fleetdeck_nodes{{status=\"online\"}} {}", nodes + 1);
        assert!(text.lines().any(|l| l == online), "the scrape lacks {online:?}");
    }
    times.sort_unstable();
    (times, size)
}

fn report_scrapes((times, size): &(Vec<u32>, usize)) {
    let p99 = percentile(times, 99.0);
    println!();
    println!(
        "/metrics: {SCRAPES} scrapes, {size} bytes each: p50 {} ms, p99 {} ms, max {} ms",
        ms(percentile(times, 50.0)),
        ms(p99),
        ms(percentile(times, 100.0))
    );
    println!(
        "{}  a scrape at this many nodes takes {} ms at p99 (target: under {} ms)",
        verdict(p99 < TARGET_SCRAPE),
        ms(p99),
        TARGET_SCRAPE.as_millis()
    );
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
