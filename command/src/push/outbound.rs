//! The one mapping from a log event to the wire message a client receives, used by the
//! broadcaster, catch-up and the REST answers; and the counted emit every push goes through.

use crate::executor::Executor;
use crate::metrics::Metrics;
use crate::service::{ProfileView, user_profile};
use eventlog::EventLog;
use events::{
    ConversationEvent, ConversationId, MessageDeletedV1, MessageEdited, MessageId, MessageSent,
    Opened, ReactionAddedV1, ReactionRemovedV1, Recorded, UserId,
};
use serde::Serialize;
use std::collections::BTreeMap;
use wire::socket::{
    MentionNew, MessageDeleted, MessageDelivered, MessageNew, MessagePin, MessageUpdated,
    NamedUser, ReactionAdded, ReactionRemoved, ReadReceipt, SocketEvent, ThreadUpdated,
};
use wire::{Timestamp, UserRef};

/// An event emitted to a conversation room: it carries `offset` (contract section 1).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RoomMessage {
    New(MessageNew),
    Updated(MessageUpdated),
    Deleted(MessageDeleted),
    ReactionAdded(ReactionAdded),
    ReactionRemoved(ReactionRemoved),
    Pinned(MessagePin),
    Unpinned(MessagePin),
    /// Follows a reply's `message:new`, under the same offset.
    ThreadUpdated(ThreadUpdated),
}

impl RoomMessage {
    /// The Socket.IO event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::New(_) => MessageNew::NAME,
            Self::Updated(_) => MessageUpdated::NAME,
            Self::Deleted(_) => MessageDeleted::NAME,
            Self::ReactionAdded(_) => ReactionAdded::NAME,
            Self::ReactionRemoved(_) => ReactionRemoved::NAME,
            Self::Pinned(_) => "message:pinned",
            Self::Unpinned(_) => "message:unpinned",
            Self::ThreadUpdated(_) => ThreadUpdated::NAME,
        }
    }
}

/// The `sender` / `user` object of a user as this node knows them.
pub fn user_ref(id: &UserId, user: Option<&ProfileView>) -> UserRef {
    if user.is_some_and(|u| u.name.is_none()) {
        return UserRef::erased(id);
    }
    UserRef::new(
        id,
        user.and_then(|u| u.name.as_deref()),
        user.and_then(|u| u.avatar_url.as_deref()),
    )
}

/// `message:new` (and the `POST /api/messages` body) with its content as opened; `offset`
/// is `None` for a retried send.
pub fn message_new(
    conversation_id: &ConversationId,
    m: &MessageSent,
    content: Opened,
    offset: Option<u64>,
    sender: Option<&ProfileView>,
) -> MessageNew {
    MessageNew {
        id: m.message_id.clone(),
        conversation_id: conversation_id.clone(),
        sender_id: m.sender_id.clone(),
        content: content.into(),
        created_at: Timestamp(m.sent_at),
        seq: m.seq,
        offset,
        sender: user_ref(&m.sender_id, sender),
        temp_id: m.temp_id.clone(),
        parent_id: m.reply.as_ref().map(|r| r.parent_id.clone()),
        mentions: m.mentions.clone(),
    }
}

/// `thread:updated` for a reply: its parent's thread as the reply left it.
fn thread_updated(conv: &ConversationId, m: &MessageSent) -> Option<ThreadUpdated> {
    let reply = m.reply.as_ref()?;
    Some(ThreadUpdated {
        conversation_id: conv.clone(),
        message_id: reply.parent_id.clone(),
        reply_count: reply.reply_count,
        last_reply_at: Timestamp(m.sent_at),
        participant_ids: reply.participant_ids.clone(),
    })
}

/// `mention:new` for a message that mentions someone other than its sender, with the users it
/// goes to (one payload for all of them).
pub fn mentions(
    conv: &ConversationId,
    m: &MessageSent,
    content: &Opened,
) -> Option<(Vec<UserId>, MentionNew)> {
    let to: Vec<UserId> = m
        .mentions
        .iter()
        .filter(|u| **u != m.sender_id)
        .cloned()
        .collect();
    (!to.is_empty()).then(|| {
        let mention = MentionNew {
            conversation_id: conv.clone(),
            message_id: m.message_id.clone(),
            sender_id: m.sender_id.clone(),
            content: content.clone().into(),
            created_at: Timestamp(m.sent_at),
        };
        (to, mention)
    })
}

fn message_pin(
    conv: &ConversationId,
    id: &MessageId,
    by: &UserId,
    at: i64,
    offset: u64,
) -> MessagePin {
    MessagePin {
        conversation_id: conv.clone(),
        message_id: id.clone(),
        by: by.clone(),
        at: Timestamp(at),
        offset,
    }
}

fn message_updated(
    conv: &ConversationId,
    e: &MessageEdited,
    content: Opened,
    offset: u64,
) -> MessageUpdated {
    MessageUpdated {
        id: e.message_id.clone(),
        conversation_id: conv.clone(),
        content: content.into(),
        edited_at: Timestamp(e.edited_at),
        offset,
    }
}

fn message_deleted(conv: &ConversationId, e: &MessageDeletedV1, offset: u64) -> MessageDeleted {
    MessageDeleted {
        id: e.message_id.clone(),
        conversation_id: conv.clone(),
        deleted_at: Timestamp(e.deleted_at),
        deleted_by: e.deleted_by.clone(),
        offset,
    }
}

fn reaction_added(
    conv: &ConversationId,
    e: &ReactionAddedV1,
    offset: u64,
    user: Option<&ProfileView>,
) -> ReactionAdded {
    ReactionAdded {
        id: e.reaction_id.clone(),
        message_id: e.message_id.clone(),
        conversation_id: conv.clone(),
        emoji: e.emoji.clone(),
        user_id: e.user_id.clone(),
        created_at: Timestamp(e.created_at),
        user: NamedUser {
            id: e.user_id.clone(),
            name: user
                .and_then(|u| u.name.as_deref())
                .unwrap_or(e.user_id.as_str())
                .to_owned(),
        },
        offset,
    }
}

fn reaction_removed(conv: &ConversationId, e: &ReactionRemovedV1, offset: u64) -> ReactionRemoved {
    ReactionRemoved {
        id: e.reaction_id.clone(),
        message_id: e.message_id.clone(),
        conversation_id: conv.clone(),
        user_id: e.user_id.clone(),
        offset,
    }
}

/// The content an event carries, opened. A key store that cannot be reached now is an
/// error: the event is not shown as erased when it is not.
async fn opened(
    keyring: &keys::Keyring,
    conv: &ConversationId,
    event: &ConversationEvent,
    open: impl FnOnce(&dyn events::Open) -> Opened,
) -> Result<Opened, keys::KeyError> {
    let set = keyring
        .prepare(Some(conv.as_str()), event.sealed().as_slice())
        .await?;
    Ok(open(&set))
}

/// The room messages of a conversation event, in the order they are emitted (none for events
/// that are not room events, and, with a warning, for content whose keys cannot be read just
/// now: the client recovers it by rejoining with `sinceOffset`). A reply yields its
/// `message:new` then `thread:updated`. A send that mentions others also fills `mentioned`
/// (when given) with its one `mention:new` payload and the users it goes to.
pub async fn room_event<L: EventLog>(
    executor: &Executor<L>,
    keyring: &keys::Keyring,
    conv: &ConversationId,
    r: &Recorded<ConversationEvent>,
    mentioned: Option<&mut Option<(Vec<UserId>, MentionNew)>>,
) -> Vec<RoomMessage> {
    let offset = r.number;
    let unreadable = |e: keys::KeyError| {
        tracing::warn!(conversation = %conv, offset, error = %e, "room event content unreadable");
    };
    let one = match &r.event {
        ConversationEvent::MessageSent(m) => {
            let Ok(content) = opened(keyring, conv, &r.event, |k| m.open(k, conv.as_str()))
                .await
                .map_err(unreadable)
            else {
                return Vec::new();
            };
            if let Some(out) = mentioned {
                *out = mentions(conv, m, &content);
            }
            let sender = user_profile(executor, keyring, &m.sender_id).await;
            let new =
                RoomMessage::New(message_new(conv, m, content, Some(offset), sender.as_ref()));
            return match thread_updated(conv, m) {
                Some(thread) => vec![new, RoomMessage::ThreadUpdated(thread)],
                None => vec![new],
            };
        }
        ConversationEvent::MessageEdited(e) => {
            let Ok(content) = opened(keyring, conv, &r.event, |k| e.open(k, conv.as_str()))
                .await
                .map_err(unreadable)
            else {
                return Vec::new();
            };
            RoomMessage::Updated(message_updated(conv, e, content, offset))
        }
        ConversationEvent::MessageDeleted(e) => {
            RoomMessage::Deleted(message_deleted(conv, e, offset))
        }
        ConversationEvent::ReactionAdded(e) => {
            let user = user_profile(executor, keyring, &e.user_id).await;
            RoomMessage::ReactionAdded(reaction_added(conv, e, offset, user.as_ref()))
        }
        ConversationEvent::ReactionRemoved(e) => {
            RoomMessage::ReactionRemoved(reaction_removed(conv, e, offset))
        }
        ConversationEvent::MessagePinned(e) => RoomMessage::Pinned(message_pin(
            conv,
            &e.message_id,
            &e.pinned_by,
            e.pinned_at,
            offset,
        )),
        ConversationEvent::MessageUnpinned(e) => RoomMessage::Unpinned(message_pin(
            conv,
            &e.message_id,
            &e.unpinned_by,
            e.unpinned_at,
            offset,
        )),
        _ => return Vec::new(),
    };
    vec![one]
}

/// A receipt, emitted to the sender's sockets (`user-{senderId}`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Receipt {
    Delivered(MessageDelivered),
    Read(ReadReceipt),
}

impl Receipt {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered(_) => MessageDelivered::NAME,
            Self::Read(_) => ReadReceipt::NAME,
        }
    }
}

/// The receipts a conversation event yields, each with the user it goes to: one
/// `message:delivered` per message delivered to someone other than its sender, one
/// `message:read:receipt` per distinct sender whose messages were read.
pub fn receipts(event: &ConversationEvent, id: &ConversationId) -> Vec<(UserId, Receipt)> {
    match event {
        ConversationEvent::MessagesDelivered(d) => d
            .messages
            .iter()
            .filter_map(|m| {
                let to: Vec<UserId> = d
                    .recipients
                    .iter()
                    .filter(|u| **u != m.sender_id)
                    .cloned()
                    .collect();
                (!to.is_empty()).then(|| {
                    let receipt = Receipt::Delivered(MessageDelivered {
                        message_id: m.message_id.clone(),
                        conversation_id: id.clone(),
                        delivered_to: to,
                        delivered_at: Timestamp(d.delivered_at),
                    });
                    (m.sender_id.clone(), receipt)
                })
            })
            .collect(),
        ConversationEvent::MessagesRead(read) => {
            let mut by_sender: BTreeMap<&UserId, Vec<MessageId>> = BTreeMap::new();
            for m in &read.messages {
                by_sender
                    .entry(&m.sender_id)
                    .or_default()
                    .push(m.message_id.clone());
            }
            by_sender
                .into_iter()
                .map(|(sender, ids)| {
                    let receipt = Receipt::Read(ReadReceipt {
                        conversation_id: id.clone(),
                        message_ids: ids,
                        read_by: read.reader.clone(),
                        read_at: Timestamp(read.read_at),
                    });
                    (sender.clone(), receipt)
                })
                .collect()
        }
        _ => vec![],
    }
}

/// Emits through `op`. A socket whose send buffer is full misses the event: counted and
/// logged here; the client recovers by rejoining with `sinceOffset`.
pub async fn emit_counted<T: Serialize + ?Sized>(
    op: socketioxide::operators::BroadcastOperators,
    metrics: &Metrics,
    event: &str,
    payload: &T,
) {
    match op.emit(event, payload).await {
        Ok(()) => {}
        Err(socketioxide::BroadcastError::Socket(failed)) => {
            let total = metrics.add_dropped(failed.len() as u64);
            tracing::warn!(
                event,
                sockets = failed.len(),
                total,
                "slow sockets missed an event"
            );
        }
        Err(e) => tracing::error!(event, error = %e, "broadcast failed"),
    }
}

/// Emits a typed event to one socket. A socket already gone is not an error (its client
/// recovers on reconnect); anything else is logged.
pub fn emit_to<E: SocketEvent>(socket: &socketioxide::extract::SocketRef, payload: &E) {
    emit_named(socket, E::NAME, payload);
}

/// Emits a payload under `event` to one socket (see [`emit_to`]).
pub fn emit_named<T: Serialize + ?Sized>(
    socket: &socketioxide::extract::SocketRef,
    event: &str,
    payload: &T,
) {
    use socketioxide::SendError;
    match socket.emit(event, payload) {
        Ok(()) | Err(SendError::Socket(socketioxide::SocketError::Closed)) => {}
        Err(e) => tracing::debug!(event, socket = %socket.id, error = %e, "emit failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{MessageId, TempId};

    #[test]
    fn message_new_has_the_spec_fields() {
        let m = MessageSent {
            message_id: MessageId::parse("msg_1").expect("valid"),
            sender_id: UserId::parse("u1").expect("valid"),
            content: events::Text::Sealed(crate::domain::sealed("…")),
            temp_id: Some(TempId::parse("tmp").expect("valid")),
            seq: 4,
            sent_at: 1_762_684_200_000,
            reply: None,
            mentions: Vec::new(),
        };
        let user = ProfileView {
            name: Some("John".into()),
            avatar_url: Some("https://a/b.png".into()),
        };
        let c = ConversationId::parse("conv_1").expect("valid");
        let hello = || Opened::Text("Hello".into());
        assert_eq!(
            serde_json::to_value(message_new(&c, &m, hello(), Some(9), Some(&user))).expect("json"),
            serde_json::json!({
                "id": "msg_1", "conversationId": "conv_1", "senderId": "u1", "content": "Hello",
                "createdAt": "2025-11-09T10:30:00.000Z", "seq": 4, "offset": 9, "tempId": "tmp",
                "sender": {"id": "u1", "name": "John", "avatarUrl": "https://a/b.png"}
            })
        );
        let room = RoomMessage::New(message_new(&c, &m, hello(), Some(9), None));
        assert_eq!(room.name(), "message:new");
        assert_eq!(
            serde_json::to_value(&room).expect("json")["sender"],
            serde_json::json!({"id": "u1", "name": "u1"})
        );
    }
}
