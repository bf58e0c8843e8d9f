//! Database plumbing shared by every feature: one connection type over SQLite and
//! PostgreSQL, the embedded migrations of both (run before the pool is built), a small r2d2
//! pool, and `Db::run` and `Db::write` (or `Db::transaction`, for a closure that may refuse
//! with its own error), the only ways request and background code touch the database
//! (always off the async threads: on a blocking thread, or on SQLite's writer thread). No
//! connection within 5 s is `DbError::Unavailable` (a 503).
//!
//! - PostgreSQL: a pool of 10; `Db::write` runs its transaction on a pooled connection, so
//!   writers run side by side.
//! - SQLite: WAL (set once per database), and per connection `busy_timeout` (5 s),
//!   `foreign_keys`, `synchronous = NORMAL`. A pool of 4 for reads, and one writer: a thread
//!   (`db-writer`) with its own connection runs every `Db::write`. It takes the writes queued
//!   up, at most `MAX_BATCH` (256), runs each in a savepoint of one transaction and commits
//!   once (group commit). A write that fails rolls back only its own changes; a failed
//!   commit, or a write that panics, fails every write of the batch (after a panic the
//!   writer's connection is replaced); no write waits on a timer (a lone write commits at
//!   once). So a write transaction never meets `SQLITE_BUSY` half-way, a write waiting
//!   its turn holds no connection readers need, and under load many writes share one
//!   commit.
//!
//! Features own their queries (`nodes::repo`, `jobs::repo`, `auth::repo`, `audit`); this
//! module knows nothing about them.

pub mod schema;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::SecretString;
use url::Url;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Where the database lives; the scheme is always explicit.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(SecretString),
}

impl DatabaseUrl {
    /// Parses `sqlite://path` or `postgres://…` / `postgresql://…`.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, String> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://./data/fleetdeck.db".into());
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            Ok(DatabaseUrl::Postgres(SecretString::from(raw.to_owned())))
        } else {
            Err("must start with sqlite:// or postgres://".into())
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::parse(s)
    }
}

/// One connection of either backend. Queries written against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database this installation runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Opens connections of the configured backend, with SQLite's per-connection settings.
#[derive(Debug)]
struct Manager {
    target: Target,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.target {
            Target::Postgres(url) => {
                PgConnection::establish(url).map(DbConnection::Postgres).map_err(r2d2::Error::ConnectionError)
            }
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(r2d2::Error::ConnectionError)?;
                // Separate statements, in this order: the busy timeout must be in place
                // before anything else can meet a lock.
                for pragma in [
                    "PRAGMA busy_timeout = 5000;",
                    "PRAGMA foreign_keys = ON;",
                    "PRAGMA synchronous = NORMAL;",
                ] {
                    conn.batch_execute(pragma).map_err(r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// Errors of `Db::run`: a query error, or no connection in time.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Unavailable(String),
}

/// The database handle every part of the application shares.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    /// SQLite's one writer (none on PostgreSQL, whose writers run side by side).
    writer: Option<Writer>,
    target: Target,
    /// SQLite: the database file, locked for as long as this primary runs.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

impl Db {
    /// Connects, runs pending migrations, then builds the pool (and SQLite's writer). A
    /// SQLite database is locked first: it serves one primary, so a second one started on
    /// the same file stops here.
    pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Db> {
        let lock = match url {
            DatabaseUrl::Sqlite(path) => Some(std::sync::Arc::new(lock_sqlite(path)?)),
            DatabaseUrl::Postgres(_) => None,
        };
        let (manager, mut conn) = open(url)?;
        run_migrations(&mut conn)?;
        drop(conn);

        let writer = match &manager.target {
            Target::Sqlite(_) => Some(Writer::start(Manager { target: manager.target.clone() })?),
            Target::Postgres(_) => None,
        };
        let target = manager.target.clone();
        let pool = Pool::builder()
            .max_size(if writer.is_some() { 4 } else { 10 })
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .context("building the database pool")?;
        Ok(Db { pool, writer, target, _lock: lock })
    }

    /// A connection of its own, outside the pool, for what must stay one session
    /// (`LISTEN`, the leader's session lock).
    pub fn connect_dedicated(&self) -> anyhow::Result<DbConnection> {
        Manager { target: self.target.clone() }.connect().context("connecting to the database")
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        if self.writer.is_some() { "sqlite" } else { "postgres" }
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    {
        self.pooled(move |conn| f(conn).map_err(DbError::Query)).await
    }

    /// `f` with a pooled connection on a blocking thread, its error type its own.
    async fn pooled<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs `f`, a closure of queries, inside a transaction: on PostgreSQL with a pooled
    /// connection; on SQLite through the one writer, which commits the writes that queue up
    /// meanwhile together, each in a savepoint of its own (its failure rolls back only its
    /// own changes).
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    {
        self.transaction(move |conn| f(conn).map_err(DbError::Query)).await
    }

    /// `write` for a closure that can also refuse with an error of its own domain (a
    /// conflict, a missing row): that error rolls the transaction back as a query error
    /// does, and comes back as it is.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<diesel::result::Error> + From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let Some(writer) = &self.writer else {
            return self.pooled(move |conn| conn.transaction(f)).await;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = conn.transaction(f);
            Box::new(move |committed: Result<(), String>| {
                let outcome = committed.map_err(|e| E::from(DbError::Unavailable(e))).and(result);
                let _ = tx.send(outcome);
            })
        });
        writer.jobs.send(job).map_err(|_| DbError::Unavailable("the database writer has stopped".into()))?;
        rx.await.map_err(|_| DbError::Unavailable("the database writer failed (see the log)".into()))?
    }
}

/// A write waiting for SQLite's writer: it runs in the batch's transaction and returns what
/// to do once that transaction committed (or failed to).
type WriteJob = Box<dyn FnOnce(&mut DbConnection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// At most this many writes share one SQLite transaction.
const MAX_BATCH: usize = 256;

/// SQLite allows one writer at a time. A thread with a connection of its own runs every
/// write, so a write transaction never meets `SQLITE_BUSY` half-way, a write waiting its
/// turn holds nothing readers need (WAL keeps readers unblocked), and the writes that queue
/// up under load share one commit (group commit) instead of paying one each.
#[derive(Clone)]
struct Writer {
    jobs: std::sync::mpsc::Sender<WriteJob>,
}

impl Writer {
    fn start(manager: Manager) -> anyhow::Result<Writer> {
        let mut conn = manager.connect().context("opening the SQLite writer's connection")?;
        let (jobs, queue) = std::sync::mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || {
                // Until every `Db` is gone.
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut completions = Vec::with_capacity(batch.len());
                        let committed = conn.transaction(|c| {
                            completions.extend(batch.into_iter().map(|job| job(c)));
                            Ok::<_, diesel::result::Error>(())
                        });
                        let committed = committed.map_err(|e| e.to_string());
                        if let Err(e) = &committed {
                            tracing::error!(error = %e, writes = completions.len(), "a batch of database writes failed");
                        }
                        for done in completions {
                            done(committed.clone());
                        }
                    }));
                    if run.is_err() {
                        // The batch's callers get an error (their replies were dropped); the
                        // connection may be mid-transaction, so it is replaced.
                        tracing::error!("a database write panicked; its batch was not committed");
                        match manager.connect() {
                            Ok(fresh) => conn = fresh,
                            Err(e) => tracing::error!(error = %e, "cannot reopen the SQLite writer's connection"),
                        }
                    }
                }
            })
            .context("starting the SQLite writer")?;
        Ok(Writer { jobs })
    }
}

diesel::define_sql_function! {
    /// SQL `lower`, on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

diesel::define_sql_function! {
    /// SQL `length` of a blob: its size in bytes, on both backends.
    #[sql_name = "length"]
    fn byte_length(x: diesel::sql_types::Binary) -> diesel::sql_types::Integer;
}

/// `text` for use inside a `LIKE` pattern escaped with `\`.
pub fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The `LIKE` patterns (escaped with `\`) that find `label` in a comma list of labels other
/// than the one-label list, which equality finds: first, last, or in the middle.
pub fn label_patterns(label: &str) -> [String; 3] {
    let l = like_escape(label);
    [format!("{l},%"), format!("%,{l}"), format!("%,{l},%")]
}

/// Locks the SQLite database file for this process (an advisory `flock`, which SQLite's
/// own locks do not touch), creating it if needed; fails if another process still holds it
/// after [`LOCK_WAIT`] (a primary being restarted may not have let go yet).
fn lock_sqlite(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::data_dir::create_dir(parent)?;
    }
    let file = crate::data_dir::file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening the SQLite database {}", path.display()))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut result = file.try_lock();
    while matches!(result, Err(std::fs::TryLockError::WouldBlock)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        result = file.try_lock();
    }
    match result {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Fleetdeck primary is already running on the SQLite database {}: a SQLite database serves \
             one primary. For several primaries use PostgreSQL (DATABASE_URL=postgres://...; see \
             docs/OPERATIONS.md, \"Running several primaries\")",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking the SQLite database {}", path.display())))
        }
    }
}

/// How long a starting primary waits for the SQLite database's lock to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Held while migrations run on PostgreSQL, where several primaries may start at once.
const MIGRATION_LOCK: i64 = 0x0066_6c65_6574_646d; // "fleetdm"

/// Applies every pending migration of the connection's backend. On PostgreSQL one primary
/// at a time (a session advisory lock): the others wait, then find nothing to do.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<()> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConnection::Postgres(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let applied = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            applied
        }
    }
    .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}

/// Whether every embedded migration has been applied (`/api/ready`).
pub fn migrations_applied(conn: &mut DbConnection) -> bool {
    match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    }
    .is_ok_and(|pending| !pending)
}

/// Reverts every migration, then applies them again (the migration round-trip test).
pub fn redo_all_migrations(conn: &mut DbConnection) -> anyhow::Result<()> {
    let result = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(drop),
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(drop),
    };
    result.map_err(|e| anyhow::anyhow!("reverting migrations: {e}"))?;
    run_migrations(conn)
}

/// Opens one unpooled connection (the `migrate` subcommand and tests).
pub fn connect_once(url: &DatabaseUrl) -> anyhow::Result<DbConnection> {
    open(url).map(|(_, conn)| conn)
}

/// The first connection to a database: creates SQLite's directory (0700) and file (0600:
/// SQLite gives its `-wal` and `-shm` files the database file's mode) and turns on WAL (a
/// persistent, per-database setting) before anything else.
fn open(url: &DatabaseUrl) -> anyhow::Result<(Manager, DbConnection)> {
    let target = match url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::data_dir::create_dir(parent)?;
            }
            crate::data_dir::file_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("creating the SQLite database {}", path.display()))?;
            Target::Sqlite(path.clone())
        }
        DatabaseUrl::Postgres(url) => Target::Postgres(secrecy::ExposeSecret::expose_secret(url).to_owned()),
    };
    // Never the PostgreSQL URL: it may hold a password.
    let what = match &target {
        Target::Sqlite(path) => format!("opening the SQLite database {}", path.display()),
        Target::Postgres(_) => "connecting to the database".to_owned(),
    };
    let manager = Manager { target };
    let mut conn = manager.connect().context(what.clone())?;
    if let DbConnection::Sqlite(c) = &mut conn {
        c.batch_execute("PRAGMA journal_mode = WAL;")
            .with_context(|| format!("{what}: enabling WAL mode"))?;
    }
    Ok((manager, conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writes_share_commits_and_a_failed_one_takes_only_its_own_changes_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseUrl::Sqlite(dir.path().join("t.db"))).unwrap();
        db.write(|c| c.batch_execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")).await.unwrap();
        let writes = (0..200i32).map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |c| {
                    c.batch_execute(&format!("INSERT INTO t (n) VALUES ({n})"))?;
                    // Every tenth write fails after changing something: only that change goes.
                    if n % 10 == 0 {
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                    Ok(n)
                })
                .await
            })
        });
        let results = futures_util::future::join_all(writes).await;
        let failed = results.iter().filter(|r| r.as_ref().unwrap().is_err()).count();
        assert_eq!(failed, 20);
        let count: i64 = db
            .run(|c| {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT COUNT(*) FROM t)"))
                    .get_result(c)
            })
            .await
            .unwrap();
        assert_eq!(count, 180);
    }
}
