//! What nodes tell each other about presence and room signals, as JSON on core NATS. Nodes of
//! two versions run side by side during a rolling upgrade, so a field is only ever added, with
//! `#[serde(default)]`, and the golden tests below pin every message.
//!
//! Must not hold state or rules: `presence.rs` decides, `mod.rs` sends.

use events::{ConversationId, Millis, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use wire::UserRef;

/// One running node (a ULID chosen at start).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// conversation → users with a socket in its room, on one node.
pub type Rooms = HashMap<ConversationId, HashSet<UserId>>;

/// On `_live.<prefix>.presence`, to every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PresenceMsg {
    /// `user` entered (its first socket on `node`) or left (its last one) `conv` at `at`.
    Delta {
        node: NodeId,
        conv: ConversationId,
        user: UserId,
        /// Absent (null) from a node that does not know the profile.
        #[serde(default)]
        profile: Option<UserRef>,
        online: bool,
        at: Millis,
        /// The sending node's change counter after this change; 0 from a node without one.
        #[serde(default)]
        seq: u64,
        /// Whether the sender waits for a [`Confirm`] of its joins (absent from older nodes).
        #[serde(default)]
        confirms: bool,
    },
    /// The sending node's whole local state, every heartbeat and in answer to `sync`.
    State {
        node: NodeId,
        rooms: Rooms,
        profiles: HashMap<UserId, UserRef>,
        #[serde(default)]
        seq: u64,
        #[serde(default)]
        confirms: bool,
    },
    /// A starting node asks every node for its state.
    Sync { node: NodeId },
}

/// On `_live.<prefix>.confirm.<node>`: `node` has applied the deltas of the receiver up to
/// `seq` (an answer to a join's delta).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    pub node: NodeId,
    pub seq: u64,
}

/// On `_live.<prefix>.room.<conversationId>`: a Socket.IO event for every node's sockets of
/// the room (typing), except the sockets of `except_user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSignal {
    pub event: String,
    pub payload: Value,
    pub except_user: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden<T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(
        value: &T,
        json: &str,
    ) {
        assert_eq!(serde_json::to_string(value).expect("encodes"), json);
        assert_eq!(&serde_json::from_str::<T>(json).expect("decodes"), value);
    }

    fn ids() -> (NodeId, ConversationId, UserId) {
        (
            NodeId("01J0NODE".into()),
            ConversationId::parse("conv_1").expect("a valid id"),
            UserId::parse("user_1").expect("a valid id"),
        )
    }

    #[test]
    fn delta() {
        let (node, conv, user) = ids();
        let profile = Some(UserRef::new(&user, Some("Ann"), None));
        golden(
            &PresenceMsg::Delta {
                node,
                conv,
                user,
                profile,
                online: true,
                at: 1_700_000_000_000,
                seq: 7,
                confirms: true,
            },
            r#"{"kind":"delta","node":"01J0NODE","conv":"conv_1","user":"user_1","profile":{"id":"user_1","name":"Ann"},"online":true,"at":1700000000000,"seq":7,"confirms":true}"#,
        );
    }

    #[test]
    fn state_and_sync() {
        let (node, conv, user) = ids();
        let profiles = HashMap::from([(user.clone(), UserRef::new(&user, Some("Ann"), None))]);
        golden(
            &PresenceMsg::State {
                node: node.clone(),
                rooms: Rooms::from([(conv, HashSet::from([user]))]),
                profiles,
                seq: 3,
                confirms: true,
            },
            r#"{"kind":"state","node":"01J0NODE","rooms":{"conv_1":["user_1"]},"profiles":{"user_1":{"id":"user_1","name":"Ann"}},"seq":3,"confirms":true}"#,
        );
        golden(
            &PresenceMsg::Sync { node },
            r#"{"kind":"sync","node":"01J0NODE"}"#,
        );
    }

    #[test]
    fn messages_of_older_nodes_still_decode() {
        let old =
            r#"{"kind":"delta","node":"n","conv":"conv_1","user":"user_1","online":false,"at":5}"#;
        let PresenceMsg::Delta {
            profile,
            seq,
            confirms,
            ..
        } = serde_json::from_str(old).expect("decodes")
        else {
            panic!("not a delta");
        };
        assert_eq!((profile, seq, confirms), (None, 0, false));
        let old = r#"{"kind":"state","node":"n","rooms":{},"profiles":{}}"#;
        assert!(matches!(
            serde_json::from_str(old).expect("decodes"),
            PresenceMsg::State {
                seq: 0,
                confirms: false,
                ..
            }
        ));
    }

    #[test]
    fn confirm_and_room_signal() {
        let (node, _, user) = ids();
        golden(&Confirm { node, seq: 9 }, r#"{"node":"01J0NODE","seq":9}"#);
        golden(
            &RoomSignal {
                event: "typing:user:stop".into(),
                payload: serde_json::json!({"userId": "user_1"}),
                except_user: Some(user),
            },
            r#"{"event":"typing:user:stop","payload":{"userId":"user_1"},"except_user":"user_1"}"#,
        );
    }
}
