#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Fleetdeck's integration tests: real primaries (in-process, on loopback ports, each with
//! its own data directory and database) and real secondaries (child processes of the
//! `fleetdeck` binary). With `TEST_DATABASE_URL=postgres://…` every test runs on a
//! throw-away PostgreSQL database instead of a temp-file SQLite one.

mod auth;
mod bad_input;
mod data_dir;
mod followers;
mod fuzz;
mod health;
mod helpers;
mod hosts;
mod jobs;
mod keys;
mod migrations;
mod nodes;
mod registration;
mod restart;
mod slow_clients;
mod stand_ins;
