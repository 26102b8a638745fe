//! `GET /api/holds` (admin): the legal holds in force, and the lookup erasure makes before it
//! destroys anything.

use crate::{QueryState, iso, wait};
use api::{ApiError, ErrorCode};
use axum::Json;
use axum::extract::{Query, State};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use wire::rest::{Hold, HoldList};

pub async fn list(
    State(s): State<QueryState>,
    crate::Reader(who): crate::Reader,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<HoldList>, ApiError> {
    if !who.admin {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "Admin role required",
        ));
    }
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    let rows = sqlx::query(
        "SELECT kind, target_id, reason, actor, since_ms, position FROM holds
         ORDER BY since_ms, kind, target_id",
    )
    .fetch_all(&s.pool)
    .await
    .map_err(ApiError::unavailable)?;
    Ok(Json(HoldList {
        holds: rows
            .iter()
            .map(|r| Hold {
                kind: r.get("kind"),
                id: r.get("target_id"),
                reason: r.get("reason"),
                actor: r.get("actor"),
                since: iso(r.get("since_ms")),
                position: r.get("position"),
            })
            .collect(),
    }))
}

/// A held conversation holding a message of `user` (its id and the hold's reason), as the
/// read models know it.
pub async fn held_conversation_of(
    pool: &AnyPool,
    user: &str,
) -> Result<Option<(String, String)>, ApiError> {
    sqlx::query_as(
        "SELECT h.target_id, h.reason FROM holds h
         WHERE h.kind = 'conversation' AND EXISTS (
             SELECT 1 FROM messages m WHERE m.conversation_id = h.target_id AND m.sender_id = $1)
         ORDER BY h.since_ms LIMIT 1",
    )
    .bind(user)
    .fetch_optional(pool)
    .await
    .map_err(ApiError::unavailable)
}
