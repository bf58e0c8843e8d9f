//! Runs the jobs routed to this node: `sh -c` in a process group of its own, the job's
//! environment and working directory applied, stdout and stderr read apart and batched into
//! chunks for the `Shipper`. A timeout or a cancel sends SIGTERM to the whole group, waits a
//! grace period, then SIGKILLs it. At most `NODE_MAX_JOBS` run at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::protocol::{JobAssignment, JobReport, LogStream, ReportedState};
use crate::worker::shipper::Shipper;

/// A chunk is shipped when it reaches this size…
const CHUNK_BYTES: usize = 512 * 1024;
/// …or when its first byte has waited this long.
const CHUNK_WAIT: Duration = Duration::from_millis(100);
/// After the main process exits, how long to wait for output from what it left behind.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Why a job was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Full {
        running: usize,
        max: usize,
    },
    Draining,
    /// A later attempt of this job already runs here.
    Stale,
}

struct Running {
    attempt: u32,
    cancel: CancellationToken,
}

/// This node's job runner.
pub struct Runner {
    max_jobs: usize,
    kill_grace: Duration,
    shipper: Arc<Shipper>,
    running: Mutex<HashMap<String, Running>>,
    draining: AtomicBool,
    /// The environment every job starts from: this process's, minus Fleetdeck's own
    /// settings and secrets.
    base_env: Vec<(String, String)>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("max_jobs", &self.max_jobs).finish_non_exhaustive()
    }
}

/// How a job's process ended.
enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
    Lost(String),
}

impl Runner {
    pub fn new(max_jobs: u32, kill_grace: Duration, shipper: Arc<Shipper>) -> Arc<Runner> {
        let private = crate::config::Config::variable_names();
        let base_env = std::env::vars()
            .filter(|(k, _)| {
                let base = k.strip_suffix("_FILE").unwrap_or(k);
                !private.contains(base)
                    && !k.starts_with("FLEETDECK_")
                    && !matches!(k.as_str(), "ENV_FILE" | "RUST_LOG")
            })
            .collect();
        Arc::new(Runner {
            max_jobs: usize::try_from(max_jobs).unwrap_or(usize::MAX),
            kill_grace,
            shipper,
            running: Mutex::default(),
            draining: AtomicBool::new(false),
            base_env,
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a job, unless full or draining. The same job and attempt twice is one job.
    pub fn accept(self: &Arc<Self>, job: JobAssignment) -> Result<(), Refusal> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(Refusal::Draining);
        }
        let cancel = CancellationToken::new();
        {
            let mut running = self.running();
            match running.get(&job.job_id) {
                Some(r) if r.attempt == job.attempt => return Ok(()),
                // The primary re-dispatched: the earlier attempt is over (its reports would
                // be refused anyway), so it is stopped rather than run alongside.
                Some(r) if r.attempt < job.attempt => r.cancel.cancel(),
                Some(_) => return Err(Refusal::Stale),
                None if running.len() >= self.max_jobs => {
                    return Err(Refusal::Full { running: running.len(), max: self.max_jobs });
                }
                None => {}
            }
            running.insert(job.job_id.clone(), Running { attempt: job.attempt, cancel: cancel.clone() });
        }
        tokio::spawn(self.clone().run(job, cancel));
        Ok(())
    }

    /// Cancels a running job; `false` if it is not running here.
    pub fn cancel(&self, job_id: &str) -> bool {
        match self.running().get(job_id) {
            Some(r) => {
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Jobs this node is still responsible for: running, or with reports not yet delivered.
    pub fn known_jobs(&self) -> Vec<String> {
        let mut jobs: Vec<String> = self.running().keys().cloned().collect();
        jobs.extend(self.shipper.pending_jobs());
        jobs.sort();
        jobs.dedup();
        jobs
    }

    /// Waits (at most `limit`) until every report has been delivered.
    pub async fn wait_delivered(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while !self.shipper.pending_jobs().is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn running_count(&self) -> usize {
        self.running().len()
    }

    /// Stops taking jobs and waits (until `deadline`) for the running ones to finish;
    /// whatever still runs then is cancelled and reported.
    pub async fn drain(&self, deadline: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + deadline;
        while self.running_count() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for r in self.running().values() {
            r.cancel.cancel();
        }
        let until = tokio::time::Instant::now() + self.kill_grace + Duration::from_secs(1);
        while self.running_count() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn run(self: Arc<Self>, job: JobAssignment, cancel: CancellationToken) {
        let id = job.job_id.clone();
        let attempt = job.attempt;
        self.shipper.push_report(&id, report(attempt, ReportedState::Running, None, None, None));
        let (ending, last_seq) = self.execute(&job, &cancel).await;
        let final_report = match ending {
            Ending::Exited(status) if status.success() => {
                report(attempt, ReportedState::Succeeded, Some(0), None, last_seq)
            }
            Ending::Exited(status) => {
                let error = status.code().is_none().then(|| describe_signal(&status));
                report(attempt, ReportedState::Failed, status.code(), error, last_seq)
            }
            Ending::TimedOut => {
                let error = format!("timed out after {}s", job.timeout_sec);
                report(attempt, ReportedState::TimedOut, None, Some(error), last_seq)
            }
            Ending::Cancelled => {
                report(attempt, ReportedState::Cancelled, None, Some("cancelled".into()), last_seq)
            }
            Ending::Lost(error) => report(attempt, ReportedState::Failed, None, Some(error), last_seq),
        };
        self.shipper.push_report(&id, final_report);
        let mut running = self.running();
        if running.get(&id).is_some_and(|r| r.attempt == attempt) {
            running.remove(&id);
        }
    }

    /// Runs the process to its end; returns how it ended and the last chunk's number.
    async fn execute(
        self: &Arc<Self>,
        job: &JobAssignment,
        cancel: &CancellationToken,
    ) -> (Ending, Option<u64>) {
        // An absolute path: with a cleared environment and a bare program name, std falls
        // back from posix_spawn to fork, whose page-table copy and copy-on-write faults cost
        // far more than the job itself on a busy node.
        let mut command = tokio::process::Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&job.command)
            .env_clear()
            .envs(self.base_env.iter().map(|(k, v)| (k, v)))
            .envs(&job.env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        if let Some(dir) = &job.working_dir {
            command.current_dir(dir);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let where_ = job.working_dir.as_deref().map(|d| format!(" in {d}")).unwrap_or_default();
                return (Ending::Lost(format!("cannot start the command{where_}: {e}")), None);
            }
        };
        if let Some(pid) = child.id() {
            self.shipper.record_process(&job.job_id, job.attempt, pid);
        }
        let group = child.id().and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
        let (tx, rx) = mpsc::channel::<(LogStream, Vec<u8>)>(64);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_stream(out, LogStream::Stdout, tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_stream(err, LogStream::Stderr, tx.clone())));
        }
        drop(tx);
        let batcher = tokio::spawn(batch(rx, self.shipper.clone(), job.job_id.clone(), job.attempt));

        let timeout = Duration::from_secs(job.timeout_sec);
        let ending = tokio::select! {
            status = child.wait() => match status {
                Ok(status) => Ending::Exited(status),
                Err(e) => Ending::Lost(format!("lost track of the process: {e}")),
            },
            () = tokio::time::sleep(timeout) => Ending::TimedOut,
            () = cancel.cancelled() => Ending::Cancelled,
        };
        // Timed out or cancelled: the whole group goes. Exited: whatever it left running in
        // the background goes too — a job is one unit, and a node is not a service manager.
        self.stop_group(group, &mut child).await;
        // The output pipes close when every process holding them is gone; don't wait
        // forever for something the command left running in the background.
        for reader in readers {
            let abort = reader.abort_handle();
            if tokio::time::timeout(OUTPUT_DRAIN, reader).await.is_err() {
                abort.abort();
            }
        }
        let last_seq = batcher.await.unwrap_or(None);
        (ending, last_seq)
    }

    /// SIGTERM to the whole group, up to a grace period for it to end, then SIGKILL of
    /// whatever is left. Does nothing when the group is already empty.
    async fn stop_group(&self, group: Option<Pid>, child: &mut tokio::process::Child) {
        let Some(group) = group else { return };
        if killpg(group, None).is_err() {
            return;
        }
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + self.kill_grace;
        // Reaping the leader as it goes, so its zombie does not keep the group "alive".
        while tokio::time::Instant::now() < deadline {
            let _ = child.try_wait();
            if killpg(group, None).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

fn report(
    attempt: u32,
    state: ReportedState,
    exit_code: Option<i32>,
    error: Option<String>,
    last_seq: Option<u64>,
) -> JobReport {
    JobReport { attempt, state, exit_code, error, last_seq }
}

fn describe_signal(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => "ended without an exit code".into(),
    }
}

async fn read_stream(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    stream: LogStream,
    tx: mpsc::Sender<(LogStream, Vec<u8>)>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send((stream, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Gathers output into chunks per stream (by size and time) and spools them in order.
async fn batch(
    mut rx: mpsc::Receiver<(LogStream, Vec<u8>)>,
    shipper: Arc<Shipper>,
    job: String,
    attempt: u32,
) -> Option<u64> {
    let mut pending: Vec<(LogStream, Vec<u8>)> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut last_seq = None;
    loop {
        let received = match deadline {
            Some(at) => tokio::select! {
                msg = rx.recv() => Some(msg),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(rx.recv().await),
        };
        match received {
            Some(Some((stream, data))) => {
                match pending.iter_mut().find(|(s, _)| *s == stream) {
                    Some((_, buf)) => buf.extend_from_slice(&data),
                    None => pending.push((stream, data)),
                }
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + CHUNK_WAIT);
                let full = pending.iter().any(|(_, b)| b.len() >= CHUNK_BYTES);
                if full {
                    last_seq = flush(&mut pending, &shipper, &job, attempt).await.or(last_seq);
                    deadline = None;
                }
            }
            // Time to flush what has waited long enough.
            None => {
                last_seq = flush(&mut pending, &shipper, &job, attempt).await.or(last_seq);
                deadline = None;
            }
            // Both streams closed.
            Some(None) => {
                return flush(&mut pending, &shipper, &job, attempt).await.or(last_seq);
            }
        }
    }
}

async fn flush(
    pending: &mut Vec<(LogStream, Vec<u8>)>,
    shipper: &Arc<Shipper>,
    job: &str,
    attempt: u32,
) -> Option<u64> {
    let mut last = None;
    for (stream, data) in pending.drain(..) {
        for piece in data.chunks(CHUNK_BYTES) {
            last = Some(shipper.push_chunk(job, attempt, stream, piece).await);
        }
    }
    last
}
