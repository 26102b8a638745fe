//! The outbound webhook's body (contract 4.3): a batch of committed events in log order,
//! `{events: [{position, type, aggregateId, actor, occurredAt, data}]}`. `data` is the event
//! as the audit shows it, sealed content opened (`null` once erased or expired).

use crate::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct WebhookBatch {
    pub events: Vec<WebhookEvent>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// The log position of the event's commit (a commit's events share it and are never
    /// split between batches).
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_id: String,
    pub actor: String,
    pub occurred_at: Timestamp,
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::AT;
    use crate::golden;

    #[test]
    fn webhook_batch() {
        golden(
            &WebhookBatch {
                events: vec![WebhookEvent {
                    position: 7,
                    event_type: "MessageDeleted".into(),
                    aggregate_id: "conv_1".into(),
                    actor: "u1".into(),
                    occurred_at: Timestamp(AT),
                    data: serde_json::json!({"messageId": "msg_1"}),
                }],
            },
            r#"{"events":[{"position":7,"type":"MessageDeleted","aggregateId":"conv_1","actor":"u1","occurredAt":"2025-11-09T10:30:00.000Z","data":{"messageId":"msg_1"}}]}"#,
        );
        golden(&WebhookBatch { events: vec![] }, r#"{"events":[]}"#);
    }
}
