//! The command executor: load → decide → append → apply, with
//!
//! - a cache of aggregates (state, version, last position, last commit hash), bounded in
//!   bytes ([`cache`]), each loaded from its newest usable snapshot and the commits after it,
//!   or from the log ([`snapshot`], ADR 13), and snapshotted again every [`SNAPSHOT_EVERY`]
//!   commits off the command path;
//! - one writer at a time per aggregate on this node (a lock per cache slot), which keeps
//!   conflicts rare and a socket's messages in the order it sent them;
//! - optimistic concurrency against the log: on a conflict (another node appended), catch up
//!   from the log and decide again, at most [`MAX_ATTEMPTS`] times;
//! - [`Executor::observe`], fed by the broadcaster, which keeps cached aggregates current with
//!   what other nodes append.

mod cache;
pub mod snapshot;

use crate::domain::{Conversation, Decide, DomainError, User};
use cache::{Cache, Evictable};
use eventlog::{EventLog, LogError, StoredCommit};
use eventlog::{SnapshotStore, Snapshots};
use events::{Commit, CommitHash, ConversationId, EventKind, Metadata, Recorded, Subjects, UserId};
use snapshot::{Snapshotted, Stand};
use std::sync::Arc;
use tokio::sync::Mutex as AsyncMutex;

/// Attempts per command before a persistent conflict is reported as `CONFLICT`.
pub const MAX_ATTEMPTS: usize = 32;

/// The cache's limit when none is configured (`CHAT_CACHE_MB`).
pub const DEFAULT_CACHE_MB: usize = 256;

/// Commits after which an aggregate's state is snapshotted again (ADR 13): a cold load then
/// replays at most about this many commits after its snapshot.
pub const SNAPSHOT_EVERY: u64 = 250;

/// A log tail longer than this is decoded on a blocking thread, off the async workers.
const LONG_TAIL: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("too many concurrent changes, retry")]
    Conflict,
    #[error(transparent)]
    Log(LogError),
}

impl From<LogError> for ExecError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Conflict => Self::Conflict,
            other => Self::Log(other),
        }
    }
}

/// What a command did: its events (empty when it changed nothing) and the log position that
/// covers them (the commit's position, or the aggregate's last position for a no-op).
#[derive(Debug, Clone)]
pub struct Outcome<E> {
    pub events: Vec<Recorded<E>>,
    pub position: u64,
}

#[derive(Debug, Clone)]
struct Loaded<A> {
    state: A,
    version: u64,
    last_position: u64,
    last_hash: CommitHash,
    /// Commits applied since the snapshot this state was loaded from or last written as.
    since_snapshot: u64,
}

impl<A: Decide> Loaded<A> {
    fn empty() -> Self {
        Self {
            state: A::default(),
            version: 0,
            last_position: 0,
            last_hash: [0; 32],
            since_snapshot: 0,
        }
    }

    fn stand(&self) -> Stand {
        Stand {
            version: self.version,
            last_position: self.last_position,
            last_hash: self.last_hash,
        }
    }

    /// Applies a stored commit that directly follows what this state has seen.
    fn apply_commit(&mut self, stored: &StoredCommit) -> Result<(), LogError> {
        let c = &stored.commit;
        if c.version != self.version {
            return Err(LogError::Corrupt(
                stored.position,
                format!(
                    "commit version {} after version {}",
                    c.version, self.version
                ),
            ));
        }
        let events = c
            .decode_events::<A::Event>()
            .map_err(|e| LogError::Corrupt(stored.position, e.to_string()))?;
        for r in &events {
            self.state.evolve(&r.event);
        }
        self.version = c.next_version();
        self.last_position = stored.position;
        self.last_hash = c.hash();
        self.since_snapshot += 1;
        Ok(())
    }

    /// Applies commits in order; a long run on a blocking thread.
    async fn apply_all(
        &mut self,
        commits: Vec<StoredCommit>,
    ) -> Result<Vec<StoredCommit>, ExecError> {
        if commits.len() <= LONG_TAIL {
            for stored in &commits {
                self.apply_commit(stored)?;
            }
            return Ok(commits);
        }
        let mut owned = std::mem::replace(self, Self::empty());
        let (owned, commits, applied) = tokio::task::spawn_blocking(move || {
            let applied = commits.iter().try_for_each(|s| owned.apply_commit(s));
            (owned, commits, applied)
        })
        .await
        .map_err(|e| ExecError::Log(LogError::Unavailable(e.to_string())))?;
        *self = owned;
        applied?;
        Ok(commits)
    }
}

type Slot<A> = Arc<AsyncMutex<Option<Loaded<A>>>>;

/// A cache slot of either aggregate.
#[derive(Clone)]
enum AnySlot {
    User(Slot<User>),
    Conversation(Slot<Conversation>),
}

impl Evictable for AnySlot {
    fn in_use(&self) -> bool {
        match self {
            Self::User(s) => s.in_use(),
            Self::Conversation(s) => s.in_use(),
        }
    }
}

/// An aggregate the executor caches.
trait Cached: Decide + Snapshotted {
    const KIND: &'static str;
    fn wrap(slot: Slot<Self>) -> AnySlot;
    fn unwrap(slot: AnySlot) -> Option<Slot<Self>>;
}

impl Cached for User {
    const KIND: &'static str = events::UserEvent::AGGREGATE;
    fn wrap(slot: Slot<Self>) -> AnySlot {
        AnySlot::User(slot)
    }
    fn unwrap(slot: AnySlot) -> Option<Slot<Self>> {
        match slot {
            AnySlot::User(s) => Some(s),
            AnySlot::Conversation(_) => None,
        }
    }
}

impl Cached for Conversation {
    const KIND: &'static str = events::ConversationEvent::AGGREGATE;
    fn wrap(slot: Slot<Self>) -> AnySlot {
        AnySlot::Conversation(slot)
    }
    fn unwrap(slot: AnySlot) -> Option<Slot<Self>> {
        match slot {
            AnySlot::Conversation(s) => Some(s),
            AnySlot::User(_) => None,
        }
    }
}

type Key = (&'static str, String);

fn key<A: Cached>(id: &str) -> Key {
    (A::KIND, id.to_owned())
}

/// The name of an aggregate's snapshot: `conversation.conv_…`, `user.ann`.
fn snapshot_key<A: Cached>(id: &str) -> String {
    format!("{}.{id}", A::KIND)
}

pub struct Executor<L> {
    log: L,
    metrics: Arc<crate::metrics::Metrics>,
    subjects: Subjects,
    cache: Cache<Key, AnySlot>,
    snapshots: Option<Snapshots>,
    snapshot_every: u64,
    /// Cold loads in flight at once: a burst of them (every socket reconnecting after a
    /// restart) queues here rather than in the log's connection, ahead of warm commands.
    loads: Arc<tokio::sync::Semaphore>,
}

/// How many aggregates one node loads at once.
pub const CONCURRENT_LOADS: usize = 4;

impl<L: EventLog> Executor<L> {
    /// An executor whose cache holds up to [`DEFAULT_CACHE_MB`].
    pub fn new(log: L, subjects: Subjects) -> Self {
        let metrics: Arc<crate::metrics::Metrics> = Arc::default();
        Self {
            log,
            cache: Cache::new(DEFAULT_CACHE_MB << 20, metrics.clone()),
            metrics,
            subjects,
            snapshots: None,
            snapshot_every: SNAPSHOT_EVERY,
            loads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_LOADS)),
        }
    }

    /// The same executor loading from and writing snapshots to `store`, one every `every`
    /// commits of an aggregate.
    pub fn with_snapshots(mut self, store: Snapshots, every: u64) -> Self {
        self.snapshots = Some(store);
        self.snapshot_every = every.max(1);
        self
    }

    /// The same executor with its cache bounded to `bytes` (before any use).
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache = Cache::new(bytes, self.metrics.clone());
        self
    }

    /// The node's metrics (commands and appends are counted here).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Runs a user command; `reply` reads the state after it, under the same lock.
    pub async fn user<R>(
        &self,
        id: &UserId,
        command: crate::domain::UserCommand,
        meta: &Metadata,
        reply: impl FnOnce(&User) -> R,
    ) -> Result<(Outcome<events::UserEvent>, R), ExecError> {
        let subject = self.subjects.user(id);
        self.execute(&subject, id.as_str(), command, meta, reply)
            .await
    }

    /// Runs a conversation command; `reply` reads the state after it, under the same lock.
    pub async fn conversation<R>(
        &self,
        id: &ConversationId,
        command: crate::domain::ConversationCommand,
        meta: &Metadata,
        reply: impl FnOnce(&Conversation) -> R,
    ) -> Result<(Outcome<events::ConversationEvent>, R), ExecError> {
        let subject = self.subjects.conversation(id);
        self.execute(&subject, id.as_str(), command, meta, reply)
            .await
    }

    /// Reads a user's current state (loading it on first use).
    pub async fn read_user<R>(
        &self,
        id: &UserId,
        f: impl FnOnce(&User) -> R,
    ) -> Result<R, ExecError> {
        let subject = self.subjects.user(id);
        self.read(&subject, id.as_str(), f).await
    }

    /// Reads a conversation's current state (loading it on first use).
    pub async fn read_conversation<R>(
        &self,
        id: &ConversationId,
        f: impl FnOnce(&Conversation) -> R,
    ) -> Result<R, ExecError> {
        let subject = self.subjects.conversation(id);
        self.read(&subject, id.as_str(), f).await
    }

    /// Brings a cached aggregate up to date with a commit seen in the log (usually appended by
    /// another node). Commits already applied are ignored; a gap drops the cached state, which
    /// is then reloaded on next use.
    pub async fn observe(&self, stored: &StoredCommit) {
        let id = stored.commit.aggregate_id.as_str();
        match stored.commit.aggregate_type.as_str() {
            User::KIND => self.observe_in::<User>(id, stored),
            Conversation::KIND => self.observe_in::<Conversation>(id, stored),
            _ => {}
        }
    }

    fn observe_in<A: Cached>(&self, id: &str, stored: &StoredCommit) {
        let Some(slot) = self.cache.peek(&key::<A>(id)).and_then(A::unwrap) else {
            return;
        };
        // A command on this aggregate holds the slot while it appends (most often, it is this
        // very commit): the broadcaster does not wait for it, whose every event would then
        // queue behind that append. The observation is applied as soon as the slot is free;
        // one that lands out of order only drops the cached state (reloaded when next needed).
        match slot.clone().try_lock_owned() {
            Ok(mut guard) => {
                observe_locked(&mut guard, stored);
                self.account(id, &guard);
            }
            Err(_) => {
                let stored = stored.clone();
                tokio::spawn(async move {
                    let mut guard = slot.lock_owned().await;
                    observe_locked(&mut guard, &stored);
                });
            }
        }
    }

    /// The cache slot of an aggregate, created empty when absent.
    fn slot<A: Cached>(&self, id: &str) -> Slot<A> {
        let any = self
            .cache
            .get_or_insert(&key::<A>(id), || A::wrap(Slot::default()));
        // A key names one kind, so the slot is always of `A`.
        A::unwrap(any).unwrap_or_default()
    }

    /// Records what a slot's state costs now (the caller holds the slot).
    fn account<A: Cached>(&self, id: &str, guard: &Option<Loaded<A>>) {
        let bytes = guard.as_ref().map_or(0, |l| l.state.heap_bytes());
        self.cache.account(&key::<A>(id), bytes);
    }

    async fn read<A: Cached, R>(
        &self,
        subject: &str,
        id: &str,
        f: impl FnOnce(&A) -> R,
    ) -> Result<R, ExecError> {
        let slot = self.slot::<A>(id);
        let mut guard = slot.lock().await;
        let loaded = self.ensure_loaded(&mut guard, subject, id).await;
        let out = loaded.map(|l| f(&l.state));
        self.account(id, &guard);
        self.maybe_snapshot(id, &slot, &mut guard);
        out
    }

    async fn ensure_loaded<'g, A: Cached>(
        &self,
        guard: &'g mut Option<Loaded<A>>,
        subject: &str,
        id: &str,
    ) -> Result<&'g mut Loaded<A>, ExecError> {
        if guard.is_none() {
            let started = std::time::Instant::now();
            let _permit = self.loads.acquire().await;
            let (loaded, source) = match self.load_snapshot::<A>(subject, id).await {
                Some(loaded) => (loaded, "snapshot"),
                None => {
                    let mut loaded = Loaded::empty();
                    self.catch_up(&mut loaded, subject).await?;
                    (loaded, "log")
                }
            };
            *guard = Some(loaded);
            self.metrics
                .aggregate_loaded(source, started.elapsed().as_secs_f64());
        }
        guard
            .as_mut()
            .ok_or_else(|| ExecError::Log(LogError::Unavailable("cache slot empty".into())))
    }

    /// The aggregate from its newest snapshot and the commits after it, when there is a
    /// snapshot that opens and whose last commit is the log's commit at that position.
    async fn load_snapshot<A: Cached>(&self, subject: &str, id: &str) -> Option<Loaded<A>> {
        let store = self.snapshots.as_ref()?;
        let key = snapshot_key::<A>(id);
        let bytes = match store.load(&key).await {
            Ok(bytes) => bytes?,
            Err(e) => {
                tracing::debug!(%key, error = %e, "snapshot unavailable, loading from the log");
                return None;
            }
        };
        let (kind, owned_id) = (A::KIND, id.to_owned());
        let opened =
            tokio::task::spawn_blocking(move || snapshot::open::<A>(kind, &owned_id, &bytes))
                .await
                .ok()?;
        let (state, stand) = match opened {
            Ok(opened) => opened,
            Err(refused) => {
                tracing::warn!(%key, %refused, "snapshot ignored, loading from the log");
                return None;
            }
        };
        let from = stand.last_position.checked_sub(1)?;
        let mut commits = match self.log.read_subject(subject, from).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%key, error = %e, "log unavailable after the snapshot");
                return None;
            }
        };
        let stands_in_log = commits.first().is_some_and(|c| {
            c.position == stand.last_position
                && c.commit.hash() == stand.last_hash
                && c.commit.next_version() == stand.version
        });
        if !stands_in_log {
            tracing::warn!(%key, "snapshot does not match the log, loading from the log");
            return None;
        }
        commits.remove(0);
        let mut loaded = Loaded {
            state,
            version: stand.version,
            last_position: stand.last_position,
            last_hash: stand.last_hash,
            since_snapshot: 0,
        };
        match loaded.apply_all(commits).await {
            Ok(_) => Some(loaded),
            Err(e) => {
                tracing::warn!(%key, error = %e, "log after the snapshot does not follow it");
                None
            }
        }
    }

    /// Writes a snapshot of the slot's aggregate when enough commits passed since the last,
    /// in a task of its own: it takes the slot once the caller is done, copies the state
    /// out, and seals and stores it with the slot free again.
    fn maybe_snapshot<A: Cached>(&self, id: &str, slot: &Slot<A>, guard: &mut Option<Loaded<A>>) {
        let (Some(store), Some(loaded)) = (self.snapshots.clone(), guard.as_mut()) else {
            return;
        };
        if loaded.since_snapshot < self.snapshot_every || loaded.version == 0 {
            return;
        }
        loaded.since_snapshot = 0;
        let (slot, id) = (slot.clone(), id.to_owned());
        tokio::spawn(async move {
            let taken = {
                let guard = slot.lock().await;
                guard
                    .as_ref()
                    .map(|l| (l.stand(), snapshot::state_bytes(&l.state)))
            };
            drop(slot);
            let Some((stand, Ok(state))) = taken else {
                return;
            };
            let key = snapshot_key::<A>(&id);
            let sealed = tokio::task::spawn_blocking(move || {
                snapshot::seal::<A>(A::KIND, &id, stand, state)
            })
            .await;
            if let Ok(bytes) = sealed
                && let Err(e) = store.save(&key, bytes).await
            {
                tracing::warn!(%key, error = %e, "snapshot not written");
            }
        });
    }

    /// Applies what the log holds beyond the cached state; returns what was applied.
    async fn catch_up<A: Decide>(
        &self,
        loaded: &mut Loaded<A>,
        subject: &str,
    ) -> Result<Vec<StoredCommit>, ExecError> {
        let newer = self.log.read_subject(subject, loaded.last_position).await?;
        loaded.apply_all(newer).await
    }

    async fn execute<A: Cached, R>(
        &self,
        subject: &str,
        id: &str,
        command: A::Command,
        meta: &Metadata,
        reply: impl FnOnce(&A) -> R,
    ) -> Result<(Outcome<A::Event>, R), ExecError> {
        let slot = self.slot::<A>(id);
        let mut guard = slot.lock().await;
        let result = self
            .execute_locked(&mut guard, subject, id, &command, meta)
            .await;
        if matches!(result, Err(ExecError::Log(_))) {
            // The append may or may not have landed: forget what we know.
            *guard = None;
        }
        self.account(id, &guard);
        self.maybe_snapshot(id, &slot, &mut guard);
        self.metrics.command(match &result {
            Ok(_) => "ok",
            Err(ExecError::Domain(_)) => "rejected",
            Err(ExecError::Conflict) => "conflict",
            Err(ExecError::Log(LogError::Unavailable(_))) => "unavailable",
            Err(ExecError::Log(_)) => "error",
        });
        if let Ok(o) = &result {
            self.metrics.events_appended.inc_by(o.events.len() as u64);
        }
        match result {
            Ok(outcome) => {
                let state = guard.as_ref().map(|l| &l.state);
                let fallback = A::default();
                Ok((outcome, reply(state.unwrap_or(&fallback))))
            }
            Err(e) => Err(e),
        }
    }

    async fn execute_locked<A: Cached>(
        &self,
        guard: &mut Option<Loaded<A>>,
        subject: &str,
        id: &str,
        command: &A::Command,
        meta: &Metadata,
    ) -> Result<Outcome<A::Event>, ExecError> {
        let loaded = self.ensure_loaded(guard, subject, id).await?;
        for attempt in 0..MAX_ATTEMPTS {
            let events = match loaded.state.decide(command) {
                Ok(events) => events,
                // The cached state may be behind commits another node appended (a message
                // sent there a moment ago): a refusal is only final against the log's latest.
                Err(refused) => {
                    if self.catch_up(loaded, subject).await?.is_empty() {
                        return Err(ExecError::Domain(refused.into()));
                    }
                    loaded
                        .state
                        .decide(command)
                        .map_err(|e| ExecError::Domain(e.into()))?
                }
            };
            if events.is_empty() {
                return Ok(Outcome {
                    events: vec![],
                    position: loaded.last_position,
                });
            }
            let commit = Commit::new(id, loaded.version, loaded.last_hash, meta, &events);
            match self
                .log
                .append(subject, &commit, loaded.last_position)
                .await
            {
                Ok(position) => {
                    // Our own commit: evolve from the events in hand, no decoding back.
                    for e in &events {
                        loaded.state.evolve(e);
                    }
                    let recorded = commit
                        .events
                        .iter()
                        .zip(events)
                        .zip(loaded.version + 1..)
                        .map(|((stored, event), number)| Recorded {
                            event_id: stored.event_id.clone(),
                            number,
                            event,
                        })
                        .collect();
                    loaded.version = commit.next_version();
                    loaded.last_position = position;
                    loaded.last_hash = commit.hash();
                    loaded.since_snapshot += 1;
                    return Ok(Outcome {
                        events: recorded,
                        position,
                    });
                }
                Err(LogError::Conflict) => {
                    tracing::debug!(subject, attempt, "append conflict, catching up");
                    let newer = self.catch_up(loaded, subject).await?;
                    // A retried publish whose first try landed (say, after a timeout) shows
                    // up here as our own commit: that is success, not a conflict.
                    if let Some(ours) = newer
                        .iter()
                        .find(|s| s.commit.command_id == meta.command_id)
                    {
                        let recorded = ours
                            .commit
                            .decode_events::<A::Event>()
                            .map_err(|e| LogError::Corrupt(ours.position, e.to_string()))?;
                        return Ok(Outcome {
                            events: recorded,
                            position: ours.position,
                        });
                    }
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ExecError::Conflict)
    }
}

/// A short random pause after a conflict, growing with the attempt, so that two nodes racing
/// on one aggregate take turns instead of colliding again at once.
async fn backoff(attempt: usize) {
    let cap_ms: u128 = 1 << attempt.min(5);
    let ms = ulid::Ulid::new().random() % (cap_ms + 1);
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(1),
    ))
    .await;
}

fn observe_locked<A: Decide>(guard: &mut Option<Loaded<A>>, stored: &StoredCommit) {
    let Some(loaded) = guard.as_mut() else {
        return;
    };
    if stored.position <= loaded.last_position {
        return;
    }
    if loaded.apply_commit(stored).is_err() {
        *guard = None;
    }
}
