//! Tamper evidence: walks the log in order and checks, per aggregate, that each commit's
//! version follows the previous one (nothing missing), that its `prev_hash` is the hash of the
//! previous commit (nothing altered before it), and that it still hashes to the value recorded
//! beside it when written (nothing altered in it, including the last commit of an aggregate).

use crate::StoredCommit;
use events::CommitHash;
use std::collections::HashMap;

/// The first broken commit found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error(
        "commit at position {position} ({aggregate}) was altered: it no longer matches the hash recorded when it was written"
    )]
    Altered { position: u64, aggregate: String },
    #[error(
        "commit at position {position} ({aggregate}) was altered: the commit after it, at position {successor}, recorded another hash for it"
    )]
    AlteredBefore {
        position: u64,
        successor: u64,
        aggregate: String,
    },
    #[error(
        "commit(s) of {aggregate} missing before position {position}: expected version {expected}, found {found}"
    )]
    Missing {
        position: u64,
        aggregate: String,
        expected: u64,
        found: u64,
    },
    #[error("commit at position {position} does not decode: {reason}")]
    Undecodable { position: u64, reason: String },
}

impl Broken {
    /// The position of the commit to look at.
    pub fn position(&self) -> u64 {
        match self {
            Self::Altered { position, .. }
            | Self::AlteredBefore { position, .. }
            | Self::Missing { position, .. }
            | Self::Undecodable { position, .. } => *position,
        }
    }
}

struct Last {
    position: u64,
    version: u64,
    hash: CommitHash,
}

/// Feed it every commit in log order.
#[derive(Default)]
pub struct Verifier {
    aggregates: HashMap<String, Last>,
    pub commits: u64,
    pub events: u64,
}

impl Verifier {
    pub fn feed(&mut self, stored: &StoredCommit) -> Result<(), Broken> {
        let c = &stored.commit;
        let aggregate = format!("{} {}", c.aggregate_type, c.aggregate_id);
        let hash = c.hash();
        if stored.recorded_hash.is_some_and(|r| r != hash) {
            return Err(Broken::Altered {
                position: stored.position,
                aggregate,
            });
        }
        let (expected, prev) = match self.aggregates.get(&aggregate) {
            Some(l) => (l.version, Some((l.position, l.hash))),
            None => (0, None),
        };
        if c.version != expected {
            return Err(Broken::Missing {
                position: stored.position,
                aggregate,
                expected,
                found: c.version,
            });
        }
        match prev {
            Some((p, h)) if h != c.prev_hash => {
                return Err(Broken::AlteredBefore {
                    position: p,
                    successor: stored.position,
                    aggregate,
                });
            }
            None if c.prev_hash != [0; 32] => {
                return Err(Broken::Missing {
                    position: stored.position,
                    aggregate,
                    expected,
                    found: c.version,
                });
            }
            _ => {}
        }
        self.commits += 1;
        self.events += c.events.len() as u64;
        self.aggregates.insert(
            aggregate,
            Last {
                position: stored.position,
                version: c.next_version(),
                hash,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Commit, ConversationEvent, Metadata, ParticipantRemovedV1, UserId};

    fn meta(id: &str) -> Metadata {
        Metadata {
            command_id: id.into(),
            correlation_id: id.into(),
            actor: "a".into(),
            occurred_at: 1,
        }
    }

    fn chain(n: usize) -> Vec<StoredCommit> {
        let ev = [ConversationEvent::ParticipantRemoved(
            ParticipantRemovedV1 {
                user_id: UserId::parse("u").expect("valid"),
            },
        )];
        let mut out: Vec<StoredCommit> = Vec::new();
        let (mut version, mut prev) = (0, [0; 32]);
        for i in 0..n {
            let commit = Commit::new("conv_1", version, prev, &meta(&format!("c{i}")), &ev);
            version = commit.next_version();
            prev = commit.hash();
            out.push(StoredCommit {
                position: i as u64 + 1,
                subject: "s".into(),
                recorded_hash: Some(prev),
                commit,
            });
        }
        out
    }

    fn run(commits: &[StoredCommit]) -> Result<(), Broken> {
        let mut v = Verifier::default();
        commits.iter().try_for_each(|c| v.feed(c))
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(run(&chain(5)), Ok(()));
    }

    #[test]
    fn an_altered_commit_is_named() {
        let mut c = chain(3);
        c[1].commit.actor = "mallory".into();
        assert_eq!(
            run(&c),
            Err(Broken::Altered {
                position: 2,
                aggregate: "conversation conv_1".into()
            })
        );
        // Altered together with its recorded hash: its successor still names it.
        c[1].recorded_hash = Some(c[1].commit.hash());
        assert_eq!(run(&c).map_err(|b| b.position()), Err(2));
    }

    #[test]
    fn a_missing_commit_is_named() {
        let mut c = chain(4);
        c.remove(2);
        assert_eq!(run(&c).map_err(|b| b.position()), Err(4));
    }
}

/// What a walk of the whole log found.
#[derive(Debug)]
pub enum Outcome {
    Intact {
        commits: u64,
        events: u64,
        aggregates: usize,
    },
    Broken(Broken),
}

/// What else a walk of the log looks at in each commit (`chat audit verify` counts the sealed
/// fields that no longer open); the chains are checked whatever it does.
pub trait Inspect: Send {
    fn inspect<'a>(&'a mut self, stored: &'a StoredCommit) -> futures::future::BoxFuture<'a, ()>;
}

impl Inspect for () {
    fn inspect<'a>(&'a mut self, _: &'a StoredCommit) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Walks the whole log as it is now and checks every aggregate's chain.
pub async fn verify_log<L: crate::EventLog>(
    log: &L,
    filter: &str,
) -> Result<Outcome, crate::LogError> {
    verify_log_inspecting(log, filter, &mut ()).await
}

/// [`verify_log`], showing every intact commit to `inspect` as well.
pub async fn verify_log_inspecting<L: crate::EventLog>(
    log: &L,
    filter: &str,
    inspect: &mut dyn Inspect,
) -> Result<Outcome, crate::LogError> {
    use futures::StreamExt;
    let last = log.last_position().await?;
    let mut v = Verifier::default();
    if last > 0 {
        let mut commits = log.follow(filter, crate::From::Position(1)).await?;
        while let Some(next) = commits.next().await {
            let stored = match next {
                Ok(s) => s,
                Err(crate::LogError::Corrupt(position, reason)) => {
                    return Ok(Outcome::Broken(Broken::Undecodable { position, reason }));
                }
                Err(e) => return Err(e),
            };
            let position = stored.position;
            if let Err(b) = v.feed(&stored) {
                return Ok(Outcome::Broken(b));
            }
            inspect.inspect(&stored).await;
            if position >= last {
                break;
            }
        }
    }
    Ok(Outcome::Intact {
        commits: v.commits,
        events: v.events,
        aggregates: v.aggregates.len(),
    })
}
