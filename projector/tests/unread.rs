//! On both backends: the `unread` projection's counts do not depend on how commits fall into
//! batches (it holds writes back within a batch): one commit per transaction and large batches
//! give the same, expected counts, with several senders, a read, a delete, a
//! late joiner and deliveries in between.

use command::domain::ConversationCommand;
use command::executor::Executor;
use command::service::metadata;
use eventlog::EventLog;
use events::{ConversationId, MessageId, UserId};
use projector::unread::Unread;
use projector::{Projector, ProjectorConfig, checkpoint};
use readstore::ReadStore;
use std::time::Duration;
use testkit::Setup;

testkit::on_both_backends!(counts_are_the_same_whatever_the_batches);

fn u(s: &str) -> UserId {
    UserId::parse(s).unwrap_or_else(|_| unreachable!("valid test id"))
}

async fn run<L: EventLog, F>(
    executor: &Executor<L>,
    conv: &ConversationId,
    by: &str,
    make: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> ConversationCommand,
{
    executor
        .conversation(conv, make(), &metadata(by, None), |_| ())
        .await?;
    Ok(())
}

async fn send<L: EventLog>(
    executor: &Executor<L>,
    conv: &ConversationId,
    by: &str,
    present: &[&str],
) -> anyhow::Result<MessageId> {
    let id = MessageId::generate();
    let cmd = ConversationCommand::SendMessage {
        sender: u(by),
        message_id: id.clone(),
        content: testkit::unopened("hello"),
        temp_id: None,
        now: 1,
        present: present.iter().map(|p| u(p)).collect(),
        parent: None,
        mentions: Vec::new(),
    };
    executor
        .conversation(conv, cmd, &metadata(by, None), |_| ())
        .await?;
    Ok(id)
}

/// Projects the whole log with `batch_size` into `store`; returns (user, unread) sorted.
async fn project<L: EventLog>(
    log: &L,
    filter: String,
    store: ReadStore,
    keyring: std::sync::Arc<keys::Keyring>,
    batch_size: usize,
) -> anyhow::Result<Vec<(String, i64)>> {
    let last = log.last_position().await?;
    let config = ProjectorConfig {
        batch_size,
        ..ProjectorConfig::default()
    };
    let task = tokio::spawn(
        Projector::new(Unread, log.clone(), store.clone(), filter, config, keyring).run(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while checkpoint(store.pool(), "unread").await? < last {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "unread did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT user_id, unread FROM unread_counts ORDER BY user_id")
            .fetch_all(store.pool())
            .await?;
    Ok(rows)
}

async fn counts_are_the_same_whatever_the_batches<L: EventLog>(on: Setup<L>) -> anyhow::Result<()> {
    let (log, subjects) = (on.log.clone(), on.subjects.clone());
    let executor = Executor::new(log.clone(), subjects.clone());
    for name in ["ann", "bob", "cat", "dan"] {
        let upsert = testkit::unopened_upsert(name);
        executor
            .user(&u(name), upsert, &metadata("t", None), |_| ())
            .await?;
    }
    let conv = ConversationId::generate();
    let c = conv.clone();
    run(&executor, &conv, "ann", || ConversationCommand::Create {
        id: c,
        title: None,
        creator: u("ann"),
        participants: vec![u("bob"), u("cat")],
    })
    .await?;
    let a1 = send(&executor, &conv, "ann", &["bob"]).await?;
    send(&executor, &conv, "ann", &[]).await?;
    let b1 = send(&executor, &conv, "bob", &["ann", "cat"]).await?;
    send(&executor, &conv, "ann", &[]).await?;
    send(&executor, &conv, "bob", &[]).await?;
    // dan joins late: only what comes after counts for him.
    run(&executor, &conv, "ann", || {
        ConversationCommand::AddParticipant {
            by: u("ann"),
            user: u("dan"),
        }
    })
    .await?;
    send(&executor, &conv, "cat", &[]).await?;
    send(&executor, &conv, "bob", &[]).await?;
    // cat reads a1 and b1; ann deletes b1: it comes off ann's count (unread by her), not off
    // cat's (read) nor dan's (sent before he joined).
    run(&executor, &conv, "cat", || ConversationCommand::MarkRead {
        reader: u("cat"),
        message_ids: vec![a1.clone(), b1.clone()],
        now: 3,
    })
    .await?;
    run(&executor, &conv, "ann", || {
        ConversationCommand::DeleteMessage {
            by: u("ann"),
            message_id: b1.clone(),
            now: 4,
        }
    })
    .await?;
    send(&executor, &conv, "ann", &[]).await?;

    // Messages: ann ×4 (one after dan joined), bob ×3 (b1 deleted, one after dan joined),
    // cat ×1 (after dan joined).
    let expected = vec![
        ("ann".to_owned(), 3), // bob 3 + cat 1, less b1 deleted
        ("bob".to_owned(), 5), // ann 4 + cat 1
        ("cat".to_owned(), 5), // ann 4 + bob 3, less a1 and b1 read
        ("dan".to_owned(), 3), // cat, bob and ann once each after he joined
    ];
    let filter = subjects.all();
    let one_by_one = project(
        &log,
        filter.clone(),
        on.store.clone(),
        on.keyring.clone(),
        1,
    )
    .await?;
    assert_eq!(one_by_one, expected, "one commit per transaction");
    let other = match &on.dir {
        Some(dir) => ReadStore::open(&readstore::sqlite_url(&dir.path().join("other.db"))).await?,
        None => ReadStore::open(&testkit::database_url().await?).await?,
    };
    let all_at_once = project(&log, filter, other, on.keyring.clone(), 10_000).await?;
    assert_eq!(all_at_once, expected, "batches of up to 10,000 commits");
    Ok(())
}
