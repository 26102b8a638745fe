//! The projector: follows the event log from its checkpoint and builds the Postgres read
//! models. The checkpoint is written in the same transaction as the rows, positions at or
//! below it are skipped, and any error restarts from the checkpoint (never skipping forward),
//! so each commit takes effect exactly once. One active instance per projection, through a
//! Postgres advisory lock held for as long as it runs.
//!
//! Must not serve clients.

pub mod chat;
pub mod runner;

pub use runner::{Fault, Projector, ProjectorConfig, checkpoint};

/// Applies the read-model migrations (creating the database when it does not exist).
pub async fn migrate(database_url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    if !sqlx::Postgres::database_exists(database_url).await? {
        sqlx::Postgres::create_database(database_url).await?;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(database_url)
        .await?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}
