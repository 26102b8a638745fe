//! Operator commands that read the log or the read models: `chat events`, `chat audit
//! verify`, `chat projections status|rebuild`.

use crate::app::connect_log;
use crate::config::Config;
use anyhow::Context;
use eventlog::{EventLog, From};
use futures::StreamExt;
use std::io::Write;

/// `chat events`: JSON lines, one per event, from `from`; with `follow`, without end.
pub async fn events(
    config: &Config,
    conversation: Option<String>,
    from: u64,
    follow: bool,
) -> anyhow::Result<()> {
    let log = connect_log(config).await?;
    let filter = match conversation {
        Some(c) => log
            .subjects()
            .conversation(&events::ConversationId::parse(&c)?),
        None => log.subjects().all(),
    };
    let last = log.last_position().await?;
    if !follow && last < from {
        return Ok(());
    }
    let mut commits = log.follow(&filter, From::Position(from)).await?;
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
        for entry in events::audit::entries(stored.position, &stored.commit) {
            writeln!(out, "{entry}")?;
        }
        out.flush()?;
        if !follow && stored.position >= last {
            break;
        }
    }
    Ok(())
}

/// `chat audit verify`: true when every chain is intact.
pub async fn verify(config: &Config) -> anyhow::Result<bool> {
    let log = connect_log(config).await?;
    match eventlog::verify::verify_log(&log, &log.subjects().all()).await? {
        eventlog::verify::Outcome::Intact {
            commits,
            events,
            aggregates,
        } => {
            println!(
                "log intact: {commits} commits, {events} events, {aggregates} aggregates verified"
            );
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
    let log = connect_log(config).await?;
    let pool = projector::migrate(config.database_url()?)
        .await
        .context("read-model database")?;
    let last = log.last_position().await?;
    println!("log position {last}");
    for name in projector::ALL {
        let at = projector::checkpoint(&pool, name).await?;
        println!(
            "{name:<10} checkpoint {at:>10}  lag {:>10}",
            last.saturating_sub(at)
        );
    }
    Ok(())
}

/// `chat projections rebuild NAME`: replays the log into fresh tables with a progress bar,
/// then swaps them in. Interrupting is safe; rerunning resumes.
pub async fn rebuild(config: &Config, name: &str) -> anyhow::Result<()> {
    let log = connect_log(config).await?;
    let pool = projector::migrate(config.database_url()?)
        .await
        .context("read-model database")?;
    if let Some(at) = projector::rebuild::pending(&pool, name).await? {
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
    let filter = log.subjects().all();
    let started = std::time::Instant::now();
    let rebuilt = match name {
        projector::chat::NAME => {
            replay(projector::chat::Chat, log, pool, filter, &mut progress).await?
        }
        projector::unread::NAME => {
            replay(projector::unread::Unread, log, pool, filter, &mut progress).await?
        }
        other => anyhow::bail!(
            "unknown projection {other}; known: {}",
            projector::ALL.join(", ")
        ),
    };
    bar.finish();
    println!(
        "{name} rebuilt up to position {} in {:.1}s and swapped in",
        rebuilt.checkpoint,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn replay<P: projector::Projection + Clone>(
    projection: P,
    log: eventlog::JetStreamLog,
    pool: sqlx::PgPool,
    filter: String,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> anyhow::Result<projector::rebuild::Rebuilt> {
    Ok(projector::rebuild::rebuild(projection, log, pool, filter, true, progress).await?)
}

/// Where the embedded event log lives under the data directory.
pub fn embedded_log_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("events.log")
}

/// `chat log copy --to nats://…`: the embedded log into JetStream, commit for commit.
pub async fn copy_log(config: &Config, to: &str) -> anyhow::Result<()> {
    let path = embedded_log_path(config);
    anyhow::ensure!(path.exists(), "no embedded log at {}", path.display());
    let source = eventlog::EmbeddedLog::open(&path)?;
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
    println!(
        "copied {copied} commits into stream {} at {to}; now run `chat projections rebuild chat` and `... unread` against Postgres",
        config.stream
    );
    Ok(())
}
