//! Live events for the UI: one broadcast hub that domain code publishes to and each
//! WebSocket subscribes to. A subscriber that falls behind is told to resync rather than
//! silently missing events.

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::clock::Timestamp;
use crate::jobs::JobState;
use crate::nodes::{NodeId, NodeStatus};

/// Something the UI shows changed.
#[derive(Debug, Clone, Serialize)]
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
}

/// The broadcast hub shared through `AppState`.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Event>,
    /// Cancelled when the process stops, so long-lived subscribers (WebSockets) end and do
    /// not hold up a graceful shutdown.
    closing: CancellationToken,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub { tx: broadcast::channel(1024).0, closing: CancellationToken::new() }
    }
}

impl EventHub {
    pub fn publish(&self, event: Event) {
        // No subscribers is fine: nobody is watching.
        let _ = self.tx.send(event);
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
