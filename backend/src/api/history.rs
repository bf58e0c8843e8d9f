//! `GET /api/history`: the latest status transitions of the whole fleet, newest first (the
//! dashboard's "recent status changes"). One node's are at `/api/nodes/{id}/history`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::api::{Page, page_limit};
use crate::app::AppState;
use crate::error::AppResult;
use crate::nodes::repo;

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
    let items = state
        .registry()?
        .db()
        .run(move |conn| repo::history(conn, None, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_overfetch(items, limit, |c| c.id.clone())))
}
