//! Logging: JSON lines in production, readable lines in development; `RUST_LOG` overrides
//! the level.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(json: bool, development: bool) {
    let default =
        if development { "debug,actix_server=info,h2=info,hyper=info,reqwest=info" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
