//! Outbound nodes' sockets, on the primary: the node opens one
//! (`GET /api/internal/nodes/:id/connect`, authenticated like any node call) and the
//! primary's calls to it go over it (`nodes::tunnels`); another primary reaches it through
//! the one holding the socket (`POST /api/internal/nodes/:id/relay`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};

use crate::api::PathId;
use crate::api::error::Json;
use crate::api::node_auth::{AuthenticatedNode, FromPrimaries};
use crate::api::state::AppState;
use crate::api::ws::{self, Keepalive, Outbox, Step};
use crate::error::{AppError, AppResult};
use crate::nodes::tunnels::{TunnelError, TunnelSession};
use crate::nodes::{NodeId, Registry};
use crate::protocol::{NODE_KEY_HEADER, NodeAnswer, NodeCall, TunnelFrame};

/// A node's answers are small (stats, an accepted job): anything larger is refused.
const MAX_FRAME_BYTES: usize = 256 * 1024;
/// How long a relayed call may wait for the node's answer.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /api/internal/nodes/:id/connect`: an outbound node's socket to this primary.
#[utoipa::path(
    get,
    path = "/api/internal/nodes/{id}/connect",
    operation_id = "node_connect",
    tag = "node-facing",
    params(PathId),
    responses((status = 101, description = "A WebSocket of `TunnelFrame` JSON text frames: the primary's `hello`, then its `call`s and the node's `answer`s")),
)]
pub async fn connect(
    node: AuthenticatedNode,
    PathId(id): PathId,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let registry = state.registry()?.clone();
    let path_id = NodeId::parse(&id).map_err(|e| AppError::validation("id", e))?;
    if path_id != node.0 {
        return Err(AppError::Forbidden(format!("node {} may not connect as node {path_id}", node.0)));
    }
    if registry.cached(&node.0).is_none_or(|n| n.is_primary) {
        return Err(AppError::Forbidden("primaries do not connect to each other this way".into()));
    }
    let (response, outbox, stream) = ws::upgrade_sized(&req, body, (), MAX_FRAME_BYTES)?;
    let session = registry.tunnel_opened(&node.0).await?;
    // An open node socket does not count against its address's connection cap.
    if let Some(slot) = req.conn_data::<crate::api::edge::ConnectionSlot>() {
        slot.release();
    }
    tracing::info!(node_id = %node.0, "outbound node connected");
    let key = req.headers().get(NODE_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    actix_web::rt::spawn(serve(outbox, stream, session, key, registry, state.events.closed()));
    Ok(response)
}

/// One socket's life: the hello, calls out, answers in, pings both ways. The key it was
/// opened with is checked again at every ping: a node removed, or whose key was rotated out
/// (its grace period over), loses its socket within `PING_EVERY`.
async fn serve(
    mut outbox: Outbox,
    mut stream: actix_ws::MessageStream,
    mut session: TunnelSession,
    key: String,
    registry: Arc<Registry>,
    closed: tokio_util::sync::WaitForCancellationFutureOwned,
) {
    let hello = TunnelFrame::Hello { primary_node_id: registry.primary_id().clone() };
    let mut keepalive = Keepalive::new();
    tokio::pin!(closed);
    let reason = if outbox.text(serde_json::to_string(&hello).unwrap_or_default()).await.is_err() {
        None
    } else {
        loop {
            tokio::select! {
                () = &mut closed => break Some(CloseReason::from(CloseCode::Away)),
                () = keepalive.due() => {
                    if !registry.authenticate(&session.node, &key) {
                        break Some(CloseReason::from((CloseCode::Policy, "this node's credentials are no longer valid")));
                    }
                    match keepalive.ping(&mut outbox).await {
                        Step::Continue => {}
                        Step::Close(reason) => break reason,
                        Step::Gone => break None,
                    }
                }
                frame = session.outgoing.recv() => match frame {
                    Some(text) => if outbox.text(text).await.is_err() { break None },
                    None => break Some(CloseReason::from((CloseCode::Normal, "replaced by a newer connection"))),
                },
                incoming = stream.recv() => {
                    if let Some(Ok(Message::Text(text))) = &incoming {
                        match serde_json::from_str::<TunnelFrame>(text) {
                            Ok(TunnelFrame::Answer { id, answer }) => session.answered(id, answer),
                            _ => tracing::debug!(node_id = %session.node, "ignoring an unexpected frame from an outbound node"),
                        }
                    }
                    match keepalive.heard(incoming, &mut outbox).await {
                        Step::Continue => {}
                        Step::Close(reason) => break reason,
                        Step::Gone => break None,
                    }
                }
            }
        }
    };
    tracing::info!(node_id = %session.node, "outbound node disconnected");
    if let Err(e) = registry.tunnel_closed(&session).await {
        tracing::error!(error = %e, node_id = %session.node, "recording a closed outbound connection failed");
    }
    if reason.is_some() {
        outbox.close(reason).await;
    }
}

/// `POST /api/internal/nodes/:id/relay` (primaries only): a call for an outbound node whose
/// socket this primary holds, made over it; answers what the node answered.
#[utoipa::path(
    post,
    path = "/api/internal/nodes/{id}/relay",
    operation_id = "node_relay",
    tag = "node-facing",
    params(PathId),
    request_body = NodeCall,
    responses(
        (status = 200, description = "The node's answer, whatever its status", body = NodeAnswer),
        (status = 503, description = "This primary holds no connection of the node, or it did not answer", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn relay(
    _primaries: FromPrimaries,
    PathId(id): PathId,
    state: web::Data<AppState>,
    Json(call): Json<NodeCall>,
) -> AppResult<HttpResponse> {
    let node = NodeId::parse(&id).map_err(|e| AppError::validation("id", e))?;
    match state.registry()?.tunnels().call(&node, call, RELAY_TIMEOUT).await {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(TunnelError::NotConnected) => {
            Err(AppError::Unavailable(format!("this primary holds no connection of node {node}")))
        }
        Err(TunnelError::Timeout(_)) => {
            Err(AppError::Unavailable(format!("node {node} did not answer in time")))
        }
        Err(TunnelError::Closed) => Err(AppError::Unavailable(format!("node {node}'s connection closed"))),
    }
}
