//! Runs the jobs routed to this node. [`Runner::accept`] refuses while draining and when
//! `NODE_MAX_JOBS` run (0 takes none); the same job and attempt twice is one job, and a
//! later attempt of a job running here stops the earlier one. Each job then:
//!
//! - has a `running` report spooled, and starts as `/bin/sh -c COMMAND` (an absolute path:
//!   with a cleared environment, a bare name makes std fall back from `posix_spawn` to the
//!   far costlier `fork`), stdin `/dev/null`, in its `working_dir` if given, in a process
//!   group of its own. The leader's PID and start time are spooled, so a restart after a
//!   crash can end the group (`Shipper::restore`).
//! - gets a scrubbed environment: this process's, minus every variable `Config` reads, their
//!   `_FILE` forms, anything `FLEETDECK_*`, `ENV_FILE` and `RUST_LOG`; the job's `env` on top.
//! - has stdout and stderr read apart and batched, each stream into chunks of its own: what
//!   waits goes to the `Shipper` once one stream has `CHUNK_BYTES` (512 KiB) waiting or
//!   `CHUNK_WAIT` (100 ms) after the first byte began waiting, cut into pieces of at most
//!   `CHUNK_BYTES`. The shipper numbers the chunks, one sequence per job for both streams.
//! - ends by exiting, by its timeout or by a cancel. Whichever it was, what is left of its
//!   group gets SIGTERM, up to `JOB_KILL_GRACE` to go, then SIGKILL: a job is one unit, and
//!   what it left in the background goes with it.
//! - gets up to `OUTPUT_DRAIN` (2 s) for its output pipes to close (something may still
//!   hold them), then its last chunks and its final report are spooled: `succeeded`
//!   (exit 0), `failed` (the exit code, or "killed by signal N", or "cannot start the
//!   command …"), `timed_out` or `cancelled`, naming the last chunk's `seq`.
//!
//! [`Runner::drain`] (at shutdown) stops taking jobs, waits for the running ones up to its
//! deadline, cancels the rest and waits up to `JOB_KILL_GRACE` + 1 s more.

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
        let base_env = job_base_env(std::env::vars());
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
        tracing::info!(job_id = %id, attempt, "job started");
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
        tracing::info!(
            job_id = %id,
            attempt,
            state = ?final_report.state,
            exit_code = final_report.exit_code,
            "job finished"
        );
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

/// The environment every job starts from: `vars` (this process's) without Fleetdeck's own
/// settings, their `_FILE` forms, and its secrets.
fn job_base_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let private = crate::config::Config::variable_names();
    vars.filter(|(k, _)| {
        let base = k.strip_suffix("_FILE").unwrap_or(k);
        !private.contains(base)
            && !k.starts_with("FLEETDECK_")
            && !matches!(k.as_str(), "ENV_FILE" | "RUST_LOG")
    })
    .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::identity::NodeIdentity;
    use crate::nodes::{NodeId, NodeUrl};
    use crate::protocol::PrimaryUrls;
    use crate::secrets::ApiKey;
    use crate::worker::spool::Record;

    /// A runner whose shipper has nowhere to deliver (nothing listens on port 1), so every
    /// chunk and report stays queued for the test to read.
    fn runner(max_jobs: u32) -> (Arc<Runner>, Arc<Shipper>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let identity = NodeIdentity { id: NodeId::generate(), api_key: ApiKey::generate() };
        let primary = PrimaryUrls::one(NodeUrl::parse("http://127.0.0.1:1").unwrap());
        let shipper = Shipper::new(dir.path(), primary, identity, CancellationToken::new()).unwrap();
        (Runner::new(max_jobs, Duration::from_millis(300), shipper.clone()), shipper, dir)
    }

    fn job(id: &str, attempt: u32, command: &str) -> JobAssignment {
        JobAssignment {
            job_id: id.into(),
            attempt,
            command: command.into(),
            env: BTreeMap::new(),
            working_dir: None,
            timeout_sec: 30,
        }
    }

    /// What the runner handed the shipper for one job.
    #[derive(Debug, Default)]
    struct Shipped {
        reports: Vec<JobReport>,
        stdout: String,
        stderr: String,
        /// (seq, stream, size) of each chunk, in queue order.
        chunks: Vec<(u64, LogStream, usize)>,
    }

    fn shipped(shipper: &Shipper, job: &str) -> Shipped {
        let mut out = Shipped::default();
        for (record, data) in shipper.queued(job) {
            match record {
                Record::Report { report, .. } => out.reports.push(report),
                Record::Chunk { params, .. } => {
                    let text = String::from_utf8(data.clone()).unwrap();
                    match params.stream {
                        LogStream::Stdout => out.stdout.push_str(&text),
                        LogStream::Stderr => out.stderr.push_str(&text),
                    }
                    out.chunks.push((params.seq, params.stream, data.len()));
                }
                Record::Process { .. } | Record::Released { .. } => {}
            }
        }
        out
    }

    /// Waits until `pred` holds for what was shipped of `job`.
    async fn until(shipper: &Shipper, job: &str, what: &str, pred: impl Fn(&Shipped) -> bool) -> Shipped {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = shipped(shipper, job);
            if pred(&now) {
                return now;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn finished(s: &Shipped) -> bool {
        s.reports.last().is_some_and(|r| r.state != ReportedState::Running)
    }

    fn states(s: &Shipped) -> Vec<(u32, ReportedState)> {
        s.reports.iter().map(|r| (r.attempt, r.state)).collect()
    }

    /// Whether the process runs (a zombie waiting for its reaper does not).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    }

    #[tokio::test]
    async fn a_job_runs_in_its_directory_with_its_environment_and_reports_its_output_and_exit() {
        let (runner, shipper, _dir) = runner(1);
        let place = tempfile::tempdir().unwrap();
        let mut j = job("j", 1, r#"echo "$GREETING from $(pwd)"; echo oops >&2; exit 3"#);
        j.env.insert("GREETING".into(), "hello".into());
        j.working_dir = Some(place.path().display().to_string());
        runner.accept(j).unwrap();

        let s = until(&shipper, "j", "the final report", finished).await;
        assert_eq!(states(&s), [(1, ReportedState::Running), (1, ReportedState::Failed)]);
        let last = s.reports.last().unwrap();
        assert_eq!((last.exit_code, last.error.as_deref()), (Some(3), None));
        assert_eq!(s.stdout, format!("hello from {}\n", place.path().display()));
        assert_eq!(s.stderr, "oops\n");
        assert_eq!(
            last.last_seq,
            s.chunks.iter().map(|c| c.0).max(),
            "the final report names the last chunk"
        );
        assert_eq!(runner.running_count(), 0);

        runner.accept(job("ok", 1, "true")).unwrap();
        let s = until(&shipper, "ok", "the final report", finished).await;
        let last = s.reports.last().unwrap();
        assert_eq!((last.state, last.exit_code, last.last_seq), (ReportedState::Succeeded, Some(0), None));
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_is_reported_failed_with_the_reason() {
        let (runner, shipper, _dir) = runner(1);
        let mut j = job("j", 1, "true");
        j.working_dir = Some("/nonexistent/fleetdeck".into());
        runner.accept(j).unwrap();
        let s = until(&shipper, "j", "the final report", finished).await;
        let last = s.reports.last().unwrap();
        assert_eq!(last.state, ReportedState::Failed);
        assert!(
            last.error.as_deref().unwrap().starts_with("cannot start the command in /nonexistent/fleetdeck"),
            "{last:?}"
        );
    }

    #[tokio::test]
    async fn a_signal_death_is_described_and_has_no_exit_code() {
        let (runner, shipper, _dir) = runner(1);
        runner.accept(job("j", 1, "kill -KILL $$")).unwrap();
        let s = until(&shipper, "j", "the final report", finished).await;
        let last = s.reports.last().unwrap();
        assert_eq!((last.state, last.exit_code), (ReportedState::Failed, None));
        assert_eq!(last.error.as_deref(), Some("killed by signal 9"));
    }

    #[tokio::test]
    async fn a_timeout_ends_the_whole_process_group_even_a_child_ignoring_sigterm() {
        let (runner, shipper, _dir) = runner(1);
        let place = tempfile::tempdir().unwrap();
        let mut j = job(
            "j",
            1,
            r#"sh -c 'trap "" TERM; while true; do sleep 1; done' & echo $! > child.pid; sleep 30"#,
        );
        j.working_dir = Some(place.path().display().to_string());
        j.timeout_sec = 1;
        let started = Instant::now();
        runner.accept(j).unwrap();
        let s = until(&shipper, "j", "the final report", finished).await;
        let last = s.reports.last().unwrap();
        assert_eq!(
            (last.state, last.error.as_deref()),
            (ReportedState::TimedOut, Some("timed out after 1s"))
        );
        // One second, then SIGTERM, the 300 ms grace and SIGKILL: far from the 30 s sleep.
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let child = std::fs::read_to_string(place.path().join("child.pid")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(&child) {
            assert!(Instant::now() < deadline, "the child that ignored SIGTERM is still there");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_cancel_stops_the_job_and_is_reported_as_such() {
        let (runner, shipper, _dir) = runner(1);
        runner.accept(job("j", 1, "echo started; sleep 30")).unwrap();
        until(&shipper, "j", "the job's first line", |s| s.stdout == "started\n").await;
        assert!(runner.cancel("j"));
        assert!(!runner.cancel("not-here"), "nothing to cancel");
        let s = until(&shipper, "j", "the final report", finished).await;
        let last = s.reports.last().unwrap();
        assert_eq!((last.state, last.error.as_deref()), (ReportedState::Cancelled, Some("cancelled")));
        assert_eq!(last.last_seq, Some(0), "the line printed before the cancel is kept");
    }

    #[tokio::test]
    async fn accepting_the_same_attempt_twice_runs_it_once_and_capacity_is_kept() {
        let (runner, shipper, _dir) = runner(1);
        runner.accept(job("a", 1, "echo once; sleep 30")).unwrap();
        runner.accept(job("a", 1, "echo once; sleep 30")).unwrap();
        assert_eq!(runner.accept(job("b", 1, "true")), Err(Refusal::Full { running: 1, max: 1 }));
        assert_eq!(runner.running_count(), 1);
        until(&shipper, "a", "the job's line", |s| s.stdout == "once\n").await;
        assert!(runner.cancel("a"));
        let s = until(&shipper, "a", "the final report", finished).await;
        assert_eq!(states(&s), [(1, ReportedState::Running), (1, ReportedState::Cancelled)]);
        assert_eq!(s.stdout, "once\n", "one process, not two");
    }

    #[tokio::test]
    async fn a_later_attempt_replaces_the_earlier_and_an_earlier_one_is_refused() {
        let (runner, shipper, _dir) = runner(1);
        runner.accept(job("j", 1, "echo first; sleep 30")).unwrap();
        until(&shipper, "j", "attempt 1 running", |s| s.stdout == "first\n").await;
        // The primary dispatched it again: attempt 1 is stopped, attempt 2 runs.
        runner.accept(job("j", 2, "echo second; sleep 30")).unwrap();
        assert_eq!(runner.accept(job("j", 1, "echo first")), Err(Refusal::Stale));
        until(&shipper, "j", "attempt 1 cancelled and attempt 2 running", |s| {
            let states = states(s);
            states.contains(&(1, ReportedState::Cancelled)) && states.contains(&(2, ReportedState::Running))
        })
        .await;
        assert_eq!(runner.running_count(), 1);
        runner.cancel("j");
        let s = until(&shipper, "j", "attempt 2 cancelled", |s| {
            states(s).contains(&(2, ReportedState::Cancelled))
        })
        .await;
        assert_eq!(runner.running_count(), 0, "{s:?}");
    }

    #[tokio::test]
    async fn a_draining_runner_takes_nothing_and_cancels_what_outlasts_the_deadline() {
        let (runner, shipper, _dir) = runner(2);
        runner.accept(job("quick", 1, "sleep 0.2")).unwrap();
        runner.accept(job("slow", 1, "sleep 30")).unwrap();
        let started = Instant::now();
        runner.drain(Duration::from_secs(1)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(runner.running_count(), 0);
        assert_eq!(runner.accept(job("late", 1, "true")), Err(Refusal::Draining));
        let quick = until(&shipper, "quick", "quick's report", finished).await;
        assert_eq!(quick.reports.last().unwrap().state, ReportedState::Succeeded);
        let slow = until(&shipper, "slow", "slow's report", finished).await;
        assert_eq!(slow.reports.last().unwrap().state, ReportedState::Cancelled);
    }

    #[tokio::test]
    async fn big_output_is_cut_into_chunks_numbered_in_order() {
        let (runner, shipper, _dir) = runner(1);
        let size = 2 * CHUNK_BYTES + 1000;
        runner.accept(job("j", 1, &format!("head -c {size} /dev/zero | tr '\\0' x"))).unwrap();
        let s = until(&shipper, "j", "the final report", finished).await;
        assert_eq!(s.stdout.len(), size);
        assert!(s.stdout.bytes().all(|b| b == b'x'));
        assert!(s.chunks.len() >= 3, "{:?}", s.chunks);
        assert!(s.chunks.iter().all(|&(_, stream, len)| stream == LogStream::Stdout && len <= CHUNK_BYTES));
        let seqs: Vec<u64> = s.chunks.iter().map(|c| c.0).collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(s.reports.last().unwrap().last_seq, seqs.last().copied());
    }

    #[test]
    fn jobs_do_not_inherit_fleetdecks_settings_or_secrets() {
        let vars = [
            "PATH",
            "HOME",
            "LANG",
            "NODE_API_KEY",
            "NODE_API_KEY_FILE",
            "DATABASE_URL",
            "GITHUB_CLIENT_SECRET",
            "FLEETDECK_MASTER_KEY",
            "ENV_FILE",
            "RUST_LOG",
        ]
        .map(|k| (k.to_owned(), "v".to_owned()));
        let kept: Vec<String> = job_base_env(vars.into_iter()).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kept, ["PATH", "HOME", "LANG"]);
    }
}
