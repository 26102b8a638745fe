//! The projector: follows the event log from its checkpoint and builds the read models (in
//! Postgres, or in the embedded SQLite store: see `readstore`). The checkpoint is written in the same transaction as the rows, positions at or
//! below it are skipped, and any error restarts from the checkpoint (never skipping forward),
//! so each commit takes effect exactly once. One active instance per projection, through a
//! session lock held for as long as it runs (`ReadStore::lock_session`).
//!
//! Must not serve clients.

pub mod chat;
pub mod rebuild;
pub mod registry;
pub mod runner;
pub mod search;
pub mod unread;
pub mod webhook;

pub use runner::{Fault, Projector, ProjectorConfig, checkpoint};

use eventlog::StoredCommit;
use futures::future::BoxFuture;
use sqlx::AnyConnection;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("undecodable commit at {0}: {1}")]
    Decode(u64, String),
    /// The keys of a commit's sealed fields cannot be read now; the batch is retried.
    #[error("keys of the commit at {0}: {1}")]
    Keys(u64, String),
}

/// What turns on the projections that need settings (the webhook's target).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub webhook: Option<webhook::Target>,
}

/// One read model built from the log. Adding a projection: implement this (see `unread.rs`,
/// about 150 lines, or `search.rs`), add its tables as a migration, and one line to
/// [`registry::ALL`].
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the key of its checkpoint and its lock, and its name in the CLI.
    const NAME: &'static str;
    /// Writes a projection holds back within one transaction to send them as multi-row
    /// statements (`()` for none). Whatever is pending must be flushed before any write whose
    /// effect depends on it.
    type Pending: Default + Send;
    /// What [`Projection::prepare`] makes of one commit without the read store: decoded
    /// events, opened text (`()` for a projection that does everything in `apply`).
    type Prepared: Default + Send;
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// The pure part of applying one commit, its sealed fields opened with `keys`. The runner
    /// runs it on the next batch while the current one is written, so what it does here
    /// overlaps the store's work instead of taking turns with it. Must not depend on the read
    /// store: it sees a commit before the previous batch is committed.
    fn prepare(
        &self,
        _stored: &StoredCommit,
        _keys: &keys::KeySet,
    ) -> Result<Self::Prepared, ProjectionError> {
        Ok(Self::Prepared::default())
    }
    /// Applies one commit inside the runner's transaction, its sealed fields opened with
    /// `keys` (prepared by the runner for this commit), with what [`Projection::prepare`] made
    /// of it. Commits arrive once each, in log order; the runner then calls
    /// [`Projection::flush`] and writes the checkpoint in the same transaction.
    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Self::Pending,
        stored: &'a StoredCommit,
        keys: &'a keys::KeySet,
        prepared: Self::Prepared,
    ) -> BoxFuture<'a, Result<(), ProjectionError>>;
    /// Runs once the batch's transaction is committed (the chat projection makes erased text
    /// leave the store's files).
    fn committed<'a>(
        &'a self,
        _store: &'a readstore::ReadStore,
        _pending: &'a Self::Pending,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async { Ok(()) })
    }
    /// Writes what `apply` held back.
    fn flush<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        pending: &'a mut Self::Pending,
    ) -> BoxFuture<'a, Result<(), ProjectionError>>;
    /// The tables it owns on `backend`, for a rebuild's swap.
    fn tables(&self, backend: readstore::Backend) -> &'static [&'static str];
    /// The DDL of those tables on `backend` (unqualified names, the migrations that create
    /// them), for a rebuild into a fresh schema.
    fn ddl(&self, backend: readstore::Backend) -> &'static [&'static str];
}

/// The checkpoint table, for a projection rebuilt into a schema of its own.
pub const CHECKPOINTS_DDL: &str = "CREATE TABLE IF NOT EXISTS projection_checkpoints (projection TEXT PRIMARY KEY, last_position BIGINT NOT NULL);";
