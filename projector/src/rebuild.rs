//! Rebuilding a projection: replay the whole log into fresh tables (a schema `rebuild_<name>`
//! in Postgres, a file `rebuild_<name>.db` beside the embedded store) while the current tables
//! keep serving, then swap them in.
//!
//! - Safe to interrupt: the fresh tables keep their own checkpoint; rerunning resumes there.
//! - The swap takes the live projector's batch lock (Postgres: its advisory lock; SQLite: the
//!   write lock every batch takes), so no live batch commits during it; it runs only when the
//!   rebuilt tables have reached the live checkpoint (else it catches up again and retries),
//!   replaces the live tables by the rebuilt ones (Postgres: moves them between schemas;
//!   SQLite: copies them over) and sets the live checkpoint to the rebuilt one, all in one
//!   transaction. Readers never see a mix.
//! - Swapped-in tables are ready to serve at once: Postgres builds their GIN (full-text)
//!   indexes in one pass after the replay instead of row by row, and both engines gather
//!   planner statistics before the first query plans them.

use crate::runner::{ProjectorConfig, RunError, batch_lock_key, read_checkpoint, write_checkpoint};
use crate::{Projection, Projector};
use eventlog::EventLog;
use readstore::{Backend, ReadStore};
use sqlx::{AnyConnection, Connection};
use std::path::PathBuf;

pub fn schema_of(name: &str) -> String {
    format!("rebuild_{name}")
}

#[derive(Debug)]
pub struct Rebuilt {
    pub checkpoint: u64,
    pub swapped: bool,
}

/// The file an embedded store rebuilds projection `name` into.
pub fn file_of(store: &ReadStore, name: &str) -> Result<PathBuf, RunError> {
    let live = readstore::sqlite_path(store.url()).ok_or_else(|| {
        RunError::Db(sqlx::Error::Configuration(
            "an in-memory store cannot be rebuilt".into(),
        ))
    })?;
    Ok(live.with_file_name(format!("{}.db", schema_of(name))))
}

/// Prepares the fresh tables (once), replays into them up to the log's current end, then (with
/// `swap`) swaps them in. `progress(done, target)` is called after each batch.
pub async fn rebuild<L: EventLog, P: Projection + Clone>(
    projection: P,
    log: L,
    store: &ReadStore,
    filter: String,
    keyring: std::sync::Arc<keys::Keyring>,
    swap: bool,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Rebuilt, RunError> {
    let name = projection.name();
    let schema = schema_of(name);
    let fresh = prepare(store, &projection).await?;
    let config = ProjectorConfig {
        batch_size: 2000,
        batch_events: 10_000,
        fault: None,
        ..ProjectorConfig::default()
    };
    let mut projector = Projector::new(
        projection.clone(),
        log.clone(),
        fresh.clone(),
        filter,
        config,
        keyring,
    )
    .in_schema(&schema);
    let mut target = log.last_position().await?;
    loop {
        let done = projector
            .catch_up_to(target, &mut |d| progress(d, target))
            .await?;
        if !swap {
            return Ok(Rebuilt {
                checkpoint: done,
                swapped: false,
            });
        }
        let swapped = match store.backend() {
            Backend::Postgres => {
                create_deferred_indexes(store, &schema).await?;
                analyze(store, &projection, &schema).await?;
                swap_schema(store, &projection, done).await?
            }
            Backend::Sqlite => swap_file(store, &projection, done).await?,
        };
        match swapped {
            Swap::Behind(live) => target = live,
            Swap::Done => {
                fresh.close().await;
                if store.backend() == Backend::Sqlite {
                    remove_file(&file_of(store, name)?);
                    analyze(store, &projection, "main").await?;
                }
                return Ok(Rebuilt {
                    checkpoint: done,
                    swapped: true,
                });
            }
        }
    }
}

enum Swap {
    Done,
    /// The live projection moved on while we replayed: catch up to this position, outside the
    /// lock, and try again.
    Behind(u64),
}

/// Postgres: moves the live tables out and the rebuilt ones in, between schemas.
async fn swap_schema<P: Projection>(
    store: &ReadStore,
    projection: &P,
    done: u64,
) -> Result<Swap, RunError> {
    let name = projection.name();
    let schema = schema_of(name);
    let mut tx = store.begin_write(batch_lock_key("public", name)).await?;
    let live = read_checkpoint(&mut tx, name).await?;
    if done < live {
        tx.rollback().await?;
        return Ok(Swap::Behind(live));
    }
    let retired = format!("retired_{name}");
    let mut stmt = format!("DROP SCHEMA IF EXISTS {retired} CASCADE; CREATE SCHEMA {retired};");
    for table in projection.tables(Backend::Postgres) {
        stmt.push_str(&format!(
            "ALTER TABLE public.{table} SET SCHEMA {retired}; ALTER TABLE {schema}.{table} SET SCHEMA public;"
        ));
    }
    // `schema` and `retired` are prefixes and a projection's constant name.
    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
        .execute(&mut *tx)
        .await?;
    write_checkpoint(&mut tx, name, done).await?;
    let stmt = format!("DROP SCHEMA {retired} CASCADE; DROP SCHEMA {schema} CASCADE;");
    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Swap::Done)
}

/// SQLite: copies the rebuilt tables over the live ones, from the attached rebuild file.
async fn swap_file<P: Projection>(
    store: &ReadStore,
    projection: &P,
    done: u64,
) -> Result<Swap, RunError> {
    let name = projection.name();
    let file = file_of(store, name)?;
    // ATTACH cannot run inside a transaction; a connection of its own keeps the attachment
    // away from the pool.
    let mut conn = store.dedicated().await?;
    sqlx::query("ATTACH DATABASE $1 AS rebuilt")
        .bind(file.display().to_string())
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let live = read_checkpoint(&mut tx, name).await?;
    if done < live {
        tx.rollback().await?;
        conn.close().await?;
        return Ok(Swap::Behind(live));
    }
    let mut stmt = String::new();
    for table in projection.tables(Backend::Sqlite) {
        // Both sides were created by the same DDL: same columns, same order. A virtual table
        // (FTS5) lists its columns under `*` but not its rowid, which the rows it indexes refer
        // to: it is copied with it.
        let (into, select) = match virtual_columns(&mut tx, table).await? {
            Some(columns) => {
                let list = format!("rowid, {}", columns.join(", "));
                (format!(" ({list})"), list)
            }
            None => (String::new(), "*".to_owned()),
        };
        stmt.push_str(&format!(
            "DELETE FROM main.{table}; INSERT INTO main.{table}{into} SELECT {select} FROM rebuilt.{table};"
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
        .execute(&mut *tx)
        .await?;
    write_checkpoint(&mut tx, name, done).await?;
    tx.commit().await?;
    conn.close().await?;
    Ok(Swap::Done)
}

/// Postgres: drops the fresh tables' GIN indexes (full-text search), keeping their
/// definitions in `deferred_indexes` to be created once the replay is done: built in one pass
/// over a million rows a GIN index takes a third of the time its row-by-row upkeep does.
/// Other indexes stay: the replay's own updates use them, and a unique one decides conflicts.
async fn defer_gin_indexes(tx: &mut AnyConnection, schema: &str) -> Result<(), sqlx::Error> {
    let gin: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
         WHERE schemaname = $1 AND indexdef LIKE '% USING gin %'",
    )
    .bind(schema)
    .fetch_all(&mut *tx)
    .await?;
    let mut stmt = format!("CREATE TABLE {schema}.deferred_indexes (def TEXT NOT NULL);");
    for (name, _) in &gin {
        stmt.push_str(&format!("DROP INDEX {schema}.\"{name}\";"));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
        .execute(&mut *tx)
        .await?;
    for (_, def) in gin {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.deferred_indexes (def) VALUES ($1)"
        )))
        .bind(def)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Postgres: creates the indexes [`defer_gin_indexes`] set aside (once; an interrupted rebuild
/// creates them when it finishes).
async fn create_deferred_indexes(store: &ReadStore, schema: &str) -> Result<(), sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    // A rebuild interrupted by an older version made no such table.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {schema}.deferred_indexes (def TEXT NOT NULL)"
    )))
    .execute(&mut *tx)
    .await?;
    let defs: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {schema}.deferred_indexes RETURNING def"
    )))
    .fetch_all(&mut *tx)
    .await?;
    // A GIN build gathers entries in this much memory before writing them out: 256 MB took a
    // million-message index from 9.1 s to 8.2 s (64 MB is the default), for this transaction only.
    sqlx::raw_sql("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    for (def,) in defs {
        // As `pg_indexes` wrote it for the rebuild's own tables.
        sqlx::raw_sql(sqlx::AssertSqlSafe(def))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Gathers the planner's statistics on the tables of `projection` in `schema`: rebuilt tables
/// are new to the planner, and without statistics it plans their first queries blind (a
/// search over a fresh million-row index took 100 ms instead of 10 until autovacuum came).
/// SQLite's virtual tables keep none and are skipped.
async fn analyze<P: Projection>(
    store: &ReadStore,
    projection: &P,
    schema: &str,
) -> Result<(), sqlx::Error> {
    let backend = store.backend();
    for table in projection.tables(backend) {
        if backend == Backend::Sqlite {
            let (sql,): (String,) =
                sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                    .bind(table)
                    .fetch_one(store.pool())
                    .await?;
            if is_virtual(&sql) {
                continue;
            }
        }
        // `schema` is a prefix and a projection's constant name, or `main`.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {schema}.{table}")))
            .execute(store.pool())
            .await?;
    }
    Ok(())
}

fn is_virtual(create: &str) -> bool {
    create
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("CREATE VIRTUAL TABLE")
}

/// The columns of `table` in the attached rebuild file when it is a virtual table.
async fn virtual_columns(
    tx: &mut AnyConnection,
    table: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let (sql,): (String,) =
        sqlx::query_as("SELECT sql FROM rebuilt.sqlite_master WHERE type = 'table' AND name = $1")
            .bind(table)
            .fetch_one(&mut *tx)
            .await?;
    if !is_virtual(&sql) {
        return Ok(None);
    }
    let columns: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM pragma_table_info($1, 'rebuilt') ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
    Ok(Some(columns.into_iter().map(|(c,)| c).collect()))
}

fn remove_file(file: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

/// Opens the fresh tables of `projection`, creating them unless an interrupted rebuild already
/// did (tables are created in one transaction).
async fn prepare<P: Projection>(store: &ReadStore, projection: &P) -> Result<ReadStore, RunError> {
    let schema = schema_of(projection.name());
    let fresh = match store.backend() {
        Backend::Postgres => {
            if !schema_exists(store, &schema).await? {
                let mut tx = store.pool().begin().await?;
                // `schema` is `rebuild_` and a projection's constant name.
                let head = format!("CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema};");
                sqlx::raw_sql(sqlx::AssertSqlSafe(head))
                    .execute(&mut *tx)
                    .await?;
                create_tables(&mut tx, projection).await?;
                defer_gin_indexes(&mut tx, &schema).await?;
                tx.commit().await?;
            }
            ReadStore::connect(store.url(), 2, Some(&schema)).await?
        }
        Backend::Sqlite => {
            let url = readstore::sqlite_url(&file_of(store, projection.name())?);
            let fresh = ReadStore::connect(&url, 2, None).await?;
            let (tables,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'projection_checkpoints'",
            )
            .fetch_one(fresh.pool())
            .await?;
            if tables == 0 {
                let mut tx = fresh.pool().begin().await?;
                create_tables(&mut tx, projection).await?;
                tx.commit().await?;
            }
            fresh
        }
    };
    Ok(fresh)
}

async fn create_tables<P: Projection>(
    tx: &mut AnyConnection,
    projection: &P,
) -> Result<(), sqlx::Error> {
    for ddl in projection.ddl(Backend::of_connection(tx)) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*ddl))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn schema_exists(store: &ReadStore, schema: &str) -> Result<bool, sqlx::Error> {
    let exists: Option<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(schema)
    .fetch_optional(store.pool())
    .await?;
    Ok(exists.is_some())
}

/// The checkpoint of an unfinished rebuild, if one is under way.
pub async fn pending(store: &ReadStore, name: &str) -> Result<Option<u64>, sqlx::Error> {
    let fresh = match store.backend() {
        Backend::Postgres => {
            if !schema_exists(store, &schema_of(name)).await? {
                return Ok(None);
            }
            ReadStore::connect(store.url(), 1, Some(&schema_of(name))).await?
        }
        Backend::Sqlite => {
            let Ok(file) = file_of(store, name) else {
                return Ok(None);
            };
            if !file.exists() {
                return Ok(None);
            }
            ReadStore::connect(&readstore::sqlite_url(&file), 1, None).await?
        }
    };
    let at = crate::checkpoint(fresh.pool(), name).await;
    fresh.close().await;
    match (at, store.backend()) {
        (Ok(at), _) => Ok(Some(at)),
        // A rebuild file created but interrupted before its tables were: nothing done yet.
        (Err(_), Backend::Sqlite) => Ok(Some(0)),
        (Err(e), Backend::Postgres) => Err(e),
    }
}
