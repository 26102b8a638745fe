//! As-of reads (contract 4.3): `GET /api/messages?conversationId=&asOf=POSITION` answers a
//! page as the conversation stood right after that log position: the messages sent by then,
//! each with the content, edit, deletion and reactions of that moment. Paging is the live
//! list's (`after`, `before`, `limit` by `seq`).
//!
//! The page is read from the log, never replayed: the chat projection's index of commit
//! positions (`messages.position` for each send, `message_changes` for each later change)
//! names the few commits that make the page, and each is read at its position. A read costs
//! what its page holds, wherever `asOf` falls in the conversation.
//!
//! Must not change anything, nor show what can no longer be read: content that was erased or
//! has expired since reads `null`, with its flag, as on every read path.

use crate::QueryState;
use crate::messages::{Cursor, Page, message_of, page_rows};
use api::ApiError;
use eventlog::{EventLog, StoredCommit};
use events::{ConversationEvent, ConversationId, EventKind};
use futures::{StreamExt, TryStreamExt};
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};
use wire::Timestamp;
use wire::rest::{Message, MessagePage, MessageReaction};

/// Commits read from the log at once.
const READS_IN_FLIGHT: usize = 16;

/// The page of `conversation` at `cursor` as it stood at `position` (the caller is checked to
/// be a participant and the read models to have reached `position`).
pub async fn page(
    s: &QueryState,
    conversation: &ConversationId,
    position: u64,
    cursor: Cursor,
    limit: i64,
) -> Result<MessagePage, ApiError> {
    let at = i64::try_from(position).unwrap_or(i64::MAX);
    let last: Option<(i64,)> = sqlx::query_as(
        "SELECT seq FROM messages WHERE conversation_id = $1 AND position <= $2
         ORDER BY position DESC, seq DESC LIMIT 1",
    )
    .bind(conversation.as_str())
    .bind(at)
    .fetch_optional(&s.pool)
    .await
    .map_err(ApiError::unavailable)?;
    let Some((last_seq,)) = last else {
        return Ok(MessagePage {
            messages: vec![],
            has_more: false,
        });
    };
    let page = Page {
        cursor,
        limit,
        up_to_seq: last_seq,
        parent: None,
    };
    let (rows, has_more) = page_rows(&s.pool, conversation, page).await?;
    let mut positions: BTreeSet<i64> = rows.iter().map(|r| r.get("position")).collect();
    // A thread's summary is not rebuilt as it stood: left out of as-of pages.
    let mut messages: Vec<Message> = rows
        .iter()
        .map(message_of)
        .map(|m| Message { thread: None, ..m })
        .collect();
    if !messages.is_empty() {
        let sql = format!(
            "SELECT position FROM message_changes WHERE position <= $1 AND message_id IN ({})",
            readstore::placeholders(2, messages.len())
        );
        let mut query = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)).bind(at);
        for m in &messages {
            query = query.bind(m.id.as_str());
        }
        let changes = query
            .fetch_all(&s.pool)
            .await
            .map_err(ApiError::unavailable)?;
        positions.extend(changes.into_iter().map(|(p,)| p));
    }
    let subject = s.subjects.conversation(conversation);
    let commits: Vec<StoredCommit> = futures::stream::iter(positions)
        .map(|p| read_at(s, &subject, u64::try_from(p).unwrap_or(0)))
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut by_id: HashMap<String, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    for stored in &commits {
        apply(s, conversation, stored, &mut messages, &mut by_id).await?;
    }
    Ok(MessagePage { messages, has_more })
}

/// The commit of `subject` at `position`.
async fn read_at(s: &QueryState, subject: &str, position: u64) -> Result<StoredCommit, ApiError> {
    match s.log.first_at_or_after(subject, position).await {
        Ok(Some(c)) if c.position == position => Ok(c),
        Ok(_) => Err(ApiError::internal(format!(
            "no commit of {subject} at position {position}"
        ))),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// Sets the page's messages as `stored` (read in log order) left them.
async fn apply(
    s: &QueryState,
    conversation: &ConversationId,
    stored: &StoredCommit,
    messages: &mut [Message],
    by_id: &mut HashMap<String, usize>,
) -> Result<(), ApiError> {
    let c = &stored.commit;
    if c.aggregate_type != ConversationEvent::AGGREGATE {
        return Ok(());
    }
    let events = c
        .decode_events::<ConversationEvent>()
        .map_err(ApiError::internal)?;
    let keys = s
        .keyring
        .prepare_commit(c)
        .await
        .map_err(ApiError::unavailable)?;
    let conv = conversation.as_str();
    for r in events {
        let Some(&i) = (match &r.event {
            ConversationEvent::MessageSent(e) => by_id.get(e.message_id.as_str()),
            other => other
                .changed_message()
                .and_then(|id| by_id.get(id.as_str())),
        }) else {
            continue;
        };
        let m = &mut messages[i];
        // What no longer opens (erased, expired) stays `null`, as the read models show it now.
        let gone = m.erased || m.expired;
        match r.event {
            ConversationEvent::MessageSent(e) => {
                let opened = e.open(&keys, conv);
                m.erased |= opened.is_erased();
                m.expired |= opened.is_expired();
                m.content = opened.into_text().filter(|_| !gone);
                m.created_at = Some(Timestamp(e.sent_at));
                m.edited_at = None;
                m.deleted_at = None;
                m.offset = i64::try_from(r.number).unwrap_or(i64::MAX);
                m.reactions.clear();
            }
            ConversationEvent::MessageEdited(e) => {
                let opened = e.open(&keys, conv);
                m.erased |= opened.is_erased();
                m.expired |= opened.is_expired();
                m.content = opened.into_text().filter(|_| !gone);
                m.edited_at = Some(Timestamp(e.edited_at));
            }
            ConversationEvent::MessageDeleted(e) => {
                m.content = None;
                m.deleted_at = Some(Timestamp(e.deleted_at));
            }
            ConversationEvent::ReactionAdded(e) => m.reactions.push(MessageReaction {
                id: e.reaction_id.to_string(),
                emoji: e.emoji.as_str().to_owned(),
                user_id: e.user_id.to_string(),
                created_at: Some(Timestamp(e.created_at)),
            }),
            ConversationEvent::ReactionRemoved(e) => {
                m.reactions.retain(|x| x.id != e.reaction_id.as_str());
            }
            _ => {}
        }
    }
    Ok(())
}
