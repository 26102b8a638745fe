//! `chat log copy`: copies one log into another in order, commit for commit, so that a
//! deployment that outgrows the embedded log moves to JetStream with the same positions,
//! subjects, commits and hash chains, then rebuilds its projections there.
//!
//! Resumable: a destination that already holds a prefix of the source (an interrupted copy)
//! continues after it; a destination holding anything else is refused.

use crate::{EventLog, From, LogError, StoredCommit};
use futures::StreamExt;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the destination is not a prefix of the source (they differ at position {0})")]
    Diverged(u64),
    #[error(
        "the destination put commit {source_position} at position {destination}: it must start empty"
    )]
    Shifted {
        source_position: u64,
        destination: u64,
    },
}

/// The commits of `log` from position 1 to `to`, in order.
async fn read_until<L: EventLog>(
    log: &L,
    filter: &str,
    to: u64,
) -> Result<Vec<StoredCommit>, LogError> {
    let mut out = Vec::new();
    if to == 0 {
        return Ok(out);
    }
    let mut commits = log.follow(filter, From::Position(1)).await?;
    while let Some(next) = commits.next().await {
        let stored = next?;
        let done = stored.position >= to;
        out.push(stored);
        if done {
            break;
        }
    }
    Ok(out)
}

/// Copies every commit of `from` not yet in `to`; returns how many were copied.
/// `progress(copied_up_to, total)` is called after each commit.
pub async fn copy<A: EventLog, B: EventLog>(
    from: &A,
    to: &B,
    filter: &str,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<u64, CopyError> {
    let total = from.last_position().await?;
    let already = to.last_position().await?;
    // Per subject, the position of its last commit in the destination (equal to the source's,
    // as positions are kept).
    let mut last_of: HashMap<String, u64> = HashMap::new();
    if already > total {
        return Err(CopyError::Diverged(total + 1));
    }
    if already > 0 {
        let src = read_until(from, filter, already).await?;
        let dst = read_until(to, filter, already).await?;
        if src.len() != dst.len() {
            return Err(CopyError::Diverged(already));
        }
        for (s, d) in src.iter().zip(&dst) {
            if s.position != d.position || s.commit != d.commit || s.subject != d.subject {
                return Err(CopyError::Diverged(s.position.min(d.position)));
            }
            last_of.insert(s.subject.clone(), s.position);
        }
    }
    let mut copied = 0;
    if total > already {
        let mut commits = from.follow(filter, From::Position(already + 1)).await?;
        while let Some(next) = commits.next().await {
            let s = next?;
            let expected = last_of.get(&s.subject).copied().unwrap_or(0);
            let at = to.append(&s.subject, &s.commit, expected).await?;
            if at != s.position {
                return Err(CopyError::Shifted {
                    source_position: s.position,
                    destination: at,
                });
            }
            last_of.insert(s.subject.clone(), at);
            copied += 1;
            progress(at, total);
            if s.position >= total {
                break;
            }
        }
    }
    Ok(copied)
}
