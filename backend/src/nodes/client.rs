//! The one client for the primary's calls to its nodes (health probes, job dispatch,
//! cancels), whichever way a node is reached:
//!
//! - inbound: HTTP to its internal API at its endpoint, each call carrying the primary's
//!   node ID and one of the node's keys, the key the node most likely holds first
//!   (`Registry::keys_for`); a node that refuses a key (401, 403) is tried with the next one;
//! - outbound, its socket held here: over the socket (`nodes::tunnels`);
//! - outbound, its socket held by another primary: through that primary's relay endpoint
//!   (`POST /api/internal/nodes/:id/relay`, authenticated as the primaries are to each other).
//!
//! What went wrong comes back as a [`NodeCallError`], in words an operator can act on.

use std::sync::Arc;
use std::time::Duration;

use crate::nodes::Registry;
use crate::nodes::cache::CachedNode;
use crate::nodes::tunnels::TunnelError;
use crate::protocol::{Connect, JobAssignment, NODE_ID_HEADER, NODE_KEY_HEADER, NodeAnswer, NodeCall};

/// Why a call to a node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCallError {
    /// None of the node's stored keys can be unsealed.
    NoKey,
    /// The node refused every key the primary holds for it.
    Refused { status: u16 },
    /// The node answered, but not with success.
    Status { status: u16, body: String },
    /// No answer within the client's timeout.
    Timeout(Duration),
    /// No connection.
    Connect(String),
    /// Anything else on the way.
    Request(String),
    /// An outbound node with no socket open to any primary.
    NotConnected,
}

impl std::fmt::Display for NodeCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeCallError::NoKey => {
                f.write_str("the stored key cannot be unsealed (was FLEETDECK_MASTER_KEY changed?)")
            }
            NodeCallError::Refused { status } => write!(
                f,
                "the node refused our credentials (HTTP {status}): is its NODE_API_KEY and PRIMARY_NODE_ID current?"
            ),
            NodeCallError::Status { status, body } if body.is_empty() => {
                write!(f, "the node answered HTTP {status}")
            }
            NodeCallError::Status { status, body } => write!(f, "the node answered HTTP {status}: {body}"),
            NodeCallError::Timeout(timeout) => {
                write!(f, "no answer within {}", humantime::format_duration(*timeout))
            }
            NodeCallError::Connect(detail) => write!(f, "cannot connect: {detail}"),
            NodeCallError::Request(detail) => write!(f, "request failed: {detail}"),
            NodeCallError::NotConnected => {
                f.write_str("the node connects outbound and has no connection open to any primary")
            }
        }
    }
}

impl std::error::Error for NodeCallError {}

/// Calls nodes on the primary's behalf; one per purpose (its timeouts differ), built once.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    registry: Arc<Registry>,
    timeout: Duration,
}

impl NodeClient {
    /// A client whose calls give up after `timeout` (connecting: `connect_timeout`), keeping
    /// up to `idle_per_node` connections to each node for reuse.
    pub fn new(
        registry: Arc<Registry>,
        timeout: Duration,
        connect_timeout: Duration,
        idle_per_node: usize,
    ) -> anyhow::Result<NodeClient> {
        let http = crate::protocol::http_client(timeout)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(idle_per_node)
            .build()?;
        Ok(NodeClient { http, registry, timeout })
    }

    /// The health probe: the node's stats, as JSON text.
    pub async fn probe(&self, node: &CachedNode) -> Result<String, NodeCallError> {
        self.send(node, NodeCall::Probe).await
    }

    /// Hands the node a job.
    pub async fn dispatch(&self, node: &CachedNode, assignment: &JobAssignment) -> Result<(), NodeCallError> {
        self.send(node, NodeCall::Dispatch { assignment: assignment.clone() }).await.map(drop)
    }

    /// Asks the node to cancel a job running there.
    pub async fn cancel(&self, node: &CachedNode, job_id: &str) -> Result<(), NodeCallError> {
        self.send(node, NodeCall::Cancel { job_id: job_id.to_owned() }).await.map(drop)
    }

    /// Makes `call` the way `node` is reached; the successful answer's body.
    async fn send(&self, node: &CachedNode, call: NodeCall) -> Result<String, NodeCallError> {
        let tunnels = self.registry.tunnels();
        if tunnels.holds(&node.id) {
            let answer = tunnels.call(&node.id, call, self.timeout).await.map_err(|e| match e {
                TunnelError::NotConnected => NodeCallError::NotConnected,
                TunnelError::Timeout(timeout) => NodeCallError::Timeout(timeout),
                TunnelError::Closed => NodeCallError::Connect("the node's connection closed".into()),
            })?;
            return answered(&answer);
        }
        // Outbound as its heartbeats say, or as a socket held somewhere shows (before the
        // first heartbeat after it connected).
        if node.connect == Connect::Outbound || node.connected_via.is_some() {
            let holder = node.connected_via.as_ref().filter(|h| *h != self.registry.own_id());
            let Some(holder) = holder.and_then(|h| self.registry.cached(h)) else {
                return Err(NodeCallError::NotConnected);
            };
            let path = format!("/api/internal/nodes/{}/relay", node.id);
            let response = self.http_call(&holder, reqwest::Method::POST, &path, Some(&call)).await?;
            let answer: NodeAnswer = response.json().await.map_err(|e| self.error(&e))?;
            return answered(&answer);
        }
        let (method, path, body) = match &call {
            NodeCall::Probe => (reqwest::Method::GET, "/api/internal/system/stats".to_owned(), None),
            NodeCall::Dispatch { assignment } => (
                reqwest::Method::POST,
                "/api/internal/jobs".to_owned(),
                serde_json::to_value(assignment).ok(),
            ),
            NodeCall::Cancel { job_id } => {
                (reqwest::Method::POST, format!("/api/internal/jobs/{job_id}/cancel"), None)
            }
        };
        let response = self.http_call(node, method, &path, body.as_ref()).await?;
        response.text().await.map_err(|e| self.error(&e))
    }

    /// HTTP to `node`'s internal API, trying its keys in turn.
    async fn http_call<T: serde::Serialize + ?Sized>(
        &self,
        node: &CachedNode,
        method: reqwest::Method,
        path: &str,
        body: Option<&T>,
    ) -> Result<reqwest::Response, NodeCallError> {
        let url = node.endpoint.join(path);
        let mut last = NodeCallError::NoKey;
        for key in self.registry.keys_for(node) {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(NODE_ID_HEADER, self.registry.primary_id().as_str())
                .header(NODE_KEY_HEADER, key);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| self.error(&e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                last = NodeCallError::Refused { status: status.as_u16() };
                continue;
            }
            let body: String = response.text().await.unwrap_or_default().chars().take(200).collect();
            return Err(NodeCallError::Status { status: status.as_u16(), body });
        }
        Err(last)
    }

    fn error(&self, e: &reqwest::Error) -> NodeCallError {
        if e.is_timeout() {
            NodeCallError::Timeout(self.timeout)
        } else if e.is_connect() {
            NodeCallError::Connect(connect_failure(e))
        } else {
            NodeCallError::Request(e.to_string())
        }
    }
}

/// A node's answer over a socket, as an HTTP answer would be taken: the body of a success,
/// else the error its body states.
fn answered(answer: &NodeAnswer) -> Result<String, NodeCallError> {
    let status = answer.status;
    if (200..300).contains(&status) {
        return Ok(answer.body.to_string());
    }
    if status == 401 || status == 403 {
        return Err(NodeCallError::Refused { status });
    }
    let message =
        answer.body["error"]["message"].as_str().map_or_else(|| answer.body.to_string(), str::to_owned);
    Err(NodeCallError::Status { status, body: message.chars().take(200).collect() })
}

/// Why a connection failed, in words an operator can act on: the innermost cause (reqwest's
/// own message is "client error (Connect)"), with what to look at for the usual ones.
fn connect_failure(e: &reqwest::Error) -> String {
    use std::io::ErrorKind;
    let mut cause: &dyn std::error::Error = e;
    let mut kind = None;
    while let Some(inner) = cause.source() {
        cause = inner;
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
        }
    }
    match kind {
        Some(ErrorKind::ConnectionRefused) => {
            "connection refused: is the node running, and listening at its endpoint?".into()
        }
        Some(ErrorKind::TimedOut) => {
            "connection timed out: can the primary reach the endpoint's address (firewall, routing)?".into()
        }
        Some(ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable) => {
            "no route to the endpoint's address: is it right, and is the network up?".into()
        }
        _ if cause.to_string().contains("lookup") => {
            format!("{cause}: is the host name in the endpoint right?")
        }
        _ => cause.to_string(),
    }
}
