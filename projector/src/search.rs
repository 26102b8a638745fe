//! The `search` projection (contract 4.3): the text of every findable message, indexed by the
//! read store's full-text engine (`readstore::search`). Edits reindex; deletion, erasure and
//! expiry take messages out. Built like any projection, so `chat projections rebuild search`
//! replays the log into a fresh index while the old one serves.
//!
//! Must not check participation: the query side does, at query time, so a participant removed
//! later stops finding the conversation at once.

use crate::ProjectionError;
use eventlog::StoredCommit;
use events::{ConversationEvent, EventKind, UserEvent};
use futures::future::BoxFuture;
use readstore::Backend;
use readstore::search::{self, Doc, Remove};
use sqlx::AnyConnection;

pub const NAME: &str = "search";

#[derive(Debug, Clone, Copy, Default)]
pub struct Search;

/// Messages sent, held back within a transaction to be indexed by multi-row statements. Every
/// other event this projection handles flushes them first.
#[derive(Debug, Default)]
pub struct Pending {
    docs: Vec<Doc>,
    erasures: usize,
}

impl Pending {
    async fn flush(&mut self, tx: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if !self.docs.is_empty() {
            search::insert(tx, &self.docs).await?;
            self.docs.clear();
        }
        Ok(())
    }
}

impl crate::Projection for Search {
    type Pending = Pending;
    type Prepared = Vec<Step>;

    const NAME: &'static str = NAME;

    fn prepare(
        &self,
        stored: &StoredCommit,
        keys: &keys::KeySet,
    ) -> Result<Vec<Step>, ProjectionError> {
        prepare(stored, keys)
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
        _stored: &'a StoredCommit,
        _keys: &'a keys::KeySet,
        steps: Vec<Step>,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(tx, pending, steps))
    }

    fn flush<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move { Ok(pending.flush(tx).await?) })
    }

    fn committed<'a>(
        &'a self,
        store: &'a readstore::ReadStore,
        pending: &'a Pending,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if pending.erasures > 0 {
                store.purge_freed().await?;
            }
            Ok(())
        })
    }

    fn tables(&self, backend: Backend) -> &'static [&'static str] {
        match backend {
            Backend::Postgres => &["search_messages"],
            Backend::Sqlite => &["search_messages", "search_text"],
        }
    }

    fn ddl(&self, backend: Backend) -> &'static [&'static str] {
        match backend {
            Backend::Postgres => &[
                crate::CHECKPOINTS_DDL,
                include_str!("../../migrations/postgres/0100_search.sql"),
            ],
            Backend::Sqlite => &[
                crate::CHECKPOINTS_DDL,
                include_str!("../../migrations/sqlite/0100_search.sql"),
            ],
        }
    }
}

/// What one event does to the index, decided without the store.
#[derive(Debug)]
pub enum Step {
    Index(Doc),
    /// An edit: the new text, or none when it cannot be opened (the message leaves).
    Reindex {
        message_id: String,
        text: Option<String>,
    },
    Delete(String),
    Expire {
        conversation: String,
        seq: i64,
    },
    Erase(String),
}

fn prepare(stored: &StoredCommit, keys: &keys::KeySet) -> Result<Vec<Step>, ProjectionError> {
    let c = &stored.commit;
    let decode_err =
        |e: events::CodecError| ProjectionError::Decode(stored.position, e.to_string());
    if c.aggregate_type == UserEvent::AGGREGATE {
        let events = c.decode_events::<UserEvent>().map_err(decode_err)?;
        return Ok(events
            .iter()
            .filter(|r| matches!(r.event, UserEvent::Erased(_)))
            .map(|_| Step::Erase(c.aggregate_id.clone()))
            .collect());
    }
    if c.aggregate_type != ConversationEvent::AGGREGATE {
        return Ok(Vec::new());
    }
    let conv = c.aggregate_id.as_str();
    let events = c.decode_events::<ConversationEvent>().map_err(decode_err)?;
    let mut steps = Vec::with_capacity(events.len());
    for r in events {
        steps.push(match r.event {
            ConversationEvent::MessageSent(m) => match m.open(keys, conv).into_text() {
                Some(content) => Step::Index(Doc {
                    message_id: m.message_id.to_string(),
                    conversation_id: conv.to_owned(),
                    sender_id: m.sender_id.to_string(),
                    seq: i64::try_from(m.seq).unwrap_or(i64::MAX),
                    content,
                }),
                None => continue,
            },
            ConversationEvent::MessageEdited(e) => Step::Reindex {
                text: e.open(keys, conv).text().map(str::to_owned),
                message_id: e.message_id.to_string(),
            },
            ConversationEvent::MessageDeleted(e) => Step::Delete(e.message_id.to_string()),
            ConversationEvent::MessagesExpired(e) => Step::Expire {
                conversation: conv.to_owned(),
                seq: i64::try_from(e.upto_seq).unwrap_or(i64::MAX),
            },
            _ => continue,
        });
    }
    Ok(steps)
}

async fn apply(
    tx: &mut AnyConnection,
    pending: &mut Pending,
    steps: Vec<Step>,
) -> Result<(), ProjectionError> {
    for step in steps {
        if !matches!(step, Step::Index(_)) {
            pending.flush(tx).await?;
        }
        match step {
            Step::Index(doc) => pending.docs.push(doc),
            Step::Reindex {
                message_id,
                text: Some(text),
            } => search::update(tx, &message_id, &text).await?,
            Step::Reindex {
                message_id,
                text: None,
            }
            | Step::Delete(message_id) => search::remove(tx, Remove::Message(&message_id)).await?,
            Step::Expire { conversation, seq } => {
                search::remove(
                    tx,
                    Remove::UpTo {
                        conversation: &conversation,
                        seq,
                    },
                )
                .await?;
                pending.erasures += 1;
            }
            Step::Erase(sender) => {
                search::remove(tx, Remove::Sender(&sender)).await?;
                pending.erasures += 1;
            }
        }
    }
    Ok(())
}
