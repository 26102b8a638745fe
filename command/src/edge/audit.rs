//! `GET /api/audit` (admin): the raw event log, as it was written, sealed fields opened; and
//! the exports of a user's or a conversation's events (contract 4.2), also `chat export`.

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
        .route("/api/users/{id}/export", get(export_user::<L>))
        .route(
            "/api/conversations/{id}/export",
            get(export_conversation::<L>),
        )
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

async fn export_user<L: EventLog>(
    State(s): State<AuditState<L>>,
    who: Identity,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::response::Response, ApiError> {
    who.require_admin()?;
    Ok(export(s, Export::User(super::id(&id)?)))
}

async fn export_conversation<L: EventLog>(
    State(s): State<AuditState<L>>,
    who: Identity,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::response::Response, ApiError> {
    who.require_admin()?;
    Ok(export(s, Export::Conversation(super::id(&id)?)))
}

/// `GET /api/users/:id/export`, `GET /api/conversations/:id/export` (admin): the export as
/// `application/x-ndjson`, streamed. An id the log does not know exports no line.
fn export<L: EventLog>(s: AuditState<L>, what: Export) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    let lines = export_lines(s.log, &s.subjects, s.keyring, what)
        .map(|line| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line + "\n")));
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

/// What an export covers (contract 4.2).
#[derive(Debug, Clone)]
pub enum Export {
    /// Every event naming the user: their own, those they acted in, and the conversation
    /// events naming them (as participant, sender, reader, recipient or reactor).
    User(events::UserId),
    /// Every event of the conversation.
    Conversation(ConversationId),
}

/// Commits read per page of an export.
const EXPORT_PAGE: usize = 500;

/// The export as JSON lines, oldest first, each an audit entry (sealed fields opened) with its
/// commit's `hash`. Produced a page at a time into a bounded channel, so its memory does not
/// grow with the history, whatever its length; an error ends it with a last line
/// `{"error": …}`.
pub fn export_lines<L: EventLog>(
    log: L,
    subjects: &events::Subjects,
    keyring: Arc<keys::Keyring>,
    what: Export,
) -> futures::channel::mpsc::Receiver<String> {
    use futures::SinkExt;
    let (mut tx, rx) = futures::channel::mpsc::channel(64);
    let filter = match &what {
        Export::User(_) => subjects.all(),
        Export::Conversation(c) => subjects.conversation(c),
    };
    tokio::spawn(async move {
        let mut after = 0;
        loop {
            let page = eventlog::read_range(&log, &filter, after, EXPORT_PAGE).await;
            let (commits, more) = match page {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx
                        .send(serde_json::json!({"error": e.to_string()}).to_string())
                        .await;
                    return;
                }
            };
            for stored in &commits {
                for line in export_entries(&keyring, &what, stored).await {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                after = stored.position;
            }
            if !more {
                return;
            }
        }
    });
    rx
}

/// The lines `what` takes from one commit.
async fn export_entries(
    keyring: &keys::Keyring,
    what: &Export,
    stored: &eventlog::StoredCommit,
) -> Vec<String> {
    use events::{ConversationEvent, EventKind, UserEvent};
    let commit = &stored.commit;
    let keep: Vec<bool> = match what {
        Export::Conversation(_) => vec![true; commit.events.len()],
        Export::User(user) if commit.aggregate_type == UserEvent::AGGREGATE => {
            vec![commit.aggregate_id == user.as_str(); commit.events.len()]
        }
        Export::User(user) => {
            let actor = commit.actor == user.as_str();
            match commit.decode_events::<ConversationEvent>() {
                Ok(events) => events
                    .iter()
                    .map(|r| actor || r.event.names(user))
                    .collect(),
                Err(_) => vec![actor; commit.events.len()],
            }
        }
    };
    if !keep.contains(&true) {
        return vec![];
    }
    let entries = match keyring.prepare_commit(commit).await {
        Ok(keys) => events::audit::entries(stored.position, commit, &keys),
        Err(e) => return vec![serde_json::json!({"error": e.to_string()}).to_string()],
    };
    let hash = hex::encode(commit.hash());
    entries
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(mut entry, _)| {
            entry["hash"] = hash.clone().into();
            entry.to_string()
        })
        .collect()
}
