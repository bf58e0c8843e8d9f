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
    let source = req.peer_addr().map(|a| a.ip());
    state.audit()?.record(&principal.actor(), action, Some(id), source, details).await;
    Ok(())
}

pub async fn list_channels(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(List { items: state.alerts()?.channels().await? }))
}

pub async fn get_channel(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.alerts()?.channel(&id).await?))
}

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

pub async fn list_rules(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(List { items: state.alerts()?.rules().await? }))
}

pub async fn get_rule(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.alerts()?.rule(&id).await?))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    channel: Option<String>,
    status: Option<String>,
    node: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

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
pub async fn node_alerts(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    let id = NodeId::parse(&id).map_err(|e| AppError::validation("id", e))?;
    Ok(HttpResponse::Ok().json(List { items: state.alerts()?.node_alerts(&id, 100).await? }))
}
