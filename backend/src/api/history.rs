//! `GET /api/history`: the latest status transitions of the whole fleet, newest first (the
//! dashboard's "recent status changes"). One node's are at `/api/nodes/{id}/history`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::api::state::AppState;
use crate::api::{Page, page_limit};
use crate::error::AppResult;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FleetHistoryQuery {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/history",
    operation_id = "fleet_history",
    tag = "nodes",
    params(FleetHistoryQuery),
    responses((status = 200, body = crate::api::Page<crate::nodes::StatusChange>)),
)]
pub async fn fleet(
    state: web::Data<AppState>,
    query: web::Query<FleetHistoryQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let cursor = query.cursor;
    let items = state.registry()?.history(None, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(Page::from_overfetch(items, limit, |c| c.id.clone())))
}
