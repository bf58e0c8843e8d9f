//! `GET /api/history`: the latest status transitions of the whole fleet, newest first (the
//! dashboard's "recent status changes"). One node's are at `/api/nodes/{id}/history`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::api::state::AppState;
use crate::api::{Page, page_limit};
use crate::error::AppResult;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetHistoryQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

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
