//! `GET /api/audit` (admin): the raw event log, as it was written, sealed fields opened.

use api::{ApiError, Identity, JwtKeys};
use axum::extract::{FromRef, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use eventlog::EventLog;
use events::ConversationId;
use serde::Deserialize;
use std::sync::Arc;
use wire::rest::AuditPage;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

pub struct AuditState<L> {
    pub log: L,
    pub subjects: events::Subjects,
    pub keys: Arc<JwtKeys>,
    /// Opens the sealed fields the entries show.
    pub keyring: Arc<keys::Keyring>,
}

impl<L: Clone> Clone for AuditState<L> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            subjects: self.subjects.clone(),
            keys: self.keys.clone(),
            keyring: self.keyring.clone(),
        }
    }
}

impl<L> FromRef<AuditState<L>> for Arc<JwtKeys> {
    fn from_ref(s: &AuditState<L>) -> Self {
        s.keys.clone()
    }
}

pub fn router<L: EventLog>(state: AuditState<L>) -> Router {
    Router::new()
        .route("/api/audit", get(audit::<L>))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditQuery {
    conversation_id: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `{entries, hasMore, nextAfter}`: up to `limit` commits after position `after`, each event an
/// entry (see `events::audit`).
async fn audit<L: EventLog>(
    State(s): State<AuditState<L>>,
    who: Identity,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    who.require_admin()?;
    let Query(q) = query.map_err(|e| ApiError::invalid_input(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_input(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = q.after.unwrap_or(0);
    let filter = match &q.conversation_id {
        Some(c) => s.subjects.conversation(
            &ConversationId::parse(c).map_err(|e| ApiError::invalid_input(e.to_string()))?,
        ),
        None => s.subjects.all(),
    };
    let (commits, has_more) = eventlog::read_range(&s.log, &filter, after, limit)
        .await
        .map_err(|e| ApiError::from(crate::ExecError::from(e)))?;
    let next_after = commits.last().map_or(after, |c| c.position);
    let mut entries = Vec::new();
    for c in &commits {
        let set = s
            .keyring
            .prepare_commit(&c.commit)
            .await
            .map_err(|e| ApiError::from(crate::error::CommandError::from(e)))?;
        entries.extend(events::audit::entries(c.position, &c.commit, &set));
    }
    Ok(Json(AuditPage {
        entries,
        has_more,
        next_after,
    }))
}
