//! Several primaries on one PostgreSQL, timed (docs/BENCHMARKS.md, "Several primaries"):
//! `cargo bench -p fleetdeck --bench cluster`. Each part runs on a throw-away database of
//! its own (created on `BENCH_DATABASE_URL`, dropped at the end).
//!
//! 1. **Failover** (`failover`): two primary *processes* (the release `fleetdeck` binary);
//!    the leader is SIGKILLed and the survivor's `/api/ready` is polled every 50 ms until it
//!    says `leader`; the killed one is restarted (same data directory and port) and the
//!    next kill waits until the pair agrees again, plus a random 0–2 s so kills fall at
//!    every phase of the survivor's 2 s lease round. Median and max over `BENCH_KILLS`
//!    (targets: median under 5 s, max under 10 s).
//! 2. **Live output across primaries** (`latency`): primaries A (leader) and B in this
//!    process, a secondary in this process reporting only to A, running `BENCH_JOBS` jobs
//!    at once that each print `BENCH_LINES` lines, one every `BENCH_LINE_INTERVAL_MS`; a
//!    WebSocket follower of each job on B (and one on A, for reference). Latency of a
//!    chunk = when B's frame is read here − the chunk's `at` (the time A recorded it).
//!    p50 and p99 over every chunk of every job (target: p99 under 1 s).
//! 3. **Heartbeat ingest, one primary against two** (`ingest`): the load generator of
//!    `heartbeat_ingest` (`common::heartbeat_load`) against primary A alone, then the same
//!    connections split across A and B (each node keeps to one), alternating for
//!    `BENCH_ROUNDS`; both in this process on one PostgreSQL. Rates and their ratio, with
//!    the CPU taken by the primaries, the load generator and PostgreSQL.
//!
//! Knobs (environment): BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres),
//! BENCH_KILLS (20), BENCH_JOBS (4), BENCH_LINES (2000), BENCH_LINE_INTERVAL_MS (5),
//! BENCH_NODES (10000),
//! BENCH_CONNECTIONS (64), BENCH_SECONDS (10), BENCH_WARMUP_SECONDS (2), BENCH_ROUNDS (3),
//! FLEETDECK_BIN (the `fleetdeck` binary cargo built with this benchmark).
//! `cargo bench -p fleetdeck --bench cluster -- failover` runs only the parts named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use fleetdeck::{App, Config};
use futures_util::StreamExt as _;
use rand::Rng as _;
use serde_json::{Value, json};

use common::heartbeat_load::{
    PhaseResult, Window, build_requests, heartbeat_body, percentile, prime, register_nodes, run_load,
};
use common::{MachineCpu, ms, verdict};

const FAILOVER_MEDIAN: Duration = Duration::from_secs(5);
const FAILOVER_MAX: Duration = Duration::from_secs(10);
const LATENCY_P99: Duration = Duration::from_secs(1);
/// Every primary's lease round (`cluster::lease::RENEW_EVERY`).
const LEASE_ROUND: Duration = Duration::from_secs(2);
/// The survivor's `/api/ready` is asked this often after a kill.
const POLL: Duration = Duration::from_millis(50);
/// Longer than this without a new leader counts as a failed failover.
const GIVE_UP: Duration = Duration::from_secs(60);

struct Settings {
    admin_url: String,
    kills: usize,
    jobs: usize,
    lines: usize,
    line_interval_ms: u64,
    nodes: usize,
    connections: usize,
    window: Window,
    rounds: usize,
    binary: PathBuf,
}

impl Settings {
    fn from_env() -> Settings {
        let num = common::env_number;
        let text = |name: &str, default: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
        };
        Settings {
            admin_url: text("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
            kills: num("BENCH_KILLS", 20) as usize,
            jobs: num("BENCH_JOBS", 4) as usize,
            lines: num("BENCH_LINES", 2000) as usize,
            line_interval_ms: num("BENCH_LINE_INTERVAL_MS", 5),
            nodes: num("BENCH_NODES", 10_000) as usize,
            connections: num("BENCH_CONNECTIONS", 64) as usize,
            window: Window {
                warmup: Duration::from_secs(num("BENCH_WARMUP_SECONDS", 2)),
                measure: Duration::from_secs(num("BENCH_SECONDS", 10)),
            },
            rounds: num("BENCH_ROUNDS", 3) as usize,
            binary: PathBuf::from(text("FLEETDECK_BIN", env!("CARGO_BIN_EXE_fleetdeck"))),
        }
    }
}

/// Whether the command line asks for this part (no names: every part).
fn wanted(part: &str) -> bool {
    let names: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    names.is_empty() || names.iter().any(|n| n == part)
}

fn main() {
    let settings = Settings::from_env();
    let log_lines = common::install_production_logging();
    println!("cluster benchmark (several primaries on one PostgreSQL)");
    println!("machine: {}", common::machine());
    println!("PostgreSQL: {}", postgres_version(&settings.admin_url));

    // As in heartbeat_ingest: the in-process primaries' tasks on a runtime with one worker
    // per CPU, the clients (load generator, WebSocket followers) on a runtime of their own.
    let server_rt = common::server_runtime();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .unwrap();

    let mut rows = Vec::new();
    if wanted("failover") {
        rows.extend(server_rt.block_on(failover(&settings)));
    }
    if wanted("latency") {
        rows.extend(live_output_latency(&settings, &server_rt, &client_rt));
    }
    if wanted("ingest") {
        rows.extend(ingest(&settings, &server_rt, &client_rt));
    }
    println!();
    println!("| measure | result | target | verdict |");
    println!("|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!("(log lines written by the in-process primaries: {})", log_lines.load(Ordering::Relaxed));
}

// ---------------------------------------------------------------------------------------
// The database and the primaries' settings

/// A database for one part, dropped (with whatever is still connected) at the end.
struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    fn create(admin: &str) -> ScratchDb {
        let name = format!("fleetdeck_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::PgConnection::establish(admin).expect("connect to BENCH_DATABASE_URL");
        conn.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&format!("/{name}"));
        ScratchDb { admin: admin.to_owned(), name, url: url.to_string() }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.admin) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

fn postgres_version(admin: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        server_version: String,
    }
    let mut conn = diesel::PgConnection::establish(admin).expect("connect to BENCH_DATABASE_URL");
    let version: Version =
        diesel::RunQueryDsl::get_result(diesel::sql_query("SHOW server_version"), &mut conn)
            .expect("SHOW server_version");
    format!("{} at {admin}", version.server_version)
}

/// The key every primary of one database shares: 32 random bytes, base64.
fn master_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// An in-process primary named `name` on `db`, production settings otherwise
/// (`common::primary_config`).
async fn in_process_primary(dir: &Path, db: &ScratchDb, key: &str, name: &str) -> App {
    let config = common::primary_config(
        dir,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("FLEETDECK_MASTER_KEY", key),
            ("NODE_NAME", name),
            ("NODE_API_ENDPOINT", ""),
        ],
    );
    App::build(config).await.unwrap()
}

fn http_client() -> reqwest::Client {
    // No idle connections kept: a killed primary's would fail the next poll.
    reqwest::Client::builder().timeout(Duration::from_secs(2)).pool_max_idle_per_host(0).build().unwrap()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// `role` of `/api/ready` (`leader`, `follower`), or `None` if it does not answer ready.
async fn role(http: &reqwest::Client, base: &str) -> Option<String> {
    get_json(http, &format!("{base}/api/ready")).await?["role"].as_str().map(str::to_owned)
}

/// Polls `f` every 50 ms until it gives `Some`; panics with `what` after `timeout`.
async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2 }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// 1. Failover after kill -9 of the leader

/// A primary running as a real `fleetdeck` process, on a port and data directory it keeps
/// across restarts.
struct PrimaryProcess {
    name: &'static str,
    url: String,
    vars: Vec<(String, String)>,
    dir: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl PrimaryProcess {
    fn new(name: &'static str, dir: &Path, db: &ScratchDb, key: &str, binary: &Path) -> PrimaryProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let vars = [
            ("NODE_IS_PRIMARY", "true"),
            ("DATABASE_URL", db.url.as_str()),
            ("FLEETDECK_MASTER_KEY", key),
            ("DATA_DIR", &dir.display().to_string()),
            ("SERVER_ADDRESS", &format!("127.0.0.1:{port}")),
            ("NODE_API_ENDPOINT", url.as_str()),
            ("NODE_NAME", name),
            ("LOG_JSON", "false"),
            ("APP_ENV", "development"),
            ("ENV_FILE", &dir.join("no.env").display().to_string()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        PrimaryProcess { name, url, vars, dir, binary: binary.to_owned(), child: None }
    }

    /// Starts the process and waits until it answers `/api/health`.
    async fn start(&mut self, http: &reqwest::Client) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("node.log")).unwrap();
        let child = Command::new(&self.binary)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let health = format!("{}/api/health", self.url);
        wait_for(Duration::from_secs(30), &format!("{} to answer /api/health", self.name), || async {
            get_json(http, &health).await.map(|_| ())
        })
        .await;
    }

    /// SIGKILL, and the zombie reaped.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrimaryProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One kill: which primary led, how long until the survivor led, the epochs before and
/// after.
struct Kill {
    leader: &'static str,
    delay: Duration,
    failover: Option<Duration>,
    epochs: (i64, i64),
}

async fn failover(settings: &Settings) -> Vec<String> {
    println!();
    println!(
        "1. failover after kill -9 of the leader: {} kills, binary {}",
        settings.kills,
        settings.binary.display()
    );
    let db = ScratchDb::create(&settings.admin_url);
    let dir = tempfile::tempdir().unwrap();
    let key = master_key();
    let http = http_client();
    let mut primaries = [
        PrimaryProcess::new("alpha", dir.path(), &db, &key, &settings.binary),
        PrimaryProcess::new("bravo", dir.path(), &db, &key, &settings.binary),
    ];
    for p in &mut primaries {
        p.start(&http).await;
    }

    let mut kills = Vec::with_capacity(settings.kills);
    for k in 1..=settings.kills {
        // The pair agrees: one leader, one follower, and /api/cluster names the leader.
        let urls = [primaries[0].url.clone(), primaries[1].url.clone()];
        let (leading, epoch) = wait_for(Duration::from_secs(60), "one leader and one follower", || async {
            let roles = [role(&http, &urls[0]).await?, role(&http, &urls[1]).await?];
            let leading = match (roles[0].as_str(), roles[1].as_str()) {
                ("leader", "follower") => 0,
                ("follower", "leader") => 1,
                _ => return None,
            };
            let view = get_json(&http, &format!("{}/api/cluster", urls[1 - leading])).await?;
            let epoch = view["leader"]["epoch"].as_i64()?;
            Some((leading, epoch))
        })
        .await;
        // Kills land anywhere in the survivor's lease round.
        let delay = Duration::from_millis(rand::thread_rng().gen_range(0..millis(LEASE_ROUND)));
        tokio::time::sleep(delay).await;

        let survivor = primaries[1 - leading].url.clone();
        let killed_at = Instant::now();
        primaries[leading].kill();
        let mut failover = None;
        while killed_at.elapsed() < GIVE_UP {
            if role(&http, &survivor).await.as_deref() == Some("leader") {
                failover = Some(killed_at.elapsed());
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let after = get_json(&http, &format!("{survivor}/api/cluster")).await;
        let new_epoch = after.as_ref().and_then(|v| v["leader"]["epoch"].as_i64()).unwrap_or(-1);
        let kill = Kill { leader: primaries[leading].name, delay, failover, epochs: (epoch, new_epoch) };
        println!(
            "  kill {k:>2}: leader {} (epoch {}) killed {} after agreement; {} led after {} (epoch {})",
            kill.leader,
            kill.epochs.0,
            secs(kill.delay),
            primaries[1 - leading].name,
            kill.failover.map_or_else(|| format!("more than {}", secs(GIVE_UP)), secs),
            kill.epochs.1,
        );
        if failover.is_none() {
            println!("  survivor's log:\n{}", primaries[1 - leading].log_tail());
        }
        kills.push(kill);
        primaries[leading].start(&http).await;
    }
    for p in &mut primaries {
        p.kill();
    }

    let failed = kills.iter().filter(|k| k.failover.is_none()).count();
    let mut times: Vec<Duration> = kills.iter().map(|k| k.failover.unwrap_or(GIVE_UP)).collect();
    times.sort();
    let (med, max, min) = (median(&times), times[times.len() - 1], times[0]);
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    println!(
        "  failover over {} kills: min {}, median {}, mean {}, max {}{}",
        times.len(),
        secs(min),
        secs(med),
        secs(mean),
        secs(max),
        if failed > 0 {
            format!(" ({failed} without a new leader within {})", secs(GIVE_UP))
        } else {
            String::new()
        }
    );
    vec![
        format!(
            "| failover after kill -9, median of {} kills (min {}, mean {}) | {} | < 5 s | {} |",
            times.len(),
            secs(min),
            secs(mean),
            secs(med),
            verdict(med < FAILOVER_MEDIAN && failed == 0)
        ),
        format!("| failover after kill -9, max | {} | < 10 s | {} |", secs(max), verdict(max < FAILOVER_MAX)),
    ]
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------
// 2. Live output across primaries

/// A secondary's configuration from the `.env` its primary handed out, reporting to
/// `primary` only, running up to `max_jobs` at once.
fn secondary_config(data_dir: &Path, added: &Value, port: u16, primary: &str, max_jobs: usize) -> Config {
    let mut env: HashMap<String, String> = added["env"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    env.insert("DATA_DIR".into(), data_dir.display().to_string());
    env.insert("SERVER_ADDRESS".into(), format!("127.0.0.1:{port}"));
    env.insert("NODE_API_ENDPOINT".into(), format!("http://127.0.0.1:{port}"));
    env.insert("PRIMARY_NODE_URL".into(), primary.to_owned());
    env.insert("HEARTBEAT_INTERVAL".into(), "1s".into());
    env.insert("NODE_MAX_JOBS".into(), max_jobs.to_string());
    Config::from_lookup(|name| env.get(name).cloned()).expect("secondary configuration is valid")
}

/// What one WebSocket follower of the job saw.
#[derive(Debug, Default)]
struct Followed {
    /// Receive time − `at`, per chunk, sorted.
    latencies: Vec<Duration>,
    text: String,
    in_order: bool,
    ended: bool,
}

/// Follows the job on `base` from the start until its `end` message.
async fn follow(base: String, job: String) -> Followed {
    let ws_url = format!("{}/api/jobs/{job}/logs/ws", base.replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url).unwrap();
    request.headers_mut().insert("Origin", base.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut seen = Followed { in_order: true, ..Followed::default() };
    let mut next_seq = 0;
    while let Some(Ok(message)) = socket.next().await {
        let received = SystemTime::now();
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        match v["type"].as_str() {
            Some("chunk") => {
                let at = humantime::parse_rfc3339(v["at"].as_str().unwrap()).unwrap();
                // `at` has whole milliseconds (rounded down): up to 1 ms is added here.
                seen.latencies.push(received.duration_since(at).unwrap_or(Duration::ZERO));
                seen.in_order &= v["seq"].as_u64() == Some(next_seq);
                next_seq += 1;
                seen.text.push_str(v["text"].as_str().unwrap());
            }
            Some("end") => {
                seen.ended = true;
                break;
            }
            _ => {}
        }
    }
    seen.latencies.sort();
    seen
}

fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn live_output_latency(
    settings: &Settings,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
) -> Vec<String> {
    println!();
    println!(
        "2. live output across primaries: {} job(s) at once, {} lines each, one every {} ms, stored on A, followed on B",
        settings.jobs, settings.lines, settings.line_interval_ms
    );
    let db = ScratchDb::create(&settings.admin_url);
    let dir = tempfile::tempdir().unwrap();
    let key = master_key();
    let http = http_client();
    let (a, b, secondary, jobs) = server_rt.block_on(async {
        let a = in_process_primary(&dir.path().join("a"), &db, &key, "alpha").await;
        wait_for(Duration::from_secs(20), "A to lead", || async {
            (role(&http, &a.url().unwrap()).await.as_deref() == Some("leader")).then_some(())
        })
        .await;
        let b = in_process_primary(&dir.path().join("b"), &db, &key, "bravo").await;
        wait_for(Duration::from_secs(20), "B to follow", || async {
            (role(&http, &b.url().unwrap()).await.as_deref() == Some("follower")).then_some(())
        })
        .await;

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let added: Value = http
            .post(format!("{}/api/nodes", a.url().unwrap()))
            .json(&json!({ "name": "worker", "api_endpoint": format!("http://127.0.0.1:{port}") }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let node_id = added["node"]["id"].as_str().unwrap().to_owned();
        let config =
            secondary_config(&dir.path().join("worker"), &added, port, &a.url().unwrap(), settings.jobs);
        let secondary = App::build(config).await.unwrap();
        let node_url = format!("{}/api/nodes/{node_id}", a.url().unwrap());
        wait_for(Duration::from_secs(20), "the worker to be online", || async {
            let node = get_json(&http, &node_url).await?;
            (node["status"] == "online" && node["max_jobs"].as_u64() >= Some(settings.jobs as u64))
                .then_some(())
        })
        .await;

        // A second's pause first, so the followers are connected before the first line.
        let interval =
            format!("{}.{:03}", settings.line_interval_ms / 1000, settings.line_interval_ms % 1000);
        let command = format!(
            "sleep 1; i=0; while [ $i -lt {} ]; do i=$((i+1)); echo line $i; sleep {interval}; done",
            settings.lines
        );
        let mut jobs = Vec::new();
        for _ in 0..settings.jobs {
            let submitted: Value = http
                .post(format!("{}/api/jobs", a.url().unwrap()))
                .json(&json!({ "command": command, "node_id": node_id }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            jobs.push(submitted["id"].as_str().unwrap().to_owned());
        }
        (a, b, secondary, jobs)
    });

    let started = Instant::now();
    let (on_b, on_a) = client_rt.block_on(async {
        let spawn_all = |base: String| -> Vec<_> {
            jobs.iter().map(|job| tokio::spawn(follow(base.clone(), job.clone()))).collect()
        };
        let (on_b, on_a) = (spawn_all(b.url().unwrap()), spawn_all(a.url().unwrap()));
        tokio::time::timeout(Duration::from_secs(600), async {
            let mut seen = (Vec::new(), Vec::new());
            for follower in on_b {
                seen.0.push(follower.await.unwrap());
            }
            for follower in on_a {
                seen.1.push(follower.await.unwrap());
            }
            seen
        })
        .await
        .expect("the jobs end within 10 minutes")
    });
    let took = started.elapsed();
    server_rt.block_on(async {
        secondary.stop().await;
        b.stop().await;
        a.stop().await;
    });

    let expected: String = (1..=settings.lines).map(|i| format!("line {i}\n")).collect();
    let complete = |followed: &[Followed]| {
        followed.iter().all(|f| f.ended && f.in_order && f.text == expected)
            && followed.len() == settings.jobs
    };
    let latencies = |followed: &[Followed]| {
        let mut all: Vec<Duration> = followed.iter().flat_map(|f| f.latencies.iter().copied()).collect();
        all.sort();
        all
    };
    let (b_latencies, a_latencies) = (latencies(&on_b), latencies(&on_a));
    for (name, followed, all) in
        [("B (other primary)", &on_b, &b_latencies), ("A (same primary)", &on_a, &a_latencies)]
    {
        println!(
            "  followers on {name}: {} chunks, p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; every line once and in order: {}",
            all.len(),
            ms(nearest_rank(all, 50.0)),
            ms(nearest_rank(all, 90.0)),
            ms(nearest_rank(all, 99.0)),
            ms(nearest_rank(all, 100.0)),
            complete(followed),
        );
    }
    println!("  the jobs ran {:.1} s", took.as_secs_f64());
    let p99 = nearest_rank(&b_latencies, 99.0);
    vec![
        format!(
            "| live output A → B, p50 ({} chunks of {} jobs; followers on A itself: p50 {} ms) | {} ms | | |",
            b_latencies.len(),
            settings.jobs,
            ms(nearest_rank(&a_latencies, 50.0)),
            ms(nearest_rank(&b_latencies, 50.0)),
        ),
        format!(
            "| live output A → B, p99 (on A itself: p99 {} ms) | {} ms | < 1 s | {} |",
            ms(nearest_rank(&a_latencies, 99.0)),
            ms(p99),
            verdict(p99 < LATENCY_P99 && !b_latencies.is_empty())
        ),
        format!(
            "| every line on B once, in order, then the end | {} | complete | {} |",
            complete(&on_b),
            verdict(complete(&on_b))
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// 3. Heartbeat ingest: one primary against two on one PostgreSQL

/// CPU time of every `postgres` process on this machine (the server and its backends), by
/// PID, from `/proc/PID/schedstat` (PostgreSQL runs one thread per process).
#[derive(Debug, Default)]
struct PostgresCpu(HashMap<u32, u64>);

impl PostgresCpu {
    fn take() -> PostgresCpu {
        let mut pids = HashMap::new();
        let Ok(procs) = std::fs::read_dir("/proc") else { return PostgresCpu(pids) };
        for entry in procs.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let path = entry.path();
            if std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim() != "postgres" {
                continue;
            }
            let ns = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
                .unwrap_or(0);
            pids.insert(pid, ns);
        }
        PostgresCpu(pids)
    }

    fn since(&self, earlier: &PostgresCpu) -> Duration {
        let ns: u64 =
            self.0.iter().map(|(pid, ns)| ns.saturating_sub(earlier.0.get(pid).copied().unwrap_or(0))).sum();
        Duration::from_nanos(ns)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primaries {
    One,
    Two,
}

impl Primaries {
    fn name(self) -> &'static str {
        match self {
            Primaries::One => "1 primary",
            Primaries::Two => "2 primaries",
        }
    }
}

/// One measured window, with the CPU PostgreSQL and the rest of the machine took.
struct Phase {
    primaries: Primaries,
    result: PhaseResult,
    postgres: Duration,
    machine_busy: Duration,
}

fn ingest(
    settings: &Settings,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
) -> Vec<String> {
    println!();
    println!(
        "3. heartbeat ingest, one primary against two on one PostgreSQL: {} simulated secondaries, {} connections on 1 load-generator thread, {} s warm-up + {} s measured, {} round(s)",
        settings.nodes,
        settings.connections,
        settings.window.warmup.as_secs(),
        settings.window.measure.as_secs(),
        settings.rounds
    );
    let db = ScratchDb::create(&settings.admin_url);
    let dir = tempfile::tempdir().unwrap();
    let key = master_key();
    let http = http_client();

    let a = server_rt.block_on(async {
        let a = in_process_primary(&dir.path().join("a"), &db, &key, "alpha").await;
        wait_for(Duration::from_secs(20), "A to lead", || async {
            (role(&http, &a.url().unwrap()).await.as_deref() == Some("leader")).then_some(())
        })
        .await;
        a
    });
    let started = Instant::now();
    let body = heartbeat_body();
    let nodes = server_rt.block_on(register_nodes(&a, settings.nodes));
    println!("  registered {} nodes on A in {:.1} s", nodes.len(), started.elapsed().as_secs_f64());
    let to_a = Arc::new(build_requests(a.address().unwrap(), &nodes, &body));
    let started = Instant::now();
    let primed = client_rt.block_on(prime(a.address().unwrap(), to_a.clone(), settings.connections));
    server_rt.block_on(async { a.state().registry().unwrap().flush_heartbeats().await.unwrap() });
    println!(
        "  primed: {primed} nodes online after one heartbeat each ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // B starts after the nodes are online, and loads them so from the database.
    let b = server_rt.block_on(async {
        let b = in_process_primary(&dir.path().join("b"), &db, &key, "bravo").await;
        wait_for(Duration::from_secs(20), "B to follow", || async {
            (role(&http, &b.url().unwrap()).await.as_deref() == Some("follower")).then_some(())
        })
        .await;
        b
    });
    let to_b = Arc::new(build_requests(b.address().unwrap(), &nodes, &body));

    let mut phases = Vec::new();
    for round in 1..=settings.rounds {
        for primaries in [Primaries::One, Primaries::Two] {
            let targets = match primaries {
                Primaries::One => vec![(a.address().unwrap(), to_a.clone())],
                Primaries::Two => {
                    vec![(a.address().unwrap(), to_a.clone()), (b.address().unwrap(), to_b.clone())]
                }
            };
            let window = settings.window;
            let (result, postgres, machine_busy) = client_rt.block_on(async {
                // PostgreSQL's CPU over the same window as the load generator's own sampler.
                let from = Instant::now() + window.warmup;
                let sampler = tokio::spawn(async move {
                    tokio::time::sleep_until(from.into()).await;
                    let before = (PostgresCpu::take(), MachineCpu::take());
                    tokio::time::sleep(window.measure).await;
                    let machine = MachineCpu::take().others_since(&before.1, Duration::ZERO, window.measure);
                    (PostgresCpu::take().since(&before.0), machine.0)
                });
                let result = run_load(&targets, settings.connections, window).await;
                let (postgres, busy_pct) = sampler.await.unwrap();
                let capacity = window.measure.as_secs_f64() * common::available_cpus() as f64;
                (result, postgres, Duration::from_secs_f64(busy_pct / 100.0 * capacity))
            });
            println!(
                "  round {round}: {:<12} {}  ({})",
                primaries.name(),
                result.summary(window.measure),
                split(&result, window.measure)
            );
            phases.push(Phase { primaries, result, postgres, machine_busy });
        }
    }
    server_rt.block_on(async {
        b.stop().await;
        a.stop().await;
    });
    report_ingest(settings, &phases)
}

/// Requests per second per primary.
fn split(result: &PhaseResult, measure: Duration) -> String {
    let rates: Vec<String> = result
        .per_target
        .iter()
        .zip(["A", "B"])
        .map(|(n, name)| format!("{name} {:.0}/s", *n as f64 / measure.as_secs_f64()))
        .collect();
    rates.join(", ")
}

fn report_ingest(settings: &Settings, phases: &[Phase]) -> Vec<String> {
    let measured = settings.window.measure.as_secs_f64();
    let capacity = measured * common::available_cpus() as f64;
    let pct = |d: Duration| d.as_secs_f64() / capacity * 100.0;
    println!();
    println!(
        "  {:<12} {:>9} {:>6} {:>9} {:>7} {:>7}   {:>8} {:>8} {:>8} {:>8} {:>8}   {:>7} {:>7} {:>7} {:>7}",
        "primaries",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "servers",
        "loadgen",
        "postgres",
        "others",
        "all CPUs",
        "µs srv",
        "µs gen",
        "µs pg",
        "µs all"
    );
    let mut totals: HashMap<&'static str, (usize, Vec<u32>)> = HashMap::new();
    for phase in phases {
        let r = &phase.result;
        let group = |names: &[&str]| -> Duration {
            r.cpu.iter().filter(|(g, _)| names.contains(g)).map(|(_, d)| *d).sum()
        };
        let servers =
            group(&["server workers", "server acceptor", "handler blocking", "primary runtime", "other"]);
        let loadgen = group(&["load generator"]);
        let others = phase.machine_busy.saturating_sub(servers + loadgen + phase.postgres);
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / r.requests().max(1) as f64;
        println!(
            "  {:<12} {:>9} {:>6} {:>9.0} {:>7} {:>7}   {:>7.0}% {:>7.0}% {:>7.0}% {:>7.0}% {:>7.0}%   {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
            phase.primaries.name(),
            r.requests(),
            r.error_count(),
            r.requests() as f64 / measured,
            ms(r.percentile(50.0)),
            ms(r.percentile(99.0)),
            pct(servers),
            pct(loadgen),
            pct(phase.postgres),
            pct(others),
            pct(phase.machine_busy),
            per_request(servers),
            per_request(loadgen),
            per_request(phase.postgres),
            per_request(servers + loadgen + phase.postgres),
        );
        if !r.errors.is_empty() {
            println!("      non-200 answers by status (0 = I/O error): {:?}", r.errors);
        }
        let total = totals.entry(phase.primaries.name()).or_default();
        total.0 += 1;
        total.1.extend_from_slice(&r.latencies_us);
    }
    println!(
        "  (share of the machine's {} CPUs over each window: servers = the in-process primaries' threads, loadgen = the load generator's, postgres = every postgres process, others = everything else; µs: CPU time per heartbeat answered of servers, load generator, PostgreSQL, and the three together)",
        common::available_cpus()
    );
    let mut summarize = |primaries: Primaries| {
        let (rounds, mut latencies) = totals.remove(primaries.name()).unwrap_or_default();
        latencies.sort_unstable();
        let rps = latencies.len() as f64 / (measured * rounds.max(1) as f64);
        (rps, percentile(&latencies, 50.0), percentile(&latencies, 99.0))
    };
    let (one, one_p50, one_p99) = summarize(Primaries::One);
    let (two, two_p50, two_p99) = summarize(Primaries::Two);
    let ratio = if one > 0.0 { two / one } else { 0.0 };
    let errors: u64 = phases.iter().map(|p| p.result.error_count()).sum();
    println!(
        "  all rounds: 1 primary {one:.0} req/s (p50 {} ms, p99 {} ms); 2 primaries {two:.0} req/s (p50 {} ms, p99 {} ms); ratio {ratio:.2}",
        ms(one_p50),
        ms(one_p99),
        ms(two_p50),
        ms(two_p99)
    );
    vec![
        format!(
            "| heartbeats, 1 primary on PostgreSQL ({} nodes, {} connections; p99 {} ms) | {one:.0} req/s | | |",
            settings.nodes,
            settings.connections,
            ms(one_p99)
        ),
        format!(
            "| heartbeats, same load split over 2 primaries (p99 {} ms) | {two:.0} req/s | | |",
            ms(two_p99)
        ),
        format!("| ratio 2 primaries / 1 | {ratio:.2} | (no target; see docs) | |"),
        format!(
            "| every heartbeat answered 200 | {errors} other answers | none | {} |",
            verdict(errors == 0)
        ),
    ]
}
