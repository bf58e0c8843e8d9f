//! Delivers what a node has to say about its jobs — log chunks and status reports — to the
//! primary, in order, exactly as produced, whatever happens to the network or the node.
//!
//! Every entry is written to the spool (`DATA_DIR/spool/<job>/<n>.entry`) before it is
//! sent and removed only once the primary has taken it, so entries survive the primary
//! being away and the node restarting. One delivery task per job sends its entries one at
//! a time, retrying with backoff; the primary stores chunks idempotently by (job, seq), so
//! a resend after a lost answer does no harm.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::identity::NodeIdentity;
use crate::nodes::NodeUrl;
use crate::protocol::{ChunkParams, JobReport, LogStream, ReportedState};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The header line of a spooled entry; a chunk's bytes follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Header {
    Chunk(ChunkParams),
    Report(JobReport),
}

#[derive(Debug, Default)]
struct JobQueue {
    next_seq: u64,
    next_entry: u64,
    entries: VecDeque<Entry>,
    delivering: bool,
    /// A final report is queued: once the queue drains, the job is done here.
    finished: bool,
    attempt: u32,
}

/// One entry waiting for delivery: on disk, or — when the spool cannot be written (disk
/// full, read-only) — in memory, so it is at least not lost while the process lives.
#[derive(Debug, Clone)]
enum Entry {
    Spooled(PathBuf),
    InMemory(std::sync::Arc<Vec<u8>>),
}

/// What became of one delivery attempt.
enum Delivery {
    Taken,
    /// The primary will never take it (e.g. the job is not ours any more): drop it.
    Refused(String),
    Retry(String),
}

/// The node's outbox for job output and results.
#[derive(Debug)]
pub struct Shipper {
    dir: PathBuf,
    primary: NodeUrl,
    identity: NodeIdentity,
    client: reqwest::Client,
    queues: Mutex<HashMap<String, JobQueue>>,
    shutdown: CancellationToken,
}

impl Shipper {
    pub fn new(
        data_dir: &Path,
        primary: NodeUrl,
        identity: NodeIdentity,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Shipper>> {
        let dir = data_dir.join("spool");
        std::fs::create_dir_all(&dir)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fleetdeck/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Shipper { dir, primary, identity, client, queues: Mutex::default(), shutdown }))
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobQueue>> {
        self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Jobs with entries still to deliver.
    pub fn pending_jobs(&self) -> Vec<String> {
        self.queues().keys().cloned().collect()
    }

    /// Spools a chunk of output; returns its sequence number.
    pub async fn push_chunk(
        self: &Arc<Self>,
        job: &str,
        attempt: u32,
        stream: LogStream,
        data: &[u8],
    ) -> u64 {
        let (seq, entry) = {
            let mut queues = self.queues();
            let q = queues.entry(job.to_owned()).or_default();
            q.attempt = attempt;
            let seq = q.next_seq;
            q.next_seq += 1;
            q.next_entry += 1;
            (seq, q.next_entry - 1)
        };
        let header = Header::Chunk(ChunkParams { attempt, seq, stream });
        self.spool(job, entry, &header, data, false).await;
        seq
    }

    /// Spools a status report.
    pub async fn push_report(self: &Arc<Self>, job: &str, report: JobReport) {
        let entry = {
            let mut queues = self.queues();
            let q = queues.entry(job.to_owned()).or_default();
            q.attempt = report.attempt;
            q.next_entry += 1;
            q.next_entry - 1
        };
        let last = report.state != ReportedState::Running;
        self.spool(job, entry, &Header::Report(report), &[], last).await;
    }

    /// Writes an entry to the spool, then queues it. `last`: the job's final report — only
    /// once it is queued may the job's queue (and spool directory) go when it drains.
    async fn spool(self: &Arc<Self>, job: &str, entry: u64, header: &Header, data: &[u8], last: bool) {
        let dir = self.dir.join(job);
        let path = dir.join(format!("{entry:012}.entry"));
        let mut bytes = serde_json::to_vec(header).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(data);
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(&path, &bytes).await
        }
        .await;
        let entry = match written {
            Ok(()) => Entry::Spooled(path),
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot spool job output; keeping it in memory");
                Entry::InMemory(std::sync::Arc::new(bytes))
            }
        };
        self.enqueue(job, entry, last);
    }

    fn enqueue(self: &Arc<Self>, job: &str, entry: Entry, last: bool) {
        let start = {
            let mut queues = self.queues();
            let q = queues.entry(job.to_owned()).or_default();
            q.entries.push_back(entry);
            q.finished |= last;
            !std::mem::replace(&mut q.delivering, true)
        };
        if start {
            tokio::spawn(self.clone().deliver(job.to_owned()));
        }
    }

    /// Remembers a job's process group, so a restart after a crash can end what the crash
    /// left running (the group outlives this process: it is not our process group).
    pub async fn record_process(&self, job: &str, attempt: u32, pid: u32) {
        let Some(started) = process_start_time(pid).await else { return };
        let path = self.dir.join(job).join(PROCESS_FILE);
        if let Err(e) = tokio::fs::write(&path, format!("{pid} {started} {attempt}\n")).await {
            tracing::warn!(error = %e, path = %path.display(), "cannot record a job's process");
        }
    }

    /// Picks up what a previous run left in the spool. A job whose final report never got
    /// spooled died with that run: what is left of its processes is killed, and it is
    /// reported failed.
    pub async fn restore(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut restored = 0;
        let mut dirs = tokio::fs::read_dir(&self.dir).await?;
        while let Some(dir) = dirs.next_entry().await? {
            let job = dir.file_name().to_string_lossy().into_owned();
            let mut files = Vec::new();
            let mut entries = tokio::fs::read_dir(dir.path()).await?;
            while let Some(file) = entries.next_entry().await? {
                if file.file_name().to_string_lossy().ends_with(".entry") {
                    files.push(file.path());
                }
            }
            files.sort();
            let mut attempt = 0;
            let mut finished = false;
            for path in &files {
                match read_entry(path).await {
                    Ok((Header::Chunk(c), _)) => attempt = c.attempt,
                    Ok((Header::Report(r), _)) => {
                        attempt = r.attempt;
                        finished |= r.state != ReportedState::Running;
                    }
                    Err(e) => tracing::warn!(error = %e, path = %path.display(), "unreadable spool entry"),
                }
            }
            let next_entry =
                files.last().and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok()).map_or(0, |n| n + 1);
            {
                let mut queues = self.queues();
                let q = queues.entry(job.clone()).or_default();
                q.next_entry = next_entry;
                q.attempt = attempt;
            }
            restored += files.len();
            let count = files.len();
            for (i, path) in files.into_iter().enumerate() {
                self.enqueue(&job, Entry::Spooled(path), finished && i + 1 == count);
            }
            if !finished {
                if let Some(recorded) = kill_leftovers(&dir.path().join(PROCESS_FILE)).await {
                    attempt = attempt.max(recorded);
                }
                let report = JobReport {
                    attempt,
                    state: ReportedState::Failed,
                    exit_code: None,
                    error: Some("the node restarted while the job was running".into()),
                    last_seq: None,
                };
                self.push_report(&job, report).await;
            }
        }
        if restored > 0 {
            tracing::info!(entries = restored, "resuming delivery of spooled job output");
        }
        Ok(restored)
    }

    /// Sends one job's entries in order until none are left.
    async fn deliver(self: Arc<Self>, job: String) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let next = {
                let mut queues = self.queues();
                let Some(q) = queues.get_mut(&job) else { return };
                match q.entries.front() {
                    Some(entry) => entry.clone(),
                    None => {
                        q.delivering = false;
                        if q.finished {
                            queues.remove(&job);
                            drop(queues);
                            let _ = std::fs::remove_dir_all(self.dir.join(&job));
                        }
                        return;
                    }
                }
            };
            let read = match &next {
                Entry::Spooled(path) => read_entry(path).await,
                Entry::InMemory(bytes) => parse_entry(bytes),
            };
            let outcome = match read {
                Ok((header, data)) => self.send(&job, header, data).await,
                Err(e) => Delivery::Refused(format!("unreadable spool entry: {e}")),
            };
            match outcome {
                Delivery::Taken | Delivery::Refused(_) => {
                    if let Delivery::Refused(why) = &outcome {
                        tracing::warn!(job_id = %job, reason = %why, "the primary refused a job report; dropping it");
                    }
                    if let Entry::Spooled(path) = &next {
                        let _ = tokio::fs::remove_file(path).await;
                    }
                    if let Some(q) = self.queues().get_mut(&job) {
                        q.entries.pop_front();
                    }
                    backoff = Duration::from_millis(500);
                }
                Delivery::Retry(why) => {
                    tracing::debug!(job_id = %job, reason = %why, retry_in = ?backoff, "job report not delivered yet");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn send(&self, job: &str, header: Header, data: Vec<u8>) -> Delivery {
        let request = match header {
            Header::Chunk(params) => self
                .client
                .post(self.primary.join(&format!("/api/internal/jobs/{job}/logs")))
                .query(&params)
                .header("Content-Type", "application/octet-stream")
                .body(data),
            Header::Report(report) => {
                self.client.post(self.primary.join(&format!("/api/internal/jobs/{job}/status"))).json(&report)
            }
        };
        let response = request
            .header("X-Node-ID", self.identity.id.as_str())
            .header("X-Node-API-Key", self.identity.api_key.expose())
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Delivery::Taken,
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 401 | 408 | 429) => {
                let status = r.status().as_u16();
                let body: String = r.text().await.unwrap_or_default().chars().take(300).collect();
                Delivery::Refused(format!("HTTP {status}: {body}"))
            }
            Ok(r) => Delivery::Retry(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Delivery::Retry(e.to_string()),
        }
    }
}

const PROCESS_FILE: &str = "process";

/// The start time of a process (field 22 of `/proc/<pid>/stat`), which tells it apart from
/// a later process that got the same PID.
async fn process_start_time(pid: u32) -> Option<u64> {
    let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await.ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// SIGKILLs the process group recorded in `path`, if that very process still runs.
/// Returns the job's attempt as recorded.
async fn kill_leftovers(path: &Path) -> Option<u32> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let started: u64 = parts.next()?.parse().ok()?;
    let attempt: u32 = parts.next()?.parse().ok()?;
    if process_start_time(pid).await == Some(started)
        && let Ok(raw) = i32::try_from(pid)
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGKILL);
        tracing::warn!(pid, "killed the processes a crashed run left behind");
    }
    Some(attempt)
}

async fn read_entry(path: &Path) -> anyhow::Result<(Header, Vec<u8>)> {
    parse_entry(&tokio::fs::read(path).await?)
}

fn parse_entry(bytes: &[u8]) -> anyhow::Result<(Header, Vec<u8>)> {
    let newline = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| anyhow::anyhow!("no header"))?;
    let header: Header = serde_json::from_slice(&bytes[..newline])?;
    Ok((header, bytes[newline + 1..].to_vec()))
}
