//! The bytes of a snapshot (ADR 13): what the executor writes beside the log and reads back
//! before the commits after it. Owns the format, its version and its check; must not decide
//! anything: a snapshot that fails any check is ignored, and the aggregate is loaded from the
//! log instead.
//!
//! ```text
//! b"chatsnap" | format: u16 LE | postcard(EnvelopeV1) | CRC-32 (LE) of everything before it
//! ```
//!
//! The envelope names the aggregate, the layout of its state (`Snapshotted::LAYOUT`) and the
//! log position and commit hash the state stands at; the loader checks that commit against
//! the log before it trusts the state. The CRC, like the embedded log's frames, catches damage;
//! a cryptographic hash would add 20 ms to the load of a million-message conversation and no
//! protection (anyone who can write a snapshot can recompute any unkeyed hash). A change to the envelope is a new format number; a
//! change to a state's serialised form is a new `LAYOUT` (and new golden bytes in its test).
//! Old snapshots are then simply ignored and rebuilt.

use events::CommitHash;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
const MAGIC: &[u8; 8] = b"chatsnap";
const FORMAT: u16 = 1;
const CHECK: usize = 4;

/// A state that can be snapshotted.
pub trait Snapshotted: Serialize + DeserializeOwned {
    /// The version of the state's serialised layout.
    const LAYOUT: u16;
}

/// Layout 2: the legal hold; layout 3: retention and its watermark (issue 14); layout 4:
/// replies, threads and pins (issue 16).
impl Snapshotted for crate::domain::Conversation {
    const LAYOUT: u16 = 4;
}

/// Layout 2: the profile held sealed, the erased flag and the legal hold (issue 14); layout-1 snapshots held
/// the profile in the clear and are ignored, so the aggregate reloads from the log.
impl Snapshotted for crate::domain::User {
    const LAYOUT: u16 = 2;
}

#[derive(Serialize, Deserialize)]
struct EnvelopeV1<'a> {
    kind: &'a str,
    id: &'a str,
    layout: u16,
    version: u64,
    last_position: u64,
    last_hash: CommitHash,
    #[serde(with = "serde_bytes", borrow)]
    state: &'a [u8],
}

/// Where a snapshotted state stands in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stand {
    /// Events the aggregate had (its version).
    pub version: u64,
    /// Position and hash of its last commit.
    pub last_position: u64,
    pub last_hash: CommitHash,
}

/// Why a snapshot was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a snapshot")]
    NotASnapshot,
    #[error("snapshot format {0} is not known")]
    Format(u16),
    #[error("the snapshot fails its check")]
    Damaged,
    #[error("the snapshot is of {0}")]
    Elsewhere(String),
    #[error("state layout {0} is not known")]
    Layout(u16),
    #[error("the state does not decode: {0}")]
    State(String),
}

/// The state's own bytes, taken under the aggregate's lock (the rest of [`seal`] runs after).
pub fn state_bytes<A: Snapshotted>(state: &A) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(state)
}

/// The snapshot of a state already turned into bytes by [`state_bytes`].
pub fn seal<A: Snapshotted>(kind: &str, id: &str, stand: Stand, state: Vec<u8>) -> Vec<u8> {
    seal_with(kind, id, A::LAYOUT, stand, state)
}

fn seal_with(kind: &str, id: &str, layout: u16, stand: Stand, state: Vec<u8>) -> Vec<u8> {
    let envelope = EnvelopeV1 {
        kind,
        id,
        layout,
        version: stand.version,
        last_position: stand.last_position,
        last_hash: stand.last_hash,
        state: &state,
    };
    let mut out = Vec::with_capacity(envelope.state.len() + 256);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    // Writing into a Vec cannot fail.
    out = postcard::to_extend(&envelope, out).unwrap_or_default();
    let check = crc32fast::hash(&out);
    out.extend_from_slice(&check.to_le_bytes());
    out
}

/// The state of `kind`/`id` in a snapshot, and where it stands.
pub fn open<A: Snapshotted>(kind: &str, id: &str, bytes: &[u8]) -> Result<(A, Stand), Refused> {
    let body_len = bytes
        .len()
        .checked_sub(CHECK)
        .filter(|n| *n >= MAGIC.len() + 2)
        .ok_or(Refused::NotASnapshot)?;
    let (body, check) = bytes.split_at(body_len);
    if &body[..MAGIC.len()] != MAGIC {
        return Err(Refused::NotASnapshot);
    }
    let format = u16::from_le_bytes([body[8], body[9]]);
    if format != FORMAT {
        return Err(Refused::Format(format));
    }
    if crc32fast::hash(body).to_le_bytes()[..] != *check {
        return Err(Refused::Damaged);
    }
    let envelope: EnvelopeV1 = postcard::from_bytes(&body[10..]).map_err(|_| Refused::Damaged)?;
    if envelope.kind != kind || envelope.id != id {
        return Err(Refused::Elsewhere(format!(
            "{}/{}",
            envelope.kind, envelope.id
        )));
    }
    if envelope.layout != A::LAYOUT {
        return Err(Refused::Layout(envelope.layout));
    }
    let state = postcard::from_bytes(envelope.state).map_err(|e| Refused::State(e.to_string()))?;
    Ok((
        state,
        Stand {
            version: envelope.version,
            last_position: envelope.last_position,
            last_hash: envelope.last_hash,
        },
    ))
}

/// `bytes` sealed again with another state layout and, if given, another last commit hash:
/// the foreign and misplaced snapshots of the tests.
#[doc(hidden)]
pub fn reseal(
    kind: &str,
    id: &str,
    bytes: &[u8],
    layout: u16,
    last_hash: Option<CommitHash>,
) -> Option<Vec<u8>> {
    let body = bytes.get(10..bytes.len().checked_sub(CHECK)?)?;
    let e: EnvelopeV1 = postcard::from_bytes(body).ok()?;
    let stand = Stand {
        version: e.version,
        last_position: e.last_position,
        last_hash: last_hash.unwrap_or(e.last_hash),
    };
    Some(seal_with(kind, id, layout, stand, e.state.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Conversation, Decide, User};
    use events::{ConversationCreatedV1, ConversationEvent, ConversationId, UserId};

    fn stand() -> Stand {
        Stand {
            version: 3,
            last_position: 42,
            last_hash: [7; 32],
        }
    }

    fn conversation() -> Conversation {
        let mut c = Conversation::default();
        c.evolve(&ConversationEvent::Created(ConversationCreatedV1 {
            conversation_id: ConversationId::parse("conv_1").expect("valid"),
            title: Some("T".into()),
            created_by: UserId::parse("ann").expect("valid"),
        }));
        c
    }

    #[test]
    fn a_sealed_state_opens_as_it_was_and_where_it_stood() {
        let c = conversation();
        let bytes = seal::<Conversation>(
            "conversation",
            "conv_1",
            stand(),
            state_bytes(&c).expect("encodes"),
        );
        let (back, at) = open::<Conversation>("conversation", "conv_1", &bytes).expect("opens");
        assert_eq!((back, at), (c, stand()));
    }

    /// The layout of a small state, byte for byte. When this changes, the snapshots already
    /// written no longer decode as they were: bump the aggregate's `LAYOUT` and update these.
    #[test]
    fn golden_state_layouts() {
        assert_eq!(
            hex(&state_bytes(&conversation()).expect("encodes")),
            "0106636f6e765f310101540000000000000000000000000000000000000000000000"
        );
        let profile = events::Profile::Sealed(events::ProfileV2 {
            name: crate::domain::sealed("Ann"),
            avatar_url: None,
            fingerprint: [7; 32],
        });
        assert_eq!(
            hex(&state_bytes(&User::registered(profile)).expect("encodes")),
            [
                "01 01 01",
                "06736561 6c6572 0100",
                &"00".repeat(24),
                "03416e6e 00",
                &"07".repeat(32),
                "00 00 00 00",
            ]
            .concat()
            .replace(' ', "")
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn damaged_foreign_and_misplaced_snapshots_are_refused() {
        let c = conversation();
        let good = seal::<Conversation>(
            "conversation",
            "conv_1",
            stand(),
            state_bytes(&c).expect("encodes"),
        );
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert_eq!(
            open::<Conversation>("conversation", "conv_1", &flipped).err(),
            Some(Refused::Damaged)
        );
        assert_eq!(
            open::<Conversation>("conversation", "conv_1", &good[..good.len() - 1]).err(),
            Some(Refused::Damaged)
        );
        assert_eq!(
            open::<Conversation>("conversation", "conv_1", b"nonsense").err(),
            Some(Refused::NotASnapshot)
        );
        let mut future = good.clone();
        future[8] = 9;
        assert_eq!(
            open::<Conversation>("conversation", "conv_1", &future).err(),
            Some(Refused::Format(9))
        );
        assert!(matches!(
            open::<Conversation>("conversation", "conv_2", &good),
            Err(Refused::Elsewhere(_))
        ));
        let relabelled = reseal("conversation", "conv_1", &good, 99, None).expect("relabelled");
        assert_eq!(
            open::<Conversation>("conversation", "conv_1", &relabelled).err(),
            Some(Refused::Layout(99))
        );
    }
}
