//! Acknowledgements of client→server events (contract section 1): `{success: true, ...}` on
//! success, `{success: false, error: {message, code}}` on failure.

use crate::ErrorBody;
use events::{ConversationId, MessageId};
use serde::Serialize;

/// A successful ack: `success: true` and the answer's own fields.
#[derive(Debug, Clone, Serialize)]
pub struct Ack<T> {
    pub success: bool,
    #[serde(flatten)]
    pub body: T,
}

impl<T> Ack<T> {
    pub fn ok(body: T) -> Self {
        Self {
            success: true,
            body,
        }
    }
}

/// A failed ack.
#[derive(Debug, Clone, Serialize)]
pub struct Failure<'a> {
    pub success: bool,
    pub error: &'a ErrorBody,
}

impl<'a> Failure<'a> {
    pub fn new(error: &'a ErrorBody) -> Self {
        Self {
            success: false,
            error,
        }
    }
}

/// An ack with nothing more to say (`typing:start`, `typing:stop`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Empty {}

/// The `message:send` ack.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub message_id: MessageId,
    pub seq: u64,
}

/// The `conversation:join` ack.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    pub conversation_id: ConversationId,
    pub participant_count: usize,
}

/// The `conversation:leave` ack.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Left {
    pub conversation_id: ConversationId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::rest::Positioned;
    use crate::{golden, sample};

    #[test]
    fn acks() {
        sample(
            "AckSent",
            &Ack::ok(Sent {
                message_id: msg(),
                seq: 3,
            }),
            r#"{"success":true,"messageId":"msg_1","seq":3}"#,
        );
        sample(
            "AckJoined",
            &Ack::ok(Joined {
                conversation_id: conv(),
                participant_count: 2,
            }),
            r#"{"success":true,"conversationId":"conv_1","participantCount":2}"#,
        );
        sample(
            "AckLeft",
            &Ack::ok(Left {
                conversation_id: conv(),
            }),
            r#"{"success":true,"conversationId":"conv_1"}"#,
        );
        golden(&Ack::ok(Empty {}), r#"{"success":true}"#);
        sample(
            "AckPositioned",
            &Ack::ok(Positioned { position: 7 }),
            r#"{"success":true,"position":7}"#,
        );
        let error = api::ApiError::new(api::ErrorCode::NotParticipant, "Not a participant");
        sample(
            "Failure",
            &Failure::new(&error),
            r#"{"success":false,"error":{"message":"Not a participant","code":"NOT_PARTICIPANT"}}"#,
        );
    }
}
