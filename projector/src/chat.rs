//! The `chat` projection: users, conversations (with `lastMessageAt`), participants and
//! messages.

use eventlog::StoredCommit;
use events::{ConversationEvent, EventKind, UserEvent};
use sqlx::PgConnection;

pub const NAME: &str = "chat";

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("undecodable commit at {0}: {1}")]
    Decode(u64, String),
}

fn pos(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

/// Applies one commit inside the caller's transaction.
pub async fn apply(tx: &mut PgConnection, stored: &StoredCommit) -> Result<(), ProjectionError> {
    let c = &stored.commit;
    let at = c.occurred_at;
    let decode_err =
        |e: events::CodecError| ProjectionError::Decode(stored.position, e.to_string());
    match c.aggregate_type.as_str() {
        t if t == UserEvent::AGGREGATE => {
            for r in c.decode_events::<UserEvent>().map_err(decode_err)? {
                let (name, avatar) = match &r.event {
                    UserEvent::Registered(e) => (&e.name, &e.avatar_url),
                    UserEvent::Updated(e) => (&e.name, &e.avatar_url),
                };
                sqlx::query(
                    "INSERT INTO users (id, name, avatar_url, created_ms, updated_ms)
                     VALUES ($1, $2, $3, $4, $4)
                     ON CONFLICT (id) DO UPDATE SET name = $2, avatar_url = $3, updated_ms = $4",
                )
                .bind(&c.aggregate_id)
                .bind(name)
                .bind(avatar)
                .bind(at)
                .execute(&mut *tx)
                .await?;
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
