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

/// A keyring over a key file of its own (removed when dropped), for tests that seal what
/// they write without a setup.
pub struct TestKeys {
    pub keyring: std::sync::Arc<keys::Keyring>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestKeys {
    type Target = std::sync::Arc<keys::Keyring>;
    fn deref(&self) -> &Self::Target {
        &self.keyring
    }
}

pub fn keyring() -> anyhow::Result<TestKeys> {
    let dir = tempfile::tempdir()?;
    let store = keys::KeyStores::File(keys::FileKeys::open(dir.path())?);
    Ok(TestKeys {
        keyring: new_keyring(store),
        _dir: dir,
    })
}

fn new_keyring(store: keys::KeyStores) -> std::sync::Arc<keys::Keyring> {
    std::sync::Arc::new(keys::Keyring::new(
        store,
        keys::MasterKey::generate(),
        keys::DEFAULT_PERIOD_MS,
    ))
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
    /// The key store beside the log (a bucket of the stream, or a file in `dir`).
    pub keyring: std::sync::Arc<keys::Keyring>,
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
    let keys = keys::JetStreamKeys::open(log.context().client(), &log.subjects().stream, 1).await?;
    let keyring = new_keyring(keys::KeyStores::JetStream(std::sync::Arc::new(keys)));
    Ok(Setup {
        keyring,
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
    let keyring = new_keyring(keys::KeyStores::File(keys::FileKeys::open(
        &dir.path().join("keys"),
    )?));
    Ok(Setup {
        keyring,
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

/// A sealed field that no key opens, its "ciphertext" the text's bytes: for tests of the
/// command side, which never opens what it stores.
pub fn unopened(text: &str) -> events::SealedV1 {
    events::SealedV1 {
        user: events::UserId::parse("test-sealer").expect("a valid id"),
        period: Some(0),
        nonce: [0; 24],
        ciphertext: text.as_bytes().to_vec(),
    }
}

/// An upsert of `name` sealed with [`unopened`] fields (the fingerprint is the name's bytes).
pub fn unopened_upsert(name: &str) -> command::domain::UserCommand {
    let mut fingerprint = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        fingerprint[i % 32] ^= b;
    }
    command::domain::UserCommand::Upsert {
        name: name.to_owned(),
        avatar_url: None,
        sealed: events::ProfileV2 {
            name: unopened(name),
            avatar_url: None,
            fingerprint,
        },
    }
}
