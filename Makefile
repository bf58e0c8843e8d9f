# The two commands a new user needs:
#   make run   build and start a primary on SQLite in ./data (http://127.0.0.1:8080)
#   make test  every check CI runs (formatting, lints, tests on SQLite and PostgreSQL)

.PHONY: run test build bench fmt lint

run:
	scripts/ensure-deps.sh
	scripts/build-ui.sh
	cargo run --release --locked -p fleetdeck -- serve

test:
	scripts/test.sh

build:
	scripts/ensure-deps.sh
	scripts/build-ui.sh
	cargo build --release --locked -p fleetdeck

bench:
	cargo bench --locked -p fleetdeck --bench heartbeat_ingest
	cargo bench --locked -p fleetdeck --bench health_sweep
	cargo bench --locked -p fleetdeck --bench jobs
	cargo bench --locked -p fleetdeck --bench cluster
	cargo bench --locked -p fleetdeck --bench alerts
	cargo bench --locked -p fleetdeck --bench outbound

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
