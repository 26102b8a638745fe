//! `GET /api/conversations` (the caller's, with `lastMessageAt`, `unreadCount`,
//! `unreadMentions` and the last message) and `GET /api/conversations/:id` (details,
//! participants and pinned message ids, for participants).

use crate::messages::require_participant;
use crate::{QueryState, iso, wait};
use api::ApiError;
use axum::Json;
use axum::extract::{Path, Query, State};
use events::ConversationId;
use sqlx::Row;
use std::collections::HashMap;
use wire::rest::{
    ConversationDetails, ConversationList, ConversationSummary, LastMessage, Participant,
    ParticipantUser,
};

pub async fn list(
    State(s): State<QueryState>,
    crate::Reader(who): crate::Reader,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ConversationList>, ApiError> {
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    let rows = sqlx::query(
        "SELECT c.id, c.title, c.created_by, c.created_ms, c.last_message_ms, p.role,
                COALESCE(u.unread, 0) AS unread,
                (SELECT COUNT(*) FROM mentions mn JOIN messages mm ON mm.id = mn.message_id
                 WHERE mn.user_id = p.user_id AND mn.conversation_id = c.id
                   AND mm.deleted_ms IS NULL AND mm.sender_id <> mn.user_id
                   AND NOT EXISTS (SELECT 1 FROM message_reads r
                                   WHERE r.message_id = mn.message_id AND r.user_id = mn.user_id)
                ) AS unread_mentions,
                m.id AS m_id, m.sender_id AS m_sender, m.content AS m_content, m.seq AS m_seq,
                m.created_ms AS m_created, m.deleted_ms AS m_deleted
         FROM participants p
         JOIN conversations c ON c.id = p.conversation_id
         LEFT JOIN unread_counts u ON u.conversation_id = c.id AND u.user_id = p.user_id
         LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq
         WHERE p.user_id = $1 AND p.active
         ORDER BY COALESCE(c.last_message_ms, c.created_ms) DESC, c.id",
    )
    .bind(who.user_id.as_str())
    .fetch_all(&s.pool)
    .await
    .map_err(ApiError::unavailable)?;
    let conversations = rows
        .iter()
        .map(|r| ConversationSummary {
            id: r.get("id"),
            title: r.get("title"),
            created_by: r.get("created_by"),
            created_at: iso(r.get("created_ms")),
            last_message_at: iso(r.get("last_message_ms")),
            role: r.get("role"),
            unread_count: r.get("unread"),
            unread_mentions: r.get("unread_mentions"),
            last_message: r.get::<Option<String>, _>("m_id").map(|id| LastMessage {
                id,
                sender_id: r.get("m_sender"),
                content: r.get("m_content"),
                seq: r.get("m_seq"),
                created_at: iso(r.get("m_created")),
                deleted_at: iso(r.get("m_deleted")),
            }),
        })
        .collect();
    Ok(Json(ConversationList { conversations }))
}

pub async fn get(
    State(s): State<QueryState>,
    crate::Reader(who): crate::Reader,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ConversationDetails>, ApiError> {
    let id = ConversationId::parse(&id).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    require_participant(&s.pool, id.as_str(), who.user_id.as_str()).await?;
    let c = sqlx::query("SELECT id, title, created_by, created_ms, last_message_ms, last_seq FROM conversations WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(&s.pool)
        .await
        .map_err(ApiError::unavailable)?;
    let participants = sqlx::query(
        "SELECT p.user_id, p.role, p.joined_ms, u.name, u.status, u.avatar_url, u.last_seen_ms
         FROM participants p LEFT JOIN users u ON u.id = p.user_id
         WHERE p.conversation_id = $1 AND p.active ORDER BY p.joined_ms, p.user_id",
    )
    .bind(id.as_str())
    .fetch_all(&s.pool)
    .await
    .map_err(ApiError::unavailable)?;
    let participants = participants
        .iter()
        .map(|p| {
            let user_id: String = p.get("user_id");
            Participant {
                user: ParticipantUser {
                    id: user_id.clone(),
                    name: crate::shown_name(p.get("name"), p.get("status"), &user_id),
                    avatar_url: p.get("avatar_url"),
                    last_seen_at: iso(p.get("last_seen_ms")),
                },
                user_id,
                role: p.get("role"),
                joined_at: iso(p.get("joined_ms")),
            }
        })
        .collect();
    let pinned: Vec<(String,)> = sqlx::query_as(
        "SELECT message_id FROM pins WHERE conversation_id = $1 ORDER BY position, message_id",
    )
    .bind(id.as_str())
    .fetch_all(&s.pool)
    .await
    .map_err(ApiError::unavailable)?;
    Ok(Json(ConversationDetails {
        id: c.get("id"),
        title: c.get("title"),
        created_by: c.get("created_by"),
        created_at: iso(c.get("created_ms")),
        last_message_at: iso(c.get("last_message_ms")),
        message_count: c.get("last_seq"),
        participants,
        pinned: pinned.into_iter().map(|(m,)| m).collect(),
    }))
}

/// The conversations that have a retention period, for the retention sweeper.
pub async fn with_retention(pool: &sqlx::AnyPool) -> Result<Vec<String>, sqlx::Error> {
    use sqlx::Row;
    let rows =
        sqlx::query("SELECT id FROM conversations WHERE retention_seconds IS NOT NULL ORDER BY id")
            .fetch_all(pool)
            .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
}
