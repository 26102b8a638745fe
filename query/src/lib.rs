//! The read side: REST read routes over the read models, and read-your-writes waiting
//! (`minPosition`: wait until the projection has caught up with a write's `position`). As-of
//! reads also read commits from the log, at positions the read models index.
//!
//! Must not write anything, nor depend on the command side.

pub mod asof;
pub mod conversations;
pub mod holds;
pub mod mentions;
pub mod messages;
pub mod search;
pub mod users;
pub mod wait;

use api::JwtKeys;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use sqlx::AnyPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct QueryState {
    pub pool: AnyPool,
    pub backend: readstore::Backend,
    /// As-of reads read the log (`asof.rs`).
    pub log: eventlog::Log,
    pub subjects: events::Subjects,
    pub keyring: Arc<keys::Keyring>,
    pub keys: Arc<JwtKeys>,
}

impl FromRef<QueryState> for Arc<JwtKeys> {
    fn from_ref(s: &QueryState) -> Self {
        s.keys.clone()
    }
}

/// The caller of a read: a valid token whose user is not erased (an erased user's tokens are
/// refused, contract 4.2). Users the read models do not know (an operator's admin token) pass.
pub struct Reader(pub api::Identity);

impl axum::extract::FromRequestParts<QueryState> for Reader {
    type Rejection = api::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &QueryState,
    ) -> Result<Self, api::ApiError> {
        let who = api::Identity::from_request_parts(parts, state).await?;
        let erased: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1 AND status = 'erased'")
                .bind(who.user_id.as_str())
                .fetch_one(&state.pool)
                .await
                .map_err(api::ApiError::unavailable)?;
        match erased {
            1.. => Err(api::ApiError::new(
                api::ErrorCode::Unauthorized,
                "User erased",
            )),
            _ => Ok(Self(who)),
        }
    }
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/messages", get(messages::list))
        .route("/api/search", get(search::search))
        .route("/api/mentions", get(mentions::list))
        .route("/api/users/{id}", get(users::get))
        .route("/api/conversations", get(conversations::list))
        .route("/api/conversations/{id}", get(conversations::get))
        .route("/api/holds", get(holds::list))
        .with_state(state)
}

/// Formats optional epoch milliseconds from the read models as ISO 8601.
pub(crate) fn iso(ms: Option<i64>) -> Option<wire::Timestamp> {
    ms.map(wire::Timestamp)
}

/// A user's name as the read side shows it (from a `LEFT JOIN users`): `null` once erased, the
/// id when the user is unknown to the read models.
pub(crate) fn shown_name(name: Option<String>, status: Option<String>, id: &str) -> Option<String> {
    match (status.as_deref(), name) {
        (Some("erased"), _) => None,
        (_, Some(n)) => Some(n),
        (_, None) => Some(id.to_owned()),
    }
}
