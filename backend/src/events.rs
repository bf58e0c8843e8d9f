//! Live events for the UI: one broadcast hub that domain code publishes to and each
//! WebSocket subscribes to. A subscriber that falls behind is told to resync rather than
//! silently missing events.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::Timestamp;
use crate::nodes::{NodeId, NodeStatus};

/// Something the UI shows changed.
#[derive(Debug, Clone, Serialize)]
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
}

/// The broadcast hub shared through `AppState`.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Event>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub { tx: broadcast::channel(1024).0 }
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
}
