//! Fleet-wide runs: one command on every matching node (`jobs::runs`).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::api::error::Json;
use crate::api::jobs::what_to_run;
use crate::api::state::AppState;
use crate::api::{Page, PathId, page_limit, source};
use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::error::{AppError, AppResult};
use crate::jobs::runs::{MAX_PARALLEL, MAX_RUN_NODES, NewRun, OutputGroup, Run, RunDetail, RunTarget};
use crate::jobs::{NewJob, Placement};
use crate::nodes::{Labels, NodeId};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct SubmitRun {
    command: String,
    name: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<BTreeMap<String, String>>", optional))]
    env: BTreeMap<String, String>,
    working_dir: Option<String>,
    #[cfg_attr(test, ts(type = "number", optional))]
    timeout_sec: Option<u64>,
    /// Every node. Give exactly one of `all`, `labels` and `node_ids`.
    all: Option<bool>,
    /// Every node holding all of these labels.
    labels: Option<Vec<String>>,
    /// These nodes, in this order.
    node_ids: Option<Vec<String>>,
    /// At most this many of the run's jobs unfinished at a time (default: all at once).
    #[schema(minimum = 1, maximum = 10000)]
    max_parallel: Option<u32>,
    /// With `max_parallel`: the first job that does not succeed stops the run.
    stop_on_failure: Option<bool>,
}

fn validate(body: SubmitRun) -> AppResult<NewRun> {
    let target = match (body.all, body.labels, body.node_ids) {
        (Some(true), None, None) => RunTarget::All,
        (None | Some(false), Some(labels), None) if !labels.is_empty() => {
            RunTarget::Labels(Labels::parse(&labels).map_err(|e| AppError::validation("labels", e))?)
        }
        (None | Some(false), None, Some(ids)) if !ids.is_empty() => {
            if ids.len() > MAX_RUN_NODES {
                return Err(AppError::validation("node_ids", format!("at most {MAX_RUN_NODES} nodes")));
            }
            let ids = ids
                .iter()
                .map(|id| {
                    NodeId::parse(id).map_err(|e| AppError::validation("node_ids", format!("{id:?}: {e}")))
                })
                .collect::<AppResult<Vec<_>>>()?;
            RunTarget::Nodes(ids)
        }
        _ => {
            return Err(AppError::BadRequest(
                "say which nodes: exactly one of all: true, labels (not empty) or node_ids (not empty)"
                    .into(),
            ));
        }
    };
    if body.max_parallel.is_some_and(|n| n == 0 || n > MAX_PARALLEL) {
        return Err(AppError::validation("max_parallel", format!("must be from 1 to {MAX_PARALLEL}")));
    }
    let stop_on_failure = body.stop_on_failure.unwrap_or(false);
    if stop_on_failure && body.max_parallel.is_none() {
        return Err(AppError::validation(
            "stop_on_failure",
            "needs max_parallel: a run that starts every node at once has nothing left to stop",
        ));
    }
    let job = what_to_run(NewJob {
        name: body.name,
        command: body.command,
        env: body.env,
        working_dir: body.working_dir,
        timeout_sec: body.timeout_sec,
        placement: Placement::Labels(Labels::default()),
    })?;
    Ok(NewRun { job, target, max_parallel: body.max_parallel, stop_on_failure })
}

#[utoipa::path(
    post,
    path = "/api/runs",
    operation_id = "submit_run",
    tag = "jobs",
    request_body = SubmitRun,
    responses(
        (status = 201, description = "Started: a job queued for each matching node that can take one; the others listed as skipped or waiting", body = RunDetail),
        (status = 409, description = "No matching node can take a job now", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn submit(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    Json(body): Json<SubmitRun>,
) -> AppResult<HttpResponse> {
    let new = validate(body)?;
    let actor = principal.actor();
    let run = state.runs()?.submit(new, &actor).await?;
    let detail =
        format!("{} nodes: {}", run.run.totals.nodes, run.run.command.chars().take(200).collect::<String>());
    let target = Some((run.run.id.as_str(), run.run.name.as_deref()));
    state.audit()?.record_named(&actor, AuditAction::RunSubmitted, target, source(&req), Some(detail)).await;
    Ok(HttpResponse::Created().json(run))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/runs", operation_id = "list_runs", tag = "jobs", params(ListQuery), responses((status = 200, body = crate::api::Page<Run>)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let items = state.runs()?.list(q.cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(Page::from_overfetch(items, limit, |r| r.id.clone())))
}

#[utoipa::path(get, path = "/api/runs/{id}", operation_id = "get_run", tag = "jobs", params(PathId), responses((status = 200, body = RunDetail)))]
pub async fn get(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.runs()?.get(&id).await?))
}

#[utoipa::path(
    get,
    path = "/api/runs/{id}/output",
    operation_id = "run_output",
    tag = "jobs",
    params(PathId),
    responses((status = 200, description = "Each started node's output, grouped where it is the same (the first 64 KiB compared), the largest group first", body = Vec<OutputGroup>)),
)]
pub async fn output(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.runs()?.output(&id).await?))
}

#[utoipa::path(
    post,
    path = "/api/runs/{id}/cancel",
    operation_id = "cancel_run",
    tag = "jobs",
    params(PathId),
    responses((status = 202, description = "Waiting nodes skipped; every unfinished job cancelled (queued) or asked of its node", body = RunDetail)),
)]
pub async fn cancel(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let actor = principal.actor();
    let (run, on_nodes) = state.runs()?.cancel(&id, &actor).await?;
    state.audit()?.record(&actor, AuditAction::RunCancelled, Some(&id), source(&req), None).await;
    state.router()?.deliver_cancels(on_nodes).await;
    Ok(HttpResponse::Accepted().json(run))
}
