//! The `chat` projection: users, conversations (with `lastMessageAt`), participants and
//! messages.

use crate::ProjectionError;
use eventlog::StoredCommit;
use events::{ConversationEvent, EventKind, UserEvent};
use sqlx::AnyConnection;

pub const NAME: &str = "chat";

/// The `chat` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chat;

impl crate::Projection for Chat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        stored: &'a StoredCommit,
    ) -> futures::future::BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(tx, stored))
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "users",
            "conversations",
            "participants",
            "messages",
            "message_deliveries",
            "message_reads",
            "reactions",
        ]
    }

    fn ddl(&self) -> &'static [&'static str] {
        &[
            include_str!("../../migrations/0001_read_models.sql"),
            include_str!("../../migrations/0002_receipts_and_reactions.sql"),
        ]
    }
}

fn pos(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

/// Applies one commit inside the caller's transaction.
pub async fn apply(tx: &mut AnyConnection, stored: &StoredCommit) -> Result<(), ProjectionError> {
    let c = &stored.commit;
    let at = c.occurred_at;
    let decode_err =
        |e: events::CodecError| ProjectionError::Decode(stored.position, e.to_string());
    match c.aggregate_type.as_str() {
        t if t == UserEvent::AGGREGATE => {
            for r in c.decode_events::<UserEvent>().map_err(decode_err)? {
                apply_user(tx, &c.aggregate_id, at, &r.event).await?;
            }
        }
        t if t == ConversationEvent::AGGREGATE => {
            let conv = &c.aggregate_id;
            for r in c.decode_events::<ConversationEvent>().map_err(decode_err)? {
                match &r.event {
                    ConversationEvent::Created(e) => {
                        sqlx::query(
                            "INSERT INTO conversations (id, title, created_by, created_ms, position)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(conv)
                        .bind(&e.title)
                        .bind(e.created_by.as_str())
                        .bind(at)
                        .bind(pos(stored.position))
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::ParticipantAdded(e) => {
                        sqlx::query(
                            "INSERT INTO participants (conversation_id, user_id, role, active, joined_ms)
                             VALUES ($1, $2, $3, TRUE, $4)
                             ON CONFLICT (conversation_id, user_id)
                             DO UPDATE SET role = $3, active = TRUE, joined_ms = $4, left_ms = NULL",
                        )
                        .bind(conv)
                        .bind(e.user_id.as_str())
                        .bind(e.role.as_str())
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::ParticipantRemoved(e) => {
                        sqlx::query(
                            "UPDATE participants SET active = FALSE, left_ms = $3
                             WHERE conversation_id = $1 AND user_id = $2",
                        )
                        .bind(conv)
                        .bind(e.user_id.as_str())
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::MessageEdited(e) => {
                        sqlx::query(
                            "UPDATE messages SET content = $2, edited_ms = $3 WHERE id = $1",
                        )
                        .bind(e.message_id.as_str())
                        .bind(e.content.as_str())
                        .bind(e.edited_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::MessageDeleted(e) => {
                        sqlx::query(
                            "UPDATE messages SET content = NULL, deleted_ms = $2 WHERE id = $1",
                        )
                        .bind(e.message_id.as_str())
                        .bind(e.deleted_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::MessagesDelivered(e) => {
                        let pairs = pairs(&e.messages, &e.recipients);
                        insert_pairs(tx, PairTable::Deliveries, &pairs, e.delivered_at).await?;
                    }
                    ConversationEvent::MessagesRead(e) => {
                        let pairs = pairs(&e.messages, std::slice::from_ref(&e.reader));
                        insert_pairs(tx, PairTable::Reads, &pairs, e.read_at).await?;
                    }
                    ConversationEvent::ReactionAdded(e) => {
                        sqlx::query(
                            "INSERT INTO reactions (id, message_id, conversation_id, user_id, emoji, created_ms)
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(e.reaction_id.as_str())
                        .bind(e.message_id.as_str())
                        .bind(conv)
                        .bind(e.user_id.as_str())
                        .bind(e.emoji.as_str())
                        .bind(e.created_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::ReactionRemoved(e) => {
                        sqlx::query("DELETE FROM reactions WHERE id = $1")
                            .bind(e.reaction_id.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    ConversationEvent::MessageSent(m) => {
                        sqlx::query(
                            "INSERT INTO messages
                               (id, conversation_id, seq, sender_id, content, temp_id, created_ms, log_offset, position)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(m.message_id.as_str())
                        .bind(conv)
                        .bind(pos(m.seq))
                        .bind(m.sender_id.as_str())
                        .bind(m.content.as_str())
                        .bind(m.temp_id.as_ref().map(|t| t.as_str()))
                        .bind(m.sent_at)
                        .bind(pos(r.number))
                        .bind(pos(stored.position))
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "UPDATE conversations SET last_message_ms = $2, last_seq = $3 WHERE id = $1",
                        )
                        .bind(conv)
                        .bind(m.sent_at)
                        .bind(pos(m.seq))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        other => tracing::warn!(
            aggregate = other,
            "projector: unknown aggregate type, skipped"
        ),
    }
    Ok(())
}

/// The (message, user, time) tables: deliveries and reads.
enum PairTable {
    Deliveries,
    Reads,
}

/// Pairs per statement: three parameters each, well under either engine's limit.
const PAIRS_PER_STATEMENT: usize = 300;

/// Inserts every (message, user) pair at `at`, once.
async fn insert_pairs(
    tx: &mut AnyConnection,
    table: PairTable,
    pairs: &[(&str, &str)],
    at: i64,
) -> Result<(), sqlx::Error> {
    let (table, column) = match table {
        PairTable::Deliveries => ("message_deliveries", "delivered_ms"),
        PairTable::Reads => ("message_reads", "read_ms"),
    };
    for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
        // Each row is ($1 = at, $n = message, $n+1 = user).
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i))
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({column}, message_id, user_id) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
        for (message, user) in chunk {
            query = query.bind(*message).bind(*user);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Every (message, user) pair.
fn pairs<'a>(
    messages: &'a [events::MessageRefV1],
    users: &'a [events::UserId],
) -> Vec<(&'a str, &'a str)> {
    messages
        .iter()
        .flat_map(|m| users.iter().map(|u| (m.message_id.as_str(), u.as_str())))
        .collect()
}

async fn apply_user(
    tx: &mut AnyConnection,
    id: &str,
    at: i64,
    event: &UserEvent,
) -> Result<(), sqlx::Error> {
    match event {
        UserEvent::Registered(e) => {
            sqlx::query(
                "INSERT INTO users (id, name, avatar_url, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (id) DO UPDATE SET name = $2, avatar_url = $3, updated_ms = $4",
            )
            .bind(id)
            .bind(&e.name)
            .bind(&e.avatar_url)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        UserEvent::Updated(e) => {
            sqlx::query(
                "UPDATE users SET name = $2, avatar_url = $3, updated_ms = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(&e.name)
            .bind(&e.avatar_url)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        UserEvent::Suspended(_) | UserEvent::Reinstated(_) => {
            let status = if matches!(event, UserEvent::Suspended(_)) {
                "suspended"
            } else {
                "active"
            };
            sqlx::query("UPDATE users SET status = $2, updated_ms = $3 WHERE id = $1")
                .bind(id)
                .bind(status)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        UserEvent::LastSeen(e) => {
            sqlx::query("UPDATE users SET last_seen_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(e.last_seen_at)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}
