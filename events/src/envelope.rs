//! The commit: one JetStream message, carrying every event of one command for one aggregate,
//! with who did it, when, why (correlation id), and the hash of the aggregate's previous
//! commit (tamper evidence: an auditor can recompute the chain).

use crate::Millis;
use crate::codec::{CodecError, encode_commit};
use crate::event::EventKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of an encoded commit. The first commit of an aggregate has all zeros as previous.
pub type CommitHash = [u8; 32];

/// Who issued a command, when, and the ids that tie it to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Unique per command; also the `Nats-Msg-Id`, so a retried publish is deduplicated.
    pub command_id: String,
    /// Ties every event and log line of one client request together.
    pub correlation_id: String,
    /// The user who acted (or `admin:<id>` / `system`).
    pub actor: String,
    pub occurred_at: Millis,
}

/// One stored event inside a commit. Never change this struct: add a `StoredEventV2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEventV1 {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u16,
    pub data: Vec<u8>,
}

/// One commit as stored. Never change this struct: add a `CommitV2` and a format byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Number of events the aggregate had before this commit; its first event is `version + 1`.
    pub version: u64,
    pub command_id: String,
    pub correlation_id: String,
    pub actor: String,
    pub occurred_at: Millis,
    pub prev_hash: CommitHash,
    pub events: Vec<StoredEventV1>,
}

/// A decoded event with its place in its aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<E> {
    pub event_id: String,
    /// 1-based number of this event in its aggregate's history. For a conversation this is
    /// the `offset` of room events: strictly increasing, the same on every node.
    pub number: u64,
    pub event: E,
}

impl Commit {
    /// Builds a commit of `events` for aggregate `aggregate_id` that had `version` events and
    /// whose last commit hashed to `prev_hash`. Event ids are `<command_id>-<index>`, so a
    /// retried command produces byte-identical commits.
    pub fn new<E: EventKind>(
        aggregate_id: &str,
        version: u64,
        prev_hash: CommitHash,
        meta: &Metadata,
        events: &[E],
    ) -> Self {
        Self {
            aggregate_type: E::AGGREGATE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            command_id: meta.command_id.clone(),
            correlation_id: meta.correlation_id.clone(),
            actor: meta.actor.clone(),
            occurred_at: meta.occurred_at,
            prev_hash,
            events: events
                .iter()
                .enumerate()
                .map(|(i, e)| StoredEventV1 {
                    event_id: format!("{}-{i}", meta.command_id),
                    event_type: e.event_type().to_owned(),
                    schema_version: e.schema_version(),
                    data: e.encode_data(),
                })
                .collect(),
        }
    }

    /// Decodes the events (upcasting old versions) with their numbers.
    pub fn decode_events<E: EventKind>(&self) -> Result<Vec<Recorded<E>>, CodecError> {
        if self.aggregate_type != E::AGGREGATE {
            return Err(CodecError::WrongAggregate(self.aggregate_type.clone()));
        }
        self.events
            .iter()
            .zip(self.version + 1..)
            .map(|(s, number)| {
                Ok(Recorded {
                    event_id: s.event_id.clone(),
                    number,
                    event: E::decode(&s.event_type, s.schema_version, &s.data)?,
                })
            })
            .collect()
    }

    /// Number of events the aggregate has after this commit.
    pub fn next_version(&self) -> u64 {
        self.version + self.events.len() as u64
    }

    /// The hash the next commit of this aggregate must carry as `prev_hash`.
    pub fn hash(&self) -> CommitHash {
        Sha256::digest(encode_commit(self)).into()
    }
}
