//! The `EventLog` contract, run against both backends: JetStream and the embedded file log.

use eventlog::{EmbeddedLog, EventLog, From, LogError};
use events::*;
use futures::StreamExt;
use std::time::Duration;

fn commit(id: &str, version: u64, prev: CommitHash, command: &str) -> anyhow::Result<Commit> {
    let meta = Metadata {
        command_id: command.into(),
        correlation_id: command.into(),
        actor: "ann".into(),
        occurred_at: 1,
    };
    let e = ConversationEvent::ParticipantRemoved(ParticipantRemovedV1 {
        user_id: UserId::parse("ann")?,
    });
    Ok(Commit::new(id, version, prev, &meta, &[e]))
}

async fn contract<L: EventLog>(log: L, prefix: &str) -> anyhow::Result<()> {
    let a = format!("{prefix}.conv.a");
    let b = format!("{prefix}.conv.b");
    assert_eq!(log.last_position().await?, 0);
    let live = log.follow(&format!("{prefix}.>"), From::New).await?;

    let a1 = commit("a", 0, [0; 32], "a1")?;
    let p1 = log.append(&a, &a1, 0).await?;
    assert_eq!(p1, 1);
    let b1 = commit("b", 0, [0; 32], "b1")?;
    assert_eq!(log.append(&b, &b1, 0).await?, 2);
    // Optimistic concurrency per subject.
    let stale = commit("a", 0, [0; 32], "a1-again")?;
    assert_eq!(log.append(&a, &stale, 0).await, Err(LogError::Conflict));
    let a2 = commit("a", 1, a1.hash(), "a2")?;
    assert_eq!(log.append(&a, &a2, p1).await?, 3);
    // A retried command id with the current expectation is deduplicated.
    assert_eq!(log.append(&a, &a2, 3).await?, 3);
    assert_eq!(log.last_position().await?, 3);

    let read = log.read_subject(&a, 0).await?;
    assert_eq!(
        read.iter().map(|s| s.position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(read[1].commit, a2);
    assert_eq!(read[0].recorded_hash, Some(a1.hash()));
    assert_eq!(log.read_subject(&a, 1).await?.len(), 1);
    assert!(
        log.read_subject(&format!("{prefix}.conv.none"), 0)
            .await?
            .is_empty()
    );

    assert_eq!(
        positions(&log, &format!("{prefix}.>"), 2, 2).await?,
        vec![2, 3]
    );
    assert_eq!(positions(&log, &a, 1, 2).await?, vec![1, 3]);
    let seen: Vec<u64> = tokio::time::timeout(
        Duration::from_secs(10),
        live.take(3)
            .map(|s| s.map(|s| s.position))
            .collect::<Vec<_>>(),
    )
    .await?
    .into_iter()
    .collect::<Result<_, _>>()?;
    assert_eq!(
        seen,
        vec![1, 2, 3],
        "following from New sees what is appended after"
    );
    Ok(())
}

/// The positions of the first `n` commits on `filter` from position `from`.
async fn positions<L: EventLog>(
    log: &L,
    filter: &str,
    from: u64,
    n: usize,
) -> anyhow::Result<Vec<u64>> {
    let items: Vec<_> = log
        .follow(filter, From::Position(from))
        .await?
        .take(n)
        .collect()
        .await;
    Ok(items
        .into_iter()
        .map(|s| s.map(|s| s.position))
        .collect::<Result<_, _>>()?)
}

/// Appends `n` commits of `events` events each to `subject` (aggregate `id`); returns their
/// positions.
async fn chain<L: EventLog>(
    log: &L,
    subject: &str,
    id: &str,
    n: usize,
    events: usize,
    other: Option<&str>,
) -> anyhow::Result<Vec<u64>> {
    let meta = Metadata {
        command_id: String::new(),
        correlation_id: "c".into(),
        actor: "ann".into(),
        occurred_at: 1,
    };
    let e = ConversationEvent::ParticipantRemoved(ParticipantRemovedV1 {
        user_id: UserId::parse("ann")?,
    });
    let (mut prev, mut last, mut version) = ([0; 32], 0, 0);
    let mut positions = Vec::new();
    for i in 0..n {
        let meta = Metadata {
            command_id: format!("{id}-{i}"),
            ..meta.clone()
        };
        let c = Commit::new(id, version, prev, &meta, &vec![e.clone(); events]);
        last = log.append(subject, &c, last).await?;
        positions.push(last);
        (prev, version) = (c.hash(), c.next_version());
        if let Some(other) = other.filter(|_| i % 7 == 0) {
            let o = commit("o", 0, [0; 32], &format!("o-{id}-{i}"))?;
            log.append(&format!("{other}.{i}"), &o, 0).await?;
        }
    }
    Ok(positions)
}

/// Reads longer than one request of the JetStream log (256 commits, 4 MB) come back whole and
/// in order, from any point.
async fn long_reads<L: EventLog>(log: L, prefix: &str) -> anyhow::Result<()> {
    let a = format!("{prefix}.conv.long");
    let wrote = chain(&log, &a, "long", 600, 1, Some(&format!("{prefix}.conv.o"))).await?;
    let read = |after| {
        let (log, a) = (&log, &a);
        async move {
            Ok::<Vec<u64>, LogError>(
                log.read_subject(a, after)
                    .await?
                    .iter()
                    .map(|c| c.position)
                    .collect(),
            )
        }
    };
    assert_eq!(read(0).await?, wrote);
    assert_eq!(read(wrote[299]).await?, wrote[300..]);
    assert_eq!(read(wrote[299] - 1).await?, wrote[299..]);
    assert_eq!(read(wrote[599]).await?, Vec::<u64>::new());

    let big = format!("{prefix}.conv.big");
    let wrote = chain(&log, &big, "big", 40, 4000, None).await?;
    let got = log.read_subject(&big, 0).await?;
    assert_eq!(got.iter().map(|c| c.position).collect::<Vec<_>>(), wrote);
    assert_eq!(got.last().map(|c| c.commit.next_version()), Some(40 * 4000));
    let bytes: usize = got.iter().map(|c| encode_commit(&c.commit).len()).sum();
    assert!(bytes > 4 << 20, "{bytes} bytes fit one request");

    // Reads in flight together each get their own commits.
    let long = log.read_subject(&a, 0).await?;
    let reads = (0..24).map(|i| {
        let subject = if i % 3 == 0 { &big } else { &a };
        log.read_subject(subject, 0)
    });
    for (i, read) in futures::future::join_all(reads)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(&read?, if i % 3 == 0 { &got } else { &long }, "read {i}");
    }
    Ok(())
}

#[tokio::test]
async fn jetstream_reads_long_subjects_whole() -> anyhow::Result<()> {
    let log = testkit::log().await?;
    let prefix = log.subjects().prefix.clone();
    long_reads(log, &prefix).await
}

#[tokio::test]
async fn the_embedded_log_reads_long_subjects_whole() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    long_reads(EmbeddedLog::open(&dir.path().join("log"))?, "chat").await
}

#[tokio::test]
async fn jetstream_keeps_the_contract() -> anyhow::Result<()> {
    let log = testkit::log().await?;
    let prefix = log.subjects().prefix.clone();
    contract(log, &prefix).await
}

#[tokio::test]
async fn the_embedded_log_keeps_the_contract() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    contract(EmbeddedLog::open(&dir.path().join("log"))?, "chat").await
}

/// A closed embedded log at `path` holding two commits of `chat.conv.a`.
async fn two_commits(path: &std::path::Path) -> anyhow::Result<(Commit, Commit)> {
    let log = EmbeddedLog::open(path)?;
    let a1 = commit("a", 0, [0; 32], "a1")?;
    log.append("chat.conv.a", &a1, 0).await?;
    let a2 = commit("a", 1, a1.hash(), "a2")?;
    log.append("chat.conv.a", &a2, 1).await?;
    Ok((a1, a2))
}

#[tokio::test]
async fn the_embedded_log_survives_a_restart_and_a_torn_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("log");
    let (a1, a2) = two_commits(&path).await?;
    // A crash in the middle of the next write leaves half a frame.
    let len = std::fs::metadata(&path)?.len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9])?;
    }
    let log = EmbeddedLog::open(&path)?;
    assert_eq!(
        std::fs::metadata(&path)?.len(),
        len,
        "the torn tail is cut off"
    );
    assert_eq!(log.last_position().await?, 2);
    let read = log.read_subject("chat.conv.a", 0).await?;
    assert_eq!(
        read.iter().map(|s| s.commit.clone()).collect::<Vec<_>>(),
        vec![a1.clone(), a2.clone()]
    );
    // Positions, expectations and deduplication continue across the restart.
    assert_eq!(log.append("chat.conv.a", &a2, 2).await?, 2);
    let a3 = commit("a", 2, a2.hash(), "a3")?;
    assert_eq!(
        log.append("chat.conv.a", &a3, 1).await,
        Err(LogError::Conflict)
    );
    assert_eq!(log.append("chat.conv.a", &a3, 2).await?, 3);
    Ok(())
}

#[tokio::test]
async fn damage_in_the_middle_of_the_embedded_log_is_refused_not_cut_off() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("log");
    two_commits(&path).await?;
    let mut bytes = std::fs::read(&path)?;
    let len = bytes.len();
    bytes[12] ^= 0xff; // inside the first frame's body
    std::fs::write(&path, &bytes)?;
    assert!(matches!(
        EmbeddedLog::open(&path),
        Err(LogError::Corrupt(1, _))
    ));
    assert_eq!(
        std::fs::metadata(&path)?.len() as usize,
        len,
        "nothing was cut off"
    );
    Ok(())
}

#[tokio::test]
async fn a_snapshot_reads_a_log_another_process_holds_and_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("log");
    let held = EmbeddedLog::open(&path)?;
    let a1 = commit("a", 0, [0; 32], "a1")?;
    held.append("chat.conv.a", &a1, 0).await?;
    assert!(
        matches!(EmbeddedLog::open(&path), Err(LogError::Unavailable(_))),
        "one writer at a time"
    );
    // A write in progress (half a frame) is not part of the snapshot, and is left alone.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(&[200, 0, 0, 0, 1, 2])?;
    }
    let len = std::fs::metadata(&path)?.len();
    let snapshot = EmbeddedLog::snapshot(&path)?;
    assert_eq!(snapshot.last_position().await?, 1);
    assert_eq!(snapshot.read_subject("chat.conv.a", 0).await?[0].commit, a1);
    let a2 = commit("a", 1, a1.hash(), "a2")?;
    assert!(matches!(
        snapshot.append("chat.conv.a", &a2, 1).await,
        Err(LogError::Unavailable(_))
    ));
    assert_eq!(
        std::fs::metadata(&path)?.len(),
        len,
        "nothing written or cut"
    );
    Ok(())
}
