//! `GET /api/search?q=&conversationId=&limit=&minPosition=` (contract 4.3): messages whose text
//! holds every word of `q` (stemmed), best first, from the `search` projection, in the
//! conversations the caller takes part in now.
//!
//! Must not decide how words match: `readstore::search` does, for each engine.

use crate::messages::{by_ids, limit, require_participant};
use crate::{QueryState, wait};
use api::ApiError;
use axum::Json;
use axum::extract::{Query, State};
use events::ConversationId;
use std::collections::HashMap;
use wire::rest::{SearchResult, SearchResults};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 50;
/// The longest `q`, in characters, and the most words it may hold.
pub const MAX_QUERY_CHARS: usize = 500;
pub const MAX_QUERY_WORDS: usize = 32;

pub async fn search(
    State(s): State<QueryState>,
    crate::Reader(who): crate::Reader,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<SearchResults>, ApiError> {
    let q = params.get("q").map(String::as_str).unwrap_or_default();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid_input(format!(
            "q must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    let words = readstore::search::words(q);
    if words.is_empty() {
        return Err(ApiError::invalid_input(
            "q is required and must hold at least one word",
        ));
    }
    if words.len() > MAX_QUERY_WORDS {
        return Err(ApiError::invalid_input(format!(
            "q must hold at most {MAX_QUERY_WORDS} words"
        )));
    }
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    let conversation = params
        .get("conversationId")
        .map(|c| ConversationId::parse(c).map_err(|e| ApiError::invalid_input(e.to_string())))
        .transpose()?;
    wait::until(&s.pool, wait::min_position(&params)?).await?;
    if let Some(c) = &conversation {
        require_participant(&s.pool, c.as_str(), who.user_id.as_str()).await?;
    }
    let hits = readstore::search::find(
        &s.pool,
        s.backend,
        &readstore::search::Query {
            words: &words,
            user: who.user_id.as_str(),
            conversation: conversation.as_ref().map(ConversationId::as_str),
            limit,
        },
    )
    .await
    .map_err(ApiError::unavailable)?;
    let ids: Vec<&str> = hits.iter().map(|h| h.message_id.as_str()).collect();
    let mut messages: HashMap<String, wire::rest::Message> = by_ids(&s.pool, &ids)
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    let results = hits
        .into_iter()
        .filter_map(|h| {
            messages.remove(&h.message_id).map(|message| SearchResult {
                message,
                highlight: h.highlight,
            })
        })
        .collect();
    Ok(Json(SearchResults { results }))
}
