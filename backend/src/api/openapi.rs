//! The API's OpenAPI 3.1 document, `GET /api/openapi.json`: built by `utoipa` from each
//! handler's `#[utoipa::path]` and each body's `ToSchema`, so it changes with the code. What
//! every operation shares is added here once (`Conventions`): the error body as the
//! `default` answer, and its security by where it lives (public, node-facing, or a user's).
//!
//! A test holds the document to the route table (`api::routes`): every route has its
//! operation and every operation its route.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};

use super::{
    alerts, auth, error, history, internal, jobs, joining, metrics, node_stats, nodes, runs, system, tunnel,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Fleetdeck",
        description = "A self-hosted control plane for a fleet of servers. The operator API (nodes, jobs, alerts, tokens, audit) is served by every primary; the node-facing API (`/api/internal`) is what secondaries and primaries call each other with. docs/API.md explains each part.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only"),
    ),
    paths(
        system::health,
        system::ready,
        system::node_info,
        document,
        nodes::list,
        nodes::create,
        joining::create,
        joining::list,
        joining::revoke,
        joining::install_script,
        joining::download,
        nodes::get,
        nodes::update,
        nodes::delete,
        nodes::check,
        nodes::rotate_key,
        nodes::history,
        node_stats::history,
        alerts::node_alerts,
        history::fleet,
        super::events::ws,
        system::fleet_stats,
        system::cluster,
        auth::me,
        auth::list_tokens,
        auth::create_token,
        auth::revoke_token,
        auth::audit,
        alerts::list_channels,
        alerts::create_channel,
        alerts::get_channel,
        alerts::update_channel,
        alerts::delete_channel,
        alerts::test_channel,
        alerts::list_rules,
        alerts::create_rule,
        alerts::get_rule,
        alerts::update_rule,
        alerts::delete_rule,
        alerts::deliveries,
        jobs::list,
        jobs::submit,
        jobs::get,
        jobs::cancel,
        jobs::logs,
        jobs::raw_logs,
        jobs::follow,
        runs::list,
        runs::submit,
        runs::get,
        runs::cancel,
        runs::output,
        metrics::scrape,
        auth::login,
        auth::callback,
        auth::logout,
        internal::system_stats,
        tunnel::connect,
        tunnel::relay,
        internal::accept_job,
        internal::cancel_job,
        internal::register,
        internal::heartbeat,
        internal::job_logs,
        internal::job_status,
    ),
    components(schemas(error::ErrorBody, crate::audit::AuditAction, crate::protocol::LogStream)),
    modifiers(&Conventions),
    tags(
        (name = "system", description = "Health, readiness, identity, the cluster, this document"),
        (name = "nodes", description = "The fleet: add, edit, remove, check, rotate keys, history, stats"),
        (name = "jobs", description = "Commands routed to nodes, their output and their end"),
        (name = "alerts", description = "Channels, rules and deliveries"),
        (name = "access", description = "Who is calling, API tokens, the audit log, GitHub login"),
        (name = "node-facing", description = "What nodes call each other with (`X-Node-ID` / `X-Node-API-Key`)"),
    ),
)]
struct ApiDoc;

/// Security scheme names.
const SESSION: &str = "session";
const BEARER: &str = "api_token";
const ACCESS: &str = "cloudflare_access";
const NODE_ID: &str = "node_id";
const NODE_KEY: &str = "node_key";
const REGISTRATION: &str = "registration_token";
const JOIN: &str = "join_token";

/// What every operation shares.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let header = |name: &str, description: &str| {
            let mut value = ApiKeyValue::new(name);
            value.description = Some(description.to_owned());
            SecurityScheme::ApiKey(ApiKey::Header(value))
        };
        let mut session = ApiKeyValue::new(crate::auth::SESSION_COOKIE);
        session.description =
            Some("The web UI's session after a GitHub login; a state-changing request must also come from the primary's origin.".into());
        components.add_security_scheme(SESSION, SecurityScheme::ApiKey(ApiKey::Cookie(session)));
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API token (`fdt_…`, Settings → API tokens); for `/metrics`, METRICS_TOKEN too.",
            ))
            .build();
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        components.add_security_scheme(
            ACCESS,
            header(
                crate::auth::ASSERTION_HEADER,
                "Cloudflare Access' signed assertion, where CF_ACCESS_TEAM_DOMAIN is set.",
            ),
        );
        components
            .add_security_scheme(NODE_ID, header(crate::protocol::NODE_ID_HEADER, "The calling node's ID."));
        components.add_security_scheme(
            NODE_KEY,
            header(crate::protocol::NODE_KEY_HEADER, "The calling node's key."),
        );
        components.add_security_scheme(
            REGISTRATION,
            header(crate::protocol::REGISTRATION_TOKEN_HEADER, "The primary's REGISTRATION_TOKEN."),
        );
        components.add_security_scheme(
            JOIN,
            header(
                crate::protocol::JOIN_TOKEN_HEADER,
                "A join token (`fdj_…`, POST /api/nodes/join-tokens), spent by the registration.",
            ),
        );
        components.responses.insert(
            "Error".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("Refused or failed: the code, a message for people and, for invalid input, the field.")
                    .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                    .build(),
            ),
        );
        let user = vec![
            SecurityRequirement::new(SESSION, Vec::<String>::new()),
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(ACCESS, Vec::<String>::new()),
            // With user access off, nothing is needed.
            SecurityRequirement::default(),
        ];
        let node =
            vec![SecurityRequirement::new(NODE_ID, Vec::<String>::new()).add(NODE_KEY, Vec::<String>::new())];
        for (path, item) in &mut api.paths.paths {
            let security = if path == "/api/internal/nodes/register" {
                vec![
                    SecurityRequirement::new(REGISTRATION, Vec::<String>::new()),
                    SecurityRequirement::new(JOIN, Vec::<String>::new()),
                ]
            } else if path.starts_with("/api/internal/") {
                node.clone()
            } else if super::user_auth::is_public(path) || path.starts_with("/auth/github/") {
                Vec::new()
            } else {
                user.clone()
            };
            for operation in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten()
            {
                // A handler's doc comment may open with its route ("`GET /api/x`: …"), which
                // the document shows beside it already.
                if let Some(summary) = &mut operation.summary
                    && let Some((_, rest)) = summary.strip_prefix('`').and_then(|s| s.split_once('`'))
                {
                    *summary = rest.trim_start_matches(':').trim().to_owned();
                }
                for (status, response) in &mut operation.responses.responses {
                    if let RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = status_text(status).to_owned();
                    }
                }
                operation
                    .responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| Ref::from_response_name("Error").into());
                if !security.is_empty() {
                    operation.security = Some(security.clone());
                }
            }
        }
    }
}

/// What a success answer without its own description says.
fn status_text(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "Done",
    }
}

/// The document, built once.
pub fn json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut api = ApiDoc::openapi();
        api.info.version = crate::VERSION.to_owned();
        api.to_pretty_json().unwrap_or_default()
    })
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(json())
}

#[cfg(test)]
thread_local! {
    /// What `api::routes` registered on this thread: (method, path with `{…}` parameters).
    static ROUTES: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes a route of the table (tests only).
#[cfg(test)]
pub fn record_route(path: &str, methods: &[&str]) {
    ROUTES.with(|routes| {
        routes.borrow_mut().extend(methods.iter().map(|m| ((*m).to_owned(), path.to_owned())));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn every_route_in_the_table_has_an_operation_and_every_operation_a_route() {
        ROUTES.with(|r| r.borrow_mut().clear());
        let _app = actix_web::test::init_service(
            actix_web::App::new().configure(|cfg| crate::api::routes(cfg, true)),
        )
        .await;
        let mut table: Vec<(String, String)> = ROUTES.with(|r| r.borrow().clone());
        table.sort();
        table.dedup();
        let document: serde_json::Value = serde_json::from_str(json()).unwrap();
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.push((method.clone(), path.clone()));
            }
        }
        operations.sort();
        let mut ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values().map(|op| op["operationId"].as_str().unwrap()))
            .collect();
        ids.sort_unstable();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation IDs must be unique");
        let undocumented: Vec<_> = table.iter().filter(|r| !operations.contains(r)).collect();
        let unrouted: Vec<_> = operations.iter().filter(|o| !table.contains(o)).collect();
        assert!(undocumented.is_empty(), "routes without an operation in the document: {undocumented:?}");
        assert!(unrouted.is_empty(), "operations without a route: {unrouted:?}");
        assert!(table.len() > 50, "the table was not recorded: {table:?}");
    }

    #[test]
    fn every_operation_has_a_success_answer_the_error_body_and_its_security() {
        let document: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["version"], crate::VERSION);
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|code| code.starts_with(['2', '3']) || code == "101"),
                    "{method} {path}"
                );
                assert_eq!(responses["default"]["$ref"], "#/components/responses/Error", "{method} {path}");
                let public = [
                    "/api/health",
                    "/api/ready",
                    "/api/openapi.json",
                    "/api/download/fleetdeck",
                    "/install.sh",
                    "/auth/github/login",
                    "/auth/github/callback",
                ];
                assert_eq!(
                    operation["security"].is_null(),
                    public.contains(&path.as_str()),
                    "{method} {path}"
                );
                assert!(
                    operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{method} {path} has no tag"
                );
                let summary = operation["summary"].as_str().unwrap_or_default();
                assert!(!summary.starts_with('`'), "{method} {path}: {summary}");
            }
        }
    }
}
