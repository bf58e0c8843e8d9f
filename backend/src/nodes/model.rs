//! What a node is: its validated parts (parse, don't validate) and its status.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::Timestamp;

/// A node's ID: a UUID, kept in canonical lowercase hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(into = "String", try_from = "String")]
#[cfg_attr(test, derive(ts_rs::TS), ts(type = "string"))]
pub struct NodeId(String);

impl TryFrom<String> for NodeId {
    type Error = String;
    fn try_from(raw: String) -> Result<NodeId, String> {
        NodeId::parse(&raw)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl NodeId {
    pub fn generate() -> NodeId {
        NodeId(uuid::Uuid::now_v7().to_string())
    }

    pub fn parse(raw: &str) -> Result<NodeId, String> {
        check_uuid(raw).map(|()| NodeId(raw.to_owned()))
    }

    /// Trusted text from our own database.
    pub(crate) fn from_db(raw: String) -> NodeId {
        NodeId(raw)
    }

    pub(crate) fn from_db_str(raw: &str) -> NodeId {
        NodeId(raw.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every ID Fleetdeck hands out is a UUID in one form, lowercase and hyphenated; no other
/// spelling of it (upper case, braces, `urn:uuid:`, no hyphens) is taken for it.
pub fn check_uuid(raw: &str) -> Result<(), String> {
    let canonical = raw.len() == 36
        && raw.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if canonical {
        Ok(())
    } else {
        Err("must be a UUID in lowercase hyphenated form, e.g. 0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f".into())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node's unique display name: 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(raw: &str) -> Result<NodeName, String> {
        let ok_len = (1..=64).contains(&raw.len());
        let ok_chars = raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        let ok_start = raw.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok_len && ok_chars && ok_start {
            Ok(NodeName(raw.to_owned()))
        } else {
            Err("must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit".into())
        }
    }

    /// A usable name from a host name (the default `NODE_NAME`), if there is one.
    pub fn from_hostname(host: &str) -> Option<NodeName> {
        let cleaned: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
            .take(64)
            .collect();
        NodeName::parse(cleaned.trim_start_matches(['.', '_', '-'])).ok()
    }

    pub(crate) fn from_db(raw: String) -> NodeName {
        NodeName(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node's base URL as other nodes reach it: http(s), a host, no credentials, query or
/// fragment; kept without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NodeUrl(String);

impl NodeUrl {
    pub fn parse(raw: &str) -> Result<NodeUrl, String> {
        if raw.len() > 2048 {
            return Err("must be at most 2048 characters".into());
        }
        let url = Url::parse(raw).map_err(|e| {
            format!("not a valid URL: {}, e.g. http://10.0.0.5:8080", crate::urls::problem(e))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must use http:// or https://".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        Ok(NodeUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub(crate) fn from_db(raw: String) -> NodeUrl {
        NodeUrl(raw)
    }

    /// With port 0 (listen on any free port) replaced by the port actually bound.
    pub fn with_bound_port(&self, bound: u16) -> NodeUrl {
        match Url::parse(&self.0) {
            Ok(mut url) if url.port() == Some(0) => {
                let _ = url.set_port(Some(bound));
                NodeUrl(url.as_str().trim_end_matches('/').to_owned())
            }
            _ => self.clone(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self` + `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node's labels (job routing): lowercase, unique, sorted; at most 32 of 1–63 characters
/// of `a-z 0-9 . _ - = /`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Labels(Vec<String>);

impl Labels {
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Labels, String> {
        let mut labels = Vec::with_capacity(items.len());
        for item in items {
            let label = item.as_ref().trim().to_ascii_lowercase();
            let ok = (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-=/".contains(&b));
            if !ok {
                return Err(format!(
                    "label {:?} must be 1-63 characters of letters, digits, '.', '_', '-', '=' or '/'",
                    item.as_ref()
                ));
            }
            labels.push(label);
        }
        labels.sort();
        labels.dedup();
        if labels.len() > 32 {
            return Err("at most 32 labels".into());
        }
        Ok(Labels(labels))
    }

    /// A comma list such as `linux,amd64,gpu` (empty items ignored).
    pub fn parse_list(list: &str) -> Result<Labels, String> {
        let items: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        Labels::parse(&items)
    }

    /// The stored form: `Labels::to_list`, trusted.
    pub(crate) fn from_db(list: &str) -> Labels {
        Labels(list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    pub fn to_list(&self) -> String {
        self.0.join(",")
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether every label of `required` is among these.
    pub fn contains_all(&self, required: &Labels) -> bool {
        required.0.iter().all(|l| self.0.binary_search(l).is_ok())
    }
}

/// Where a node stands, as the primary sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum NodeStatus {
    /// Added but never reached.
    Pending,
    Online,
    Offline,
    Unreachable,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 4] =
        [NodeStatus::Pending, NodeStatus::Online, NodeStatus::Offline, NodeStatus::Unreachable];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Online => "online",
            NodeStatus::Offline => "offline",
            NodeStatus::Unreachable => "unreachable",
        }
    }

    pub fn parse(raw: &str) -> Result<NodeStatus, String> {
        NodeStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| "must be one of pending, online, offline, unreachable".to_string())
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node as the API shows it (no key material).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Node {
    pub id: NodeId,
    pub name: NodeName,
    pub api_endpoint: NodeUrl,
    pub is_primary: bool,
    pub status: NodeStatus,
    pub labels: Labels,
    pub consecutive_failures: u32,
    pub last_seen: Option<Timestamp>,
    pub last_health_check: Option<Timestamp>,
    pub last_error: Option<String>,
    pub version: Option<String>,
    pub max_jobs: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// How the primaries reach it: at `api_endpoint` (inbound), or over the socket it keeps
    /// open to a primary (outbound, `NODE_CONNECT`).
    pub connect: crate::protocol::Connect,
}

/// One stored status transition.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct StatusChange {
    pub id: String,
    pub node_id: NodeId,
    pub from: NodeStatus,
    pub to: NodeStatus,
    pub reason: String,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_urls_labels_and_ids_are_checked_and_normalized() {
        assert!(NodeName::parse("web-01.lan").is_ok());
        for bad in ["", "-web", "web 01", &"x".repeat(65)] {
            assert!(NodeName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(NodeName::from_hostname("My_Host!").unwrap().as_str(), "My_Host-");

        assert_eq!(NodeUrl::parse("http://10.0.0.5:8080/").unwrap().as_str(), "http://10.0.0.5:8080");
        for bad in ["ftp://x", "not a url", "http://u:p@host", "http://host/?q=1"] {
            assert!(NodeUrl::parse(bad).is_err(), "{bad:?}");
        }

        let labels = Labels::parse_list("Linux, gpu,,amd64,gpu").unwrap();
        assert_eq!(labels.to_list(), "amd64,gpu,linux");
        assert!(labels.contains_all(&Labels::parse_list("gpu,linux").unwrap()));
        assert!(!labels.contains_all(&Labels::parse_list("arm64").unwrap()));
        assert!(Labels::parse_list("bad label").is_err());

        let id = NodeId::parse("0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f").unwrap();
        assert_eq!(id.as_str(), "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f");
        for other_spelling in [
            "node-1",
            "0190F6C2-8F5A-7C1E-9A43-1D2B3C4D5E6F",
            "{0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f}",
            "urn:uuid:0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f",
            "0190f6c28f5a7c1e9a431d2b3c4d5e6f",
            " 0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f",
        ] {
            assert!(NodeId::parse(other_spelling).is_err(), "{other_spelling}");
        }
    }
}
