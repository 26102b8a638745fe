//! Domain events. Each variant wraps a versioned struct (`…V1`) that is stored as it is:
//! never reorder or remove fields or variants of a stored struct; to change one, add a `V2`
//! struct, give it a new schema version, and upcast the old one in [`EventKind::decode`].

use crate::codec::CodecError;
use crate::ids::{ConversationId, MessageId, ReactionId, UserId};
use crate::sealed::{Open, Opened, Place, SealedV1, Text};
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
    /// The data as JSON, for audit output, sealed fields opened with `keys` (those whose key
    /// is destroyed read `null`, with `erased` or `expired` set).
    fn to_json(&self, keys: &dyn Open, aggregate_id: &str) -> serde_json::Value;
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

/// A profile as `UserRegistered` and `UserUpdated` v2 store it: every field sealed under the
/// user's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileV2 {
    pub name: SealedV1,
    pub avatar_url: Option<SealedV1>,
    /// A PRF of the profile's text under the user's key: tells an unchanged profile without
    /// the text, and means nothing once the key is destroyed.
    pub fingerprint: [u8; 32],
}

/// The profile a `UserRegistered` or `UserUpdated` event carries: in the clear (v1, written
/// before sealing) or sealed (v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    Clear(UserRegisteredV1),
    Sealed(ProfileV2),
}

/// A profile as opened by a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedProfile {
    /// `None` once the user's data key is destroyed.
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub erased: bool,
}

impl Profile {
    pub fn open(&self, keys: &dyn Open, user: &str) -> OpenedProfile {
        match self {
            Self::Clear(p) => OpenedProfile {
                name: Some(p.name.clone()),
                avatar_url: p.avatar_url.clone(),
                erased: false,
            },
            Self::Sealed(p) => {
                let name = keys.open(&Place::profile(user, "name"), &p.name);
                let avatar_url = p
                    .avatar_url
                    .as_ref()
                    .map(|a| keys.open(&Place::profile(user, "avatarUrl"), a));
                OpenedProfile {
                    erased: !matches!(name, Opened::Text(_)),
                    name: name.into_text(),
                    avatar_url: avatar_url.and_then(Opened::into_text),
                }
            }
        }
    }

    fn encode(&self) -> (u16, Vec<u8>) {
        match self {
            Self::Clear(p) => (1, enc(p)),
            Self::Sealed(p) => (2, enc(p)),
        }
    }

    fn decode(version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => Ok(Self::Clear(dec(data)?)),
            2 => Ok(Self::Sealed(dec(data)?)),
            _ => Err(CodecError::Data(format!(
                "unknown profile version {version}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSuspendedV1 {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReinstatedV1 {}

/// A legal hold on the user (contract 4.2): nothing of theirs is destroyed until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlacedV1 {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldReleasedV1 {}

/// The user was erased (contract 4.2): their data key is destroyed, so every field sealed
/// under it (their profile, the content of their messages) no longer opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserErasedV1 {
    pub reason: Option<String>,
}

/// The user's last socket left a room or disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLastSeenV1 {
    pub last_seen_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    Registered(Profile),
    Updated(Profile),
    Suspended(UserSuspendedV1),
    Reinstated(UserReinstatedV1),
    LastSeen(UserLastSeenV1),
    Erased(UserErasedV1),
    Held(HoldPlacedV1),
    Released(HoldReleasedV1),
}

impl UserEvent {
    /// The sealed fields this event carries.
    pub fn sealed(&self) -> Vec<&SealedV1> {
        match self {
            Self::Registered(p) | Self::Updated(p) => p.sealed(),
            _ => Vec::new(),
        }
    }
}

impl Profile {
    /// The sealed fields of a sealed profile.
    pub fn sealed(&self) -> Vec<&SealedV1> {
        match self {
            Self::Sealed(p) => std::iter::once(&p.name).chain(&p.avatar_url).collect(),
            Self::Clear(_) => Vec::new(),
        }
    }
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
            Self::Erased(_) => "UserErased",
            Self::Held(_) => "UserHeld",
            Self::Released(_) => "UserReleased",
        }
    }

    fn schema_version(&self) -> u16 {
        match self {
            Self::Registered(p) | Self::Updated(p) => p.encode().0,
            _ => 1,
        }
    }

    fn encode_data(&self) -> Vec<u8> {
        match self {
            Self::Registered(p) | Self::Updated(p) => p.encode().1,
            Self::Suspended(e) => enc(e),
            Self::Reinstated(e) => enc(e),
            Self::LastSeen(e) => enc(e),
            Self::Erased(e) => enc(e),
            Self::Held(e) => enc(e),
            Self::Released(e) => enc(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match (event_type, schema_version) {
            ("UserRegistered", v @ (1 | 2)) => Ok(Self::Registered(Profile::decode(v, data)?)),
            ("UserUpdated", v @ (1 | 2)) => Ok(Self::Updated(Profile::decode(v, data)?)),
            ("UserSuspended", 1) => Ok(Self::Suspended(dec(data)?)),
            ("UserReinstated", 1) => Ok(Self::Reinstated(dec(data)?)),
            ("UserLastSeen", 1) => Ok(Self::LastSeen(dec(data)?)),
            ("UserErased", 1) => Ok(Self::Erased(dec(data)?)),
            ("UserHeld", 1) => Ok(Self::Held(dec(data)?)),
            ("UserReleased", 1) => Ok(Self::Released(dec(data)?)),
            _ => Err(CodecError::UnknownEvent(
                event_type.to_owned(),
                schema_version,
            )),
        }
    }

    fn to_json(&self, keys: &dyn Open, aggregate_id: &str) -> serde_json::Value {
        match self {
            Self::Registered(p) | Self::Updated(p) => {
                let o = p.open(keys, aggregate_id);
                let mut v = serde_json::json!({"name": o.name, "avatarUrl": o.avatar_url});
                if o.erased {
                    v["erased"] = true.into();
                }
                v
            }
            Self::Suspended(e) => serde_json::json!({"reason": e.reason}),
            Self::Reinstated(_) => serde_json::json!({}),
            Self::LastSeen(e) => serde_json::json!({"lastSeenAt": crate::iso8601(e.last_seen_at)}),
            Self::Erased(e) => serde_json::json!({"reason": e.reason}),
            Self::Held(e) => serde_json::json!({"reason": e.reason}),
            Self::Released(_) => serde_json::json!({}),
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
pub struct MessageSentV2 {
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub content: SealedV1,
    pub temp_id: Option<TempId>,
    pub seq: u64,
    pub sent_at: crate::Millis,
}

/// A sealed send that is a reply in a thread or mentions users (contract 4.4). Sends that are
/// neither are still written as v2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSentV3 {
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub content: SealedV1,
    pub temp_id: Option<TempId>,
    pub seq: u64,
    pub sent_at: crate::Millis,
    pub reply: Option<ReplyV1>,
    pub mentions: Vec<UserId>,
}

/// The thread a reply belongs to, as it stands with this reply: its parent and the summary the
/// aggregate decided (the reply's `sent_at` is the thread's `lastReplyAt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyV1 {
    pub parent_id: MessageId,
    /// Replies the thread has, this one included.
    pub reply_count: u64,
    /// Everyone who replied, in the order of their first reply.
    pub participant_ids: Vec<UserId>,
}

/// `MessageSent` as decoded: v1 (content in the clear), v2 (sealed) or v3 (sealed, with a
/// thread or mentions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub content: Text,
    pub temp_id: Option<TempId>,
    pub seq: u64,
    pub sent_at: crate::Millis,
    pub reply: Option<ReplyV1>,
    pub mentions: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEditedV1 {
    pub message_id: MessageId,
    pub content: Content,
    pub edited_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEditedV2 {
    pub message_id: MessageId,
    pub content: SealedV1,
    pub edited_at: crate::Millis,
}

/// `MessageEdited` as decoded: v1 (content in the clear) or v2 (sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub message_id: MessageId,
    pub content: Text,
    pub edited_at: crate::Millis,
}

impl MessageSent {
    fn encode(&self) -> (u16, Vec<u8>) {
        match &self.content {
            Text::Clear(c) => (
                1,
                enc(&MessageSentV1 {
                    message_id: self.message_id.clone(),
                    sender_id: self.sender_id.clone(),
                    content: Content::stored(c.clone()),
                    temp_id: self.temp_id.clone(),
                    seq: self.seq,
                    sent_at: self.sent_at,
                }),
            ),
            Text::Sealed(s) if self.reply.is_none() && self.mentions.is_empty() => (
                2,
                enc(&MessageSentV2 {
                    message_id: self.message_id.clone(),
                    sender_id: self.sender_id.clone(),
                    content: s.clone(),
                    temp_id: self.temp_id.clone(),
                    seq: self.seq,
                    sent_at: self.sent_at,
                }),
            ),
            Text::Sealed(s) => (
                3,
                enc(&MessageSentV3 {
                    message_id: self.message_id.clone(),
                    sender_id: self.sender_id.clone(),
                    content: s.clone(),
                    temp_id: self.temp_id.clone(),
                    seq: self.seq,
                    sent_at: self.sent_at,
                    reply: self.reply.clone(),
                    mentions: self.mentions.clone(),
                }),
            ),
        }
    }

    fn decode(version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => {
                let m: MessageSentV1 = dec(data)?;
                Ok(Self {
                    message_id: m.message_id,
                    sender_id: m.sender_id,
                    content: Text::Clear(m.content.into_string()),
                    temp_id: m.temp_id,
                    seq: m.seq,
                    sent_at: m.sent_at,
                    reply: None,
                    mentions: Vec::new(),
                })
            }
            2 => {
                let m: MessageSentV2 = dec(data)?;
                Ok(Self {
                    message_id: m.message_id,
                    sender_id: m.sender_id,
                    content: Text::Sealed(m.content),
                    temp_id: m.temp_id,
                    seq: m.seq,
                    sent_at: m.sent_at,
                    reply: None,
                    mentions: Vec::new(),
                })
            }
            _ => {
                let m: MessageSentV3 = dec(data)?;
                Ok(Self {
                    message_id: m.message_id,
                    sender_id: m.sender_id,
                    content: Text::Sealed(m.content),
                    temp_id: m.temp_id,
                    seq: m.seq,
                    sent_at: m.sent_at,
                    reply: m.reply,
                    mentions: m.mentions,
                })
            }
        }
    }

    /// The content, opened with `keys`.
    pub fn open(&self, keys: &dyn Open, conversation: &str) -> Opened {
        let place = Place::message_content(conversation, "MessageSent", self.message_id.as_str());
        self.content.open(keys, &place)
    }
}

impl MessageEdited {
    fn encode(&self) -> (u16, Vec<u8>) {
        match &self.content {
            Text::Clear(c) => (
                1,
                enc(&MessageEditedV1 {
                    message_id: self.message_id.clone(),
                    content: Content::stored(c.clone()),
                    edited_at: self.edited_at,
                }),
            ),
            Text::Sealed(s) => (
                2,
                enc(&MessageEditedV2 {
                    message_id: self.message_id.clone(),
                    content: s.clone(),
                    edited_at: self.edited_at,
                }),
            ),
        }
    }

    fn decode(version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => {
                let m: MessageEditedV1 = dec(data)?;
                Ok(Self {
                    message_id: m.message_id,
                    content: Text::Clear(m.content.into_string()),
                    edited_at: m.edited_at,
                })
            }
            _ => {
                let m: MessageEditedV2 = dec(data)?;
                Ok(Self {
                    message_id: m.message_id,
                    content: Text::Sealed(m.content),
                    edited_at: m.edited_at,
                })
            }
        }
    }

    /// The new content, opened with `keys`.
    pub fn open(&self, keys: &dyn Open, conversation: &str) -> Opened {
        let place = Place::message_content(conversation, "MessageEdited", self.message_id.as_str());
        self.content.open(keys, &place)
    }
}

/// Content as audit output shows it: the text, or `null` with why.
fn content_json(v: &mut serde_json::Value, opened: Opened) {
    match opened {
        Opened::Text(t) => v["content"] = t.into(),
        Opened::Erased => {
            v["content"] = serde_json::Value::Null;
            v["erased"] = true.into();
        }
        Opened::Expired => {
            v["content"] = serde_json::Value::Null;
            v["expired"] = true.into();
        }
    }
}

/// A message pinned to its conversation (contract 4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePinnedV1 {
    pub message_id: MessageId,
    pub pinned_by: UserId,
    pub pinned_at: crate::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUnpinnedV1 {
    pub message_id: MessageId,
    pub unpinned_by: UserId,
    pub unpinned_at: crate::Millis,
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

/// The conversation's retention period was set (contract 4.2): `None` keeps messages forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSetV1 {
    pub retention_seconds: Option<u64>,
}

/// Retention expired every message of the conversation sent before `before` (its id's time):
/// they read `expired: true` from here on, and the keys of the periods wholly before `before`
/// are destroyed. `upto_seq` is the last `seq` it covers, for readers that count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesExpiredV1 {
    pub before: crate::Millis,
    pub upto_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationEvent {
    Created(ConversationCreatedV1),
    ParticipantAdded(ParticipantAddedV1),
    ParticipantRemoved(ParticipantRemovedV1),
    MessageSent(MessageSent),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeletedV1),
    MessagesDelivered(MessagesDeliveredV1),
    MessagesRead(MessagesReadV1),
    ReactionAdded(ReactionAddedV1),
    ReactionRemoved(ReactionRemovedV1),
    Held(HoldPlacedV1),
    Released(HoldReleasedV1),
    RetentionSet(RetentionSetV1),
    MessagesExpired(MessagesExpiredV1),
    MessagePinned(MessagePinnedV1),
    MessageUnpinned(MessageUnpinnedV1),
}

impl ConversationEvent {
    /// Whether the event names `user`: as participant, sender, reader, recipient, deleter or
    /// reactor (for exports of a user's data).
    pub fn names(&self, user: &UserId) -> bool {
        let sent_by = |refs: &[MessageRefV1]| refs.iter().any(|r| &r.sender_id == user);
        match self {
            Self::Created(e) => &e.created_by == user,
            Self::ParticipantAdded(e) => &e.user_id == user,
            Self::ParticipantRemoved(e) => &e.user_id == user,
            Self::MessageSent(e) => &e.sender_id == user || e.mentions.contains(user),
            Self::MessagePinned(e) => &e.pinned_by == user,
            Self::MessageUnpinned(e) => &e.unpinned_by == user,
            Self::MessageEdited(_)
            | Self::Held(_)
            | Self::Released(_)
            | Self::RetentionSet(_)
            | Self::MessagesExpired(_) => false,
            Self::MessageDeleted(e) => &e.deleted_by == user,
            Self::MessagesDelivered(e) => e.recipients.contains(user) || sent_by(&e.messages),
            Self::MessagesRead(e) => &e.reader == user || sent_by(&e.messages),
            Self::ReactionAdded(e) => &e.user_id == user,
            Self::ReactionRemoved(e) => &e.user_id == user,
        }
    }

    /// The message an edit, a deletion or a reaction changes after it was sent (as-of reads
    /// find these commits by message).
    pub fn changed_message(&self) -> Option<&MessageId> {
        match self {
            Self::MessageEdited(e) => Some(&e.message_id),
            Self::MessageDeleted(e) => Some(&e.message_id),
            Self::ReactionAdded(e) => Some(&e.message_id),
            Self::ReactionRemoved(e) => Some(&e.message_id),
            _ => None,
        }
    }

    /// The sealed field this event carries, if any.
    pub fn sealed(&self) -> Option<&SealedV1> {
        match self {
            Self::MessageSent(m) => m.content.sealed(),
            Self::MessageEdited(m) => m.content.sealed(),
            _ => None,
        }
    }

    /// Whether this event is emitted to the conversation's room (and so carries an `offset`).
    pub fn is_room_event(&self) -> bool {
        matches!(
            self,
            Self::MessageSent(_)
                | Self::MessageEdited(_)
                | Self::MessageDeleted(_)
                | Self::ReactionAdded(_)
                | Self::ReactionRemoved(_)
                | Self::MessagePinned(_)
                | Self::MessageUnpinned(_)
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
            Self::Held(_) => "ConversationHeld",
            Self::Released(_) => "ConversationReleased",
            Self::RetentionSet(_) => "ConversationRetentionSet",
            Self::MessagesExpired(_) => "MessagesExpired",
            Self::MessagePinned(_) => "MessagePinned",
            Self::MessageUnpinned(_) => "MessageUnpinned",
        }
    }

    fn schema_version(&self) -> u16 {
        match self {
            Self::MessageSent(e) => e.encode().0,
            Self::MessageEdited(e) => e.encode().0,
            _ => 1,
        }
    }

    fn encode_data(&self) -> Vec<u8> {
        match self {
            Self::Created(e) => enc(e),
            Self::ParticipantAdded(e) => enc(e),
            Self::ParticipantRemoved(e) => enc(e),
            Self::MessageSent(e) => e.encode().1,
            Self::MessageEdited(e) => e.encode().1,
            Self::MessageDeleted(e) => enc(e),
            Self::MessagesDelivered(e) => enc(e),
            Self::MessagesRead(e) => enc(e),
            Self::ReactionAdded(e) => enc(e),
            Self::ReactionRemoved(e) => enc(e),
            Self::Held(e) => enc(e),
            Self::Released(e) => enc(e),
            Self::RetentionSet(e) => enc(e),
            Self::MessagesExpired(e) => enc(e),
            Self::MessagePinned(e) => enc(e),
            Self::MessageUnpinned(e) => enc(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, CodecError> {
        match (event_type, schema_version) {
            ("ConversationCreated", 1) => Ok(Self::Created(dec(data)?)),
            ("ParticipantAdded", 1) => Ok(Self::ParticipantAdded(dec(data)?)),
            ("ParticipantRemoved", 1) => Ok(Self::ParticipantRemoved(dec(data)?)),
            ("MessageSent", v @ (1..=3)) => Ok(Self::MessageSent(MessageSent::decode(v, data)?)),
            ("MessageEdited", v @ (1 | 2)) => {
                Ok(Self::MessageEdited(MessageEdited::decode(v, data)?))
            }
            ("MessageDeleted", 1) => Ok(Self::MessageDeleted(dec(data)?)),
            ("MessagesDelivered", 1) => Ok(Self::MessagesDelivered(dec(data)?)),
            ("MessagesRead", 1) => Ok(Self::MessagesRead(dec(data)?)),
            ("ReactionAdded", 1) => Ok(Self::ReactionAdded(dec(data)?)),
            ("ReactionRemoved", 1) => Ok(Self::ReactionRemoved(dec(data)?)),
            ("ConversationHeld", 1) => Ok(Self::Held(dec(data)?)),
            ("ConversationReleased", 1) => Ok(Self::Released(dec(data)?)),
            ("ConversationRetentionSet", 1) => Ok(Self::RetentionSet(dec(data)?)),
            ("MessagesExpired", 1) => Ok(Self::MessagesExpired(dec(data)?)),
            ("MessagePinned", 1) => Ok(Self::MessagePinned(dec(data)?)),
            ("MessageUnpinned", 1) => Ok(Self::MessageUnpinned(dec(data)?)),
            _ => Err(CodecError::UnknownEvent(
                event_type.to_owned(),
                schema_version,
            )),
        }
    }

    fn to_json(&self, keys: &dyn Open, aggregate_id: &str) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Created(e) => json!({
                "conversationId": e.conversation_id, "title": e.title, "createdBy": e.created_by
            }),
            Self::ParticipantAdded(e) => json!({"userId": e.user_id, "role": e.role.as_str()}),
            Self::ParticipantRemoved(e) => json!({"userId": e.user_id}),
            Self::MessageSent(e) => {
                let mut v = json!({
                    "messageId": e.message_id, "senderId": e.sender_id,
                    "tempId": e.temp_id, "seq": e.seq, "createdAt": crate::iso8601(e.sent_at)
                });
                content_json(&mut v, e.open(keys, aggregate_id));
                if let Some(r) = &e.reply {
                    v["parentId"] = json!(r.parent_id);
                    v["replyCount"] = json!(r.reply_count);
                    v["threadParticipantIds"] = json!(r.participant_ids);
                }
                if !e.mentions.is_empty() {
                    v["mentions"] = json!(e.mentions);
                }
                v
            }
            Self::MessageEdited(e) => {
                let mut v = json!({
                    "messageId": e.message_id, "editedAt": crate::iso8601(e.edited_at)
                });
                content_json(&mut v, e.open(keys, aggregate_id));
                v
            }
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
            Self::Held(e) => json!({"reason": e.reason}),
            Self::Released(_) => json!({}),
            Self::RetentionSet(e) => json!({"retentionSeconds": e.retention_seconds}),
            Self::MessagesExpired(e) => json!({
                "before": crate::iso8601(e.before), "uptoSeq": e.upto_seq
            }),
            Self::MessagePinned(e) => json!({
                "messageId": e.message_id, "pinnedBy": e.pinned_by, "pinnedAt": crate::iso8601(e.pinned_at)
            }),
            Self::MessageUnpinned(e) => json!({
                "messageId": e.message_id, "unpinnedBy": e.unpinned_by,
                "unpinnedAt": crate::iso8601(e.unpinned_at)
            }),
        }
    }
}
