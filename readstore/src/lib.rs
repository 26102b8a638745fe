//! The read-model store: where the projector writes and the query side reads.
//!
//! Two backends, chosen by the URL in one place ([`ReadStore::open`]): PostgreSQL
//! (`postgres://…`, production, shared by every node) and SQLite (`sqlite://…`, the embedded
//! mode, one file under `CHAT_DATA_DIR`). Both go through sqlx's `Any` driver, so every
//! projection and every query is written once, in the SQL both engines speak (ADR 9). What
//! differs lives here and nowhere else:
//!
//! - creating the database and applying the migrations (the same files serve both);
//! - starting a write transaction ([`ReadStore::begin_write`]): SQLite takes its single write
//!   lock up front (`BEGIN IMMEDIATE`) so two writers never deadlock on a lock upgrade;
//!   Postgres takes the caller's advisory lock inside the transaction;
//! - session locks ([`ReadStore::lock_session`]): a Postgres advisory lock on a connection of
//!   its own; with SQLite, one process owns the store (the embedded log's file lock), so an
//!   in-process lock serves.
//!
//! Portable SQL rules (checked by running every test on both backends): `$1`-style parameters,
//! no arrays (`ANY`, `UNNEST`): build `IN (…)` lists and multi-row `VALUES` with
//! [`placeholders`]; no `GREATEST`, no data-modifying CTEs; no `BOOLEAN` columns in a
//! `SELECT` list (the `Any` driver cannot decode SQLite booleans: select
//! `CASE WHEN b THEN 1 ELSE 0 END`).

pub mod search;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use sqlx::any::AnyRow;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// `postgres` or `sqlite`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }

    /// The backend a connection talks to.
    pub fn of_connection(conn: &AnyConnection) -> Self {
        if conn.backend_name() == "SQLite" {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }

    /// The backend a URL names (`postgres://`/`postgresql://` or `sqlite:`).
    pub fn of(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(sqlx::Error::Configuration(
                format!("unsupported read-store URL (postgres:// or sqlite:): {url}").into(),
            ))
        }
    }
}

/// WAL: readers never wait for the projector. `synchronous = NORMAL`: a power cut may undo the
/// last transactions, checkpoint included, which the projector then repeats from the log; a
/// crashed process loses nothing. `secure_delete`: the text a row loses (an erasure nulls
/// content) is overwritten in the file, not left in a free page.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA secure_delete = ON;";

/// A pool on the read models, and what the backend needs beside it.
#[derive(Clone)]
pub struct ReadStore {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// SQLite only: the session locks held in this process, by key.
    local_locks: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl std::fmt::Debug for ReadStore {
    // Not the URL: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The URL of the embedded store at `path`.
pub fn sqlite_url(path: &std::path::Path) -> String {
    // sqlx percent-decodes the file name: escape what would end or alter it.
    let name = path
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{name}?mode=rwc")
}

impl ReadStore {
    /// Connects, creating the database when it does not exist, and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        let store = Self::connect(url, 16, None).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating, with at most `max` connections; `schema` (Postgres only)
    /// sets the search path, for a rebuild's tables.
    pub async fn connect(url: &str, max: u32, schema: Option<&str>) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let mut url = url.to_owned();
        if let Some(schema) = schema {
            let sep = if url.contains('?') { '&' } else { '?' };
            url.push_str(&format!("{sep}options[search_path]={schema}"));
        }
        if backend == Backend::Postgres {
            create_database(&url).await?;
        } else if let Some(dir) = sqlite_path(&url).and_then(|p| p.parent().map(|d| d.to_owned()))
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(&dir).map_err(sqlx::Error::Io)?;
        }
        // Waiting for a lock is the normal state of a standby projector, not a slow query.
        let options = AnyConnectOptions::from_str(&url)?
            .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
        let mut pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        Ok(Self {
            pool,
            backend,
            url,
            local_locks: Arc::default(),
        })
    }

    /// Applies pending migrations: the files under `migrations/`, the same for both engines,
    /// then those of this engine (`migrations/postgres/` or `migrations/sqlite/`, numbered from
    /// 0100 on). They share sqlx's table, so each set ignores the other's versions.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut shared = sqlx::migrate!("../migrations");
        shared.set_ignore_missing(true);
        shared.run(&self.pool).await?;
        let mut own = match self.backend {
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
        };
        own.set_ignore_missing(true);
        own.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes text the read models no longer hold leave their files (after an erasure):
    /// SQLite overwrites freed cells already (`secure_delete`), but the write-ahead log keeps
    /// older copies of the pages until it is checkpointed and truncated. Postgres leaves dead
    /// row versions to `VACUUM`, which is the operator's (see README, Privacy and retention).
    pub async fn purge_freed(&self) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Starts a transaction that will write, holding `lock` until it ends (Postgres:
    /// `pg_advisory_xact_lock`; SQLite: the database's own write lock, taken at `BEGIN`, which
    /// already serialises every writer).
    pub async fn begin_write(&self, lock: i64) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    /// A connection of its own, outside the pool, set up like the pooled ones.
    pub async fn dedicated(&self) -> Result<AnyConnection, sqlx::Error> {
        let options = AnyConnectOptions::from_str(&self.url)?
            .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
        let mut conn = AnyConnection::connect_with(&options).await?;
        if self.backend == Backend::Sqlite {
            conn.execute(SQLITE_PRAGMAS).await?;
        }
        Ok(conn)
    }

    /// Waits for the session lock `key` and holds it until the guard is dropped or released.
    /// Postgres: an advisory lock on a connection of its own, outside the pool, so that however
    /// the holder ends (error, abort, crash) closing the session releases it.
    pub async fn lock_session(&self, key: i64) -> Result<SessionLock, sqlx::Error> {
        match self.backend {
            Backend::Postgres => {
                let mut conn = self.dedicated().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await?;
                Ok(SessionLock::Postgres(conn))
            }
            Backend::Sqlite => {
                let lock = {
                    let mut locks = self
                        .local_locks
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    locks.entry(key).or_default().clone()
                };
                Ok(SessionLock::Local(lock.lock_owned().await))
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A held session lock (see [`ReadStore::lock_session`]).
#[derive(Debug)]
pub enum SessionLock {
    Postgres(AnyConnection),
    Local(tokio::sync::OwnedMutexGuard<()>),
}

impl SessionLock {
    pub async fn release(self) {
        if let Self::Postgres(conn) = self {
            let _ = conn.close().await;
        }
    }
}

/// The file of a `sqlite:` URL.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    let path = path
        .replace("%3F", "?")
        .replace("%23", "#")
        .replace("%25", "%");
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// Creates the Postgres database when missing. Several nodes starting at once race to create
/// it; losing the race is fine.
async fn create_database(url: &str) -> Result<(), sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    let url = url.split('?').next().unwrap_or(url);
    if !Any::database_exists(url).await?
        && let Err(e) = Any::create_database(url).await
        && !Any::database_exists(url).await?
    {
        return Err(e);
    }
    Ok(())
}

/// `$first, $first+1, …` (`n` placeholders), for `IN (…)` lists and multi-row `VALUES`.
pub fn placeholders(first: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 4);
    for i in first..first + n {
        if i > first {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&i.to_string());
    }
    s
}

/// `($first, …), (…)`: `rows` tuples of `cols` placeholders each, for multi-row `VALUES`.
pub fn values(first: usize, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        s.push_str(&placeholders(first + r * cols, cols));
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_count_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 1), "$1");
        assert_eq!(placeholders(1, 0), "");
        assert_eq!(values(2, 2, 2), "($2, $3), ($4, $5)");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::of("postgres://h/db").ok(), Some(Backend::Postgres));
        assert_eq!(
            Backend::of("sqlite://./data/read.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert!(Backend::of("mysql://h/db").is_err());
        assert_eq!(
            sqlite_path("sqlite://./data/read.db?mode=rwc"),
            Some("./data/read.db".into())
        );
        let odd = std::path::Path::new("/tmp/a b?c#d%e/read.db");
        assert_eq!(sqlite_path(&sqlite_url(odd)), Some(odd.into()));
    }

    #[tokio::test]
    async fn a_data_dir_with_odd_characters_holds_the_store() -> Result<(), sqlx::Error> {
        let dir = std::env::temp_dir().join(format!("chat rs?#%{}", std::process::id()));
        let path = dir.join("read.db");
        let store = ReadStore::open(&sqlite_url(&path)).await?;
        store.close().await;
        assert!(path.exists(), "{} created", path.display());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
