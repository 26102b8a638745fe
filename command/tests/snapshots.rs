//! Snapshots on both backends: a load from a snapshot and the commits after it equals a load
//! from the log; a damaged, foreign-layout or misplaced snapshot is ignored (the log decides);
//! deleting every snapshot loses nothing.

use command::domain::{Conversation, ConversationCommand};
use command::executor::{Executor, snapshot};
use command::service::metadata;
use eventlog::{EventLog, SnapshotStore};
use events::{ConversationId, MessageId, TempId, UserId};
use std::time::{Duration, Instant};
use testkit::Setup;

testkit::on_both_backends!(
    a_load_from_a_snapshot_and_its_tail_equals_a_load_from_the_log,
    a_damaged_foreign_or_misplaced_snapshot_is_ignored_and_deleting_all_loses_nothing,
);

fn u(s: &str) -> UserId {
    UserId::parse(s).expect("valid")
}

fn send(temp: &str) -> ConversationCommand {
    ConversationCommand::SendMessage {
        sender: u("bob"),
        message_id: MessageId::generate_at(events::now_millis()),
        content: testkit::unopened("hi"),
        temp_id: Some(TempId::parse(temp).expect("valid")),
        now: events::now_millis(),
        present: vec![u("ann")],
        parent: None,
        mentions: Vec::new(),
    }
}

/// A conversation of ann and bob with `messages` sent by bob, each read by ann.
async fn conversation<L: EventLog>(
    node: &Executor<L>,
    messages: usize,
) -> anyhow::Result<ConversationId> {
    for name in ["ann", "bob"] {
        let upsert = testkit::unopened_upsert(name);
        node.user(&u(name), upsert, &metadata(name, None), |_| ())
            .await?;
    }
    let id = ConversationId::generate();
    let create = ConversationCommand::Create {
        id: id.clone(),
        title: Some("snap".into()),
        creator: u("ann"),
        participants: vec![u("bob")],
    };
    node.conversation(&id, create, &metadata("ann", None), |_| ())
        .await?;
    for i in 0..messages {
        more(node, &id, &format!("t{i}")).await?;
    }
    Ok(id)
}

async fn more<L: EventLog>(
    node: &Executor<L>,
    id: &ConversationId,
    temp: &str,
) -> anyhow::Result<()> {
    let (outcome, _) = node
        .conversation(id, send(temp), &metadata("bob", None), |_| ())
        .await?;
    let sent = outcome
        .events
        .iter()
        .find_map(|r| match &r.event {
            events::ConversationEvent::MessageSent(m) => Some(m.message_id.clone()),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no message sent"))?;
    let read = ConversationCommand::MarkRead {
        reader: u("ann"),
        message_ids: vec![sent],
        now: events::now_millis(),
    };
    node.conversation(id, read, &metadata("ann", None), |_| ())
        .await?;
    Ok(())
}

async fn snapshot_written<S: SnapshotStore>(store: &S, key: &str) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(bytes) = store.load(key).await? {
            return Ok(bytes);
        }
        anyhow::ensure!(Instant::now() < deadline, "no snapshot {key} written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The conversation as a fresh node loads it, and where it was loaded from.
async fn load<L: EventLog>(
    on: &Setup<L>,
    id: &ConversationId,
    snapshots: bool,
) -> anyhow::Result<(Conversation, &'static str)> {
    let mut node = Executor::new(on.log.clone(), on.subjects.clone());
    if snapshots {
        node = node.with_snapshots(on.snapshots.clone(), 1_000_000);
    }
    let state = node.read_conversation(id, Conversation::clone).await?;
    let metrics = node.metrics().render();
    let source = if metrics.contains("chat_aggregate_loads_total{source=\"snapshot\"} 1") {
        "snapshot"
    } else if metrics.contains("chat_aggregate_loads_total{source=\"log\"} 1") {
        "log"
    } else {
        anyhow::bail!("no load counted: {metrics}")
    };
    Ok((state, source))
}

fn key(id: &ConversationId) -> String {
    format!("conversation.{id}")
}

async fn a_load_from_a_snapshot_and_its_tail_equals_a_load_from_the_log<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let writer =
        Executor::new(on.log.clone(), on.subjects.clone()).with_snapshots(on.snapshots.clone(), 10);
    let id = conversation(&writer, 12).await?;
    snapshot_written(&on.snapshots, &key(&id)).await?;
    for i in 12..15 {
        more(&writer, &id, &format!("t{i}")).await?;
    }
    let (from_snapshot, source) = load(&on, &id, true).await?;
    assert_eq!(source, "snapshot");
    let (from_log, source) = load(&on, &id, false).await?;
    assert_eq!(source, "log");
    assert_eq!(from_snapshot, from_log);
    assert_eq!(from_snapshot.last_seq(), 15);

    let node =
        Executor::new(on.log.clone(), on.subjects.clone()).with_snapshots(on.snapshots.clone(), 10);
    let (outcome, first) = node
        .conversation(&id, send("t0"), &metadata("bob", None), |c| {
            c.message_for_temp_id(&u("bob"), &TempId::parse("t0").expect("valid"))
        })
        .await?;
    assert!(
        outcome.events.is_empty(),
        "a retry from before the snapshot"
    );
    assert_eq!(first.map(|f| f.seq), Some(1));
    more(&node, &id, "t15").await?;
    assert_eq!(node.read_conversation(&id, |c| c.last_seq()).await?, 16);
    Ok(())
}

async fn a_damaged_foreign_or_misplaced_snapshot_is_ignored_and_deleting_all_loses_nothing<
    L: EventLog,
>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let writer =
        Executor::new(on.log.clone(), on.subjects.clone()).with_snapshots(on.snapshots.clone(), 5);
    let id = conversation(&writer, 4).await?;
    let other = conversation(&writer, 4).await?;
    let good = snapshot_written(&on.snapshots, &key(&id)).await?;
    let elsewhere = snapshot_written(&on.snapshots, &key(&other)).await?;
    let (truth, _) = load(&on, &id, false).await?;
    assert_eq!(load(&on, &id, true).await?, (truth.clone(), "snapshot"));

    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let foreign = snapshot::reseal("conversation", id.as_str(), &good, 999, None)
        .ok_or_else(|| anyhow::anyhow!("reseal"))?;
    // One the log does not hold at its position (a log rebuilt under the same name, say).
    let misplaced = snapshot::reseal("conversation", id.as_str(), &good, 1, Some([9; 32]))
        .ok_or_else(|| anyhow::anyhow!("reseal"))?;
    for bad in [
        damaged,
        foreign,
        misplaced,
        elsewhere,
        b"not a snapshot".to_vec(),
    ] {
        on.snapshots.save(&key(&id), bad).await?;
        assert_eq!(load(&on, &id, true).await?, (truth.clone(), "log"));
    }

    // An older snapshot is fine: the commits after it follow.
    on.snapshots.save(&key(&id), good).await?;
    let node = Executor::new(on.log.clone(), on.subjects.clone());
    more(&node, &id, "t4").await?;
    let (moved_on, _) = load(&on, &id, false).await?;
    assert_eq!(load(&on, &id, true).await?, (moved_on.clone(), "snapshot"));

    assert!(on.snapshots.clear().await? >= 2);
    assert_eq!(load(&on, &id, true).await?, (moved_on, "log"));
    let node =
        Executor::new(on.log.clone(), on.subjects.clone()).with_snapshots(on.snapshots.clone(), 1);
    more(&node, &id, "t5").await?;
    assert_eq!(node.read_conversation(&id, |c| c.last_seq()).await?, 6);
    snapshot_written(&on.snapshots, &key(&id)).await?;
    Ok(())
}
