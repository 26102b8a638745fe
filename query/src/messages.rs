//! `GET /api/messages?conversationId=&after=&before=&limit=&minPosition=&asOf=&parentId=`: a
//! page of a conversation's messages by `seq`, always ascending, for participants; with
//! `parentId`, the replies of that thread; with `asOf`, as it stood at that log position
//! (`asof.rs`).

use crate::{QueryState, iso, wait};
use api::{ApiError, ErrorCode};
use axum::Json;
use axum::extract::{Query, State};
use eventlog::EventLog;
use events::{ConversationId, MessageId};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use wire::rest::{Message, MessagePage, MessageReaction, Sender, Thread};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub(crate) fn number(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(key)
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::invalid_input(format!("{key} must be a non-negative integer"))
            })
        })
        .transpose()
}

/// `limit` from the query: `default` when absent, else 1 to `max`, or `INVALID_INPUT`.
pub(crate) fn limit(
    params: &HashMap<String, String>,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let limit = number(params, "limit")?.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid_input(format!(
            "limit must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

/// A boolean column selected as `CAST(CASE WHEN … THEN 1 ELSE 0 END AS BIGINT)`: the Any
/// driver decodes no SQLite boolean.
pub(crate) fn flag(r: &sqlx::any::AnyRow, column: &str) -> bool {
    r.get::<i64, _>(column) != 0
}

/// Refuses a reader who is not an active participant (404 for an unknown conversation).
pub async fn require_participant(
    pool: &AnyPool,
    conversation: &str,
    user: &str,
) -> Result<(), ApiError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT CASE WHEN p.active THEN 1 ELSE 0 END FROM conversations c
         LEFT JOIN participants p ON p.conversation_id = c.id AND p.user_id = $2
         WHERE c.id = $1",
    )
    .bind(conversation)
    .bind(user)
    .fetch_optional(pool)
    .await
    .map_err(ApiError::unavailable)?;
    match row {
        None => Err(ApiError::new(ErrorCode::NotFound, "Conversation not found")),
        Some((1,)) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::NotParticipant,
            "Not a participant of this conversation",
        )),
    }
}

/// The columns [`message_of`] reads, for a `WHERE` to follow.
const MESSAGE_ROWS: &str =
    "SELECT m.id, m.conversation_id, m.sender_id, m.seq, m.content, m.temp_id, m.created_ms,
            m.edited_ms, m.deleted_ms, m.log_offset, m.position,
            CAST(CASE WHEN m.erased THEN 1 ELSE 0 END AS BIGINT) AS erased,
            CAST(CASE WHEN m.expired THEN 1 ELSE 0 END AS BIGINT) AS expired, u.name,
            u.status, u.avatar_url, m.parent_id, m.reply_count, m.last_reply_ms,
            m.thread_participants
     FROM messages m LEFT JOIN users u ON u.id = m.sender_id";

/// The messages `ids` as `GET /api/messages` reads them, with their reactions, in the order
/// of `ids` (an id the read models do not hold is left out).
pub async fn by_ids(pool: &AnyPool, ids: &[&str]) -> Result<Vec<Message>, ApiError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let sql = format!(
        "{MESSAGE_ROWS} WHERE m.id IN ({})",
        readstore::placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(pool).await.map_err(ApiError::unavailable)?;
    let mut found: HashMap<String, Message> = rows
        .iter()
        .map(message_of)
        .map(|m| (m.id.clone(), m))
        .collect();
    let mut messages: Vec<Message> = ids.iter().filter_map(|id| found.remove(*id)).collect();
    attach_reactions(pool, &mut messages).await?;
    Ok(messages)
}

pub async fn list(
    State(s): State<QueryState>,
    crate::Reader(who): crate::Reader,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<MessagePage>, ApiError> {
    let conversation = params
        .get("conversationId")
        .ok_or_else(|| ApiError::invalid_input("conversationId is required"))?;
    let conversation =
        ConversationId::parse(conversation).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    let after = number(&params, "after")?;
    let before = number(&params, "before")?;
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid_input(
            "after and before cannot be combined",
        ));
    }
    let cursor = match (after, before) {
        (Some(a), _) => Cursor::After(a),
        (_, Some(b)) => Cursor::Before(b),
        _ => Cursor::Latest,
    };
    let as_of = number(&params, "asOf")?;
    let parent = params
        .get("parentId")
        .map(|p| MessageId::parse(p).map_err(|e| ApiError::invalid_input(e.to_string())))
        .transpose()?;
    if as_of.is_some() && parent.is_some() {
        return Err(ApiError::invalid_input(
            "asOf and parentId cannot be combined",
        ));
    }
    let min_position = wait::min_position(&params)?;
    if let Some(at) = as_of {
        let at = u64::try_from(at).unwrap_or(0);
        let end = s.log.last_position().await.map_err(ApiError::unavailable)?;
        if at > end {
            return Err(ApiError::invalid_input(format!(
                "asOf is past the end of the log (position {end})"
            )));
        }
        // The index of commit positions must reach `asOf`.
        wait::until(&s.pool, Some(min_position.unwrap_or(0).max(at))).await?;
        require_participant(&s.pool, conversation.as_str(), who.user_id.as_str()).await?;
        return Ok(Json(
            crate::asof::page(&s, &conversation, at, cursor, limit).await?,
        ));
    }
    wait::until(&s.pool, min_position).await?;
    require_participant(&s.pool, conversation.as_str(), who.user_id.as_str()).await?;
    if let Some(parent) = &parent
        && locate(&s.pool, parent.as_str()).await?.as_ref() != Some(&conversation)
    {
        return Err(ApiError::new(ErrorCode::NotFound, "Message not found"));
    }
    let page = Page {
        cursor,
        limit,
        up_to_seq: i64::MAX,
        parent: parent.as_ref().map(MessageId::as_str),
    };
    let (rows, has_more) = page_rows(&s.pool, &conversation, page).await?;
    let mut messages: Vec<Message> = rows.iter().map(message_of).collect();
    attach_reactions(&s.pool, &mut messages).await?;
    Ok(Json(MessagePage { messages, has_more }))
}

/// Where a page starts: after a `seq`, before one, or the latest messages.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    After(i64),
    Before(i64),
    Latest,
}

/// Which page of a conversation's messages to read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page<'a> {
    pub cursor: Cursor,
    pub limit: i64,
    /// Only messages up to this `seq`.
    pub up_to_seq: i64,
    /// Only the replies to this message (a thread).
    pub parent: Option<&'a str>,
}

/// The rows (as [`message_of`] reads them) of a page of `conversation`, ascending by `seq`,
/// and whether more lie beyond the page.
pub(crate) async fn page_rows(
    pool: &AnyPool,
    conversation: &ConversationId,
    page: Page<'_>,
) -> Result<(Vec<sqlx::any::AnyRow>, bool), ApiError> {
    let Page {
        cursor,
        limit,
        up_to_seq,
        parent,
    } = page;
    let thread = if parent.is_some() {
        " AND m.parent_id = $5"
    } else {
        ""
    };
    let base = format!("{MESSAGE_ROWS} WHERE m.conversation_id = $1 AND m.seq <= $4{thread}");
    let (sql, from) = match cursor {
        Cursor::After(a) => (
            format!("{base} AND m.seq > $2 ORDER BY m.seq ASC LIMIT $3"),
            a,
        ),
        Cursor::Before(b) => (
            format!("{base} AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"),
            b,
        ),
        Cursor::Latest => (
            format!("{base} AND m.seq > $2 ORDER BY m.seq DESC LIMIT $3"),
            0,
        ),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(conversation.as_str())
        .bind(from)
        .bind(limit + 1)
        .bind(up_to_seq);
    if let Some(parent) = parent {
        query = query.bind(parent);
    }
    let mut rows = query.fetch_all(pool).await.map_err(ApiError::unavailable)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if !matches!(cursor, Cursor::After(_)) {
        rows.reverse();
    }
    Ok((rows, has_more))
}

/// Fills each message's `reactions` with `{id, emoji, userId, createdAt}`, oldest first.
async fn attach_reactions(pool: &AnyPool, messages: &mut [Message]) -> Result<(), ApiError> {
    if messages.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id, message_id, user_id, emoji, created_ms FROM reactions
         WHERE message_id IN ({}) ORDER BY created_ms, id",
        readstore::placeholders(1, messages.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for m in messages.iter() {
        query = query.bind(m.id.as_str());
    }
    let rows = query.fetch_all(pool).await.map_err(ApiError::unavailable)?;
    let mut by_message: HashMap<String, Vec<MessageReaction>> = HashMap::new();
    for r in rows {
        by_message
            .entry(r.get("message_id"))
            .or_default()
            .push(MessageReaction {
                id: r.get("id"),
                emoji: r.get("emoji"),
                user_id: r.get("user_id"),
                created_at: iso(r.get("created_ms")),
            });
    }
    for m in messages.iter_mut() {
        if let Some(list) = by_message.remove(&m.id) {
            m.reactions = list;
        }
    }
    Ok(())
}

pub(crate) fn message_of(r: &sqlx::any::AnyRow) -> Message {
    let sender_id: String = r.get("sender_id");
    let name = crate::shown_name(r.get("name"), r.get("status"), &sender_id);
    Message {
        id: r.get("id"),
        conversation_id: r.get("conversation_id"),
        seq: r.get("seq"),
        content: r.get("content"),
        created_at: iso(r.get("created_ms")),
        edited_at: iso(r.get("edited_ms")),
        deleted_at: iso(r.get("deleted_ms")),
        offset: r.get("log_offset"),
        erased: flag(r, "erased"),
        expired: flag(r, "expired"),
        sender: Sender {
            avatar_url: name.as_ref().and(r.get("avatar_url")),
            name,
            id: sender_id.clone(),
        },
        sender_id,
        reactions: vec![],
        temp_id: r.get("temp_id"),
        parent_id: r.get("parent_id"),
        thread: thread_of(r),
    }
}

/// The thread summary of a message that has replies.
fn thread_of(r: &sqlx::any::AnyRow) -> Option<Thread> {
    let reply_count: i64 = r.get("reply_count");
    (reply_count > 0).then(|| Thread {
        reply_count,
        last_reply_at: iso(r.get("last_reply_ms")),
        participant_ids: r
            .get::<Option<String>, _>("thread_participants")
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
    })
}

/// The conversation of a message, as the read models know it.
pub async fn locate(pool: &AnyPool, message: &str) -> Result<Option<ConversationId>, ApiError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT conversation_id FROM messages WHERE id = $1")
            .bind(message)
            .fetch_optional(pool)
            .await
            .map_err(ApiError::unavailable)?;
    Ok(row.and_then(|(c,)| ConversationId::parse(&c).ok()))
}
