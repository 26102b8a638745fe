//! Scenario 5, replay: a log of `events` events in a fresh JetStream stream and Postgres
//! database (or an embedded log and SQLite read store), then the `chat` projection rebuilt
//! from it, timed (the code that `chat projections rebuild` runs, in process); then the
//! `search` projection built from the same log, timed, and `SEARCH_QUERIES` searches over the
//! whole corpus (issue 15). [`searches`] alone times the searches again on a store it left.

use eventlog::chain::Chain;
use eventlog::{EmbeddedLog, EventLog, JetStreamLog, Log};
use events::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Replay {
    pub events: u64,
    pub commits: u64,
    pub seed_s: f64,
    pub rebuild_s: f64,
    pub events_per_s: f64,
    /// The `search` projection built by replay of the same log.
    #[serde(default)]
    pub search_build_s: f64,
    #[serde(default)]
    pub search_events_per_s: f64,
    /// Latency of one search of one or two words over every message, as the route runs it.
    #[serde(default)]
    pub search_p50_ms: f64,
    #[serde(default)]
    pub search_p99_ms: f64,
    /// The read store left behind (for `bench search`).
    #[serde(default)]
    pub store: String,
}

/// Where a replay runs: a fresh stream on this NATS and a fresh database next to this
/// Postgres URL's, or an embedded log and SQLite read store in this directory.
pub enum Target<'a> {
    JetStream { nats: &'a str, database: &'a str },
    Embedded(&'a std::path::Path),
}

/// Where a scenario runs, from the command line: `--nats` with `--database`, or `--embedded`.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    #[arg(long, requires = "database")]
    nats: Option<String>,
    #[arg(long)]
    database: Option<String>,
    /// Run on an embedded log and SQLite read store under this directory instead.
    #[arg(long, conflicts_with = "nats")]
    embedded: Option<std::path::PathBuf>,
}

impl TargetArgs {
    pub fn target(&self) -> anyhow::Result<Target<'_>> {
        match (&self.nats, &self.database, &self.embedded) {
            (Some(nats), Some(database), None) => Ok(Target::JetStream { nats, database }),
            (None, None, Some(dir)) => Ok(Target::Embedded(dir)),
            _ => anyhow::bail!("--nats with --database, or --embedded"),
        }
    }
}

/// A fresh log and read store for one run.
pub struct Fresh {
    pub log: Log,
    pub subjects: Subjects,
    pub store_url: String,
}

/// A stream and database (or directory) of their own, named after a new ULID.
pub async fn fresh(target: Target<'_>) -> anyhow::Result<Fresh> {
    let run = format!("bench{}", ulid::Ulid::new().to_string().to_lowercase());
    let subjects = Subjects {
        stream: run.to_uppercase(),
        prefix: run.clone(),
    };
    let (log, store_url) = match target {
        Target::JetStream { nats, database } => {
            let client = async_nats::connect(nats).await?;
            let log = JetStreamLog::open(client, subjects.clone(), 1).await?;
            let (base, _) = database
                .rsplit_once('/')
                .ok_or_else(|| anyhow::anyhow!("database URL without a name"))?;
            (
                Log::JetStream(std::sync::Arc::new(log)),
                format!("{base}/{run}"),
            )
        }
        Target::Embedded(dir) => {
            let dir = dir.join(&run);
            std::fs::create_dir_all(&dir)?;
            (
                Log::Embedded(EmbeddedLog::open(&dir.join("events.log"))?),
                readstore::sqlite_url(&dir.join("read.db")),
            )
        }
    };
    Ok(Fresh {
        log,
        subjects,
        store_url,
    })
}

/// Rebuilds projection `name` from the whole log into `store` (what `chat projections
/// rebuild` runs): the seconds it took.
pub async fn rebuild(
    name: &str,
    log: &Log,
    store: &readstore::ReadStore,
    subjects: &Subjects,
    keyring: &std::sync::Arc<keys::Keyring>,
) -> anyhow::Result<f64> {
    let projection =
        projector::registry::find(name).ok_or_else(|| anyhow::anyhow!("no projection {name}"))?;
    let last = log.last_position().await?;
    let mut progress = |_, _| {};
    let began = Instant::now();
    let rebuilt = projection
        .rebuild(
            log.clone(),
            store,
            subjects.all(),
            keyring.clone(),
            &mut progress,
        )
        .ok_or_else(|| anyhow::anyhow!("{name} cannot be rebuilt"))?
        .await?;
    anyhow::ensure!(rebuilt.checkpoint == last, "rebuild did not reach the end");
    Ok(began.elapsed().as_secs_f64())
}

const SEARCH_QUERIES: usize = 1000;
const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa"];

/// Word `n` of a 10,000-word vocabulary (four syllables).
fn word(n: u64) -> String {
    (0..4)
        .map(|i| SYLLABLES[((n / 10u64.pow(i)) % 10) as usize])
        .collect()
}

/// The eight words of seeded message `n`.
pub(crate) fn text(n: u64) -> String {
    (0..8)
        .map(|i| word(mix(n * 8 + i) % 10_000))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A deterministic pseudo-random number for `seed` (splitmix64).
pub(crate) fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const PER_COMMIT: u64 = 100;
const CONVERSATIONS: u64 = 10;

/// Seeds `total` events: two users, ten conversations, messages with a read and a reaction
/// per commit; then rebuilds `chat`, builds `search` and times searches.
pub async fn run(target: Target<'_>, total: u64) -> anyhow::Result<Replay> {
    let Fresh {
        log,
        subjects,
        store_url,
    } = fresh(target).await?;
    let began = Instant::now();
    let users = [UserId::parse("ann")?, UserId::parse("bob")?];
    let mut count = 0u64;
    let mut commits = 0u64;
    let sealer = crate::sealer::Sealer::new()?;
    for u in &users {
        let mut chain = Chain::new(&log, subjects.user(u), u.as_str());
        chain
            .commit(
                &command::service::metadata("bench", None),
                &[UserEvent::Registered(sealer.profile(u, u.as_str()).await?)],
            )
            .await?;
        count += 1;
        commits += 1;
    }
    let mut chains = Vec::new();
    for _ in 0..CONVERSATIONS {
        let conv = ConversationId::generate();
        let mut chain = Chain::new(&log, subjects.conversation(&conv), conv.as_str());
        let head = crate::history::created(&conv, "replay", &users);
        chain
            .commit(&command::service::metadata("bench", None), &head)
            .await?;
        count += head.len() as u64;
        commits += 1;
        chains.push((chain, 0u64, conv));
    }
    let mut next = 0usize;
    // Every message's words differ (seeded by this count, not by its conversation's `seq`).
    let mut sent = 0u64;
    while count < total {
        let at = next % chains.len();
        let (chain, seq, conv) = &mut chains[at];
        next += 1;
        let mut batch = Vec::with_capacity(PER_COMMIT as usize + 2);
        let mut refs = Vec::new();
        for _ in 0..PER_COMMIT.saturating_sub(2) {
            *seq += 1;
            let sender = users[(*seq % 2) as usize].clone();
            let id = MessageId::generate();
            refs.push(MessageRefV1 {
                message_id: id.clone(),
                sender_id: sender.clone(),
            });
            let at = i64::try_from(*seq)?;
            sent += 1;
            let text = format!("replayed message {seq}: {}", text(sent));
            let content = sealer.message(conv, &id, &sender, at, &text).await?;
            batch.push(ConversationEvent::MessageSent(MessageSent {
                message_id: id,
                sender_id: sender,
                content,
                temp_id: None,
                seq: *seq,
                sent_at: i64::try_from(*seq)?,
                reply: None,
                mentions: Vec::new(),
            }));
        }
        batch.push(ConversationEvent::MessagesRead(MessagesReadV1 {
            reader: users[1].clone(),
            messages: refs
                .iter()
                .filter(|r| r.sender_id != users[1])
                .take(10)
                .cloned()
                .collect(),
            read_at: 1,
        }));
        batch.push(ConversationEvent::ReactionAdded(ReactionAddedV1 {
            reaction_id: ReactionId::generate(),
            message_id: refs[0].message_id.clone(),
            user_id: users[1].clone(),
            emoji: Emoji::parse("👍")?,
            created_at: 2,
        }));
        count += batch.len() as u64;
        commits += 1;
        chain
            .commit(&command::service::metadata("bench", None), &batch)
            .await?;
    }
    let seed_s = began.elapsed().as_secs_f64();

    let store = readstore::ReadStore::open(&store_url).await?;
    let rebuild_s = rebuild("chat", &log, &store, &subjects, &sealer.keyring).await?;
    let search_build_s = rebuild("search", &log, &store, &subjects, &sealer.keyring).await?;
    let (search_p50_ms, search_p99_ms) = searches(&store).await?;
    Ok(Replay {
        events: count,
        commits,
        seed_s,
        rebuild_s,
        events_per_s: count as f64 / rebuild_s,
        search_build_s,
        search_events_per_s: count as f64 / search_build_s,
        search_p50_ms,
        search_p99_ms,
        store: store_url,
    })
}

/// `SEARCH_QUERIES` searches of one or two words by `ann` over every conversation, as
/// `GET /api/search` runs them: their p50 and p99 in milliseconds.
pub async fn searches(store: &readstore::ReadStore) -> anyhow::Result<(f64, f64)> {
    let mut took = Vec::with_capacity(SEARCH_QUERIES);
    for q in 0..SEARCH_QUERIES as u64 {
        let words: Vec<String> = (0..1 + q % 2)
            .map(|i| word(mix(u64::MAX - q * 2 - i) % 10_000))
            .collect();
        let began = Instant::now();
        let hits = readstore::search::find(
            store.pool(),
            store.backend(),
            &readstore::search::Query {
                words: &words,
                user: "ann",
                conversation: None,
                limit: 20,
            },
        )
        .await?;
        took.push(began.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(q % 2 == 1 || !hits.is_empty(), "no hit for {words:?}");
    }
    took.sort_by(f64::total_cmp);
    let at = |p: f64| took[((took.len() as f64 * p) as usize).min(took.len() - 1)];
    Ok((at(0.50), at(0.99)))
}
