//! Fleetdeck: a self-hosted control plane for a fleet of servers. One binary plays either
//! role; `app` builds and runs a process of either.
//!
//! Imports point one way: `main → app → api → domains → db`, with the small shared pieces at
//! the bottom.
//!
//! - `app`: builds the state, starts the server and the background loops, stops them.
//! - `ctl`: the command-line client (`fleetdeck ctl`), a client of the HTTP API like any
//!   other; it shares only the status enums and a header name with the server's code.
//! - `api`: the route table, the handlers, the middleware (`edge`, `user_auth`), node
//!   authentication, WebSockets, `api::state` (what every handler can reach) and
//!   `api::web_ui` (the embedded UI).
//! - Domains, each owning its model, rules, queries and loops: `nodes` (registry, node cache,
//!   health checker, the client the primary calls nodes with), `jobs` (submit, route, follow),
//!   `auth` (users, sessions, API tokens), `audit`.
//! - Every node runs the `worker` (job runner, output shipper and its spool); a secondary
//!   runs the `agent` too (registration and heartbeats: its link to the primary).
//! - `cluster`: several primaries on one PostgreSQL: the leader's lease and fencing, the
//!   shared row, and LISTEN/NOTIFY between primaries.
//! - `db`: the database's address, the pool, migrations and SQLite's writer.
//! - At the bottom: `config` (the environment, parsed once), `data_dir` (files kept in
//!   `DATA_DIR`, private), `identity` (who this node is), `secrets` (keys, hashing, sealing),
//!   `stats` (this machine's numbers), `events` (live changes for the UI), `protocol` (what
//!   nodes send each other), `metrics` (what Prometheus scrapes), `clock`, `error`,
//!   `telemetry`.

pub mod agent;
pub mod alerts;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod data_dir;
pub mod db;
pub mod error;
pub mod events;
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod nodes;
pub mod protocol;
pub mod secrets;
pub mod stats;
pub mod telemetry;
pub mod urls;
pub mod worker;

pub use app::App;
pub use config::Config;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
