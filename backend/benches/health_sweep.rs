//! Health sweep: one full sweep of the health checker over 10,000 registered secondaries,
//! timed, with the primary's memory (SPEC benchmarks; docs/BENCHMARKS.md).
//!
//! The nodes are simulated cheaply: one stub server, in a child process of this benchmark
//! so that its memory is not counted as the primary's, answers
//! `GET /n/<i>/api/internal/system/stats` for every node `i` with a real stats snapshot,
//! after checking the key the primary presents (so a wrong key shows up as failures). One
//! node in ten has an endpoint on a closed loopback port and fails at once (connection
//! refused). The primary runs in-process with production configuration (HEALTH_CHECK_TIMEOUT
//! and HEALTH_CHECK_CONCURRENCY at their defaults, logging into a counting sink); its own
//! background checker is set to a one-hour tick and the sweeps are driven by calling
//! `HealthChecker::run_once` directly.
//!
//! Forty sweeps run back to back: the first moves 9,000 nodes from pending to online (a
//! status change, history row and event each); the closed-port nodes are probed in sweeps
//! 1-3 and then back off; the rest is steady state. The RSS keeps growing for dozens of
//! sweeps (glibc's per-thread arenas keep what each sweep's churn frees), so a short run
//! understates it. RSS is this process's (`VmRSS`), peak (`VmHWM`) reset before each sweep.
//!
//! Knobs (environment): BENCH_NODES (10000), BENCH_SWEEPS (40), BENCH_STUB_WORKERS (1).
//!
//! `cargo bench -p fleetdeck --bench health_sweep`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use fleetdeck::App;
use fleetdeck::nodes::registry::NewNode;
use fleetdeck::nodes::{Labels, NodeName, NodeUrl};
use fleetdeck::secrets::ApiKey;
use fleetdeck::stats::{NodeFacts, StatsCollector};

use common::{CpuSnapshot, MachineCpu, verdict};

const TARGET_SWEEP: Duration = Duration::from_secs(5);
const TARGET_RSS_MIB: f64 = 150.0;
/// Set in the stub child's environment: the secret every node key is derived from.
const STUB_SALT_VAR: &str = "FLEETDECK_BENCH_STUB_SALT";

fn node_key(salt: &str, i: usize) -> String {
    format!("{salt}-{i:05}")
}

fn main() {
    if let Ok(salt) = std::env::var(STUB_SALT_VAR) {
        run_stub(&salt);
        return;
    }
    let nodes = env_number("BENCH_NODES", 10_000);
    let sweeps = env_number("BENCH_SWEEPS", 40);
    let log_lines = common::install_production_logging();
    println!("health sweep benchmark");
    println!("machine: {}", common::machine());

    let salt = fleetdeck::secrets::random_token(24);
    let mut stub = StubProcess::start(&salt);
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let rt = common::server_runtime();
    let data_dir = tempfile::tempdir().unwrap();
    let mut sweep_results = Vec::new();
    rt.block_on(async {
        let (rss_before, _) = common::rss_mib();
        let app = App::build(common::primary_config(data_dir.path(), &[])).await.unwrap();
        let config = &app.state().config;
        println!(
            "{nodes} nodes: 90% answered by one stub server (127.0.0.1:{}), 10% on a closed port (127.0.0.1:{closed_port}); HEALTH_CHECK_CONCURRENCY={} HEALTH_CHECK_TIMEOUT={}",
            stub.port,
            config.health_check_concurrency,
            humantime::format_duration(config.health_check_timeout)
        );
        let (rss_started, _) = common::rss_mib();

        let registry = app.state().registry().unwrap();
        let started = Instant::now();
        for i in 0..nodes {
            let port = if i % 10 == 9 { closed_port } else { stub.port };
            registry
                .create(NewNode {
                    id: None,
                    name: NodeName::parse(&format!("sweep-{i:05}")).unwrap(),
                    api_endpoint: NodeUrl::parse(&format!("http://127.0.0.1:{port}/n/{i}")).unwrap(),
                    api_key: Some(ApiKey::parse(&node_key(&salt, i)).unwrap()),
                    labels: Labels::default(),
                })
                .await
                .unwrap();
        }
        let (rss_registered, _) = common::rss_mib();
        println!(
            "registered {nodes} nodes in {:.1} s; RSS {rss_before:.0} MiB before the primary, {rss_started:.0} MiB started, {rss_registered:.0} MiB with the nodes",
            started.elapsed().as_secs_f64()
        );

        let checker = app.state().checker().unwrap();
        for sweep in 1..=sweeps {
            common::reset_peak_rss();
            let lines_before = log_lines.load(std::sync::atomic::Ordering::Relaxed);
            let cpu_before = (CpuSnapshot::take(), CpuSnapshot::of_process(&stub.pid()), MachineCpu::take());
            let started = Instant::now();
            // On a runtime worker, as the checker's own loop runs it (not on this thread).
            let sweeping = checker.clone();
            let report = tokio::spawn(async move { sweeping.run_once().await }).await.unwrap().unwrap();
            let elapsed = started.elapsed();
            let cpu_primary = CpuSnapshot::take().total_since(&cpu_before.0);
            let cpu_stub = CpuSnapshot::of_process(&stub.pid()).total_since(&cpu_before.1);
            let (others, steal) = MachineCpu::take().others_since(&cpu_before.2, cpu_primary + cpu_stub, elapsed);
            let (rss, peak) = common::rss_mib();
            let counts = registry.counts();
            let counts: Vec<String> =
                counts.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{} {n}", s.as_str())).collect();
            let result = SweepResult {
                sweep,
                elapsed,
                probed: report.probed,
                failed: report.failed,
                skipped: report.skipped_busy,
                cpu_primary,
                cpu_stub,
                rss,
                peak,
                others_pct: others + steal,
                log_lines: log_lines.load(std::sync::atomic::Ordering::Relaxed) - lines_before,
                counts: counts.join(", "),
            };
            println!("sweep {sweep}: {:.2} s, {} probed, {} failed; nodes now: {}", elapsed.as_secs_f64(), report.probed, report.failed, result.counts);
            sweep_results.push(result);
        }
        app.stop().await;
    });
    stub.stop();
    report(nodes, &sweep_results);
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

struct SweepResult {
    sweep: usize,
    elapsed: Duration,
    probed: usize,
    failed: usize,
    skipped: usize,
    cpu_primary: Duration,
    cpu_stub: Duration,
    others_pct: f64,
    rss: f64,
    peak: f64,
    log_lines: u64,
    counts: String,
}

fn report(nodes: usize, results: &[SweepResult]) {
    println!();
    println!(
        "{:>5} {:>8} {:>7} {:>7} {:>7} {:>9} {:>12} {:>10} {:>7} {:>8} {:>9} {:>9}",
        "sweep",
        "time s",
        "probed",
        "failed",
        "busy",
        "probes/s",
        "primary CPU",
        "stub CPU",
        "others",
        "RSS MiB",
        "peak MiB",
        "log lines"
    );
    for r in results {
        println!(
            "{:>5} {:>8.2} {:>7} {:>7} {:>7} {:>9.0} {:>11.2}s {:>9.2}s {:>6.0}% {:>8.0} {:>9.0} {:>9}",
            r.sweep,
            r.elapsed.as_secs_f64(),
            r.probed,
            r.failed,
            r.skipped,
            r.probed as f64 / r.elapsed.as_secs_f64(),
            r.cpu_primary.as_secs_f64(),
            r.cpu_stub.as_secs_f64(),
            r.others_pct,
            r.rss,
            r.peak,
            r.log_lines,
        );
    }
    println!(
        "(busy: nodes skipped because a probe was in flight; CPU: time used during the sweep; others: share of all CPUs used by other processes or stolen; RSS and peak: this process, i.e. the primary plus the benchmark's bookkeeping; the stub runs in its own process)"
    );
    let disturbed = results.iter().filter(|r| r.others_pct > common::DISTURBED_PCT).count();
    if disturbed > 0 {
        println!(
            "NOTE: other processes used more than {:.0}% of the CPUs during {disturbed} of {} sweeps; \
             those figures are not comparable. Rerun on a quiet machine.",
            common::DISTURBED_PCT,
            results.len()
        );
    }
    println!();
    let slowest = results.iter().map(|r| r.elapsed).max().unwrap_or_default();
    let peak = results.iter().map(|r| r.peak).fold(0.0, f64::max);
    // Closed-port nodes are probed while they have fewer than three failures, then back
    // off (2 min): sweeps 1-3 probe all nodes, later ones only the reachable nodes.
    let closed = nodes / 10;
    let reachable = nodes - closed;
    let as_expected = results.iter().all(|r| {
        r.skipped == 0
            && r.probed - r.failed == reachable
            && r.failed == if r.sweep <= 3 { closed } else { 0 }
    });
    println!(
        "{}  slowest full sweep of {nodes} nodes {:.2} s (target: under {} s)",
        verdict(slowest < TARGET_SWEEP),
        slowest.as_secs_f64(),
        TARGET_SWEEP.as_secs()
    );
    println!(
        "{}  primary peak RSS {peak:.0} MiB (target: under {TARGET_RSS_MIB:.0} MiB)",
        verdict(peak < TARGET_RSS_MIB)
    );
    println!(
        "{}  every reachable node probed and healthy in every sweep; the {closed} closed-port nodes failing until they back off",
        verdict(as_expected)
    );
}

/// The stub as a child process: started with the salt in its environment, it prints its
/// port and serves until its stdin closes (so it also ends if this process dies).
struct StubProcess {
    child: std::process::Child,
    port: u16,
}

impl StubProcess {
    fn start(salt: &str) -> StubProcess {
        let workers = env_number("BENCH_STUB_WORKERS", 1);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(STUB_SALT_VAR, salt)
            .env("BENCH_STUB_WORKERS", workers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("the stub prints its port");
        StubProcess { child, port }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for StubProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The stub server: answers any node's stats probe that presents that node's key.
fn run_stub(salt: &str) {
    let workers = env_number("BENCH_STUB_WORKERS", 1);
    let collector =
        StatsCollector::new(NodeFacts { labels: Vec::new(), max_jobs: 2, data_dir: std::env::temp_dir() });
    let body = web::Bytes::from(serde_json::to_vec(&collector.latest()).unwrap());
    let salt = salt.to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(move || {
            let body = body.clone();
            let salt = salt.clone();
            actix_web::App::new().route(
                "/n/{i}/api/internal/system/stats",
                web::get().to(move |req: HttpRequest, path: web::Path<usize>| {
                    let expected = node_key(&salt, path.into_inner());
                    let presented = req.headers().get("x-node-api-key").and_then(|v| v.to_str().ok());
                    let has_id = req.headers().contains_key("x-node-id");
                    let response = if has_id && presented == Some(expected.as_str()) {
                        HttpResponse::Ok().content_type("application/json").body(body.clone())
                    } else {
                        HttpResponse::Unauthorized().finish()
                    };
                    async move { response }
                }),
            )
        })
        .listen(listener)
        .unwrap()
        .disable_signals()
        .workers(workers)
        .backlog(4096)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        println!("PORT {port}");
        // Serve until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        handle.stop(false).await;
    });
}
