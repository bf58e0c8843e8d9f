//! Alert channels, rules, the test button, deliveries, and the alerts a node's page shows.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::alerts::model::{ChannelInput, DeliveryStatus, RuleInput};
use crate::alerts::repo::DeliveryFilter;
use crate::api::error::Json;
use crate::api::state::AppState;
use crate::api::{List, Page, PathId, page_limit};
use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::error::{AppError, AppResult};
use crate::nodes::NodeId;

async fn audit(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    action: AuditAction,
    id: &str,
    details: Option<String>,
) -> AppResult<()> {
    let source = crate::api::source(req);
    state.audit()?.record(&principal.actor(), action, Some(id), source, details).await;
    Ok(())
}

#[utoipa::path(get, path = "/api/alerts/channels", tag = "alerts", responses((status = 200, body = List<crate::alerts::model::Channel>)))]
pub async fn list_channels(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(List { items: state.alerts()?.channels().await? }))
}

#[utoipa::path(get, path = "/api/alerts/channels/{id}", tag = "alerts", params(PathId), responses((status = 200, body = crate::alerts::model::Channel)))]
pub async fn get_channel(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.alerts()?.channel(&id).await?))
}

#[utoipa::path(post, path = "/api/alerts/channels", tag = "alerts", request_body = ChannelInput, responses((status = 201, body = crate::alerts::model::Channel)))]
pub async fn create_channel(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    Json(body): Json<ChannelInput>,
) -> AppResult<HttpResponse> {
    let channel = state.alerts()?.create_channel(body).await?;
    let details = Some(format!("{} ({})", channel.name, channel.kind.as_str()));
    audit(&state, &req, &principal, AuditAction::AlertChannelAdded, &channel.id, details).await?;
    Ok(HttpResponse::Created().json(channel))
}

#[utoipa::path(put, path = "/api/alerts/channels/{id}", tag = "alerts", params(PathId), request_body = ChannelInput, responses((status = 200, body = crate::alerts::model::Channel)))]
pub async fn update_channel(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    PathId(id): PathId,
    Json(body): Json<ChannelInput>,
) -> AppResult<HttpResponse> {
    let channel = state.alerts()?.update_channel(&id, body).await?;
    audit(&state, &req, &principal, AuditAction::AlertChannelUpdated, &id, Some(channel.name.clone()))
        .await?;
    Ok(HttpResponse::Ok().json(channel))
}

#[utoipa::path(delete, path = "/api/alerts/channels/{id}", tag = "alerts", params(PathId), responses((status = 204, description = "Removed, with what waited to be sent to it")))]
pub async fn delete_channel(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    if state.alerts()?.delete_channel(&id).await? {
        audit(&state, &req, &principal, AuditAction::AlertChannelRemoved, &id, None).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/alerts/channels/{id}/test", tag = "alerts", params(PathId), responses((status = 200, description = "What the receiver said", body = crate::alerts::model::TestResult)))]
pub async fn test_channel(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let result = state.alerts()?.test_channel(&id).await?;
    let details = Some(if result.ok { "delivered".to_owned() } else { format!("failed: {}", result.detail) });
    audit(&state, &req, &principal, AuditAction::AlertChannelTested, &id, details).await?;
    Ok(HttpResponse::Ok().json(result))
}

#[utoipa::path(get, path = "/api/alerts/rules", tag = "alerts", responses((status = 200, body = List<crate::alerts::model::Rule>)))]
pub async fn list_rules(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(List { items: state.alerts()?.rules().await? }))
}

#[utoipa::path(get, path = "/api/alerts/rules/{id}", tag = "alerts", params(PathId), responses((status = 200, body = crate::alerts::model::Rule)))]
pub async fn get_rule(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.alerts()?.rule(&id).await?))
}

#[utoipa::path(post, path = "/api/alerts/rules", tag = "alerts", request_body = RuleInput, responses((status = 201, body = crate::alerts::model::Rule)))]
pub async fn create_rule(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    Json(body): Json<RuleInput>,
) -> AppResult<HttpResponse> {
    let rule = state.alerts()?.create_rule(body).await?;
    let details = Some(format!("{} ({})", rule.name, rule.event.as_str()));
    audit(&state, &req, &principal, AuditAction::AlertRuleAdded, &rule.id, details).await?;
    Ok(HttpResponse::Created().json(rule))
}

#[utoipa::path(put, path = "/api/alerts/rules/{id}", tag = "alerts", params(PathId), request_body = RuleInput, responses((status = 200, body = crate::alerts::model::Rule)))]
pub async fn update_rule(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    PathId(id): PathId,
    Json(body): Json<RuleInput>,
) -> AppResult<HttpResponse> {
    let rule = state.alerts()?.update_rule(&id, body).await?;
    audit(&state, &req, &principal, AuditAction::AlertRuleUpdated, &id, Some(rule.name.clone())).await?;
    Ok(HttpResponse::Ok().json(rule))
}

#[utoipa::path(delete, path = "/api/alerts/rules/{id}", tag = "alerts", params(PathId), responses((status = 204, description = "Removed")))]
pub async fn delete_rule(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    if state.alerts()?.delete_rule(&id).await? {
        audit(&state, &req, &principal, AuditAction::AlertRuleRemoved, &id, None).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Deliveries to this channel (its ID).
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    channel: Option<String>,
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Deliveries about this node (its ID).
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    node: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/alerts/deliveries", tag = "alerts", params(DeliveriesQuery), responses((status = 200, body = Page<crate::alerts::model::Delivery>)))]
pub async fn deliveries(
    state: web::Data<AppState>,
    query: web::Query<DeliveriesQuery>,
) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let uuid = |field: &str, v: Option<String>| {
        v.map(|v| crate::nodes::check_uuid(&v).map(|()| v).map_err(|e| AppError::validation(field, e)))
            .transpose()
    };
    let status = q
        .status
        .map(|s| {
            DeliveryStatus::parse(&s)
                .map(|s| s.as_str().to_owned())
                .map_err(|e| AppError::validation("status", e))
        })
        .transpose()?;
    let filter = DeliveryFilter {
        channel: uuid("channel", q.channel)?,
        status,
        node: uuid("node", q.node)?,
        before: uuid("cursor", q.cursor)?,
        limit: limit + 1,
    };
    let items = state.alerts()?.deliveries(filter).await?;
    Ok(HttpResponse::Ok().json(Page::from_overfetch(items, limit, |d| d.id.clone())))
}

/// `GET /api/nodes/:id/alerts`: the alerts that fired for a node, newest first (100).
#[utoipa::path(get, path = "/api/nodes/{id}/alerts", tag = "nodes", params(PathId), responses((status = 200, body = List<crate::alerts::model::FiredAlert>)))]
pub async fn node_alerts(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    let id = NodeId::parse(&id).map_err(|e| AppError::validation("id", e))?;
    Ok(HttpResponse::Ok().json(List { items: state.alerts()?.node_alerts(&id, 100).await? }))
}
