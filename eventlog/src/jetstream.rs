//! [`EventLog`] on NATS JetStream: one stream, one subject per aggregate, one message per
//! commit. Optimistic concurrency through `Nats-Expected-Last-Subject-Sequence` (error 10071
//! on mismatch), deduplication through `Nats-Msg-Id` = command id. The stream is file-backed,
//! never expires, and denies delete and purge.

use crate::{CommitStream, EventLog, From, LogError, StoredCommit};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use events::{Commit, Subjects, decode_commit, encode_commit};
use futures::StreamExt;
use sha2::Digest;
use std::time::Duration;

#[derive(Clone)]
pub struct JetStreamLog {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    subjects: Subjects,
}

impl std::fmt::Debug for JetStreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLog")
            .field("stream", &self.subjects.stream)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

impl JetStreamLog {
    /// Opens the stream, creating it when missing.
    pub async fn open(
        client: async_nats::Client,
        subjects: Subjects,
        replicas: usize,
    ) -> Result<Self, LogError> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(5));
        let stream = js
            .get_or_create_stream(stream::Config {
                name: subjects.stream.clone(),
                subjects: vec![subjects.all()],
                storage: stream::StorageType::File,
                num_replicas: replicas.max(1),
                deny_delete: true,
                deny_purge: true,
                allow_direct: true,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        Ok(Self {
            client,
            js,
            stream,
            subjects,
        })
    }

    /// Refuses at once while the client is not connected (it reconnects by itself): a request
    /// sent now would only wait for the 5 s timeout, and a command must fail fast with
    /// `UNAVAILABLE` during an outage rather than hang its socket.
    fn connected(&self) -> Result<(), LogError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(LogError::Unavailable(format!("NATS connection {state}"))),
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The JetStream context, for administrative use (tests, `chat events`).
    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    async fn ordered(
        &self,
        filter: &str,
        deliver_policy: consumer::DeliverPolicy,
    ) -> Result<consumer::pull::Ordered, LogError> {
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter.to_owned(),
                deliver_policy,
                // The client re-creates an ordered consumer after two missed idle heartbeats,
                // which it sets to half the pull expiry: 15 s by default, so live delivery and
                // the projections stalled for half a minute when the NATS node holding the
                // consumer died (the cluster fault test). Pulls of 4 s make it ~4 s.
                max_expires: Duration::from_secs(4),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        consumer.messages().await.map_err(unavailable)
    }
}

impl JetStreamLog {
    async fn read_subject_streamed(
        &self,
        subject: &str,
        after: u64,
    ) -> Result<Vec<StoredCommit>, LogError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
        let last = match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => m.sequence,
            Err(e) if matches!(e.kind(), K::NoMessageFound) => return Ok(vec![]),
            Err(e) => return Err(unavailable(e)),
        };
        if last <= after {
            return Ok(vec![]);
        }
        let mut messages = self
            .ordered(
                subject,
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
            )
            .await?;
        let mut out = Vec::new();
        while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| unavailable("timed out reading an aggregate"))?
        {
            let stored = to_stored(&msg.map_err(unavailable)?)?;
            let done = stored.position >= last;
            out.push(stored);
            if done {
                break;
            }
        }
        Ok(out)
    }
}

/// Commits read one by one with direct gets before switching to a consumer.
const DIRECT_READS: usize = 16;

/// Header carrying the SHA-256 of the commit as written, so that an alteration of the last
/// commit of an aggregate (which no successor's `prev_hash` covers) is detected too.
pub const HASH_HEADER: &str = "Chat-Hash";

fn recorded_hash(headers: Option<&HeaderMap>) -> Option<events::CommitHash> {
    let value = headers?.get(HASH_HEADER)?;
    let bytes = hex::decode(value.as_str()).ok()?;
    bytes.try_into().ok()
}

fn stored(
    position: u64,
    subject: &str,
    payload: &[u8],
    headers: Option<&HeaderMap>,
) -> Result<StoredCommit, LogError> {
    let commit = decode_commit(payload).map_err(|e| LogError::Corrupt(position, e.to_string()))?;
    Ok(StoredCommit {
        position,
        subject: subject.to_owned(),
        commit,
        recorded_hash: recorded_hash(headers),
    })
}

fn to_stored(msg: &jetstream::Message) -> Result<StoredCommit, LogError> {
    let position = msg.info().map_err(unavailable)?.stream_sequence;
    stored(
        position,
        msg.subject.as_str(),
        &msg.payload,
        msg.headers.as_ref(),
    )
}

impl EventLog for JetStreamLog {
    async fn append(
        &self,
        subject: &str,
        commit: &Commit,
        expected_last: u64,
    ) -> Result<u64, LogError> {
        self.connected()?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", commit.command_id.as_str());
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected_last.to_string().as_str(),
        );
        if let Some(e) = commit.events.first() {
            headers.insert("Chat-Event-Type", e.event_type.as_str());
            headers.insert("Chat-Schema-Version", e.schema_version.to_string().as_str());
        }
        let bytes = encode_commit(commit);
        let hash: events::CommitHash = sha2::Sha256::digest(&bytes).into();
        headers.insert(HASH_HEADER, hex::encode(hash).as_str());
        let ack = self
            .js
            .publish_with_headers(subject.to_owned(), headers, bytes.into())
            .await
            .map_err(unavailable)?
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::WrongLastSequence => LogError::Conflict,
                _ => unavailable(e),
            })?;
        Ok(ack.sequence)
    }

    async fn read_subject(&self, subject: &str, after: u64) -> Result<Vec<StoredCommit>, LogError> {
        // Catching up a few commits (the usual case after a conflict) costs one direct get
        // each; a longer history switches to an ordered consumer, which streams it.
        let mut out = Vec::new();
        let mut next = after + 1;
        for _ in 0..DIRECT_READS {
            let Some(commit) = self.first_at_or_after(subject, next).await? else {
                return Ok(out);
            };
            next = commit.position + 1;
            out.push(commit);
        }
        out.extend(self.read_subject_streamed(subject, next - 1).await?);
        Ok(out)
    }

    async fn follow(&self, filter: &str, from: From) -> Result<CommitStream, LogError> {
        let policy = match from {
            From::New => consumer::DeliverPolicy::New,
            From::Position(p) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: p.max(1),
            },
        };
        let messages = self.ordered(filter, policy).await?;
        Ok(messages
            .map(|m| m.map_err(unavailable).and_then(|m| to_stored(&m)))
            .boxed())
    }

    async fn first_at_or_after(
        &self,
        subject: &str,
        position: u64,
    ) -> Result<Option<StoredCommit>, LogError> {
        use async_nats::jetstream::stream::DirectGetErrorKind as K;
        self.connected()?;
        match self
            .stream
            .direct_get_next_for_subject(subject, Some(position.max(1)))
            .await
        {
            Ok(m) => Ok(Some(stored(
                m.sequence,
                m.subject.as_str(),
                &m.payload,
                Some(&m.headers),
            )?)),
            Err(e) if matches!(e.kind(), K::NotFound) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn last_position(&self) -> Result<u64, LogError> {
        self.connected()?;
        let mut stream = self.stream.clone();
        let info = stream.info().await.map_err(unavailable)?;
        Ok(info.state.last_sequence)
    }
}
