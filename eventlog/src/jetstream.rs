//! [`EventLog`] on NATS JetStream: one stream, one subject per aggregate, one message per
//! commit. Optimistic concurrency through `Nats-Expected-Last-Subject-Sequence` (error 10071
//! on mismatch), deduplication through `Nats-Msg-Id` = command id. An aggregate is read by
//! batched direct gets (no consumer); the log is followed by ordered consumers. The stream is
//! file-backed, never expires, and denies delete and purge.

use crate::{CommitStream, EventLog, From, LogError, StoredCommit};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use events::{Commit, Subjects, decode_commit, encode_commit};
use futures::StreamExt;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct JetStreamLog {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    subjects: Subjects,
    replies: Arc<Replies>,
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
        let replies = Replies::open(&client).await?;
        Ok(Self {
            client,
            js,
            stream,
            subjects,
            replies,
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

/// Commits and bytes asked for in one batched direct get (NATS 2.11+, ADR-31): the server
/// answers with up to that many messages and then an end-of-batch status (`204 EOB`, with
/// `Nats-Num-Pending`), so reading a subject of a few commits is one round trip, and a long
/// one a round trip per batch, with no consumer to create. async-nats has no call for it, so
/// the request and its replies are handled here.
const BATCH: usize = 256;
const BATCH_BYTES: usize = 4 << 20;
/// How long one reply of a batch may take.
const BATCH_REPLY: Duration = Duration::from_secs(5);

impl JetStreamLog {
    /// One batch of `subject`'s commits from `from` on, and whether more follow it.
    async fn read_batch(
        &self,
        subject: &str,
        from: u64,
    ) -> Result<(Vec<StoredCommit>, bool), LogError> {
        self.connected()?;
        let (inbox, mut replies) = self.replies.expect();
        let request = serde_json::json!({
            "seq": from.max(1),
            "next_by_subj": subject,
            "batch": BATCH,
            "max_bytes": BATCH_BYTES,
        });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.subjects.stream),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        loop {
            let reply = tokio::time::timeout(BATCH_REPLY, replies.recv())
                .await
                .map_err(|_| unavailable("timed out reading an aggregate"))?
                .ok_or_else(|| unavailable("connection closed reading an aggregate"))?;
            match reply.status.map(|s| s.as_u16()) {
                None => {
                    let m =
                        jetstream::message::StreamMessage::try_from(reply).map_err(unavailable)?;
                    out.push(stored(
                        m.sequence,
                        m.subject.as_str(),
                        &m.payload,
                        Some(&m.headers),
                    )?);
                }
                Some(204) => {
                    let pending = reply
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Num-Pending"))
                        .and_then(|v| v.as_str().parse::<u64>().ok())
                        .unwrap_or(0);
                    return Ok((out, pending > 0));
                }
                Some(404) => return Ok((out, false)),
                Some(status) => {
                    return Err(unavailable(format!(
                        "direct get answered {status} {}",
                        reply.description.unwrap_or_default()
                    )));
                }
            }
        }
    }
}

type Waiters = std::sync::Mutex<HashMap<u64, mpsc::UnboundedSender<async_nats::Message>>>;

/// The replies to a connection's batched reads, on one subscription (`<inbox>.*`) rather than
/// one made and dropped per read (two more protocol messages each, and work for the server's
/// subscription index on every cold load): a read takes a token, and a task routes each reply
/// by the last token of its subject. The client's own request muxer does this for single
/// replies only.
struct Replies {
    inbox: String,
    next: AtomicU64,
    waiting: Arc<Waiters>,
    router: tokio::task::AbortHandle,
}

/// One read's replies; its token is given up when this is dropped.
struct Expecting {
    token: u64,
    replies: mpsc::UnboundedReceiver<async_nats::Message>,
    waiting: Arc<Waiters>,
}

impl Replies {
    async fn open(client: &async_nats::Client) -> Result<Arc<Self>, LogError> {
        let inbox = client.new_inbox();
        let mut subscription = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(unavailable)?;
        let waiting: Arc<Waiters> = Arc::default();
        let routes = waiting.clone();
        let router = tokio::spawn(async move {
            while let Some(reply) = subscription.next().await {
                let token = reply
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|t| t.parse().ok());
                let routes = routes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(to) = token.and_then(|t: u64| routes.get(&t)) {
                    let _ = to.send(reply);
                }
            }
        })
        .abort_handle();
        Ok(Arc::new(Self {
            inbox,
            next: AtomicU64::new(0),
            waiting,
            router,
        }))
    }

    /// A subject to ask replies on, and where they arrive.
    fn expect(&self) -> (String, Expecting) {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (to, replies) = mpsc::unbounded_channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, to);
        let expecting = Expecting {
            token,
            replies,
            waiting: self.waiting.clone(),
        };
        (format!("{}.{token}", self.inbox), expecting)
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        self.router.abort();
    }
}

impl Expecting {
    async fn recv(&mut self) -> Option<async_nats::Message> {
        self.replies.recv().await
    }
}

impl Drop for Expecting {
    fn drop(&mut self) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

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
        let mut out = Vec::new();
        let mut from = after + 1;
        loop {
            let (batch, more) = self.read_batch(subject, from).await?;
            let Some(last) = batch.last() else {
                return Ok(out);
            };
            from = last.position + 1;
            out.extend(batch);
            if !more {
                return Ok(out);
            }
        }
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
