//! On both backends: rebuilding a projection from a log of over 100,000 events gives the same
//! rows as the live one; an interrupted rebuild resumes; the swap puts the rebuilt tables in
//! place while the live projector runs; a swapped-in search index has its full-text index and
//! the planner's statistics at once.

use command::service::metadata;
use eventlog::EventLog;
use eventlog::chain::Chain;
use events::*;
use projector::chat::Chat;
use projector::rebuild::{rebuild, schema_of};
use projector::{Projection, Projector, ProjectorConfig, checkpoint};
use readstore::{Backend, ReadStore};
use sqlx::AnyConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use testkit::Setup;

testkit::on_both_backends!(
    rebuild_from_100k_events_equals_a_live_projection_killed_repeatedly_and_survives_an_interruption,
    a_rebuilt_search_index_serves_with_its_indexes_and_statistics
);

const MESSAGES_PER_COMMIT: u64 = 100;
const COMMITS: u64 = 1_000;

/// `user`'s profile (named by the id), sealed as the service seals it.
async fn profile(keyring: &keys::Keyring, user: &UserId) -> anyhow::Result<events::Profile> {
    let sealed = command::service::seal_profile(keyring, user, user.as_str(), None).await?;
    Ok(events::Profile::Sealed(sealed))
}

fn seed_meta() -> Metadata {
    metadata("seed", None)
}

/// A log of 100,000+ events: users, one conversation, messages, edits, deletes, reads,
/// reactions, deliveries, a participant leaving.
async fn seed<L: EventLog>(
    log: &L,
    subjects: &Subjects,
    keyring: &keys::Keyring,
) -> anyhow::Result<u64> {
    let users: Vec<UserId> = ["ann", "bob", "cat"]
        .iter()
        .map(|u| UserId::parse(u))
        .collect::<Result<_, _>>()?;
    let mut people = Vec::new();
    for u in &users {
        let mut w = Chain::new(log, subjects.user(u), u.as_str());
        w.commit(
            &seed_meta(),
            &[UserEvent::Registered(profile(keyring, u).await?)],
        )
        .await?;
        people.push(w);
    }
    let conv = ConversationId::generate();
    let mut w = Chain::new(log, subjects.conversation(&conv), conv.as_str());
    let mut head = vec![ConversationEvent::Created(ConversationCreatedV1 {
        conversation_id: conv.clone(),
        title: Some("big".into()),
        created_by: users[0].clone(),
    })];
    for (i, u) in users.iter().enumerate() {
        let role = if i == 0 {
            ParticipantRole::Admin
        } else {
            ParticipantRole::Member
        };
        head.push(ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
            user_id: u.clone(),
            role,
        }));
    }
    w.commit(&seed_meta(), &head).await?;
    let mut seq = 0;
    for c in 0..COMMITS {
        let mut events = Vec::new();
        let mut ids = Vec::new();
        let mut repliers: Vec<UserId> = Vec::new();
        for k in 0..MESSAGES_PER_COMMIT {
            seq += 1;
            let sender = users[(seq % 3) as usize].clone();
            let id = MessageId::generate();
            ids.push(MessageRefV1 {
                message_id: id.clone(),
                sender_id: sender.clone(),
            });
            let at = i64::try_from(seq)?;
            let text = format!("message {seq}");
            let sealed = keyring
                .seal_message(&conv, "MessageSent", &id, &sender, at, &text)
                .await?;
            // Messages 3 and 4 of each commit reply to its first; message 5 mentions two users.
            let reply = if (3..=4).contains(&k) {
                if !repliers.contains(&sender) {
                    repliers.push(sender.clone());
                }
                Some(ReplyV1 {
                    parent_id: ids[0].message_id.clone(),
                    reply_count: k - 2,
                    participant_ids: repliers.clone(),
                })
            } else {
                None
            };
            let mentions = if k == 5 {
                users[1..].to_vec()
            } else {
                Vec::new()
            };
            events.push(ConversationEvent::MessageSent(MessageSent {
                message_id: id,
                sender_id: sender,
                content: Text::Sealed(sealed),
                temp_id: None,
                seq,
                sent_at: i64::try_from(seq)?,
                reply,
                mentions,
            }));
        }
        for pinned in [&ids[6], &ids[2]] {
            events.push(ConversationEvent::MessagePinned(MessagePinnedV1 {
                message_id: pinned.message_id.clone(),
                pinned_by: users[0].clone(),
                pinned_at: 6,
            }));
        }
        if c % 3 == 0 {
            events.push(ConversationEvent::MessageUnpinned(MessageUnpinnedV1 {
                message_id: ids[6].message_id.clone(),
                unpinned_by: users[0].clone(),
                unpinned_at: 7,
            }));
        }
        let first = ids[0].clone();
        let sealed = keyring
            .seal_message(
                &conv,
                "MessageEdited",
                &first.message_id,
                &first.sender_id,
                1,
                "edited",
            )
            .await?;
        events.push(ConversationEvent::MessageEdited(MessageEdited {
            message_id: first.message_id.clone(),
            content: Text::Sealed(sealed),
            edited_at: 1,
        }));
        events.push(ConversationEvent::MessagesDelivered(MessagesDeliveredV1 {
            recipients: vec![users[1].clone()],
            messages: ids[..10].to_vec(),
            delivered_at: 2,
        }));
        events.push(ConversationEvent::MessagesRead(MessagesReadV1 {
            reader: users[2].clone(),
            messages: ids[10..20]
                .iter()
                .filter(|m| m.sender_id != users[2])
                .cloned()
                .collect(),
            read_at: 3,
        }));
        events.push(ConversationEvent::ReactionAdded(ReactionAddedV1 {
            reaction_id: ReactionId::generate(),
            message_id: ids[1].message_id.clone(),
            user_id: users[0].clone(),
            emoji: Emoji::parse("👍")?,
            created_at: 4,
        }));
        if c % 10 == 0 {
            events.push(ConversationEvent::MessageDeleted(MessageDeletedV1 {
                message_id: ids[2].message_id.clone(),
                deleted_by: users[0].clone(),
                deleted_at: 5,
            }));
        }
        w.commit(&seed_meta(), &events).await?;
    }
    w.commit(
        &seed_meta(),
        &[ConversationEvent::ParticipantRemoved(
            ParticipantRemovedV1 {
                user_id: users[2].clone(),
            },
        )],
    )
    .await?;
    // A held conversation, a held user (and one released), and an erasure: the rebuild, which
    // opens nothing of the erased user, must equal the live tables, which nulled it.
    w.commit(
        &seed_meta(),
        &[ConversationEvent::Held(HoldPlacedV1 {
            reason: "litigation".into(),
        })],
    )
    .await?;
    people[1]
        .commit(
            &seed_meta(),
            &[
                UserEvent::Held(HoldPlacedV1 {
                    reason: "case 7".into(),
                }),
                UserEvent::Released(HoldReleasedV1 {}),
                UserEvent::Held(HoldPlacedV1 {
                    reason: "case 8".into(),
                }),
            ],
        )
        .await?;
    people[2]
        .commit(
            &seed_meta(),
            &[UserEvent::Erased(UserErasedV1 { reason: None })],
        )
        .await?;
    keyring.destroy_user(&users[2]).await?;
    Ok(w.version + 7)
}

/// A connection that sees the live tables in the returned schema and the rebuilt ones in
/// `rebuild_chat` (Postgres: schemas; SQLite: the rebuild file, attached).
async fn comparer(store: &ReadStore) -> anyhow::Result<(AnyConnection, &'static str)> {
    let mut conn = store.dedicated().await?;
    match store.backend() {
        Backend::Postgres => Ok((conn, "public")),
        Backend::Sqlite => {
            let file = projector::rebuild::file_of(store, "chat")?;
            sqlx::query("ATTACH DATABASE $1 AS rebuild_chat")
                .bind(file.display().to_string())
                .execute(&mut conn)
                .await?;
            Ok((conn, "main"))
        }
    }
}

/// Rows of `table` in one schema and not the other, both ways (every table has a primary key,
/// so set difference and equal counts mean equal contents).
async fn differences(
    conn: &mut AnyConnection,
    live: &str,
    table: &str,
    other: &str,
) -> anyhow::Result<i64> {
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM (SELECT * FROM {live}.{table} EXCEPT SELECT * FROM {other}.{table}) a)
              + (SELECT COUNT(*) FROM (SELECT * FROM {other}.{table} EXCEPT SELECT * FROM {live}.{table}) b)
              + (SELECT COUNT(*) FROM {live}.{table}) - (SELECT COUNT(*) FROM {other}.{table})"
    );
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?;
    Ok(n)
}

async fn count(pool: &sqlx::AnyPool, table: &str) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(pool)
        .await?;
    Ok(n)
}

async fn rebuild_from_100k_events_equals_a_live_projection_killed_repeatedly_and_survives_an_interruption<
    L: EventLog,
>(
    setup: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects, store) = (&setup.log, &setup.subjects, &setup.store);
    let pool = store.pool().clone();
    let keyring = setup.keyring.clone();
    let events = seed(log, subjects, &keyring).await?;
    assert!(events >= 100_000, "{events} events");
    let last = log.last_position().await?;
    let filter = subjects.all();

    // The live projection, killed (its task aborted in the middle of the batch it is writing,
    // as `kill -9` would) each time it got further, then started again: what it ends with is
    // compared row for row with a fresh rebuild below.
    let config = ProjectorConfig {
        batch_size: 50,
        fault: None,
        ..ProjectorConfig::default()
    };
    let start = || {
        tokio::spawn(
            Projector::new(
                Chat,
                log.clone(),
                store.clone(),
                filter.clone(),
                config.clone(),
                keyring.clone(),
            )
            .run(),
        )
    };
    let mut live = start();
    let (mut kills, mut killed_at) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let done = checkpoint(&pool, "chat").await?;
        if done >= last {
            break;
        }
        if kills < 8 && done > killed_at {
            // Into the next batch (a batch of 50 commits of 100 messages takes longer).
            tokio::time::sleep(Duration::from_millis(5 + 7 * kills)).await;
            live.abort();
            let _ = live.await;
            kills += 1;
            killed_at = checkpoint(&pool, "chat").await?;
            live = start();
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "live projection did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kills, 8, "killed repeatedly before it caught up");
    assert_eq!(
        count(&pool, "messages").await?,
        (MESSAGES_PER_COMMIT * COMMITS) as i64
    );

    // A rebuild interrupted a third of the way.
    let reached = Arc::new(AtomicU64::new(0));
    let (r, st, l, f) = (reached.clone(), store.clone(), log.clone(), filter.clone());
    let k = keyring.clone();
    let first = tokio::spawn(async move {
        let mut progress = |done: u64, _target: u64| r.store(done, Ordering::SeqCst);
        rebuild(Chat, l, &st, f, k, false, &mut progress).await
    });
    while reached.load(Ordering::SeqCst) < last / 3 {
        anyhow::ensure!(
            !first.is_finished(),
            "rebuild ended before it could be interrupted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.abort();
    let _ = first.await;
    let resumed_at = projector::rebuild::pending(store, "chat")
        .await?
        .unwrap_or(0);
    assert!(
        resumed_at > 0 && resumed_at < last,
        "interrupted at {resumed_at} of {last}"
    );

    // Rerun: resumes from where it stopped, reaches the end; the rows equal the live ones.
    let mut seen_first = None;
    let mut progress = |done: u64, _target: u64| {
        seen_first.get_or_insert(done);
    };
    let done = rebuild(
        Chat,
        log.clone(),
        store,
        filter.clone(),
        keyring.clone(),
        false,
        &mut progress,
    )
    .await?;
    assert_eq!(done.checkpoint, last);
    assert_eq!(
        seen_first,
        Some(resumed_at),
        "the rerun resumed from the interrupted checkpoint"
    );
    let schema = schema_of("chat");
    let (mut conn, live_schema) = comparer(store).await?;
    for table in Chat.tables(store.backend()) {
        assert!(
            count(&pool, table).await? > 0 || *table == "message_reads" || *table == "reactions",
            "{table} empty"
        );
        assert_eq!(
            differences(&mut conn, live_schema, table, &schema).await?,
            0,
            "{table} differs"
        );
    }

    drop(conn);

    // Swap while the live projector runs; the live tables are the rebuilt ones.
    let swapped = rebuild(
        Chat,
        log.clone(),
        store,
        filter,
        keyring,
        true,
        &mut |_, _| {},
    )
    .await?;
    assert!(swapped.swapped);
    assert_eq!(checkpoint(&pool, "chat").await?, last);
    assert!(projector::rebuild::pending(store, "chat").await?.is_none());
    assert_eq!(
        count(&pool, "messages").await?,
        (MESSAGES_PER_COMMIT * COMMITS) as i64
    );
    let (deleted,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM messages WHERE deleted_ms IS NOT NULL AND content IS NULL",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(deleted, (COMMITS / 10) as i64);
    let pins_left = (0..COMMITS)
        .map(|c| u64::from(c % 3 != 0) + u64::from(c % 10 != 0))
        .sum::<u64>();
    assert_eq!(count(&pool, "pins").await?, pins_left as i64);
    assert_eq!(count(&pool, "mentions").await?, (2 * COMMITS) as i64);
    let (threads,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM messages WHERE reply_count = 2 AND thread_participants IS NOT NULL",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(threads, COMMITS as i64);
    live.abort();
    Ok(())
}

/// The indexes of `table` in the live schema, by name, and whether the planner has statistics
/// on it (gathered by ANALYZE only).
async fn indexes_and_statistics(
    store: &ReadStore,
    table: &str,
) -> anyhow::Result<(Vec<String>, bool)> {
    let pool = store.pool();
    let (indexes, statistics) = match store.backend() {
        Backend::Postgres => (
            "SELECT indexname::text FROM pg_indexes
             WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
            "SELECT COUNT(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = $1",
        ),
        Backend::Sqlite => (
            "SELECT name FROM sqlite_master
             WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL ORDER BY name",
            "SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = $1",
        ),
    };
    let names: Vec<(String,)> = sqlx::query_as(indexes).bind(table).fetch_all(pool).await?;
    let (rows,): (i64,) = sqlx::query_as(statistics)
        .bind(table)
        .fetch_one(pool)
        .await?;
    Ok((names.into_iter().map(|(n,)| n).collect(), rows > 0))
}

async fn a_rebuilt_search_index_serves_with_its_indexes_and_statistics<L: EventLog>(
    setup: Setup<L>,
) -> anyhow::Result<()> {
    let (log, subjects, store) = (&setup.log, &setup.subjects, &setup.store);
    let ann = UserId::parse("ann")?;
    let conv = ConversationId::generate();
    let mut w = Chain::new(log, subjects.conversation(&conv), conv.as_str());
    w.commit(
        &seed_meta(),
        &[
            ConversationEvent::Created(ConversationCreatedV1 {
                conversation_id: conv.clone(),
                title: None,
                created_by: ann.clone(),
            }),
            ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
                user_id: ann.clone(),
                role: ParticipantRole::Admin,
            }),
        ],
    )
    .await?;
    let mut sent = Vec::new();
    for seq in 1..=300u64 {
        let id = MessageId::generate();
        let text = if seq % 3 == 0 {
            "running late"
        } else {
            "on time"
        };
        let sealed = setup
            .keyring
            .seal_message(&conv, "MessageSent", &id, &ann, 1, text)
            .await?;
        sent.push(ConversationEvent::MessageSent(MessageSent {
            message_id: id,
            sender_id: ann.clone(),
            content: Text::Sealed(sealed),
            temp_id: None,
            seq,
            sent_at: 1,
            reply: None,
            mentions: Vec::new(),
        }));
    }
    w.commit(&seed_meta(), &sent).await?;
    let filter = subjects.all();
    rebuild(
        Chat,
        log.clone(),
        store,
        filter.clone(),
        setup.keyring.clone(),
        true,
        &mut |_, _| {},
    )
    .await?;
    let (fresh_indexes, _) = indexes_and_statistics(store, "search_messages").await?;
    let rebuilt = rebuild(
        projector::search::Search,
        log.clone(),
        store,
        filter,
        setup.keyring.clone(),
        true,
        &mut |_, _| {},
    )
    .await?;
    assert!(rebuilt.swapped);
    assert!(
        projector::rebuild::pending(store, "search")
            .await?
            .is_none()
    );
    let (indexes, analysed) = indexes_and_statistics(store, "search_messages").await?;
    assert_eq!(
        indexes, fresh_indexes,
        "the rebuilt table has the DDL's indexes"
    );
    if store.backend() == Backend::Postgres {
        assert!(
            indexes.iter().any(|i| i == "search_messages_doc"),
            "{indexes:?}"
        );
    }
    assert!(analysed, "statistics gathered before the first query");
    let hits = readstore::search::find(
        store.pool(),
        store.backend(),
        &readstore::search::Query {
            words: &["run".to_owned()],
            user: ann.as_str(),
            conversation: None,
            limit: 50,
        },
    )
    .await?;
    assert_eq!(hits.len(), 50);
    assert!(
        hits.iter()
            .all(|h| h.highlight == "<mark>running</mark> late")
    );
    Ok(())
}
