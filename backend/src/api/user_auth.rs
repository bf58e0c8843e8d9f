//! User authentication of the `/api` routes: every request except the public and
//! node-facing ones must show who it is (see `auth::AuthService::authenticate`), and a
//! state-changing request riding on the session cookie must come from our own origin.

use std::future::{Ready, ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};

use crate::api::state::{AppState, Role};
use crate::auth::{ASSERTION_HEADER, Credentials, Principal, SESSION_COOKIE};
use crate::error::AppError;

/// Custom header a non-browser client may send instead of `Origin`.
pub const REQUESTED_WITH_HEADER: &str = "X-Requested-With";

/// Paths open to anyone: health and readiness (for load balancers), the API's description
/// (nothing in it is secret), the install script and the binary it downloads (a machine
/// joining has no user credentials; neither holds a secret: the join token is what admits
/// a node), and the node-facing API, which has its own authentication.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/health" | "/api/ready" | "/api/openapi.json" | "/api/download/fleetdeck" | "/install.sh"
    ) || path.starts_with("/api/internal/")
}

/// The credentials a request carries.
pub fn credentials(req: &HttpRequest) -> Credentials {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Credentials {
        bearer: header(header::AUTHORIZATION.as_str()).and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        }),
        session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()),
        access_assertion: header(ASSERTION_HEADER),
    }
}

/// Middleware: authenticates, checks the origin, and leaves the `Principal` for handlers. A
/// refusal is answered here (a response, not an error, so the request log sees it).
pub async fn require_user<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match authorize(&req).await {
        Ok(Some(principal)) => {
            req.extensions_mut().insert(principal);
            next.call(req).await.map(ServiceResponse::map_into_left_body)
        }
        Ok(None) => next.call(req).await.map(ServiceResponse::map_into_left_body),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// Who the request is from, `None` where no user is needed (public and node-facing paths,
/// a secondary), or why it is refused.
async fn authorize(req: &ServiceRequest) -> Result<Option<Principal>, AppError> {
    if is_public(req.path()) {
        return Ok(None);
    }
    let Some(Role::Primary(primary)) = req.app_data::<web::Data<AppState>>().map(|s| &s.role) else {
        return Ok(None);
    };
    let principal = primary.auth.authenticate(credentials(req.request())).await?;
    if principal.by_cookie() {
        check_same_origin(req.request(), primary.auth.config())?;
    } else if req.headers().contains_key(header::ORIGIN) {
        // No cookie rides on this request, but a browser sent it: a page on another site
        // must not act through it (auth off, or Cloudflare-only).
        check_same_origin(req.request(), primary.auth.config())?;
    }
    Ok(Some(principal))
}

/// A cookie-authenticated request that changes something must come from our origin (or
/// carry a header a cross-site form cannot set).
pub fn check_same_origin(req: &HttpRequest, config: &crate::config::AuthConfig) -> Result<(), AppError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    check_origin(req, config)
}

/// The origin rule of `check_same_origin`, whatever the method (a WebSocket upgrade is a
/// `GET` that must come from our own pages too).
pub fn check_origin(req: &HttpRequest, config: &crate::config::AuthConfig) -> Result<(), AppError> {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let Some(origin) = origin else {
        return if req.headers().contains_key(REQUESTED_WITH_HEADER) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "cross-site request refused: send Origin or {REQUESTED_WITH_HEADER}"
            )))
        };
    };
    let origin = origin.trim_end_matches('/');
    let own = config.base_url.origin().ascii_serialization();
    if origin == own || config.allowed_origins.iter().any(|o| o == origin) || origin == request_origin(req) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("cross-site request from {origin} refused")))
    }
}

/// This server's origin as the browser addressed it: the `Host` it sent (a name this server
/// answers to, see `api::edge`) with the scheme a TLS-terminating proxy reports in
/// `X-Forwarded-Proto`, else plain HTTP (Fleetdeck itself serves no TLS). Scheme, name and
/// port must all match for a request to count as same-origin.
fn request_origin(req: &HttpRequest) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let scheme = match header("x-forwarded-proto").and_then(|v| v.split(',').next()).map(str::trim) {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    match header(header::HOST.as_str()) {
        Some(host) => format!("{scheme}://{}", host.to_ascii_lowercase()),
        None => String::new(),
    }
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = Ready<Result<Principal, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(req.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous)))
    }
}
