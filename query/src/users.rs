//! `GET /api/users/:id`: a user's public profile with `status` and `lastSeenAt`.

use crate::{QueryState, iso, wait};
use api::{ApiError, ErrorCode};
use axum::Json;
use axum::extract::{Path, Query, State};
use events::UserId;
use sqlx::Row;
use std::collections::HashMap;
use wire::rest::UserProfile;

pub async fn get(
    State(s): State<QueryState>,
    crate::Reader(_who): crate::Reader,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<UserProfile>, ApiError> {
    let id = UserId::parse(&id).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    let row =
        sqlx::query("SELECT id, name, avatar_url, status, last_seen_ms FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&s.pool)
            .await
            .map_err(ApiError::unavailable)?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "User not found"))?;
    let status: String = row.get("status");
    let erased = status == "erased";
    Ok(Json(UserProfile {
        id: row.get("id"),
        name: (!erased).then(|| row.get("name")),
        avatar_url: if erased { None } else { row.get("avatar_url") },
        status,
        last_seen_at: iso(row.get("last_seen_ms")),
    }))
}
