//! Rebuilding a projection: replay the whole log into fresh tables in a schema of their own
//! (`rebuild_<name>`) while the current tables keep serving, then swap them in.
//!
//! - Safe to interrupt: the rebuild schema keeps its own checkpoint; rerunning resumes there.
//! - The swap takes the live projector's batch lock, so no live batch commits during it; it
//!   runs only when the rebuilt tables have reached the live checkpoint (else it catches up
//!   again and retries), moves the old tables out and the new ones in, and sets the live
//!   checkpoint to the rebuilt one, all in one transaction. Readers wait for it, never see a
//!   mix.

use crate::runner::{ProjectorConfig, RunError, batch_lock_key};
use crate::{Projection, Projector};
use eventlog::EventLog;
use sqlx::{Connection, PgPool};

pub fn schema_of(name: &str) -> String {
    format!("rebuild_{name}")
}

#[derive(Debug)]
pub struct Rebuilt {
    pub checkpoint: u64,
    pub swapped: bool,
}

/// Prepares the rebuild schema (once), replays into it up to the log's current end, then (with
/// `swap`) swaps it in. `progress(done, target)` is called after each batch.
pub async fn rebuild<L: EventLog, P: Projection + Clone>(
    projection: P,
    log: L,
    pool: PgPool,
    filter: String,
    swap: bool,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Rebuilt, RunError> {
    let name = projection.name();
    let schema = schema_of(name);
    prepare(&pool, &projection, &schema).await?;
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", schema.as_str())]);
    let rebuild_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?;
    let config = ProjectorConfig {
        batch_size: 2000,
        fault: None,
    };
    let mut projector = Projector::new(
        projection.clone(),
        log.clone(),
        rebuild_pool.clone(),
        filter,
        config,
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
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(batch_lock_key("public", name))
            .execute(&mut *tx)
            .await?;
        let live: Option<(i64,)> = sqlx::query_as(
            "SELECT last_position FROM public.projection_checkpoints WHERE projection = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let live = live.map_or(0, |(p,)| u64::try_from(p).unwrap_or(0));
        if done < live {
            // The live projection moved on while we replayed: catch up again, outside the lock.
            tx.rollback().await?;
            target = live;
            continue;
        }
        let retired = format!("retired_{name}");
        for stmt in [
            format!("DROP SCHEMA IF EXISTS {retired} CASCADE"),
            format!("CREATE SCHEMA {retired}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&mut *tx)
                .await?;
        }
        for table in projection.tables() {
            let stmt = format!(
                "ALTER TABLE public.{table} SET SCHEMA {retired}; ALTER TABLE {schema}.{table} SET SCHEMA public;"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO public.projection_checkpoints (projection, last_position) VALUES ($1, $2)
             ON CONFLICT (projection) DO UPDATE SET last_position = $2",
        )
        .bind(name)
        .bind(i64::try_from(done).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        let stmt = format!("DROP SCHEMA {retired} CASCADE; DROP SCHEMA {schema} CASCADE;");
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        rebuild_pool.close().await;
        return Ok(Rebuilt {
            checkpoint: done,
            swapped: true,
        });
    }
}

/// Creates the rebuild schema with the projection's tables, unless an interrupted rebuild
/// already did (schema and tables are created in one transaction).
async fn prepare<P: Projection>(
    pool: &PgPool,
    projection: &P,
    schema: &str,
) -> Result<(), RunError> {
    let exists: Option<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(schema)
    .fetch_optional(pool)
    .await?;
    if exists.is_some() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // `schema` is `rebuild_` and a projection's constant name.
    let head = format!("CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema};");
    sqlx::raw_sql(sqlx::AssertSqlSafe(head))
        .execute(&mut *tx)
        .await?;
    for ddl in projection.ddl() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*ddl))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The checkpoint of an unfinished rebuild, if one is under way.
pub async fn pending(pool: &PgPool, name: &str) -> Result<Option<u64>, sqlx::Error> {
    let schema = schema_of(name);
    let exists: Option<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&schema)
    .fetch_optional(pool)
    .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let stmt =
        format!("SELECT last_position FROM {schema}.projection_checkpoints WHERE projection = $1");
    let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(stmt))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(Some(row.map_or(0, |(p,)| u64::try_from(p).unwrap_or(0))))
}
