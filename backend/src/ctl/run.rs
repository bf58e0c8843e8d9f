//! `ctl run`: submit a job, stream its output live, exit with its exit code; and following
//! a job's output (`ctl jobs logs --follow` too).
//!
//! Output comes over `GET /api/jobs/{id}/logs/ws` (`api::jobs::follow`): chunks in `seq`
//! order, then `end` with the job's final status. A dropped connection or a `resync` is
//! followed by a reconnect after the last `seq` printed, so nothing is printed twice or
//! missed. Ctrl-C asks the primary to cancel the job and keeps following until it ends (a
//! second Ctrl-C stops waiting).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::ctl::answers::{Job, LogMessage, OutputStream};
use crate::ctl::client::{Client, CtlError, root_cause};
use crate::ctl::fleet_run::{self, FleetRun};
use crate::ctl::nodes::node_id;
use crate::ctl::output::{note, write_err, write_out};
use crate::jobs::JobState;

/// `run`'s exit code when `ctl` itself failed, or the job ended without an exit code
/// (lost with its node, killed by a signal, never started), as timeout(1) does.
pub const CTL_FAILED: u8 = 125;
/// A job that timed out, as timeout(1).
const TIMED_OUT: u8 = 124;
/// A job that was cancelled (128 + SIGINT, as a shell reports an interrupted command).
const CANCELLED: u8 = 130;

/// No message for this long (the primary pings every 15 s) means the connection is dead.
const SILENCE: Duration = Duration::from_secs(45);
/// Reconnects in a row without new output before following gives up.
const RECONNECTS: u32 = 8;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run on a node with this label (repeat: a node with all of them); with --all, on
    /// every such node.
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Run on this node (its name or ID).
    #[arg(long, conflicts_with_all = ["labels", "all"])]
    node: Option<String>,
    /// Run on every matching node at once (a fleet-wide run): each node's output prefixed
    /// with its name; exit 0 only if it succeeded on every node.
    #[arg(long)]
    all: bool,
    /// With --all: at most this many nodes at a time (a rolling run).
    #[arg(long, requires = "all", value_name = "N")]
    parallel: Option<u32>,
    /// With --parallel: stop at the first node that does not succeed.
    #[arg(long, requires = "parallel")]
    stop_on_failure: bool,
    /// Stop the job after this long, e.g. 90s or 5m (default: the primary's, 30m).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// The command and its arguments, run on the node as given (no shell: use
    /// `sh -c '…'` for pipes and variables).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub async fn main(client: &Client, args: RunArgs) -> Result<ExitCode, CtlError> {
    if args.all {
        let ask = FleetRun {
            command: shell_command(&args.command),
            labels: args.labels,
            timeout_sec: args.timeout.map(whole_seconds),
            parallel: args.parallel,
            stop_on_failure: args.stop_on_failure,
        };
        return fleet_run::main(client, ask).await;
    }
    let mut interrupts = interrupts()?;
    let mut body = json!({ "command": shell_command(&args.command) });
    if let Some(node) = &args.node {
        body["node_id"] = node_id(client, node).await?.into();
    }
    if !args.labels.is_empty() {
        body["labels"] = json!(args.labels);
    }
    if let Some(timeout) = args.timeout {
        body["timeout_sec"] = whole_seconds(timeout).into();
    }
    let job: Job = client.post("/api/jobs", Some(&body)).await?;
    let id = job.id;

    let following = follow(client, &id);
    tokio::pin!(following);
    let mut cancelling = false;
    let (status, exit_code) = loop {
        tokio::select! {
            end = &mut following => break end?,
            _ = interrupts.recv() => {
                if cancelling {
                    note(&format!("stopped waiting for job {id}; it may still be running"));
                    return Ok(ExitCode::from(CANCELLED));
                }
                cancelling = true;
                note(&format!("cancelling job {id} (Ctrl-C again to stop waiting)"));
                if let Err(e) = client.post::<Value>(&format!("/api/jobs/{id}/cancel"), None).await {
                    note(&format!("error: {e}"));
                }
            }
        }
    };
    let code = exit_status(status, exit_code);
    if exit_code.and_then(|c| u8::try_from(c).ok()) != Some(code) {
        // Why the job's own exit code is not passed on.
        let error = client.get::<Job>(&format!("/api/jobs/{id}"), &[]).await.ok().and_then(|j| j.error);
        note(&format!("job {id}: {}", error.as_deref().unwrap_or(status_words(status))));
    }
    Ok(ExitCode::from(code))
}

/// Ctrl-C as a stream, listened to from the start: one pressed while a job or run is being
/// submitted still cancels it.
pub fn interrupts() -> Result<tokio::signal::unix::Signal, CtlError> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CtlError::Local(format!("cannot listen for Ctrl-C: {e}")))
}

/// The exit code `run` passes on for a job that ended so.
fn exit_status(status: JobState, exit_code: Option<i32>) -> u8 {
    match (status, exit_code) {
        (JobState::TimedOut, _) => TIMED_OUT,
        (JobState::Cancelled, _) => CANCELLED,
        (JobState::Succeeded | JobState::Failed, Some(code)) => u8::try_from(code).unwrap_or(CTL_FAILED),
        (JobState::Succeeded, None) => 0,
        _ => CTL_FAILED,
    }
}

/// How a job ended, when the primary gave no reason.
fn status_words(status: JobState) -> &'static str {
    match status {
        JobState::TimedOut => "timed out",
        JobState::Cancelled => "cancelled",
        JobState::Lost => "lost with its node",
        JobState::Succeeded => "succeeded",
        _ => "failed",
    }
}

/// Whole seconds, rounded up: a timeout is never shorter than asked.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The words as one `sh -c` command line that runs them as they are: each quoted where the
/// shell would read it otherwise.
fn shell_command(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
    quoted.join(" ")
}

fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints job `id`'s output as it comes, stdout and stderr to their own, until the job
/// ends; returns its final status and exit code.
pub async fn follow(client: &Client, id: &str) -> Result<(JobState, Option<i32>), CtlError> {
    let mut printed: Option<u64> = None;
    let mut attempts = 0;
    loop {
        let before = printed;
        let outcome = follow_once(client, id, &mut printed).await;
        if printed != before {
            attempts = 0;
        }
        let error = match outcome {
            Ok(Some(end)) => return Ok(end),
            // Told to resync, or closed without an end: reconnect.
            Ok(None) => None,
            // Gone, busy (too many followers) or failing for a moment: try again.
            Err(e @ CtlError::Unreachable { .. }) => Some(e),
            Err(e @ (CtlError::Api { status, .. } | CtlError::NotTheApi(status)))
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() =>
            {
                Some(e)
            }
            Err(e) => return Err(e),
        };
        attempts += 1;
        if attempts > RECONNECTS {
            return Err(
                error.unwrap_or_else(|| client.unreachable(format!("the output of job {id} stopped coming")))
            );
        }
        let wait = Duration::from_millis(250 << attempts.min(5)).min(Duration::from_secs(5));
        tokio::time::sleep(wait).await;
    }
}

/// One connection's worth of following, printing chunks after `printed`: the end, or
/// `None` when the connection ended first.
async fn follow_once(
    client: &Client,
    id: &str,
    printed: &mut Option<u64>,
) -> Result<Option<(JobState, Option<i32>)>, CtlError> {
    let mut path = format!("/api/jobs/{id}/logs/ws");
    if let Some(seq) = printed {
        path.push_str(&format!("?after_seq={seq}"));
    }
    let unreachable = |e: &dyn std::error::Error| client.unreachable(root_cause(e));
    let request = client.websocket_request(&path)?;
    let (mut socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            return Err(CtlError::from_answer(response.status(), body, client.sends_token()));
        }
        Err(e) => return Err(unreachable(&e)),
    };
    loop {
        let Ok(message) = tokio::time::timeout(SILENCE, socket.next()).await else {
            return Err(client.unreachable(format!("no word from it for {}s", SILENCE.as_secs())));
        };
        let text = match message {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(unreachable(&e)),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        // A kind of message this client does not know yet is not for it.
        let Ok(message) = serde_json::from_str::<LogMessage>(&text) else { continue };
        match message {
            LogMessage::Chunk(chunk) => {
                if printed.is_some_and(|p| chunk.seq <= p) {
                    continue;
                }
                match chunk.stream {
                    OutputStream::Stdout => write_out(chunk.text.as_bytes())?,
                    OutputStream::Stderr => write_err(chunk.text.as_bytes())?,
                }
                *printed = Some(chunk.seq);
            }
            LogMessage::End { status, exit_code } => {
                let _ = socket.close(None).await;
                return Ok(Some((status, exit_code)));
            }
            LogMessage::Resync => {
                let _ = socket.send(Message::Close(None)).await;
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_a_command_line_that_runs_them_as_given() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(shell_command(&words(&["ls", "-la", "/var/log"])), "ls -la /var/log");
        assert_eq!(
            shell_command(&words(&["sh", "-c", "echo $HOME; echo 'hi'"])),
            r#"sh -c 'echo $HOME; echo '\''hi'\'''"#
        );
        assert_eq!(shell_command(&words(&["printf", "", "a b"])), "printf '' 'a b'");
    }

    #[test]
    fn a_job_ends_in_its_exit_code_or_one_that_says_why_it_has_none() {
        assert_eq!(exit_status(JobState::Succeeded, Some(0)), 0);
        assert_eq!(exit_status(JobState::Failed, Some(3)), 3);
        assert_eq!(exit_status(JobState::TimedOut, None), TIMED_OUT);
        assert_eq!(exit_status(JobState::Cancelled, Some(143)), CANCELLED);
        assert_eq!(exit_status(JobState::Failed, None), CTL_FAILED, "killed by a signal");
        assert_eq!(exit_status(JobState::Lost, None), CTL_FAILED);
        assert_eq!(exit_status(JobState::Failed, Some(-1)), CTL_FAILED);
    }

    #[test]
    fn a_timeout_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
    }
}
