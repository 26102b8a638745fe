//! Scenario 5, replay: a log of `events` events in a fresh JetStream stream, then the `chat`
//! projection rebuilt from it into a fresh Postgres database, timed (the code that
//! `chat projections rebuild` runs, in process); then the `search` projection built from the
//! same log, timed, and `SEARCH_QUERIES` searches over the whole corpus (issue 15).

use eventlog::chain::Chain;
use eventlog::{EventLog, JetStreamLog};
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
}

const SEARCH_QUERIES: usize = 1000;
const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa"];

/// Word `n` of a 10,000-word vocabulary (four syllables).
fn word(n: u64) -> String {
    (0..4)
        .map(|i| SYLLABLES[((n / 10u64.pow(i)) % 10) as usize])
        .collect()
}

/// A deterministic pseudo-random number for `seed` (splitmix64).
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const PER_COMMIT: u64 = 100;
const CONVERSATIONS: u64 = 10;

/// Seeds `total` events: two users, ten conversations, messages with a read and a reaction
/// per commit, then rebuilds `chat` and reports events per second.
pub async fn run(nats_url: &str, database_url: &str, total: u64) -> anyhow::Result<Replay> {
    let run = format!("bench{}", ulid::Ulid::new().to_string().to_lowercase());
    let subjects = Subjects {
        stream: run.to_uppercase(),
        prefix: run.clone(),
    };
    let client = async_nats::connect(nats_url).await?;
    let log = JetStreamLog::open(client, subjects.clone(), 1).await?;
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
            let text: Vec<String> = (0..8).map(|i| word(mix(*seq * 8 + i) % 10_000)).collect();
            let text = format!("replayed message {seq}: {}", text.join(" "));
            let content = sealer.message(conv, &id, &sender, at, &text).await?;
            batch.push(ConversationEvent::MessageSent(MessageSent {
                message_id: id,
                sender_id: sender,
                content,
                temp_id: None,
                seq: *seq,
                sent_at: i64::try_from(*seq)?,
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

    let (base, _) = database_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("database URL without a name"))?;
    let store = readstore::ReadStore::open(&format!("{base}/{run}")).await?;
    let began = Instant::now();
    let rebuilt = projector::rebuild::rebuild(
        projector::chat::Chat,
        log.clone(),
        &store,
        subjects.all(),
        sealer.keyring.clone(),
        true,
        &mut |_, _| {},
    )
    .await?;
    let rebuild_s = began.elapsed().as_secs_f64();
    anyhow::ensure!(
        rebuilt.checkpoint == log.last_position().await?,
        "rebuild did not reach the end"
    );
    let began = Instant::now();
    projector::rebuild::rebuild(
        projector::search::Search,
        log.clone(),
        &store,
        subjects.all(),
        sealer.keyring.clone(),
        true,
        &mut |_, _| {},
    )
    .await?;
    let search_build_s = began.elapsed().as_secs_f64();
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
                user: users[0].as_str(),
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
    Ok(Replay {
        events: count,
        commits,
        seed_s,
        rebuild_s,
        events_per_s: count as f64 / rebuild_s,
        search_build_s,
        search_events_per_s: count as f64 / search_build_s,
        search_p50_ms: at(0.50),
        search_p99_ms: at(0.99),
    })
}
