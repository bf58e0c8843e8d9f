//! Node authentication for `/api/internal/*` (SPEC §3): the `X-Node-ID` and
//! `X-Node-API-Key` headers, checked against the registry on a primary and against the
//! node's own key and its primary's ID on a secondary. Failures are logged with their
//! source and limited per source address; credentials that are valid are never refused.
//!
//! The primaries call nodes as one: `X-Node-ID` is the ID nodes know the primaries by
//! (`PRIMARY_NODE_ID`, the cluster's first primary's), with the called node's own key. A
//! primary takes that too (the leader routes jobs to other primaries and probes them), and
//! [`FromPrimaries`] is what the routes that only the primaries may call (a job handed
//! over, a cancel) require.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, web};

use crate::api::state::{AppState, Role};
use crate::error::AppError;
use crate::nodes::NodeId;
use crate::nodes::cache::unknown_node_key_check;
use crate::protocol::{NODE_ID_HEADER, NODE_KEY_HEADER};

/// Counts failed authentications per source address in fixed windows.
#[derive(Debug)]
pub struct AuthLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    max_failures: u32,
    window: Duration,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter::new(20, Duration::from_secs(60))
    }
}

impl AuthLimiter {
    pub fn new(max_failures: u32, window: Duration) -> AuthLimiter {
        AuthLimiter { failures: Mutex::default(), max_failures, window }
    }

    /// Refuses a source that failed too often in the current window.
    pub fn check(&self, source: Option<IpAddr>) -> Result<(), AppError> {
        let Some(ip) = source else { return Ok(()) };
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match failures.get(&ip) {
            Some((start, count)) if start.elapsed() < self.window && *count >= self.max_failures => {
                Err(AppError::RateLimited(
                    "too many failed authentications from this address; wait a minute".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Counts an attempt (successful or not) and refuses it past the limit.
    pub fn attempt(&self, source: Option<IpAddr>) -> Result<(), AppError> {
        self.check(source).map_err(|_| {
            AppError::RateLimited("too many login attempts from this address; wait a minute".into())
        })?;
        self.record_failure(source);
        Ok(())
    }

    pub fn record_failure(&self, source: Option<IpAddr>) {
        let Some(ip) = source else { return };
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() > 10_000 {
            failures.retain(|_, (start, _)| start.elapsed() < self.window);
        }
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// A request from an authenticated node: its ID.
#[derive(Debug, Clone)]
pub struct AuthenticatedNode(pub NodeId);

impl FromRequest for AuthenticatedNode {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(authenticate(req))
    }
}

/// A call from the primaries: authenticated as the ID nodes know them by.
#[derive(Debug, Clone)]
pub struct FromPrimaries;

impl FromRequest for FromPrimaries {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let from_primaries = authenticate(req).and_then(|node| {
            let state = req.app_data::<web::Data<AppState>>();
            if state.and_then(|s| s.primary_node_id()).as_ref() == Some(&node.0) {
                Ok(FromPrimaries)
            } else {
                Err(AppError::Forbidden("only the primaries may call this".into()))
            }
        });
        std::future::ready(from_primaries)
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthenticatedNode, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no application state")))?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let id = header(NODE_ID_HEADER);
    // Valid credentials always pass: a source over its limit (a primary that tried a node's
    // other key during a rotation) is never locked out with a key that works.
    let reason = match verify(state, id, header(NODE_KEY_HEADER)) {
        Ok(id) => return Ok(AuthenticatedNode(id)),
        Err(reason) => reason,
    };
    let source = crate::api::source(req);
    state.auth_limiter.check(source)?;
    state.auth_limiter.record_failure(source);
    tracing::warn!(source = ?source, path = req.path(), node_id = id.unwrap_or("-"), %reason, "node authentication failed");
    Err(AppError::Unauthorized(reason))
}

fn verify(state: &AppState, id: Option<&str>, key: Option<&str>) -> Result<NodeId, String> {
    let (Some(id), Some(key)) = (id, key) else {
        return Err(format!("node credentials required: send {NODE_ID_HEADER} and {NODE_KEY_HEADER}"));
    };
    let Ok(id) = NodeId::parse(id) else {
        unknown_node_key_check(key);
        return Err(format!("{NODE_ID_HEADER} must be a UUID"));
    };
    let valid = match &state.role {
        Role::Primary(primary) => {
            // The primaries' ID is public (every secondary's .env has it): checking it first
            // tells nothing.
            primary.registry.authenticate(&id, key)
                || (&id == primary.registry.primary_id() && state.identity.api_key.matches(key))
        }
        Role::Secondary(link) => {
            // Only our primary, presenting our own key, may call a secondary.
            let key_ok = state.identity.api_key.matches(key);
            key_ok && link.primary_id().as_ref() == Some(&id)
        }
    };
    if valid { Ok(id) } else { Err("invalid node credentials".into()) }
}
