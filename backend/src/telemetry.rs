//! Logging: readable lines for a person at a terminal, JSON lines for a log collector;
//! `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// Whether to log JSON lines: as `LOG_JSON` says, else when standard output is not a
/// terminal (a service manager, a container, a file), except in development.
pub fn log_json(setting: Option<bool>, development: bool, terminal: bool) -> bool {
    setting.unwrap_or(!development && !terminal)
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(json: bool, development: bool) {
    let default =
        if development { "debug,actix_server=info,h2=info,hyper=info,reqwest=info" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}

#[cfg(test)]
mod tests {
    use super::log_json;

    #[test]
    fn json_for_a_collector_readable_lines_at_a_terminal_unless_log_json_says() {
        assert!(!log_json(None, false, true), "a person at a terminal");
        assert!(log_json(None, false, false), "a service manager or a file");
        assert!(!log_json(None, true, false), "development");
        assert!(log_json(Some(true), false, true));
        assert!(!log_json(Some(false), false, false));
    }
}
