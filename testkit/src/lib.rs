//! Test harness: every test gets its own JetStream stream (and subject prefix) and its own
//! Postgres database, on the NATS and Postgres that `scripts/test.sh` started (their URLs
//! arrive in `CHAT_TEST_NATS_URL` and `CHAT_TEST_DATABASE_URL`), or its own embedded log and
//! SQLite store in a temporary directory. [`on_both_backends!`] runs one scenario on each.

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

/// What a scenario runs on: a log, its subjects, and a read store, all its own.
pub struct Setup<L> {
    pub log: L,
    pub subjects: Subjects,
    pub store: readstore::ReadStore,
    /// Snapshots beside the log (an object store of the stream and the node's copies, or a
    /// directory).
    pub snapshots: eventlog::Snapshots,
    /// The embedded setup's directory, removed when the setup is dropped.
    pub dir: Option<tempfile::TempDir>,
    /// Where the JetStream setup's node keeps its snapshot copies, removed when dropped.
    pub copies: Option<tempfile::TempDir>,
}

/// The production pairing: JetStream and Postgres.
pub async fn production() -> anyhow::Result<Setup<JetStreamLog>> {
    let log = log().await?;
    let store = readstore::ReadStore::open(&database_url().await?).await?;
    let copies = tempfile::tempdir()?;
    let snapshots = eventlog::Snapshots::jetstream(
        eventlog::JetStreamSnapshots::open(&log, 1).await?,
        Some(copies.path()),
    );
    Ok(Setup {
        subjects: log.subjects().clone(),
        snapshots,
        log,
        store,
        dir: None,
        copies: Some(copies),
    })
}

/// The embedded pairing (`chat serve` with nothing configured): the file log and SQLite, in
/// a fresh temporary directory.
pub async fn embedded() -> anyhow::Result<Setup<eventlog::EmbeddedLog>> {
    let dir = tempfile::tempdir()?;
    let log = eventlog::EmbeddedLog::open(&dir.path().join("events.log"))?;
    let store =
        readstore::ReadStore::open(&readstore::sqlite_url(&dir.path().join("read.db"))).await?;
    let snapshots = eventlog::Snapshots::Embedded(eventlog::FileSnapshots::open(
        &dir.path().join("snapshots"),
    )?);
    Ok(Setup {
        log,
        subjects: Subjects::default(),
        snapshots,
        store,
        dir: Some(dir),
        copies: None,
    })
}

/// Declares, for each `scenario(setup: Setup<L>) -> anyhow::Result<()>` generic over the log,
/// a module of that name with two tests: `jetstream_postgres` and `embedded_sqlite`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn jetstream_postgres() -> anyhow::Result<()> {
                super::$scenario($crate::production().await?).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded_sqlite() -> anyhow::Result<()> {
                super::$scenario($crate::embedded().await?).await
            }
        }
    )*};
}
