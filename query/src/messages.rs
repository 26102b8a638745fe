//! `GET /api/messages?conversationId=&after=&before=&limit=&minPosition=`: a page of a
//! conversation's messages by `seq`, always ascending, for participants.

use crate::{QueryState, iso, wait};
use api::{ApiError, ErrorCode, Identity};
use axum::Json;
use axum::extract::{Query, State};
use events::ConversationId;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

fn number(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(key)
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::invalid_input(format!("{key} must be a non-negative integer"))
            })
        })
        .transpose()
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

pub async fn list(
    State(s): State<QueryState>,
    who: Identity,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let conversation = params
        .get("conversationId")
        .ok_or_else(|| ApiError::invalid_input("conversationId is required"))?;
    let conversation =
        ConversationId::parse(conversation).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    let after = number(&params, "after")?;
    let before = number(&params, "before")?;
    let limit = number(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_input(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid_input(
            "after and before cannot be combined",
        ));
    }
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    require_participant(&s.pool, conversation.as_str(), who.user_id.as_str()).await?;

    let base =
        "SELECT m.id, m.conversation_id, m.sender_id, m.seq, m.content, m.temp_id, m.created_ms,
                       m.edited_ms, m.deleted_ms, m.log_offset, u.name, u.avatar_url
                FROM messages m LEFT JOIN users u ON u.id = m.sender_id
                WHERE m.conversation_id = $1";
    let (sql, cursor) = match (after, before) {
        (Some(a), _) => (
            format!("{base} AND m.seq > $2 ORDER BY m.seq ASC LIMIT $3"),
            a,
        ),
        (_, Some(b)) => (
            format!("{base} AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"),
            b,
        ),
        _ => (
            format!("{base} AND m.seq > $2 ORDER BY m.seq DESC LIMIT $3"),
            0,
        ),
    };
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(conversation.as_str())
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&s.pool)
        .await
        .map_err(ApiError::unavailable)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if after.is_none() {
        rows.reverse();
    }
    let mut messages: Vec<Value> = rows.iter().map(message_json).collect();
    attach_reactions(&s.pool, &mut messages).await?;
    Ok(Json(json!({"messages": messages, "hasMore": has_more})))
}

/// Fills each message's `reactions` with `{id, emoji, userId, createdAt}`, oldest first.
async fn attach_reactions(pool: &AnyPool, messages: &mut [Value]) -> Result<(), ApiError> {
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id, message_id, user_id, emoji, created_ms FROM reactions
         WHERE message_id IN ({}) ORDER BY created_ms, id",
        readstore::placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(pool).await.map_err(ApiError::unavailable)?;
    let mut by_message: HashMap<String, Vec<Value>> = HashMap::new();
    for r in rows {
        by_message
            .entry(r.get("message_id"))
            .or_default()
            .push(json!({
                "id": r.get::<String, _>("id"),
                "emoji": r.get::<String, _>("emoji"),
                "userId": r.get::<String, _>("user_id"),
                "createdAt": iso(r.get("created_ms")),
            }));
    }
    for m in messages.iter_mut() {
        if let Some(list) = m["id"].as_str().and_then(|id| by_message.remove(id)) {
            m["reactions"] = Value::Array(list);
        }
    }
    Ok(())
}

fn message_json(r: &sqlx::any::AnyRow) -> Value {
    let sender_id: String = r.get("sender_id");
    let name: Option<String> = r.get("name");
    let avatar: Option<String> = r.get("avatar_url");
    let mut sender = json!({"id": sender_id, "name": name.unwrap_or_else(|| sender_id.clone())});
    if let Some(a) = avatar {
        sender["avatarUrl"] = a.into();
    }
    let mut m = json!({
        "id": r.get::<String, _>("id"),
        "conversationId": r.get::<String, _>("conversation_id"),
        "senderId": sender_id,
        "seq": r.get::<i64, _>("seq"),
        "content": r.get::<Option<String>, _>("content"),
        "createdAt": iso(r.get("created_ms")),
        "editedAt": iso(r.get("edited_ms")),
        "deletedAt": iso(r.get("deleted_ms")),
        "offset": r.get::<i64, _>("log_offset"),
        "sender": sender,
        "reactions": [],
    });
    if let Some(t) = r.get::<Option<String>, _>("temp_id") {
        m["tempId"] = t.into();
    }
    m
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
