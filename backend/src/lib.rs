//! Fleetdeck: a self-hosted control plane for a fleet of servers.
//!
//! One binary plays either role. The **primary** (`app` with `Role::Primary`) owns the
//! database (`db`), serves the API (`api`), keeps the node registry (`nodes`) and
//! health-checks every node; a **secondary** runs the `agent`, which registers and sends
//! heartbeats. `config` parses the environment, `data_dir` keeps `DATA_DIR` private,
//! `identity` keeps who a node is, `secrets`
//! handles keys, `stats` samples the machine, `events` carries live changes to the UI, `protocol` holds the messages nodes exchange.

pub mod agent;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod error;
pub mod events;
pub mod identity;
pub mod jobs;
pub mod nodes;
pub mod protocol;
pub mod secrets;
pub mod stats;
pub mod telemetry;
pub mod web_ui;

pub use app::App;
pub use config::Config;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
