//! The one client for the primary's calls to its nodes (health probes, job dispatch,
//! cancels): each call carries the primary's node ID and one of the node's keys, the key the
//! node most likely holds first (`Registry::keys_for`); a node that refuses a key (401, 403)
//! is tried with the next one. What went wrong comes back as a [`NodeCallError`], in words an
//! operator can act on.

use std::sync::Arc;
use std::time::Duration;

use crate::nodes::Registry;
use crate::nodes::cache::CachedNode;
use crate::protocol::{NODE_ID_HEADER, NODE_KEY_HEADER};

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

    /// `GET {endpoint}{path}`: the body of a successful answer.
    pub async fn get_text(&self, node: &CachedNode, path: &str) -> Result<String, NodeCallError> {
        let response = self.call(node, reqwest::Method::GET, path, None::<&()>).await?;
        response.text().await.map_err(|e| self.error(&e))
    }

    /// `POST {endpoint}{path}` with a JSON body (or none); the successful answer.
    pub async fn post<T: serde::Serialize + ?Sized>(
        &self,
        node: &CachedNode,
        path: &str,
        body: Option<&T>,
    ) -> Result<reqwest::Response, NodeCallError> {
        self.call(node, reqwest::Method::POST, path, body).await
    }

    async fn call<T: serde::Serialize + ?Sized>(
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
            NodeCallError::Connect(std::error::Error::source(e).map(ToString::to_string).unwrap_or_default())
        } else {
            NodeCallError::Request(e.to_string())
        }
    }
}
