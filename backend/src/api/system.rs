//! Health, readiness, this node's identity and the fleet's latest stats.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::api::state::{AppState, Role};
use crate::error::{AppError, AppResult};
use crate::nodes::{Labels, NodeId, NodeName, NodeStatus, NodeUrl};
use crate::stats::SystemStats;

/// `GET /api/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct HealthReport {
    #[cfg_attr(test, ts(type = r#""healthy""#))]
    status: &'static str,
    #[cfg_attr(test, ts(type = r#""fleetdeck""#))]
    service: &'static str,
    version: &'static str,
    #[cfg_attr(test, ts(type = r#""primary" | "secondary""#))]
    role: &'static str,
}

/// `GET /api/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Readiness {
    #[cfg_attr(test, ts(type = r#""ready""#))]
    status: &'static str,
    /// `leader` or `follower` on a primary (several primaries may share a database);
    /// `secondary` on a secondary.
    #[cfg_attr(test, ts(type = r#""leader" | "follower" | "secondary""#))]
    role: &'static str,
}

#[utoipa::path(get, path = "/api/health", tag = "system", responses((status = 200, body = HealthReport)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(HealthReport {
        status: "healthy",
        service: "fleetdeck",
        version: crate::VERSION,
        role: state.role.name(),
    })
}

/// Ready when the database answers and every migration is applied (primary), always on a
/// secondary, which has no database. Says which role this process plays now.
#[utoipa::path(
    get,
    path = "/api/ready",
    tag = "system",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "Not ready: the database is unreachable or its migrations are not applied", body = super::error::ErrorBody),
    ),
)]
pub async fn ready(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let role = match &state.role {
        Role::Primary(primary) => {
            let applied = primary.db.run(|conn| Ok(crate::db::migrations_applied(conn))).await?;
            if !applied {
                return Err(AppError::Unavailable("database migrations are not applied".into()));
            }
            if primary.cluster.leadership().is_leader() { "leader" } else { "follower" }
        }
        Role::Secondary(_) => "secondary",
    };
    Ok(HttpResponse::Ok().json(Readiness { status: "ready", role }))
}

/// `GET /api/cluster`: the leader and every primary of this database.
#[utoipa::path(get, path = "/api/cluster", tag = "system", responses((status = 200, body = crate::cluster::ClusterView)))]
pub async fn cluster(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.cluster()?.view().await?))
}

#[derive(Serialize, utoipa::ToSchema)]
struct NodeInfo<'a> {
    id: &'a NodeId,
    name: &'a NodeName,
    role: &'static str,
    version: &'static str,
    api_endpoint: &'a NodeUrl,
    labels: &'a Labels,
    max_jobs: u32,
    primary_node_id: Option<NodeId>,
}

#[utoipa::path(get, path = "/api/node/info", tag = "system", responses((status = 200, body = NodeInfo)))]
pub async fn node_info(state: web::Data<AppState>) -> HttpResponse {
    let node = &state.config.node;
    let primary_node_id = match &state.role {
        Role::Primary(primary) => Some(primary.registry.primary_id().clone()),
        Role::Secondary(link) => link.primary_id(),
    };
    let no_labels = crate::nodes::Labels::default();
    HttpResponse::Ok().json(NodeInfo {
        id: &state.identity.id,
        name: &node.name,
        role: state.role.name(),
        version: crate::VERSION,
        api_endpoint: &node.api_endpoint,
        labels: node.labels.as_ref().unwrap_or(&no_labels),
        max_jobs: node.max_jobs,
        primary_node_id,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub(crate) struct NodeStats {
    node_id: NodeId,
    name: NodeName,
    status: NodeStatus,
    is_primary: bool,
    stats: Option<SystemStats>,
}

/// `GET /api/system/stats`: the latest snapshot of every node.
#[utoipa::path(get, path = "/api/system/stats", tag = "nodes", responses((status = 200, body = crate::api::List<NodeStats>)))]
pub async fn fleet_stats(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let registry = state.registry()?;
    let items: Vec<NodeStats> = registry
        .latest_stats()
        .await?
        .into_iter()
        .map(|(node, stats)| NodeStats {
            stats: if &node.id == registry.own_id() { Some(state.node_stats()) } else { stats },
            node_id: node.id,
            name: node.name,
            status: node.status,
            is_primary: node.is_primary,
        })
        .collect();
    Ok(HttpResponse::Ok().json(crate::api::List { items }))
}
