//! The `chat` projection: users, conversations (with `lastMessageAt`), participants,
//! messages and the legal holds in force.

use crate::ProjectionError;
use eventlog::StoredCommit;
use events::{ConversationEvent, EventKind, UserEvent};
use sqlx::AnyConnection;

pub const NAME: &str = "chat";

/// The `chat` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chat;

impl crate::Projection for Chat {
    type Pending = Pending;
    type Prepared = ();

    const NAME: &'static str = NAME;

    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
        stored: &'a StoredCommit,
        keys: &'a keys::KeySet,
        _prepared: (),
    ) -> futures::future::BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(tx, pending, stored, keys))
    }

    fn flush<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
    ) -> futures::future::BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move { Ok(pending.flush(tx).await?) })
    }

    fn committed<'a>(
        &'a self,
        store: &'a readstore::ReadStore,
        pending: &'a Pending,
    ) -> futures::future::BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if pending.erasures > 0 {
                store.purge_freed().await?;
            }
            Ok(())
        })
    }

    fn tables(&self, _backend: readstore::Backend) -> &'static [&'static str] {
        &[
            "users",
            "conversations",
            "participants",
            "messages",
            "message_deliveries",
            "message_reads",
            "reactions",
            "holds",
            "message_changes",
            "mentions",
            "pins",
        ]
    }

    fn ddl(&self, _backend: readstore::Backend) -> &'static [&'static str] {
        &[
            include_str!("../../migrations/0001_read_models.sql"),
            include_str!("../../migrations/0002_receipts_and_reactions.sql"),
            include_str!("../../migrations/0004_erasure.sql"),
            include_str!("../../migrations/0005_holds.sql"),
            include_str!("../../migrations/0006_retention.sql"),
            include_str!("../../migrations/0007_message_changes.sql"),
            include_str!("../../migrations/0008_threads_mentions_pins.sql"),
        ]
    }
}

fn pos(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

/// A message row held back for a multi-row insert.
#[derive(Debug)]
struct MessageRow {
    id: String,
    conversation: String,
    seq: i64,
    sender: String,
    /// `None` once the content's key is destroyed.
    content: Option<String>,
    erased: bool,
    expired: bool,
    temp_id: Option<String>,
    sent_at: i64,
    offset: i64,
    position: i64,
    parent: Option<String>,
}

/// A parent's thread summary, as its latest reply in the batch left it.
#[derive(Debug)]
struct ThreadRow {
    replies: i64,
    last_reply_ms: i64,
    participants: String,
}

/// The writes of the hot path (messages sent, delivered, read), held back within a
/// transaction and sent as multi-row statements; every other event flushes them first, so
/// the order of effects is the log's.
#[derive(Debug, Default)]
pub struct Pending {
    messages: Vec<MessageRow>,
    /// Each conversation's latest message: (sent at, seq).
    latest: std::collections::HashMap<String, (i64, i64)>,
    deliveries: Vec<(String, String, i64)>,
    reads: Vec<(String, String, i64)>,
    /// Threads by parent id, updated after the messages are inserted.
    threads: std::collections::HashMap<String, ThreadRow>,
    /// (user, message, conversation, position).
    mentions: Vec<(String, String, String, i64)>,
    /// Erasures and expiries in this batch: the text they null must then leave the store's
    /// files.
    erasures: usize,
}

/// Rows per multi-row statement: 12 parameters each, well under either engine's limit.
const ROWS_PER_STATEMENT: usize = 500;

impl Pending {
    pub async fn flush(&mut self, tx: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for chunk in self.messages.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO messages
                   (id, conversation_id, seq, sender_id, content, erased, expired, temp_id,
                    created_ms, log_offset, position, parent_id)
                 VALUES {}",
                readstore::values(1, chunk.len(), 12)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                query = query
                    .bind(m.id.as_str())
                    .bind(m.conversation.as_str())
                    .bind(m.seq)
                    .bind(m.sender.as_str())
                    .bind(m.content.as_deref())
                    .bind(m.erased)
                    .bind(m.expired)
                    .bind(m.temp_id.as_deref())
                    .bind(m.sent_at)
                    .bind(m.offset)
                    .bind(m.position)
                    .bind(m.parent.as_deref());
            }
            query.execute(&mut *tx).await?;
        }
        self.messages.clear();
        for (parent, t) in self.threads.drain() {
            sqlx::query(
                "UPDATE messages SET reply_count = $2, last_reply_ms = $3, thread_participants = $4
                 WHERE id = $1",
            )
            .bind(parent)
            .bind(t.replies)
            .bind(t.last_reply_ms)
            .bind(t.participants)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in self.mentions.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO mentions (user_id, message_id, conversation_id, position) VALUES {}
                 ON CONFLICT DO NOTHING",
                readstore::values(1, chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (user, message, conversation, position) in chunk {
                query = query
                    .bind(user.as_str())
                    .bind(message.as_str())
                    .bind(conversation.as_str())
                    .bind(*position);
            }
            query.execute(&mut *tx).await?;
        }
        self.mentions.clear();
        for (conversation, (sent_at, seq)) in self.latest.drain() {
            sqlx::query(
                "UPDATE conversations SET last_message_ms = $2, last_seq = $3 WHERE id = $1",
            )
            .bind(conversation)
            .bind(sent_at)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        insert_pairs(tx, PairTable::Deliveries, &self.deliveries).await?;
        self.deliveries.clear();
        insert_pairs(tx, PairTable::Reads, &self.reads).await?;
        self.reads.clear();
        Ok(())
    }
}

/// Applies one commit inside the caller's transaction.
pub async fn apply(
    tx: &mut AnyConnection,
    pending: &mut Pending,
    stored: &StoredCommit,
    keys: &keys::KeySet,
) -> Result<(), ProjectionError> {
    let c = &stored.commit;
    let at = c.occurred_at;
    let decode_err =
        |e: events::CodecError| ProjectionError::Decode(stored.position, e.to_string());
    match c.aggregate_type.as_str() {
        t if t == UserEvent::AGGREGATE => {
            for r in c.decode_events::<UserEvent>().map_err(decode_err)? {
                pending.flush(tx).await?;
                if matches!(r.event, UserEvent::Erased(_)) {
                    pending.erasures += 1;
                }
                match &r.event {
                    UserEvent::Held(h) => {
                        place_hold(tx, "user", c, stored.position, &h.reason).await?;
                    }
                    UserEvent::Released(_) => release_hold(tx, "user", &c.aggregate_id).await?,
                    _ => apply_user(tx, &c.aggregate_id, at, &r.event, keys).await?,
                }
            }
        }
        t if t == ConversationEvent::AGGREGATE => {
            let conv = &c.aggregate_id;
            for r in c.decode_events::<ConversationEvent>().map_err(decode_err)? {
                let buffered = matches!(
                    r.event,
                    ConversationEvent::MessageSent(_)
                        | ConversationEvent::MessagesDelivered(_)
                        | ConversationEvent::MessagesRead(_)
                );
                if !buffered {
                    pending.flush(tx).await?;
                }
                if let Some(changed) = r.event.changed_message() {
                    sqlx::query(
                        "INSERT INTO message_changes (message_id, position) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(changed.as_str())
                    .bind(pos(stored.position))
                    .execute(&mut *tx)
                    .await?;
                }
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
                        let opened = e.open(keys, conv);
                        sqlx::query(
                            "UPDATE messages SET content = $2, edited_ms = $3,
                                    erased = erased OR $4, expired = expired OR $5
                             WHERE id = $1",
                        )
                        .bind(e.message_id.as_str())
                        .bind(opened.text())
                        .bind(e.edited_at)
                        .bind(opened.is_erased())
                        .bind(opened.is_expired())
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
                        unpin(tx, e.message_id.as_str()).await?;
                    }
                    ConversationEvent::MessagePinned(e) => {
                        sqlx::query(
                            "INSERT INTO pins (message_id, conversation_id, pinned_by, pinned_ms, position)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(e.message_id.as_str())
                        .bind(conv)
                        .bind(e.pinned_by.as_str())
                        .bind(e.pinned_at)
                        .bind(pos(stored.position))
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::MessageUnpinned(e) => {
                        unpin(tx, e.message_id.as_str()).await?;
                    }
                    ConversationEvent::MessagesDelivered(e) => {
                        add_pairs(
                            &mut pending.deliveries,
                            &e.messages,
                            &e.recipients,
                            e.delivered_at,
                        );
                    }
                    ConversationEvent::MessagesRead(e) => {
                        add_pairs(
                            &mut pending.reads,
                            &e.messages,
                            std::slice::from_ref(&e.reader),
                            e.read_at,
                        );
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
                    ConversationEvent::Held(h) => {
                        place_hold(tx, "conversation", c, stored.position, &h.reason).await?;
                    }
                    ConversationEvent::Released(_) => {
                        release_hold(tx, "conversation", conv).await?;
                    }
                    ConversationEvent::RetentionSet(e) => {
                        let seconds = e
                            .retention_seconds
                            .map(|s| i64::try_from(s).unwrap_or(i64::MAX));
                        sqlx::query(
                            "UPDATE conversations SET retention_seconds = $2 WHERE id = $1",
                        )
                        .bind(conv)
                        .bind(seconds)
                        .execute(&mut *tx)
                        .await?;
                    }
                    ConversationEvent::MessagesExpired(e) => {
                        sqlx::query(
                            "UPDATE messages SET content = NULL, expired = TRUE
                             WHERE conversation_id = $1 AND seq <= $2 AND NOT expired",
                        )
                        .bind(conv)
                        .bind(pos(e.upto_seq))
                        .execute(&mut *tx)
                        .await?;
                        pending.erasures += 1;
                    }
                    ConversationEvent::ReactionRemoved(e) => {
                        sqlx::query("DELETE FROM reactions WHERE id = $1")
                            .bind(e.reaction_id.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    ConversationEvent::MessageSent(m) => {
                        let opened = m.open(keys, conv);
                        pending.messages.push(MessageRow {
                            id: m.message_id.to_string(),
                            conversation: conv.clone(),
                            seq: pos(m.seq),
                            sender: m.sender_id.to_string(),
                            erased: opened.is_erased(),
                            expired: opened.is_expired(),
                            content: opened.into_text(),
                            temp_id: m.temp_id.as_ref().map(|t| t.as_str().to_owned()),
                            sent_at: m.sent_at,
                            offset: pos(r.number),
                            position: pos(stored.position),
                            parent: m.reply.as_ref().map(|p| p.parent_id.to_string()),
                        });
                        pending.latest.insert(conv.clone(), (m.sent_at, pos(m.seq)));
                        if let Some(reply) = &m.reply {
                            pending.threads.insert(
                                reply.parent_id.to_string(),
                                ThreadRow {
                                    replies: pos(reply.reply_count),
                                    last_reply_ms: m.sent_at,
                                    participants: serde_json::to_string(&reply.participant_ids)
                                        .unwrap_or_else(|_| "[]".into()),
                                },
                            );
                        }
                        for u in &m.mentions {
                            pending.mentions.push((
                                u.to_string(),
                                m.message_id.to_string(),
                                conv.clone(),
                                pos(stored.position),
                            ));
                        }
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

async fn unpin(tx: &mut AnyConnection, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pins WHERE message_id = $1")
        .bind(message)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The (message, user, time) tables: deliveries and reads.
enum PairTable {
    Deliveries,
    Reads,
}

/// Inserts every (message, user, at) row once.
async fn insert_pairs(
    tx: &mut AnyConnection,
    table: PairTable,
    rows: &[(String, String, i64)],
) -> Result<(), sqlx::Error> {
    let (table, column) = match table {
        PairTable::Deliveries => ("message_deliveries", "delivered_ms"),
        PairTable::Reads => ("message_reads", "read_ms"),
    };
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} (message_id, user_id, {column}) VALUES {} ON CONFLICT DO NOTHING",
            readstore::values(1, chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (message, user, at) in chunk {
            query = query.bind(message.as_str()).bind(user.as_str()).bind(*at);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Every (message, user) pair, at `at`.
fn add_pairs(
    out: &mut Vec<(String, String, i64)>,
    messages: &[events::MessageRefV1],
    users: &[events::UserId],
    at: i64,
) {
    for m in messages {
        for u in users {
            out.push((m.message_id.to_string(), u.to_string(), at));
        }
    }
}

async fn place_hold(
    tx: &mut AnyConnection,
    kind: &str,
    c: &events::Commit,
    position: u64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO holds (kind, target_id, reason, actor, since_ms, position)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (kind, target_id) DO UPDATE SET reason = $3, actor = $4, since_ms = $5, position = $6",
    )
    .bind(kind)
    .bind(&c.aggregate_id)
    .bind(reason)
    .bind(&c.actor)
    .bind(c.occurred_at)
    .bind(pos(position))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn release_hold(tx: &mut AnyConnection, kind: &str, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM holds WHERE kind = $1 AND target_id = $2")
        .bind(kind)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn apply_user(
    tx: &mut AnyConnection,
    id: &str,
    at: i64,
    event: &UserEvent,
    keys: &keys::KeySet,
) -> Result<(), sqlx::Error> {
    match event {
        UserEvent::Registered(p) => {
            let e = p.open(keys, id);
            sqlx::query(
                "INSERT INTO users (id, name, avatar_url, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (id) DO UPDATE SET name = $2, avatar_url = $3, updated_ms = $4",
            )
            .bind(id)
            // A name that no longer opens (a rebuild after an erasure) is stored empty; the
            // `UserErased` after it marks the user erased.
            .bind(e.name.unwrap_or_default())
            .bind(e.avatar_url)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        UserEvent::Updated(p) => {
            let e = p.open(keys, id);
            sqlx::query(
                "UPDATE users SET name = $2, avatar_url = $3, updated_ms = $4 WHERE id = $1",
            )
            .bind(id)
            // A name that no longer opens (a rebuild after an erasure) is stored empty; the
            // `UserErased` after it marks the user erased.
            .bind(e.name.unwrap_or_default())
            .bind(e.avatar_url)
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
        UserEvent::Erased(_) => {
            sqlx::query(
                "UPDATE users SET name = '', avatar_url = NULL, status = 'erased', updated_ms = $2
                 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE messages SET content = NULL, erased = TRUE WHERE sender_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        UserEvent::Held(_) | UserEvent::Released(_) => {}
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
