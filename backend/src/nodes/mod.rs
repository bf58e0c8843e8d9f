//! Nodes: the fleet's members, how they are added and authenticated, what their heartbeats
//! and health checks do to their state, and the rules of the health checker.

pub mod cache;
pub mod checker;
pub mod client;
pub mod health;
pub mod heartbeats;
mod model;
pub mod registry;
pub mod repo;
pub mod tunnels;

pub use model::{Labels, Node, NodeId, NodeName, NodeStatus, NodeUrl, StatusChange, check_uuid};
pub use registry::Registry;
