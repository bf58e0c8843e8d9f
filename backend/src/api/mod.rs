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
pub(crate) mod internal;
mod jobs;
mod joining;
mod metrics;
pub mod node_auth;
mod node_stats;
mod nodes;
pub mod openapi;
mod runs;
pub mod state;
mod system;
mod tunnel;
pub mod user_auth;
pub mod web_ui;
pub(crate) mod ws;

use actix_web::web;

/// Every endpoint, on one screen. Secondaries serve the health, info and node-facing parts;
/// a primary serves everything (and takes jobs as any node does: the leader may route them
/// to another primary). Each has its operation in the OpenAPI document (`openapi`), which
/// a test holds to this table.
pub fn routes(cfg: &mut web::ServiceConfig, primary: bool) {
    let node_api = |path| resource("/api/internal", path);
    let api = |path| resource("/api", path);
    let root = |path| resource("", path);
    cfg.app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error));

    // The node-facing API comes first: it carries the fleet's steady traffic (heartbeats,
    // job output), and routes are tried in order, each `{id}` pattern by a regex.
    let mut internal_scope = web::scope("/internal")
        .default_service(web::to(error::not_found))
        .service(node_api("/system/stats").get(internal::system_stats))
        .service(node_api("/jobs").post(internal::accept_job))
        .service(node_api("/jobs/{id}/cancel").post(internal::cancel_job));
    if primary {
        internal_scope = internal_scope
            .service(node_api("/nodes/register").post(internal::register))
            .service(node_api("/nodes/{id}/heartbeat").post(internal::heartbeat))
            .service(node_api("/nodes/{id}/connect").get(tunnel::connect))
            .service(node_api("/nodes/{id}/relay").post(tunnel::relay))
            .service(node_api("/jobs/{id}/logs").with_body_limit(MAX_CHUNK_BODY).post(internal::job_logs))
            .service(node_api("/jobs/{id}/status").post(internal::job_status));
    }
    let mut api_scope = web::scope("/api")
        .service(internal_scope)
        .service(api("/health").get(system::health))
        .service(api("/ready").get(system::ready))
        .service(api("/node/info").get(system::node_info));
    if primary {
        api_scope = api_scope
            .service(api("/openapi.json").get(openapi::document))
            .service(api("/nodes").get(nodes::list).post(nodes::create))
            .service(api("/nodes/join-tokens").get(joining::list).post(joining::create))
            .service(api("/nodes/join-tokens/{id}").delete(joining::revoke))
            .service(api("/download/fleetdeck").get(joining::download))
            .service(api("/nodes/{id}").get(nodes::get).put(nodes::update).delete(nodes::delete))
            .service(api("/nodes/{id}/check").post(nodes::check))
            .service(api("/nodes/{id}/rotate-key").post(nodes::rotate_key))
            .service(api("/nodes/{id}/history").get(nodes::history))
            .service(api("/nodes/{id}/stats").get(node_stats::history))
            .service(api("/nodes/{id}/alerts").get(alerts::node_alerts))
            .service(api("/history").get(history::fleet))
            .service(api("/events/ws").get(events::ws))
            .service(api("/system/stats").get(system::fleet_stats))
            .service(api("/cluster").get(system::cluster))
            .service(api("/me").get(auth::me))
            .service(api("/tokens").get(auth::list_tokens).post(auth::create_token))
            .service(api("/tokens/{id}").delete(auth::revoke_token))
            .service(api("/audit").get(auth::audit))
            .service(api("/alerts/channels").get(alerts::list_channels).post(alerts::create_channel))
            .service(
                api("/alerts/channels/{id}")
                    .get(alerts::get_channel)
                    .put(alerts::update_channel)
                    .delete(alerts::delete_channel),
            )
            .service(api("/alerts/channels/{id}/test").post(alerts::test_channel))
            .service(api("/alerts/rules").get(alerts::list_rules).post(alerts::create_rule))
            .service(
                api("/alerts/rules/{id}")
                    .get(alerts::get_rule)
                    .put(alerts::update_rule)
                    .delete(alerts::delete_rule),
            )
            .service(api("/alerts/deliveries").get(alerts::deliveries))
            .service(api("/jobs").get(jobs::list).post(jobs::submit))
            .service(api("/jobs/{id}").get(jobs::get))
            .service(api("/jobs/{id}/cancel").post(jobs::cancel))
            .service(api("/jobs/{id}/logs").get(jobs::logs))
            .service(api("/jobs/{id}/logs/raw").get(jobs::raw_logs))
            .service(api("/jobs/{id}/logs/ws").get(jobs::follow))
            .service(api("/runs").get(runs::list).post(runs::submit))
            .service(api("/runs/{id}").get(runs::get))
            .service(api("/runs/{id}/cancel").post(runs::cancel))
            .service(api("/runs/{id}/output").get(runs::output));
    }
    let api_scope = api_scope.wrap(actix_web::middleware::from_fn(user_auth::require_user));
    cfg.service(api_scope.default_service(web::to(error::not_found)));
    if primary {
        cfg.service(root("/metrics").get(metrics::scrape))
            .service(root("/install.sh").get(joining::install_script))
            .service(root("/auth/github/login").get(auth::login))
            .service(root("/auth/github/callback").get(auth::callback))
            .service(root("/auth/logout").post(auth::logout));
        web_ui::routes(cfg);
    }
}

/// A resource at `path` in the scope at `scope`, that answers a wrong method with a JSON 405.
fn resource(scope: &'static str, path: &'static str) -> ResourceBuilder {
    ResourceBuilder { resource: web::resource(path), path: format!("{scope}{path}"), methods: Vec::new() }
}

/// `web::Resource` with one-word method routes, for a compact route table; it knows its
/// full path and methods (for the OpenAPI completeness test).
struct ResourceBuilder {
    resource: actix_web::Resource,
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the OpenAPI completeness test"))]
    path: String,
    methods: Vec<&'static str>,
}

/// A job output chunk's body: the runner ships at most 512 KiB at a time.
const MAX_CHUNK_BODY: usize = 1024 * 1024;

impl ResourceBuilder {
    fn with_body_limit(self, bytes: usize) -> Self {
        ResourceBuilder { resource: self.resource.app_data(error::BodyLimit(bytes)), ..self }
    }

    fn route(mut self, method: &'static str, route: actix_web::Route) -> Self {
        self.methods.push(method);
        ResourceBuilder { resource: self.resource.route(route), ..self }
    }

    fn get<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.route("get", web::get().to(handler))
    }

    fn post<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.route("post", web::post().to(handler))
    }

    fn put<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.route("put", web::put().to(handler))
    }

    fn delete<F, Args>(self, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.route("delete", web::delete().to(handler))
    }
}

impl actix_web::dev::HttpServiceFactory for ResourceBuilder {
    fn register(self, config: &mut actix_web::dev::AppService) {
        #[cfg(test)]
        openapi::record_route(&self.path, &self.methods);
        let allow = self.methods.iter().map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>().join(", ");
        let wrong_method =
            move |req: actix_web::HttpRequest| std::future::ready(error::method_not_allowed(&req, &allow));
        self.resource.default_service(web::to(wrong_method)).register(config);
    }
}

/// The address a request came from (for the audit log and per-source limits).
pub fn source(req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// A whole list (no paging).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct List<T> {
    pub items: Vec<T>,
}

/// A page of a list, with the cursor of the next page if there is one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
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
#[derive(Debug, utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct PathId(
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")] pub String,
);

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
