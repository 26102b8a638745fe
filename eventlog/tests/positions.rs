//! Finding where a subject's events pass a version, on both backends: `first_at_or_after`
//! and `read_subject_after_version` (what catch-up uses instead of reading a conversation
//! from its start) agree with reading the whole subject.

use eventlog::chain::Chain;
use eventlog::{EventLog, read_subject_after_version};
use events::*;
use testkit::Setup;

testkit::on_both_backends!(a_subject_is_read_from_the_commit_that_passes_a_version);

fn removed(user: &str) -> ConversationEvent {
    ConversationEvent::ParticipantRemoved(ParticipantRemovedV1 {
        user_id: UserId::parse(user).expect("valid"),
    })
}

async fn a_subject_is_read_from_the_commit_that_passes_a_version<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let (a, b) = (
        on.subjects.conversation(&ConversationId::parse("conv_a")?),
        on.subjects.conversation(&ConversationId::parse("conv_b")?),
    );
    let mut chain_a = Chain::new(&on.log, a.clone(), "conv_a");
    let mut chain_b = Chain::new(&on.log, b.clone(), "conv_b");
    let mut n = 0u64;
    let mut meta = || {
        n += 1;
        Metadata {
            command_id: format!("positions-{n}"),
            correlation_id: "positions".into(),
            actor: "test".into(),
            occurred_at: 1,
        }
    };
    // 300 commits of two events on `a`, with one or two commits of `b` between them.
    for i in 0..300 {
        chain_a
            .commit(&meta(), &[removed("ann"), removed("bob")])
            .await?;
        for _ in 0..(1 + i % 2) {
            chain_b.commit(&meta(), &[removed("cat")]).await?;
        }
    }
    let all = on.log.read_subject(&a, 0).await?;
    assert_eq!(all.len(), 300);
    let first = on.log.first_at_or_after(&a, 1).await?.expect("a commit");
    assert_eq!(first.position, all[0].position);
    let after = on.log.first_at_or_after(&a, all[10].position + 1).await?;
    assert_eq!(after.map(|c| c.position), Some(all[11].position));
    let last = on.log.last_position().await?;
    assert!(on.log.first_at_or_after(&a, last + 1).await?.is_none());
    for version in [0, 1, 2, 255, 256, 257, 300, 301, 598, 599, 600, 601, 5000] {
        let expected: Vec<u64> = all
            .iter()
            .filter(|c| c.commit.next_version() > version)
            .map(|c| c.position)
            .collect();
        let got: Vec<u64> = read_subject_after_version(&on.log, &a, version)
            .await?
            .iter()
            .filter(|c| c.commit.next_version() > version)
            .map(|c| c.position)
            .collect();
        assert_eq!(got, expected, "after version {version}");
        let read = read_subject_after_version(&on.log, &a, version).await?;
        if version >= 256 {
            assert_eq!(
                read.len(),
                expected.len(),
                "only what passes {version} is read"
            );
        }
    }
    Ok(())
}
