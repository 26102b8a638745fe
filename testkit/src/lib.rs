//! Test harness: every test gets its own JetStream stream (and subject prefix) and its own
//! Postgres database, on the NATS and Postgres that `scripts/test.sh` started (their URLs
//! arrive in `CHAT_TEST_NATS_URL` and `CHAT_TEST_DATABASE_URL`).

use anyhow::Context;
use eventlog::JetStreamLog;
use events::Subjects;

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!(
            "{name} is not set: run the tests with scripts/test.sh, which starts NATS and Postgres"
        )
    })
}

/// A unique lowercase token for names of this test's stream, prefix and database.
pub fn unique() -> String {
    format!("t{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A stream and subject prefix no other test uses.
pub fn subjects() -> Subjects {
    let u = unique();
    Subjects {
        stream: u.to_uppercase(),
        prefix: u,
    }
}

pub fn nats_url() -> anyhow::Result<String> {
    env("CHAT_TEST_NATS_URL")
}

/// A connected client and a fresh log on its own stream.
pub async fn log() -> anyhow::Result<JetStreamLog> {
    let client = async_nats::connect(nats_url()?).await?;
    Ok(JetStreamLog::open(client, subjects(), 1).await?)
}

/// The URL of a fresh, empty database.
pub async fn database_url() -> anyhow::Result<String> {
    use sqlx::Connection;
    let admin = env("CHAT_TEST_DATABASE_URL")?;
    let name = unique();
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    // `name` is generated above from a ULID: lowercase letters and digits only.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let (base, _) = admin
        .rsplit_once('/')
        .context("CHAT_TEST_DATABASE_URL has no database name")?;
    Ok(format!("{base}/{name}"))
}
