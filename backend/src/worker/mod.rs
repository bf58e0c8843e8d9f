//! Running the jobs routed to this node, on every node (the primary too): the `runner`
//! starts each command in its own process group, bounded by `NODE_MAX_JOBS`, and ends it on
//! timeout or cancel; the `shipper` sends its output and status to the primary in order,
//! through the `spool` on disk, so nothing is lost while the primary is away or this node
//! restarts.
//!
//! This module knows nothing of the database or the HTTP server.

pub mod runner;
pub mod shipper;
pub mod spool;
