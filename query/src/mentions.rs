//! `GET /api/mentions?after=&limit=&minPosition=` (contract 4.4): the messages that mention the
//! caller, newest last, each with `read`, in the conversations they take part in now. Paged by
//! the mentioning message's log `position`: no cursor gives the latest `limit`, `after` the
//! first `limit` after it. Deleted messages and the caller's own are left out.

use crate::messages::{DEFAULT_LIMIT, MAX_LIMIT, flag, limit, number};
use crate::{QueryState, iso, wait};
use api::ApiError;
use axum::Json;
use axum::extract::{Query, State};
use sqlx::Row;
use std::collections::HashMap;
use wire::rest::{Mention, MentionPage};

const MENTION_ROWS: &str = "SELECT mn.message_id, mn.conversation_id, mn.position, m.sender_id,
            m.content, m.created_ms,
            CAST(CASE WHEN m.erased THEN 1 ELSE 0 END AS BIGINT) AS erased,
            CAST(CASE WHEN m.expired THEN 1 ELSE 0 END AS BIGINT) AS expired,
            CAST(CASE WHEN EXISTS (SELECT 1 FROM message_reads r
                                   WHERE r.message_id = mn.message_id AND r.user_id = mn.user_id)
                 THEN 1 ELSE 0 END AS BIGINT) AS is_read
     FROM mentions mn
     JOIN messages m ON m.id = mn.message_id
     JOIN participants p
       ON p.conversation_id = mn.conversation_id AND p.user_id = mn.user_id AND p.active
     WHERE mn.user_id = $1 AND m.deleted_ms IS NULL AND m.sender_id <> mn.user_id
       AND mn.position > $2";

pub async fn list(
    State(s): State<QueryState>,
    crate::Reader(who): crate::Reader,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<MentionPage>, ApiError> {
    let after = number(&params, "after")?;
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    let order = if after.is_some() { "ASC" } else { "DESC" };
    let sql =
        format!("{MENTION_ROWS} ORDER BY mn.position {order}, mn.message_id {order} LIMIT $3");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(who.user_id.as_str())
        .bind(after.unwrap_or(0))
        .bind(limit + 1)
        .fetch_all(&s.pool)
        .await
        .map_err(ApiError::unavailable)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if after.is_none() {
        rows.reverse();
    }
    let mentions = rows
        .iter()
        .map(|r| Mention {
            conversation_id: r.get("conversation_id"),
            message_id: r.get("message_id"),
            sender_id: r.get("sender_id"),
            content: r.get("content"),
            erased: flag(r, "erased"),
            expired: flag(r, "expired"),
            created_at: iso(r.get("created_ms")),
            read: flag(r, "is_read"),
            position: r.get("position"),
        })
        .collect();
    Ok(Json(MentionPage { mentions, has_more }))
}
