//! Builds and runs one Fleetdeck process: the shared state, the HTTP server on its bound
//! listener, and the background tasks of its role, all stopped through one cancellation
//! token.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc;

use crate::agent::{Agent, AgentSettings, PrimaryLink};
use crate::alerts::{AlertSettings, Alerts};
use crate::api::node_auth::AuthLimiter;
use crate::api::state::{AppState, PrimaryParts, Role};
use crate::audit::{AuditAction, AuditLog};
use crate::auth::AuthService;
use crate::clock::{SharedClock, SystemClock};
use crate::cluster::Cluster;
use crate::cluster::bus::{Incoming, Message};
use crate::config::Config;
use crate::db::{DatabaseUrl, Db};
use crate::events::{Event, EventHub};
use crate::identity::NodeIdentity;
use crate::jobs::{JobService, JobSettings, JobState, Router, RunService};
use crate::metrics::Metrics;
use crate::nodes::checker::{CheckerSettings, HealthChecker};
use crate::nodes::registry::NODE_CHANGE;
use crate::nodes::registry::RegistrySettings;
use crate::nodes::{NodeId, NodeUrl, Registry};
use crate::protocol::{Connect, PrimaryUrls};
use crate::secrets::MasterKey;
use crate::stats::{NodeFacts, StatsCollector};
use crate::worker::runner::Runner;
use crate::worker::shipper::Shipper;

/// A running Fleetdeck: its server (none on an outbound secondary not asked to listen) and
/// its background tasks.
pub struct App {
    state: web::Data<AppState>,
    server: Option<Server>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// The HTTP server: where it listens, and how to stop it.
struct Server {
    address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

/// At shutdown, how long undelivered job reports may take to go out (they stay spooled).
const SHIPPER_FLUSH: Duration = Duration::from_secs(3);
/// A request's head must arrive within this (a body's pace is `api::error::Body`'s).
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle keep-alive connection is closed after this.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

impl App {
    /// Starts everything with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        App::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Starts everything; time-dependent rules read `clock` (tests pass a manual one).
    pub async fn build_with_clock(mut config: Config, clock: SharedClock) -> anyhow::Result<App> {
        let listener = if config.listen {
            let listener = TcpListener::bind(config.server_address)
                .with_context(|| format!("binding {}", config.server_address))?;
            config.resolve_bound_port(listener.local_addr()?.port());
            Some(listener)
        } else {
            None
        };
        let config = Arc::new(config);
        let identity = NodeIdentity::load_or_create(&config)?;
        let shutdown = CancellationToken::new();
        let events = EventHub::default();
        let metrics = Arc::new(Metrics::new()?);
        let stats = StatsCollector::new(NodeFacts {
            labels: config.node.labels.clone().unwrap_or_default().as_slice().to_vec(),
            max_jobs: config.node.max_jobs,
            data_dir: config.data_dir.clone(),
        });
        let mut tasks = vec![tokio::spawn(stats.clone().run(shutdown.clone()))];

        // Every node runs jobs; its reports go to the primaries the agent talks to (on the
        // primary: to itself), and fail over with it.
        let primaries = if config.node.is_primary {
            let address = listener.as_ref().context("a primary listens")?.local_addr()?;
            PrimaryUrls::one(
                NodeUrl::parse(&format!("http://{}", loopback_of(address))).map_err(anyhow::Error::msg)?,
            )
        } else {
            PrimaryUrls::new(config.node.primary_urls.clone(), config.node.access_token.clone())
                .context("PRIMARY_NODE_URL is required on a secondary")?
        };
        let shipper = Shipper::new(&config.data_dir, primaries.clone(), identity.clone(), shutdown.clone())?;
        let runner = Runner::new(config.node.max_jobs, config.jobs.kill_grace, shipper.clone());

        let role = if config.node.is_primary {
            let (parts, peers) = start_primary(
                &config,
                &identity,
                clock,
                events.clone(),
                metrics.clone(),
                runner.clone(),
                &shutdown,
            )
            .await?;
            tasks.extend(primary_tasks(&parts, &config, &stats, &shutdown));
            if let Some(peers) = peers {
                let (registry, jobs, cluster) =
                    (parts.registry.clone(), parts.jobs.clone(), parts.cluster.clone());
                tasks.push(tokio::spawn(follow_peers(peers, registry, jobs, cluster, events.clone())));
            }
            Role::Primary(parts)
        } else {
            let link = Arc::new(PrimaryLink::new(
                primaries,
                config.node.primary_id.clone(),
                config.data_dir.clone(),
            )?);
            let agent = Agent::new(
                link.clone(),
                identity.clone(),
                AgentSettings {
                    name: config.node.name.clone(),
                    api_endpoint: config.node.api_endpoint.clone(),
                    labels: config.node.labels.clone(),
                    max_jobs: config.node.max_jobs,
                    heartbeat_interval: config.heartbeat_interval,
                    registration_token: config.registration_token.clone(),
                    join_token: config.node.join_token.clone(),
                    connect: config.node.connect,
                },
                stats.clone(),
                runner.clone(),
            )?;
            tasks.push(tokio::spawn(agent.run(shutdown.clone())));
            Role::Secondary(link)
        };
        warn_about_exposure(&config);
        crate::data_dir::warn_if_exposed(&config.data_dir, &database_files(&config));

        let state = web::Data::new(AppState {
            config: config.clone(),
            identity,
            stats,
            events,
            auth_limiter: AuthLimiter::default(),
            login_limiter: AuthLimiter::new(30, Duration::from_secs(60)),
            followers: Arc::default(),
            runner: runner.clone(),
            metrics,
            role,
        });
        if let (Role::Secondary(link), Connect::Outbound) = (&state.role, config.node.connect) {
            let answering = state.clone();
            let answer = move |call| std::future::ready(crate::api::internal::answer(&answering, call));
            let tunnel =
                crate::agent::tunnel::run(link.clone(), state.identity.clone(), answer, shutdown.clone());
            tasks.push(tokio::spawn(tunnel));
        }
        raise_open_files_limit();
        let server = match listener {
            Some(listener) => Some(serve(&state, listener)?),
            None => {
                tracing::info!(
                    "not listening: this node connects to its primary outbound (set SERVER_ADDRESS to serve its API too)"
                );
                None
            }
        };
        if config.node.is_primary {
            tell_where_to_go(&config);
        }
        if let Err(e) = shipper.restore().await {
            tracing::error!(error = %e, "cannot read the job spool");
        }
        Ok(App { state, server, shutdown, tasks })
    }

    /// Where the server listens (`None`: it does not).
    pub fn address(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.address)
    }

    /// `http://address`.
    pub fn url(&self) -> Option<String> {
        self.address().map(|a| format!("http://{a}"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops gracefully: no new connections, in-flight requests finished, background tasks
    /// (including the last heartbeat flush) joined.
    pub async fn stop(self) {
        // Leader work stops and another primary takes over at once.
        if let Role::Primary(primary) = &self.state.role {
            primary.cluster.leave().await;
        }
        // Running jobs finish (or are cancelled) and their reports go out first.
        self.state.runner.drain(self.state.config.jobs.drain_timeout).await;
        self.state.runner.wait_delivered(SHIPPER_FLUSH).await;
        // Live-event WebSockets would otherwise hold the graceful stop for its whole timeout.
        self.state.events.close();
        if let Some(server) = self.server {
            server.handle.stop(true).await;
            let _ = server.task.await;
        }
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        tracing::info!("fleetdeck stopped");
    }

    /// Runs until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await?;
        tracing::info!("shutting down");
        self.stop().await;
        Ok(())
    }
}

/// Serves the API (and, on a primary, the UI) on `listener`.
fn serve(state: &web::Data<AppState>, listener: TcpListener) -> anyhow::Result<Server> {
    let address = listener.local_addr()?;
    let server_state = state.clone();
    let connections = crate::api::edge::Connections::default();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(server_state.clone())
            .wrap(actix_web::middleware::Compress::default())
            .wrap(actix_web::middleware::from_fn(crate::api::edge::check_request))
            .wrap_fn(crate::api::edge::log_request)
            .configure(|cfg| crate::api::routes(cfg, matches!(server_state.role, Role::Primary(_))))
            .default_service(web::to(crate::api::error::not_found))
    })
    .on_connect(move |connection, data| {
        connections.on_connect(connection, data);
        crate::api::ws::drop_unresponsive_peers(connection, data);
    })
    .client_request_timeout(REQUEST_HEAD_TIMEOUT)
    .keep_alive(KEEP_ALIVE)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(30)
    .workers(worker_count())
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%address, role = state.role.name(), node_id = %state.identity.id, "fleetdeck listening");
    Ok(Server { address, handle, task })
}

/// The primary's parts, and what the other primaries say (PostgreSQL).
async fn start_primary(
    config: &Config,
    identity: &NodeIdentity,
    clock: SharedClock,
    events: EventHub,
    metrics: Arc<Metrics>,
    runner: Arc<Runner>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(PrimaryParts, Option<mpsc::Receiver<Incoming>>)> {
    let db = {
        let url = config.database_url.clone();
        tokio::task::spawn_blocking(move || Db::connect(&url)).await??
    };
    let master_key = MasterKey::load_or_create(config.master_key.as_ref(), &config.data_dir)?;
    let cluster = Arc::new(
        Cluster::join(
            db.clone(),
            &master_key,
            identity.id.as_str(),
            config.node.name.as_str(),
            config.node.api_endpoint.as_str(),
        )
        .await?,
    );
    // Changes made from here on reach this primary's caches even if they land before it
    // listens (the listener replays the change log from this time).
    let since = cluster.db_now().await?;
    let registry = Registry::load(
        db.clone(),
        clock.clone(),
        master_key.clone(),
        events.clone(),
        cluster.clone(),
        metrics,
        RegistrySettings {
            own_id: identity.id.clone(),
            primary_endpoint: config.node.api_endpoint.clone(),
            key_grace: config.key_rotation_grace,
            registration_token: config.registration_token.clone(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("loading nodes: {e}"))?;
    registry
        .ensure_primary(
            config.node.name.clone(),
            &identity.api_key,
            config.node.labels.clone().unwrap_or_default(),
            config.node.max_jobs,
        )
        .await?;
    let registry = Arc::new(registry);
    let checker = Arc::new(HealthChecker::new(
        registry.clone(),
        CheckerSettings {
            tick: config.health_check_interval,
            timeout: config.health_check_timeout,
            concurrency: config.health_check_concurrency,
        },
    )?);
    let auth = Arc::new(AuthService::new(config.auth.clone(), db.clone(), clock.clone())?);
    let audit = AuditLog::new(db.clone(), clock.clone());
    let settings = JobSettings {
        max_timeout_sec: config.jobs.max_timeout.as_secs(),
        lost_after: config.jobs.lost_after,
        retention: config.jobs.retention,
    };
    let jobs =
        Arc::new(JobService::new(db.clone(), clock.clone(), registry.clone(), events.clone(), settings));
    let alerts = Arc::new(Alerts::new(
        db.clone(),
        clock,
        master_key,
        registry.clone(),
        jobs.clone(),
        AlertSettings {
            base_url: config.auth.base_url.clone(),
            block_private: config.alerts.block_private,
            flap_window: config.alerts.flap_window,
        },
    )?);
    let runs = Arc::new(RunService::new(db.clone(), jobs.clone()));
    let router = Arc::new(Router::new(jobs.clone(), runs.clone(), runner, events.clone())?);
    let peers = cluster.listen(since, shutdown)?;
    let bus = cluster.bus();
    events.forward_to(move |event| {
        if !matches!(event, Event::Resync) {
            bus.send(Message::Event { event: event.clone() });
        }
    });
    // A lone primary leads from its first moment; with others, whoever is first.
    cluster.leadership().round().await;
    Ok((PrimaryParts { db, registry, checker, auth, audit, jobs, runs, router, cluster, alerts }, peers))
}

fn primary_tasks(
    parts: &PrimaryParts,
    config: &Config,
    stats: &StatsCollector,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let cluster = parts.cluster.clone();
    let lease_shutdown = shutdown.clone();
    let mut tasks = parts.alerts.run(shutdown);
    tasks.extend([
        tokio::spawn(async move { cluster.leadership().run(lease_shutdown).await }),
        tokio::spawn(record_leadership(
            parts.cluster.clone(),
            parts.registry.clone(),
            parts.audit.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(parts.checker.clone().run(shutdown.clone())),
        tokio::spawn(parts.registry.clone().run_flush(stats.clone(), shutdown.clone())),
        tokio::spawn(parts.registry.clone().run_retention(config.stats_retention, shutdown.clone())),
        tokio::spawn(parts.jobs.clone().run_retention(shutdown.clone())),
        tokio::spawn(parts.jobs.clone().run_counts(shutdown.clone())),
        tokio::spawn(parts.router.clone().run(shutdown.clone())),
    ]);
    tasks
}

/// Applies what the other primaries say: a node changed (reload it), a live event (pass it
/// on, and route if a job was queued or finished), a job's output (for followers here), a
/// resignation (try for the lease now). After a lost connection, the change log is
/// replayed from where it was and live clients are told to refetch.
async fn follow_peers(
    mut peers: mpsc::Receiver<Incoming>,
    registry: Arc<Registry>,
    jobs: Arc<JobService>,
    cluster: Arc<Cluster>,
    events: EventHub,
) {
    let reload = |subject: &str| {
        let registry = registry.clone();
        let id = NodeId::from_db_str(subject);
        async move {
            if let Err(e) = registry.reload(&id).await {
                tracing::warn!(error = %e, node_id = %id, "could not reload a node another primary changed");
            }
        }
    };
    while let Some(incoming) = peers.recv().await {
        match incoming {
            Incoming::Message(Message::Changed { kind, subject }) if kind == NODE_CHANGE => {
                reload(&subject).await;
            }
            Incoming::Message(Message::Changed { .. }) => {}
            Incoming::Message(Message::Event { event }) => {
                if let Event::JobUpdated { status, .. } = &event {
                    jobs.note_changed();
                    if *status == JobState::Queued || status.is_final() {
                        jobs.wake.notify_one();
                    }
                }
                events.publish_here(event);
            }
            Incoming::Message(Message::Chunk { job, seq }) => {
                if let Err(e) = jobs.relay_chunk(&job, seq).await {
                    tracing::warn!(error = %e, job_id = %job, "could not pass on another primary's job output");
                }
            }
            Incoming::Message(Message::Resigned) => cluster.leadership().poke(),
            Incoming::Message(Message::Resync) => events.publish_here(Event::Resync),
            Incoming::Reconnected { since } => {
                match cluster.changes_since(since).await {
                    Ok(changes) => {
                        for change in
                            changes.iter().filter(|c| c.kind == NODE_CHANGE && c.origin != cluster.me())
                        {
                            reload(&change.subject).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not read the change log"),
                }
                events.publish_here(Event::Resync);
            }
        }
    }
}

/// Records each leadership this primary takes: in the audit log and in its health history.
async fn record_leadership(
    cluster: Arc<Cluster>,
    registry: Arc<Registry>,
    audit: AuditLog,
    shutdown: CancellationToken,
) {
    let mut leading = cluster.leadership().watch();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = leading.changed() => if changed.is_err() { return },
        }
        let epoch = *leading.borrow_and_update();
        if let Some(epoch) = epoch {
            let actor = format!("primary:{}", cluster.me());
            audit
                .record(
                    &actor,
                    AuditAction::LeaderElected,
                    Some(cluster.me()),
                    None,
                    Some(format!("epoch {epoch}")),
                )
                .await;
            if let Err(e) = registry.note_leadership(epoch).await {
                tracing::warn!(error = %e, "could not record the leadership in the health history");
            }
        }
    }
}

/// The SQLite database's files, on a primary that has them.
fn database_files(config: &Config) -> Vec<std::path::PathBuf> {
    match &config.database_url {
        DatabaseUrl::Sqlite(path) if config.node.is_primary => ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                name.into()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Where this process can reach itself: its address, with "every interface" made loopback.
fn loopback_of(mut address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    address
}

/// Lets the server hold as many connections as the system allows this process: the soft
/// limit on open files is often 1024, far below the hard one.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, "cannot raise the open files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(2, 8)
}

/// Says loudly when the API is reachable from the network with nothing protecting it.
/// At a primary's start, for whoever just started it: where to go, what user access means
/// here, and the first step.
fn tell_where_to_go(config: &Config) {
    let url = config.auth.public_url();
    let access = match (&config.auth.github, &config.auth.cloudflare) {
        (Some(_), _) => "sign in with GitHub (the users in GITHUB_ALLOWED_USERS)",
        (None, Some(_)) => "requests must come through Cloudflare Access",
        (None, None) if config.listens_on_loopback() => {
            "user access is off: anyone on this machine can manage the fleet (the API listens on loopback only); docs/SECURITY.md tells how to turn sign-in on"
        }
        (None, None) => {
            "user access is off: anyone who can reach this address can manage the fleet; docs/SECURITY.md tells how to turn sign-in on"
        }
    };
    tracing::info!(
        url,
        access,
        "Fleetdeck is ready: open {url} in a browser. First step: Nodes → Add node, and run the command it gives on the machine to add"
    );
}

fn warn_about_exposure(config: &Config) {
    if config.endpoint_is_unroutable() {
        tracing::warn!(
            endpoint = %config.node.api_endpoint,
            "NODE_API_ENDPOINT is not an address other nodes can reach; set it to this node's real URL (it goes into every secondary's PRIMARY_NODE_URL)"
        );
    }
    let auth = &config.auth;
    if config.node.is_primary && auth.github.as_ref().is_some_and(|g| g.allowed_users.is_empty()) {
        tracing::warn!("GITHUB_ALLOWED_USERS is empty: nobody can log in");
    }
    if config.node.is_primary && auth.github.is_none() && auth.cloudflare.is_none() {
        if config.listens_on_loopback() {
            tracing::info!(
                "user authentication is off: the API trusts everyone who can reach this machine's loopback"
            );
        } else {
            tracing::warn!(
                address = %config.server_address,
                "user authentication is off and the API listens beyond this machine: anyone who can reach this address can manage the fleet. Enable AUTH_ENABLED (GitHub login), put it behind Cloudflare Zero Trust (CF_ACCESS_TEAM_DOMAIN, CF_ACCESS_AUD), or bind 127.0.0.1"
            );
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
