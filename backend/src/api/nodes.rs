//! The operator's node API: list, add, inspect, edit, remove, check now, rotate keys,
//! health history.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::api::PathId;
use crate::api::error::Json;
use crate::api::state::AppState;
use crate::api::{Page, page_limit};
use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::error::{AppError, AppResult};
use crate::nodes::registry::{IssuedKey, NewNode};
use crate::nodes::repo::NodeFilter;
use crate::nodes::{Labels, Node, NodeId, NodeName, NodeStatus, NodeUrl, StatusChange};
use crate::secrets::ApiKey;

/// Writes an audit row for an action on node `id` by `principal`.
/// Audits an action on node `id`, named `name` (as it is now, or was before its removal).
async fn audit(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    action: AuditAction,
    id: &NodeId,
    name: &str,
) -> AppResult<()> {
    let source = crate::api::source(req);
    state
        .audit()?
        .record_named(&principal.actor(), action, Some((id.as_str(), Some(name))), source, None)
        .await;
    Ok(())
}

fn node_id(raw: &str) -> AppResult<NodeId> {
    NodeId::parse(raw).map_err(|e| AppError::validation("id", e))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<NodeStatus>)]
    status: Option<String>,
    /// Only nodes with this label.
    label: Option<String>,
    /// Text in the name or endpoint.
    q: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/nodes", operation_id = "list_nodes", tag = "nodes", params(ListQuery), responses((status = 200, body = Page<Node>)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let status = query
        .status
        .as_deref()
        .map(|s| NodeStatus::parse(s).map_err(|e| AppError::validation("status", e)))
        .transpose()?;
    let label = query
        .label
        .as_deref()
        .map(|l| Labels::parse(&[l]).map_err(|e| AppError::validation("label", e)))
        .transpose()?
        .and_then(|l| l.as_slice().first().cloned());
    let filter = NodeFilter {
        status,
        label,
        text: query.q.filter(|q| !q.trim().is_empty()).map(|q| q.trim().to_owned()),
        after_name: query.cursor,
        limit: limit + 1,
    };
    let items = state.registry()?.list(filter).await?;
    let page = Page::from_overfetch(items, limit, |n| n.name.to_string());
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct CreateNode {
    name: String,
    api_endpoint: String,
    id: Option<String>,
    api_key: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

/// A key shown once, with the `.env` to paste on the secondary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub(crate) struct IssuedKeyResponse {
    node: Node,
    api_key: String,
    env: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_key_valid_until: Option<Timestamp>,
}

impl IssuedKeyResponse {
    fn new(issued: IssuedKey, previous_key_valid_until: Option<Timestamp>) -> Self {
        IssuedKeyResponse {
            api_key: issued.api_key.expose().to_owned(),
            node: issued.node,
            env: issued.env,
            previous_key_valid_until,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/nodes",
    operation_id = "create_node",
    tag = "nodes",
    request_body = CreateNode,
    responses((status = 201, description = "Added; the key and `.env` are shown this once", body = IssuedKeyResponse)),
)]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    Json(body): Json<CreateNode>,
) -> AppResult<HttpResponse> {
    let new = NewNode {
        id: body.id.as_deref().map(node_id).transpose()?,
        name: NodeName::parse(&body.name).map_err(|e| AppError::validation("name", e))?,
        api_endpoint: NodeUrl::parse(&body.api_endpoint)
            .map_err(|e| AppError::validation("api_endpoint", e))?,
        api_key: body
            .api_key
            .as_deref()
            .map(|k| ApiKey::parse(k).map_err(|e| AppError::validation("api_key", e)))
            .transpose()?,
        labels: Labels::parse(&body.labels).map_err(|e| AppError::validation("labels", e))?,
    };
    let issued = state.registry()?.create(new).await?;
    audit(&state, &req, &principal, AuditAction::NodeAdded, &issued.node.id, issued.node.name.as_str())
        .await?;
    Ok(HttpResponse::Created().json(IssuedKeyResponse::new(issued, None)))
}

#[utoipa::path(get, path = "/api/nodes/{id}", operation_id = "get_node", tag = "nodes", params(PathId), responses((status = 200, body = Node)))]
pub async fn get(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    let node = state.registry()?.get(&node_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(node))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct UpdateNode {
    name: Option<String>,
    api_endpoint: Option<String>,
    labels: Option<Vec<String>>,
}

#[utoipa::path(
    put,
    path = "/api/nodes/{id}",
    operation_id = "update_node",
    tag = "nodes",
    params(PathId),
    request_body = UpdateNode,
    responses((status = 200, body = Node)),
)]
pub async fn update(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
    Json(body): Json<UpdateNode>,
) -> AppResult<HttpResponse> {
    let id = node_id(&id)?;
    if body.name.is_none() && body.api_endpoint.is_none() && body.labels.is_none() {
        return Err(AppError::BadRequest("nothing to change: send name, api_endpoint or labels".into()));
    }
    let name = body
        .name
        .as_deref()
        .map(|n| NodeName::parse(n).map_err(|e| AppError::validation("name", e)))
        .transpose()?;
    let endpoint = body
        .api_endpoint
        .as_deref()
        .map(|u| NodeUrl::parse(u).map_err(|e| AppError::validation("api_endpoint", e)))
        .transpose()?;
    let labels =
        body.labels.map(|l| Labels::parse(&l).map_err(|e| AppError::validation("labels", e))).transpose()?;
    let node = state.registry()?.update(&id, name, endpoint, labels).await?;
    audit(&state, &req, &principal, AuditAction::NodeUpdated, &id, node.name.as_str()).await?;
    Ok(HttpResponse::Ok().json(node))
}

#[utoipa::path(delete, path = "/api/nodes/{id}", operation_id = "delete_node", tag = "nodes", params(PathId), responses((status = 204, description = "Removed")))]
pub async fn delete(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let id = node_id(&id)?;
    let registry = state.registry()?;
    let name = registry.get(&id).await?.name;
    registry.delete(&id).await?;
    audit(&state, &req, &principal, AuditAction::NodeRemoved, &id, name.as_str()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/nodes/{id}/check", operation_id = "check_node", tag = "nodes", params(PathId), responses((status = 200, body = CheckResult)))]
pub async fn check(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let id = node_id(&id)?;
    let (node, error) = state.checker()?.check_now(&id).await?;
    audit(&state, &req, &principal, AuditAction::NodeChecked, &id, node.name.as_str()).await?;
    Ok(HttpResponse::Ok().json(CheckResult { node, error }))
}

/// The answer to "check now": the node after the probe, and the probe's error if it failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub(crate) struct CheckResult {
    node: Node,
    error: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/nodes/{id}/rotate-key",
    operation_id = "rotate_node_key",
    tag = "nodes",
    params(PathId),
    responses((status = 200, description = "The new key, shown this once", body = IssuedKeyResponse)),
)]
pub async fn rotate_key(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let id = node_id(&id)?;
    let (issued, grace) = state.registry()?.rotate_key(&id).await?;
    audit(&state, &req, &principal, AuditAction::NodeKeyRotated, &id, issued.node.name.as_str()).await?;
    Ok(HttpResponse::Ok().json(IssuedKeyResponse::new(issued, Some(grace))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/nodes/{id}/history",
    operation_id = "node_history",
    tag = "nodes",
    params(PathId, HistoryQuery),
    responses((status = 200, body = Page<StatusChange>)),
)]
pub async fn history(
    state: web::Data<AppState>,
    PathId(id): PathId,
    query: web::Query<HistoryQuery>,
) -> AppResult<HttpResponse> {
    let id = node_id(&id)?;
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let items = state.registry()?.history(Some(&id), query.cursor, limit + 1).await?;
    let page = Page::from_overfetch(items, limit, |c| c.id.clone());
    Ok(HttpResponse::Ok().json(page))
}
