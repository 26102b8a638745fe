//! The read side: REST read routes over the read models, and read-your-writes waiting
//! (`minPosition`: wait until the projection has caught up with a write's `position`).
//!
//! Must not write anything, nor depend on the command side.

pub mod conversations;
pub mod messages;
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
    pub keys: Arc<JwtKeys>,
}

impl FromRef<QueryState> for Arc<JwtKeys> {
    fn from_ref(s: &QueryState) -> Self {
        s.keys.clone()
    }
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/messages", get(messages::list))
        .route("/api/users/{id}", get(users::get))
        .route("/api/conversations", get(conversations::list))
        .route("/api/conversations/{id}", get(conversations::get))
        .with_state(state)
}

/// Formats optional epoch milliseconds from the read models as ISO 8601.
pub(crate) fn iso(ms: Option<i64>) -> Option<wire::Timestamp> {
    ms.map(wire::Timestamp)
}
