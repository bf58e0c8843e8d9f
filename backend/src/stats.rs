//! This machine's system stats (SPEC §7), sampled in the background so that serving them —
//! to health probes and in heartbeats — costs nothing but a clone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{Components, CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System};
use tokio_util::sync::CancellationToken;

use crate::clock::Timestamp;

/// One snapshot of a node's system.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SystemStats {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub version: String,
    #[cfg_attr(test, ts(type = "number"))]
    pub uptime_secs: u64,
    pub cpu_count: usize,
    pub cpu_usage_percent: f64,
    pub load_average: LoadAverage,
    pub memory: Memory,
    pub disks: Vec<DiskUsage>,
    /// Network throughput, every interface but loopback (0 on the first sample).
    #[serde(default)]
    pub network: NetworkRates,
    /// Disk throughput, every disk (0 on the first sample).
    #[serde(default)]
    pub disk_io: DiskRates,
    /// Temperature sensors, where the OS exposes them (none in most VMs).
    #[serde(default)]
    pub temperatures: Vec<Temperature>,
    #[serde(default)]
    pub running_jobs: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub max_jobs: u32,
    pub collected_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Memory {
    #[cfg_attr(test, ts(type = "number"))]
    pub total_bytes: u64,
    #[cfg_attr(test, ts(type = "number"))]
    pub used_bytes: u64,
    #[cfg_attr(test, ts(type = "number"))]
    pub available_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DiskUsage {
    /// The path asked about (`DATA_DIR` or `/`).
    pub path: String,
    pub mount_point: String,
    #[cfg_attr(test, ts(type = "number"))]
    pub total_bytes: u64,
    #[cfg_attr(test, ts(type = "number"))]
    pub used_bytes: u64,
}

/// Bytes per second received and sent over the last sampling interval.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NetworkRates {
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
}

/// Bytes per second read and written over the last sampling interval.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DiskRates {
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
}

/// One temperature sensor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Temperature {
    pub label: String,
    pub celsius: f64,
}

impl SystemStats {
    /// The disk figures charts use: those of the data directory's filesystem.
    pub fn data_disk(&self) -> (u64, u64) {
        self.disks.first().map_or((0, 0), |d| (d.used_bytes, d.total_bytes))
    }

    /// The hottest sensor's temperature, if there is one.
    pub fn hottest(&self) -> Option<f64> {
        self.temperatures.iter().map(|t| t.celsius).reduce(f64::max)
    }
}

/// What every snapshot carries about the node itself, besides the machine.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub labels: Vec<String>,
    pub max_jobs: u32,
    pub data_dir: PathBuf,
}

/// Holds the latest snapshot; `run` refreshes it until cancelled.
#[derive(Debug, Clone)]
pub struct StatsCollector {
    latest: Arc<RwLock<SystemStats>>,
    facts: Arc<NodeFacts>,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(5);

impl StatsCollector {
    /// Takes a first snapshot right away (CPU usage and rates are 0 until the second sample).
    pub fn new(facts: NodeFacts) -> StatsCollector {
        let collector =
            StatsCollector { latest: Arc::new(RwLock::new(SystemStats::default())), facts: Arc::new(facts) };
        collector.sample(&mut Sampler::new());
        collector
    }

    /// The latest snapshot.
    pub fn latest(&self) -> SystemStats {
        self.latest.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Refreshes the snapshot every few seconds until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut sampler = Sampler::new();
        let mut interval = tokio::time::interval(SAMPLE_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let this = self.clone();
            // sysinfo reads /proc synchronously.
            sampler = match tokio::task::spawn_blocking(move || {
                this.sample(&mut sampler);
                sampler
            })
            .await
            {
                Ok(sampler) => sampler,
                Err(_) => Sampler::new(),
            };
        }
    }

    fn sample(&self, sampler: &mut Sampler) {
        let (network, disk_io) = sampler.refresh();
        let Sampler { system, disks, components, .. } = sampler;
        let load = System::load_average();
        let mut paths = vec![self.facts.data_dir.clone(), PathBuf::from("/")];
        paths.dedup();
        let stats = SystemStats {
            hostname: System::host_name().unwrap_or_default(),
            os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_owned()),
            kernel: System::kernel_version().unwrap_or_default(),
            version: crate::VERSION.to_owned(),
            uptime_secs: System::uptime(),
            cpu_count: system.cpus().len(),
            cpu_usage_percent: f64::from(system.global_cpu_usage()),
            load_average: LoadAverage { one: load.one, five: load.five, fifteen: load.fifteen },
            memory: Memory {
                total_bytes: system.total_memory(),
                used_bytes: system.used_memory(),
                available_bytes: system.available_memory(),
            },
            disks: paths.iter().filter_map(|p| disk_of(disks, p)).collect(),
            network,
            disk_io,
            temperatures: temperatures(components),
            running_jobs: Vec::new(),
            labels: self.facts.labels.clone(),
            max_jobs: self.facts.max_jobs,
            collected_at: Some(crate::clock::Clock::now(&crate::clock::SystemClock)),
        };
        *self.latest.write().unwrap_or_else(std::sync::PoisonError::into_inner) = stats;
    }
}

/// What sampling keeps from one sample to the next: sysinfo's handles, and the byte
/// counters of the last sample, which turn into rates.
struct Sampler {
    system: System,
    networks: Networks,
    disks: Disks,
    components: Components,
    last: Option<(Instant, Counters)>,
}

/// Bytes in all since boot: received, sent, read, written.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    rx: u64,
    tx: u64,
    read: u64,
    written: u64,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            system: System::new_with_specifics(refresh_kind()),
            networks: Networks::new_with_refreshed_list(),
            disks: Disks::new_with_refreshed_list(),
            components: Components::new_with_refreshed_list(),
            last: None,
        }
    }

    /// Refreshes everything; the throughput since the last refresh (0 the first time).
    fn refresh(&mut self) -> (NetworkRates, DiskRates) {
        self.system.refresh_specifics(refresh_kind());
        self.networks.refresh(true);
        self.disks.refresh(true);
        self.components.refresh(true);
        let now = (Instant::now(), self.counters());
        let rates = match self.last {
            Some((at, before)) => rates(before, now.1, now.0.duration_since(at)),
            None => (NetworkRates::default(), DiskRates::default()),
        };
        self.last = Some(now);
        rates
    }

    fn counters(&self) -> Counters {
        let mut counters = Counters::default();
        for (name, data) in &self.networks {
            if name != "lo" {
                counters.rx += data.total_received();
                counters.tx += data.total_transmitted();
            }
        }
        // A device mounted in several places is counted once.
        let mut seen = std::collections::HashSet::new();
        for disk in self.disks.list().iter().filter(|d| seen.insert(d.name().to_owned())) {
            let usage = disk.usage();
            counters.read += usage.total_read_bytes;
            counters.written += usage.total_written_bytes;
        }
        counters
    }
}

/// Bytes per second between two counter readings `elapsed` apart (a counter that went
/// back, say a removed interface, counts as nothing).
fn rates(before: Counters, now: Counters, elapsed: Duration) -> (NetworkRates, DiskRates) {
    let secs = elapsed.as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "byte counts far below 2^52 per interval")]
    let per_sec = |a: u64, b: u64| if secs > 0.0 { b.saturating_sub(a) as f64 / secs } else { 0.0 };
    (
        NetworkRates {
            rx_bytes_per_sec: per_sec(before.rx, now.rx),
            tx_bytes_per_sec: per_sec(before.tx, now.tx),
        },
        DiskRates {
            read_bytes_per_sec: per_sec(before.read, now.read),
            write_bytes_per_sec: per_sec(before.written, now.written),
        },
    )
}

/// The sensors that report a temperature, by label (at most 32).
fn temperatures(components: &Components) -> Vec<Temperature> {
    let mut list: Vec<Temperature> = components
        .list()
        .iter()
        .filter_map(|c| {
            let celsius = f64::from(c.temperature()?);
            celsius.is_finite().then(|| Temperature { label: c.label().to_owned(), celsius })
        })
        .collect();
    list.sort_by(|a, b| a.label.cmp(&b.label));
    list.truncate(32);
    list
}

fn refresh_kind() -> RefreshKind {
    RefreshKind::nothing()
        .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
        .with_memory(MemoryRefreshKind::nothing().with_ram())
}

/// The filesystem holding `path`: the disk with the longest mount point that prefixes it.
fn disk_of(disks: &Disks, path: &Path) -> Option<DiskUsage> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    disks
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| DiskUsage {
            path: path.display().to_string(),
            mount_point: d.mount_point().display().to_string(),
            total_bytes: d.total_space(),
            used_bytes: d.total_space().saturating_sub(d.available_space()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_bytes_per_second_and_never_negative() {
        let before = Counters { rx: 1_000, tx: 500, read: 10_000, written: 0 };
        let now = Counters { rx: 6_000, tx: 500, read: 4_000, written: 20_000 };
        let (net, disk) = rates(before, now, Duration::from_secs(5));
        assert_eq!(net, NetworkRates { rx_bytes_per_sec: 1_000.0, tx_bytes_per_sec: 0.0 });
        // A counter that went back (a disk gone) is nothing, not a negative rate.
        assert_eq!(disk, DiskRates { read_bytes_per_sec: 0.0, write_bytes_per_sec: 4_000.0 });
        assert_eq!(rates(before, now, Duration::ZERO).0.rx_bytes_per_sec, 0.0);
    }

    #[test]
    fn a_sample_has_rates_after_the_first_and_the_hottest_sensor_is_picked() {
        let mut sampler = Sampler::new();
        assert_eq!(sampler.refresh(), (NetworkRates::default(), DiskRates::default()));
        let (net, disk) = sampler.refresh();
        assert!(net.rx_bytes_per_sec >= 0.0 && disk.write_bytes_per_sec >= 0.0);
        let stats = SystemStats {
            temperatures: vec![
                Temperature { label: "acpitz".into(), celsius: 41.0 },
                Temperature { label: "coretemp".into(), celsius: 63.5 },
            ],
            ..SystemStats::default()
        };
        assert_eq!(stats.hottest(), Some(63.5));
        assert_eq!(SystemStats::default().hottest(), None);
    }
}
