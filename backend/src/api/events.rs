//! `GET /api/events/ws`: live changes for the web UI over a WebSocket.
//!
//! The `/api` middleware has already authenticated the upgrade request (session cookie,
//! Cloudflare Access assertion or API token); here its `Origin` is checked too, whatever the
//! method, because a WebSocket is not bound by the browser's same-origin policy. Each
//! connection subscribes to the `EventHub` and forwards every event as one JSON text frame.
//! A client too slow to keep up gets `{"type":"resync"}` (refetch everything) instead of a
//! silent gap; one that stops reading is told the same and disconnected. Pings, liveness and
//! the bound on what is queued per client are `api::ws`; the connection ends when the
//! process stops.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use tokio::sync::broadcast::error::RecvError;

use crate::api::state::AppState;
use crate::api::user_auth::check_origin;
use crate::api::ws::{self, Keepalive, Outbox, Step};
use crate::error::AppResult;
use crate::events::Event;

#[utoipa::path(
    get,
    path = "/api/events/ws",
    operation_id = "events",
    tag = "system",
    responses((status = 101, description = "A WebSocket: one `Event` JSON text frame per change", body = Event)),
)]
pub async fn ws(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    check_origin(&req, state.auth()?.config())?;
    let (response, outbox, stream) = ws::upgrade(&req, body, ())?;
    let events = state.events.subscribe();
    let closed = state.events.closed();
    actix_web::rt::spawn(forward(outbox, stream, events, closed));
    Ok(response)
}

/// One connection's life: events out, pings out, pongs and close in.
async fn forward(
    mut outbox: Outbox,
    mut stream: actix_ws::MessageStream,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    closed: tokio_util::sync::WaitForCancellationFutureOwned,
) {
    let mut keepalive = Keepalive::new();
    tokio::pin!(closed);
    let reason = loop {
        tokio::select! {
            () = &mut closed => break Some(CloseReason::from(CloseCode::Away)),
            () = keepalive.due() => match keepalive.ping(&mut outbox).await {
                Step::Continue => {}
                Step::Close(reason) => break reason,
                Step::Gone => return,
            },
            incoming = stream.recv() => match keepalive.heard(incoming, &mut outbox).await {
                Step::Continue => {}
                Step::Close(reason) => break reason,
                Step::Gone => return,
            },
            received = events.recv() => {
                let Some(text) = outgoing(received) else { break Some(CloseReason::from(CloseCode::Away)) };
                if outbox.text(text).await.is_err() {
                    return;
                }
            }
        }
    };
    outbox.close(reason).await;
}

/// The frame to send for what the hub gave, or `None` when the hub is gone.
fn outgoing(received: Result<Event, RecvError>) -> Option<String> {
    let json = match received {
        Ok(event) => serde_json::to_string(&event),
        Err(RecvError::Lagged(missed)) => {
            tracing::debug!(missed, "a live-events client fell behind; telling it to resync");
            serde_json::to_string(&Event::Resync)
        }
        Err(RecvError::Closed) => return None,
    };
    json.ok()
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::*;
    use crate::nodes::NodeId;

    #[tokio::test]
    async fn a_client_that_falls_behind_is_told_to_resync_then_gets_the_latest_events() {
        let (tx, mut rx) = broadcast::channel(2);
        for _ in 0..3 {
            tx.send(Event::NodeUpdated { node_id: NodeId::generate() }).unwrap();
        }
        assert_eq!(outgoing(rx.recv().await).unwrap(), r#"{"type":"resync"}"#);
        let next = outgoing(rx.recv().await).unwrap();
        assert!(next.starts_with(r#"{"type":"node_updated","node_id":""#), "{next}");
        drop(tx);
        rx.recv().await.unwrap();
        assert_eq!(outgoing(rx.recv().await), None);
    }
}
