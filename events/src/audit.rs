//! The log as an auditor reads it: one JSON object per event, with where it sits (position,
//! aggregate, number), what it is (type, schema version), who did it and when (actor,
//! occurred-at, correlation and command ids), and its data as stored (deleted and edited
//! content included), sealed fields opened: `null`, with `erased` or `expired`, once their key
//! is destroyed.

use crate::envelope::{Commit, StoredEventV1};
use crate::event::{ConversationEvent, EventKind, UserEvent};
use crate::sealed::Open;
use serde_json::{Value, json};

fn data_json(commit: &Commit, event: &StoredEventV1, keys: &dyn Open) -> Value {
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
}
