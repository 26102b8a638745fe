//! [`Chain`]: appends commits to one aggregate the way the executor does (next version, the
//! subject's last position as the expectation, the previous commit's hash), without deciding
//! anything. For seeding logs in tests and benchmarks.

use crate::{EventLog, LogError};
use events::{Commit, CommitHash, EventKind, Metadata};

pub struct Chain<'a, L> {
    log: &'a L,
    subject: String,
    id: String,
    /// The aggregate's version after the last commit (its number of events).
    pub version: u64,
    last: u64,
    hash: CommitHash,
}

impl<'a, L: EventLog> Chain<'a, L> {
    /// A new aggregate `id` on `subject` (nothing appended to it yet).
    pub fn new(log: &'a L, subject: String, id: &str) -> Self {
        Self {
            log,
            subject,
            id: id.to_owned(),
            version: 0,
            last: 0,
            hash: [0; 32],
        }
    }

    /// Appends one commit of `events`; returns its position.
    pub async fn commit<E: EventKind>(
        &mut self,
        meta: &Metadata,
        events: &[E],
    ) -> Result<u64, LogError> {
        let commit = Commit::new(&self.id, self.version, self.hash, meta, events);
        self.last = self.log.append(&self.subject, &commit, self.last).await?;
        self.version = commit.next_version();
        self.hash = commit.hash();
        Ok(self.last)
    }
}
