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

    const NAME: &'static str = NAME;

    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Pending,
        stored: &'a StoredCommit,
        keys: &'a keys::KeySet,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(tx, pending, stored, keys))
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

async fn apply(
    tx: &mut AnyConnection,
    pending: &mut Pending,
    stored: &StoredCommit,
    keys: &keys::KeySet,
) -> Result<(), ProjectionError> {
    let c = &stored.commit;
    let decode_err =
        |e: events::CodecError| ProjectionError::Decode(stored.position, e.to_string());
    if c.aggregate_type == UserEvent::AGGREGATE {
        for r in c.decode_events::<UserEvent>().map_err(decode_err)? {
            if matches!(r.event, UserEvent::Erased(_)) {
                pending.flush(tx).await?;
                search::remove(tx, Remove::Sender(&c.aggregate_id)).await?;
                pending.erasures += 1;
            }
        }
        return Ok(());
    }
    if c.aggregate_type != ConversationEvent::AGGREGATE {
        return Ok(());
    }
    let conv = c.aggregate_id.as_str();
    for r in c.decode_events::<ConversationEvent>().map_err(decode_err)? {
        match &r.event {
            ConversationEvent::MessageSent(m) => {
                if let Some(content) = m.open(keys, conv).into_text() {
                    pending.docs.push(Doc {
                        message_id: m.message_id.to_string(),
                        conversation_id: conv.to_owned(),
                        sender_id: m.sender_id.to_string(),
                        seq: i64::try_from(m.seq).unwrap_or(i64::MAX),
                        content,
                    });
                }
            }
            ConversationEvent::MessageEdited(e) => {
                pending.flush(tx).await?;
                match e.open(keys, conv).text() {
                    Some(text) => search::update(tx, e.message_id.as_str(), text).await?,
                    None => search::remove(tx, Remove::Message(e.message_id.as_str())).await?,
                }
            }
            ConversationEvent::MessageDeleted(e) => {
                pending.flush(tx).await?;
                search::remove(tx, Remove::Message(e.message_id.as_str())).await?;
            }
            ConversationEvent::MessagesExpired(e) => {
                pending.flush(tx).await?;
                let seq = i64::try_from(e.upto_seq).unwrap_or(i64::MAX);
                search::remove(
                    tx,
                    Remove::UpTo {
                        conversation: conv,
                        seq,
                    },
                )
                .await?;
                pending.erasures += 1;
            }
            _ => {}
        }
    }
    Ok(())
}
