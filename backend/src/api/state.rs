//! What every request handler can reach: the shared state `app` builds once per process
//! and passes to the server, with the parts only a primary has. Handlers import this,
//! never the builder.

use std::sync::Arc;

use crate::agent::PrimaryLink;
use crate::alerts::Alerts;
use crate::api::followers::FollowerCaps;
use crate::api::node_auth::AuthLimiter;
use crate::audit::AuditLog;
use crate::auth::AuthService;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::events::EventHub;
use crate::identity::NodeIdentity;
use crate::jobs::{JobService, Router, RunService};
use crate::metrics::Metrics;
use crate::nodes::Registry;
use crate::nodes::checker::HealthChecker;
use crate::stats::StatsCollector;
use crate::worker::runner::Runner;

/// What every request handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub identity: NodeIdentity,
    pub stats: StatsCollector,
    pub events: EventHub,
    pub auth_limiter: AuthLimiter,
    /// Counts every login attempt and callback per source.
    pub login_limiter: AuthLimiter,
    /// Caps the followers of job logs per job and per source.
    pub followers: Arc<FollowerCaps>,
    /// Runs the jobs routed to this node (every node has one, the primary too).
    pub runner: Arc<Runner>,
    /// What `/metrics` serves (the domains record into the same one).
    pub metrics: Arc<Metrics>,
    pub role: Role,
}

/// The role-specific part of the state.
#[derive(Debug)]
pub enum Role {
    Primary(PrimaryParts),
    Secondary(Arc<PrimaryLink>),
}

#[derive(Debug)]
pub struct PrimaryParts {
    /// For readiness checks; the domains own their queries.
    pub db: Db,
    pub registry: Arc<Registry>,
    pub checker: Arc<HealthChecker>,
    pub auth: Arc<AuthService>,
    pub audit: AuditLog,
    pub jobs: Arc<JobService>,
    pub runs: Arc<RunService>,
    pub router: Arc<Router>,
    pub cluster: Arc<Cluster>,
    pub alerts: Arc<Alerts>,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Primary(_) => "primary",
            Role::Secondary(_) => "secondary",
        }
    }
}

impl AppState {
    fn primary(&self) -> AppResult<&PrimaryParts> {
        match &self.role {
            Role::Primary(p) => Ok(p),
            Role::Secondary(_) => Err(AppError::NotFound("this is a secondary node; use the primary".into())),
        }
    }

    pub fn alerts(&self) -> AppResult<&Arc<Alerts>> {
        self.primary().map(|p| &p.alerts)
    }

    pub fn registry(&self) -> AppResult<&Arc<Registry>> {
        self.primary().map(|p| &p.registry)
    }

    pub fn checker(&self) -> AppResult<&Arc<HealthChecker>> {
        self.primary().map(|p| &p.checker)
    }

    /// This node's latest stats, with the jobs it is responsible for.
    pub fn node_stats(&self) -> crate::stats::SystemStats {
        let mut stats = self.stats.latest();
        stats.running_jobs = self.runner.known_jobs();
        stats
    }

    pub fn auth(&self) -> AppResult<&Arc<AuthService>> {
        self.primary().map(|p| &p.auth)
    }

    pub fn audit(&self) -> AppResult<&AuditLog> {
        self.primary().map(|p| &p.audit)
    }

    pub fn jobs(&self) -> AppResult<&Arc<JobService>> {
        self.primary().map(|p| &p.jobs)
    }

    pub fn runs(&self) -> AppResult<&Arc<RunService>> {
        self.primary().map(|p| &p.runs)
    }

    pub fn router(&self) -> AppResult<&Arc<Router>> {
        self.primary().map(|p| &p.router)
    }

    pub fn cluster(&self) -> AppResult<&Arc<Cluster>> {
        self.primary().map(|p| &p.cluster)
    }

    /// The ID nodes know the primaries by: the only caller a node's job routes take
    /// (`None` on a secondary that has not learned it yet).
    pub fn primary_node_id(&self) -> Option<crate::nodes::NodeId> {
        match &self.role {
            Role::Primary(p) => Some(p.registry.primary_id().clone()),
            Role::Secondary(link) => link.primary_id(),
        }
    }
}
