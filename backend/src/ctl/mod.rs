//! `fleetdeck ctl`: a command-line client for a primary's HTTP API, in the same binary, for
//! people (tables) and scripts (`--json`, exit codes). It needs no server configuration:
//! only the primary's URL and, with user access on, an API token — from `--url`/`--token`,
//! `FLEETDECK_URL`/`FLEETDECK_TOKEN`, or the login `ctl login` saved (`saved`).
//!
//! Every failure is one line on stderr and a non-zero exit (`CtlError`): 1, or for `run`
//! 125 (its other codes are the job's, see `run`). `client` is the one HTTP client;
//! `answers` what the API's answers hold; `output` the tables; one file per command group.

mod answers;
mod client;
mod fleet_run;
mod jobs;
mod nodes;
mod output;
mod run;
mod saved;
mod tokens;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use secrecy::SecretString;

use crate::ctl::answers::{Health, NodeSummary};
use crate::ctl::client::{Client, CtlError};
use crate::ctl::output::{Table, print_json};
use crate::nodes::NodeStatus;

/// Talk to a primary's API from the command line.
#[derive(Debug, Args)]
#[command(
    after_help = "The primary and the token come from --url/--token, else FLEETDECK_URL/FLEETDECK_TOKEN, \
                  else what `fleetdeck ctl login` saved (its token only for its own URL)."
)]
pub struct CtlArgs {
    /// The primary's URL, e.g. http://fleet.lan:8080.
    #[arg(long, env = "FLEETDECK_URL", global = true)]
    url: Option<String>,
    /// An API token (`fdt_…`); none is needed while user access is off.
    #[arg(long, env = "FLEETDECK_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Check --url and --token against the primary and save them for later commands.
    ///
    /// `--token -` reads the token from stdin. The login is saved, readable by you only, in
    /// your config directory: `~/.config/fleetdeck/ctl.json` on Linux.
    Login,
    /// The fleet at a glance: nodes by status, the ones with a problem, jobs at work.
    Status(Format),
    /// List nodes, or add, show, check, remove one or rotate its key.
    Nodes(nodes::NodesArgs),
    /// Run a command as a job: stream its output, exit with its exit code.
    ///
    /// The job's stdout and stderr stream here as it runs, and `ctl` exits with the job's
    /// exit code: 124 if it timed out, 130 if it was cancelled, 125 if `ctl` itself failed
    /// or the job ended without one. Ctrl-C cancels the job and waits for it to end.
    ///
    /// With --all, on every matching node (every node, or those with all the --label
    /// labels): each node's output when it ends, every line prefixed with the node's name,
    /// then a summary; exit 0 only if it succeeded on every node, else 1.
    Run(run::RunArgs),
    /// List jobs, or show one, print or follow its output, or cancel it.
    Jobs(jobs::JobsArgs),
    /// List API tokens, or create or revoke one.
    Tokens(tokens::TokensArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    Completions { shell: clap_complete::Shell },
}

/// `--json`, for commands that print a table or a record.
#[derive(Debug, Clone, Copy, Args)]
pub struct Format {
    /// Print the API's answer as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `fleetdeck ctl …`. `root` is the whole command line's definition, for completions.
pub async fn run(args: CtlArgs, root: fn() -> clap::Command) -> ExitCode {
    let failed = if matches!(args.command, CtlCommand::Run(_)) { run::CTL_FAILED } else { 1 };
    dispatch(args, root).await.unwrap_or_else(|e| {
        output::note(&format!("error: {e}"));
        ExitCode::from(failed)
    })
}

async fn dispatch(args: CtlArgs, root: fn() -> clap::Command) -> Result<ExitCode, CtlError> {
    let CtlArgs { url, token, command } = args;
    let client = || connect(url.clone(), token.clone());
    let done = |r: Result<(), CtlError>| r.map(|()| ExitCode::SUCCESS);
    match command {
        CtlCommand::Login => done(tokens::login(url.clone(), token.clone()).await),
        CtlCommand::Status(format) => done(status(&client()?, format).await),
        CtlCommand::Nodes(args) => nodes::main(&client()?, args).await,
        CtlCommand::Run(args) => run::main(&client()?, args).await,
        CtlCommand::Jobs(args) => done(jobs::main(&client()?, args).await),
        CtlCommand::Tokens(args) => done(tokens::main(&client()?, args).await),
        CtlCommand::Completions { shell } => {
            // Written whole, so a closed stdout is an error like any other, not a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut root(), "fleetdeck", &mut script);
            output::write_out(&script)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A job's or token's ID as given on the command line: a UUID, so it can only ever name one
/// thing in the URL it goes into (never `../nodes/…`).
fn id_arg(raw: &str) -> Result<String, String> {
    crate::nodes::check_uuid(raw).map(|()| raw.to_owned())
}

/// The client for `url` and `token`, filling in what is missing from the saved login. Its
/// token goes only to its own URL: another `--url` gets no saved token.
fn connect(url: Option<String>, token: Option<String>) -> Result<Client, CtlError> {
    let (url, token) = match (url, token) {
        (Some(url), Some(token)) => (url, Some(token)),
        (url, token) => {
            let saved = saved::load()?;
            match (url, saved) {
                (Some(url), Some(saved)) => {
                    let same = client::base_url(&url)? == client::base_url(&saved.url)?;
                    (url, token.or(saved.token.filter(|_| same)))
                }
                (Some(url), None) => (url, token),
                (None, Some(saved)) => (saved.url, token.or(saved.token)),
                (None, None) => return Err(CtlError::NoUrl),
            }
        }
    };
    Client::new(&url, token.map(SecretString::from))
}

/// `ctl status`.
async fn status(client: &Client, format: Format) -> Result<(), CtlError> {
    let health: Health = client.get("/api/health", &[]).await?;
    #[derive(serde::Deserialize)]
    struct Items<T> {
        items: Vec<T>,
    }
    let nodes: Items<NodeSummary> = client.get("/api/system/stats", &[]).await?;
    let running = count_jobs(client, "running").await?;
    let queued = count_jobs(client, "queued").await?;
    let count = |s: NodeStatus| nodes.items.iter().filter(|n| n.status == s).count();
    let problems: Vec<&NodeSummary> = nodes.items.iter().filter(|n| n.status != NodeStatus::Online).collect();
    if format.json {
        let by_status: serde_json::Map<String, serde_json::Value> =
            NodeStatus::ALL.iter().map(|s| (s.as_str().to_owned(), count(*s).into())).collect();
        return print_json(&serde_json::json!({
            "url": client.base(),
            "version": health.version,
            "nodes": { "total": nodes.items.len(), "by_status": by_status },
            "problem_nodes": problems.iter().map(|n| serde_json::json!({ "name": n.name, "status": n.status })).collect::<Vec<_>>(),
            "jobs": { "running": running.counted, "queued": queued.counted },
        }));
    }
    let by_status: Vec<String> =
        NodeStatus::ALL.iter().filter(|s| count(**s) > 0).map(|s| format!("{} {s}", count(*s))).collect();
    let mut table = Table::default();
    table.row(["primary".into(), format!("{} (fleetdeck {})", client.base(), health.version)]);
    table.row(["nodes".into(), format!("{} ({})", nodes.items.len(), by_status.join(", "))]);
    table.row(["jobs".into(), format!("{running} running, {queued} queued")]);
    for node in problems {
        table.row(["problem".into(), format!("{} is {}", node.name, node.status)]);
    }
    table.print()
}

/// How many jobs are in `state`, counted up to 1000 (a table shows more as `1000+`).
async fn count_jobs(client: &Client, state: &str) -> Result<JobCount, CtlError> {
    #[derive(serde::Deserialize)]
    struct JobPage {
        items: Vec<serde::de::IgnoredAny>,
        next_cursor: Option<String>,
    }
    let page: JobPage = client.get("/api/jobs", &[("status", state), ("limit", "1000")]).await?;
    Ok(JobCount { counted: page.items.len(), more: page.next_cursor.is_some() })
}

struct JobCount {
    counted: usize,
    more: bool,
}

impl std::fmt::Display for JobCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.counted, if self.more { "+" } else { "" })
    }
}
