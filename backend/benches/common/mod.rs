//! What the benchmarks share: a primary configured like production (but bound to loopback
//! on a random port and with the background health checker out of the way), production-like
//! logging into a counting sink, readings of this process's memory and per-thread CPU, and
//! the heartbeat load generator ([`heartbeat_load`]).

#![allow(dead_code)]

pub mod heartbeat_load;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleetdeck::Config;

/// A primary's configuration: production defaults except a loopback listener on a random
/// port, a data directory of its own, and `extra`.
pub fn primary_config(data_dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = HashMap::from([
        ("APP_ENV".into(), "production".into()),
        ("SERVER_ADDRESS".into(), "127.0.0.1:0".into()),
        ("DATA_DIR".into(), data_dir.display().to_string()),
        ("NODE_NAME".into(), "bench-primary".into()),
        ("NODE_API_ENDPOINT".into(), "http://127.0.0.1:9".into()),
        // The benchmarks drive sweeps themselves.
        ("HEALTH_CHECK_INTERVAL".into(), "1h".into()),
    ]);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_lookup(|name| env.get(name).cloned()).expect("bench configuration is valid")
}

/// Installs the subscriber production installs (`telemetry::init(json, !development)`: JSON
/// lines at `info`, or `RUST_LOG`), writing into a sink that counts lines instead of a
/// terminal, so the formatting cost is paid but the output does not drown the results.
pub fn install_production_logging() -> Arc<AtomicU64> {
    let lines = Arc::new(AtomicU64::new(0));
    let counter = lines.clone();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .json()
        .flatten_event(true)
        .with_writer(move || LineCounter(counter.clone()))
        .init();
    lines
}

struct LineCounter(Arc<AtomicU64>);

impl Write for LineCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let newlines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        self.0.fetch_add(newlines, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `nproc` and the CPU model, for the report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs ({model}); load average before start: {}", load.join(" "))
}

pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// A positive number from the environment (a benchmark's knob), else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// The runtime in-process primaries run on: one worker per CPU, as `#[tokio::main]` gives
/// production (actix adds its own worker threads).
pub fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(available_cpus())
        .thread_name("primary-rt")
        .thread_keep_alive(std::time::Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap()
}

/// This process's resident set size and its peak, in MiB (`VmRSS`, `VmHWM`).
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS (`VmHWM`) to the current RSS, so a later peak belongs to what ran
/// since.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time each thread of this process has used so far: thread ID → (name, nanoseconds),
/// from `/proc/self/task/*/schedstat`.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot(HashMap<u32, (String, u64)>);

impl CpuSnapshot {
    pub fn take() -> CpuSnapshot {
        CpuSnapshot::of_process("self")
    }

    /// The same for another process (`pid` as in `/proc/PID`).
    pub fn of_process(pid: &str) -> CpuSnapshot {
        let mut threads = HashMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return CpuSnapshot(threads) };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
            let ns = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
                .unwrap_or(0);
            threads.insert(tid, (name, ns));
        }
        CpuSnapshot(threads)
    }

    /// All CPU time used since `earlier`.
    pub fn total_since(&self, earlier: &CpuSnapshot) -> Duration {
        self.since(earlier, |_| "all").values().sum()
    }

    /// CPU time used since `earlier`, summed per group (`group` maps a thread name to its
    /// group). Threads that exited in between are missing, so keep thread pools alive.
    pub fn since(
        &self,
        earlier: &CpuSnapshot,
        group: impl Fn(&str) -> &'static str,
    ) -> HashMap<&'static str, Duration> {
        let mut out: HashMap<&'static str, Duration> = HashMap::new();
        for (tid, (name, ns)) in &self.0 {
            let before = earlier.0.get(tid).map_or(0, |(_, ns)| *ns);
            *out.entry(group(name)).or_default() += Duration::from_nanos(ns.saturating_sub(before));
        }
        out
    }
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Above this share of all CPUs used by other processes, a measurement is not comparable.
pub const DISTURBED_PCT: f64 = 10.0;

pub fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// The whole machine's CPU time from `/proc/stat`, to tell how much of it other processes
/// (another build, say) took while a benchmark ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    busy: Duration,
    steal: Duration,
}

impl MachineCpu {
    pub fn take() -> MachineCpu {
        // Jiffies of 1/100 s (USER_HZ) on every Linux architecture Fleetdeck targets.
        let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = line
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let field = |i: usize| Duration::from_millis(fields.get(i).copied().unwrap_or(0) * 10);
        // user nice system idle iowait irq softirq steal
        MachineCpu { busy: field(0) + field(1) + field(2) + field(5) + field(6), steal: field(7) }
    }

    /// Share of all CPUs over `wall` used by processes other than this one (whose own use
    /// was `ours`), and share stolen by the hypervisor, both in percent.
    pub fn others_since(&self, earlier: &MachineCpu, ours: Duration, wall: Duration) -> (f64, f64) {
        let capacity = wall.as_secs_f64() * available_cpus() as f64;
        let busy = self.busy.saturating_sub(earlier.busy).saturating_sub(ours);
        let steal = self.steal.saturating_sub(earlier.steal);
        (busy.as_secs_f64() / capacity * 100.0, steal.as_secs_f64() / capacity * 100.0)
    }
}
