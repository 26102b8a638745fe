//! Where wrapped data keys are kept (and each conversation's retention watermark, a small
//! record beside its keys), beside the log and shared by every node. JetStream: a
//! key-value bucket of its own (`<stream>_KEYS`, one revision per key, replicated like the
//! stream); embedded: one file under the data dir. Destroying a key erases its bytes from the
//! store's files for good (JetStream erases the message in place, the file is rewritten
//! without it) and leaves a tombstone, so that no node creates the key again. Must not unwrap
//! or interpret the blobs: that is the keyring's.

use crate::KeyError;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the store holds under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A wrapped data key.
    Live(Vec<u8>),
    /// A destroyed key.
    Destroyed,
}

/// The stored form of a tombstone: a wrapped key starts with its version byte, never 0.
const TOMBSTONE: &[u8] = &[0];

impl Entry {
    fn from_stored(bytes: &[u8]) -> Self {
        if bytes == TOMBSTONE || bytes.is_empty() {
            Self::Destroyed
        } else {
            Self::Live(bytes.to_vec())
        }
    }
}

pub trait KeyStore: Send + Sync + 'static {
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Entry>, KeyError>> + Send;
    /// Stores `blob` under `name` unless something is there already; returns what is there
    /// afterwards (`blob`, another node's key created first, or a tombstone).
    fn create(
        &self,
        name: &str,
        blob: Vec<u8>,
    ) -> impl Future<Output = Result<Entry, KeyError>> + Send;
    /// Erases the key `name` and leaves a tombstone; whether a live key was there.
    fn destroy(&self, name: &str) -> impl Future<Output = Result<bool, KeyError>> + Send;
    /// Stores `blob` under `name`, replacing what is there: for records that change (a
    /// conversation's retention watermark), never for keys.
    fn put(&self, name: &str, blob: Vec<u8>) -> impl Future<Output = Result<(), KeyError>> + Send;
}

fn unavailable(e: impl std::fmt::Display) -> KeyError {
    KeyError::Unavailable(e.to_string())
}

/// The key store of a deployment (chosen in one place, `chat`'s `app.rs`).
#[derive(Clone)]
pub enum KeyStores {
    JetStream(Arc<JetStreamKeys>),
    File(FileKeys),
}

impl KeyStore for KeyStores {
    async fn get(&self, name: &str) -> Result<Option<Entry>, KeyError> {
        match self {
            Self::JetStream(s) => s.get(name).await,
            Self::File(s) => s.get(name).await,
        }
    }

    async fn create(&self, name: &str, blob: Vec<u8>) -> Result<Entry, KeyError> {
        match self {
            Self::JetStream(s) => s.create(name, blob).await,
            Self::File(s) => s.create(name, blob).await,
        }
    }

    async fn destroy(&self, name: &str) -> Result<bool, KeyError> {
        match self {
            Self::JetStream(s) => s.destroy(name).await,
            Self::File(s) => s.destroy(name).await,
        }
    }

    async fn put(&self, name: &str, blob: Vec<u8>) -> Result<(), KeyError> {
        match self {
            Self::JetStream(s) => s.put(name, blob).await,
            Self::File(s) => s.put(name, blob).await,
        }
    }
}

/// Keys in a JetStream key-value bucket.
pub struct JetStreamKeys {
    kv: async_nats::jetstream::kv::Store,
}

impl JetStreamKeys {
    /// Opens the bucket `<stream>_KEYS`, creating it when missing: the stream of a key-value
    /// bucket as the client makes one (`KV_<bucket>`, `$KV.<bucket>.>`, one revision per key),
    /// except that it lets a message be deleted, which is how a key is erased.
    pub async fn open(
        client: async_nats::Client,
        stream: &str,
        replicas: usize,
    ) -> Result<Self, KeyError> {
        use async_nats::jetstream::{self, stream};
        let js = jetstream::new(client);
        let bucket = format!("{stream}_KEYS");
        if js.get_key_value(&bucket).await.is_err() {
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{bucket}"),
                description: Some(
                    "Data keys of sealed personal data, wrapped by the master key".into(),
                ),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                storage: stream::StorageType::File,
                num_replicas: replicas.max(1),
                allow_rollup: true,
                deny_delete: false,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        }
        let kv = js.get_key_value(&bucket).await.map_err(unavailable)?;
        Ok(Self { kv })
    }

    /// The bucket's stream, for tests that look at its files.
    pub fn stream_name(&self) -> &str {
        &self.kv.stream_name
    }
}

impl KeyStore for JetStreamKeys {
    async fn get(&self, name: &str) -> Result<Option<Entry>, KeyError> {
        use async_nats::jetstream::kv::Operation;
        let entry = self.kv.entry(name).await.map_err(unavailable)?;
        Ok(entry.map(|e| match e.operation {
            Operation::Put => Entry::from_stored(&e.value),
            Operation::Delete | Operation::Purge => Entry::Destroyed,
        }))
    }

    async fn create(&self, name: &str, blob: Vec<u8>) -> Result<Entry, KeyError> {
        use async_nats::jetstream::kv::CreateErrorKind;
        match self.kv.create(name, blob.clone().into()).await {
            Ok(_) => Ok(Entry::Live(blob)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => self
                .get(name)
                .await?
                .ok_or_else(|| unavailable(format!("key {name} vanished while created"))),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn destroy(&self, name: &str) -> Result<bool, KeyError> {
        use async_nats::jetstream::kv::Operation;
        let entry = self.kv.entry(name).await.map_err(unavailable)?;
        let live = match entry {
            Some(e)
                if e.operation == Operation::Put
                    && Entry::from_stored(&e.value) != Entry::Destroyed =>
            {
                // The server overwrites an erased message's bytes in its files (`no_erase`
                // unset), where a purge or a newer revision would only mark them deleted.
                self.kv
                    .stream
                    .delete_message(e.revision)
                    .await
                    .map_err(unavailable)?;
                true
            }
            Some(_) => return Ok(false),
            None => false,
        };
        self.kv
            .put(name, bytes::Bytes::from_static(TOMBSTONE))
            .await
            .map_err(unavailable)?;
        Ok(live)
    }

    async fn put(&self, name: &str, blob: Vec<u8>) -> Result<(), KeyError> {
        self.kv.put(name, blob.into()).await.map_err(unavailable)?;
        Ok(())
    }
}

/// Keys in one file, `<dir>/keys`: a line per key (`<name> <hex of the blob>`, or `<name> -`
/// for a tombstone). A new key is appended and synced; a destroyed one rewrites the whole file
/// without it (written beside it, synced, renamed over it), so its bytes leave the file.
#[derive(Clone)]
pub struct FileKeys {
    inner: Arc<tokio::sync::Mutex<FileInner>>,
}

type Entries = HashMap<String, Entry>;

struct FileInner {
    path: PathBuf,
    keys: HashMap<String, Entry>,
    /// Opened beside the process that owns the file (a CLI reading while `chat serve` runs):
    /// never writes.
    read_only: bool,
}

const HEADER: &str = "chat-keys v1\n";

impl FileKeys {
    /// Opens (or creates) the key file in `dir`. A last line cut short by a crash is dropped
    /// (its key had not been used: a key is used only once its line is synced); any other
    /// damage is an error, never a silent loss of keys.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        Self::open_as(dir, false)
    }

    /// The keys as the file holds them now, for a process that does not own the file (`chat
    /// events` beside a running `chat serve`): a last line being written is skipped, and
    /// nothing is ever written.
    pub fn open_read_only(dir: &Path) -> Result<Self, KeyError> {
        Self::open_as(dir, true)
    }

    fn open_as(dir: &Path, read_only: bool) -> Result<Self, KeyError> {
        if !read_only {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        let path = dir.join("keys");
        let keys = match read_file(&path)? {
            Some((keys, torn)) => {
                if torn && !read_only {
                    rewrite(&path, &keys)?;
                }
                keys
            }
            None if read_only => HashMap::new(),
            None => {
                let keys = HashMap::new();
                rewrite(&path, &keys)?;
                keys
            }
        };
        Ok(Self {
            inner: Arc::new(tokio::sync::Mutex::new(FileInner {
                path,
                keys,
                read_only,
            })),
        })
    }

    /// Every entry, for `chat log copy` (which carries the keys with the log).
    pub async fn entries(&self) -> Vec<(String, Entry)> {
        let inner = self.inner.lock().await;
        inner
            .keys
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    }

    /// The key file, for tests that look at it.
    pub async fn path(&self) -> PathBuf {
        self.inner.lock().await.path.clone()
    }
}

/// The keys in the file at `path` (none when it does not exist), and whether its last line
/// was cut short.
fn read_file(path: &Path) -> Result<Option<(Entries, bool)>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable(e)),
    };
    let damaged = |what: &str| KeyError::Damaged(format!("{}: {what}", path.display()));
    let body = text.strip_prefix(HEADER).ok_or_else(|| damaged("header"))?;
    let complete = match body.rfind('\n') {
        Some(i) => &body[..=i],
        None => "",
    };
    let mut keys = HashMap::new();
    for line in complete.lines() {
        let (name, value) = line.split_once(' ').ok_or_else(|| damaged(line))?;
        let entry = match value {
            "-" => Entry::Destroyed,
            hexed => Entry::Live(hex::decode(hexed).map_err(|_| damaged(name))?),
        };
        keys.insert(name.to_owned(), entry);
    }
    Ok(Some((keys, complete.len() != body.len())))
}

fn line(name: &str, entry: &Entry) -> String {
    match entry {
        Entry::Live(blob) => format!("{name} {}\n", hex::encode(blob)),
        Entry::Destroyed => format!("{name} -\n"),
    }
}

/// Writes every key to a new file beside `path`, syncs it and renames it over `path`.
fn rewrite(path: &Path, keys: &HashMap<String, Entry>) -> Result<(), KeyError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(unavailable)?;
    let mut text = String::from(HEADER);
    for (name, entry) in keys {
        text.push_str(&line(name, entry));
    }
    file.write_all(text.as_bytes()).map_err(unavailable)?;
    file.as_file().sync_all().map_err(unavailable)?;
    file.persist(path).map_err(|e| unavailable(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::Unavailable(format!("bad key name {name:?}")))
    }
}

impl KeyStore for FileKeys {
    /// Read-only, a key not seen yet is looked for again in the file (the owner may have
    /// made it since).
    async fn get(&self, name: &str) -> Result<Option<Entry>, KeyError> {
        let mut inner = self.inner.lock().await;
        if inner.read_only && !inner.keys.contains_key(name) {
            let path = inner.path.clone();
            if let Some((keys, _)) = tokio::task::spawn_blocking(move || read_file(&path))
                .await
                .map_err(unavailable)??
            {
                inner.keys = keys;
            }
        }
        Ok(inner.keys.get(name).cloned())
    }

    async fn create(&self, name: &str, blob: Vec<u8>) -> Result<Entry, KeyError> {
        check_name(name)?;
        let mut inner = self.inner.lock().await;
        if let Some(existing) = inner.keys.get(name) {
            return Ok(existing.clone());
        }
        if inner.read_only {
            return Err(unavailable("the key file is open read-only here"));
        }
        let entry = Entry::Live(blob);
        let (path, text) = (inner.path.clone(), line(name, &entry));
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        inner.keys.insert(name.to_owned(), entry.clone());
        Ok(entry)
    }

    async fn destroy(&self, name: &str) -> Result<bool, KeyError> {
        let before = self.replace(name, Entry::Destroyed).await?;
        Ok(matches!(before, Some(Entry::Live(_))))
    }

    async fn put(&self, name: &str, blob: Vec<u8>) -> Result<(), KeyError> {
        self.replace(name, Entry::Live(blob)).await.map(|_| ())
    }
}

impl FileKeys {
    /// Sets `name` to `entry` and rewrites the file; what was there before.
    async fn replace(&self, name: &str, entry: Entry) -> Result<Option<Entry>, KeyError> {
        check_name(name)?;
        let mut inner = self.inner.lock().await;
        if inner.read_only {
            return Err(unavailable("the key file is open read-only here"));
        }
        let before = inner.keys.insert(name.to_owned(), entry);
        let (path, keys) = (inner.path.clone(), inner.keys.clone());
        let written = tokio::task::spawn_blocking(move || rewrite(&path, &keys))
            .await
            .map_err(unavailable)?;
        if let Err(e) = written {
            match &before {
                Some(b) => inner.keys.insert(name.to_owned(), b.clone()),
                None => inner.keys.remove(name),
            };
            return Err(e);
        }
        Ok(before)
    }
}
