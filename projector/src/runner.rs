//! The projection runner: single active instance, checkpointed batches, restart on error.

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
    /// Schema of the tables this instance writes (`public`, or a rebuild's schema); part of
    /// its lock keys, so a rebuild never waits on the live projector's locks.
    scope: String,
    log: L,
    store: ReadStore,
    filter: String,
    config: ProjectorConfig,
    applied: usize,
    keyring: Arc<keys::Keyring>,
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
            scope: "public".to_owned(),
            log,
            store,
            filter,
            config,
            applied: 0,
            keyring,
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
        let key = lock_key(&format!("{}/{}", self.scope, self.projection.name()));
        let lock = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            lock = self.store.lock_session(key) => lock?,
        };
        let result = self.project(stop).await;
        lock.release().await;
        result
    }

    /// Writes into the tables of `schema` (the store's connections must use it as search path).
    pub fn in_schema(mut self, schema: &str) -> Self {
        self.scope = schema.to_owned();
        self
    }

    /// Projects until the checkpoint reaches `target`, reporting progress; returns the
    /// checkpoint. For rebuilds: no standby lock is taken.
    pub async fn catch_up_to(
        &mut self,
        target: u64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, RunError> {
        let mut done = checkpoint(self.store.pool(), self.projection.name()).await?;
        progress(done);
        if done >= target {
            return Ok(done);
        }
        let mut commits = self
            .log
            .follow(&self.filter, From::Position(done + 1))
            .await?;
        while done < target {
            let Some(first) = commits.next().await else {
                return Err(eventlog::LogError::Unavailable("log stream ended".into()).into());
            };
            let mut batch = vec![first?];
            while batch.len() < self.config.batch_size
                && batch.last().is_some_and(|b| b.position < target)
            {
                match futures::FutureExt::now_or_never(commits.next()) {
                    Some(Some(next)) => batch.push(next?),
                    _ => break,
                }
            }
            done = self.apply_batch(&batch, done).await?;
            progress(done);
        }
        Ok(done)
    }

    async fn project(&mut self, stop: &CancellationToken) -> Result<(), RunError> {
        let mut done = checkpoint(self.store.pool(), self.projection.name()).await?;
        let mut commits = self
            .log
            .follow(&self.filter, From::Position(done + 1))
            .await?;
        let mut busy = false;
        loop {
            // Between batches only: a batch, once started, is written to the end.
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                next = commits.next() => next,
            };
            let Some(first) = next else {
                return Err(eventlog::LogError::Unavailable("log stream ended".into()).into());
            };
            let mut batch = vec![first?];
            let linger_until = tokio::time::Instant::now() + self.config.linger;
            while batch.len() < self.config.batch_size {
                match futures::FutureExt::now_or_never(commits.next()) {
                    Some(Some(next)) => batch.push(next?),
                    Some(None) => break,
                    None if busy => {
                        match tokio::time::timeout_at(linger_until, commits.next()).await {
                            Ok(Some(next)) => batch.push(next?),
                            _ => break,
                        }
                    }
                    None => break,
                }
            }
            busy = batch.len() > 1;
            done = self.apply_batch(&batch, done).await?;
        }
    }

    /// Writes `batch` and its checkpoint in one transaction, in a span of its own.
    async fn apply_batch(&mut self, batch: &[StoredCommit], done: u64) -> Result<u64, RunError> {
        let span = tracing::debug_span!(
            "project_batch",
            projection = self.projection.name(),
            from = batch.first().map(|b| b.position),
            commits = batch.len()
        );
        self.write_batch(batch, done).instrument(span).await
    }

    async fn write_batch(&mut self, batch: &[StoredCommit], done: u64) -> Result<u64, RunError> {
        let name = self.projection.name();
        // Batches of this projection commit one at a time, and a rebuild's swap takes the same
        // lock; the checkpoint read under it is the truth (a swap may have moved it on).
        let mut tx = self
            .store
            .begin_write(batch_lock_key(&self.scope, name))
            .await?;
        let done = read_checkpoint(&mut tx, name).await?.max(done);
        let mut last = done;
        let mut pending = P::Pending::default();
        for (in_tx, stored) in batch.iter().filter(|s| s.position > done).enumerate() {
            let span = tracing::debug_span!("project", position = stored.position, correlation_id = %stored.commit.correlation_id);
            let keys = self
                .keyring
                .prepare_commit(&stored.commit)
                .await
                .map_err(|e| ProjectionError::Keys(stored.position, e.to_string()))?;
            self.projection
                .apply(&mut tx, &mut pending, stored, &keys)
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
        self.projection.flush(&mut tx, &mut pending).await?;
        if last > done {
            write_checkpoint(&mut tx, name, last).await?;
        }
        tx.commit().await?;
        self.projection.committed(&self.store, &pending).await?;
        Ok(last)
    }
}
