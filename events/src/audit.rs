//! The log as an auditor reads it: one JSON object per event, with where it sits (position,
//! aggregate, number), what it is (type, schema version), who did it and when (actor,
//! occurred-at, correlation and command ids), and its data as stored (deleted and edited
//! content included), sealed fields opened: `null`, with `erased` or `expired`, once their key
//! is destroyed.

use crate::envelope::{Commit, StoredEventV1};
use crate::event::{ConversationEvent, EventKind, UserEvent};
use crate::sealed::Open;
use serde_json::{Value, json};

/// The data of one event of `commit` as JSON, sealed fields opened with `keys`.
pub fn data_json(commit: &Commit, event: &StoredEventV1, keys: &dyn Open) -> Value {
    let (aggregate_type, id) = (commit.aggregate_type.as_str(), commit.aggregate_id.as_str());
    let (event_type, version, data) = (&event.event_type, event.schema_version, &event.data);
    let decoded = match aggregate_type {
        t if t == UserEvent::AGGREGATE => {
            UserEvent::decode(event_type, version, data).map(|e| e.to_json(keys, id))
        }
        t if t == ConversationEvent::AGGREGATE => {
            ConversationEvent::decode(event_type, version, data).map(|e| e.to_json(keys, id))
        }
        _ => Err(crate::CodecError::WrongAggregate(aggregate_type.to_owned())),
    };
    decoded.unwrap_or_else(|e| json!({"undecodable": e.to_string(), "bytes": hex::encode(data)}))
}

/// How the sealed fields of the log fare with the keys as they are (`chat audit verify`):
/// opened, or no longer, because their author was erased or their message expired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SealedFields {
    pub opened: u64,
    pub erased: u64,
    pub expired: u64,
}

impl SealedFields {
    /// Counts the sealed fields of `commit`, opened with `keys` (fields written in the clear
    /// before sealing are not counted; an undecodable event counts nothing).
    pub fn add(&mut self, commit: &Commit, keys: &dyn Open) {
        use crate::sealed::{Opened, Place};
        let id = commit.aggregate_id.as_str();
        let mut opened = Vec::new();
        if commit.aggregate_type == ConversationEvent::AGGREGATE {
            for r in commit
                .decode_events::<ConversationEvent>()
                .unwrap_or_default()
            {
                match &r.event {
                    ConversationEvent::MessageSent(m) if m.content.sealed().is_some() => {
                        opened.push(m.open(keys, id));
                    }
                    ConversationEvent::MessageEdited(m) if m.content.sealed().is_some() => {
                        opened.push(m.open(keys, id));
                    }
                    _ => {}
                }
            }
        } else if commit.aggregate_type == UserEvent::AGGREGATE {
            for r in commit.decode_events::<UserEvent>().unwrap_or_default() {
                if let UserEvent::Registered(crate::Profile::Sealed(p))
                | UserEvent::Updated(crate::Profile::Sealed(p)) = &r.event
                {
                    opened.push(keys.open(&Place::profile(id, "name"), &p.name));
                    if let Some(a) = &p.avatar_url {
                        opened.push(keys.open(&Place::profile(id, "avatarUrl"), a));
                    }
                }
            }
        }
        for o in opened {
            match o {
                Opened::Text(_) => self.opened += 1,
                Opened::Erased => self.erased += 1,
                Opened::Expired => self.expired += 1,
            }
        }
    }
}

/// Every event of a commit at `position`, as audit entries, sealed fields opened with `keys`.
pub fn entries(position: u64, commit: &Commit, keys: &dyn Open) -> Vec<Value> {
    commit
        .events
        .iter()
        .zip(commit.version + 1..)
        .map(|(e, number)| {
            json!({
                "position": position,
                "aggregateType": commit.aggregate_type,
                "aggregateId": commit.aggregate_id,
                "number": number,
                "eventId": e.event_id,
                "type": e.event_type,
                "schemaVersion": e.schema_version,
                "actor": commit.actor,
                "occurredAt": crate::iso8601(commit.occurred_at),
                "correlationId": commit.correlation_id,
                "commandId": commit.command_id,
                "data": data_json(commit, e, keys),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn entries_show_who_did_what_with_the_data_as_stored() {
        let meta = Metadata {
            command_id: "cmd".into(),
            correlation_id: "req".into(),
            actor: "ann".into(),
            occurred_at: 0,
        };
        let e = ConversationEvent::MessageDeleted(MessageDeletedV1 {
            message_id: MessageId::parse("msg_1").expect("valid"),
            deleted_by: UserId::parse("ann").expect("valid"),
            deleted_at: 0,
        });
        let commit = Commit::new("conv_1", 4, [0; 32], &meta, &[e]);
        assert_eq!(
            entries(9, &commit, &crate::sealed::tests::Unsealed),
            vec![json!({
                "position": 9, "aggregateType": "conversation", "aggregateId": "conv_1", "number": 5,
                "eventId": "cmd-0", "type": "MessageDeleted", "schemaVersion": 1, "actor": "ann",
                "occurredAt": "1970-01-01T00:00:00.000Z", "correlationId": "req", "commandId": "cmd",
                "data": {"messageId": "msg_1", "deletedBy": "ann", "deletedAt": "1970-01-01T00:00:00.000Z"},
            })]
        );
    }

    #[test]
    fn sealed_fields_are_counted_by_what_opening_them_gives() {
        let meta = Metadata {
            command_id: "cmd".into(),
            correlation_id: "req".into(),
            actor: "ann".into(),
            occurred_at: 0,
        };
        let sealed = |user: &str, bytes: &[u8]| SealedV1 {
            user: UserId::parse(user).expect("valid"),
            period: Some(0),
            nonce: [0; 24],
            ciphertext: bytes.to_vec(),
        };
        let sent = |id: &str, content: Text| {
            ConversationEvent::MessageSent(MessageSent {
                message_id: MessageId::parse(id).expect("valid"),
                sender_id: UserId::parse("ann").expect("valid"),
                content,
                temp_id: None,
                seq: 1,
                sent_at: 0,
                reply: None,
                mentions: Vec::new(),
            })
        };
        let conversation = Commit::new(
            "conv_1",
            0,
            [0; 32],
            &meta,
            &[
                sent("m1", Text::Sealed(sealed("ann", b"hi"))),
                sent("m2", Text::Sealed(sealed("gone", b"hi"))),
                sent("m3", Text::Sealed(sealed("ann", &[0xff]))),
                sent("m4", Text::Clear("before sealing".into())),
            ],
        );
        let profile = UserEvent::Registered(Profile::Sealed(ProfileV2 {
            name: sealed("gone", b"Gone"),
            avatar_url: Some(sealed("gone", b"x")),
            fingerprint: [0; 32],
        }));
        let user = Commit::new("gone", 0, [0; 32], &meta, &[profile]);
        let mut count = SealedFields::default();
        count.add(&conversation, &crate::sealed::tests::Unsealed);
        count.add(&user, &crate::sealed::tests::Unsealed);
        assert_eq!(
            count,
            SealedFields {
                opened: 1,
                erased: 3,
                expired: 1
            }
        );
    }
}
