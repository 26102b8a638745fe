//! Scenario `history` (issue 13): what a command node costs as history grows. In process, on
//! the code `chat serve` runs (the executor, its cache and snapshots, on a fresh JetStream
//! stream): a "restart" is a new executor with an empty cache over the same log and snapshots.
//!
//! Seeds one conversation of `messages` messages among 10 members who read everything, two of
//! `pair` messages (one read by all, one by nobody: the cost of a receipt is their difference),
//! and `small` small conversations; then measures memory per message and per receipt held,
//! cold loads of the big conversation (log only, then snapshot + tail over several restarts),
//! RSS after touching every small conversation under a 64 MiB cache, and command latency on a
//! warm conversation while those cold loads run.

use command::domain::{Conversation, ConversationCommand};
use command::executor::Executor;
use command::service::metadata;
use eventlog::chain::Chain;
use eventlog::{
    EmbeddedLog, EventLog, FileSnapshots, JetStreamLog, JetStreamSnapshots, Log, SnapshotStore,
    Snapshots,
};
use events::*;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct History {
    pub messages: u64,
    pub small_conversations: u64,
    pub seed_s: f64,
    /// Heap bytes the big conversation holds once loaded, per message (counted by the
    /// allocator; what the cache estimates is beside it).
    pub bytes_per_message: f64,
    /// The cache's own estimate, per message.
    pub estimated_bytes_per_message: f64,
    pub bytes_per_receipt: f64,
    pub log_load_ms: f64,
    pub snapshot_bytes: u64,
    pub tail_commits: u64,
    /// Cold loads on a restarted node (its own copy of the snapshot, then the tail).
    pub cold_load_p50_ms: f64,
    pub cold_load_p99_ms: f64,
    /// Cold loads on a node that has no copy (JetStream: from the object store).
    #[serde(default)]
    pub new_node_load_p50_ms: Option<f64>,
    #[serde(default)]
    pub new_node_load_p99_ms: Option<f64>,
    /// Parts of a cold load, medians: fetching the snapshot, opening it, reading the tail.
    pub snapshot_fetch_ms: f64,
    pub snapshot_open_ms: f64,
    pub tail_read_ms: f64,
    pub cache_mb: u64,
    /// RSS of the process before and after touching every small conversation.
    pub rss_before_small_mb: f64,
    pub rss_after_small_mb: f64,
    pub cache_bytes_after_small_mb: f64,
    pub command_p99_idle_ms: f64,
    pub command_p99_loading_ms: f64,
    /// Beside the commands, idle and while loading: how late a 2 ms timer of the runtime
    /// fires (the async workers blocked or busy), and one read of the log (a direct get on
    /// JetStream: the server's queue).
    #[serde(default)]
    pub runtime_lag_p99_idle_ms: f64,
    #[serde(default)]
    pub runtime_lag_p99_loading_ms: f64,
    #[serde(default)]
    pub log_read_p99_idle_ms: f64,
    #[serde(default)]
    pub log_read_p99_loading_ms: f64,
}

const MEMBERS: usize = 10;
/// Messages per seeded commit: the seed takes seconds, not hours (one per commit is what live
/// traffic writes; the state a load builds is the same).
const PER_COMMIT: u64 = 100;
const RESTARTS: usize = 20;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn members() -> Vec<UserId> {
    (0..MEMBERS)
        .map(|i| UserId::parse(&format!("member_{i}")).expect("valid"))
        .collect()
}

/// The first commit of a seeded conversation: created by the first user, the others members.
pub fn created(id: &ConversationId, title: &str, users: &[UserId]) -> Vec<ConversationEvent> {
    let mut head = vec![ConversationEvent::Created(ConversationCreatedV1 {
        conversation_id: id.clone(),
        title: Some(title.into()),
        created_by: users[0].clone(),
    })];
    for (i, u) in users.iter().enumerate() {
        head.push(ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
            user_id: u.clone(),
            role: if i == 0 {
                ParticipantRole::Admin
            } else {
                ParticipantRole::Member
            },
        }));
    }
    head
}

/// Seeds a conversation of `messages` messages, each with a tempId, read by every other
/// member when `read`.
async fn seed_conversation<'a, L: EventLog>(
    log: &'a L,
    subjects: &Subjects,
    sealer: &crate::sealer::Sealer,
    messages: u64,
    read: bool,
) -> anyhow::Result<(ConversationId, Chain<'a, L>)> {
    let users = members();
    let id = ConversationId::generate();
    let mut chain = Chain::new(log, subjects.conversation(&id), id.as_str());
    chain
        .commit(&metadata("bench", None), &created(&id, "history", &users))
        .await?;
    let mut seq = 0u64;
    let base = now_millis() - i64::try_from(messages)?;
    while seq < messages {
        let mut batch = Vec::with_capacity(PER_COMMIT as usize + MEMBERS);
        let mut refs = Vec::new();
        for _ in 0..PER_COMMIT.min(messages - seq) {
            seq += 1;
            let at = base + i64::try_from(seq)?;
            let sender = users[usize::try_from(seq)? % MEMBERS].clone();
            let message_id = MessageId::generate_at(at);
            refs.push(MessageRefV1 {
                message_id: message_id.clone(),
                sender_id: sender.clone(),
            });
            let content = sealer
                .message(&id, &message_id, &sender, at, &format!("message {seq}"))
                .await?;
            batch.push(ConversationEvent::MessageSent(MessageSent {
                message_id,
                sender_id: sender,
                content,
                temp_id: Some(TempId::parse(&ulid::Ulid::new().to_string())?),
                seq,
                sent_at: at,
                reply: None,
                mentions: Vec::new(),
            }));
        }
        if read {
            for reader in &users {
                batch.push(ConversationEvent::MessagesRead(MessagesReadV1 {
                    reader: reader.clone(),
                    messages: refs
                        .iter()
                        .filter(|r| &r.sender_id != reader)
                        .cloned()
                        .collect(),
                    read_at: base + i64::try_from(seq)?,
                }));
            }
        }
        chain.commit(&metadata("bench", None), &batch).await?;
    }
    Ok((id, chain))
}

fn executor(log: &Log, subjects: &Subjects, store: &Snapshots, cache_mb: usize) -> Executor<Log> {
    Executor::new(log.clone(), subjects.clone())
        .with_cache_bytes(cache_mb << 20)
        .with_snapshots(store.clone(), command::executor::SNAPSHOT_EVERY)
}

/// Loads a conversation in a fresh executor; returns the time, the heap bytes it holds
/// afterwards and the cache's estimate of its size.
async fn cold_load(
    log: &Log,
    subjects: &Subjects,
    store: Option<&Snapshots>,
    id: &ConversationId,
) -> anyhow::Result<(Duration, i64, u64)> {
    let node = match store {
        Some(store) => executor(log, subjects, store, 4096),
        None => Executor::new(log.clone(), subjects.clone()).with_cache_bytes(4096 << 20),
    };
    let before = crate::allocated();
    let began = Instant::now();
    let bytes = node
        .read_conversation(id, |c: &Conversation| {
            command::domain::Decide::heap_bytes(c) as u64
        })
        .await?;
    let took = began.elapsed();
    let held = i64::try_from(crate::allocated())? - i64::try_from(before)?;
    drop(node);
    Ok((took, held, bytes))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The log and snapshots of the run: a fresh JetStream stream at `nats_url` (the node's
/// snapshot copies under `copies`; and the object store alone, as a new node sees it), or an
/// embedded log and snapshot directory under `embedded`.
async fn open(
    nats_url: Option<&str>,
    embedded: Option<&std::path::Path>,
    copies: &std::path::Path,
    subjects: &Subjects,
) -> anyhow::Result<(Log, Snapshots, Option<Snapshots>)> {
    if let Some(dir) = embedded {
        let log = EmbeddedLog::open(&dir.join("events.log"))?;
        let store = FileSnapshots::open(&dir.join("snapshots"))?;
        return Ok((Log::Embedded(log), Snapshots::Embedded(store), None));
    }
    let url = nats_url.ok_or_else(|| anyhow::anyhow!("--nats or --embedded"))?;
    let log = JetStreamLog::open(async_nats::connect(url).await?, subjects.clone(), 1).await?;
    let node = Snapshots::jetstream(JetStreamSnapshots::open(&log, 1).await?, Some(copies));
    let new_node = Snapshots::jetstream(JetStreamSnapshots::open(&log, 1).await?, None);
    Ok((Log::JetStream(Arc::new(log)), node, Some(new_node)))
}

pub async fn run(
    nats_url: Option<&str>,
    embedded: Option<&std::path::Path>,
    messages: u64,
    pair: u64,
    small: u64,
) -> anyhow::Result<History> {
    let run = format!("hist{}", ulid::Ulid::new().to_string().to_lowercase());
    let subjects = Subjects {
        stream: run.to_uppercase(),
        prefix: run.clone(),
    };
    let copies = std::env::temp_dir().join(&run);
    let (log, store, new_node) = open(nats_url, embedded, &copies, &subjects).await?;
    let mut out = History {
        messages,
        small_conversations: small,
        cache_mb: 64,
        ..Default::default()
    };

    let began = Instant::now();
    eprintln!("history: seeding {messages} messages");
    let sealer = Arc::new(crate::sealer::Sealer::new()?);
    let (big, mut chain) = seed_conversation(&log, &subjects, &sealer, messages, true).await?;
    let (read_pair, _) = seed_conversation(&log, &subjects, &sealer, pair, true).await?;
    let (unread_pair, _) = seed_conversation(&log, &subjects, &sealer, pair, false).await?;
    eprintln!("history: seeding {small} small conversations");
    let users = members();
    let mut smalls = Vec::new();
    let tasks: Vec<_> = (0..32u64)
        .map(|worker| {
            let (log, subjects, users) = (log.clone(), subjects.clone(), users.clone());
            let sealer = sealer.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in (worker..small).step_by(32) {
                    let id = ConversationId::generate();
                    let mut c = Chain::new(&log, subjects.conversation(&id), id.as_str());
                    c.commit(
                        &metadata("bench", None),
                        &created(&id, "history", &users[..3]),
                    )
                    .await?;
                    let (message_id, at) = (MessageId::generate_at(now_millis()), now_millis());
                    let content = sealer
                        .message(&id, &message_id, &users[1], at, "hello")
                        .await?;
                    let sent = ConversationEvent::MessageSent(MessageSent {
                        message_id,
                        sender_id: users[1].clone(),
                        content,
                        temp_id: Some(TempId::parse("t1")?),
                        seq: 1,
                        sent_at: at,
                        reply: None,
                        mentions: Vec::new(),
                    });
                    c.commit(&metadata("bench", None), &[sent]).await?;
                    ids.push(id);
                }
                anyhow::Ok(ids)
            })
        })
        .collect();
    for t in tasks {
        smalls.extend(t.await??);
    }
    out.seed_s = began.elapsed().as_secs_f64();

    // First, while the process holds nothing else: every small conversation touched under a
    // 64 MiB cache, while a warm one takes commands.
    let rss_before = rss_bytes();
    let node = Arc::new(executor(&log, &subjects, &store, 64));
    let warm = smalls[0].clone();
    let command_latency = |node: Arc<Executor<Log>>, stop: Arc<std::sync::atomic::AtomicBool>| {
        let warm = warm.clone();
        let sealer = sealer.clone();
        let sender = users[1].clone();
        tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let (message_id, at) = (MessageId::generate_at(now_millis()), now_millis());
                let content = sealer
                    .keyring
                    .seal_message(&warm, "MessageSent", &message_id, &sender, at, "warm")
                    .await?;
                let send = ConversationCommand::SendMessage {
                    sender: sender.clone(),
                    message_id,
                    content,
                    temp_id: None,
                    now: now_millis(),
                    present: vec![],
                    parent: None,
                    mentions: Vec::new(),
                };
                let began = Instant::now();
                node.conversation(&warm, send, &metadata(sender.as_str(), None), |_| ())
                    .await?;
                h.record(began.elapsed().as_micros().try_into()?)?;
                tokio::time::sleep(Duration::from_millis(5)).await;
                if i > 100_000 {
                    break;
                }
            }
            anyhow::Ok(h)
        })
    };
    let probes = |stop: Arc<std::sync::atomic::AtomicBool>| {
        let (log, subject) = (log.clone(), subjects.conversation(&warm));
        tokio::spawn(async move {
            let (mut lag, mut read) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
            let tick = Duration::from_millis(2);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let began = Instant::now();
                tokio::time::sleep(tick).await;
                lag.record(
                    began
                        .elapsed()
                        .saturating_sub(tick)
                        .as_micros()
                        .try_into()?,
                )?;
                let began = Instant::now();
                log.first_at_or_after(&subject, 1).await?;
                read.record(began.elapsed().as_micros().try_into()?)?;
            }
            anyhow::Ok((lag, read))
        })
    };
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1e3;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle = command_latency(node.clone(), stop.clone());
    let idle_probes = probes(stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    out.command_p99_idle_ms = p99(&idle.await??);
    let (lag, read) = idle_probes.await??;
    (out.runtime_lag_p99_idle_ms, out.log_read_p99_idle_ms) = (p99(&lag), p99(&read));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = command_latency(node.clone(), stop.clone());
    let busy_probes = probes(stop.clone());
    let smalls = Arc::new(smalls);
    let loaders: Vec<_> = (0..16usize)
        .map(|w| {
            let (node, smalls) = (node.clone(), smalls.clone());
            tokio::spawn(async move {
                for id in smalls.iter().skip(w).step_by(16) {
                    node.read_conversation(id, |_| ()).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for l in loaders {
        l.await??;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    out.command_p99_loading_ms = p99(&busy.await??);
    let (lag, read) = busy_probes.await??;
    (out.runtime_lag_p99_loading_ms, out.log_read_p99_loading_ms) = (p99(&lag), p99(&read));
    out.rss_after_small_mb = rss_bytes() as f64 / (1 << 20) as f64;
    out.rss_before_small_mb = rss_before as f64 / (1 << 20) as f64;
    let metrics = node.metrics().render();
    out.cache_bytes_after_small_mb = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chat_aggregate_cache_bytes "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / (1 << 20) as f64;
    eprintln!(
        "history: RSS {:.0} MB after {small} conversations (cache {:.0} MB); p99 idle / while loading: command {:.1} / {:.1} ms, runtime lag {:.1} / {:.1} ms, log read {:.1} / {:.1} ms",
        out.rss_after_small_mb,
        out.cache_bytes_after_small_mb,
        out.command_p99_idle_ms,
        out.command_p99_loading_ms,
        out.runtime_lag_p99_idle_ms,
        out.runtime_lag_p99_loading_ms,
        out.log_read_p99_idle_ms,
        out.log_read_p99_loading_ms,
    );
    // The first load reads the whole log and writes the first snapshot.
    let (took, _, _) = cold_load(&log, &subjects, Some(&store), &big).await?;
    out.log_load_ms = ms(took);
    eprintln!("history: log-only load {:.0} ms", out.log_load_ms);
    let key = format!("conversation.{big}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let snapshot = loop {
        if let Some(b) = store.load(&key).await? {
            break b;
        }
        anyhow::ensure!(Instant::now() < deadline, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    out.snapshot_bytes = snapshot.len() as u64;
    // The longest tail a load meets: just under the next snapshot.
    let tail = command::executor::SNAPSHOT_EVERY - 1;
    for i in 0..tail {
        let at = now_millis();
        let message_id = MessageId::generate_at(at);
        let content = sealer
            .message(&big, &message_id, &users[1], at, "tail")
            .await?;
        let sent = ConversationEvent::MessageSent(MessageSent {
            message_id,
            sender_id: users[1].clone(),
            content,
            temp_id: Some(TempId::parse(&format!("tail-{i}"))?),
            seq: messages + i + 1,
            sent_at: at,
            reply: None,
            mentions: Vec::new(),
        });
        chain.commit(&metadata("bench", None), &[sent]).await?;
    }
    out.tail_commits = tail;

    let mut loads = Histogram::<u64>::new(3)?;
    let mut grown = Vec::new();
    let mut estimate = 0;
    for _ in 0..RESTARTS {
        let (took, rss, bytes) = cold_load(&log, &subjects, Some(&store), &big).await?;
        loads.record(took.as_micros().try_into()?)?;
        grown.push(rss);
        estimate = bytes;
    }
    out.cold_load_p50_ms = loads.value_at_quantile(0.5) as f64 / 1e3;
    out.cold_load_p99_ms = loads.value_at_quantile(0.99) as f64 / 1e3;
    if let Some(new_node) = &new_node {
        let mut loads = Histogram::<u64>::new(3)?;
        for _ in 0..RESTARTS {
            let (took, _, _) = cold_load(&log, &subjects, Some(new_node), &big).await?;
            loads.record(took.as_micros().try_into()?)?;
        }
        out.new_node_load_p50_ms = Some(loads.value_at_quantile(0.5) as f64 / 1e3);
        out.new_node_load_p99_ms = Some(loads.value_at_quantile(0.99) as f64 / 1e3);
        eprintln!(
            "history: cold load on a new node p50 {:.1} ms p99 {:.1} ms",
            loads.value_at_quantile(0.5) as f64 / 1e3,
            loads.value_at_quantile(0.99) as f64 / 1e3
        );
    }
    let (mut fetch, mut open, mut read) = (Vec::new(), Vec::new(), Vec::new());
    let subject = subjects.conversation(&big);
    for _ in 0..5 {
        let began = Instant::now();
        let bytes = store.load(&key).await?.unwrap_or_default();
        fetch.push(ms(began.elapsed()));
        let began = Instant::now();
        let (_, stand) = command::executor::snapshot::open::<Conversation>(
            "conversation",
            big.as_str(),
            &bytes,
        )?;
        open.push(ms(began.elapsed()));
        let began = Instant::now();
        log.read_subject(&subject, stand.last_position - 1).await?;
        read.push(ms(began.elapsed()));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    out.snapshot_fetch_ms = median(&mut fetch);
    out.snapshot_open_ms = median(&mut open);
    out.tail_read_ms = median(&mut read);
    eprintln!(
        "history: snapshot fetch {:.1} ms, open {:.1} ms, tail read {:.1} ms",
        out.snapshot_fetch_ms, out.snapshot_open_ms, out.tail_read_ms
    );
    grown.sort_unstable();
    let held = (messages + tail) as f64;
    out.bytes_per_message = grown[grown.len() / 2] as f64 / held;
    out.estimated_bytes_per_message = estimate as f64 / held;
    eprintln!(
        "history: cold load p50 {:.1} ms p99 {:.1} ms, {:.1} bytes/message",
        out.cold_load_p50_ms, out.cold_load_p99_ms, out.bytes_per_message
    );

    // Receipts: the same conversation read by all and by nobody (no snapshot written meanwhile).
    let receipts = (pair * (MEMBERS as u64 - 1)) as f64;
    let mut per_receipt = Vec::new();
    for _ in 0..3 {
        let (_, unread, _) = cold_load(&log, &subjects, None, &unread_pair).await?;
        let (_, read, _) = cold_load(&log, &subjects, None, &read_pair).await?;
        per_receipt.push((read - unread) as f64 / receipts.max(1.0));
    }
    out.bytes_per_receipt = median(&mut per_receipt);
    let _ = std::fs::remove_dir_all(&copies);

    Ok(out)
}
