//! The `unread` projection: how many messages each participant has not read, per
//! conversation (`unreadCount` of `GET /api/conversations`). Messages sent before a user joined,
//! their own messages and deleted messages do not count.
//!
//! It shows what adding a projection takes: this file, its migration
//! (`migrations/0003_unread_counts.sql`), and a line in `ALL` / `by_name` (`lib.rs`).

use crate::ProjectionError;
use eventlog::StoredCommit;
use events::{ConversationEvent, EventKind};
use futures::future::BoxFuture;
use sqlx::PgConnection;

pub const NAME: &str = "unread";

#[derive(Debug, Clone, Copy, Default)]
pub struct Unread;

impl crate::Projection for Unread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        stored: &'a StoredCommit,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(tx, stored))
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "unread_counts",
            "unread_conversations",
            "unread_message_meta",
            "unread_reads",
        ]
    }

    fn ddl(&self) -> &'static [&'static str] {
        &[
            crate::CHECKPOINTS_DDL,
            include_str!("../../migrations/0003_unread_counts.sql"),
        ]
    }
}

async fn apply(tx: &mut PgConnection, stored: &StoredCommit) -> Result<(), ProjectionError> {
    let c = &stored.commit;
    if c.aggregate_type != ConversationEvent::AGGREGATE {
        return Ok(());
    }
    let conv = c.aggregate_id.as_str();
    let events = c
        .decode_events::<ConversationEvent>()
        .map_err(|e| ProjectionError::Decode(stored.position, e.to_string()))?;
    for r in events {
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
                sqlx::query("UPDATE unread_conversations SET last_seq = $2 WHERE id = $1")
                    .bind(conv)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO unread_message_meta (message_id, conversation_id, sender_id, seq) VALUES ($1, $2, $3, $4)",
                )
                .bind(m.message_id.as_str())
                .bind(conv)
                .bind(m.sender_id.as_str())
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE unread_counts SET unread = unread + 1 WHERE conversation_id = $1 AND user_id <> $2")
                    .bind(conv)
                    .bind(m.sender_id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            ConversationEvent::MessagesRead(e) => {
                let ids: Vec<String> = e
                    .messages
                    .iter()
                    .map(|m| m.message_id.to_string())
                    .collect();
                sqlx::query(
                    "WITH newly AS (
                         INSERT INTO unread_reads (message_id, user_id)
                         SELECT message_id, $2 FROM unread_message_meta WHERE message_id = ANY($3)
                         ON CONFLICT DO NOTHING RETURNING message_id)
                     UPDATE unread_counts u SET unread = GREATEST(u.unread - (
                         SELECT COUNT(*) FROM newly n JOIN unread_message_meta m ON m.message_id = n.message_id
                         WHERE m.seq > u.joined_seq AND m.sender_id <> u.user_id), 0)
                     WHERE u.conversation_id = $1 AND u.user_id = $2",
                )
                .bind(conv)
                .bind(e.reader.as_str())
                .bind(ids)
                .execute(&mut *tx)
                .await?;
            }
            ConversationEvent::MessageDeleted(e) => {
                sqlx::query(
                    "UPDATE unread_counts u SET unread = GREATEST(u.unread - 1, 0)
                     FROM unread_message_meta m
                     WHERE m.message_id = $1 AND u.conversation_id = m.conversation_id
                       AND u.user_id <> m.sender_id AND u.joined_seq < m.seq
                       AND NOT EXISTS (SELECT 1 FROM unread_reads r WHERE r.message_id = m.message_id AND r.user_id = u.user_id)",
                )
                .bind(e.message_id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}
