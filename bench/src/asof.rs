//! Scenario `asof` (issue 15): `GET /api/messages?asOf=` at random positions of one large
//! conversation. Seeds `messages` messages in one conversation (commits of [`PER_COMMIT`]
//! messages, each commit also editing an earlier message and reacting to one, so the index of
//! changes is not empty), rebuilds the read models, serves the query router in process
//! on a loopback port and times `READS` pages over HTTP: half the latest page as of a random
//! position, half a page before a random `seq` as of a random position at or after it. The
//! live list's latest page is timed beside them.

use crate::replay::{Fresh, Target, fresh, mix, rebuild, text};
use eventlog::chain::Chain;
use events::*;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct AsOf {
    pub messages: u64,
    pub commits: u64,
    pub seed_s: f64,
    pub rebuild_s: f64,
    pub reads: u64,
    pub asof_p50_ms: f64,
    pub asof_p99_ms: f64,
    pub live_p50_ms: f64,
    pub live_p99_ms: f64,
}

/// Messages a seeded commit holds: a page of 50 spans about five commits.
const PER_COMMIT: u64 = 10;
const READS: u64 = 1000;
const LIMIT: u64 = 50;

pub async fn run(target: Target<'_>, messages: u64) -> anyhow::Result<AsOf> {
    anyhow::ensure!(messages > 0, "--messages must be at least 1");
    let Fresh {
        log,
        subjects,
        store_url,
    } = fresh(target).await?;
    let sealer = crate::sealer::Sealer::new()?;
    let began = Instant::now();
    let users = [UserId::parse("ann")?, UserId::parse("bob")?];
    for u in &users {
        Chain::new(&log, subjects.user(u), u.as_str())
            .commit(
                &command::service::metadata("bench", None),
                &[UserEvent::Registered(sealer.profile(u, u.as_str()).await?)],
            )
            .await?;
    }
    let conv = ConversationId::generate();
    let mut chain = Chain::new(&log, subjects.conversation(&conv), conv.as_str());
    chain
        .commit(
            &command::service::metadata("bench", None),
            &crate::history::created(&conv, "asof", &users),
        )
        .await?;
    let mut ids: Vec<MessageId> = Vec::with_capacity(usize::try_from(messages)?);
    // Where each commit landed and the last `seq` it holds.
    let mut landed: Vec<(u64, u64)> = Vec::new();
    let mut seq = 0u64;
    while seq < messages {
        let mut batch = Vec::with_capacity(PER_COMMIT as usize + 2);
        for _ in 0..PER_COMMIT.min(messages - seq) {
            seq += 1;
            let sender = &users[(seq % 2) as usize];
            let id = MessageId::generate();
            let at = i64::try_from(seq)?;
            let content = sealer.message(&conv, &id, sender, at, &text(seq)).await?;
            batch.push(ConversationEvent::MessageSent(MessageSent {
                message_id: id.clone(),
                sender_id: sender.clone(),
                content,
                temp_id: None,
                seq,
                sent_at: at,
                reply: None,
                mentions: Vec::new(),
            }));
            ids.push(id);
        }
        let earlier = usize::try_from(mix(seq) % seq)?;
        let sender = &users[(earlier + 1) % 2];
        let at = i64::try_from(earlier + 1)?;
        let content = sealer
            .message_as(&conv, &ids[earlier], sender, at, "edited", "MessageEdited")
            .await?;
        batch.push(ConversationEvent::MessageEdited(MessageEdited {
            message_id: ids[earlier].clone(),
            content,
            edited_at: i64::try_from(seq)?,
        }));
        batch.push(ConversationEvent::ReactionAdded(ReactionAddedV1 {
            reaction_id: ReactionId::generate(),
            message_id: ids[usize::try_from(mix(!seq) % seq)?].clone(),
            user_id: users[0].clone(),
            emoji: Emoji::parse("👍")?,
            created_at: i64::try_from(seq)?,
        }));
        let position = chain
            .commit(&command::service::metadata("bench", None), &batch)
            .await?;
        landed.push((position, seq));
    }
    let seed_s = began.elapsed().as_secs_f64();
    let store = readstore::ReadStore::open(&store_url).await?;
    let mut rebuild_s = 0.0;
    for name in projector::registry::read_models() {
        rebuild_s += rebuild(name, &log, &store, &subjects, &sealer.keyring).await?;
    }

    let secret = b"bench-asof";
    let keys = Arc::new(api::JwtKeys::new(secret));
    let token = keys.sign(&users[0], false, None);
    let router = query::router(query::QueryState {
        pool: store.pool().clone(),
        backend: store.backend(),
        log: log.clone(),
        subjects: subjects.clone(),
        keyring: sealer.keyring.clone(),
        keys,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/messages", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let get = async |query: String| -> anyhow::Result<(f64, Vec<u64>)> {
        let began = Instant::now();
        let res = client
            .get(format!("{base}?conversationId={conv}&limit={LIMIT}{query}"))
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "{}", res.text().await?);
        let page: serde_json::Value = res.json().await?;
        let took = began.elapsed().as_secs_f64() * 1e3;
        let seqs: Vec<u64> = page["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["seq"].as_u64()).collect())
            .unwrap_or_default();
        Ok((took, seqs))
    };
    let mut asof = Histogram::<u64>::new(3)?;
    let mut live = Histogram::<u64>::new(3)?;
    for r in 0..READS {
        let (at, seq_then) = landed[usize::try_from(mix(r) % landed.len() as u64)?];
        let (query, expected) = if r % 2 == 0 {
            (format!("&asOf={at}"), LIMIT.min(seq_then))
        } else {
            let before = 1 + mix(!r) % seq_then;
            (format!("&asOf={at}&before={before}"), LIMIT.min(before - 1))
        };
        let (took, seqs) = get(query.clone()).await?;
        anyhow::ensure!(
            seqs.len() as u64 == expected,
            "{query} (seq {seq_then} then): {seqs:?}, not {expected} messages"
        );
        asof.record((took * 1e3) as u64)?;
        let (took, _) = get(String::new()).await?;
        live.record((took * 1e3) as u64)?;
    }
    server.abort();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Ok(AsOf {
        messages,
        commits: landed.len() as u64 + 1,
        seed_s,
        rebuild_s,
        reads: READS,
        asof_p50_ms: ms(&asof, 0.5),
        asof_p99_ms: ms(&asof, 0.99),
        live_p50_ms: ms(&live, 0.5),
        live_p99_ms: ms(&live, 0.99),
    })
}
