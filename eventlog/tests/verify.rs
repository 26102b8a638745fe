//! `chat audit verify` against a real JetStream: an intact log passes; a copy of it with one
//! stored event altered is caught, naming the altered commit.

use async_nats::HeaderMap;
use eventlog::verify::{Broken, Outcome, verify_log};
use eventlog::{EventLog, HASH_HEADER, JetStreamLog, StoredCommit};
use events::*;

fn meta(i: usize) -> Metadata {
    Metadata {
        command_id: format!("cmd{i}"),
        correlation_id: "c".into(),
        actor: "ann".into(),
        occurred_at: 1,
    }
}

/// Three aggregates, interleaved, a few commits each.
async fn fill(log: &JetStreamLog) -> anyhow::Result<Vec<StoredCommit>> {
    let mut versions = [(0u64, [0u8; 32], 0u64); 3];
    for i in 0..12 {
        let a = i % 3;
        let conv = ConversationId::parse(&format!("conv_{a}"))?;
        let (version, prev, last) = versions[a];
        let e = ConversationEvent::MessageSent(MessageSent {
            message_id: MessageId::parse(&format!("msg_{i}"))?,
            sender_id: UserId::parse("ann")?,
            content: Text::Sealed(testkit::unopened(&format!("text {i}"))),
            temp_id: None,
            seq: version + 1,
            sent_at: 1,
            reply: None,
            mentions: Vec::new(),
        });
        let commit = Commit::new(conv.as_str(), version, prev, &meta(i), &[e]);
        let position = log
            .append(&log.subjects().conversation(&conv), &commit, last)
            .await?;
        versions[a] = (commit.next_version(), commit.hash(), position);
    }
    let mut out = Vec::new();
    for a in 0..3 {
        let conv = ConversationId::parse(&format!("conv_{a}"))?;
        out.extend(
            log.read_subject(&log.subjects().conversation(&conv), 0)
                .await?,
        );
    }
    out.sort_by_key(|s| s.position);
    Ok(out)
}

/// Copies `commits` into another stream, in order, as raw messages, passing each through
/// `tamper` first (bytes and recorded hash).
async fn copy(
    to: &JetStreamLog,
    commits: &[StoredCommit],
    tamper: impl Fn(usize, &mut Vec<u8>, &mut String),
) -> anyhow::Result<()> {
    for (i, s) in commits.iter().enumerate() {
        let mut bytes = encode_commit(&s.commit);
        let mut hash = hex::encode(s.recorded_hash.unwrap_or_default());
        tamper(i, &mut bytes, &mut hash);
        let mut headers = HeaderMap::new();
        headers.insert(HASH_HEADER, hash.as_str());
        let subject = to
            .subjects()
            .conversation(&ConversationId::parse(&s.commit.aggregate_id)?);
        to.context()
            .publish_with_headers(subject, headers, bytes.into())
            .await?
            .await?;
    }
    Ok(())
}

fn alter_content(bytes: &mut [u8]) {
    // "text N" → "Text N": the same length, still decodes, different content.
    if let Some(i) = bytes.windows(4).position(|w| w == b"text") {
        bytes[i] = b'T';
    }
}

#[tokio::test]
async fn an_intact_log_verifies() -> anyhow::Result<()> {
    let log = testkit::log().await?;
    fill(&log).await?;
    match verify_log(&log, &log.subjects().all()).await? {
        Outcome::Intact {
            commits,
            events,
            aggregates,
        } => assert_eq!((commits, events, aggregates), (12, 12, 3)),
        Outcome::Broken(b) => panic!("intact log reported broken: {b}"),
    }
    Ok(())
}

#[tokio::test]
async fn an_altered_event_is_named() -> anyhow::Result<()> {
    let original = testkit::log().await?;
    let commits = fill(&original).await?;
    let copy_log = testkit::log().await?;
    copy(&copy_log, &commits, |i, bytes, _| {
        if i == 7 {
            alter_content(bytes);
        }
    })
    .await?;
    match verify_log(&copy_log, &copy_log.subjects().all()).await? {
        Outcome::Broken(b) => {
            assert_eq!(b.position(), 8, "{b}");
            assert!(matches!(b, Broken::Altered { .. }), "{b}");
        }
        Outcome::Intact { .. } => panic!("altered log reported intact"),
    }
    Ok(())
}

#[tokio::test]
async fn an_altered_event_with_a_forged_hash_is_named_by_its_successor() -> anyhow::Result<()> {
    let original = testkit::log().await?;
    let commits = fill(&original).await?;
    let copy_log = testkit::log().await?;
    copy(&copy_log, &commits, |i, bytes, hash| {
        if i == 4 {
            alter_content(bytes);
            // The forger recomputes the recorded hash too.
            if let Ok(c) = decode_commit(bytes) {
                *hash = hex::encode(c.hash());
            }
        }
    })
    .await?;
    match verify_log(&copy_log, &copy_log.subjects().all()).await? {
        Outcome::Broken(b) => {
            assert_eq!(b.position(), 5, "{b}");
            assert!(
                matches!(b, Broken::AlteredBefore { successor: 8, .. }),
                "{b}"
            );
        }
        Outcome::Intact { .. } => panic!("altered log reported intact"),
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_commit_is_named() -> anyhow::Result<()> {
    let original = testkit::log().await?;
    let mut commits = fill(&original).await?;
    commits.remove(3);
    let copy_log = testkit::log().await?;
    copy(&copy_log, &commits, |_, _, _| {}).await?;
    match verify_log(&copy_log, &copy_log.subjects().all()).await? {
        Outcome::Broken(b) => assert!(
            matches!(
                b,
                Broken::Missing {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{b}"
        ),
        Outcome::Intact { .. } => panic!("log with a gap reported intact"),
    }
    Ok(())
}
