//! Live events for the UI: one broadcast hub that domain code publishes to and each
//! WebSocket subscribes to. A subscriber that falls behind is told to resync rather than
//! silently missing events.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::clock::Timestamp;
use crate::jobs::JobState;
use crate::nodes::{NodeId, NodeStatus};

/// Something the UI shows changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    NodeStatusChanged {
        node_id: NodeId,
        name: String,
        from: NodeStatus,
        to: NodeStatus,
        reason: String,
        at: Timestamp,
    },
    NodeUpdated {
        node_id: NodeId,
    },
    NodeRemoved {
        node_id: NodeId,
    },
    JobUpdated {
        job_id: String,
        status: JobState,
    },
    /// Events may have been missed (a client fell behind, a primary lost its link to the
    /// others): refetch what is shown.
    Resync,
}

/// Where events published here also go: the other primaries (`cluster::bus`).
type Forward = Box<dyn Fn(&Event) + Send + Sync>;

/// The broadcast hub shared through `AppState`.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Event>,
    /// Cancelled when the process stops, so long-lived subscribers (WebSockets) end and do
    /// not hold up a graceful shutdown.
    closing: CancellationToken,
    forward: Arc<OnceLock<Forward>>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").field("subscribers", &self.tx.receiver_count()).finish_non_exhaustive()
    }
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(1024).0,
            closing: CancellationToken::new(),
            forward: Arc::default(),
        }
    }
}

impl EventHub {
    /// Tells this process's subscribers, and the other primaries once `forward_to` is set.
    pub fn publish(&self, event: Event) {
        if let Some(forward) = self.forward.get() {
            forward(&event);
        }
        self.publish_here(event);
    }

    /// Tells this process's subscribers only (an event another primary published).
    pub fn publish_here(&self, event: Event) {
        // No subscribers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Sends every event published from now on to `forward` too (set once).
    pub fn forward_to(&self, forward: impl Fn(&Event) + Send + Sync + 'static) {
        let _ = self.forward.set(Box::new(forward));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Tells every subscriber the process is stopping.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Completes once `close` has been called.
    pub fn closed(&self) -> WaitForCancellationFutureOwned {
        self.closing.clone().cancelled_owned()
    }
}
