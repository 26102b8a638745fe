//! Where snapshots of aggregates are kept, beside the log: named blobs, saved whole and
//! replaced whole. JetStream: an object store of its own (`<stream>_SNAPSHOTS`, replicated like
//! the stream; snapshots outgrow a message), with the node's own copy of each under its data
//! dir in front of it (a restarted node reads its disk, not the network; a new node fetches
//! from the object store once). Embedded: one file per snapshot under the data dir, replaced
//! atomically. Must not interpret the bytes: what a snapshot holds, its version and its check
//! belong to the command side, and a snapshot is only ever a cache (deleting every one, or a
//! node's copies, loses nothing).

use crate::LogError;
use async_nats::jetstream::{self, object_store};
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

pub trait SnapshotStore: Clone + Send + Sync + 'static {
    /// The blob saved under `key`, if any.
    fn load(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, LogError>> + Send;
    /// Saves `bytes` under `key`, replacing what was there; a reader sees the old or the new
    /// blob, never a mix.
    fn save(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<(), LogError>> + Send;
    /// Deletes every snapshot; returns how many there were.
    fn clear(&self) -> impl Future<Output = Result<u64, LogError>> + Send;
}

/// The snapshot store of a deployment, beside its log (see [`crate::Log`]).
#[derive(Clone)]
pub enum Snapshots {
    /// The object store beside the stream (shared by every node; the handle is large, and
    /// the store is cloned into every task), and this node's copies on its disk.
    JetStream {
        shared: std::sync::Arc<JetStreamSnapshots>,
        local: Option<FileSnapshots>,
    },
    Embedded(FileSnapshots),
}

impl Snapshots {
    /// The JetStream pairing: `shared` beside the stream, copies kept under `local` (none
    /// when the directory cannot be made: the node then reads every snapshot from `shared`).
    pub fn jetstream(shared: JetStreamSnapshots, local: Option<&Path>) -> Self {
        let local = local.and_then(|dir| match FileSnapshots::open(dir) {
            Ok(files) => Some(files),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "snapshots not copied to disk");
                None
            }
        });
        Self::JetStream {
            shared: std::sync::Arc::new(shared),
            local,
        }
    }
}

impl SnapshotStore for Snapshots {
    /// On JetStream, the node's copy when it has one. A copy older than the shared blob is
    /// still a valid snapshot (the loader reads the longer tail after it, and the next
    /// snapshot it writes replaces both); one that fails the loader's checks sends it to the
    /// log, like any other.
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        let (shared, local) = match self {
            Self::Embedded(s) => return s.load(key).await,
            Self::JetStream {
                shared,
                local: None,
            } => return shared.load(key).await,
            Self::JetStream {
                shared,
                local: Some(local),
            } => (shared, local),
        };
        match local.load(key).await {
            Ok(Some(bytes)) => return Ok(Some(bytes)),
            Ok(None) => {}
            Err(e) => tracing::debug!(%key, error = %e, "no local snapshot copy"),
        }
        let bytes = shared.load(key).await?;
        if let Some(bytes) = &bytes {
            let (local, key, copy) = (local.clone(), key.to_owned(), bytes.clone());
            tokio::spawn(async move {
                if let Err(e) = local.save(&key, copy).await {
                    tracing::debug!(%key, error = %e, "snapshot not copied to disk");
                }
            });
        }
        Ok(bytes)
    }

    /// On JetStream, the node's copy first (a failure there is only logged), then the shared
    /// blob, whose failure is the result.
    async fn save(&self, key: &str, bytes: Vec<u8>) -> Result<(), LogError> {
        let (shared, local) = match self {
            Self::Embedded(s) => return s.save(key, bytes).await,
            Self::JetStream { shared, local } => (shared, local),
        };
        if let Some(local) = local
            && let Err(e) = local.save(key, bytes.clone()).await
        {
            tracing::debug!(%key, error = %e, "snapshot not copied to disk");
        }
        shared.save(key, bytes).await
    }

    /// On JetStream, both places; the count is the larger of the two.
    async fn clear(&self) -> Result<u64, LogError> {
        match self {
            Self::JetStream { shared, local } => {
                let copies = match local {
                    Some(local) => local.clear().await?,
                    None => 0,
                };
                Ok(shared.clear().await?.max(copies))
            }
            Self::Embedded(s) => s.clear().await,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("snapshots: {e}"))
}

/// How long a snapshot's data may pause before the read starts over, and how many times.
const READ_IDLE: std::time::Duration = std::time::Duration::from_millis(500);
const READ_ATTEMPTS: usize = 3;

/// Snapshots in a JetStream object store.
#[derive(Clone)]
pub struct JetStreamSnapshots {
    store: object_store::ObjectStore,
    client: async_nats::Client,
}

impl JetStreamSnapshots {
    /// Opens the object store beside `log`'s stream (`<stream>_SNAPSHOTS`), creating it when
    /// missing.
    pub async fn open(log: &crate::JetStreamLog, replicas: usize) -> Result<Self, LogError> {
        let js = log.context();
        let bucket = format!("{}_SNAPSHOTS", log.subjects().stream);
        let store = match js.get_object_store(&bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket,
                    description: Some("Snapshots of aggregates (a cache of the log)".into()),
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas.max(1),
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        Ok(Self {
            store,
            client: js.client(),
        })
    }

    /// Refuses at once while the client is not connected, as the log does: a request sent
    /// now would wait for its timeout, and the command behind it must fail fast.
    fn connected(&self) -> Result<(), LogError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(unavailable(format!("NATS connection {state}"))),
        }
    }
}

impl SnapshotStore for JetStreamSnapshots {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        use object_store::GetErrorKind;
        self.connected()?;
        // A snapshot replaced while it is read loses its chunks under the reader, which would
        // then wait for them forever: when the data stops coming, read the new one instead.
        for _ in 0..READ_ATTEMPTS {
            let mut object = match self.store.get(key).await {
                Ok(o) => o,
                Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            };
            let size = object.info().size;
            let mut bytes = Vec::with_capacity(size);
            loop {
                match tokio::time::timeout(READ_IDLE, object.read_buf(&mut bytes)).await {
                    Ok(Ok(0)) if bytes.len() == size => return Ok(Some(bytes)),
                    Ok(Ok(0)) | Err(_) => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(unavailable(e)),
                }
            }
        }
        Err(unavailable(format!(
            "snapshot {key} kept changing while read"
        )))
    }

    async fn save(&self, key: &str, bytes: Vec<u8>) -> Result<(), LogError> {
        self.connected()?;
        let meta = object_store::ObjectMetadata {
            name: key.to_owned(),
            // Fewer, larger chunks: a snapshot of a long conversation is tens of megabytes.
            chunk_size: Some(1 << 20),
            ..Default::default()
        };
        self.store
            .put(meta, &mut bytes.as_slice())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn clear(&self) -> Result<u64, LogError> {
        use futures::StreamExt;
        let mut names = Vec::new();
        let mut list = self.store.list().await.map_err(unavailable)?;
        while let Some(info) = list.next().await {
            names.push(info.map_err(unavailable)?.name);
        }
        for name in &names {
            self.store.delete(name).await.map_err(unavailable)?;
        }
        Ok(names.len() as u64)
    }
}

/// Snapshots as files in one directory: `<key>`, written to a temporary file, synced, then
/// renamed over the old one.
#[derive(Clone, Debug)]
pub struct FileSnapshots {
    dir: PathBuf,
}

impl FileSnapshots {
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The file of `key`; keys are aggregate names (`conversation.conv_…`), checked here so
    /// that none can leave the directory.
    fn path(&self, key: &str) -> Result<PathBuf, LogError> {
        let safe = !key.is_empty()
            && !key.starts_with('.')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !safe {
            return Err(unavailable(format!("bad snapshot key {key:?}")));
        }
        Ok(self.dir.join(key))
    }
}

impl SnapshotStore for FileSnapshots {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn save(&self, key: &str, bytes: Vec<u8>) -> Result<(), LogError> {
        let path = self.path(key)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = tempfile::NamedTempFile::new_in(&dir)?;
            file.write_all(&bytes)?;
            file.as_file().sync_data()?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
    }

    async fn clear(&self) -> Result<u64, LogError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::remove_file(entry.path())?;
                    n += 1;
                }
            }
            Ok::<_, std::io::Error>(n)
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
    }
}
