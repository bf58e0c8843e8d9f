//! How errors become HTTP answers: status codes, the JSON body, and the JSON and query
//! extractors whose failures name the offending field.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt as _;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } | AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Unavailable(_) | AppError::NotLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, AppError::RateLimited(_)) {
            response.insert_header((header::RETRY_AFTER, "60"));
        }
        response.content_type(ContentType::json()).json(ErrorBody::of(self))
    }
}

/// Every error answer's body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// The body answering `e` (over HTTP, or over an outbound node's socket), logged: an
    /// internal error's details go to the log only.
    pub fn of(e: &AppError) -> ErrorBody {
        let message = match e {
            AppError::Internal(inner) => {
                tracing::error!(error = ?inner, "internal error");
                "something went wrong on the server; the details are in its log".to_owned()
            }
            other => {
                let status = other.status_code().as_u16();
                tracing::info!(status, code = other.code(), message = %other, "request refused");
                other.to_string()
            }
        };
        let field = match e {
            AppError::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        ErrorBody { error: ErrorDetail { code: e.code(), message, field } }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorDetail {
    /// Machine-readable: `validation_failed`, `not_found`, …
    pub code: &'static str,
    /// For people; a validation error's starts with its field (`labels[1]: …`).
    pub message: String,
    /// The field a validation error is about, as data (`labels[1]`, `env.PATH`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub field: Option<String>,
}

/// The largest body a route accepts, when it differs from `MAX_BODY_BYTES` (route data).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Before a body's first byte is due, and the slowest pace it may then arrive at: a client
/// trickling a body a byte at a time is cut off instead of holding its connection open.
const BODY_GRACE: Duration = Duration::from_secs(10);
const MIN_BODY_BYTES_PER_SEC: usize = 8 * 1024;

/// A request body, read whole: bounded in size (`BodyLimit`) and in time (`BODY_GRACE` plus
/// its length at `MIN_BODY_BYTES_PER_SEC`), every failure a JSON error.
#[derive(Debug)]
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(MAX_BODY_BYTES, |l| l.0);
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let mut stream = actix_web::dev::Decompress::from_headers(payload.take(), req.headers());
        let too_large =
            move || AppError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"));
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let expected = declared.unwrap_or(limit);
            let allowed = BODY_GRACE + Duration::from_secs((expected / MIN_BODY_BYTES_PER_SEC) as u64);
            let read = async {
                let mut body = web::BytesMut::with_capacity(expected.min(limit));
                while let Some(part) = stream.next().await {
                    let part = part
                        .map_err(|e| AppError::BadRequest(format!("could not read the request body: {e}")))?;
                    if body.len() + part.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&part);
                }
                Ok(body.freeze())
            };
            let bytes = tokio::time::timeout(allowed, read).await.map_err(|_| {
                AppError::Timeout(format!("the request body did not arrive within {}s", allowed.as_secs()))
            })??;
            Ok(Body(bytes))
        })
    }
}

/// A JSON body: the content type is checked, the body read as `Body`, and a decoding error
/// names the field it is about (`labels[2]: invalid type…`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let is_json = is_json(req);
        let body = Body::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(AppError::UnsupportedMediaType("expected Content-Type: application/json".into()));
            }
            decode(&body.await?.0).map(Json)
        })
    }
}

impl<T: DeserializeOwned> Json<T> {
    /// Reads and decodes a JSON body from a handler that must look at the request first
    /// (a route that checks a header before it reads anything).
    pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<T, AppError> {
        if !is_json(req) {
            return Err(AppError::UnsupportedMediaType("expected Content-Type: application/json".into()));
        }
        let body = Body::from_request(req, &mut payload.into_inner()).await?;
        decode(&body.0)
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
}

/// Decodes a JSON body, trailing characters refused. Only a body that fails is decoded a
/// second time, tracking the path, to name the field at fault: tracking costs every body
/// extra work, and heartbeats are the hot path.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if let Some(field) = nul_field(bytes) {
        return Err(AppError::validation(&field, "must not contain NUL characters"));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        let tracked = &mut serde_json::Deserializer::from_slice(bytes);
        let (path, inner) = match serde_path_to_error::deserialize::<_, T>(tracked) {
            Err(e) => (e.path().to_string(), e.into_inner()),
            Ok(_) => (".".to_owned(), error),
        };
        if inner.is_syntax() || inner.is_eof() {
            AppError::BadRequest(format!("the body is not valid JSON: {inner}"))
        } else if path == "." {
            AppError::BadRequest(format!("invalid body: {inner}"))
        } else {
            AppError::validation(&path, inner.to_string())
        }
    })
}

/// Where a JSON body holds a NUL character (which JSON carries only escaped, `\u0000`):
/// the path of the first string or key with one (`env.A`, `labels[2]`). No stored text may
/// hold a NUL (PostgreSQL refuses it), so it is refused at the edge for every field at once.
fn nul_field(bytes: &[u8]) -> Option<String> {
    memchr::memmem::find(bytes, b"\\u0000")?;
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        let field = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
        match value {
            serde_json::Value::String(s) => s.contains('\0').then(|| path.to_owned()),
            serde_json::Value::Array(items) => {
                items.iter().enumerate().find_map(|(i, v)| walk(v, &format!("{path}[{i}]")))
            }
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') { Some(field(&k.replace('\0', "\\u0000"))) } else { walk(v, &field(k)) }
            }),
            _ => None,
        }
    }
    // Not valid JSON: decoding says so (an escaped backslash before `u0000` is no NUL).
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&value, "").map(|path| if path.is_empty() { ".".to_owned() } else { path })
}

/// Query-string errors as JSON.
#[expect(clippy::needless_pass_by_value, reason = "the signature actix expects")]
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    AppError::BadRequest(format!("invalid query string: {err}")).into()
}

/// Path errors as JSON.
#[expect(clippy::needless_pass_by_value, reason = "the signature actix expects")]
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    AppError::BadRequest(format!("invalid path: {err}")).into()
}

/// Unknown `/api` paths.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound(format!("no such endpoint: {} {}", req.method(), req.path())))
}

/// Known path, wrong method: says which methods it takes (`Allow`, as RFC 9110 asks).
pub fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let message = format!("{} is not allowed on {} (it takes {allow})", req.method(), req.path());
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .json(ErrorBody { error: ErrorDetail { code: "method_not_allowed", message, field: None } })
}
