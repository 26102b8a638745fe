//! `chat log copy`: an embedded log copied into a real JetStream keeps positions, subjects,
//! commits and hash chains; an interrupted copy resumes; a foreign destination is refused.

use eventlog::copy::{CopyError, copy};
use eventlog::verify::{Outcome, verify_log};
use eventlog::{EmbeddedLog, EventLog};
use events::*;

/// Appends `n` commits spread over three conversations, chained like the executor does.
async fn write<L: EventLog>(
    log: &L,
    subjects: &Subjects,
    from: usize,
    n: usize,
) -> anyhow::Result<()> {
    for i in from..from + n {
        let conv = ConversationId::parse(&format!("conv_{}", i % 3))?;
        let subject = subjects.conversation(&conv);
        let prev = log.read_subject(&subject, 0).await?;
        let (version, hash, last) = prev
            .last()
            .map(|s| (s.commit.next_version(), s.commit.hash(), s.position))
            .unwrap_or((0, [0; 32], 0));
        let meta = Metadata {
            command_id: format!("cmd{i}"),
            correlation_id: "c".into(),
            actor: "ann".into(),
            occurred_at: 1,
        };
        let e = ConversationEvent::ParticipantRemoved(ParticipantRemovedV1 {
            user_id: UserId::parse(&format!("u{i}"))?,
        });
        log.append(
            &subject,
            &Commit::new(conv.as_str(), version, hash, &meta, &[e]),
            last,
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_embedded_log_moves_to_jetstream_intact_and_resumes() -> anyhow::Result<()> {
    let dest = testkit::log().await?;
    let subjects = dest.subjects().clone();
    let dir = tempfile::tempdir()?;
    let source = EmbeddedLog::open(&dir.path().join("log"))?;
    write(&source, &subjects, 0, 20).await?;

    let mut last_progress = (0, 0);
    let copied = copy(&source, &dest, &subjects.all(), &mut |a, b| {
        last_progress = (a, b)
    })
    .await?;
    assert_eq!(copied, 20);
    assert_eq!(last_progress, (20, 20));
    for c in 0..3 {
        let subject = subjects.conversation(&ConversationId::parse(&format!("conv_{c}"))?);
        let a: Vec<_> = source
            .read_subject(&subject, 0)
            .await?
            .into_iter()
            .map(|s| (s.position, s.commit))
            .collect();
        let b: Vec<_> = dest
            .read_subject(&subject, 0)
            .await?
            .into_iter()
            .map(|s| (s.position, s.commit))
            .collect();
        assert_eq!(a, b);
    }
    assert!(matches!(
        verify_log(&dest, &subjects.all()).await?,
        Outcome::Intact { commits: 20, .. }
    ));

    // More writes on the source, then a second copy: only the new commits move.
    write(&source, &subjects, 20, 7).await?;
    assert_eq!(
        copy(&source, &dest, &subjects.all(), &mut |_, _| {}).await?,
        7
    );
    assert_eq!(dest.last_position().await?, 27);
    assert_eq!(
        copy(&source, &dest, &subjects.all(), &mut |_, _| {}).await?,
        0
    );

    // A destination with other history is refused.
    let other = EmbeddedLog::open(&dir.path().join("other"))?;
    write(&other, &subjects, 100, 3).await?;
    assert!(matches!(
        copy(&other, &dest, &subjects.all(), &mut |_, _| {}).await,
        Err(CopyError::Diverged(_))
    ));
    Ok(())
}
