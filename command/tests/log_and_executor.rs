//! Optimistic concurrency, deduplication, two writers racing on one conversation, and
//! aggregates loaded back from the log: on a real NATS JetStream, and (all but the first, which
//! pins a JetStream quirk) on the embedded log too.

use command::domain::ConversationCommand;
use command::executor::Executor;
use command::service::metadata;
use eventlog::{EventLog, From, LogError};
use events::{Commit, ConversationEvent, ConversationId, MessageId, ParticipantRemovedV1, UserId};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use testkit::Setup;

testkit::on_both_backends!(
    two_writers_racing_lose_nothing_and_duplicate_nothing,
    every_commit_chains_to_the_hash_of_the_previous_one,
    follow_delivers_commits_in_log_order_from_a_position,
    a_command_whose_first_append_landed_is_not_appended_twice,
    a_refusal_is_checked_against_the_latest_state,
    aggregates_evicted_from_a_tiny_cache_reload_with_seq_temp_ids_and_reactions_intact,
);

fn u(s: &str) -> UserId {
    UserId::parse(s).expect("valid")
}

async fn setup<L: EventLog>(executor: &Executor<L>) -> anyhow::Result<ConversationId> {
    for name in ["ann", "bob"] {
        executor
            .user(
                &u(name),
                testkit::unopened_upsert(name),
                &metadata("test", None),
                |_| (),
            )
            .await?;
    }
    let id = ConversationId::generate();
    let create = ConversationCommand::Create {
        id: id.clone(),
        title: None,
        creator: u("ann"),
        participants: vec![u("bob")],
    };
    executor
        .conversation(&id, create, &metadata("ann", None), |_| ())
        .await?;
    Ok(id)
}

fn send(sender: &str, text: &str) -> ConversationCommand {
    ConversationCommand::SendMessage {
        sender: u(sender),
        message_id: MessageId::generate(),
        content: testkit::unopened(text),
        temp_id: None,
        now: events::now_millis(),
        present: vec![],
        parent: None,
        mentions: Vec::new(),
    }
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_a_repeated_command_id_is_deduplicated()
-> anyhow::Result<()> {
    let log = testkit::log().await?;
    let subject = log
        .subjects()
        .conversation(&ConversationId::parse("conv_x")?);
    let ev = [ConversationEvent::ParticipantRemoved(
        ParticipantRemovedV1 { user_id: u("ann") },
    )];
    let meta = metadata("ann", None);
    let first = Commit::new("conv_x", 0, [0; 32], &meta, &ev);
    let p1 = log.append(&subject, &first, 0).await?;
    // A retry with the expectation it was first sent with: NATS checks the expectation before
    // the message id, so it answers Conflict (the executor then finds its own commit), and
    // the log keeps one copy.
    assert_eq!(
        log.append(&subject, &first, 0).await,
        Err(LogError::Conflict)
    );
    // A retry with the right expectation is deduplicated by `Nats-Msg-Id`.
    assert_eq!(
        log.append(&subject, &first, p1).await?,
        p1,
        "same command id: deduplicated"
    );
    let other = Commit::new("conv_x", 0, [0; 32], &metadata("bob", None), &ev);
    assert_eq!(
        log.append(&subject, &other, 0).await,
        Err(LogError::Conflict)
    );
    let stored = log.read_subject(&subject, 0).await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].commit, first);
    Ok(())
}

async fn two_writers_racing_lose_nothing_and_duplicate_nothing<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects) = (on.log.clone(), on.subjects.clone());
    let node_a = Arc::new(Executor::new(log.clone(), subjects.clone()));
    let node_b = Arc::new(Executor::new(log.clone(), subjects.clone()));
    let conv = setup(&node_a).await?;
    // Node B loads the conversation before A moves it on, so B's cache goes stale at once.
    node_b.read_conversation(&conv, |_| ()).await?;

    const PER_WRITER: usize = 40;
    let mut tasks = Vec::new();
    for (node, who) in [(node_a.clone(), "ann"), (node_b.clone(), "bob")] {
        let conv = conv.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..PER_WRITER {
                let (outcome, _) = node
                    .conversation(
                        &conv,
                        send(who, &format!("{who} {i}")),
                        &metadata(who, None),
                        |_| (),
                    )
                    .await?;
                for r in outcome.events {
                    if let ConversationEvent::MessageSent(m) = r.event {
                        seqs.push(m.seq);
                    }
                }
            }
            anyhow::Ok(seqs)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), 2 * PER_WRITER, "every send acknowledged once");
    assert_eq!(
        unique,
        (1..=2 * PER_WRITER as u64).collect(),
        "seq unique and gap-free"
    );

    // The log holds exactly those messages, each once, with consecutive versions.
    let stored = log.read_subject(&subjects.conversation(&conv), 0).await?;
    let mut version = 0;
    let mut logged = Vec::new();
    for s in &stored {
        assert_eq!(
            s.commit.version, version,
            "no gap in the aggregate's history"
        );
        version = s.commit.next_version();
        for r in s.commit.decode_events::<ConversationEvent>()? {
            if let ConversationEvent::MessageSent(m) = r.event {
                logged.push((m.seq, format!("{:?}", m.content)));
            }
        }
    }
    assert_eq!(logged.len(), 2 * PER_WRITER);
    let contents: BTreeSet<_> = logged.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(contents.len(), 2 * PER_WRITER, "no message duplicated");

    // A fresh node loads the same state from the log.
    let fresh = Executor::new(log.clone(), subjects);
    let last = fresh.read_conversation(&conv, |c| c.last_seq()).await?;
    assert_eq!(last, 2 * PER_WRITER as u64);
    Ok(())
}

async fn every_commit_chains_to_the_hash_of_the_previous_one<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects) = (on.log.clone(), on.subjects.clone());
    let executor = Executor::new(log.clone(), subjects.clone());
    let conv = setup(&executor).await?;
    for i in 0..3 {
        executor
            .conversation(
                &conv,
                send("bob", &format!("m{i}")),
                &metadata("bob", None),
                |_| (),
            )
            .await?;
    }
    let stored = log.read_subject(&subjects.conversation(&conv), 0).await?;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0].commit.prev_hash, [0; 32]);
    for pair in stored.windows(2) {
        assert_eq!(pair[1].commit.prev_hash, pair[0].commit.hash());
    }
    Ok(())
}

async fn follow_delivers_commits_in_log_order_from_a_position<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects) = (on.log.clone(), on.subjects.clone());
    let executor = Executor::new(log.clone(), subjects.clone());
    let conv = setup(&executor).await?;
    executor
        .conversation(&conv, send("ann", "x"), &metadata("ann", None), |_| ())
        .await?;
    let last = log.last_position().await?;
    let all: Vec<_> = log
        .follow(&subjects.all(), From::Position(1))
        .await?
        .take(usize::try_from(last)?)
        .collect()
        .await;
    let positions: Vec<u64> = all
        .into_iter()
        .map(|r| r.map(|s| s.position))
        .collect::<Result<_, _>>()?;
    assert_eq!(positions, (1..=last).collect::<Vec<_>>());
    Ok(())
}

async fn a_command_whose_first_append_landed_is_not_appended_twice<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects) = (on.log.clone(), on.subjects.clone());
    let executor = Executor::new(log.clone(), subjects.clone());
    let conv = setup(&executor).await?;
    let subject = subjects.conversation(&conv);
    let before = log.read_subject(&subject, 0).await?;
    let last = before
        .last()
        .map(|s| (s.position, s.commit.next_version(), s.commit.hash()))
        .unwrap_or_default();
    // The first try of a command reached the log, but its answer was lost.
    let meta = metadata("bob", None);
    let cmd = send("bob", "landed");
    let decided = executor
        .read_conversation(&conv, |c| command::domain::Decide::decide(c, &cmd))
        .await??;
    let landed = Commit::new(conv.as_str(), last.1, last.2, &meta, &decided);
    let position = log.append(&subject, &landed, last.0).await?;
    // The retry (same command id) from `executor`, whose cache predates the landed commit.
    let (outcome, _) = executor.conversation(&conv, cmd, &meta, |_| ()).await?;
    assert_eq!(outcome.position, position);
    let after = log.read_subject(&subject, 0).await?;
    let landed_count = after
        .iter()
        .filter(|s| s.commit.command_id == meta.command_id)
        .count();
    assert_eq!(landed_count, 1);
    // And the node's cached state counts the message once.
    let cached = executor.read_conversation(&conv, |c| c.last_seq()).await?;
    let fresh = Executor::new(log.clone(), subjects.clone());
    assert_eq!(
        cached,
        fresh.read_conversation(&conv, |c| c.last_seq()).await?
    );
    assert_eq!(outcome.events.len(), 1);
    Ok(())
}

/// A node whose cached state is behind another node's commit does not refuse a command that
/// the latest state allows: a refusal is checked against the log first.
async fn a_refusal_is_checked_against_the_latest_state<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects) = (on.log.clone(), on.subjects.clone());
    let node_a = Executor::new(log.clone(), subjects.clone());
    let node_b = Executor::new(log.clone(), subjects.clone());
    let conv = setup(&node_a).await?;
    node_b.read_conversation(&conv, |_| ()).await?;
    // ann sends on node A; node B has not observed it.
    let message = MessageId::generate();
    let sent = ConversationCommand::SendMessage {
        sender: u("ann"),
        message_id: message.clone(),
        content: testkit::unopened("react to me"),
        temp_id: None,
        now: events::now_millis(),
        present: vec![],
        parent: None,
        mentions: Vec::new(),
    };
    node_a
        .conversation(&conv, sent, &metadata("ann", None), |_| ())
        .await?;
    let react = ConversationCommand::AddReaction {
        by: u("bob"),
        message_id: message,
        reaction_id: events::ReactionId::generate(),
        emoji: events::Emoji::parse("👍")?,
        now: events::now_millis(),
    };
    let (outcome, _) = node_b
        .conversation(&conv, react, &metadata("bob", None), |_| ())
        .await?;
    assert_eq!(outcome.events.len(), 1, "the reaction was added");
    // A refusal that stands against the latest state is still a refusal.
    let unknown = ConversationCommand::AddReaction {
        by: u("bob"),
        message_id: MessageId::generate(),
        reaction_id: events::ReactionId::generate(),
        emoji: events::Emoji::parse("👍")?,
        now: events::now_millis(),
    };
    assert!(matches!(
        node_b
            .conversation(&conv, unknown, &metadata("bob", None), |_| ())
            .await,
        Err(command::executor::ExecError::Domain(_))
    ));
    Ok(())
}

async fn aggregates_evicted_from_a_tiny_cache_reload_with_seq_temp_ids_and_reactions_intact<
    L: EventLog,
>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    use events::{Emoji, ReactionId, TempId};
    let node = Executor::new(on.log.clone(), on.subjects.clone()).with_cache_bytes(1);
    let mut conversations = Vec::new();
    for _ in 0..6 {
        conversations.push(setup(&node).await?);
    }
    let send_with = |temp: &str| ConversationCommand::SendMessage {
        sender: u("bob"),
        message_id: MessageId::generate_at(events::now_millis()),
        content: testkit::unopened("hi"),
        temp_id: Some(TempId::parse(temp).expect("valid")),
        now: events::now_millis(),
        present: vec![],
        parent: None,
        mentions: Vec::new(),
    };
    let mut first = Vec::new();
    for round in 0..3u64 {
        for conv in &conversations {
            let (outcome, _) = node
                .conversation(
                    conv,
                    send_with(&format!("t{round}")),
                    &metadata("bob", None),
                    |_| (),
                )
                .await?;
            let Some(ConversationEvent::MessageSent(m)) = outcome.events.first().map(|r| &r.event)
            else {
                anyhow::bail!("no message sent: {:?}", outcome.events);
            };
            assert_eq!(m.seq, round + 1);
            if round == 0 {
                first.push(m.message_id.clone());
            }
        }
    }
    for (conv, message) in conversations.iter().zip(&first) {
        let (outcome, earlier) = node
            .conversation(conv, send_with("t0"), &metadata("bob", None), |c| {
                c.message_for_temp_id(&u("bob"), &TempId::parse("t0").expect("valid"))
            })
            .await?;
        assert!(outcome.events.is_empty(), "a retry appends nothing");
        let earlier = earlier.expect("the first message");
        assert_eq!((&earlier.message_id, earlier.seq), (message, 1));
    }
    for _ in 0..2 {
        for (conv, message) in conversations.iter().zip(&first) {
            let react = ConversationCommand::AddReaction {
                by: u("ann"),
                message_id: message.clone(),
                reaction_id: ReactionId::generate(),
                emoji: Emoji::parse("👍").expect("valid"),
                now: events::now_millis(),
            };
            node.conversation(conv, react, &metadata("ann", None), |_| ())
                .await?;
        }
    }
    let mut added = 0;
    for conv in &conversations {
        for stored in on
            .log
            .read_subject(&on.subjects.conversation(conv), 0)
            .await?
        {
            for r in stored.commit.decode_events::<ConversationEvent>()? {
                added += usize::from(matches!(r.event, ConversationEvent::ReactionAdded(_)));
            }
        }
    }
    assert_eq!(
        added,
        conversations.len(),
        "the second reaction of each was a no-op"
    );
    let metrics = node.metrics().render();
    assert!(
        metrics.contains("chat_aggregate_cache_entries 1\n"),
        "{metrics}"
    );
    let loads: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chat_aggregate_loads_total{source=\"log\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        loads >= 6 * 6,
        "every command reloaded its evicted aggregate: {loads}"
    );
    Ok(())
}
