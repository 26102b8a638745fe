//! Domain events. Each variant wraps a versioned struct (`…V1`) that is stored as it is:
//! never reorder or remove fields or variants of a stored struct; to change one, add a `V2`
//! struct, give it a new schema version, and upcast the old one in [`EventKind::decode`].

use crate::codec::CodecError;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::text::{Content, TempId};
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
pub enum UserEvent {
    Registered(UserRegisteredV1),
    Updated(UserUpdatedV1),
}

impl EventKind for UserEvent {
    const AGGREGATE: &'static str = "user";

    fn event_type(&self) -> &'static str {
        match self {
            Self::Registered(_) => "UserRegistered",
            Self::Updated(_) => "UserUpdated",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }

    fn encode_data(&self) -> Vec<u8> {
        match self {
            Self::Registered(e) => enc(e),
            Self::Updated(e) => enc(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match (event_type, schema_version) {
            ("UserRegistered", 1) => Ok(Self::Registered(dec(data)?)),
            ("UserUpdated", 1) => Ok(Self::Updated(dec(data)?)),
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
pub enum ConversationEvent {
    Created(ConversationCreatedV1),
    ParticipantAdded(ParticipantAddedV1),
    ParticipantRemoved(ParticipantRemovedV1),
    MessageSent(MessageSentV1),
}

impl ConversationEvent {
    /// Whether this event is emitted to the conversation's room (and so carries an `offset`).
    pub fn is_room_event(&self) -> bool {
        matches!(self, Self::MessageSent(_))
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
        }
    }

    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match (event_type, schema_version) {
            ("ConversationCreated", 1) => Ok(Self::Created(dec(data)?)),
            ("ParticipantAdded", 1) => Ok(Self::ParticipantAdded(dec(data)?)),
            ("ParticipantRemoved", 1) => Ok(Self::ParticipantRemoved(dec(data)?)),
            ("MessageSent", 1) => Ok(Self::MessageSent(dec(data)?)),
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
        }
    }
}
