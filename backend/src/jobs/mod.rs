//! Routed jobs (SPEC §8), the primary's side: what a job is, its queries, the rules of its
//! life (`service`), the router that places and dispatches it, fleet-wide runs (one job
//! per node, `runs`), and live output for followers. The node's side — running jobs and shipping their output — is in
//! `worker::runner` and `worker::shipper`.

pub mod live;
pub mod model;
pub mod repo;
pub mod router;
pub mod runs;
pub mod service;

pub use model::{Job, JobState, NewJob, Placement};
pub use router::Router;
pub use runs::RunService;
pub use service::{JobService, JobSettings};
