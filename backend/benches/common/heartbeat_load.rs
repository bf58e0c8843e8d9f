//! The heartbeat load generator the ingest benchmarks share (`heartbeat_ingest`, and the
//! one-versus-two-primaries part of `cluster`): simulated secondaries registered through
//! the registry, their heartbeat requests prebuilt byte for byte, and closed-loop
//! keep-alive HTTP/1.1 connections that send them. The client is a minimal hand-written
//! HTTP/1.1 writer/reader: on a machine this small it shares the CPUs with the server, and
//! the cheaper it is the less it flatters the slower target.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck::App;
use fleetdeck::nodes::registry::NewNode;
use fleetdeck::nodes::{Labels, NodeName, NodeUrl};
use fleetdeck::protocol::Heartbeat;
use fleetdeck::stats::{NodeFacts, StatsCollector};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{CpuSnapshot, MachineCpu, ms};

pub const LABELS: [&str; 2] = ["amd64", "linux"];

/// A real snapshot of this machine, as a secondary's agent sends it.
pub fn heartbeat_body() -> Vec<u8> {
    let dir = std::env::temp_dir();
    let collector = StatsCollector::new(NodeFacts {
        labels: LABELS.map(str::to_owned).to_vec(),
        max_jobs: 2,
        data_dir: dir,
    });
    let heartbeat = Heartbeat {
        version: fleetdeck::VERSION.to_owned(),
        connect: fleetdeck::protocol::Connect::Inbound,
        labels: Some(LABELS.map(str::to_owned).to_vec()),
        max_jobs: 2,
        running_jobs: Vec::new(),
        stats: Some(collector.latest()),
        uptime_secs: 3600,
    };
    serde_json::to_vec(&heartbeat).unwrap()
}

/// Adds `n` secondaries through the registry (what `POST /api/nodes` does), a few at a
/// time, and returns their IDs and keys in order.
pub async fn register_nodes(app: &App, n: usize) -> Vec<(String, String)> {
    let registry = app.state().registry().unwrap();
    let labels = Labels::parse(&LABELS[..]).unwrap();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let new = NewNode {
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
            };
            async move {
                let issued = registry.create(new).await.unwrap();
                (issued.node.id.to_string(), issued.api_key.expose().to_owned())
            }
        })
        .buffered(8)
        .collect()
        .await
}

/// Every node's heartbeat request to `addr`, byte for byte as the agent's HTTP client
/// sends it.
pub fn build_requests(addr: SocketAddr, nodes: &[(String, String)], body: &[u8]) -> Vec<Vec<u8>> {
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

/// One keep-alive HTTP/1.1 connection sending one request at a time.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Sends `request` and reads the whole response; returns its status.
    pub async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<u16> {
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
pub async fn prime(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>, connections: usize) -> usize {
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
pub struct PhaseResult {
    /// Latency of each request completed in the window, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Responses other than 200 (by status) and I/O errors (status 0).
    pub errors: HashMap<u16, u64>,
    /// Requests completed in the window, per target (in the order given).
    pub per_target: Vec<usize>,
    pub cpu: HashMap<&'static str, Duration>,
    /// Percent of all CPUs used by other processes, and stolen by the hypervisor.
    pub others_pct: f64,
    pub steal_pct: f64,
    pub log_lines: u64,
}

impl PhaseResult {
    pub fn requests(&self) -> usize {
        self.latencies_us.len()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies_us, p)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn summary(&self, measure: Duration) -> String {
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
pub fn percentile(sorted_us: &[u32], p: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    Duration::from_micros(u64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]))
}

/// The thread groups CPU time is reported by (the benchmarks name their runtimes'
/// threads `primary-rt` and `loadgen`).
pub fn thread_group(name: &str) -> &'static str {
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

/// How long a load runs: `warmup`, then the measured window of `measure`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// Where the load goes: a server and every node's request to it (`build_requests`).
pub type Target = (SocketAddr, Arc<Vec<Vec<u8>>>);

/// Warm-up, then the measured window: `connections` closed-loop connections, each cycling
/// through its share of the nodes (connection `c` sends for nodes `c`, `c + connections`,
/// …). Connection `c` goes to `targets[c % targets.len()]`, so with several targets each
/// node keeps to one of them, as a real secondary keeps to its primary. Only requests
/// completed inside the window count.
pub async fn run_load(targets: &[Target], connections: usize, window: Window) -> PhaseResult {
    let start = Instant::now();
    let from = start + window.warmup;
    let until = from + window.measure;
    let targets_len = targets.len();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (addr, requests) = targets[c % targets_len].clone();
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
            (c % targets_len, latencies, errors)
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
    let mut result = PhaseResult { per_target: vec![0; targets_len], ..PhaseResult::default() };
    for task in tasks {
        let (target, latencies, errors) = task.await.unwrap();
        result.per_target[target] += latencies.len();
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
