//! Server→client payloads, built in one place so that Socket.IO and REST answer with the same
//! shapes (field names as the spec writes them).

use crate::domain::User;
use events::{
    ConversationId, MessageDeletedV1, MessageEditedV1, MessageSentV1, ReactionAddedV1,
    ReactionRemovedV1, UserId, iso8601,
};
use serde_json::{Value, json};

/// `sender` / `user` object: `{id, name, avatarUrl?}`.
pub fn user_ref(id: &UserId, user: Option<&User>) -> Value {
    let mut v = json!({
        "id": id,
        "name": user.map(|u| u.name.as_str()).unwrap_or(id.as_str()),
    });
    if let Some(url) = user.and_then(|u| u.avatar_url.as_ref()) {
        v["avatarUrl"] = json!(url);
    }
    v
}

/// The `message:new` payload (also the body of `POST /api/messages`).
pub fn message_new(
    conversation_id: &ConversationId,
    m: &MessageSentV1,
    offset: u64,
    sender: Option<&User>,
) -> Value {
    let mut v = json!({
        "id": m.message_id,
        "conversationId": conversation_id,
        "senderId": m.sender_id,
        "content": m.content,
        "createdAt": iso8601(m.sent_at),
        "seq": m.seq,
        "offset": offset,
        "sender": user_ref(&m.sender_id, sender),
    });
    if let Some(t) = &m.temp_id {
        v["tempId"] = json!(t);
    }
    v
}

/// `message:updated`.
pub fn message_updated(
    conversation_id: &ConversationId,
    e: &MessageEditedV1,
    offset: u64,
) -> Value {
    json!({
        "id": e.message_id, "conversationId": conversation_id, "content": e.content,
        "editedAt": iso8601(e.edited_at), "offset": offset,
    })
}

/// `message:deleted`.
pub fn message_deleted(
    conversation_id: &ConversationId,
    e: &MessageDeletedV1,
    offset: u64,
) -> Value {
    json!({
        "id": e.message_id, "conversationId": conversation_id, "deletedAt": iso8601(e.deleted_at),
        "deletedBy": e.deleted_by, "offset": offset,
    })
}

/// `reaction:added`.
pub fn reaction_added(
    conversation_id: &ConversationId,
    e: &ReactionAddedV1,
    offset: u64,
    user: Option<&User>,
) -> Value {
    json!({
        "id": e.reaction_id, "messageId": e.message_id, "conversationId": conversation_id,
        "emoji": e.emoji, "userId": e.user_id, "createdAt": iso8601(e.created_at),
        "user": {"id": e.user_id, "name": user.map(|u| u.name.as_str()).unwrap_or(e.user_id.as_str())},
        "offset": offset,
    })
}

/// `reaction:removed`.
pub fn reaction_removed(
    conversation_id: &ConversationId,
    e: &ReactionRemovedV1,
    offset: u64,
) -> Value {
    json!({
        "id": e.reaction_id, "messageId": e.message_id, "conversationId": conversation_id,
        "userId": e.user_id, "offset": offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Content, MessageId, TempId};

    #[test]
    fn message_new_has_the_spec_fields() {
        let m = MessageSentV1 {
            message_id: MessageId::parse("msg_1").expect("valid"),
            sender_id: UserId::parse("u1").expect("valid"),
            content: Content::parse("Hello").expect("valid"),
            temp_id: Some(TempId::parse("tmp").expect("valid")),
            seq: 4,
            sent_at: 1_762_684_200_000,
        };
        let user = User {
            registered: true,
            name: "John".into(),
            avatar_url: Some("https://a/b.png".into()),
            ..User::default()
        };
        let c = ConversationId::parse("conv_1").expect("valid");
        assert_eq!(
            message_new(&c, &m, 9, Some(&user)),
            json!({
                "id": "msg_1", "conversationId": "conv_1", "senderId": "u1", "content": "Hello",
                "createdAt": "2025-11-09T10:30:00.000Z", "seq": 4, "offset": 9, "tempId": "tmp",
                "sender": {"id": "u1", "name": "John", "avatarUrl": "https://a/b.png"}
            })
        );
    }
}
