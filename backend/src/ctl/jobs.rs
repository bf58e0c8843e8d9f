//! `ctl jobs`: list jobs, show one, print or follow its output, cancel it.

use std::collections::HashMap;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::ctl::Format;
use crate::ctl::answers::{Job, LogPage, Node, OutputStream, decode};
use crate::ctl::client::{Client, CtlError};
use crate::ctl::output::{Table, moment, note, print_json, relative, write_err, write_out};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: Option<JobsCommand>,
    /// Only jobs in this state: queued, dispatched, running, succeeded, failed, timed_out,
    /// cancelled or lost.
    #[arg(long)]
    status: Option<String>,
    /// How many of the newest jobs to list (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    #[command(flatten)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// One job in detail.
    Show {
        /// The job's ID.
        #[arg(value_parser = crate::ctl::id_arg)]
        job: String,
        #[command(flatten)]
        format: Format,
    },
    /// Print a job's output: its stdout to stdout, its stderr to stderr.
    Logs {
        /// The job's ID.
        #[arg(value_parser = crate::ctl::id_arg)]
        job: String,
        /// Keep printing new output until the job ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a job: a queued one at once, a running one is stopped on its node.
    Cancel {
        /// The job's ID.
        #[arg(value_parser = crate::ctl::id_arg)]
        job: String,
    },
}

pub async fn main(client: &Client, args: JobsArgs) -> Result<(), CtlError> {
    let Some(command) = args.command else {
        return list(client, args.status.as_deref(), args.limit, args.format).await;
    };
    match command {
        JobsCommand::Show { job, format } => {
            let answer: Value = client.get(&format!("/api/jobs/{job}"), &[]).await?;
            if format.json {
                return print_json(&answer);
            }
            let job: Job = decode(answer)?;
            let names = node_names(client, std::slice::from_ref(&job)).await?;
            details(&job, &names).print()
        }
        JobsCommand::Logs { job, follow: true } => crate::ctl::run::follow(client, &job).await.map(drop),
        JobsCommand::Logs { job, follow: false } => print_stored(client, &job).await,
        JobsCommand::Cancel { job } => {
            let answer: Job = client.post(&format!("/api/jobs/{job}/cancel"), None).await?;
            if answer.status.is_final() {
                note(&format!("job {job} is {}", answer.status));
            } else {
                note(&format!("asked job {job}'s node to stop it (it is {} until then)", answer.status));
            }
            Ok(())
        }
    }
}

async fn list(client: &Client, status: Option<&str>, limit: u16, format: Format) -> Result<(), CtlError> {
    #[derive(serde::Deserialize)]
    struct JobPage {
        items: Vec<Value>,
    }
    let limit = limit.to_string();
    let mut query = vec![("limit", limit.as_str())];
    query.extend(status.map(|s| ("status", s)));
    let page: JobPage = client.get("/api/jobs", &query).await?;
    if format.json {
        return print_json(&Value::Array(page.items));
    }
    let jobs: Vec<Job> = page.items.into_iter().map(decode).collect::<Result<_, _>>()?;
    let names = node_names(client, &jobs).await?;
    let now = SystemTime::now();
    let mut table = Table::with_header(&["ID", "STATUS", "EXIT", "NODE", "CREATED", "COMMAND"]);
    for job in jobs {
        table.row([
            job.id,
            job.status.to_string(),
            job.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            node_name(&names, job.assigned_node_id.as_deref()),
            relative(Some(&job.created_at), now),
            shortened(job.name.as_deref().unwrap_or(&job.command), 60),
        ]);
    }
    table.print()
}

/// Node names by ID, for jobs that name a node (none fetched when no job does).
async fn node_names(client: &Client, jobs: &[Job]) -> Result<HashMap<String, String>, CtlError> {
    if jobs.iter().all(|j| j.assigned_node_id.is_none() && j.node_id.is_none()) {
        return Ok(HashMap::new());
    }
    let nodes: Vec<Node> = client.all_pages("/api/nodes", &[]).await?;
    Ok(nodes.into_iter().map(|n| (n.id, n.name)).collect())
}

fn node_name(names: &HashMap<String, String>, id: Option<&str>) -> String {
    match id {
        Some(id) => names.get(id).cloned().unwrap_or_else(|| id.to_owned()),
        None => String::new(),
    }
}

fn shortened(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max_chars - 1).collect();
    short.push('…');
    short
}

fn details(job: &Job, names: &HashMap<String, String>) -> Table {
    let now = SystemTime::now();
    let placement = match &job.node_id {
        Some(id) => format!("node {}", node_name(names, Some(id))),
        None if job.labels.is_empty() => "any node".to_owned(),
        None => format!("a node labelled {}", job.labels.join(",")),
    };
    Table::record([
        ("id", job.id.clone()),
        ("name", job.name.clone().unwrap_or_default()),
        ("command", job.command.clone()),
        ("status", job.status.to_string()),
        ("exit code", job.exit_code.map(|c| c.to_string()).unwrap_or_default()),
        ("error", job.error.clone().unwrap_or_default()),
        ("queued because", job.queue_reason.clone().unwrap_or_default()),
        ("cancel asked", if job.cancel_requested { "yes".into() } else { String::new() }),
        ("runs on", placement),
        ("node", node_name(names, job.assigned_node_id.as_deref())),
        ("timeout", humantime::format_duration(std::time::Duration::from_secs(job.timeout_sec)).to_string()),
        ("submitted by", job.submitted_by.clone()),
        ("created", moment(Some(&job.created_at), now)),
        ("started", moment(job.started_at.as_deref(), now)),
        ("finished", moment(job.finished_at.as_deref(), now)),
    ])
}

/// Prints what is stored of a job's output, a page at a time.
async fn print_stored(client: &Client, job: &str) -> Result<(), CtlError> {
    let path = format!("/api/jobs/{job}/logs");
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1000")];
        if let Some(after) = &after {
            query.push(("after_seq", after));
        }
        let page: LogPage = client.get(&path, &query).await?;
        for chunk in &page.items {
            match chunk.stream {
                OutputStream::Stdout => write_out(chunk.text.as_bytes())?,
                OutputStream::Stderr => write_err(chunk.text.as_bytes())?,
            }
        }
        // A page short of the limit holds the last output stored so far.
        match page.next_after_seq {
            Some(next) if page.items.len() == 1000 => after = Some(next.to_string()),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_command_is_shortened_to_its_column() {
        assert_eq!(shortened("echo hi", 10), "echo hi");
        assert_eq!(shortened("for i in 1 2 3; do echo $i; done", 10), "for i in …");
    }
}
