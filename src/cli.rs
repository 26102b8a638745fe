//! Operator commands that read the log or the read models: `chat events`, `chat audit
//! verify`, `chat projections status|rebuild`, `chat users add`, `chat log copy`. Each works on
//! the log the configuration names (see [`open_log`]).

use crate::config::Config;
use anyhow::Context;
use eventlog::{EventLog, From};
use futures::StreamExt;
use readstore::ReadStore;
use std::io::Write;

/// How a command uses the embedded log: as its owner (no `chat serve` may hold it), or on a
/// snapshot (so that it also works while `chat serve` runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Owner,
    Snapshot,
}

/// The log `config` names: JetStream when `CHAT_NATS_URL` is set, else the embedded file.
/// The one place a command chooses its backend.
pub async fn open_log(config: &Config, access: Access) -> anyhow::Result<eventlog::Log> {
    Ok(if config.nats_url.is_some() {
        eventlog::Log::JetStream(std::sync::Arc::new(crate::app::connect_log(config).await?))
    } else if access == Access::Snapshot {
        eventlog::Log::Embedded(embedded_snapshot(config)?)
    } else {
        eventlog::Log::Embedded(open_embedded(config)?)
    })
}

/// The keyring over the key store `config` names: the bucket beside the stream with NATS,
/// else `<data dir>/keys`. The one place a command chooses it.
pub async fn open_keyring(
    config: &Config,
    access: Access,
) -> anyhow::Result<std::sync::Arc<keys::Keyring>> {
    let master = crate::config::master_key(config)?;
    let store = if config.nats_url.is_some() {
        let nats = crate::app::connect_nats(config).await?;
        keys::KeyStores::JetStream(std::sync::Arc::new(
            keys::JetStreamKeys::open(nats, &config.stream, config.stream_replicas).await?,
        ))
    } else if access == Access::Snapshot {
        keys::KeyStores::File(keys::FileKeys::open_read_only(
            &config.data_dir.join("keys"),
        )?)
    } else {
        keys::KeyStores::File(keys::FileKeys::open(&config.data_dir.join("keys"))?)
    };
    let period_ms = i64::try_from(config.key_period_secs.max(1).saturating_mul(1000))
        .unwrap_or(keys::DEFAULT_PERIOD_MS);
    Ok(std::sync::Arc::new(keys::Keyring::new(
        store, master, period_ms,
    )))
}

/// A read-only snapshot of the embedded log.
pub fn embedded_snapshot(config: &Config) -> anyhow::Result<eventlog::EmbeddedLog> {
    let path = embedded_log_path(config);
    anyhow::ensure!(path.exists(), "no embedded log at {}", path.display());
    Ok(eventlog::EmbeddedLog::snapshot(&path)?)
}

/// The embedded log, for a command run while no `chat serve` holds it.
pub fn open_embedded(config: &Config) -> anyhow::Result<eventlog::EmbeddedLog> {
    let path = embedded_log_path(config);
    eventlog::EmbeddedLog::open(&path).map_err(|e| {
        anyhow::anyhow!(
            "{e}: the embedded log belongs to one process; stop `chat serve` first, or use the REST API"
        )
    })
}

/// `chat events`: JSON lines, one per event, from `from`; with `follow`, without end.
pub async fn events(
    config: &Config,
    conversation: Option<String>,
    from: u64,
    follow: bool,
) -> anyhow::Result<()> {
    let filter = match conversation {
        Some(c) => config
            .subjects()
            .conversation(&events::ConversationId::parse(&c)?),
        None => config.subjects().all(),
    };
    let keyring = open_keyring(config, Access::Snapshot).await?;
    if follow && config.nats_url.is_none() {
        // From outside `chat serve`, the embedded log is read as snapshots: take one every
        // half second and print what is new in it.
        let mut from = from.max(1);
        loop {
            let snapshot = embedded_snapshot(config)?;
            let last = snapshot.last_position().await?;
            if last >= from {
                print_events(&snapshot, &keyring, &filter, from, false).await?;
                from = last + 1;
            }
            drop(snapshot);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    let log = open_log(config, Access::Snapshot).await?;
    print_events(&log, &keyring, &filter, from, follow).await
}

async fn print_events<L: EventLog>(
    log: &L,
    keyring: &keys::Keyring,
    filter: &str,
    from: u64,
    follow: bool,
) -> anyhow::Result<()> {
    let last = log.last_position().await?;
    if !follow && last < from {
        return Ok(());
    }
    let mut commits = log.follow(filter, From::Position(from)).await?;
    let mut out = std::io::stdout().lock();
    loop {
        let next = if follow {
            commits.next().await
        } else {
            tokio::time::timeout(std::time::Duration::from_millis(500), commits.next())
                .await
                .unwrap_or_default()
        };
        let Some(next) = next else { break };
        let stored = next?;
        let keys = keyring.prepare_commit(&stored.commit).await?;
        for entry in events::audit::entries(stored.position, &stored.commit, &keys) {
            writeln!(out, "{entry}")?;
        }
        out.flush()?;
        if !follow && stored.position >= last {
            break;
        }
    }
    Ok(())
}

/// `chat export --user ID | --conversation ID`: the export's lines on stdout.
pub async fn export(
    config: &Config,
    user: Option<String>,
    conversation: Option<String>,
) -> anyhow::Result<()> {
    use command::edge::audit::Export;
    use futures::StreamExt;
    let what = match (user, conversation) {
        (Some(u), _) => Export::User(user_id(&u)?),
        (None, Some(c)) => Export::Conversation(
            events::ConversationId::parse(&c).map_err(|e| anyhow::anyhow!("INVALID_INPUT: {e}"))?,
        ),
        (None, None) => anyhow::bail!("name --user or --conversation"),
    };
    let log = open_log(config, Access::Snapshot).await?;
    let keyring = open_keyring(config, Access::Snapshot).await?;
    let mut lines = command::edge::audit::export_lines(log, &config.subjects(), keyring, what);
    let mut out = std::io::stdout().lock();
    while let Some(line) = lines.next().await {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Counts the sealed fields of each commit a verification walks (opened with the keys as
/// they are now).
struct CountSealed {
    /// `None`: no master key here; the chains are verified all the same.
    keyring: Option<std::sync::Arc<keys::Keyring>>,
    fields: events::audit::SealedFields,
    /// Commits whose keys could not be read (the key store unreachable, a damaged key).
    unreadable: u64,
}

impl eventlog::verify::Inspect for CountSealed {
    fn inspect<'a>(
        &'a mut self,
        stored: &'a eventlog::StoredCommit,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(keyring) = &self.keyring else { return };
            match keyring.prepare_commit(&stored.commit).await {
                Ok(keys) => self.fields.add(&stored.commit, &keys),
                Err(e) => {
                    tracing::warn!(position = stored.position, error = %e, "cannot read the keys of a commit");
                    self.unreadable += 1;
                }
            }
        })
    }
}

/// `chat audit verify`: true when every chain is intact. Sealed fields that no longer open
/// (erased, expired) are reported, never a failure: the chains cover their ciphertext.
pub async fn verify(config: &Config) -> anyhow::Result<bool> {
    let filter = config.subjects().all();
    let log = open_log(config, Access::Snapshot).await?;
    let keyring = match open_keyring(config, Access::Snapshot).await {
        Ok(k) => Some(k),
        Err(e) => {
            println!("sealed fields not counted: {e:#}");
            None
        }
    };
    let mut count = CountSealed {
        keyring,
        fields: Default::default(),
        unreadable: 0,
    };
    let outcome = eventlog::verify::verify_log_inspecting(&log, &filter, &mut count).await?;
    match outcome {
        eventlog::verify::Outcome::Intact {
            commits,
            events,
            aggregates,
        } => {
            println!(
                "log intact: {commits} commits, {events} events, {aggregates} aggregates verified"
            );
            let f = count.fields;
            if count.keyring.is_some() {
                println!(
                    "sealed fields: {} open, {} erased, {} expired (no longer opened: their keys are destroyed)",
                    f.opened, f.erased, f.expired
                );
            }
            if count.unreadable > 0 {
                println!(
                    "the keys of {} commits could not be read: their sealed fields are not counted",
                    count.unreadable
                );
            }
            Ok(true)
        }
        eventlog::verify::Outcome::Broken(b) => {
            println!("BROKEN at position {}: {b}", b.position());
            Ok(false)
        }
    }
}

/// `chat projections status`.
pub async fn status(config: &Config) -> anyhow::Result<()> {
    let last = open_log(config, Access::Snapshot)
        .await?
        .last_position()
        .await?;
    let store = ReadStore::open(&config.read_store_url())
        .await
        .context("read-model store")?;
    println!("log position {last}");
    for name in projector::registry::enabled(&config.projections()?).map(|r| r.name) {
        let at = projector::checkpoint(store.pool(), name).await?;
        println!(
            "{name:<10} checkpoint {at:>10}  lag {:>10}",
            last.saturating_sub(at)
        );
        if let Some(at) = projector::rebuild::pending(&store, name).await? {
            println!("{name:<10} rebuild under way at {at}");
        }
    }
    Ok(())
}

/// `chat projections rebuild NAME`: replays the log into fresh tables with a progress bar,
/// then swaps them in. Interrupting is safe; rerunning resumes.
pub async fn rebuild(config: &Config, name: &str) -> anyhow::Result<()> {
    let Some(projection) = projector::registry::find(name) else {
        let known: Vec<&str> = projector::registry::names().collect();
        anyhow::bail!("unknown projection {name}; known: {}", known.join(", "));
    };
    let log = open_log(config, Access::Owner).await?;
    let store = ReadStore::open(&config.read_store_url())
        .await
        .context("read-model store")?;
    if let Some(at) = projector::rebuild::pending(&store, name).await? {
        eprintln!("resuming the rebuild of {name} at position {at}");
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} log positions  {per_sec}  eta {eta}",
    )?);
    let mut progress = |done: u64, target: u64| {
        bar.set_length(target);
        bar.set_position(done);
    };
    let started = std::time::Instant::now();
    let keyring = open_keyring(config, Access::Owner).await?;
    let Some(rebuilding) =
        projection.rebuild(log, &store, config.subjects().all(), keyring, &mut progress)
    else {
        anyhow::bail!(
            "{name} is a sink: what it delivered cannot be taken back, so it is not rebuilt"
        );
    };
    let rebuilt = rebuilding.await?;
    bar.finish();
    println!(
        "{name} rebuilt up to position {} in {:.1}s and swapped in",
        rebuilt.checkpoint,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where the embedded event log lives under the data directory.
pub fn embedded_log_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("events.log")
}

/// `chat log copy --to nats://…`: the embedded log into JetStream, commit for commit.
pub async fn copy_log(config: &Config, to: &str) -> anyhow::Result<()> {
    use keys::KeyStore;
    let path = embedded_log_path(config);
    anyhow::ensure!(path.exists(), "no embedded log at {}", path.display());
    let source = embedded_snapshot(config)?;
    let client = async_nats::connect(to)
        .await
        .context("cannot connect to NATS")?;
    let dest =
        eventlog::JetStreamLog::open(client, config.subjects(), config.stream_replicas).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} commits  {per_sec}  eta {eta}",
    )?);
    let copied = eventlog::copy::copy(
        &source,
        &dest,
        &config.subjects().all(),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish();
    let keys = keys::FileKeys::open(&config.data_dir.join("keys"))?;
    let target = keys::JetStreamKeys::open(
        dest.context().client(),
        &config.stream,
        config.stream_replicas,
    )
    .await?;
    let mut carried = 0;
    for (name, entry) in keys.entries().await {
        match entry {
            keys::Entry::Live(blob) => {
                target.create(&name, blob).await?;
            }
            keys::Entry::Destroyed => {
                target.destroy(&name).await?;
            }
        }
        carried += 1;
    }
    println!(
        "copied {copied} commits and {carried} keys into stream {} at {to}; the keys stay wrapped by this data dir's master key: run the NATS deployment with CHAT_MASTER_KEY set to the content of {}, then `chat projections rebuild chat` and `... unread` against Postgres",
        config.stream,
        config.data_dir.join("master-key").display()
    );
    Ok(())
}

/// The service as an admin named `cli`, for the `chat users` commands.
async fn cli_service<L: EventLog>(
    log: L,
    config: &Config,
) -> anyhow::Result<(command::Service<L>, command::service::Caller)> {
    let executor = std::sync::Arc::new(command::Executor::new(log, config.subjects()));
    let service = command::Service::new(executor, open_keyring(config, Access::Owner).await?);
    let admin = api::Identity {
        user_id: events::UserId::parse("cli")?,
        admin: true,
        exp: None,
    };
    Ok((service, command::service::Caller::new(&admin, None)))
}

fn user_id(id: &str) -> anyhow::Result<events::UserId> {
    events::UserId::parse(id).map_err(|e| anyhow::anyhow!("INVALID_INPUT: {e}"))
}

fn refused(e: command::error::CommandError) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", e.code().as_str())
}

/// `chat users add`: registers (or renames) a user.
pub async fn add_user<L: EventLog>(
    log: L,
    config: &Config,
    id: &str,
    name: String,
    avatar_url: Option<String>,
) -> anyhow::Result<String> {
    let (service, admin) = cli_service(log, config).await?;
    let saved = service
        .upsert_user(&admin, user_id(id)?, name, avatar_url)
        .await
        .map_err(refused)?;
    Ok(serde_json::to_string(&saved)?)
}

/// `chat users erase`: erases a user, as `POST /api/users/:id/erase` does.
pub async fn erase_user<L: EventLog>(
    log: L,
    config: &Config,
    id: &str,
    reason: Option<String>,
) -> anyhow::Result<String> {
    let (service, admin) = cli_service(log, config).await?;
    let id = user_id(id)?;
    let store = ReadStore::open(&config.read_store_url())
        .await
        .context("read-model store")?;
    let held_in = query::holds::held_conversation_of(store.pool(), id.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message))?;
    let erased = service
        .erase_user(&admin, id, reason, held_in)
        .await
        .map_err(refused)?;
    Ok(serde_json::to_string(&erased)?)
}
