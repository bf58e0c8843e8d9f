//! The node-facing API: self-registration, heartbeats, and this node's stats.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::error::Json;
use crate::api::node_auth::{AuthenticatedNode, REGISTRATION_TOKEN_HEADER};
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::nodes::registry::{NewNode, Registered};
use crate::nodes::{Labels, NodeId, NodeName, NodeUrl};
use crate::protocol::{Heartbeat, Registration};
use crate::secrets::ApiKey;

/// `GET /api/internal/system/stats`: this node's latest snapshot.
pub async fn system_stats(_node: AuthenticatedNode, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats.latest())
}

pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<Registration>,
) -> AppResult<HttpResponse> {
    let registry = state.registry()?;
    let source = req.peer_addr().map(|a| a.ip());
    state.auth_limiter.check(source)?;
    let new = NewNode {
        id: Some(NodeId::parse(&body.id).map_err(|e| AppError::validation("id", e))?),
        name: NodeName::parse(&body.name).map_err(|e| AppError::validation("name", e))?,
        api_endpoint: NodeUrl::parse(&body.api_endpoint)
            .map_err(|e| AppError::validation("api_endpoint", e))?,
        api_key: Some(ApiKey::parse(&body.api_key).map_err(|e| AppError::validation("api_key", e))?),
        labels: Labels::parse(&body.labels).map_err(|e| AppError::validation("labels", e))?,
    };
    let token = req.headers().get(REGISTRATION_TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let result = registry.register(token, new).await;
    if let Err(AppError::Unauthorized(_)) = &result {
        state.auth_limiter.record_failure(source);
        tracing::warn!(source = ?source, "self-registration with a bad token");
    }
    let (node, outcome) = result?;
    if outcome == Registered::Created {
        let actor = format!("node:{}", node.id);
        state.audit()?.record(&actor, "node_registered", Some(node.id.as_str()), source, None).await;
    }
    Ok(match outcome {
        Registered::Created => HttpResponse::Created().json(serde_json::json!({ "node": node })),
        Registered::AlreadyRegistered => HttpResponse::Ok().json(serde_json::json!({ "node": node })),
    })
}

pub async fn heartbeat(
    node: AuthenticatedNode,
    path: web::Path<String>,
    state: web::Data<AppState>,
    Json(body): Json<Heartbeat>,
) -> AppResult<HttpResponse> {
    let registry = state.registry()?;
    let path_id = NodeId::parse(&path).map_err(|e| AppError::validation("id", e))?;
    if path_id != node.0 {
        return Err(AppError::Forbidden(format!(
            "node {} may not send heartbeats for node {path_id}",
            node.0
        )));
    }
    let reply = registry.heartbeat(&node.0, body).await?;
    Ok(HttpResponse::Ok().json(reply))
}
