//! The job API: submit, list, inspect, cancel, read and follow output.
//!
//! Following a job ([`follow`], `GET /api/jobs/:id/logs/ws`): the upgrade takes a place
//! under the caps (`api::followers`) and subscribes to the job's live chunks
//! (`jobs::live::LogHub`) *before* it replays what is stored after `after_seq`, a page of
//! about `PAGE_BYTES` (512 KiB) at a time. Then it forwards live chunks: one at or below the
//! last `seq` sent is skipped, one beyond the next expected fills the gap from storage
//! first, so there is no gap and no duplicate. Every `WS_STATUS_POLL` (500 ms) it reads the
//! job's status; at a final state it sends what is stored, then `end`, and closes. A
//! follower that falls behind the live channel gets `resync` and is closed (1013); one that
//! stops reading is dropped by its `Outbox` (`api::ws`).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::api::PathId;
use crate::api::error::Json;
use crate::api::source;
use crate::api::state::AppState;
use crate::api::user_auth::check_origin;
use crate::api::ws::{self, Gone, Keepalive, Outbox, Step};
use crate::api::{Page, page_limit};
use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::error::{AppError, AppResult};
use crate::jobs::model::{LogChunk, MAX_COMMAND_BYTES, check_env};
use crate::jobs::repo::JobFilter;
use crate::jobs::{Job, JobService, JobState, NewJob, Placement};
use crate::nodes::{Labels, NodeId};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct SubmitJob {
    command: String,
    name: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<BTreeMap<String, String>>", optional))]
    env: BTreeMap<String, String>,
    working_dir: Option<String>,
    #[cfg_attr(test, ts(type = "number", optional))]
    timeout_sec: Option<u64>,
    node_id: Option<String>,
    labels: Option<Vec<String>>,
}

fn validate(body: SubmitJob) -> AppResult<NewJob> {
    let placement = match (body.node_id, body.labels) {
        (Some(_), Some(labels)) if !labels.is_empty() => {
            return Err(AppError::BadRequest("give node_id or labels, not both".into()));
        }
        (Some(id), _) => Placement::Node(NodeId::parse(&id).map_err(|e| AppError::validation("node_id", e))?),
        (None, labels) => Placement::Labels(
            Labels::parse(&labels.unwrap_or_default()).map_err(|e| AppError::validation("labels", e))?,
        ),
    };
    what_to_run(NewJob {
        name: body.name,
        command: body.command,
        env: body.env,
        working_dir: body.working_dir,
        timeout_sec: body.timeout_sec,
        placement,
    })
}

/// Checks what a job (or each job of a run) runs; the name trimmed, empty for none.
pub(super) fn what_to_run(mut job: NewJob) -> AppResult<NewJob> {
    if job.command.trim().is_empty() {
        return Err(AppError::validation("command", "must not be empty"));
    }
    if job.command.len() > MAX_COMMAND_BYTES {
        return Err(AppError::PayloadTooLarge(format!("command: must be at most {MAX_COMMAND_BYTES} bytes")));
    }
    if job.command.contains('\0') {
        return Err(AppError::validation("command", "must not contain NUL bytes"));
    }
    check_env(&job.env)?;
    if let Some(dir) = &job.working_dir
        && (!dir.starts_with('/') || dir.len() > 4096 || dir.chars().any(char::is_control))
    {
        return Err(AppError::validation("working_dir", "must be an absolute path on the node"));
    }
    job.name = job.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if let Some(name) = &job.name {
        crate::api::one_line("name", name, 200)?;
    }
    Ok(job)
}

#[utoipa::path(
    post,
    path = "/api/jobs",
    operation_id = "submit_job",
    tag = "jobs",
    request_body = SubmitJob,
    responses((status = 201, description = "Queued", body = Job)),
)]
pub async fn submit(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    Json(body): Json<SubmitJob>,
) -> AppResult<HttpResponse> {
    let new = validate(body)?;
    let actor = principal.actor();
    let job = state.jobs()?.submit(new, &actor).await?;
    state
        .audit()?
        .record_named(
            &actor,
            AuditAction::JobSubmitted,
            Some((&job.id, job.name.as_deref())),
            source(&req),
            Some(job.command.chars().take(200).collect()),
        )
        .await;
    Ok(HttpResponse::Created().json(job))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<JobState>)]
    status: Option<String>,
    /// Jobs given to this node (its ID).
    node: Option<String>,
    /// Jobs asking for this label.
    label: Option<String>,
    /// Text in the name or command.
    q: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/jobs", operation_id = "list_jobs", tag = "jobs", params(ListQuery), responses((status = 200, body = crate::api::Page<Job>)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(|s| JobState::parse(s).map_err(|e| AppError::validation("status", e)))
        .transpose()?;
    let filter = JobFilter {
        status,
        node: q.node,
        label: q.label.map(|l| l.to_lowercase()),
        text: q.q.filter(|t| !t.trim().is_empty()),
        before: q.cursor,
        limit: limit + 1,
    };
    let items = state.jobs()?.list(filter).await?;
    Ok(HttpResponse::Ok().json(Page::from_overfetch(items, limit, |j| j.id.clone())))
}

#[utoipa::path(get, path = "/api/jobs/{id}", operation_id = "get_job", tag = "jobs", params(PathId), responses((status = 200, body = Job)))]
pub async fn get(state: web::Data<AppState>, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.jobs()?.get(&id).await?))
}

#[utoipa::path(
    post,
    path = "/api/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(PathId),
    responses((status = 202, description = "Cancelled (queued), or asked of its node (dispatched, running)", body = Job)),
)]
pub async fn cancel(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let (job, on_node) = state.jobs()?.cancel(&id).await?;
    state.audit()?.record(&principal.actor(), AuditAction::JobCancelled, Some(&id), source(&req), None).await;
    state.router()?.deliver_cancels(on_node.map(|node| (id.clone(), node))).await;
    Ok(HttpResponse::Accepted().json(job))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Chunks after this `seq` (default: from the first).
    after_seq: Option<u64>,
    /// 1 to 1000 chunks (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/jobs/{id}/logs", operation_id = "job_logs", tag = "jobs", params(PathId, LogsQuery), responses((status = 200, body = LogPage)))]
pub async fn logs(
    state: web::Data<AppState>,
    PathId(id): PathId,
    query: web::Query<LogsQuery>,
) -> AppResult<HttpResponse> {
    let jobs = state.jobs()?;
    let job = jobs.get(&id).await?;
    let limit = page_limit(query.limit)?;
    let items = jobs.chunks(&job.id, query.after_seq, limit).await?;
    let complete = job.status.is_final() && i64::try_from(items.len()).unwrap_or(i64::MAX) < limit;
    let next_after_seq = items.last().map(|c| c.seq);
    Ok(HttpResponse::Ok().json(LogPage { items, next_after_seq, complete, status: job.status }))
}

/// `GET /api/jobs/:id/logs`: a page of stored output.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LogPage {
    pub items: Vec<LogChunk>,
    /// The `after_seq` of the next page (none when this one is empty).
    #[cfg_attr(test, ts(type = "number | null"))]
    pub next_after_seq: Option<u64>,
    /// Nothing more will come: the job is over and this page holds its last chunk.
    pub complete: bool,
    pub status: JobState,
}

/// What `GET /api/jobs/:id/logs/ws` sends, one JSON text frame each.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogMessage<'a> {
    /// A chunk of output, in `seq` order from 0, no gaps.
    Chunk {
        #[cfg_attr(test, ts(type = "number"))]
        seq: u64,
        #[cfg_attr(test, ts(type = r#""stdout" | "stderr""#))]
        stream: &'a str,
        text: &'a str,
        at: Timestamp,
    },
    /// The job is over; the server closes next.
    End { status: JobState, exit_code: Option<i32> },
    /// This client missed output: reconnect with the last `seq` it has (`ws::RESYNC`).
    Resync,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RawQuery {
    /// One stream only (default: both, interleaved as they came).
    #[param(value_type = Option<crate::protocol::LogStream>)]
    stream: Option<String>,
}

/// The exact bytes of a job's output (one stream or both interleaved), streamed.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/logs/raw",
    operation_id = "job_raw_logs",
    tag = "jobs",
    params(PathId, RawQuery),
    responses((status = 200, description = "The output's exact bytes", content_type = "application/octet-stream", body = Vec<u8>)),
)]
pub async fn raw_logs(
    state: web::Data<AppState>,
    PathId(id): PathId,
    query: web::Query<RawQuery>,
) -> AppResult<HttpResponse> {
    let jobs = state.jobs()?.clone();
    let job = jobs.get(&id).await?;
    let only = match query.stream.as_deref() {
        None => None,
        Some(s @ ("stdout" | "stderr")) => Some(if s == "stdout" { "stdout" } else { "stderr" }),
        Some(_) => return Err(AppError::validation("stream", "must be stdout or stderr")),
    };
    let pages = futures_util::stream::unfold(Some(None::<u64>), move |cursor| {
        let jobs = jobs.clone();
        let id = job.id.clone();
        async move {
            let after = cursor?;
            match jobs.chunk_page(&id, after, PAGE_BYTES).await {
                Ok(chunks) if chunks.is_empty() => None,
                Ok(chunks) => {
                    let next = chunks.last().map(|c| c.seq);
                    let parts: Vec<Vec<u8>> = chunks
                        .into_iter()
                        .filter(|c| only.is_none_or(|s| s == c.stream))
                        .map(|c| c.data)
                        .collect();
                    let bytes = parts.concat();
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(bytes)), Some(next)))
                }
                Err(e) => Some((Err(actix_web::Error::from(e)), None)),
            }
        }
    });
    Ok(HttpResponse::Ok().content_type("application/octet-stream").streaming(pages))
}

const WS_STATUS_POLL: Duration = Duration::from_millis(500);
/// Stored output is replayed (and downloaded raw) a page of about this many bytes at a time.
const PAGE_BYTES: u64 = 512 * 1024;

/// `GET /api/jobs/:id/logs/ws?after_seq=`: follows a job's output. It subscribes first,
/// then replays what is stored after `after_seq`, then sends live chunks — never a gap,
/// never a duplicate — and ends with the job's final status. A follower too slow to keep
/// up, or one that stops reading, is told `{"type":"resync"}` and closed; it reconnects
/// with its last `seq`. How many may follow at once is capped (`api::followers`); what
/// waits to be sent to one follower is bounded (`api::ws`).
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/logs/ws",
    operation_id = "follow_job",
    tag = "jobs",
    params(PathId, LogsQuery),
    responses((status = 101, description = "A WebSocket: one `LogMessage` JSON text frame per message", body = LogMessage)),
)]
pub async fn follow(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    PathId(id): PathId,
    query: web::Query<LogsQuery>,
) -> AppResult<HttpResponse> {
    check_origin(&req, state.auth()?.config())?;
    let jobs = state.jobs()?.clone();
    let job = jobs.get(&id).await?;
    let place = state.followers.admit(&job.id, source(&req))?;
    let live = jobs.logs.subscribe(&job.id);
    let (response, outbox, stream) = ws::upgrade(&req, body, place)?;
    let closed = state.events.closed();
    actix_web::rt::spawn(follow_job(jobs, job.id, query.after_seq, outbox, stream, live, closed));
    Ok(response)
}

fn chunk_message(chunk: &LogChunk) -> String {
    let message = LogMessage::Chunk { seq: chunk.seq, stream: chunk.stream, text: &chunk.text, at: chunk.at };
    serde_json::to_string(&message).unwrap_or_default()
}

async fn follow_job(
    jobs: std::sync::Arc<JobService>,
    id: String,
    after: Option<u64>,
    mut outbox: Outbox,
    mut incoming: actix_ws::MessageStream,
    mut live: tokio::sync::broadcast::Receiver<std::sync::Arc<LogChunk>>,
    closed: tokio_util::sync::WaitForCancellationFutureOwned,
) {
    // `sent`: the last sequence number the client has.
    let mut sent = after;
    let mut poll = tokio::time::interval(WS_STATUS_POLL);
    let mut keepalive = Keepalive::new();
    tokio::pin!(closed);
    // Catch up from storage first (the subscription already holds anything newer).
    if send_stored(&jobs, &id, &mut sent, &mut outbox).await.is_err() {
        return;
    }
    let reason = loop {
        tokio::select! {
            () = &mut closed => break Some(CloseReason::from(CloseCode::Away)),
            () = keepalive.due() => match keepalive.ping(&mut outbox).await {
                Step::Continue => {}
                Step::Close(reason) => break reason,
                Step::Gone => return,
            },
            _ = poll.tick() => {
                let Ok(job) = jobs.get(&id).await else { break Some(CloseReason::from(CloseCode::Away)) };
                if job.status.is_final() {
                    if send_stored(&jobs, &id, &mut sent, &mut outbox).await.is_err() {
                        return;
                    }
                    let end = LogMessage::End { status: job.status, exit_code: job.exit_code };
                    if outbox.text(serde_json::to_string(&end).unwrap_or_default()).await.is_err() {
                        return;
                    }
                    break Some(CloseReason::from(CloseCode::Normal));
                }
            }
            msg = incoming.recv() => match keepalive.heard(msg, &mut outbox).await {
                Step::Continue => {}
                Step::Close(reason) => break reason,
                Step::Gone => return,
            },
            chunk = live.recv() => match chunk {
                Ok(chunk) => {
                    let next = sent.map_or(0, |s| s + 1);
                    if chunk.seq < next {
                        continue; // already sent from storage
                    }
                    if chunk.seq > next {
                        // Something arrived out of order: fill the gap from storage.
                        if send_stored(&jobs, &id, &mut sent, &mut outbox).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if outbox.text(chunk_message(&chunk)).await.is_err() {
                        return;
                    }
                    sent = Some(chunk.seq);
                }
                Err(RecvError::Lagged(_)) => {
                    if outbox.text(serde_json::to_string(&LogMessage::Resync).unwrap_or_default()).await.is_err() {
                        return;
                    }
                    break Some(CloseReason::from((CloseCode::Again, "too slow; reconnect with after_seq")));
                }
                Err(RecvError::Closed) => break Some(CloseReason::from(CloseCode::Away)),
            },
        }
    };
    outbox.close(reason).await;
}

/// Sends every stored chunk after `sent`, in order, holding one page at a time.
async fn send_stored(
    jobs: &JobService,
    id: &str,
    sent: &mut Option<u64>,
    outbox: &mut Outbox,
) -> Result<(), Gone> {
    loop {
        let chunks = jobs.chunk_page(id, *sent, PAGE_BYTES).await.map_err(|_| Gone)?;
        if chunks.is_empty() {
            return Ok(());
        }
        for chunk in chunks {
            let message = chunk_message(&chunk);
            let seq = chunk.seq;
            drop(chunk);
            outbox.text(message).await?;
            *sent = Some(seq);
        }
    }
}
