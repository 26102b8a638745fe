//! On both backends (JetStream + Postgres, embedded log + SQLite): the projection takes effect
//! exactly once even when its transaction fails in the middle of a batch, and when two
//! instances run at once.

use command::domain::ConversationCommand;
use command::executor::Executor;
use command::service::{metadata, upsert_command};
use eventlog::EventLog;
use events::{ConversationId, MessageId, Subjects, UserId};
use keys::Keyring;
use projector::chat::Chat;
use projector::{Fault, Projector, ProjectorConfig, checkpoint};
use std::sync::atomic::Ordering;
use std::time::Duration;
use testkit::Setup;

testkit::on_both_backends!(
    a_failure_in_the_middle_of_a_batch_repeats_nothing_and_loses_nothing,
    two_instances_project_once,
    a_stopped_projector_returns_and_hands_over_to_a_standby,
);

const MESSAGES: usize = 300;

/// Registers (or renames) user `ann`.
async fn name_ann<L: EventLog>(
    executor: &Executor<L>,
    keyring: &Keyring,
    name: &str,
) -> anyhow::Result<UserId> {
    let ann = UserId::parse("ann")?;
    let upsert = upsert_command(keyring, &ann, name.into(), None).await?;
    executor
        .user(&ann, upsert, &metadata("t", None), |_| ())
        .await?;
    Ok(ann)
}

async fn fill<L: EventLog>(
    log: &L,
    subjects: &Subjects,
    keyring: &Keyring,
) -> anyhow::Result<ConversationId> {
    let executor = Executor::new(log.clone(), subjects.clone());
    let ann = name_ann(&executor, keyring, "Ann").await?;
    let conv = ConversationId::generate();
    let create = ConversationCommand::Create {
        id: conv.clone(),
        title: Some("t".into()),
        creator: ann.clone(),
        participants: vec![],
    };
    executor
        .conversation(&conv, create, &metadata("ann", None), |_| ())
        .await?;
    for i in 0..MESSAGES {
        send(
            &executor,
            keyring,
            &conv,
            &format!("m{i}"),
            1_000 + i as i64,
        )
        .await?;
    }
    Ok(conv)
}

/// Ann sends `content` to `conv`.
async fn send<L: EventLog>(
    executor: &Executor<L>,
    keyring: &Keyring,
    conv: &ConversationId,
    content: &str,
    now: i64,
) -> anyhow::Result<()> {
    let (ann, message_id) = (UserId::parse("ann")?, MessageId::generate());
    let sealed = keyring
        .seal_message(conv, "MessageSent", &message_id, &ann, now, content)
        .await?;
    let send = ConversationCommand::SendMessage {
        sender: ann,
        message_id,
        content: sealed,
        temp_id: None,
        now,
        present: vec![],
        parent: None,
        mentions: Vec::new(),
    };
    executor
        .conversation(conv, send, &metadata("ann", None), |_| ())
        .await?;
    Ok(())
}

async fn wait_for_checkpoint(pool: &sqlx::AnyPool, target: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while checkpoint(pool, "chat").await? < target {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "projection did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn assert_projected_once(pool: &sqlx::AnyPool, conv: &ConversationId) -> anyhow::Result<()> {
    let (count, distinct, min, max): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM messages WHERE conversation_id = $1",
    )
    .bind(conv.as_str())
    .fetch_one(pool)
    .await?;
    assert_eq!(
        (count, distinct, min, max),
        (MESSAGES as i64, MESSAGES as i64, 1, MESSAGES as i64)
    );
    let (last_seq, last_ms): (i64, Option<i64>) =
        sqlx::query_as("SELECT last_seq, last_message_ms FROM conversations WHERE id = $1")
            .bind(conv.as_str())
            .fetch_one(pool)
            .await?;
    assert_eq!(last_seq, MESSAGES as i64);
    assert_eq!(last_ms, Some(1_000 + MESSAGES as i64 - 1));
    let (users, participants): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM participants)")
            .fetch_one(pool)
            .await?;
    assert_eq!((users, participants), (1, 1));
    Ok(())
}

async fn a_failure_in_the_middle_of_a_batch_repeats_nothing_and_loses_nothing<L: EventLog>(
    setup: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects, store) = (&setup.log, &setup.subjects, &setup.store);
    let pool = store.pool().clone();
    let conv = fill(log, subjects, &setup.keyring).await?;
    let last = log.last_position().await?;
    // Batches of 64 commits; the transaction fails after 100 commits, in the second batch.
    let fault = Fault {
        after: 100,
        ..Fault::default()
    };
    let config = ProjectorConfig {
        batch_size: 64,
        fault: Some(fault.clone()),
        ..ProjectorConfig::default()
    };
    let task = tokio::spawn(
        Projector::new(
            Chat,
            log.clone(),
            store.clone(),
            subjects.all(),
            config,
            setup.keyring.clone(),
        )
        .run(),
    );
    wait_for_checkpoint(&pool, last).await?;
    let applied_in_failed_tx = fault.fired_mid_batch.load(Ordering::SeqCst);
    assert!(
        applied_in_failed_tx > 1,
        "the fault fired after {applied_in_failed_tx} commits of its transaction"
    );
    assert_projected_once(&pool, &conv).await?;

    // A restart (new instance, same database) starts from the checkpoint and changes nothing.
    task.abort();
    let _ = task.await;
    let again = tokio::spawn(
        Projector::new(
            Chat,
            log.clone(),
            store.clone(),
            subjects.all(),
            ProjectorConfig::default(),
            setup.keyring.clone(),
        )
        .run(),
    );
    let executor = Executor::new(log.clone(), subjects.clone());
    name_ann(&executor, &setup.keyring, "Ann B").await?;
    wait_for_checkpoint(&pool, last + 1).await?;
    assert_projected_once(&pool, &conv).await?;
    let (name,): (String,) = sqlx::query_as("SELECT name FROM users WHERE id = 'ann'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(name, "Ann B");
    again.abort();
    Ok(())
}

async fn two_instances_project_once<L: EventLog>(setup: Setup<L>) -> anyhow::Result<()> {
    let (log, subjects, store) = (&setup.log, &setup.subjects, &setup.store);
    let pool = store.pool().clone();
    let conv = fill(log, subjects, &setup.keyring).await?;
    let last = log.last_position().await?;
    let config = ProjectorConfig {
        batch_size: 16,
        fault: None,
        ..ProjectorConfig::default()
    };
    let a = tokio::spawn(
        Projector::new(
            Chat,
            log.clone(),
            store.clone(),
            subjects.all(),
            config.clone(),
            setup.keyring.clone(),
        )
        .run(),
    );
    let b = tokio::spawn(
        Projector::new(
            Chat,
            log.clone(),
            store.clone(),
            subjects.all(),
            config,
            setup.keyring.clone(),
        )
        .run(),
    );
    wait_for_checkpoint(&pool, last).await?;
    assert_projected_once(&pool, &conv).await?;
    a.abort();
    b.abort();
    Ok(())
}

/// Graceful shutdown: `run_until` returns once stopped (it does not hang on its log stream),
/// and releases the projection's lock, so a standby instance takes over at once.
async fn a_stopped_projector_returns_and_hands_over_to_a_standby<L: EventLog>(
    setup: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects, store) = (&setup.log, &setup.subjects, &setup.store);
    let pool = store.pool().clone();
    let conv = fill(log, subjects, &setup.keyring).await?;
    let config = ProjectorConfig {
        batch_size: 16,
        fault: None,
        ..ProjectorConfig::default()
    };
    let new = || {
        Projector::new(
            Chat,
            log.clone(),
            store.clone(),
            subjects.all(),
            config.clone(),
            setup.keyring.clone(),
        )
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let active = tokio::spawn(new().run_until(stop.clone()));
    wait_for_checkpoint(&pool, log.last_position().await?).await?;
    let standby = tokio::spawn(new().run());
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), active)
        .await
        .map_err(|_| anyhow::anyhow!("the stopped projector did not return"))??;

    // More history: only the standby can project it.
    let executor = Executor::new(log.clone(), subjects.clone());
    send(
        &executor,
        &setup.keyring,
        &conv,
        "after the handover",
        5_000,
    )
    .await?;
    wait_for_checkpoint(&pool, log.last_position().await?).await?;
    standby.abort();
    Ok(())
}
