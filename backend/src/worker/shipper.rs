//! Delivers what a node has to say about its jobs — log chunks and status reports — to the
//! primary, in order, exactly as produced, whatever happens to the network or the node.
//!
//! Every entry is appended to the spool (`worker::spool`) before it is sent and released
//! only once the primary has taken it, so entries survive the primary being away and the
//! node restarting. (If the spool cannot be written, the entry is kept in memory instead.)
//!
//! - One delivery task per job sends its entries one at a time, in order: a chunk as
//!   `POST /api/internal/jobs/:id/logs`, a report as `…/status`. A 2xx releases the entry.
//!   A 4xx other than 401, 408 and 429 means the primary will never take it: it is logged
//!   and dropped. Anything else is retried, the entry staying first in line, after 0.5 s
//!   doubling to `MAX_BACKOFF` (30 s). The primary stores chunks once per (job, seq) and
//!   applies reports conditionally, so a resend after a lost answer does no harm.
//! - Where to: the current URL of the node's [`PrimaryUrls`] (on a secondary the agent's,
//!   from `PRIMARY_NODE_URL`; on a primary its own loopback address). A send the primary
//!   does not answer (no connection, a timeout, a 5xx) moves every task's next attempt to
//!   the next primary. Order holds across the move: an entry leaves the line only once a
//!   primary took it, and all primaries share one database, so a resend to another primary
//!   of what the first one took after all is the same harmless duplicate.
//! - A job is in the node's `running_jobs` until its final report has been delivered and
//!   nothing of it is left to send. Once the final report is spooled, the job's `process`
//!   record is released.
//! - [`Shipper::restore`], after a restart, queues every unreleased record again in the
//!   order it was written. A job with no final report among them died with the previous
//!   run: if the process in its latest `process` record still runs (same PID and start
//!   time, so a reused PID is spared), its group is SIGKILLed; then a `failed` report ("the
//!   node restarted while the job was running") is spooled for its latest attempt.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::identity::NodeIdentity;
use crate::protocol::{
    ChunkParams, JobReport, LogStream, NODE_ID_HEADER, NODE_KEY_HEADER, PrimaryUrls, ReportApplied,
    ReportedState, unanswered,
};
use crate::worker::spool::{Location, Record, Spool};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct JobQueue {
    next_seq: u64,
    entries: VecDeque<Entry>,
    delivering: bool,
    /// A final report is queued: once the queue drains, the job is done here.
    finished: bool,
    /// The spooled record of the job's process group, released with the final report.
    process: Option<Location>,
}

/// One entry waiting for delivery. Its record is kept in memory; a chunk's bytes are read
/// back from the spool when sent — unless the spool could not be written (disk full,
/// read-only), when they too stay in memory, so they are at least not lost while the
/// process lives.
#[derive(Debug, Clone)]
struct Entry {
    at: Option<Location>,
    record: Arc<Record>,
    data: Option<Arc<Vec<u8>>>,
}

impl Entry {
    /// What to send: the bytes kept in memory, else a chunk's read back from the spool, else
    /// none (a report's body is its record).
    fn bytes(&self, spool: &Spool) -> std::io::Result<Vec<u8>> {
        match (&self.data, self.at, &*self.record) {
            (Some(data), _, _) => Ok(data.to_vec()),
            (None, Some(at), Record::Chunk { .. }) => spool.read(at).map(|(_, data)| data),
            (None, _, _) => Ok(Vec::new()),
        }
    }
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
    spool: Arc<Spool>,
    /// What a previous run left in the spool, until `restore` picks it up.
    left_over: Mutex<Vec<(Location, Record)>>,
    primaries: PrimaryUrls,
    identity: NodeIdentity,
    client: reqwest::Client,
    queues: Mutex<HashMap<String, JobQueue>>,
    shutdown: CancellationToken,
}

impl Shipper {
    pub fn new(
        data_dir: &Path,
        primaries: PrimaryUrls,
        identity: NodeIdentity,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Shipper>> {
        let (spool, left_over) = Spool::open(&data_dir.join("spool"))?;
        let client = primaries.client(Duration::from_secs(30))?;
        Ok(Arc::new(Shipper {
            spool: Arc::new(spool),
            left_over: Mutex::new(left_over),
            primaries,
            identity,
            client,
            queues: Mutex::default(),
            shutdown,
        }))
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobQueue>> {
        self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Jobs with entries still to deliver.
    pub fn pending_jobs(&self) -> Vec<String> {
        self.queues().keys().cloned().collect()
    }

    /// What waits for delivery for `job`, in order, each chunk with its bytes.
    #[cfg(test)]
    pub(crate) fn queued(&self, job: &str) -> Vec<(Record, Vec<u8>)> {
        let entries: Vec<Entry> =
            self.queues().get(job).map(|q| q.entries.iter().cloned().collect()).unwrap_or_default();
        entries
            .into_iter()
            .map(|e| ((*e.record).clone(), e.bytes(&self.spool).expect("a spooled chunk")))
            .collect()
    }

    /// Spools a chunk of output; returns its sequence number.
    pub async fn push_chunk(
        self: &Arc<Self>,
        job: &str,
        attempt: u32,
        stream: LogStream,
        data: &[u8],
    ) -> u64 {
        let seq = {
            let mut queues = self.queues();
            let q = queues.entry(job.to_owned()).or_default();
            q.next_seq += 1;
            q.next_seq - 1
        };
        let record =
            Arc::new(Record::Chunk { job: job.to_owned(), params: ChunkParams { attempt, seq, stream } });
        let data = Arc::new(data.to_vec());
        let (spool, written) = (self.spool.clone(), (record.clone(), data.clone()));
        let at = tokio::task::spawn_blocking(move || spool.append(&written.0, &written.1))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.enqueue(spooled(at, record, Some(data)));
        seq
    }

    /// Spools a status report. Small enough to write in place: a blocking-pool round trip
    /// would cost more than the write.
    pub fn push_report(self: &Arc<Self>, job: &str, report: JobReport) {
        let record = Arc::new(Record::Report { job: job.to_owned(), report });
        let at = self.spool.append(&record, &[]);
        self.enqueue(spooled(at, record, None));
    }

    /// Queues an entry behind the job's others, starting its delivery task if idle.
    fn enqueue(self: &Arc<Self>, entry: Entry) {
        let Some(job) = entry.record.job() else { return };
        let last =
            matches!(&*entry.record, Record::Report { report, .. } if report.state != ReportedState::Running);
        let job = job.to_owned();
        let (start, process) = {
            let mut queues = self.queues();
            let q = queues.entry(job.clone()).or_default();
            q.entries.push_back(entry);
            q.finished |= last;
            let process = if last { q.process.take() } else { None };
            (!std::mem::replace(&mut q.delivering, true), process)
        };
        // The final report is spooled: the process group needs no watching after a restart.
        if let Some(at) = process {
            self.release(at);
        }
        if start {
            tokio::spawn(self.clone().deliver(job));
        }
    }

    fn release(&self, at: Location) {
        if let Err(e) = self.spool.release(at) {
            tracing::warn!(error = %e, "cannot mark a spool entry delivered; it may be sent again after a restart");
        }
    }

    /// Remembers a job's process group, so a restart after a crash can end what the crash
    /// left running (the group outlives this process: it is not our process group).
    pub fn record_process(&self, job: &str, attempt: u32, pid: u32) {
        let Some(started) = process_start_time(pid) else { return };
        let record = Record::Process { job: job.to_owned(), pid, started, attempt };
        match self.spool.append(&record, &[]) {
            Ok(at) => {
                let mut queues = self.queues();
                match queues.get_mut(job) {
                    Some(q) if !q.finished => q.process = Some(at),
                    _ => {
                        drop(queues);
                        self.release(at);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot record a job's process"),
        }
    }

    /// Picks up what a previous run left in the spool. A job whose final report never got
    /// spooled died with that run: what is left of its processes is killed, and it is
    /// reported failed.
    pub async fn restore(self: &Arc<Self>) -> anyhow::Result<usize> {
        let left_over =
            std::mem::take(&mut *self.left_over.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut jobs: Vec<(String, Vec<(Location, Record)>)> = Vec::new();
        for (at, record) in left_over {
            let Some(job) = record.job() else { continue };
            match jobs.iter_mut().find(|(j, _)| j == job) {
                Some((_, records)) => records.push((at, record)),
                None => jobs.push((job.to_owned(), vec![(at, record)])),
            }
        }
        let mut restored = 0;
        for (job, records) in jobs {
            let mut attempt = 0;
            let mut finished = false;
            let mut processes = Vec::new();
            for (at, record) in records {
                match &record {
                    Record::Process { pid, started, attempt: a, .. } => {
                        attempt = attempt.max(*a);
                        processes.push((at, *pid, *started));
                        continue;
                    }
                    Record::Chunk { params, .. } => attempt = attempt.max(params.attempt),
                    Record::Report { report, .. } => {
                        attempt = attempt.max(report.attempt);
                        finished |= report.state != ReportedState::Running;
                    }
                    Record::Released { .. } => continue,
                }
                restored += 1;
                self.enqueue(Entry { at: Some(at), record: Arc::new(record), data: None });
            }
            // Only the latest process record matters, and only while the job is unfinished.
            let latest = if finished { None } else { processes.pop() };
            for (at, _, _) in processes {
                self.release(at);
            }
            if finished {
                continue;
            }
            if let Some((at, pid, started)) = latest {
                kill_leftovers(pid, started);
                // Released once the report below is spooled.
                self.queues().entry(job.clone()).or_default().process = Some(at);
            }
            let report = JobReport {
                attempt,
                state: ReportedState::Failed,
                exit_code: None,
                error: Some("the node restarted while the job was running".into()),
                last_seq: None,
            };
            self.push_report(&job, report);
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
                        }
                        return;
                    }
                }
            };
            // Only a spooled chunk's bytes are read, off the async threads.
            let data = if next.data.is_none() && matches!(*next.record, Record::Chunk { .. }) {
                let (entry, spool) = (next.clone(), self.spool.clone());
                tokio::task::spawn_blocking(move || entry.bytes(&spool))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            } else {
                next.bytes(&self.spool)
            };
            let outcome = match data {
                Ok(data) => self.send(&job, &next.record, data).await,
                Err(e) => Delivery::Refused(format!("unreadable spool entry: {e}")),
            };
            match outcome {
                Delivery::Taken | Delivery::Refused(_) => {
                    if let Delivery::Refused(why) = &outcome {
                        tracing::warn!(job_id = %job, reason = %why, "the primary refused a job report; dropping it");
                    }
                    if let Some(at) = next.at {
                        self.release(at);
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

    async fn send(&self, job: &str, record: &Record, data: Vec<u8>) -> Delivery {
        let primary = self.primaries.current();
        let request = match record {
            Record::Chunk { params, .. } => self
                .client
                .post(primary.join(&format!("/api/internal/jobs/{job}/logs")))
                .query(params)
                .header("Content-Type", "application/octet-stream")
                .body(data),
            Record::Report { report, .. } => {
                self.client.post(primary.join(&format!("/api/internal/jobs/{job}/status"))).json(report)
            }
            Record::Process { .. } | Record::Released { .. } => {
                return Delivery::Refused("not something to deliver".into());
            }
        };
        let response = request
            .header(NODE_ID_HEADER, self.identity.id.as_str())
            .header(NODE_KEY_HEADER, self.identity.api_key.expose())
            .send()
            .await;
        if unanswered(&response) {
            self.primaries.failed(&primary);
        }
        match response {
            Ok(r) if r.status().is_success() => {
                if let Record::Report { report, .. } = record
                    && r.json::<ReportApplied>().await.is_ok_and(|answer| !answer.applied)
                {
                    tracing::info!(
                        job_id = %job,
                        attempt = report.attempt,
                        state = ?report.state,
                        "the primary had already settled this attempt and ignored its report"
                    );
                }
                Delivery::Taken
            }
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 401 | 408 | 429) => {
                let status = r.status().as_u16();
                let body: String = r.text().await.unwrap_or_default().chars().take(300).collect();
                Delivery::Refused(format!("HTTP {status}: {body}"))
            }
            Ok(r) => Delivery::Retry(format!("{primary} answered HTTP {}", r.status().as_u16())),
            Err(e) => Delivery::Retry(e.to_string()),
        }
    }
}

/// An entry as spooled, or — when the spool could not be written — kept whole in memory.
fn spooled(at: std::io::Result<Location>, record: Arc<Record>, data: Option<Arc<Vec<u8>>>) -> Entry {
    match at {
        Ok(at) => Entry { at: Some(at), record, data: None },
        Err(e) => {
            tracing::error!(error = %e, "cannot spool job output; keeping it in memory");
            Entry { at: None, record, data }
        }
    }
}

/// The start time of a process (field 22 of `/proc/<pid>/stat`), which tells it apart from
/// a later process that got the same PID.
/// (procfs: read in place, it never waits for a disk.)
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// SIGKILLs the process group led by `pid`, if that very process (started at `started`)
/// still runs.
fn kill_leftovers(pid: u32, started: u64) {
    if process_start_time(pid) == Some(started)
        && let Ok(raw) = i32::try_from(pid)
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGKILL);
        tracing::warn!(pid, "killed the processes a crashed run left behind");
    }
}
