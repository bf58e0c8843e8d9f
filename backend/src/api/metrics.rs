//! `GET /metrics`: Prometheus' scrape of this primary. Open where the API is (user access
//! off); otherwise the bearer must be `METRICS_TOKEN`, or the request must pass as it would
//! on the API (an API token, say).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret as _;
use subtle::ConstantTimeEq as _;

use crate::api::state::AppState;
use crate::api::user_auth;
use crate::error::AppResult;
use crate::jobs::JobState;
use crate::metrics::{CONTENT_TYPE, FleetGauges};

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "Prometheus' text format", content_type = "text/plain; version=0.0.4", body = String)),
)]
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let credentials = user_auth::credentials(&req);
    let by_metrics_token = match (&state.config.metrics_token, &credentials.bearer) {
        (Some(expected), Some(bearer)) => {
            bool::from(expected.expose_secret().as_bytes().ct_eq(bearer.as_bytes()))
        }
        _ => false,
    };
    if !by_metrics_token {
        state.auth()?.authenticate(credentials).await?;
    }
    let registry = state.registry()?;
    let jobs = state.jobs()?.state_counts();
    let fleet = FleetGauges {
        nodes: registry.counts().into_iter().map(|(status, n)| (status.as_str(), n)).collect(),
        queue_depth: jobs.iter().find(|(s, _)| *s == JobState::Queued).map_or(0, |(_, n)| *n),
        jobs: jobs.into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
        leader: state.cluster()?.leadership().is_leader(),
    };
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(state.metrics.render(&fleet)))
}
