//! The HTTP API: one route table (below) and thin handlers that extract, authorize, call
//! the domain and map to a DTO.

mod alerts;
mod auth;
pub mod edge;
pub mod error;
mod events;
pub mod followers;
#[cfg(test)]
mod generated_types;
mod history;
mod internal;
mod jobs;
mod metrics;
pub mod node_auth;
mod node_stats;
mod nodes;
pub mod state;
mod system;
pub mod user_auth;
pub mod web_ui;
pub(crate) mod ws;

use actix_web::web;

use crate::api::state::{AppState, Role};

/// Every endpoint, on one screen. Secondaries serve the health, info and node-facing parts;
/// a primary serves everything (and takes jobs as any node does: the leader may route them
/// to another primary).
pub fn routes(cfg: &mut web::ServiceConfig, state: &AppState) {
    let primary = matches!(state.role, Role::Primary(_));
    cfg.app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error));

    // The node-facing API comes first: it carries the fleet's steady traffic (heartbeats,
    // job output), and routes are tried in order, each `{id}` pattern by a regex.
    let mut internal = web::scope("/internal")
        .default_service(web::to(error::not_found))
        .service(resource("/system/stats").get(internal::system_stats))
        .service(resource("/jobs").post(internal::accept_job))
        .service(resource("/jobs/{id}/cancel").post(internal::cancel_job));
    if primary {
        internal = internal
            .service(resource("/nodes/register").post(internal::register))
            .service(resource("/nodes/{id}/heartbeat").post(internal::heartbeat))
            .service(resource("/jobs/{id}/logs").with_body_limit(MAX_CHUNK_BODY).post(internal::job_logs))
            .service(resource("/jobs/{id}/status").post(internal::job_status));
    }
    let mut api = web::scope("/api")
        .service(internal)
        .service(resource("/health").get(system::health))
        .service(resource("/ready").get(system::ready))
        .service(resource("/node/info").get(system::node_info));
    if primary {
        api = api
            .service(resource("/nodes").get(nodes::list).post(nodes::create))
            .service(resource("/nodes/{id}").get(nodes::get).put(nodes::update).delete(nodes::delete))
            .service(resource("/nodes/{id}/check").post(nodes::check))
            .service(resource("/nodes/{id}/rotate-key").post(nodes::rotate_key))
            .service(resource("/nodes/{id}/history").get(nodes::history))
            .service(resource("/nodes/{id}/stats").get(node_stats::history))
            .service(resource("/nodes/{id}/alerts").get(alerts::node_alerts))
            .service(resource("/history").get(history::fleet))
            .service(resource("/events/ws").get(events::ws))
            .service(resource("/system/stats").get(system::fleet_stats))
            .service(resource("/cluster").get(system::cluster))
            .service(resource("/me").get(auth::me))
            .service(resource("/tokens").get(auth::list_tokens).post(auth::create_token))
            .service(resource("/tokens/{id}").delete(auth::revoke_token))
            .service(resource("/audit").get(auth::audit))
            .service(resource("/alerts/channels").get(alerts::list_channels).post(alerts::create_channel))
            .service(
                resource("/alerts/channels/{id}")
                    .get(alerts::get_channel)
                    .put(alerts::update_channel)
                    .delete(alerts::delete_channel),
            )
            .service(resource("/alerts/channels/{id}/test").post(alerts::test_channel))
            .service(resource("/alerts/rules").get(alerts::list_rules).post(alerts::create_rule))
            .service(
                resource("/alerts/rules/{id}")
                    .get(alerts::get_rule)
                    .put(alerts::update_rule)
                    .delete(alerts::delete_rule),
            )
            .service(resource("/alerts/deliveries").get(alerts::deliveries))
            .service(resource("/jobs").get(jobs::list).post(jobs::submit))
            .service(resource("/jobs/{id}").get(jobs::get))
            .service(resource("/jobs/{id}/cancel").post(jobs::cancel))
            .service(resource("/jobs/{id}/logs").get(jobs::logs))
            .service(resource("/jobs/{id}/logs/raw").get(jobs::raw_logs))
            .service(resource("/jobs/{id}/logs/ws").get(jobs::follow));
    }
    let api = api.wrap(actix_web::middleware::from_fn(user_auth::require_user));
    cfg.service(api.default_service(web::to(error::not_found)));
    if primary {
        cfg.service(resource("/metrics").get(metrics::scrape))
            .service(resource("/auth/github/login").get(auth::login))
            .service(resource("/auth/github/callback").get(auth::callback))
            .service(resource("/auth/logout").post(auth::logout));
        web_ui::routes(cfg);
    }
}

/// A resource that answers a wrong method with a JSON 405.
fn resource(path: &str) -> ResourceBuilder {
    ResourceBuilder(web::resource(path).default_service(web::to(error::method_not_allowed)))
}

/// `web::Resource` with one-word method routes, for a compact route table.
struct ResourceBuilder(actix_web::Resource);

/// A job output chunk's body: the runner ships at most 512 KiB at a time.
const MAX_CHUNK_BODY: usize = 1024 * 1024;

impl ResourceBuilder {
    fn with_body_limit(self, bytes: usize) -> Self {
        ResourceBuilder(self.0.app_data(error::BodyLimit(bytes)))
    }

    fn get<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        ResourceBuilder(self.0.route(web::get().to(handler)))
    }

    fn post<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        ResourceBuilder(self.0.route(web::post().to(handler)))
    }

    fn put<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        ResourceBuilder(self.0.route(web::put().to(handler)))
    }

    fn delete<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        ResourceBuilder(self.0.route(web::delete().to(handler)))
    }
}

impl actix_web::dev::HttpServiceFactory for ResourceBuilder {
    fn register(self, config: &mut actix_web::dev::AppService) {
        self.0.register(config);
    }
}

/// A whole list (no paging).
#[derive(Debug, serde::Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct List<T> {
    pub items: Vec<T>,
}

/// A page of a list, with the cursor of the next page if there is one.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// From up to `limit + 1` fetched items: an extra one only says a next page exists,
    /// which starts after the last item shown (`cursor_of` it).
    pub fn from_overfetch(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(&cursor_of)
        });
        Page { items, next_cursor: next_cursor.flatten() }
    }
}

/// `limit` within bounds (default 100, at most 1000).
pub fn page_limit(limit: Option<i64>) -> Result<i64, crate::error::AppError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(crate::error::AppError::validation("limit", "must be from 1 to 1000")),
    }
}

/// A short one-line text (a name, a version): trimmed by the caller, at most `max_chars`,
/// no control characters.
pub fn one_line(field: &str, value: &str, max_chars: usize) -> Result<(), crate::error::AppError> {
    if value.chars().count() > max_chars {
        return Err(crate::error::AppError::validation(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(crate::error::AppError::validation(field, "must not contain control characters"));
    }
    Ok(())
}

/// The `{id}` of a path: a UUID in its one canonical form, or a 400 naming `id`.
#[derive(Debug)]
pub struct PathId(pub String);

impl actix_web::FromRequest for PathId {
    type Error = crate::error::AppError;
    type Future = std::future::Ready<Result<PathId, crate::error::AppError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let raw = req.match_info().get("id").unwrap_or_default();
        std::future::ready(
            crate::nodes::check_uuid(raw)
                .map(|()| PathId(raw.to_owned()))
                .map_err(|e| crate::error::AppError::validation("id", e)),
        )
    }
}
