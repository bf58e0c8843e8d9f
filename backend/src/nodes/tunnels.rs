//! The sockets outbound nodes keep open to this primary (`NODE_CONNECT=outbound`), and the
//! calls made over them. A node has at most one here: a newer socket replaces an older one,
//! whose session then ends. A call is a [`NodeCall`] sent as a `call` frame with a number;
//! the node's `answer` frame with the same number completes it. A call not answered within
//! its timeout, or whose socket closes first, fails like an HTTP call that got no answer.
//!
//! Which primary holds a node's socket is also written to the node's row (`connected_via`,
//! by the registry), so that the leader can reach a node whose socket another primary holds
//! (through that primary's relay endpoint).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::nodes::NodeId;
use crate::protocol::{NodeAnswer, NodeCall, TunnelFrame};

/// Frames waiting to be written to one socket, at most.
const OUTGOING_FRAMES: usize = 64;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<NodeAnswer>>>>;

/// Why a call over a socket failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelError {
    /// This primary holds no socket of the node.
    NotConnected,
    /// No answer within the call's timeout.
    Timeout(Duration),
    /// The socket closed before the answer came.
    Closed,
}

#[derive(Debug, Clone)]
struct Tunnel {
    generation: u64,
    outgoing: mpsc::Sender<String>,
    pending: Pending,
}

/// The open sockets, by node.
#[derive(Debug, Default)]
pub struct Tunnels {
    open: Mutex<HashMap<NodeId, Tunnel>>,
    /// Numbers sockets (a newer one for a node replaces an older) and calls.
    counter: AtomicU64,
}

/// One socket's end on the primary: the frames to write to it, and where its answers go.
#[derive(Debug)]
pub struct TunnelSession {
    pub node: NodeId,
    generation: u64,
    /// What to write to the socket. Ends when a newer socket of the node replaced this one.
    pub outgoing: mpsc::Receiver<String>,
    pending: Pending,
}

impl TunnelSession {
    /// Takes an `answer` frame's content: completes the call waiting for it, if any.
    pub fn answered(&self, id: u64, answer: NodeAnswer) {
        let waiting = self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        if let Some(waiting) = waiting {
            let _ = waiting.send(answer);
        }
    }
}

impl Drop for TunnelSession {
    fn drop(&mut self) {
        // Calls still waiting fail now (`Closed`), not at their timeout.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Tunnel>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new socket of `node`, replacing any older one (whose session ends).
    pub fn open(&self, node: &NodeId) -> TunnelSession {
        let (outgoing, receiver) = mpsc::channel(OUTGOING_FRAMES);
        let generation = self.counter.fetch_add(1, Ordering::Relaxed);
        let pending = Pending::default();
        self.lock().insert(node.clone(), Tunnel { generation, outgoing, pending: pending.clone() });
        TunnelSession { node: node.clone(), generation, outgoing: receiver, pending }
    }

    /// Forgets `session`'s socket, unless a newer one replaced it; whether it was forgotten.
    pub fn close(&self, session: &TunnelSession) -> bool {
        let mut open = self.lock();
        if open.get(&session.node).is_some_and(|t| t.generation == session.generation) {
            open.remove(&session.node);
            true
        } else {
            false
        }
    }

    /// Whether this primary holds a socket of `node`.
    pub fn holds(&self, node: &NodeId) -> bool {
        self.lock().contains_key(node)
    }

    /// How many sockets are open.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Makes `call` over `node`'s socket and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        node: &NodeId,
        call: NodeCall,
        timeout: Duration,
    ) -> Result<NodeAnswer, TunnelError> {
        let tunnel = self.lock().get(node).cloned().ok_or(TunnelError::NotConnected)?;
        let id = self.counter.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        tunnel.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, answer);
        // However the call ends (answered, timed out, or its caller gone), it waits no more.
        let _waiting = Waiting { pending: &tunnel.pending, id };
        let frame = serde_json::to_string(&TunnelFrame::Call { id, call }).unwrap_or_default();
        let outcome = tokio::time::timeout(timeout, async {
            tunnel.outgoing.send(frame).await.map_err(|_| TunnelError::Closed)?;
            answered.await.map_err(|_| TunnelError::Closed)
        })
        .await;
        outcome.unwrap_or(Err(TunnelError::Timeout(timeout)))
    }
}

/// A call waiting for its answer; forgotten when dropped.
struct Waiting<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::parse("0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f").unwrap()
    }

    #[tokio::test]
    async fn a_call_is_answered_by_the_frame_with_its_number() {
        let tunnels = Tunnels::default();
        let mut session = tunnels.open(&node());
        let calling = tokio::spawn({
            let tunnels = Arc::new(tunnels);
            let t = tunnels.clone();
            async move { (t.call(&node(), NodeCall::Probe, Duration::from_secs(5)).await, tunnels) }
        });
        let frame = session.outgoing.recv().await.unwrap();
        let TunnelFrame::Call { id, call: NodeCall::Probe } = serde_json::from_str(&frame).unwrap() else {
            panic!("{frame}")
        };
        session.answered(id + 1000, NodeAnswer { status: 500, body: serde_json::json!({}) });
        session.answered(id, NodeAnswer { status: 200, body: serde_json::json!({"ok": true}) });
        let (answer, tunnels) = calling.await.unwrap();
        assert_eq!(answer.unwrap().status, 200);
        assert!(tunnels.holds(&node()));
        assert!(tunnels.close(&session));
        assert_eq!(
            tunnels.call(&node(), NodeCall::Probe, Duration::from_secs(1)).await.unwrap_err(),
            TunnelError::NotConnected
        );
    }

    #[tokio::test]
    async fn a_newer_socket_replaces_the_older_and_unanswered_calls_end() {
        let tunnels = Arc::new(Tunnels::default());
        let mut older = tunnels.open(&node());
        let newer = tunnels.open(&node());
        assert!(older.outgoing.recv().await.is_none(), "the older session's frames end");
        assert!(!tunnels.close(&older), "closing the older leaves the newer");
        assert!(tunnels.holds(&node()));
        let t = tunnels.clone();
        let calling =
            tokio::spawn(async move { t.call(&node(), NodeCall::Probe, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tunnels.close(&newer));
        drop(newer);
        assert_eq!(calling.await.unwrap().unwrap_err(), TunnelError::Closed);
        // Unanswered within the timeout.
        let mut silent = tunnels.open(&node());
        let started = std::time::Instant::now();
        let outcome = tunnels.call(&node(), NodeCall::Probe, Duration::from_millis(100)).await;
        assert_eq!(outcome.unwrap_err(), TunnelError::Timeout(Duration::from_millis(100)));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(silent.outgoing.recv().await.is_some());
    }
}
