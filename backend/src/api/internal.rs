//! The node-facing API: self-registration, heartbeats, and this node's stats.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::PathId;
use crate::api::error::{Body, Json};
use crate::api::node_auth::{AuthenticatedNode, FromPrimaries};
use crate::api::state::AppState;
use crate::audit::AuditAction;
use crate::error::{AppError, AppResult};
use crate::nodes::registry::{NewNode, Registered};
use crate::nodes::{Labels, NodeId, NodeName, NodeUrl};
use crate::protocol::{
    ChunkParams, ChunkStored, Heartbeat, HeartbeatReply, JOIN_TOKEN_HEADER, JobAccepted, JobAssignment,
    JobReport, NodeAnswer, NodeCall, REGISTRATION_TOKEN_HEADER, Registration, RegistrationReply,
    ReportApplied,
};
use crate::secrets::ApiKey;
use crate::worker::runner::Refusal;

/// `GET /api/internal/system/stats`: this node's latest snapshot.
#[utoipa::path(
    get,
    path = "/api/internal/system/stats",
    operation_id = "node_probe",
    tag = "node-facing",
    responses((status = 200, description = "This node's latest stats (the health probe)", body = crate::stats::SystemStats)),
)]
pub async fn system_stats(_node: AuthenticatedNode, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.node_stats())
}

/// `POST /api/internal/nodes/register`, with `X-Registration-Token` (self-registration) or
/// `X-Join-Token` (a join token, spent by it). The registration token is checked before the
/// body is read, so nobody without it can hold a connection open by sending a body slowly;
/// a join token is checked against the database with the body (bounded by the JSON limit
/// and the request timeout). Any refused token counts against the failed-auth limit.
#[utoipa::path(
    post,
    path = "/api/internal/nodes/register",
    operation_id = "node_register",
    tag = "node-facing",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered", body = RegistrationReply),
        (status = 200, description = "Already registered with this ID and key", body = RegistrationReply),
        (status = 401, description = "The token is unknown, revoked, expired or already used", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    let registry = state.registry()?;
    let source = crate::api::source(&req);
    state.auth_limiter.check(source)?;
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let join_token = header(JOIN_TOKEN_HEADER);
    let token = header(REGISTRATION_TOKEN_HEADER);
    let refused = |e: AppError| {
        if matches!(e, AppError::Unauthorized(_)) {
            state.auth_limiter.record_failure(source);
            tracing::warn!(source = ?source, error = %e, "registration refused");
        }
        e
    };
    if join_token.is_none() {
        registry.check_registration_token(token).map_err(refused)?;
    }
    let body: Registration = Json::read(&req, payload).await?;
    let new = NewNode {
        id: Some(NodeId::parse(&body.id).map_err(|e| AppError::validation("id", e))?),
        name: NodeName::parse(&body.name).map_err(|e| AppError::validation("name", e))?,
        api_endpoint: NodeUrl::parse(&body.api_endpoint)
            .map_err(|e| AppError::validation("api_endpoint", e))?,
        api_key: Some(ApiKey::parse(&body.api_key).map_err(|e| AppError::validation("api_key", e))?),
        labels: Labels::parse(&body.labels).map_err(|e| AppError::validation("labels", e))?,
    };
    let (node, outcome, details) = match join_token {
        Some(join_token) => {
            let (node, outcome, token_id) = registry.join(join_token, new).await.map_err(refused)?;
            (node, outcome, Some(format!("join token {token_id}")))
        }
        None => {
            let (node, outcome) = registry.register(token, new).await?;
            (node, outcome, None)
        }
    };
    if outcome == Registered::Created {
        let actor = format!("node:{}", node.id);
        state
            .audit()?
            .record_named(
                &actor,
                AuditAction::NodeRegistered,
                Some((node.id.as_str(), Some(node.name.as_str()))),
                source,
                details,
            )
            .await;
    }
    Ok(match outcome {
        Registered::Created => HttpResponse::Created().json(RegistrationReply { node }),
        Registered::AlreadyRegistered => HttpResponse::Ok().json(RegistrationReply { node }),
    })
}

#[utoipa::path(
    post,
    path = "/api/internal/nodes/{id}/heartbeat",
    operation_id = "node_heartbeat",
    tag = "node-facing",
    params(PathId),
    request_body = Heartbeat,
    responses((status = 200, body = HeartbeatReply)),
)]
pub async fn heartbeat(
    node: AuthenticatedNode,
    PathId(id): PathId,
    state: web::Data<AppState>,
    Json(body): Json<Heartbeat>,
) -> AppResult<HttpResponse> {
    let registry = state.registry()?;
    let path_id = NodeId::parse(&id).map_err(|e| AppError::validation("id", e))?;
    if path_id != node.0 {
        return Err(AppError::Forbidden(format!(
            "node {} may not send heartbeats for node {path_id}",
            node.0
        )));
    }
    crate::api::one_line("version", &body.version, 64)?;
    let known = body.running_jobs.clone();
    let reply = registry.heartbeat(&node.0, body).await?;
    state.jobs()?.note_known_jobs(&node.0, known);
    Ok(HttpResponse::Ok().json(reply))
}

/// `POST /api/internal/jobs` (on a secondary, from its primary): take a job.
#[utoipa::path(
    post,
    path = "/api/internal/jobs",
    operation_id = "node_accept_job",
    tag = "node-facing",
    request_body = JobAssignment,
    responses((status = 202, description = "Taken", body = JobAccepted)),
)]
pub async fn accept_job(
    _primaries: FromPrimaries,
    state: web::Data<AppState>,
    Json(assignment): Json<JobAssignment>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Accepted().json(accept(&state, assignment)?))
}

fn accept(state: &AppState, assignment: JobAssignment) -> AppResult<JobAccepted> {
    let job_id = assignment.job_id.clone();
    match state.runner.accept(assignment) {
        Ok(()) => Ok(JobAccepted { accepted: job_id }),
        Err(Refusal::Full { running, max }) => {
            Err(AppError::Conflict(format!("this node is full ({running}/{max} jobs)")))
        }
        Err(Refusal::Draining) => Err(AppError::Unavailable("this node is shutting down".into())),
        Err(Refusal::Stale) => Err(AppError::Conflict("a later attempt of this job runs here".into())),
    }
}

fn cancel(state: &AppState, job_id: &str) -> AppResult<()> {
    if state.runner.cancel(job_id) {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("job {job_id} is not running here")))
    }
}

/// What this node answers to a call its primary made over its outbound socket: the same
/// as the HTTP endpoints above answer, status and body.
pub fn answer(state: &AppState, call: NodeCall) -> NodeAnswer {
    let result = match call {
        NodeCall::Probe => Ok((200, serde_json::to_value(state.node_stats()).unwrap_or_default())),
        NodeCall::Dispatch { assignment } => {
            accept(state, assignment).map(|a| (202, serde_json::to_value(a).unwrap_or_default()))
        }
        NodeCall::Cancel { job_id } => crate::nodes::check_uuid(&job_id)
            .map_err(|e| AppError::validation("job_id", e))
            .and_then(|()| cancel(state, &job_id))
            .map(|()| (202, serde_json::Value::Null)),
    };
    match result {
        Ok((status, body)) => NodeAnswer { status, body },
        Err(e) => NodeAnswer {
            status: actix_web::ResponseError::status_code(&e).as_u16(),
            body: serde_json::to_value(crate::api::error::ErrorBody::of(&e)).unwrap_or_default(),
        },
    }
}

/// `POST /api/internal/jobs/:id/cancel` (on a secondary, from its primary).
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{id}/cancel",
    operation_id = "node_cancel_job",
    tag = "node-facing",
    params(PathId),
    responses((status = 202, description = "The job is being stopped")),
)]
pub async fn cancel_job(
    _primaries: FromPrimaries,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    cancel(&state, &id)?;
    Ok(HttpResponse::Accepted().finish())
}

/// `POST /api/internal/jobs/:id/logs?attempt=&seq=&stream=` (on the primary): one chunk of
/// output, the body being its bytes. Stored once by (job, seq).
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{id}/logs",
    operation_id = "node_job_output",
    tag = "node-facing",
    params(PathId, ChunkParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk's bytes (at most 1 MiB)"),
    responses((status = 200, body = ChunkStored)),
)]
pub async fn job_logs(
    node: AuthenticatedNode,
    state: web::Data<AppState>,
    PathId(id): PathId,
    params: web::Query<ChunkParams>,
    Body(body): Body,
) -> AppResult<HttpResponse> {
    let stored = state.jobs()?.record_chunk(&node.0, &id, &params, body).await?;
    Ok(HttpResponse::Ok().json(ChunkStored { stored }))
}

/// `POST /api/internal/jobs/:id/status` (on the primary): a node's report on a job.
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{id}/status",
    operation_id = "node_job_report",
    tag = "node-facing",
    params(PathId),
    request_body = JobReport,
    responses((status = 200, body = ReportApplied)),
)]
pub async fn job_status(
    node: AuthenticatedNode,
    state: web::Data<AppState>,
    PathId(id): PathId,
    Json(report): Json<JobReport>,
) -> AppResult<HttpResponse> {
    let applied = state.jobs()?.record_report(&node.0, &id, report).await?;
    Ok(HttpResponse::Ok().json(ReportApplied { applied }))
}
