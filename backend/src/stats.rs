//! This machine's system stats (SPEC §7), sampled in the background so that serving them —
//! to health probes and in heartbeats — costs nothing but a clone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
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

impl SystemStats {
    /// The disk figures charts use: those of the data directory's filesystem.
    pub fn data_disk(&self) -> (u64, u64) {
        self.disks.first().map_or((0, 0), |d| (d.used_bytes, d.total_bytes))
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
    /// Takes a first snapshot right away (CPU usage is 0 until the second sample).
    pub fn new(facts: NodeFacts) -> StatsCollector {
        let collector =
            StatsCollector { latest: Arc::new(RwLock::new(SystemStats::default())), facts: Arc::new(facts) };
        let mut system = System::new_with_specifics(refresh_kind());
        collector.sample(&mut system);
        collector
    }

    /// The latest snapshot.
    pub fn latest(&self) -> SystemStats {
        self.latest.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Refreshes the snapshot every few seconds until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut system = System::new_with_specifics(refresh_kind());
        let mut interval = tokio::time::interval(SAMPLE_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let this = self.clone();
            // sysinfo reads /proc synchronously.
            system = match tokio::task::spawn_blocking(move || {
                this.sample(&mut system);
                system
            })
            .await
            {
                Ok(system) => system,
                Err(_) => System::new_with_specifics(refresh_kind()),
            };
        }
    }

    fn sample(&self, system: &mut System) {
        system.refresh_specifics(refresh_kind());
        let load = System::load_average();
        let disks = Disks::new_with_refreshed_list();
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
            disks: paths.iter().filter_map(|p| disk_of(&disks, p)).collect(),
            running_jobs: Vec::new(),
            labels: self.facts.labels.clone(),
            max_jobs: self.facts.max_jobs,
            collected_at: Some(crate::clock::Clock::now(&crate::clock::SystemClock)),
        };
        *self.latest.write().unwrap_or_else(std::sync::PoisonError::into_inner) = stats;
    }
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
