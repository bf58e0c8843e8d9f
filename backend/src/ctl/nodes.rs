//! `ctl nodes`: list, add, show, check, remove a node, rotate its key. A node is named on
//! the command line by its name or its ID.

use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::ctl::Format;
use crate::ctl::answers::{CheckResult, IssuedKey, Node, decode};
use crate::ctl::client::{Client, CtlError};
use crate::ctl::output::{Table, moment, note, print_json, relative, write_out};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodesArgs {
    #[command(subcommand)]
    command: Option<NodesCommand>,
    /// Only nodes with this status: pending, online, offline or unreachable.
    #[arg(long)]
    status: Option<String>,
    /// Only nodes with this label.
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum NodesCommand {
    /// Add a secondary. Prints the `.env` to put on it: its key is shown only this once.
    Add {
        name: String,
        /// Where the primary reaches the secondary's API, e.g. http://10.0.0.5:8080.
        #[arg(long)]
        endpoint: String,
        /// A label (repeat for more).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
        #[command(flatten)]
        format: Format,
    },
    /// One node in detail.
    Show {
        /// The node's name or ID.
        node: String,
        #[command(flatten)]
        format: Format,
    },
    /// Probe a node now. Exits 1 if it did not answer.
    Check {
        /// The node's name or ID.
        node: String,
        #[command(flatten)]
        format: Format,
    },
    /// Remove a node from the fleet.
    Rm {
        /// The node's name or ID.
        node: String,
    },
    /// Issue a node a new key. Prints its new `.env`; the old key works for a grace period.
    RotateKey {
        /// The node's name or ID.
        node: String,
        #[command(flatten)]
        format: Format,
    },
}

pub async fn main(client: &Client, args: NodesArgs) -> Result<ExitCode, CtlError> {
    let Some(command) = args.command else {
        list(client, args.status.as_deref(), args.label.as_deref(), args.format).await?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        NodesCommand::Add { name, endpoint, labels, format } => {
            let body = json!({ "name": name, "api_endpoint": endpoint, "labels": labels });
            let answer: Value = client.post("/api/nodes", Some(&body)).await?;
            print_issued(&answer, format, "added")?;
        }
        NodesCommand::Show { node, format } => {
            let id = node_id(client, &node).await?;
            let answer: Value = client.get(&format!("/api/nodes/{id}"), &[]).await?;
            if format.json {
                print_json(&answer)?;
            } else {
                details(&decode::<Node>(answer)?).print()?;
            }
        }
        NodesCommand::Check { node, format } => {
            let id = node_id(client, &node).await?;
            let answer: Value = client.post(&format!("/api/nodes/{id}/check"), None).await?;
            let result: CheckResult = decode(answer.clone())?;
            if format.json {
                print_json(&answer)?;
            } else {
                write_out(format!("{} is {}\n", result.node.name, result.node.status).as_bytes())?;
            }
            if let Some(error) = result.error {
                note(&format!("error: {} did not answer the check: {error}", result.node.name));
                return Ok(ExitCode::FAILURE);
            }
        }
        NodesCommand::Rm { node } => {
            let id = node_id(client, &node).await?;
            client.delete(&format!("/api/nodes/{id}")).await?;
            note(&format!("removed node {node} ({id})"));
        }
        NodesCommand::RotateKey { node, format } => {
            let id = node_id(client, &node).await?;
            let answer: Value = client.post(&format!("/api/nodes/{id}/rotate-key"), None).await?;
            print_issued(&answer, format, "issued a new key to")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(
    client: &Client,
    status: Option<&str>,
    label: Option<&str>,
    format: Format,
) -> Result<(), CtlError> {
    let mut query = Vec::new();
    query.extend(status.map(|s| ("status", s)));
    query.extend(label.map(|l| ("label", l)));
    let items: Vec<Value> = client.all_pages("/api/nodes", &query).await?;
    if format.json {
        return print_json(&Value::Array(items));
    }
    let now = SystemTime::now();
    let mut table = Table::with_header(&["NAME", "STATUS", "ROLE", "ENDPOINT", "LABELS", "LAST SEEN"]);
    for item in items {
        let node: Node = decode(item)?;
        table.row([
            node.name,
            node.status.to_string(),
            role(node.is_primary).into(),
            node.api_endpoint,
            node.labels.join(","),
            relative(node.last_seen.as_deref(), now),
        ]);
    }
    table.print()
}

/// A new key's answer: the `.env` alone on stdout (so `> .env` works), a note on stderr.
fn print_issued(answer: &Value, format: Format, done: &str) -> Result<(), CtlError> {
    if format.json {
        return print_json(answer);
    }
    let issued: IssuedKey = decode(answer.clone())?;
    write_out(issued.env.as_bytes())?;
    if !issued.env.ends_with('\n') {
        write_out(b"\n")?;
    }
    let mut message = format!(
        "{done} node {} ({}): put the .env above on it; the key is not shown again",
        issued.node.name, issued.node.id
    );
    if let Some(until) = issued.previous_key_valid_until {
        message.push_str(&format!(" (the old key works until {until})"));
    }
    note(&message);
    Ok(())
}

fn details(node: &Node) -> Table {
    let now = SystemTime::now();
    Table::record([
        ("name", node.name.clone()),
        ("id", node.id.clone()),
        ("status", node.status.to_string()),
        ("role", role(node.is_primary).into()),
        ("endpoint", node.api_endpoint.clone()),
        ("labels", node.labels.join(",")),
        ("version", node.version.clone().unwrap_or_default()),
        ("max jobs", node.max_jobs.to_string()),
        ("last seen", moment(node.last_seen.as_deref(), now)),
        ("last check", moment(node.last_health_check.as_deref(), now)),
        ("failures", node.consecutive_failures.to_string()),
        ("last error", node.last_error.clone().unwrap_or_default()),
        ("added", moment(Some(&node.created_at), now)),
    ])
}

fn role(is_primary: bool) -> &'static str {
    if is_primary { "primary" } else { "secondary" }
}

/// How a node was named on the command line.
#[derive(Debug, PartialEq, Eq)]
enum NodeRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

impl NodeRef<'_> {
    /// A UUID is an ID; anything else a name.
    fn parse(arg: &str) -> NodeRef<'_> {
        if crate::nodes::check_uuid(arg).is_ok() { NodeRef::Id(arg) } else { NodeRef::Name(arg) }
    }
}

/// The ID of the node `arg` names (by its name or ID; an ID is not looked up here).
pub async fn node_id(client: &Client, arg: &str) -> Result<String, CtlError> {
    match NodeRef::parse(arg) {
        NodeRef::Id(id) => Ok(id.to_owned()),
        NodeRef::Name(name) => {
            // `q` matches names and endpoints by substring: the name is among the matches.
            let matches: Vec<Node> = client.all_pages("/api/nodes", &[("q", name)]).await?;
            named(name, matches).map(|n| n.id).ok_or_else(|| CtlError::UnknownNode(name.to_owned()))
        }
    }
}

/// The node called `name`: exactly, else the one whose name differs only in case.
fn named(name: &str, candidates: Vec<Node>) -> Option<Node> {
    let mut folded: Vec<Node> = Vec::new();
    for node in candidates {
        if node.name == name {
            return Some(node);
        }
        if node.name.eq_ignore_ascii_case(name) {
            folded.push(node);
        }
    }
    if folded.len() == 1 { folded.pop() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        decode(json!({
            "id": "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", "name": name, "api_endpoint": "http://x",
            "is_primary": false, "status": "online", "labels": [], "consecutive_failures": 0,
            "last_seen": null, "last_health_check": null, "last_error": null, "version": null,
            "max_jobs": 4, "created_at": "2026-01-10T12:00:00.000Z", "updated_at": "2026-01-10T12:00:00.000Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_uuid_names_a_node_by_id_anything_else_by_name() {
        let id = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
        assert_eq!(NodeRef::parse(id), NodeRef::Id(id));
        assert_eq!(NodeRef::parse("web-01"), NodeRef::Name("web-01"));
        assert_eq!(
            NodeRef::parse("0190F6C2-8F5A-7C1E-9A43-1D2B3C4D5E6F"),
            NodeRef::Name("0190F6C2-8F5A-7C1E-9A43-1D2B3C4D5E6F")
        );
    }

    #[test]
    fn a_name_matches_exactly_else_by_case_if_only_one_does() {
        let pick =
            |name: &str, names: &[&str]| named(name, names.iter().map(|n| node(n)).collect()).map(|n| n.name);
        // `q=web` also finds web-01 and a node whose endpoint holds "web".
        assert_eq!(pick("web", &["web", "web-01", "db"]).as_deref(), Some("web"));
        assert_eq!(pick("web-01", &["Web-01", "web-01"]).as_deref(), Some("web-01"));
        assert_eq!(pick("WEB-01", &["web-01", "web-012"]).as_deref(), Some("web-01"));
        assert_eq!(pick("web-01", &["Web-01", "WEB-01"]), None, "ambiguous");
        assert_eq!(pick("web", &["web-01"]), None);
    }
}
