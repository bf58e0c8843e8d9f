//! `ctl run --all`: one command on every matching node (a fleet-wide run, `POST /api/runs`).
//!
//! Each node's output is printed when its job ends, every line prefixed with the node's
//! name (stdout to stdout, stderr to stderr), so the nodes' lines never mix; then a summary
//! on stderr. The exit code is 0 only if every node ran the command and it succeeded
//! everywhere; 1 otherwise (a node failed, timed out, was lost, cancelled or skipped); 125
//! if `ctl` itself failed. Ctrl-C cancels the run and keeps waiting for it to end (a second
//! Ctrl-C stops waiting).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::ctl::answers::{LogPage, OutputStream, Run, RunNode};
use crate::ctl::client::{Client, CtlError};
use crate::ctl::output::{note, write_err, write_out};
use crate::jobs::JobState;

/// How often the run is looked at.
const POLL: Duration = Duration::from_secs(1);

/// What `ctl run --all` asks for.
pub struct FleetRun {
    pub command: String,
    pub labels: Vec<String>,
    pub timeout_sec: Option<u64>,
    pub parallel: Option<u32>,
    pub stop_on_failure: bool,
}

pub async fn main(client: &Client, ask: FleetRun) -> Result<ExitCode, CtlError> {
    let mut interrupts = crate::ctl::run::interrupts()?;
    let mut body = json!({ "command": ask.command });
    if ask.labels.is_empty() {
        body["all"] = true.into();
    } else {
        body["labels"] = json!(ask.labels);
    }
    if let Some(timeout) = ask.timeout_sec {
        body["timeout_sec"] = timeout.into();
    }
    if let Some(n) = ask.parallel {
        body["max_parallel"] = n.into();
    }
    if ask.stop_on_failure {
        body["stop_on_failure"] = true.into();
    }
    let mut run: Run = client.post("/api/runs", Some(&body)).await?;
    let id = run.id.clone();
    let width = run.nodes.iter().map(|n| n.node_name.chars().count()).max().unwrap_or(0);
    let mut printed: HashSet<String> = HashSet::new();
    let mut cancelling = false;
    loop {
        for node in &run.nodes {
            let over = JobState::parse(&node.status).is_ok_and(JobState::is_final);
            let Some(job) = node.job_id.as_ref().filter(|_| over) else { continue };
            if printed.insert(job.clone()) {
                print_output(client, &node.node_name, width, job).await?;
            }
        }
        if run.status != "running" {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = interrupts.recv() => {
                if cancelling {
                    note(&format!("stopped waiting for run {id}; its jobs may still be running"));
                    return Ok(ExitCode::FAILURE);
                }
                cancelling = true;
                note(&format!("cancelling run {id} (Ctrl-C again to stop waiting)"));
                if let Err(e) = client.post::<Value>(&format!("/api/runs/{id}/cancel"), None).await {
                    note(&format!("error: {e}"));
                }
            }
        }
        run = client.get(&format!("/api/runs/{id}"), &[]).await?;
    }
    let (summary, all_succeeded) = summary(&run.nodes);
    for line in summary {
        note(&line);
    }
    Ok(if all_succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Prints a finished job's output, each line as `name | line`.
async fn print_output(client: &Client, name: &str, width: usize, job: &str) -> Result<(), CtlError> {
    let prefix = format!("{name:<width$} | ");
    let mut lines = Prefixed { prefix: &prefix, out: String::new(), err: String::new() };
    let mut after: Option<u64> = None;
    loop {
        let after_seq = after.map(|s| s.to_string());
        let mut query = vec![("limit", "1000")];
        if let Some(seq) = &after_seq {
            query.push(("after_seq", seq));
        }
        let page: LogPage = client.get(&format!("/api/jobs/{job}/logs"), &query).await?;
        if page.items.is_empty() {
            break;
        }
        for chunk in &page.items {
            lines.push(chunk.stream, &chunk.text)?;
        }
        after = page.next_after_seq;
    }
    lines.finish()
}

/// Output with every line prefixed; a line cut between chunks is held until it is whole.
struct Prefixed<'a> {
    prefix: &'a str,
    out: String,
    err: String,
}

impl Prefixed<'_> {
    fn push(&mut self, stream: OutputStream, text: &str) -> Result<(), CtlError> {
        let held = match stream {
            OutputStream::Stdout => &mut self.out,
            OutputStream::Stderr => &mut self.err,
        };
        held.push_str(text);
        let Some(end) = held.rfind('\n') else { return Ok(()) };
        let whole: String = held.drain(..=end).collect();
        let text: String = whole.lines().map(|line| format!("{}{line}\n", self.prefix)).collect();
        match stream {
            OutputStream::Stdout => write_out(text.as_bytes()),
            OutputStream::Stderr => write_err(text.as_bytes()),
        }
    }

    /// Prints what is left of a last line without a newline.
    fn finish(mut self) -> Result<(), CtlError> {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let held = if stream == OutputStream::Stdout { &self.out } else { &self.err };
            if !held.is_empty() {
                self.push(stream, "\n")?;
            }
        }
        Ok(())
    }
}

/// The closing lines (on stderr), and whether every node succeeded.
fn summary(nodes: &[RunNode]) -> (Vec<String>, bool) {
    let count = |status: &str| nodes.iter().filter(|n| n.status == status).count();
    let succeeded = count("succeeded");
    let mut lines = vec![format!("{} of {} nodes succeeded", succeeded, nodes.len())];
    for node in nodes.iter().filter(|n| n.status != "succeeded") {
        let mut why = node.status.replace('_', " ");
        if let Some(code) = node.exit_code {
            why.push_str(&format!(" (exit {code})"));
        }
        if let Some(reason) = &node.reason {
            why.push_str(&format!(": {reason}"));
        }
        lines.push(format!("  {}: {why}", node.node_name));
    }
    (lines, succeeded == nodes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, status: &str, exit_code: Option<i32>, reason: Option<&str>) -> RunNode {
        RunNode {
            node_name: name.into(),
            status: status.into(),
            job_id: None,
            exit_code,
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn the_summary_names_every_node_that_did_not_succeed_and_why() {
        let nodes = [
            node("alpha", "succeeded", Some(0), None),
            node("bravo", "failed", Some(2), None),
            node("ghost", "skipped", None, Some("offline when the run started")),
        ];
        let (lines, ok) = summary(&nodes);
        assert!(!ok);
        assert_eq!(
            lines,
            [
                "1 of 3 nodes succeeded",
                "  bravo: failed (exit 2)",
                "  ghost: skipped: offline when the run started"
            ]
        );
        assert!(summary(&nodes[..1]).1);
    }
}
