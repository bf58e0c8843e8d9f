//! Several primaries on one PostgreSQL (SPEC §12): who they are, which one leads, and how
//! they keep each other informed. PostgreSQL does all the coordinating; there is no
//! consensus of our own.
//!
//! - **Joining** ([`Cluster::join`], at every start, before the caches load): the shared
//!   `cluster` row is made by the first primary (the ID nodes know the primaries by, which
//!   is that primary's node ID, and a value sealed under the master key). A primary whose
//!   master key cannot open that value refuses to start. Each primary writes its own row in
//!   `primaries` (name, URL, started, last seen).
//! - **Leading** ([`Leadership`], rules in [`lease`]): one lease row, a round every 2 s on
//!   every primary, fencing on every leader-only write ([`fence`]). On SQLite there is one
//!   primary (the database file is locked, `db`), which takes the lease at its first round.
//! - **Telling** ([`bus`]): LISTEN/NOTIFY carries live events, job output notices and
//!   resignations; a change to a row every primary keeps in memory is written to the
//!   change log and announced in its own transaction ([`record_change`]), and replayed
//!   from the log after a lost connection.
//!
//! This module knows the database and nothing of nodes or jobs (beyond reading one stored
//! node key, to check the master key of an installation from before the check value): `app`
//! wires what arrives to the registry, the job service and the event hub.

pub mod bus;
pub mod lease;
pub mod repo;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::Timestamp;
use crate::cluster::bus::{Bus, Message};
use crate::cluster::lease::{Claim, Fence, Term};
use crate::db::{Db, DbConnection};
use crate::error::{AppError, AppResult};
use crate::secrets::MasterKey;

/// What the master key must open: sealed once, by the first primary.
const KEY_CHECK: &str = "fleetdeck master key check";
/// The session advisory lock the leader holds on its own connection (PostgreSQL).
const LEADER_LOCK: i64 = 0x0066_6c65_6574_646b; // "fleetdk"
/// Rows of primaries not seen for this long are removed by the leader.
pub const FORGET_PRIMARY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Change-log entries are kept this long (a primary away for longer reloads everything).
pub const CHANGE_LOG_KEPT: Duration = Duration::from_secs(3600);

/// This primary in the cluster: its leadership and what it tells the others.
#[derive(Debug)]
pub struct Cluster {
    db: Db,
    /// This primary's node ID.
    me: String,
    /// The ID every node knows the primaries by.
    primary_node_id: String,
    leadership: Leadership,
    bus: RwLock<Bus>,
}

/// `GET /api/cluster`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClusterView {
    pub leader: Option<LeaderView>,
    pub primaries: Vec<PrimaryView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LeaderView {
    pub id: String,
    pub name: String,
    pub epoch: i64,
    pub since: Timestamp,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PrimaryView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub leader: bool,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
}

impl Cluster {
    /// Joins (or founds) the cluster of `db`: checks the master key against the shared
    /// row, writes this primary's row. `me`, `name`, `url`: this primary's node ID, name
    /// and address.
    pub async fn join(
        db: Db,
        master_key: &MasterKey,
        me: &str,
        name: &str,
        url: &str,
    ) -> anyhow::Result<Cluster> {
        let key = master_key.clone();
        let (id, name, url) = (me.to_owned(), name.to_owned(), url.to_owned());
        let primary_node_id = db
            .transaction(move |conn| -> anyhow::Result<String> {
                let sealed = key.seal(KEY_CHECK);
                let now = repo::db_now(conn)?;
                repo::create_cluster_row(conn, &id, &sealed, now)?;
                let row = repo::cluster_row(conn)?.ok_or_else(|| anyhow::anyhow!("the cluster row is missing"))?;
                // An installation from before the check value is checked against a stored
                // node key first: a wrong key must not become the check value.
                let opens = match &row.key_check {
                    Some(check) => key.open(check).as_deref() == Some(KEY_CHECK),
                    None => repo::any_sealed_node_key(conn)?.is_none_or(|sealed| key.open(&sealed).is_some()),
                };
                if !opens {
                    anyhow::bail!(
                        "the master key (FLEETDECK_MASTER_KEY or DATA_DIR/master.key) is not the one this database was \
                         sealed with: restore it from your backup, and give every primary of one database the same \
                         FLEETDECK_MASTER_KEY (see docs/OPERATIONS.md, \"Backups\" and \"Running several primaries\")"
                    );
                }
                if row.key_check.is_none() {
                    repo::fill_key_check(conn, &sealed)?;
                }
                repo::start_primary(conn, &id, &name, &url)?;
                Ok(row.primary_node_id)
            })
            .await?;
        Ok(Cluster {
            leadership: Leadership::new(db.clone(), me.to_owned()),
            db,
            me: me.to_owned(),
            primary_node_id,
            bus: RwLock::default(),
        })
    }

    /// The ID every node knows the primaries by: on a cluster's first primary, its own.
    pub fn primary_node_id(&self) -> &str {
        &self.primary_node_id
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Whether other primaries may share this database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.db.backend() == "postgres"
    }

    /// The database's time now (Unix ms).
    pub async fn db_now(&self) -> AppResult<i64> {
        Ok(self.db.run(repo::db_now).await?)
    }

    /// Starts listening to the other primaries (PostgreSQL); `since`: the database time
    /// before the caches were loaded. What arrives comes out of the receiver.
    pub fn listen(
        &self,
        since: i64,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<tokio::sync::mpsc::Receiver<bus::Incoming>>> {
        if !self.is_shared() {
            return Ok(None);
        }
        let (bus, incoming) = Bus::start(&self.db, &self.me, since, shutdown)?;
        *self.bus.write().unwrap_or_else(std::sync::PoisonError::into_inner) = bus;
        Ok(Some(incoming))
    }

    /// The sending half of the bus (carries nothing before `listen`, or on SQLite).
    pub fn bus(&self) -> Bus {
        self.bus.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The change-log entries written since `since` (database time).
    pub async fn changes_since(&self, since: i64) -> AppResult<Vec<repo::ChangeRow>> {
        Ok(self.db.run(move |conn| repo::changes_since(conn, since)).await?)
    }

    /// The leader and every primary, as the database has them.
    pub async fn view(&self) -> AppResult<ClusterView> {
        let (lease, rows, now) = self
            .db
            .run(|conn| Ok((repo::lease(conn)?, repo::all_primaries(conn)?, repo::db_now(conn)?)))
            .await?;
        let holder = lease.holder.as_deref().filter(|_| lease.expires_at > now);
        let leader = holder.map(|id| LeaderView {
            id: id.to_owned(),
            name: rows.iter().find(|r| r.id == id).map(|r| r.name.clone()).unwrap_or_default(),
            epoch: lease.epoch,
            since: Timestamp(lease.since),
        });
        let primaries = rows
            .into_iter()
            .map(|r| PrimaryView {
                leader: holder == Some(r.id.as_str()),
                id: r.id,
                name: r.name,
                url: r.url,
                started_at: Timestamp(r.started_at),
                last_seen: Timestamp(r.last_seen),
            })
            .collect();
        Ok(ClusterView { leader, primaries })
    }

    /// The leader's housekeeping: forgets primaries long gone and old change-log entries.
    pub async fn prune(&self, fence: Fence) -> AppResult<usize> {
        self.db
            .transaction(move |conn| {
                check_fence(conn, &fence)?;
                let now = repo::db_now(conn)?;
                let gone = repo::prune_primaries(conn, Timestamp(now).minus(FORGET_PRIMARY_AFTER).0)?;
                let changes = repo::prune_changes(conn, Timestamp(now).minus(CHANGE_LOG_KEPT).0)?;
                Ok::<_, AppError>(gone + changes)
            })
            .await
    }

    /// Stops leading (handing over at once) and leaves: this primary's row goes.
    pub async fn leave(&self) {
        self.leadership.resign().await;
        let me = self.me.clone();
        if let Err(e) = self.db.write(move |conn| repo::remove_primary(conn, &me)).await {
            tracing::warn!(error = %e, "could not remove this primary's row");
        }
    }
}

/// Fails with `AppError::NotLeader` unless `fence`'s term still holds the lease; call it
/// first in every leader-only write's transaction.
pub fn check_fence(conn: &mut DbConnection, fence: &Fence) -> AppResult<()> {
    if repo::fence_holds(conn, fence)? {
        Ok(())
    } else {
        Err(AppError::NotLeader(format!("this primary's term (epoch {}) is over", fence.epoch)))
    }
}

/// Logs that a row every primary keeps in memory changed (`kind` "node", `subject` its
/// ID), in the caller's transaction; the other primaries hear of it when it commits. Only
/// on PostgreSQL: a SQLite database has one primary.
pub fn record_change(conn: &mut DbConnection, kind: &str, subject: &str, origin: &str) -> QueryResult<()> {
    if let DbConnection::Postgres(_) = conn {
        repo::append_change(conn, kind, subject, origin)?;
        let DbConnection::Postgres(pg) = conn else { return Ok(()) };
        let message = Message::Changed { kind: kind.to_owned(), subject: subject.to_owned() };
        repo::notify(pg, bus::CHANNEL, &[bus::payload(origin, message)])?;
    }
    Ok(())
}

/// A primary seen this recently is taken to be running (its rounds touch its row every
/// 2 s; a stopped one removes its row).
pub const RUNNING_WITHIN: Duration = Duration::from_secs(30);

/// Whether primary `id` runs (its row was touched within `RUNNING_WITHIN`).
pub fn primary_is_running(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let now = repo::db_now(conn)?;
    Ok(repo::primary_last_seen(conn, id)?.is_some_and(|seen| seen > Timestamp(now).minus(RUNNING_WITHIN).0))
}

/// Removes primary `id`'s row (one taken out of service).
pub fn forget_primary(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    repo::remove_primary(conn, id)
}

/// This primary's side of the lease: rounds every `lease::RENEW_EVERY`, the current term,
/// and the session lock the leader holds on its own connection (PostgreSQL).
#[derive(Debug)]
pub struct Leadership {
    db: Db,
    me: String,
    term: RwLock<Option<Term>>,
    /// The epoch while leading; watched by the loops that wait for leadership.
    epoch: watch::Sender<Option<i64>>,
    session: Arc<Mutex<Session>>,
    /// Runs a round now (a resignation was heard).
    poke: Notify,
    /// Set by `resign`: no more rounds (the process is stopping).
    resigned: AtomicBool,
}

/// The connection the leader's session lock lives on.
#[derive(Default)]
struct Session {
    conn: Option<DbConnection>,
    holds_lock: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("holds_lock", &self.holds_lock).finish_non_exhaustive()
    }
}

impl Leadership {
    fn new(db: Db, me: String) -> Leadership {
        Leadership {
            db,
            me,
            term: RwLock::default(),
            epoch: watch::Sender::new(None),
            session: Arc::default(),
            poke: Notify::new(),
            resigned: AtomicBool::new(false),
        }
    }

    /// The proof leader-only work carries, while this primary's term lasts.
    pub fn fence(&self) -> Option<Fence> {
        let term = self.term.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        term.as_ref()
            .filter(|t| t.is_current(Instant::now()))
            .map(|t| Fence { holder: self.me.clone(), epoch: t.epoch })
    }

    pub fn is_leader(&self) -> bool {
        self.fence().is_some()
    }

    /// The epoch while leading, `None` otherwise; changes when leadership does.
    pub fn watch(&self) -> watch::Receiver<Option<i64>> {
        self.epoch.subscribe()
    }

    /// Runs `work` whenever a term of this primary begins, dropping it when the term ends;
    /// returns at `shutdown`. (Work should still check `fence` as it goes: a term can also
    /// run out between rounds.)
    pub async fn during_terms<F, Fut>(&self, shutdown: &CancellationToken, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut leading = self.watch();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                began = leading.wait_for(Option::is_some) => if began.is_err() { return },
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = work() => {}
                _ = leading.wait_for(Option::is_none) => {}
            }
        }
    }

    /// Runs a round at once (another primary resigned).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Rounds until `shutdown`: the first at once.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(lease::RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                () = self.poke.notified() => {}
            }
            self.round().await;
        }
    }

    /// One round: renew, take or leave the lease; then the term follows.
    pub async fn round(&self) {
        if self.resigned.load(Ordering::Relaxed) {
            return;
        }
        let sent = Instant::now();
        let outcome = self.claim().await;
        let (before, after) = {
            let mut term = self.term.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = term.as_ref().map(|t| t.epoch);
            match &outcome {
                Ok(Claim::Renewed(lease) | Claim::Taken(lease)) => {
                    *term = Some(Term::after_round(lease, sent));
                }
                Ok(Claim::HeldBy(_)) => *term = None,
                // The term runs out by itself if no later round renews it.
                Err(_) => {}
            }
            (before, term.as_ref().map(|t| t.epoch))
        };
        match &outcome {
            Ok(Claim::Taken(lease)) => {
                tracing::info!(epoch = lease.epoch, "this primary leads now");
            }
            Ok(Claim::HeldBy(lease)) if before.is_some() => {
                tracing::warn!(
                    leader = lease.holder.as_deref().unwrap_or("-"),
                    epoch = lease.epoch,
                    "another primary leads now; this one stopped its leader work"
                );
            }
            Err(e) => tracing::warn!(error = %e, "lease round failed"),
            _ => {}
        }
        if before != after {
            self.epoch.send_replace(after);
        }
    }

    async fn claim(&self) -> anyhow::Result<Claim> {
        let me = self.me.clone();
        if self.db.backend() == "sqlite" {
            return Ok(self
                .db
                .write(move |conn| {
                    let (lease, now) = repo::lock_lease(conn)?;
                    let claim = lease::claim(&lease, &me, now, false);
                    apply(conn, &claim)?;
                    repo::touch_primary(conn, &me, now)?;
                    Ok(claim)
                })
                .await?);
        }
        let session = self.session.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut session = session.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = pg_round(&db, &mut session, &me);
            if result.is_err() {
                // It may be broken: a new one next round (a lock it held goes with it).
                *session = Session::default();
            }
            result
        })
        .await?
    }

    /// Resigns if leading: leader work stops first, then the lease is cleared and the
    /// other primaries are told in the same transaction.
    pub async fn resign(&self) {
        self.resigned.store(true, Ordering::Relaxed);
        let was = self.term.write().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        self.epoch.send_replace(None);
        if was.is_none() {
            return;
        }
        let me = self.me.clone();
        let resigned = self
            .db
            .write(move |conn| {
                let (lease, _) = repo::lock_lease(conn)?;
                let Some(resigned) = lease::resign(&lease, &me) else { return Ok(false) };
                repo::write_lease(conn, &resigned)?;
                if let DbConnection::Postgres(pg) = conn {
                    repo::notify(pg, bus::CHANNEL, &[bus::payload(&me, Message::Resigned)])?;
                }
                Ok(true)
            })
            .await;
        match resigned {
            Ok(true) => tracing::info!("resigned the leadership; another primary takes over now"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not resign; another primary takes over when the lease expires");
            }
        }
        // The session lock goes with its connection.
        *self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Session::default();
    }
}

/// Writes what a round decided.
fn apply(conn: &mut DbConnection, claim: &Claim) -> QueryResult<()> {
    match claim {
        Claim::Renewed(lease) | Claim::Taken(lease) => repo::write_lease(conn, lease),
        Claim::HeldBy(_) => Ok(()),
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// A round on PostgreSQL, on the session's own connection: the lease row locked, the
/// holder's session lock tried when someone else holds an unexpired lease, then the
/// leader makes sure it holds that lock (a follower lets go of it).
fn pg_round(db: &Db, session: &mut Session, me: &str) -> anyhow::Result<Claim> {
    if session.conn.is_none() {
        session.conn = Some(db.connect_dedicated()?);
        session.holds_lock = false;
    }
    let Some(conn) = session.conn.as_mut() else { unreachable!("connected above") };
    let try_lock = |conn: &mut DbConnection| {
        diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<diesel::sql_types::BigInt, _>(LEADER_LOCK)
            .get_result::<Locked>(conn)
            .map(|l| l.locked)
    };
    let holds_lock = session.holds_lock;
    let (claim, got_lock) = conn.transaction(|conn| {
        let (lease, now) = repo::lock_lease(conn)?;
        let held_by_other = lease.holder.as_deref().is_some_and(|h| h != me) && lease.expires_at > now;
        let holder_gone = held_by_other && !holds_lock && try_lock(conn)?;
        let claim = lease::claim(&lease, me, now, holder_gone);
        apply(conn, &claim)?;
        repo::touch_primary(conn, me, now)?;
        Ok::<_, diesel::result::Error>((claim, holder_gone))
    })?;
    session.holds_lock |= got_lock;
    match &claim {
        Claim::Renewed(_) | Claim::Taken(_) if !session.holds_lock => {
            // A previous leader's session (paused, not dead) may still hold it: tried
            // again every round.
            session.holds_lock = try_lock(conn)?;
        }
        Claim::HeldBy(_) if session.holds_lock => {
            diesel::sql_query("SELECT pg_advisory_unlock_all()").execute(conn)?;
            session.holds_lock = false;
        }
        _ => {}
    }
    Ok(claim)
}
