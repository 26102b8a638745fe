//! Configuration: one typed struct read once from flags and the environment (the contract's
//! variables), passed to whatever needs it. No globals.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// NATS server with JetStream (2.12 or newer).
    #[arg(long, env = "CHAT_NATS_URL")]
    pub nats_url: Option<String>,
    /// Postgres database of the read models.
    #[arg(long, env = "CHAT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where embedded storage lives.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HS256 secret of the JWTs.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// Origins allowed for REST and both Socket.IO transports, comma-separated.
    #[arg(
        long,
        env = "CHAT_ALLOWED_ORIGINS",
        default_value = "http://localhost:5173",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// `message:send` per user per minute (0 = off).
    #[arg(long, env = "CHAT_RATE_MESSAGES_PER_MIN", default_value_t = 30)]
    pub rate_messages_per_min: u32,
    /// Events per socket per minute (0 = off).
    #[arg(long, env = "CHAT_RATE_EVENTS_PER_MIN", default_value_t = 600)]
    pub rate_events_per_min: u32,
    /// JetStream stream name (tests give each run its own).
    #[arg(long, env = "CHAT_STREAM", default_value = "CHAT_EVENTS")]
    pub stream: String,
    /// Subject prefix of the stream's subjects.
    #[arg(long, env = "CHAT_SUBJECT_PREFIX", default_value = "chat")]
    pub subject_prefix: String,
    /// Replicas of the stream (3 in a three-node NATS cluster).
    #[arg(long, env = "CHAT_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// How long a disconnected socket still counts in its rooms, so that a reconnect within it
    /// shows no `user:offline` / `user:online` (0 = off).
    #[arg(long, env = "CHAT_PRESENCE_GRACE_MS", default_value_t = 2000)]
    pub presence_grace_ms: u64,
    /// Demo mode (`chat serve --demo`): `POST /api/demo/session` signs anyone in by name.
    #[arg(skip)]
    pub demo: bool,
    /// Memory for aggregates cached by a command node, in MiB; least recently used go first
    /// (0: only those in use, so every command reloads; the tests run a pass so).
    #[arg(long, env = "CHAT_CACHE_MB", default_value_t = command::executor::DEFAULT_CACHE_MB)]
    pub cache_mb: usize,
    /// Master key wrapping every data key (32 bytes, hex or base64). Required with NATS;
    /// embedded mode creates one in the data dir (`master-key`). Losing it loses every sealed
    /// field: back it up apart from the log.
    #[arg(long, env = "CHAT_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// Length of a conversation key period, in seconds: retention destroys a period's key
    /// once the whole period is past it.
    #[arg(long, env = "CHAT_KEY_PERIOD_SECS", default_value_t = 3600)]
    pub key_period_secs: u64,
    /// How often the retention sweeper expires what is due, in seconds (one active sweeper in
    /// a deployment, on a command node).
    #[arg(long, env = "CHAT_RETENTION_SWEEP_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_sweep_secs: u64,
    /// Where the outbound webhook POSTs every committed event, in log order (contract 4.3;
    /// off when unset). Requires `CHAT_WEBHOOK_SECRET`.
    #[arg(long, env = "CHAT_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the webhook's `X-Chat-Signature`.
    #[arg(long, env = "CHAT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,
    /// The longest wait between two attempts of a failing webhook delivery, in milliseconds
    /// (the wait doubles from 100 ms up to it).
    #[arg(long, env = "CHAT_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub webhook_backoff_max_ms: u64,
}

impl Config {
    pub fn subjects(&self) -> events::Subjects {
        events::Subjects {
            stream: self.stream.clone(),
            prefix: self.subject_prefix.clone(),
        }
    }

    pub fn nats_url(&self) -> anyhow::Result<&str> {
        self.nats_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "CHAT_NATS_URL is not set. Embedded storage is not built yet: start NATS and \
                 Postgres with scripts/run.sh, or set CHAT_NATS_URL and CHAT_DATABASE_URL"
            )
        })
    }

    /// The read-model store: `CHAT_DATABASE_URL` (Postgres), else the embedded SQLite file
    /// `<CHAT_DATA_DIR>/read.db`.
    pub fn read_store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => readstore::sqlite_url(&self.data_dir.join("read.db")),
        }
    }

    /// The projections this node runs: the webhook among them when `CHAT_WEBHOOK_URL` is set.
    pub fn projections(&self) -> anyhow::Result<projector::Settings> {
        let webhook = match (&self.webhook_url, &self.webhook_secret) {
            (None, _) => None,
            (Some(url), Some(secret)) if !secret.0.is_empty() => Some(
                projector::webhook::Target::new(
                    url,
                    &secret.0,
                    std::time::Duration::from_millis(self.webhook_backoff_max_ms),
                )
                .map_err(|e| anyhow::anyhow!("CHAT_WEBHOOK_URL: {e}"))?,
            ),
            (Some(_), _) => anyhow::bail!("CHAT_WEBHOOK_SECRET is required with CHAT_WEBHOOK_URL"),
        };
        Ok(projector::Settings { webhook })
    }

    pub fn jwt_secret(&self) -> anyhow::Result<&[u8]> {
        match &self.jwt_secret {
            Some(s) if !s.0.is_empty() => Ok(s.0.as_bytes()),
            _ => anyhow::bail!("CHAT_JWT_SECRET is required with NATS/Postgres"),
        }
    }
}

/// The master key: `CHAT_MASTER_KEY`; in embedded mode, else `<data dir>/master-key`, created
/// on first start with mode 0600.
pub fn master_key(config: &Config) -> anyhow::Result<keys::MasterKey> {
    use anyhow::Context;
    if let Some(s) = config.master_key.as_ref().filter(|s| !s.0.is_empty()) {
        return keys::MasterKey::parse(&s.0).context("CHAT_MASTER_KEY");
    }
    anyhow::ensure!(
        config.nats_url.is_none(),
        "CHAT_MASTER_KEY is required with NATS (32 bytes, hex or base64)"
    );
    let path = config.data_dir.join("master-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return keys::MasterKey::parse(&existing).with_context(|| path.display().to_string());
    }
    let key = keys::MasterKey::generate();
    create_secret_file(config, &path, key.to_hex().as_bytes())?;
    Ok(key)
}

/// Writes a new secret file under the data dir, readable by its owner alone, and syncs it.
fn create_secret_file(
    config: &Config,
    path: &std::path::Path,
    secret: &[u8],
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret)?;
    file.sync_all()?;
    Ok(())
}

/// The JWT secret of embedded mode: `CHAT_JWT_SECRET` when set, else `<data dir>/jwt-secret`,
/// created on first start (two ULIDs: 160 random bits) with mode 0600.
pub fn embedded_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = config.jwt_secret.as_ref().filter(|s| !s.0.is_empty()) {
        return Ok(s.0.as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    let secret = format!("{}{}", ulid::Ulid::new(), ulid::Ulid::new());
    create_secret_file(config, &path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}
