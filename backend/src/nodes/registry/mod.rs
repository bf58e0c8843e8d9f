//! The primary's node registry: the nodes and every rule about them. This file holds the
//! registry itself and what operators do (add, edit, remove, rotate a key, read history);
//! `access` authenticates nodes and takes self-registrations, `heartbeats` applies what
//! nodes report, `probes` stores what the health checker finds. Handlers, the checker and
//! the job router call it; it calls the repo through `Db`.

mod access;
mod heartbeats;
mod joining;
mod outbound;
mod probes;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::clock::{SharedClock, Timestamp};
use crate::cluster::{self, Cluster, lease::Fence};
use crate::db::{Db, DbConnection};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventHub};
use crate::metrics::Metrics;
use crate::nodes::cache::{CachedNode, NodeCache};
use crate::nodes::health::Health;
use crate::nodes::heartbeats::HeartbeatBuffer;
use crate::nodes::repo::{self, KeyRotation, NodeChanges, NodeFilter, NodeRow};
use crate::nodes::tunnels::Tunnels;
use crate::nodes::{Labels, Node, NodeId, NodeName, NodeStatus, NodeUrl, StatusChange};
use crate::protocol::Connect;
use crate::secrets::{ApiKey, MasterKey};

pub use joining::{
    IssuedJoinToken, JOIN_TOKEN_PREFIX, JoinToken, JoinTokenState, MAX_JOIN_TTL, MIN_JOIN_TTL, NewJoinToken,
};

/// A node to add, already validated.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub id: Option<NodeId>,
    pub name: NodeName,
    pub api_endpoint: NodeUrl,
    pub api_key: Option<ApiKey>,
    pub labels: Labels,
}

/// A node just created or given a new key: the key is shown this once.
#[derive(Debug)]
pub struct IssuedKey {
    pub node: Node,
    pub api_key: ApiKey,
    /// The secondary's `.env`, ready to paste.
    pub env: String,
}

/// Whether a self-registration created the node or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    AlreadyRegistered,
}

/// How often buffered heartbeats are written.
const HEARTBEAT_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often old chart samples are removed.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// What an applied probe changed, for the cache and the stats held in memory.
struct Probed {
    health: Health,
    at: Timestamp,
    stats: bool,
}

/// Everything about nodes that the primary decides.
pub struct Registry {
    db: Db,
    clock: SharedClock,
    master_key: MasterKey,
    cache: NodeCache,
    events: EventHub,
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    /// The ID nodes know the primaries by (`PRIMARY_NODE_ID`): the cluster's first primary's.
    primary_id: NodeId,
    /// This primary's own node ID (the same on the cluster's first primary).
    own_id: NodeId,
    primary_endpoint: NodeUrl,
    key_grace: Duration,
    registration_token: Option<SecretString>,
    heartbeats: HeartbeatBuffer,
    tunnels: Tunnels,
}

/// How the registry is set up (from `Config` and the node identity).
pub struct RegistrySettings {
    pub own_id: NodeId,
    pub primary_endpoint: NodeUrl,
    pub key_grace: Duration,
    pub registration_token: Option<SecretString>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("own_id", &self.own_id).finish_non_exhaustive()
    }
}

impl Registry {
    /// Loads the node cache from the database.
    pub async fn load(
        db: Db,
        clock: SharedClock,
        master_key: MasterKey,
        events: EventHub,
        cluster: Arc<Cluster>,
        metrics: Arc<Metrics>,
        settings: RegistrySettings,
    ) -> AppResult<Registry> {
        let rows = db.run(repo::all).await?;
        let primary_id =
            NodeId::parse(cluster.primary_node_id()).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
        Ok(Registry {
            cache: NodeCache::load(&rows),
            db,
            clock,
            master_key,
            events,
            cluster,
            metrics,
            primary_id,
            own_id: settings.own_id,
            primary_endpoint: settings.primary_endpoint,
            key_grace: settings.key_grace,
            registration_token: settings.registration_token,
            heartbeats: HeartbeatBuffer::default(),
            tunnels: Tunnels::default(),
        })
    }

    /// The ID nodes know the primaries by: what a primary presents as `X-Node-ID` when it
    /// calls a node, and answers heartbeats with.
    pub fn primary_id(&self) -> &NodeId {
        &self.primary_id
    }

    /// This primary's own node ID (its row, its own jobs).
    pub fn own_id(&self) -> &NodeId {
        &self.own_id
    }

    /// What this primary counts for Prometheus.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The proof leader-only writes carry, while this primary leads.
    pub fn fence(&self) -> Option<Fence> {
        self.cluster.leadership().fence()
    }

    /// `fence`, or `NotLeader`.
    pub fn leader_fence(&self) -> AppResult<Fence> {
        self.fence().ok_or_else(|| AppError::NotLeader("this primary is not the leader".into()))
    }

    /// Reloads node `id` from the database into the cache (another primary changed it).
    pub async fn reload(&self, id: &NodeId) -> AppResult<()> {
        let id2 = id.clone();
        match self.db.run(move |conn| repo::find(conn, &id2)).await? {
            Some(row) => self.cache.put_row(&row),
            None => {
                self.cache.remove(id);
                self.heartbeats.forget(id);
            }
        }
        Ok(())
    }

    /// The nodes jobs may go to now: the online ones (this primary is always online to
    /// itself).
    pub fn routable_nodes(&self) -> Vec<Arc<CachedNode>> {
        let mut nodes = self.cache.all();
        nodes.retain(|n| n.is_routable());
        nodes
    }

    /// Every node as the cache has it.
    pub fn nodes(&self) -> Vec<Arc<CachedNode>> {
        self.cache.all()
    }

    /// The node as the cache has it.
    pub fn cached(&self, id: &NodeId) -> Option<Arc<CachedNode>> {
        self.cache.get(id)
    }

    /// Whether some node (online or not) holds all of `labels`.
    pub fn any_node_has(&self, labels: &Labels) -> bool {
        self.cache.any_has_labels(labels)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Records this primary in its own table (at every start): always online, its key
    /// current, its name, endpoint and labels as configured.
    pub async fn ensure_primary(
        &self,
        name: NodeName,
        key: &ApiKey,
        labels: Labels,
        max_jobs: u32,
    ) -> anyhow::Result<()> {
        let now = self.now();
        let mut row = self.new_row(&self.own_id, &name, &self.primary_endpoint, key, &labels, now);
        row.is_primary = true;
        row.status = NodeStatus::Online.as_str().to_owned();
        row.last_seen = Some(now.0);
        row.version = Some(crate::VERSION.to_owned());
        row.max_jobs = i32::try_from(max_jobs).unwrap_or(i32::MAX);
        let (master_key, origin) = (self.master_key.clone(), self.own_id.clone());
        let row = self
            .db
            .transaction(move |conn| {
                if let Some(other) = repo::find_by_name(conn, &name)?
                    && other.id != row.id
                {
                    anyhow::bail!("NODE_NAME {name} is already used by node {}; choose another name", other.id);
                }
                if let Some(existing) = repo::find(conn, &NodeId::from_db(row.id.clone()))? {
                    if master_key.open(&existing.api_key_sealed).is_none() {
                        anyhow::bail!(
                            "the master key (FLEETDECK_MASTER_KEY or DATA_DIR/master.key) is not the one this \
                             database was sealed with; restore it from your backup (see docs/OPERATIONS.md)"
                        );
                    }
                    row.created_at = existing.created_at;
                    repo::replace(conn, &row)?;
                } else {
                    repo::insert(conn, &row)?;
                }
                changed(conn, &origin, &origin)?;
                Ok(row)
            })
            .await?;
        self.cache.put_row(&row);
        self.forget_own_tunnels().await?;
        Ok(())
    }

    fn new_row(
        &self,
        id: &NodeId,
        name: &NodeName,
        endpoint: &NodeUrl,
        key: &ApiKey,
        labels: &Labels,
        now: Timestamp,
    ) -> NodeRow {
        NodeRow {
            id: id.to_string(),
            name: name.to_string(),
            api_endpoint: endpoint.to_string(),
            is_primary: false,
            status: NodeStatus::Pending.as_str().to_owned(),
            labels: labels.to_list(),
            api_key_hash: key.hash().as_bytes().to_vec(),
            api_key_sealed: self.master_key.seal(key.expose()),
            previous_key_hash: None,
            previous_key_sealed: None,
            previous_key_expires_at: None,
            consecutive_failures: 0,
            last_seen: None,
            last_health_check: None,
            last_error: None,
            version: None,
            max_jobs: 1,
            last_stats: None,
            created_at: now.0,
            updated_at: now.0,
            connect: Connect::Inbound.as_str().to_owned(),
            connected_via: None,
        }
    }

    /// The `.env` a secondary needs to join this primary. Without `NODE_LABELS`: the node's
    /// labels stay the primary's to edit (a node that sets them replaces them by heartbeat).
    fn secondary_env(&self, node: &Node, key: &ApiKey) -> String {
        format!(
            "NODE_IS_PRIMARY=false\nNODE_ID={}\nNODE_NAME={}\nNODE_API_KEY={}\nNODE_API_ENDPOINT={}\n\
             SERVER_ADDRESS={}\nPRIMARY_NODE_URL={}\nPRIMARY_NODE_ID={}\n",
            node.id,
            node.name,
            key.expose(),
            node.api_endpoint,
            listen_address_for(&node.api_endpoint),
            self.primary_endpoint,
            self.primary_id,
        )
    }

    /// Adds a node (`POST /api/nodes`); its key is generated unless given.
    pub async fn create(&self, new: NewNode) -> AppResult<IssuedKey> {
        let id = new.id.unwrap_or_else(NodeId::generate);
        if id == self.primary_id || self.cached(&id).is_some_and(|n| n.is_primary) {
            return Err(AppError::Conflict("that ID is a primary's own".into()));
        }
        let key = new.api_key.unwrap_or_else(ApiKey::generate);
        let row = self.new_row(&id, &new.name, &new.api_endpoint, &key, &new.labels, self.now());
        let origin = self.own_id.clone();
        let row = self
            .db
            .transaction(move |conn| {
                if repo::find(conn, &id)?.is_some() {
                    return Err(AppError::Conflict(format!("a node with ID {id} already exists")));
                }
                if let Some(other) = repo::find_by_name(conn, &new.name)? {
                    return Err(AppError::Conflict(format!("a node named {} already exists", other.name)));
                }
                repo::insert(conn, &row)?;
                changed(conn, &id, &origin)?;
                Ok(row)
            })
            .await?;
        self.cache.put_row(&row);
        let node = row.to_node();
        tracing::info!(node_id = %node.id, name = %node.name, "node added");
        self.events.publish(Event::NodeUpdated { node_id: node.id.clone() });
        let env = self.secondary_env(&node, &key);
        Ok(IssuedKey { node, api_key: key, env })
    }

    /// The nodes added at `since` or later.
    pub async fn added_since(&self, since: Timestamp) -> AppResult<Vec<Node>> {
        let rows = self.db.run(move |conn| repo::added_since(conn, since)).await?;
        Ok(rows.iter().map(NodeRow::to_node).collect())
    }

    pub async fn get(&self, id: &NodeId) -> AppResult<Node> {
        let id2 = id.clone();
        self.db
            .run(move |conn| repo::find(conn, &id2))
            .await?
            .map(|row| row.to_node())
            .ok_or_else(|| not_found(id))
    }

    pub async fn list(&self, filter: NodeFilter) -> AppResult<Vec<Node>> {
        let rows = self.db.run(move |conn| repo::list(conn, &filter)).await?;
        Ok(rows.iter().map(NodeRow::to_node).collect())
    }

    /// Counts of nodes by status (every status present, zero or not), from the cache.
    pub fn counts(&self) -> Vec<(NodeStatus, i64)> {
        let mut counts = NodeStatus::ALL.map(|s| (s, 0));
        for node in self.cache.all() {
            if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == node.health.status) {
                *n += 1;
            }
        }
        counts.to_vec()
    }

    /// Changes a secondary's name, endpoint or labels.
    pub async fn update(
        &self,
        id: &NodeId,
        name: Option<NodeName>,
        api_endpoint: Option<NodeUrl>,
        labels: Option<Labels>,
    ) -> AppResult<Node> {
        let changes = NodeChanges {
            name: name.as_ref().map(ToString::to_string),
            api_endpoint: api_endpoint.map(|u| u.to_string()),
            labels: labels.map(|l| l.to_list()),
            updated_at: self.now().0,
        };
        let id2 = id.clone();
        let origin = self.own_id.clone();
        let row = self
            .db
            .transaction(move |conn| {
                let row = secondary(conn, &id2, "the primary is configured through its environment (NODE_NAME, NODE_API_ENDPOINT, NODE_LABELS)")?;
                if let Some(name) = &name
                    && repo::find_by_name(conn, name)?.is_some_and(|other| other.id != row.id)
                {
                    return Err(AppError::Conflict(format!("a node named {name} already exists")));
                }
                repo::update(conn, &id2, &changes)?;
                changed(conn, &id2, &origin)?;
                repo::find(conn, &id2)?.ok_or_else(|| not_found(&id2))
            })
            .await?;
        self.cache.put_row(&row);
        self.events.publish(Event::NodeUpdated { node_id: id.clone() });
        tracing::info!(node_id = %id, "node updated");
        Ok(row.to_node())
    }

    /// Removes a secondary, or a primary that no longer runs (one taken out of service:
    /// stopped, or not seen for `cluster::RUNNING_WITHIN`); never a running primary.
    pub async fn delete(&self, id: &NodeId) -> AppResult<()> {
        let (id2, origin) = (id.clone(), self.own_id.clone());
        self.db
            .transaction(move |conn| -> AppResult<()> {
                let row = repo::find(conn, &id2)?.ok_or_else(|| not_found(&id2))?;
                if row.is_primary && (id2 == origin || cluster::primary_is_running(conn, id2.as_str())?) {
                    return Err(AppError::Conflict(
                        "a running primary cannot be removed: stop it first (it leaves GET /api/cluster)"
                            .into(),
                    ));
                }
                repo::delete(conn, &id2)?;
                cluster::forget_primary(conn, id2.as_str())?;
                changed(conn, &id2, &origin)?;
                Ok(())
            })
            .await?;
        self.cache.remove(id);
        self.heartbeats.forget(id);
        self.events.publish(Event::NodeRemoved { node_id: id.clone() });
        tracing::info!(node_id = %id, "node removed");
        Ok(())
    }

    /// Issues a new key; the old one keeps working for the grace period.
    pub async fn rotate_key(&self, id: &NodeId) -> AppResult<(IssuedKey, Timestamp)> {
        let key = ApiKey::generate();
        let now = self.now();
        let expires = now.plus(self.key_grace);
        let hash = key.hash().as_bytes().to_vec();
        let sealed = self.master_key.seal(key.expose());
        let (id2, origin) = (id.clone(), self.own_id.clone());
        let row = self
            .db
            .transaction(move |conn| {
                let row = secondary(
                    conn,
                    &id2,
                    "the primary's key is set by its own NODE_API_KEY; rotate secondaries' keys",
                )?;
                let rotation = KeyRotation {
                    hash,
                    sealed,
                    previous_hash: row.api_key_hash,
                    previous_sealed: row.api_key_sealed,
                    previous_expires_at: expires,
                };
                repo::rotate_key(conn, &id2, rotation, now)?;
                changed(conn, &id2, &origin)?;
                repo::find(conn, &id2)?.ok_or_else(|| not_found(&id2))
            })
            .await?;
        self.cache.put_row(&row);
        let node = row.to_node();
        tracing::info!(node_id = %id, grace_until = %expires, "node key rotated");
        let env = self.secondary_env(&node, &key);
        Ok((IssuedKey { node, api_key: key, env }, expires))
    }

    /// Records in this primary's health history that it took the lead of the primaries
    /// (a change whose status stays the same), and tells the UI.
    pub async fn note_leadership(&self, epoch: i64) -> AppResult<()> {
        let status = self.cached(&self.own_id).map_or(NodeStatus::Online, |n| n.health.status);
        let change = StatusChange {
            id: uuid::Uuid::now_v7().to_string(),
            node_id: self.own_id.clone(),
            from: status,
            to: status,
            reason: format!("took the lead of the primaries (epoch {epoch})"),
            at: self.now(),
        };
        let row = change.clone();
        self.db.write(move |conn| repo::record_transition(conn, &row)).await?;
        let name = self.cached(&self.own_id).map(|n| n.name.clone()).unwrap_or_default();
        self.publish_change(change, name);
        Ok(())
    }

    /// Status changes, newest first, of one node (`Some`) or of the whole fleet.
    pub async fn history(
        &self,
        id: Option<&NodeId>,
        before: Option<String>,
        limit: i64,
    ) -> AppResult<Vec<StatusChange>> {
        if let Some(id) = id {
            self.get(id).await?;
        }
        let id = id.cloned();
        Ok(self.db.run(move |conn| repo::history(conn, id.as_ref(), before.as_deref(), limit)).await?)
    }

    /// A node's chart samples since `since`, oldest first, at most `limit`.
    pub async fn samples(
        &self,
        id: &NodeId,
        since: Timestamp,
        limit: i64,
    ) -> AppResult<Vec<repo::StatsSample>> {
        self.get(id).await?;
        let id = id.clone();
        Ok(self.db.run(move |conn| repo::samples_since(conn, &id, since, limit)).await?)
    }

    /// Logs a status transition and tells the UI.
    fn announce(&self, change: StatusChange, name: String) {
        let level_is_bad = matches!(change.to, NodeStatus::Offline | NodeStatus::Unreachable);
        if level_is_bad {
            tracing::warn!(node_id = %change.node_id, node = %name, from = %change.from, to = %change.to, reason = %change.reason, "node status changed");
        } else {
            tracing::info!(node_id = %change.node_id, node = %name, from = %change.from, to = %change.to, reason = %change.reason, "node status changed");
        }
        self.metrics.status_changed(change.to.as_str());
        self.publish_change(change, name);
    }

    /// Tells the UI (here and on the other primaries) about a recorded change.
    fn publish_change(&self, change: StatusChange, name: String) {
        self.events.publish(Event::NodeStatusChanged {
            node_id: change.node_id,
            name,
            from: change.from,
            to: change.to,
            reason: change.reason,
            at: change.at,
        });
    }
}

/// The change-log kind of a node's row.
pub const NODE_CHANGE: &str = "node";

/// Logs, in the caller's transaction, that node `id` changed, for the other primaries'
/// caches; `origin`: this primary.
fn changed(conn: &mut DbConnection, id: &NodeId, origin: &NodeId) -> diesel::QueryResult<()> {
    cluster::record_change(conn, NODE_CHANGE, id.as_str(), origin.as_str())
}

/// Secondary `id`'s row, inside a write; the primary's is refused with `why`.
fn secondary(conn: &mut DbConnection, id: &NodeId, why: &str) -> AppResult<NodeRow> {
    let row = repo::find(conn, id)?.ok_or_else(|| not_found(id))?;
    if row.is_primary {
        return Err(AppError::Conflict(why.to_owned()));
    }
    Ok(row)
}

fn not_found(id: &NodeId) -> AppError {
    AppError::NotFound(format!("no node with ID {id}"))
}

/// The `SERVER_ADDRESS` a secondary should listen on to be reachable at `endpoint`: the
/// endpoint's own address when it is loopback, otherwise every interface on its port.
fn listen_address_for(endpoint: &NodeUrl) -> String {
    let Ok(url) = url::Url::parse(endpoint.as_str()) else { return "0.0.0.0:8080".into() };
    let port = url.port_or_known_default().unwrap_or(8080);
    match url.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => format!("{ip}:{port}"),
        Some(url::Host::Domain("localhost")) => format!("127.0.0.1:{port}"),
        _ => format!("0.0.0.0:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::db::DatabaseUrl;
    use crate::nodes::repo::ProbeRecord;
    use crate::protocol::Heartbeat;
    use crate::stats::SystemStats;

    fn heartbeat(cpu: f64) -> Heartbeat {
        Heartbeat {
            version: "test".into(),
            connect: crate::protocol::Connect::Inbound,
            labels: Some(vec![]),
            max_jobs: 2,
            running_jobs: vec![],
            stats: Some(SystemStats { cpu_usage_percent: cpu, ..SystemStats::default() }),
            uptime_secs: 1,
        }
    }

    /// The stats in the node's row and how many chart samples it has.
    async fn stored_stats(registry: &Registry, id: &NodeId) -> (Option<f64>, usize) {
        let id = id.clone();
        let (stats, samples) = registry
            .db
            .run(move |c| {
                let row = repo::find(c, &id)?.expect("the node");
                Ok((row.last_stats, repo::samples_since(c, &id, Timestamp(0), 100)?.len()))
            })
            .await
            .unwrap();
        (stats.map(|s| serde_json::from_str::<SystemStats>(&s).unwrap().cpu_usage_percent), samples)
    }

    async fn latest_cpu(registry: &Registry, id: &NodeId) -> Option<f64> {
        let all = registry.latest_stats().await.unwrap();
        all.into_iter().find(|(n, _)| &n.id == id).and_then(|(_, s)| s).map(|s| s.cpu_usage_percent)
    }

    async fn test_registry(dir: &std::path::Path) -> (Registry, Arc<ManualClock>) {
        let db = Db::connect(&DatabaseUrl::Sqlite(dir.join("t.db"))).unwrap();
        let clock = ManualClock::starting_now();
        let own_id = NodeId::generate();
        let settings = RegistrySettings {
            own_id: own_id.clone(),
            primary_endpoint: NodeUrl::parse("http://127.0.0.1:1").unwrap(),
            key_grace: Duration::from_secs(60),
            registration_token: None,
        };
        let master_key = MasterKey::load_or_create(None, dir).unwrap();
        let cluster =
            Cluster::join(db.clone(), &master_key, own_id.as_str(), "primary", "http://127.0.0.1:1");
        let cluster = Arc::new(cluster.await.unwrap());
        cluster.leadership().round().await;
        let registry = Registry::load(
            db,
            clock.clone(),
            master_key,
            EventHub::default(),
            cluster,
            Arc::new(Metrics::new().unwrap()),
            settings,
        );
        (registry.await.unwrap(), clock)
    }

    fn new_node(name: &str) -> NewNode {
        NewNode {
            id: None,
            name: NodeName::parse(name).unwrap(),
            api_endpoint: NodeUrl::parse("http://127.0.0.1:2").unwrap(),
            api_key: None,
            labels: Labels::default(),
        }
    }

    /// The median time of `f` over many runs.
    fn median_nanos(mut f: impl FnMut()) -> u128 {
        let mut times: Vec<u128> = (0..3001)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed().as_nanos()
            })
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_node_id_costs_what_a_wrong_key_for_a_known_one_costs() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _) = test_registry(dir.path()).await;
        let known = registry.create(new_node("known")).await.unwrap().node.id;
        let unknown = NodeId::generate();
        let wrong = "a-wrong-key-a-wrong-key-a-wrong-key-a-wrong";
        assert!(!registry.authenticate(&unknown, wrong));
        assert!(!registry.authenticate(&known, wrong));
        // Interleaved rounds, so that whatever else the machine does hits both alike.
        let (mut known_ns, mut unknown_ns) = (0, 0);
        for _ in 0..5 {
            known_ns += median_nanos(|| assert!(!registry.authenticate(&known, wrong)));
            unknown_ns += median_nanos(|| assert!(!registry.authenticate(&unknown, wrong)));
        }
        let ratio = unknown_ns as f64 / known_ns as f64;
        assert!((0.67..1.5).contains(&ratio), "unknown {unknown_ns} ns vs known {known_ns} ns (×{ratio:.2})");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_rotation_the_node_is_called_with_the_key_it_last_showed() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, clock) = test_registry(dir.path()).await;
        let issued = registry.create(new_node("rotating")).await.unwrap();
        let (id, old_key) = (issued.node.id.clone(), issued.api_key.expose().to_owned());
        let keys = |registry: &Registry| registry.keys_for(&registry.cached(&id).unwrap());
        assert_eq!(keys(&registry), vec![old_key.clone()]);

        let (rotated, _) = registry.rotate_key(&id).await.unwrap();
        let new_key = rotated.api_key.expose().to_owned();
        // The node cannot have the new key yet: the old one goes first.
        assert_eq!(keys(&registry), vec![old_key.clone(), new_key.clone()]);
        assert!(registry.authenticate(&id, &old_key));
        assert_eq!(keys(&registry), vec![old_key.clone(), new_key.clone()]);
        // Once it shows the new key, that one goes first, also after other writes to the node.
        assert!(registry.authenticate(&id, &new_key));
        assert_eq!(keys(&registry), vec![new_key.clone(), old_key.clone()]);
        registry.heartbeat(&id, heartbeat(1.0)).await.unwrap();
        assert_eq!(keys(&registry), vec![new_key.clone(), old_key.clone()]);
        // After the grace period, only the new key.
        clock.advance(Duration::from_secs(61));
        assert_eq!(keys(&registry), vec![new_key.clone()]);
        assert!(!registry.authenticate(&id, &old_key));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeat_stats_are_kept_once_a_minute_and_the_latest_served_in_between() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, clock) = test_registry(dir.path()).await;
        let id = registry.create(new_node("web-1")).await.unwrap().node.id;

        // The first heartbeat's stats are written with a chart sample.
        registry.heartbeat(&id, heartbeat(10.0)).await.unwrap();
        assert_eq!(latest_cpu(&registry, &id).await, Some(10.0), "served while buffered");
        registry.flush_heartbeats().await.unwrap();
        assert_eq!(stored_stats(&registry, &id).await, (Some(10.0), 1));

        // Ten seconds on: last seen is written, the stats only kept in memory.
        clock.advance(Duration::from_secs(10));
        registry.heartbeat(&id, heartbeat(20.0)).await.unwrap();
        registry.flush_heartbeats().await.unwrap();
        assert_eq!(stored_stats(&registry, &id).await, (Some(10.0), 1));
        assert_eq!(latest_cpu(&registry, &id).await, Some(20.0), "served from memory");
        let seen = registry.get(&id).await.unwrap().last_seen;
        assert_eq!(seen, Some(registry.now()));

        // A probe's stats, written at once, supersede those held in memory.
        let node = registry.cached(&id).unwrap();
        let probed = SystemStats { cpu_usage_percent: 25.0, ..SystemStats::default() };
        let probe = ProbeRecord {
            id: id.clone(),
            expected_failures: node.health.failures,
            health: node.health.after_success(),
            at: registry.now(),
            error: None,
            stats: Some(serde_json::to_string(&probed).unwrap()),
        };
        let fence = registry.fence().expect("the only primary leads");
        registry.store_probes(vec![(node, probe)], fence).await.unwrap();
        assert_eq!(latest_cpu(&registry, &id).await, Some(25.0), "the probe's, from the row");

        // A minute after the last write they are due again.
        clock.advance(crate::nodes::heartbeats::SAMPLE_EVERY);
        registry.heartbeat(&id, heartbeat(30.0)).await.unwrap();
        registry.flush_heartbeats().await.unwrap();
        assert_eq!(stored_stats(&registry, &id).await, (Some(30.0), 2));
    }
}
