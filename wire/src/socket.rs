//! Server→client Socket.IO events (contract section 1), one type per event, each with its
//! event name ([`SocketEvent::NAME`]).

use crate::{Body, Timestamp, UserRef};
use events::{ConversationId, Emoji, MessageId, ReactionId, TempId, UserId};
use serde::Serialize;

/// A server→client event: its name and its payload type.
pub trait SocketEvent: Serialize {
    const NAME: &'static str;
}

macro_rules! event {
    ($ty:ty, $name:literal) => {
        impl SocketEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSuccess {
    pub user_id: UserId,
    pub socket_id: String,
    pub message: &'static str,
}
event!(AuthSuccess, "auth:success");

impl AuthSuccess {
    pub fn new(user_id: UserId, socket_id: String) -> Self {
        Self {
            user_id,
            socket_id,
            message: "Authentication successful",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthError {
    pub message: String,
    pub code: api::ErrorCode,
}

impl From<api::AuthError> for AuthError {
    fn from(e: api::AuthError) -> Self {
        Self {
            message: e.to_string(),
            code: e.code(),
        }
    }
}
event!(AuthError, "auth:error");

/// `error`: a failed event that carried no ack.
#[derive(Debug, Clone, Serialize)]
pub struct Error {
    pub message: String,
    pub code: api::ErrorCode,
    pub context: ErrorContext,
}
event!(Error, "error");

/// The ids of the failed event's payload that were strings, echoed back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationJoined {
    pub conversation_id: ConversationId,
    pub participant_count: usize,
}
event!(ConversationJoined, "conversation:joined");

/// `conversation:join:error`; `conversationId` is null when the payload had none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationJoinError {
    pub message: String,
    pub code: api::ErrorCode,
    pub conversation_id: Option<String>,
}
event!(ConversationJoinError, "conversation:join:error");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationLeft {
    pub conversation_id: ConversationId,
}
event!(ConversationLeft, "conversation:left");

/// `message:new`, also the body of `POST /api/messages` (there without `offset` when the send
/// was a retry: the first send's offset is not known to the retry).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageNew {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    #[serde(flatten)]
    pub content: Body,
    pub created_at: Timestamp,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub sender: UserRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_id: Option<TempId>,
    /// The message this one replies to (contract 4.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
}
event!(MessageNew, "message:new");

/// `thread:updated`, to the room after each reply: the parent's thread as it stands. It
/// follows its reply's `message:new` (live and in catch-up) and has no `offset` of its own.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadUpdated {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub reply_count: u64,
    pub last_reply_at: Timestamp,
    pub participant_ids: Vec<UserId>,
}
event!(ThreadUpdated, "thread:updated");

/// `message:pinned` and `message:unpinned`, to the room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePin {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub by: UserId,
    pub at: Timestamp,
    pub offset: u64,
}

/// `mention:new`, to every socket of a mentioned user (`user-{userId}`), joined or not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MentionNew {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub sender_id: UserId,
    #[serde(flatten)]
    pub content: Body,
    pub created_at: Timestamp,
}
event!(MentionNew, "mention:new");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageUpdated {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    #[serde(flatten)]
    pub content: Body,
    pub edited_at: Timestamp,
    pub offset: u64,
}
event!(MessageUpdated, "message:updated");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub deleted_at: Timestamp,
    pub deleted_by: UserId,
    pub offset: u64,
}
event!(MessageDeleted, "message:deleted");

/// The `user` of `reaction:added`: `{id, name}`.
#[derive(Debug, Clone, Serialize)]
pub struct NamedUser {
    pub id: UserId,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionAdded {
    pub id: ReactionId,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub emoji: Emoji,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub user: NamedUser,
    pub offset: u64,
}
event!(ReactionAdded, "reaction:added");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionRemoved {
    pub id: ReactionId,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub offset: u64,
}
event!(ReactionRemoved, "reaction:removed");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDelivered {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub delivered_to: Vec<UserId>,
    pub delivered_at: Timestamp,
}
event!(MessageDelivered, "message:delivered");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub conversation_id: ConversationId,
    pub message_ids: Vec<MessageId>,
    pub read_by: UserId,
    pub read_at: Timestamp,
}
event!(ReadReceipt, "message:read:receipt");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOnline {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub user: UserRef,
    pub timestamp: Timestamp,
}
event!(UserOnline, "user:online");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOffline {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub timestamp: Timestamp,
    pub last_seen_at: Timestamp,
}
event!(UserOffline, "user:offline");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingStart {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub user: NamedUser,
}
event!(TypingStart, "typing:user:start");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingStop {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
}
event!(TypingStop, "typing:user:stop");

/// `presence:response`, also the `presence:request` ack (with `success`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceResponse {
    pub conversation_id: ConversationId,
    pub online_users: Vec<UserRef>,
    pub timestamp: Timestamp,
}
event!(PresenceResponse, "presence:response");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{golden, sample};

    fn reaction() -> ReactionId {
        ReactionId::parse("r1").expect("valid")
    }

    #[test]
    fn connection_events() {
        sample(
            "AuthSuccess",
            &AuthSuccess::new(user(), "s1".into()),
            r#"{"userId":"u1","socketId":"s1","message":"Authentication successful"}"#,
        );
        sample(
            "AuthError",
            &AuthError::from(api::AuthError::ExpiredToken),
            &format!(
                r#"{{"message":"{}","code":"EXPIRED_TOKEN"}}"#,
                api::AuthError::ExpiredToken
            ),
        );
        sample(
            "Error",
            &Error {
                message: "m".into(),
                code: api::ErrorCode::NotFound,
                context: ErrorContext {
                    conversation_id: Some("conv_1".into()),
                    temp_id: Some("t".into()),
                    ..ErrorContext::default()
                },
            },
            r#"{"message":"m","code":"NOT_FOUND","context":{"conversationId":"conv_1","tempId":"t"}}"#,
        );
        golden(
            &Error {
                message: "m".into(),
                code: api::ErrorCode::RateLimit,
                context: ErrorContext::default(),
            },
            r#"{"message":"m","code":"RATE_LIMIT","context":{}}"#,
        );
    }

    #[test]
    fn room_membership_events() {
        sample(
            "ConversationJoined",
            &ConversationJoined {
                conversation_id: conv(),
                participant_count: 2,
            },
            r#"{"conversationId":"conv_1","participantCount":2}"#,
        );
        sample(
            "ConversationJoinError",
            &ConversationJoinError {
                message: "m".into(),
                code: api::ErrorCode::NotParticipant,
                conversation_id: None,
            },
            r#"{"message":"m","code":"NOT_PARTICIPANT","conversationId":null}"#,
        );
        sample(
            "ConversationLeft",
            &ConversationLeft {
                conversation_id: conv(),
            },
            r#"{"conversationId":"conv_1"}"#,
        );
    }

    #[test]
    fn room_events() {
        let new = MessageNew {
            id: msg(),
            conversation_id: conv(),
            sender_id: user(),
            content: Body::text("Hello"),
            created_at: Timestamp(AT),
            seq: 4,
            offset: Some(9),
            sender: UserRef::new(&user(), Some("John"), Some("https://a/b.png")),
            temp_id: Some(TempId::parse("tmp").expect("valid")),
            parent_id: None,
            mentions: vec![],
        };
        golden(
            &new,
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","content":"Hello","createdAt":"2025-11-09T10:30:00.000Z","seq":4,"offset":9,"sender":{"id":"u1","name":"John","avatarUrl":"https://a/b.png"},"tempId":"tmp"}"#,
        );
        golden(
            &MessageNew {
                offset: None,
                temp_id: None,
                ..new.clone()
            },
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","content":"Hello","createdAt":"2025-11-09T10:30:00.000Z","seq":4,"sender":{"id":"u1","name":"John","avatarUrl":"https://a/b.png"}}"#,
        );
        sample(
            "MessageNew",
            &MessageNew {
                parent_id: Some(MessageId::parse("msg_0").expect("valid")),
                mentions: vec![UserId::parse("u2").expect("valid")],
                ..new
            },
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","content":"Hello","createdAt":"2025-11-09T10:30:00.000Z","seq":4,"offset":9,"sender":{"id":"u1","name":"John","avatarUrl":"https://a/b.png"},"tempId":"tmp","parentId":"msg_0","mentions":["u2"]}"#,
        );
        sample(
            "MessageUpdated",
            &MessageUpdated {
                id: msg(),
                conversation_id: conv(),
                content: Body::text("Edited"),
                edited_at: Timestamp(AT),
                offset: 10,
            },
            r#"{"id":"msg_1","conversationId":"conv_1","content":"Edited","editedAt":"2025-11-09T10:30:00.000Z","offset":10}"#,
        );
        golden(
            &MessageUpdated {
                id: msg(),
                conversation_id: conv(),
                content: events::Opened::Erased.into(),
                edited_at: Timestamp(AT),
                offset: 10,
            },
            r#"{"id":"msg_1","conversationId":"conv_1","content":null,"erased":true,"editedAt":"2025-11-09T10:30:00.000Z","offset":10}"#,
        );
        sample(
            "MessageDeleted",
            &MessageDeleted {
                id: msg(),
                conversation_id: conv(),
                deleted_at: Timestamp(AT),
                deleted_by: user(),
                offset: 11,
            },
            r#"{"id":"msg_1","conversationId":"conv_1","deletedAt":"2025-11-09T10:30:00.000Z","deletedBy":"u1","offset":11}"#,
        );
        sample(
            "ReactionAdded",
            &ReactionAdded {
                id: reaction(),
                message_id: msg(),
                conversation_id: conv(),
                emoji: Emoji::parse("👍").expect("valid"),
                user_id: user(),
                created_at: Timestamp(AT),
                user: NamedUser {
                    id: user(),
                    name: "John".into(),
                },
                offset: 12,
            },
            r#"{"id":"r1","messageId":"msg_1","conversationId":"conv_1","emoji":"👍","userId":"u1","createdAt":"2025-11-09T10:30:00.000Z","user":{"id":"u1","name":"John"},"offset":12}"#,
        );
        sample(
            "ReactionRemoved",
            &ReactionRemoved {
                id: reaction(),
                message_id: msg(),
                conversation_id: conv(),
                user_id: user(),
                offset: 13,
            },
            r#"{"id":"r1","messageId":"msg_1","conversationId":"conv_1","userId":"u1","offset":13}"#,
        );
    }

    #[test]
    fn thread_pin_and_mention_events() {
        sample(
            "ThreadUpdated",
            &ThreadUpdated {
                conversation_id: conv(),
                message_id: msg(),
                reply_count: 2,
                last_reply_at: Timestamp(AT),
                participant_ids: vec![user()],
            },
            r#"{"conversationId":"conv_1","messageId":"msg_1","replyCount":2,"lastReplyAt":"2025-11-09T10:30:00.000Z","participantIds":["u1"]}"#,
        );
        assert_eq!(ThreadUpdated::NAME, "thread:updated");
        sample(
            "MessagePin",
            &MessagePin {
                conversation_id: conv(),
                message_id: msg(),
                by: user(),
                at: Timestamp(AT),
                offset: 14,
            },
            r#"{"conversationId":"conv_1","messageId":"msg_1","by":"u1","at":"2025-11-09T10:30:00.000Z","offset":14}"#,
        );
        sample(
            "MentionNew",
            &MentionNew {
                conversation_id: conv(),
                message_id: msg(),
                sender_id: user(),
                content: Body::text("hi @u2"),
                created_at: Timestamp(AT),
            },
            r#"{"conversationId":"conv_1","messageId":"msg_1","senderId":"u1","content":"hi @u2","createdAt":"2025-11-09T10:30:00.000Z"}"#,
        );
        assert_eq!(MentionNew::NAME, "mention:new");
    }

    #[test]
    fn receipts() {
        sample(
            "MessageDelivered",
            &MessageDelivered {
                message_id: msg(),
                conversation_id: conv(),
                delivered_to: vec![user()],
                delivered_at: Timestamp(AT),
            },
            r#"{"messageId":"msg_1","conversationId":"conv_1","deliveredTo":["u1"],"deliveredAt":"2025-11-09T10:30:00.000Z"}"#,
        );
        sample(
            "ReadReceipt",
            &ReadReceipt {
                conversation_id: conv(),
                message_ids: vec![msg()],
                read_by: user(),
                read_at: Timestamp(AT),
            },
            r#"{"conversationId":"conv_1","messageIds":["msg_1"],"readBy":"u1","readAt":"2025-11-09T10:30:00.000Z"}"#,
        );
    }

    #[test]
    fn presence_and_typing() {
        sample(
            "UserOnline",
            &UserOnline {
                conversation_id: conv(),
                user_id: user(),
                user: UserRef::new(&user(), Some("John"), None),
                timestamp: Timestamp(AT),
            },
            r#"{"conversationId":"conv_1","userId":"u1","user":{"id":"u1","name":"John"},"timestamp":"2025-11-09T10:30:00.000Z"}"#,
        );
        sample(
            "UserOffline",
            &UserOffline {
                conversation_id: conv(),
                user_id: user(),
                timestamp: Timestamp(AT + 1),
                last_seen_at: Timestamp(AT),
            },
            r#"{"conversationId":"conv_1","userId":"u1","timestamp":"2025-11-09T10:30:00.001Z","lastSeenAt":"2025-11-09T10:30:00.000Z"}"#,
        );
        sample(
            "TypingStart",
            &TypingStart {
                conversation_id: conv(),
                user_id: user(),
                user: NamedUser {
                    id: user(),
                    name: "John".into(),
                },
            },
            r#"{"conversationId":"conv_1","userId":"u1","user":{"id":"u1","name":"John"}}"#,
        );
        sample(
            "TypingStop",
            &TypingStop {
                conversation_id: conv(),
                user_id: user(),
            },
            r#"{"conversationId":"conv_1","userId":"u1"}"#,
        );
        sample(
            "PresenceResponse",
            &PresenceResponse {
                conversation_id: conv(),
                online_users: vec![UserRef::new(&user(), Some("John"), None)],
                timestamp: Timestamp(AT),
            },
            r#"{"conversationId":"conv_1","onlineUsers":[{"id":"u1","name":"John"}],"timestamp":"2025-11-09T10:30:00.000Z"}"#,
        );
    }

    #[test]
    fn event_names_are_the_contracts() {
        assert_eq!(MessageNew::NAME, "message:new");
        assert_eq!(ReadReceipt::NAME, "message:read:receipt");
        assert_eq!(TypingStart::NAME, "typing:user:start");
        assert_eq!(ConversationJoinError::NAME, "conversation:join:error");
    }
}
