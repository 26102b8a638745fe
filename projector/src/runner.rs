//! The projection runner: single active instance, checkpointed batches, restart on error; the
//! next batch read and prepared (`Projection::prepare`) while the current one is written.

use crate::{Projection, ProjectionError};
use eventlog::{EventLog, From, StoredCommit};
use futures::StreamExt;
use readstore::ReadStore;
use sqlx::{AnyConnection, AnyPool};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most commits per transaction.
    pub batch_size: usize,
    /// Most events per transaction, once it holds a commit (a commit is never split).
    pub batch_events: usize,
    /// Fault injection for tests: fail the transaction once, in the middle of a batch.
    pub fault: Option<Fault>,
    /// Under load (the last batch found more than one commit waiting), how long a batch waits
    /// for more commits before it is written: fewer, larger transactions. Idle, a commit is
    /// written as soon as it arrives.
    pub linger: Duration,
}

/// Fail the projection transaction once, after `after` commits were applied in total (across
/// transactions), to prove that a crash in the middle of a batch loses and repeats nothing.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    pub after: usize,
    /// Set when the fault fired, and how many commits the failed transaction had applied.
    pub fired_mid_batch: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            batch_events: 5_000,
            fault: None,
            linger: Duration::from_millis(10),
        }
    }
}

/// The last position projected by `projection` (0 before the first).
pub async fn checkpoint(pool: &AnyPool, projection: &str) -> Result<u64, sqlx::Error> {
    read_checkpoint(&mut *pool.acquire().await?, projection).await
}

/// The checkpoint of `projection` as `conn` sees it (inside a transaction: under its locks).
pub(crate) async fn read_checkpoint(
    conn: &mut AnyConnection,
    projection: &str,
) -> Result<u64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_position FROM projection_checkpoints WHERE projection = $1")
            .bind(projection)
            .fetch_optional(conn)
            .await?;
    Ok(row.map_or(0, |(p,)| u64::try_from(p).unwrap_or(0)))
}

/// Sets the checkpoint of `projection`, in the transaction that wrote its rows.
pub(crate) async fn write_checkpoint(
    tx: &mut AnyConnection,
    projection: &str,
    position: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, last_position) VALUES ($1, $2)
         ON CONFLICT (projection) DO UPDATE SET last_position = $2",
    )
    .bind(projection)
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .execute(tx)
    .await?;
    Ok(())
}

/// The lock each batch transaction of projection `name` writing into `scope` takes.
pub(crate) fn batch_lock_key(scope: &str, name: &str) -> i64 {
    lock_key(&format!("{scope}/{name}/batch"))
}

/// A lock key derived from a name (FNV-1a, stable across builds, unlike `DefaultHasher`).
pub fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

pub struct Projector<L, P> {
    projection: P,
    log: L,
    filter: String,
    keyring: Arc<keys::Keyring>,
    writer: Writer,
}

/// What writing batches needs, apart from the projection: borrowed while the next batch is
/// prepared beside it.
struct Writer {
    /// Schema of the tables this instance writes (`public`, or a rebuild's schema); part of
    /// its lock keys, so a rebuild never waits on the live projector's locks.
    scope: String,
    store: ReadStore,
    config: ProjectorConfig,
    applied: usize,
}

/// One commit of a batch, with its keys and what the projection prepared from it.
struct Ready<T> {
    stored: StoredCommit,
    keys: keys::KeySet,
    prepared: T,
}

/// Commits read for one transaction.
struct Batch<T> {
    commits: Vec<Ready<T>>,
    events: usize,
}

impl<T> Batch<T> {
    fn new() -> Self {
        Self {
            commits: Vec::new(),
            events: 0,
        }
    }

    fn push(&mut self, ready: Ready<T>) {
        self.events += ready.stored.commit.events.len();
        self.commits.push(ready);
    }

    /// Whether it takes another commit: room left, and `target` not reached.
    fn wants(&self, config: &ProjectorConfig, target: u64) -> bool {
        self.commits.len() < config.batch_size
            && self.events < config.batch_events
            && self
                .commits
                .last()
                .is_none_or(|r| r.stored.position < target)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
    #[error("injected fault")]
    Injected,
}

impl<L: EventLog, P: Projection> Projector<L, P> {
    pub fn new(
        projection: P,
        log: L,
        store: ReadStore,
        filter: String,
        config: ProjectorConfig,
        keyring: Arc<keys::Keyring>,
    ) -> Self {
        Self {
            projection,
            log,
            filter,
            keyring,
            writer: Writer {
                scope: "public".to_owned(),
                store,
                config,
                applied: 0,
            },
        }
    }

    /// Runs until the task is dropped. Waits for the projection's lock, then projects; on any
    /// error, waits briefly and starts again from the checkpoint.
    pub async fn run(self) {
        self.run_until(CancellationToken::new()).await;
    }

    /// Like [`run`](Self::run), and returns once `stop` is cancelled: a batch being written
    /// is finished (rows and checkpoint committed), then the projection's lock is released
    /// (graceful shutdown).
    pub async fn run_until(mut self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(e) = self.run_once(&stop).await {
                tracing::warn!(error = %e, "projector: restarting from checkpoint");
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }

    async fn run_once(&mut self, stop: &CancellationToken) -> Result<(), RunError> {
        let key = lock_key(&format!("{}/{}", self.writer.scope, self.projection.name()));
        let lock = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            lock = self.writer.store.lock_session(key) => lock?,
        };
        let result = self.project(u64::MAX, stop, &mut |_| {}).await;
        lock.release().await;
        result.map(|_| ())
    }

    /// Writes into the tables of `schema` (the store's connections must use it as search path).
    pub fn in_schema(mut self, schema: &str) -> Self {
        self.writer.scope = schema.to_owned();
        self
    }

    /// Projects until the checkpoint reaches `target`, reporting progress; returns the
    /// checkpoint. For rebuilds: no standby lock is taken.
    pub async fn catch_up_to(
        &mut self,
        target: u64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, RunError> {
        self.project(target, &CancellationToken::new(), progress)
            .await
    }

    /// Projects from the checkpoint until it reaches `target` or `stop` is cancelled (between
    /// batches only: a batch, once started, is written to the end). While a batch is written,
    /// the commits that follow it are read and prepared as the next batch.
    async fn project(
        &mut self,
        target: u64,
        stop: &CancellationToken,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, RunError> {
        let name = self.projection.name();
        let mut done = checkpoint(self.writer.store.pool(), name).await?;
        progress(done);
        if done >= target {
            return Ok(done);
        }
        let mut commits = self
            .log
            .follow(&self.filter, From::Position(done + 1))
            .await?;
        let config = self.writer.config.clone();
        let mut next = Batch::new();
        let mut busy = false;
        while done < target && !stop.is_cancelled() {
            let mut batch = std::mem::replace(&mut next, Batch::new());
            if batch.commits.is_empty() {
                let first = tokio::select! {
                    biased;
                    () = stop.cancelled() => return Ok(done),
                    first = commits.next() => first,
                };
                batch.push(Self::prepare(&self.projection, &self.keyring, first).await?);
            }
            let linger_until = tokio::time::Instant::now() + config.linger;
            while batch.wants(&config, target) {
                let more = match futures::FutureExt::now_or_never(commits.next()) {
                    Some(more) => more,
                    None if busy => {
                        match tokio::time::timeout_at(linger_until, commits.next()).await {
                            Ok(more) => more,
                            Err(_) => break,
                        }
                    }
                    None => break,
                };
                if more.is_none() {
                    break;
                }
                batch.push(Self::prepare(&self.projection, &self.keyring, more).await?);
            }
            busy = batch.commits.len() > 1;
            let last = batch.commits.last().map_or(done, |r| r.stored.position);
            let span = tracing::debug_span!(
                "project_batch",
                projection = name,
                from = batch.commits.first().map(|r| r.stored.position),
                commits = batch.commits.len()
            );
            let write = self
                .writer
                .write_batch(&self.projection, batch.commits, done)
                .instrument(span);
            tokio::pin!(write);
            let mut ahead = Ok(());
            let written = loop {
                tokio::select! {
                    biased;
                    written = &mut write => break written,
                    more = commits.next(), if ahead.is_ok() && last < target && next.wants(&config, target) => {
                        match Self::prepare(&self.projection, &self.keyring, more).await {
                            Ok(ready) => next.push(ready),
                            Err(e) => ahead = Err(e),
                        }
                    }
                }
            };
            done = written?;
            progress(done);
            ahead?;
        }
        Ok(done)
    }

    /// Opens the keys of the next commit from the log and runs the projection's pure part on it.
    async fn prepare(
        projection: &P,
        keyring: &keys::Keyring,
        next: Option<Result<StoredCommit, eventlog::LogError>>,
    ) -> Result<Ready<P::Prepared>, RunError> {
        let stored =
            next.ok_or_else(|| eventlog::LogError::Unavailable("log stream ended".into()))??;
        let keys = keyring
            .prepare_commit(&stored.commit)
            .await
            .map_err(|e| ProjectionError::Keys(stored.position, e.to_string()))?;
        let prepared = projection.prepare(&stored, &keys)?;
        Ok(Ready {
            stored,
            keys,
            prepared,
        })
    }
}

impl Writer {
    /// Writes `batch` and its checkpoint in one transaction.
    async fn write_batch<P: Projection>(
        &mut self,
        projection: &P,
        batch: Vec<Ready<P::Prepared>>,
        done: u64,
    ) -> Result<u64, RunError> {
        let name = projection.name();
        // Batches of this projection commit one at a time, and a rebuild's swap takes the same
        // lock; the checkpoint read under it is the truth (a swap may have moved it on).
        let mut tx = self
            .store
            .begin_write(batch_lock_key(&self.scope, name))
            .await?;
        let done = read_checkpoint(&mut tx, name).await?.max(done);
        let mut last = done;
        let mut pending = P::Pending::default();
        for (in_tx, ready) in batch
            .into_iter()
            .filter(|r| r.stored.position > done)
            .enumerate()
        {
            let stored = &ready.stored;
            let span = tracing::debug_span!("project", position = stored.position, correlation_id = %stored.commit.correlation_id);
            projection
                .apply(&mut tx, &mut pending, stored, &ready.keys, ready.prepared)
                .instrument(span)
                .await?;
            last = stored.position;
            self.applied += 1;
            if let Some(fault) = &self.config.fault
                && fault.after == self.applied
            {
                let fault = self.config.fault.take();
                if let Some(f) = fault {
                    f.fired_mid_batch
                        .store(in_tx + 1, std::sync::atomic::Ordering::SeqCst);
                }
                return Err(RunError::Injected);
            }
        }
        projection.flush(&mut tx, &mut pending).await?;
        if last > done {
            write_checkpoint(&mut tx, name, last).await?;
        }
        tx.commit().await?;
        projection.committed(&self.store, &pending).await?;
        Ok(last)
    }
}
