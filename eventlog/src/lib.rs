//! The event log, behind one small trait ([`EventLog`]) so that the command side, the
//! broadcaster and the projector share one way to append, read and follow, and a second
//! backend (the embedded log) can sit beside JetStream.
//!
//! Positions are the log's global sequence numbers (JetStream stream sequence): 1, 2, 3…
//! One stored message is one [`Commit`]. Must not know about aggregates' rules.

pub mod chain;
pub mod copy;
mod embedded;
mod jetstream;
pub mod snapshots;
pub mod verify;

pub use embedded::{EmbeddedLog, subject_matches};
pub use jetstream::{HASH_HEADER, JetStreamLog};
pub use snapshots::{FileSnapshots, JetStreamSnapshots, SnapshotStore, Snapshots};

use events::Commit;
use futures::stream::BoxStream;
use std::future::Future;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The aggregate moved on since it was read (optimistic concurrency).
    #[error("the aggregate was changed concurrently")]
    Conflict,
    /// The log cannot be reached or did not answer in time.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// A stored message does not decode.
    #[error("corrupt commit at position {0}: {1}")]
    Corrupt(u64, String),
}

impl LogError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Conflict => "CONFLICT",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Corrupt(..) => "INTERNAL",
        }
    }
}

/// A commit with where it sits in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCommit {
    pub position: u64,
    pub subject: String,
    pub commit: Commit,
    /// The hash recorded beside the commit when it was written (`Chat-Hash`), if any.
    pub recorded_hash: Option<events::CommitHash>,
}

/// Where following starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Only commits appended after following starts.
    New,
    /// Commits at this position and after.
    Position(u64),
}

pub type CommitStream = BoxStream<'static, Result<StoredCommit, LogError>>;

pub trait EventLog: Clone + Send + Sync + 'static {
    /// Appends one commit to `subject` if the subject's last commit is still at
    /// `expected_last` (0: the subject has none). Returns the commit's position. A retried
    /// append of the same `command_id` returns the first append's position.
    fn append(
        &self,
        subject: &str,
        commit: &Commit,
        expected_last: u64,
    ) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// Every commit of `subject` after position `after`, in order.
    fn read_subject(
        &self,
        subject: &str,
        after: u64,
    ) -> impl Future<Output = Result<Vec<StoredCommit>, LogError>> + Send;

    /// Commits on subjects matching `filter` (a NATS wildcard subject), in log order, without
    /// end. The stream resumes by itself after a broken connection.
    fn follow(
        &self,
        filter: &str,
        from: From,
    ) -> impl Future<Output = Result<CommitStream, LogError>> + Send;

    /// Position of the last commit in the log (0 when empty).
    fn last_position(&self) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// The first commit of `subject` at `position` or after it.
    fn first_at_or_after(
        &self,
        subject: &str,
        position: u64,
    ) -> impl Future<Output = Result<Option<StoredCommit>, LogError>> + Send;
}

/// The log a deployment runs on, chosen once (`chat` opens it from the configuration) and
/// passed down: JetStream, or the embedded file log for a single node.
#[derive(Clone)]
pub enum Log {
    /// Shared: the JetStream context is large, and the log is cloned into every role.
    JetStream(std::sync::Arc<JetStreamLog>),
    Embedded(EmbeddedLog),
}

impl Log {
    /// The backend's name, as `/readyz` and the banner report it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::JetStream(_) => "jetstream",
            Self::Embedded(_) => "embedded",
        }
    }
}

impl EventLog for Log {
    async fn append(
        &self,
        subject: &str,
        commit: &Commit,
        expected_last: u64,
    ) -> Result<u64, LogError> {
        match self {
            Self::JetStream(l) => l.append(subject, commit, expected_last).await,
            Self::Embedded(l) => l.append(subject, commit, expected_last).await,
        }
    }

    async fn read_subject(&self, subject: &str, after: u64) -> Result<Vec<StoredCommit>, LogError> {
        match self {
            Self::JetStream(l) => l.read_subject(subject, after).await,
            Self::Embedded(l) => l.read_subject(subject, after).await,
        }
    }

    async fn follow(&self, filter: &str, from: From) -> Result<CommitStream, LogError> {
        match self {
            Self::JetStream(l) => l.follow(filter, from).await,
            Self::Embedded(l) => l.follow(filter, from).await,
        }
    }

    async fn last_position(&self) -> Result<u64, LogError> {
        match self {
            Self::JetStream(l) => l.last_position().await,
            Self::Embedded(l) => l.last_position().await,
        }
    }

    async fn first_at_or_after(
        &self,
        subject: &str,
        position: u64,
    ) -> Result<Option<StoredCommit>, LogError> {
        match self {
            Self::JetStream(l) => l.first_at_or_after(subject, position).await,
            Self::Embedded(l) => l.first_at_or_after(subject, position).await,
        }
    }
}

/// Below this many events a subject is read from its start: skipping them costs more reads
/// than it saves.
const SEARCH_FROM: u64 = 256;

/// The commits of `subject` that hold events numbered above `version`, in order. Found by a
/// binary search over log positions (a few reads) rather than by reading the subject from its
/// start, so that a catch-up near the end of a long conversation costs what it replays.
pub async fn read_subject_after_version<L: EventLog>(
    log: &L,
    subject: &str,
    version: u64,
) -> Result<Vec<StoredCommit>, LogError> {
    if version < SEARCH_FROM {
        return log.read_subject(subject, 0).await;
    }
    let Some(first) = log.first_at_or_after(subject, 1).await? else {
        return Ok(vec![]);
    };
    if first.commit.next_version() > version {
        return log.read_subject(subject, 0).await;
    }
    // `lo`: a commit whose events are all at or below `version`; from `hi` on, none is.
    let mut lo = first.position;
    let mut hi = log.last_position().await?.saturating_add(1).max(lo + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match log.first_at_or_after(subject, mid).await? {
            Some(c) if c.commit.next_version() <= version && c.position < hi => lo = c.position,
            _ => hi = mid,
        }
    }
    log.read_subject(subject, lo).await
}

/// Up to `limit` commits on `filter` after position `after`, as far as the log reaches now.
/// Returns them and whether more follow.
pub async fn read_range<L: EventLog>(
    log: &L,
    filter: &str,
    after: u64,
    limit: usize,
) -> Result<(Vec<StoredCommit>, bool), LogError> {
    use futures::StreamExt;
    let last = log.last_position().await?;
    if last <= after || limit == 0 {
        return Ok((vec![], false));
    }
    let mut commits = log.follow(filter, From::Position(after + 1)).await?;
    let mut out = Vec::new();
    loop {
        // A filter that matches nothing more would wait forever: stop when the log is idle.
        let next =
            tokio::time::timeout(std::time::Duration::from_millis(500), commits.next()).await;
        let Ok(Some(next)) = next else {
            return Ok((out, false));
        };
        let stored = next?;
        let position = stored.position;
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push(stored);
        if position >= last {
            return Ok((out, false));
        }
    }
}
