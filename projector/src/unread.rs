//! The `unread` projection: how many messages each participant has not read, per
//! conversation (`unreadCount` of `GET /api/conversations`). Messages sent before a user joined,
//! their own messages and deleted messages do not count.
//!
//! It shows what adding a projection takes: this file, its migration
//! (`migrations/0003_unread_counts.sql`), and a line in `registry::ALL`.

use crate::ProjectionError;
use eventlog::StoredCommit;
use events::{ConversationEvent, EventKind};
use futures::future::BoxFuture;
use sqlx::AnyConnection;
use std::collections::HashMap;

pub const NAME: &str = "unread";

#[derive(Debug, Clone, Copy, Default)]
pub struct Unread;

impl crate::Projection for Unread {
    type Pending = Pending;
    type Prepared = ();

    const NAME: &'static str = NAME;

    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
        stored: &'a StoredCommit,
        _keys: &'a keys::KeySet,
        _prepared: (),
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(tx, pending, stored))
    }

    fn flush<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move { Ok(pending.flush(tx).await?) })
    }

    fn tables(&self, _backend: readstore::Backend) -> &'static [&'static str] {
        &[
            "unread_counts",
            "unread_conversations",
            "unread_message_meta",
            "unread_reads",
        ]
    }

    fn ddl(&self, _backend: readstore::Backend) -> &'static [&'static str] {
        &[
            crate::CHECKPOINTS_DDL,
            include_str!("../../migrations/0003_unread_counts.sql"),
        ]
    }
}

/// Messages sent, held back within a transaction: their metadata rows, each conversation's
/// latest seq, and how many messages each (conversation, sender) added to the others' counts.
/// Every other event flushes them first.
#[derive(Debug, Default)]
pub struct Pending {
    meta: Vec<(String, String, String, i64)>,
    last_seq: HashMap<String, i64>,
    sent: HashMap<String, HashMap<String, i64>>,
}

impl Pending {
    pub async fn flush(&mut self, tx: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for chunk in self.meta.chunks(500) {
            let sql = format!(
                "INSERT INTO unread_message_meta (message_id, conversation_id, sender_id, seq) VALUES {}",
                readstore::values(1, chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (message, conv, sender, seq) in chunk {
                query = query
                    .bind(message.as_str())
                    .bind(conv.as_str())
                    .bind(sender.as_str())
                    .bind(*seq);
            }
            query.execute(&mut *tx).await?;
        }
        self.meta.clear();
        for (conv, seq) in self.last_seq.drain() {
            sqlx::query("UPDATE unread_conversations SET last_seq = $2 WHERE id = $1")
                .bind(conv)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        // One statement per conversation: everyone gains the conversation's new messages, less
        // their own.
        for (conv, senders) in self.sent.drain() {
            let total: i64 = senders.values().sum();
            let cases: Vec<String> = (0..senders.len())
                .map(|i| format!("WHEN ${} THEN ${}", 3 + 2 * i, 4 + 2 * i))
                .collect();
            let sql = format!(
                "UPDATE unread_counts SET unread = unread + $2 - (CASE user_id {} ELSE 0 END)
                 WHERE conversation_id = $1",
                cases.join(" ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(conv).bind(total);
            for (sender, n) in senders {
                query = query.bind(sender).bind(n);
            }
            query.execute(&mut *tx).await?;
        }
        Ok(())
    }
}

async fn apply(
    tx: &mut AnyConnection,
    pending: &mut Pending,
    stored: &StoredCommit,
) -> Result<(), ProjectionError> {
    let c = &stored.commit;
    if c.aggregate_type != ConversationEvent::AGGREGATE {
        return Ok(());
    }
    let conv = c.aggregate_id.as_str();
    let events = c
        .decode_events::<ConversationEvent>()
        .map_err(|e| ProjectionError::Decode(stored.position, e.to_string()))?;
    for r in events {
        // Events this projection reads or writes, other than a message sent, must see the
        // held-back writes; the rest (deliveries, edits, reactions) do not concern it.
        if matches!(
            r.event,
            ConversationEvent::Created(_)
                | ConversationEvent::ParticipantAdded(_)
                | ConversationEvent::ParticipantRemoved(_)
                | ConversationEvent::MessagesRead(_)
                | ConversationEvent::MessageDeleted(_)
        ) {
            pending.flush(tx).await?;
        }
        match &r.event {
            ConversationEvent::Created(_) => {
                sqlx::query("INSERT INTO unread_conversations (id, last_seq) VALUES ($1, 0)")
                    .bind(conv)
                    .execute(&mut *tx)
                    .await?;
            }
            ConversationEvent::ParticipantAdded(e) => {
                sqlx::query(
                    "INSERT INTO unread_counts (conversation_id, user_id, unread, joined_seq)
                     SELECT $1, $2, 0, last_seq FROM unread_conversations WHERE id = $1
                     ON CONFLICT (conversation_id, user_id) DO UPDATE SET unread = 0, joined_seq = EXCLUDED.joined_seq",
                )
                .bind(conv)
                .bind(e.user_id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            ConversationEvent::ParticipantRemoved(e) => {
                sqlx::query(
                    "DELETE FROM unread_counts WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conv)
                .bind(e.user_id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            ConversationEvent::MessageSent(m) => {
                let seq = i64::try_from(m.seq).unwrap_or(i64::MAX);
                pending.meta.push((
                    m.message_id.to_string(),
                    conv.to_owned(),
                    m.sender_id.to_string(),
                    seq,
                ));
                pending.last_seq.insert(conv.to_owned(), seq);
                *pending
                    .sent
                    .entry(conv.to_owned())
                    .or_default()
                    .entry(m.sender_id.to_string())
                    .or_default() += 1;
            }
            ConversationEvent::MessagesRead(e) => {
                let ids: Vec<&str> = e.messages.iter().map(|m| m.message_id.as_str()).collect();
                for chunk in ids.chunks(500) {
                    read(tx, conv, e.reader.as_str(), chunk).await?;
                }
            }
            ConversationEvent::MessageDeleted(e) => {
                let meta: Option<(String, i64)> = sqlx::query_as(
                    "SELECT sender_id, seq FROM unread_message_meta WHERE message_id = $1",
                )
                .bind(e.message_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((sender, seq)) = meta else { continue };
                // Everyone who counted it (joined before it, not its sender, not yet read it).
                sqlx::query(
                    "UPDATE unread_counts SET unread = unread - 1
                     WHERE conversation_id = $1 AND user_id <> $2 AND joined_seq < $3 AND unread > 0
                       AND NOT EXISTS (SELECT 1 FROM unread_reads r
                                       WHERE r.message_id = $4 AND r.user_id = unread_counts.user_id)",
                )
                .bind(conv)
                .bind(sender)
                .bind(seq)
                .bind(e.message_id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `reader` read the messages `ids` of `conv`: those that counted for them and were not read
/// yet come off their count.
async fn read(
    tx: &mut AnyConnection,
    conv: &str,
    reader: &str,
    ids: &[&str],
) -> Result<(), sqlx::Error> {
    let list = readstore::placeholders(3, ids.len());
    let count = format!(
        "SELECT COUNT(*) FROM unread_message_meta m
         JOIN unread_counts u ON u.conversation_id = $1 AND u.user_id = $2
         WHERE m.message_id IN ({list}) AND m.seq > u.joined_seq AND m.sender_id <> u.user_id
           AND NOT EXISTS (SELECT 1 FROM unread_reads r WHERE r.message_id = m.message_id AND r.user_id = $2)"
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(count))
        .bind(conv)
        .bind(reader);
    for id in ids {
        query = query.bind(*id);
    }
    let (newly,): (i64,) = query.fetch_one(&mut *tx).await?;
    let insert = format!(
        "INSERT INTO unread_reads (message_id, user_id)
         SELECT message_id, $2 FROM unread_message_meta WHERE conversation_id = $1 AND message_id IN ({list})
         ON CONFLICT DO NOTHING"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(conv)
        .bind(reader);
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(&mut *tx).await?;
    if newly > 0 {
        sqlx::query(
            "UPDATE unread_counts SET unread = CASE WHEN unread > $3 THEN unread - $3 ELSE 0 END
             WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conv)
        .bind(reader)
        .bind(newly)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
