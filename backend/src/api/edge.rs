//! What every request passes before routing, whatever the role and the auth mode. It is
//! logged with a request ID (`log_request`), and:
//!
//! - its `Host` must be a name this server answers to (`config::AllowedHosts`). A web page
//!   whose domain re-resolves to this machine (DNS rebinding) reaches the API as its own
//!   origin, so no origin check can catch it; its `Host` still carries the page's name.
//! - its path and query carry no NUL or other control character (`%00`…`%1F`, `%7F`):
//!   nothing Fleetdeck stores or looks up may hold one, and PostgreSQL refuses NUL in text.
//!
//! - its connection must not be one too many from its source address (`Connections`): one
//!   address holding hundreds of connections open is exhausting the server, not using it.
//!   An outbound node's socket is the exception: the connection of an upgrade whose node
//!   credentials are valid is let through, and once the socket is open it no longer counts
//!   (many nodes behind one NAT address, or one proxy, each hold one).
//!
//! A request may omit `Host` (HTTP/1.0 health checks): browsers always send it.
//!
//! Every answer is timed into `fleetdeck_http_request_duration_seconds` by its route
//! template (`/api/nodes/{id}`), never its raw path, so the series stay few.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;

use tracing::Instrument as _;

use crate::api::state::AppState;
use crate::error::AppError;
use crate::protocol::NODE_ID_HEADER;

/// Middleware: refuses what no route may see (answered here, so still logged with its
/// request ID).
pub async fn check_request<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => check_host(&req, &state.config.allowed_hosts),
        None => Ok(()),
    };
    let verdict = verdict.and_then(|()| match req.conn_data::<ConnectionSlot>() {
        Some(slot) if slot.over_limit && !is_node_socket(&req) => Err(AppError::RateLimited(format!(
            "more than {MAX_CONNECTIONS_PER_SOURCE} connections open from this address; close some"
        ))),
        _ => Ok(()),
    });
    match verdict.and_then(|()| check_controls(req.path(), req.query_string())) {
        Ok(()) => next.call(req).await.map(ServiceResponse::map_into_left_body),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// Whether `req` opens an outbound node's socket with valid credentials (checked here from
/// the node cache, like every node request: the handler checks them again).
fn is_node_socket(req: &ServiceRequest) -> bool {
    let Some(registry) = req.app_data::<web::Data<AppState>>().and_then(|s| s.registry().ok()) else {
        return false;
    };
    let path = req.path();
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(key)) = (header(NODE_ID_HEADER), header(crate::protocol::NODE_KEY_HEADER)) else {
        return false;
    };
    path.strip_prefix("/api/internal/nodes/").and_then(|rest| rest.strip_suffix("/connect")) == Some(id)
        && crate::nodes::NodeId::parse(id).is_ok_and(|id| registry.authenticate(&id, key))
}

/// Connections one source address may hold open at once. Browsers open at most six per
/// host, a secondary a few; a reverse proxy in front multiplexes its users over a pool.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 256;

/// The connections open per source address, counted from accept to close
/// (`HttpServer::on_connect` gives each connection a `ConnectionSlot`).
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Connections {
    /// Counts a new connection; past the limit, its requests are refused (429).
    pub fn open(&self, ip: IpAddr) -> ConnectionSlot {
        let mut open = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        *count += 1;
        ConnectionSlot {
            ip,
            over_limit: *count > MAX_CONNECTIONS_PER_SOURCE,
            released: AtomicBool::new(false),
            connections: self.clone(),
        }
    }

    /// The `on_connect` hook: counts TCP connections by their peer's address.
    pub fn on_connect(&self, connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        let peer =
            connection.downcast_ref::<actix_web::rt::net::TcpStream>().and_then(|s| s.peer_addr().ok());
        if let Some(peer) = peer {
            data.insert(self.open(peer.ip()));
        }
    }
}

/// One open connection; uncounted when dropped (with the connection).
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    over_limit: bool,
    /// No longer counted (an outbound node's socket).
    released: AtomicBool,
    connections: Connections,
}

impl ConnectionSlot {
    /// Stops counting this connection against its address (an outbound node's open socket).
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            let mut open = self.connections.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::api::followers::release(&mut open, &self.ip);
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Logs and times each request, with a request ID also returned as `X-Request-Id` on every answer;
/// successes at debug level so the heartbeat hot path stays quiet. The middleware inside
/// (this module's checks, `user_auth`) answer their refusals as responses rather than
/// errors, so that they too get an ID and a log line.
///
/// A request's own lines (refused, failed) name its ID, method and path. What else is logged
/// while a user's request runs carries them too, through a `request` span; a node's calls
/// (`X-Node-ID`) go without it: their lines name the node and job already, and the span cost
/// each heartbeat about a sixth of its time (docs/BENCHMARKS.md).
pub fn log_request<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: actix_web::dev::Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let start = Instant::now();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let span = if req.headers().contains_key(NODE_ID_HEADER) {
        tracing::Span::none()
    } else {
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %uri.path())
    };
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        let status = res.status().as_u16();
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        let path = uri.path();
        if let Some(metrics) = metrics {
            let (route, code) = (res.request().match_pattern(), res.status());
            let labels = [method_label(&method), route.as_deref().unwrap_or("unmatched"), code.as_str()];
            metrics.http_request_duration.with_label_values(&labels).observe(elapsed_ms / 1000.0);
        }
        if status >= 500 {
            tracing::error!(%request_id, %method, path, status, elapsed_ms, "request failed");
        } else if status >= 400 {
            tracing::info!(%request_id, %method, path, status, elapsed_ms, "request refused");
        } else {
            tracing::debug!(%request_id, %method, path, status, elapsed_ms, "request served");
        }
        if let Ok(value) = header::HeaderValue::from_str(&request_id) {
            res.headers_mut().insert(header::HeaderName::from_static("x-request-id"), value);
        }
        Ok(res)
    }
    .instrument(span)
}

/// A method as a metric label: the standard ones by name, any other as `OTHER` (a client
/// must not be able to mint series).
fn method_label(method: &actix_web::http::Method) -> &str {
    use actix_web::http::Method;
    const KNOWN: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    if KNOWN.contains(method) { method.as_str() } else { "OTHER" }
}

fn check_host(req: &ServiceRequest, allowed: &crate::config::AllowedHosts) -> Result<(), AppError> {
    let Some(host) = req.headers().get(header::HOST) else { return Ok(()) };
    let host = host.to_str().unwrap_or_default();
    if allowed.allows(host) {
        Ok(())
    } else {
        Err(AppError::Misdirected(format!(
            "this server does not answer to the host name {host:?}; if it is yours, add it to ALLOWED_HOSTS"
        )))
    }
}

/// Refuses a percent-encoded control character in the path or in a query parameter, naming
/// the parameter.
fn check_controls(path: &str, query: &str) -> Result<(), AppError> {
    if has_encoded_control(path) {
        return Err(AppError::validation("path", "must not contain control characters"));
    }
    if !has_encoded_control(query) {
        return Ok(());
    }
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name.chars().any(char::is_control) {
            return Err(AppError::validation("query", "must not contain control characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(AppError::validation(&name, "must not contain control characters"));
        }
    }
    Ok(())
}

/// Whether `s` holds `%XX` decoding to a byte below 0x20 or to 0x7F. (A request line cannot
/// carry a raw control character: the HTTP parser refuses it.)
fn has_encoded_control(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!((w[1], w[2].to_ascii_uppercase()), (b'0' | b'1', b'0'..=b'9' | b'A'..=b'F') | (b'7', b'F'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_control_characters_are_found_and_named() {
        assert!(has_encoded_control("a%00b"));
        assert!(has_encoded_control("%1f"));
        assert!(has_encoded_control("%7F"));
        assert!(!has_encoded_control("%20%2F%41%7E"));
        assert!(check_controls("/api/nodes", "q=web&status=online").is_ok());
        let err = check_controls("/api/nodes", "status=online&q=we%00b").unwrap_err();
        assert_eq!(err.to_string(), "q: must not contain control characters");
        let err = check_controls("/api/nodes/%00", "").unwrap_err();
        assert_eq!(err.to_string(), "path: must not contain control characters");
    }
}
