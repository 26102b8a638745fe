//! `GET /api/users/:id`: a user's public profile with `status` and `lastSeenAt`.

use crate::{QueryState, iso, wait};
use api::{ApiError, ErrorCode, Identity};
use axum::Json;
use axum::extract::{Path, Query, State};
use events::UserId;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;

pub async fn get(
    State(s): State<QueryState>,
    _who: Identity,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = UserId::parse(&id).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    let row =
        sqlx::query("SELECT id, name, avatar_url, status, last_seen_ms FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&s.pool)
            .await
            .map_err(ApiError::unavailable)?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "User not found"))?;
    Ok(Json(json!({
        "id": row.get::<String, _>("id"),
        "name": row.get::<String, _>("name"),
        "avatarUrl": row.get::<Option<String>, _>("avatar_url"),
        "status": row.get::<String, _>("status"),
        "lastSeenAt": iso(row.get("last_seen_ms")),
    })))
}
