//! How errors become HTTP answers: status codes, the JSON body, and the JSON and query
//! extractors whose failures name the offending field.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
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
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "something went wrong on the server; the details are in its log".to_owned()
            }
            other => {
                tracing::info!(status = status.as_u16(), code = other.code(), message = %other, "request refused");
                other.to_string()
            }
        };
        let mut response = HttpResponse::build(status);
        if matches!(self, AppError::RateLimited(_)) {
            response.insert_header((header::RETRY_AFTER, "60"));
        }
        response.content_type(ContentType::json()).json(serde_json::json!({
            "error": { "code": self.code(), "message": message }
        }))
    }
}

/// A JSON body: the content type is checked, the size bounded, and a decoding error names
/// the field it is about (`labels[2]: invalid type…`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(AppError::UnsupportedMediaType("expected Content-Type: application/json".into()));
            }
            let bytes = body.await.map_err(|e| match e.as_response_error().status_code() {
                StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(format!(
                    "the request body is larger than {MAX_BODY_BYTES} bytes"
                )),
                _ => AppError::BadRequest(format!("could not read the request body: {e}")),
            })?;
            decode(&bytes).map(Json)
        })
    }
}

/// Decodes a JSON body, trailing characters refused. Only a body that fails is decoded a
/// second time, tracking the path, to name the field at fault: tracking costs every body
/// extra work, and heartbeats are the hot path.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
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

/// Known path, wrong method.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(serde_json::json!({
        "error": { "code": "method_not_allowed", "message": format!("{} is not allowed on {}", req.method(), req.path()) }
    }))
}
