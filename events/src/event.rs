//! Domain events. Each variant wraps a versioned struct (`…V1`) that is stored as it is:
//! never reorder or remove fields or variants of a stored struct; to change one, add a `V2`
//! struct, give it a new schema version, and upcast the old one in [`EventKind::decode`].

use crate::codec::CodecError;
use crate::ids::{ConversationId, MessageId, ReactionId, UserId};
use crate::text::{Content, Emoji, TempId};

fn refs_json(refs: &[MessageRefV1]) -> serde_json::Value {
    refs.iter()
        .map(|r| serde_json::json!({"messageId": r.message_id, "senderId": r.sender_id}))
        .collect()
}
use serde::{Deserialize, Serialize};

/// What the codec needs from an aggregate's event enum: its stored name and version, its
/// bytes, and the way back from any stored (type, version, bytes) to the current shape.
pub trait EventKind: Sized {
    /// The aggregate type these events belong to (`user`, `conversation`).
    const AGGREGATE: &'static str;
    fn event_type(&self) -> &'static str;
    fn schema_version(&self) -> u16;
    fn encode_data(&self) -> Vec<u8>;
    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError>;
    /// The data as JSON, for audit output.
    fn to_json(&self) -> serde_json::Value;
}

/// An event of any aggregate, as decoded from the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    User(UserEvent),
    Conversation(ConversationEvent),
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain structs of owned strings and integers into a Vec cannot fail.
    postcard::to_stdvec(v).unwrap_or_default()
}

fn dec<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, CodecError> {
    postcard::from_bytes(data).map_err(|e| CodecError::Data(e.to_string()))
}

// ---------------------------------------------------------------- user

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegisteredV1 {
    pub name: String,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdatedV1 {
    pub name: String,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSuspendedV1 {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReinstatedV1 {}

/// The user's last socket left a room or disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLastSeenV1 {
    pub last_seen_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    Registered(UserRegisteredV1),
    Updated(UserUpdatedV1),
    Suspended(UserSuspendedV1),
    Reinstated(UserReinstatedV1),
    LastSeen(UserLastSeenV1),
}

impl EventKind for UserEvent {
    const AGGREGATE: &'static str = "user";

    fn event_type(&self) -> &'static str {
        match self {
            Self::Registered(_) => "UserRegistered",
            Self::Updated(_) => "UserUpdated",
            Self::Suspended(_) => "UserSuspended",
            Self::Reinstated(_) => "UserReinstated",
            Self::LastSeen(_) => "UserLastSeen",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }

    fn encode_data(&self) -> Vec<u8> {
        match self {
            Self::Registered(e) => enc(e),
            Self::Updated(e) => enc(e),
            Self::Suspended(e) => enc(e),
            Self::Reinstated(e) => enc(e),
            Self::LastSeen(e) => enc(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match (event_type, schema_version) {
            ("UserRegistered", 1) => Ok(Self::Registered(dec(data)?)),
            ("UserUpdated", 1) => Ok(Self::Updated(dec(data)?)),
            ("UserSuspended", 1) => Ok(Self::Suspended(dec(data)?)),
            ("UserReinstated", 1) => Ok(Self::Reinstated(dec(data)?)),
            ("UserLastSeen", 1) => Ok(Self::LastSeen(dec(data)?)),
            _ => Err(CodecError::UnknownEvent(
                event_type.to_owned(),
                schema_version,
            )),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Registered(e) => {
                serde_json::json!({"name": e.name, "avatarUrl": e.avatar_url})
            }
            Self::Updated(e) => serde_json::json!({"name": e.name, "avatarUrl": e.avatar_url}),
            Self::Suspended(e) => serde_json::json!({"reason": e.reason}),
            Self::Reinstated(_) => serde_json::json!({}),
            Self::LastSeen(e) => serde_json::json!({"lastSeenAt": crate::iso8601(e.last_seen_at)}),
        }
    }
}

// ---------------------------------------------------------------- conversation

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParticipantRole {
    Admin,
    Member,
}

impl ParticipantRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationCreatedV1 {
    pub conversation_id: ConversationId,
    pub title: Option<String>,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantAddedV1 {
    pub user_id: UserId,
    pub role: ParticipantRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRemovedV1 {
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSentV1 {
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub content: Content,
    pub temp_id: Option<TempId>,
    /// Position of the message in its conversation: 1, 2, 3… with no gap.
    pub seq: u64,
    /// When the message was sent (its `createdAt`), in ms since the epoch.
    pub sent_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEditedV1 {
    pub message_id: MessageId,
    pub content: Content,
    pub edited_at: crate::Millis,
}

/// Soft delete: the log keeps the original; read models blank the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeletedV1 {
    pub message_id: MessageId,
    pub deleted_by: UserId,
    pub deleted_at: crate::Millis,
}

/// A message and its sender, as delivery and read events list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRefV1 {
    pub message_id: MessageId,
    pub sender_id: UserId,
}

/// Every one of `messages` reached every one of `recipients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesDeliveredV1 {
    pub recipients: Vec<UserId>,
    pub messages: Vec<MessageRefV1>,
    pub delivered_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesReadV1 {
    pub reader: UserId,
    pub messages: Vec<MessageRefV1>,
    pub read_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionAddedV1 {
    pub reaction_id: ReactionId,
    pub message_id: MessageId,
    pub user_id: UserId,
    pub emoji: Emoji,
    pub created_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionRemovedV1 {
    pub reaction_id: ReactionId,
    pub message_id: MessageId,
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationEvent {
    Created(ConversationCreatedV1),
    ParticipantAdded(ParticipantAddedV1),
    ParticipantRemoved(ParticipantRemovedV1),
    MessageSent(MessageSentV1),
    MessageEdited(MessageEditedV1),
    MessageDeleted(MessageDeletedV1),
    MessagesDelivered(MessagesDeliveredV1),
    MessagesRead(MessagesReadV1),
    ReactionAdded(ReactionAddedV1),
    ReactionRemoved(ReactionRemovedV1),
}

impl ConversationEvent {
    /// Whether this event is emitted to the conversation's room (and so carries an `offset`).
    pub fn is_room_event(&self) -> bool {
        matches!(
            self,
            Self::MessageSent(_)
                | Self::MessageEdited(_)
                | Self::MessageDeleted(_)
                | Self::ReactionAdded(_)
                | Self::ReactionRemoved(_)
        )
    }
}

impl EventKind for ConversationEvent {
    const AGGREGATE: &'static str = "conversation";

    fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => "ConversationCreated",
            Self::ParticipantAdded(_) => "ParticipantAdded",
            Self::ParticipantRemoved(_) => "ParticipantRemoved",
            Self::MessageSent(_) => "MessageSent",
            Self::MessageEdited(_) => "MessageEdited",
            Self::MessageDeleted(_) => "MessageDeleted",
            Self::MessagesDelivered(_) => "MessagesDelivered",
            Self::MessagesRead(_) => "MessagesRead",
            Self::ReactionAdded(_) => "ReactionAdded",
            Self::ReactionRemoved(_) => "ReactionRemoved",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }

    fn encode_data(&self) -> Vec<u8> {
        match self {
            Self::Created(e) => enc(e),
            Self::ParticipantAdded(e) => enc(e),
            Self::ParticipantRemoved(e) => enc(e),
            Self::MessageSent(e) => enc(e),
            Self::MessageEdited(e) => enc(e),
            Self::MessageDeleted(e) => enc(e),
            Self::MessagesDelivered(e) => enc(e),
            Self::MessagesRead(e) => enc(e),
            Self::ReactionAdded(e) => enc(e),
            Self::ReactionRemoved(e) => enc(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match (event_type, schema_version) {
            ("ConversationCreated", 1) => Ok(Self::Created(dec(data)?)),
            ("ParticipantAdded", 1) => Ok(Self::ParticipantAdded(dec(data)?)),
            ("ParticipantRemoved", 1) => Ok(Self::ParticipantRemoved(dec(data)?)),
            ("MessageSent", 1) => Ok(Self::MessageSent(dec(data)?)),
            ("MessageEdited", 1) => Ok(Self::MessageEdited(dec(data)?)),
            ("MessageDeleted", 1) => Ok(Self::MessageDeleted(dec(data)?)),
            ("MessagesDelivered", 1) => Ok(Self::MessagesDelivered(dec(data)?)),
            ("MessagesRead", 1) => Ok(Self::MessagesRead(dec(data)?)),
            ("ReactionAdded", 1) => Ok(Self::ReactionAdded(dec(data)?)),
            ("ReactionRemoved", 1) => Ok(Self::ReactionRemoved(dec(data)?)),
            _ => Err(CodecError::UnknownEvent(
                event_type.to_owned(),
                schema_version,
            )),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Created(e) => json!({
                "conversationId": e.conversation_id, "title": e.title, "createdBy": e.created_by
            }),
            Self::ParticipantAdded(e) => json!({"userId": e.user_id, "role": e.role.as_str()}),
            Self::ParticipantRemoved(e) => json!({"userId": e.user_id}),
            Self::MessageSent(e) => json!({
                "messageId": e.message_id, "senderId": e.sender_id, "content": e.content,
                "tempId": e.temp_id, "seq": e.seq, "createdAt": crate::iso8601(e.sent_at)
            }),
            Self::MessageEdited(e) => json!({
                "messageId": e.message_id, "content": e.content, "editedAt": crate::iso8601(e.edited_at)
            }),
            Self::MessageDeleted(e) => json!({
                "messageId": e.message_id, "deletedBy": e.deleted_by, "deletedAt": crate::iso8601(e.deleted_at)
            }),
            Self::MessagesDelivered(e) => json!({
                "recipients": e.recipients, "messages": refs_json(&e.messages),
                "deliveredAt": crate::iso8601(e.delivered_at)
            }),
            Self::MessagesRead(e) => json!({
                "reader": e.reader, "messages": refs_json(&e.messages), "readAt": crate::iso8601(e.read_at)
            }),
            Self::ReactionAdded(e) => json!({
                "reactionId": e.reaction_id, "messageId": e.message_id, "userId": e.user_id,
                "emoji": e.emoji, "createdAt": crate::iso8601(e.created_at)
            }),
            Self::ReactionRemoved(e) => json!({
                "reactionId": e.reaction_id, "messageId": e.message_id, "userId": e.user_id
            }),
        }
    }
}
