//! Database plumbing shared by every feature: one connection type over SQLite and
//! PostgreSQL, the embedded migrations of both, a small r2d2 pool, and `Db::run`, the only
//! way request and background code touches the database (always on a blocking thread).
//!
//! Features own their queries (`nodes::repo`); this module knows nothing about them.

pub mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

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
    /// SQLite allows one writer; serializing writers in-process means a write transaction
    /// never meets `SQLITE_BUSY` half-way (readers are never blocked thanks to WAL).
    write_lock: Option<Arc<std::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

impl Db {
    /// Connects, runs pending migrations, then builds the pool.
    pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Db> {
        let (manager, mut conn) = open(url)?;
        run_migrations(&mut conn)?;
        drop(conn);

        let sqlite = matches!(manager.target, Target::Sqlite(_));
        let pool = Pool::builder()
            .max_size(if sqlite { 4 } else { 10 })
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .context("building the database pool")?;
        Ok(Db { pool, write_lock: sqlite.then(|| Arc::new(std::sync::Mutex::new(()))) })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        if self.write_lock.is_some() { "sqlite" } else { "postgres" }
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
            f(&mut conn).map_err(DbError::Query)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs `f` inside a transaction, as the only writer on SQLite.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    {
        let lock = self.write_lock.clone();
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            // The lock first: a writer waiting its turn must not hold a pooled connection
            // that readers could use.
            let _guard = lock.as_ref().map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
            let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
            (*conn).transaction(f).map_err(DbError::Query)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }
}

diesel::define_sql_function! {
    /// SQL `lower`, on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
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

/// Applies every pending migration of the connection's backend.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<()> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
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

/// The first connection to a database: creates SQLite's directory and turns on WAL (a
/// persistent, per-database setting) before anything else.
fn open(url: &DatabaseUrl) -> anyhow::Result<(Manager, DbConnection)> {
    let target = match url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            Target::Sqlite(path.clone())
        }
        DatabaseUrl::Postgres(url) => Target::Postgres(secrecy::ExposeSecret::expose_secret(url).to_owned()),
    };
    let manager = Manager { target };
    let mut conn = manager.connect().context("connecting to the database")?;
    if let DbConnection::Sqlite(c) = &mut conn {
        c.batch_execute("PRAGMA journal_mode = WAL;").context("enabling SQLite WAL mode")?;
    }
    Ok((manager, conn))
}
