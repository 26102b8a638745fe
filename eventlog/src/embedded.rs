//! [`EventLog`] in a single file under the data directory, for `chat serve` with no NATS
//! (issue 5): the same contract as JetStream (append with the expected last position of the
//! subject, deduplication by command id, read a subject, follow with subject wildcards).
//!
//! Format: a sequence of frames `[len: u32 LE][crc32: u32 LE][postcard(Record)]`; a frame's
//! 1-based index is its position. Each append is written and `fdatasync`ed before it is
//! acknowledged, so neither `kill -9` nor a power cut loses an acknowledged commit. On open, a
//! torn or corrupt tail (a crash in the middle of a write) is cut off; everything before it is
//! intact by construction. Written by hand: no maintained crate offers an append-only,
//! subject-indexed, followable log with optimistic concurrency.

use crate::{CommitStream, EventLog, From, LogError, StoredCommit};
use events::{Commit, decode_commit, encode_commit};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One stored frame's content.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    subject: String,
    msg_id: String,
    commit: Vec<u8>,
    /// SHA-256 of `commit` when written (what JetStream keeps in the `Chat-Hash` header), so
    /// that `chat audit verify` can tell an altered commit from an intact one.
    hash: events::CommitHash,
}

#[derive(Default)]
struct Index {
    /// File offset of each frame, by position - 1.
    offsets: Vec<u64>,
    /// Positions of each subject, ascending.
    by_subject: HashMap<String, Vec<u64>>,
    /// Position of each command id.
    by_msg_id: HashMap<String, u64>,
    end: u64,
}

struct Inner {
    file: File,
    index: Index,
    /// False for a [`EmbeddedLog::snapshot`]: appends are refused.
    writable: bool,
}

#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Mutex<Inner>>,
    reader: Arc<File>,
    last: watch::Sender<u64>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedLog")
    }
}

const HEADER: usize = 8;
/// Largest frame accepted when reading back (a corrupt length must not allocate gigabytes).
const MAX_FRAME: u32 = 64 * 1024 * 1024;

fn io(e: std::io::Error) -> LogError {
    LogError::Unavailable(format!("embedded log: {e}"))
}

/// NATS subject matching: `*` matches one token, `>` the rest (at least one token).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log file at `path`, cutting off a torn tail. One process at a
    /// time: a second `open` fails while the first holds the file.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // Two writers would interleave frames.
        file.try_lock().map_err(|_| {
            LogError::Unavailable(format!(
                "{} is in use by another chat process",
                path.display()
            ))
        })?;
        Self::load(file, path, true)
    }

    /// The log as it is now, read-only and without taking the file, for operator commands
    /// (`chat events`, `chat audit verify`, `chat projections status`) while `chat serve`
    /// holds it. An incomplete last frame is a write in progress: the snapshot ends before it.
    /// Following a snapshot yields what it holds, then waits for nothing more.
    pub fn snapshot(path: &Path) -> Result<Self, LogError> {
        let file = File::open(path).map_err(io)?;
        Self::load(file, path, false)
    }

    fn load(mut file: File, path: &Path, writable: bool) -> Result<Self, LogError> {
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut index = Index::default();
        let mut at = 0usize;
        while let Some(header) = bytes.get(at..at + HEADER) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let Some(body) = bytes.get(at + HEADER..at + HEADER + len as usize) else {
                break; // an incomplete last frame: a write cut short
            };
            let record = (len <= MAX_FRAME && crc32fast::hash(body) == crc)
                .then(|| postcard::from_bytes::<Record>(body).ok())
                .flatten();
            let Some(record) = record else {
                if at + HEADER + body.len() == bytes.len() {
                    break; // the last frame, garbled by a crash while it was written
                }
                // A bad frame with intact ones after it is damage, not a crash: cutting it off
                // would throw acknowledged commits away. Refuse, and let an operator look.
                let position = index.offsets.len() as u64 + 1;
                return Err(LogError::Corrupt(
                    position,
                    format!("bad frame at byte {at} of {}", path.display()),
                ));
            };
            let position = index.offsets.len() as u64 + 1;
            index.offsets.push(at as u64);
            index
                .by_subject
                .entry(record.subject)
                .or_default()
                .push(position);
            index.by_msg_id.insert(record.msg_id, position);
            at += HEADER + len as usize;
        }
        if at < bytes.len() && writable {
            tracing::warn!(
                kept = at,
                dropped = bytes.len() - at,
                "embedded log: cutting off a torn tail"
            );
            file.set_len(at as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        index.end = at as u64;
        let reader = Arc::new(File::open(path).map_err(io)?);
        let last = index.offsets.len() as u64;
        let (tx, _) = watch::channel(last);
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                file,
                index,
                writable,
            })),
            reader,
            last: tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the commit at `position`.
    fn read_at(&self, position: u64) -> Result<StoredCommit, LogError> {
        let offset = {
            let inner = self.lock();
            let i = usize::try_from(position.saturating_sub(1))
                .map_err(|_| LogError::Corrupt(position, "position".into()))?;
            *inner
                .index
                .offsets
                .get(i)
                .ok_or_else(|| LogError::Corrupt(position, "no such position".into()))?
        };
        let mut header = [0u8; HEADER];
        self.reader.read_exact_at(&mut header, offset).map_err(io)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut body = vec![0u8; len as usize];
        self.reader
            .read_exact_at(&mut body, offset + HEADER as u64)
            .map_err(io)?;
        let record: Record =
            postcard::from_bytes(&body).map_err(|e| LogError::Corrupt(position, e.to_string()))?;
        let commit = decode_commit(&record.commit)
            .map_err(|e| LogError::Corrupt(position, e.to_string()))?;
        Ok(StoredCommit {
            position,
            subject: record.subject,
            commit,
            recorded_hash: Some(record.hash),
        })
    }

    fn append_blocking(
        &self,
        subject: &str,
        commit: &Commit,
        expected_last: u64,
    ) -> Result<u64, LogError> {
        let mut inner = self.lock();
        if !inner.writable {
            return Err(LogError::Unavailable(
                "a snapshot of the embedded log is read-only".into(),
            ));
        }
        if let Some(p) = inner.index.by_msg_id.get(&commit.command_id) {
            return Ok(*p);
        }
        let last = inner
            .index
            .by_subject
            .get(subject)
            .and_then(|v| v.last())
            .copied()
            .unwrap_or(0);
        if last != expected_last {
            return Err(LogError::Conflict);
        }
        let bytes = encode_commit(commit);
        let hash = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes));
        let record = Record {
            subject: subject.to_owned(),
            msg_id: commit.command_id.clone(),
            commit: bytes,
            hash: hash.into(),
        };
        let body =
            postcard::to_stdvec(&record).map_err(|e| LogError::Unavailable(e.to_string()))?;
        let len = u32::try_from(body.len())
            .map_err(|_| LogError::Unavailable("commit too large".into()))?;
        let mut frame = Vec::with_capacity(HEADER + body.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        let offset = inner.index.end;
        if let Err(e) = inner
            .file
            .write_all(&frame)
            .and_then(|()| inner.file.sync_data())
        {
            // Leave no partial frame behind a failed write.
            let _ = inner.file.set_len(offset);
            return Err(io(e));
        }
        let position = inner.index.offsets.len() as u64 + 1;
        inner.index.offsets.push(offset);
        inner.index.end = offset + frame.len() as u64;
        inner
            .index
            .by_subject
            .entry(subject.to_owned())
            .or_default()
            .push(position);
        inner
            .index
            .by_msg_id
            .insert(commit.command_id.clone(), position);
        drop(inner);
        self.last.send_replace(position);
        Ok(position)
    }
}

impl EventLog for EmbeddedLog {
    async fn append(
        &self,
        subject: &str,
        commit: &Commit,
        expected_last: u64,
    ) -> Result<u64, LogError> {
        let (log, subject, commit) = (self.clone(), subject.to_owned(), commit.clone());
        tokio::task::spawn_blocking(move || log.append_blocking(&subject, &commit, expected_last))
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?
    }

    async fn read_subject(&self, subject: &str, after: u64) -> Result<Vec<StoredCommit>, LogError> {
        let positions: Vec<u64> = {
            let inner = self.lock();
            inner
                .index
                .by_subject
                .get(subject)
                .map(|v| v.iter().copied().filter(|p| *p > after).collect())
                .unwrap_or_default()
        };
        positions.into_iter().map(|p| self.read_at(p)).collect()
    }

    async fn first_at_or_after(
        &self,
        subject: &str,
        position: u64,
    ) -> Result<Option<StoredCommit>, LogError> {
        let found = {
            let inner = self.lock();
            inner.index.by_subject.get(subject).and_then(|v| {
                let i = v.partition_point(|p| *p < position);
                v.get(i).copied()
            })
        };
        found.map(|p| self.read_at(p)).transpose()
    }

    async fn follow(&self, filter: &str, from: From) -> Result<CommitStream, LogError> {
        let mut next = match from {
            From::New => *self.last.borrow() + 1,
            From::Position(p) => p.max(1),
        };
        let log = self.clone();
        let filter = filter.to_owned();
        let mut last = self.last.subscribe();
        let stream = async_stream(move |tx| async move {
            loop {
                let end = *last.borrow_and_update();
                while next <= end {
                    let item = log.read_at(next);
                    next += 1;
                    match item {
                        Ok(s) if !subject_matches(&filter, &s.subject) => continue,
                        other => {
                            if tx.send(other).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                // Wait for the next append, or stop as soon as the follower goes away.
                tokio::select! {
                    changed = last.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(stream)
    }

    async fn last_position(&self) -> Result<u64, LogError> {
        Ok(*self.last.borrow())
    }
}

/// A stream fed by a task through a small channel (ends when the consumer drops it).
fn async_stream<F, Fut>(producer: F) -> CommitStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<StoredCommit, LogError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(producer(tx));
    tokio_stream_from(rx).boxed()
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<StoredCommit, LogError>>,
) -> impl futures::Stream<Item = Result<StoredCommit, LogError>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("chat.>", "chat.conv.c1"));
        assert!(!subject_matches("chat.>", "chat"));
        assert!(subject_matches("chat.conv.*", "chat.conv.c1"));
        assert!(!subject_matches("chat.conv.*", "chat.conv.c1.x"));
        assert!(subject_matches("chat.conv.c1", "chat.conv.c1"));
        assert!(!subject_matches("chat.conv.c1", "chat.conv.c2"));
        assert!(!subject_matches("chat.user.>", "chat.conv.c1"));
    }
}
