//! REST bodies (contract section 2): what the write routes answer (also the acks of the same
//! socket events, under [`crate::ack::Ack`]) and what the read routes answer. Every write
//! answer carries `position`, the log position of its last event.

use crate::Timestamp;
use crate::socket::MessageNew;
use events::{ConversationId, Emoji, MessageId, ReactionId, UserId};
use serde::Serialize;

/// `{position}`: `POST /api/messages/read`, `DELETE …/reactions/:id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Positioned {
    pub position: u64,
}

/// `PATCH /api/messages/:id`, `message:update`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edited {
    pub message_id: MessageId,
    pub edited_at: Timestamp,
    pub position: u64,
}

/// `DELETE /api/messages/:id`, `message:delete`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub message_id: MessageId,
    pub deleted_at: Timestamp,
    pub position: u64,
}

/// `POST /api/messages/:id/reactions`, `reaction:add`: the reaction (the existing one when
/// the user already reacted with that emoji). `id` and `reactionId` are the same.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub id: ReactionId,
    pub reaction_id: ReactionId,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub emoji: Emoji,
    pub user_id: UserId,
    pub position: u64,
}

/// `POST /api/messages`: the `message:new` payload and `position`.
#[derive(Debug, Clone, Serialize)]
pub struct SentMessage {
    #[serde(flatten)]
    pub message: MessageNew,
    pub position: u64,
}

/// `POST /api/conversations/:id/participants`, `DELETE …/participants/:userId`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantChanged {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub position: u64,
}

/// `GET /api/holds`: the legal holds in force, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HoldList {
    pub holds: Vec<Hold>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// `user` or `conversation`.
    pub kind: String,
    pub id: String,
    pub reason: String,
    /// Who placed it (`admin:<id>`).
    pub actor: String,
    pub since: Option<Timestamp>,
    pub position: i64,
}

/// `PUT` / `DELETE /api/holds/users/:id`, `/api/holds/conversations/:id`.
#[derive(Debug, Clone, Serialize)]
pub struct HoldChanged {
    pub kind: &'static str,
    pub id: String,
    pub held: bool,
    pub position: u64,
}

/// `GET /api/messages/:id/history` (contract 4.3): every version, oldest first, read from
/// the log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageHistory {
    pub versions: Vec<MessageVersion>,
    pub deleted_at: Option<Timestamp>,
    pub deleted_by: Option<UserId>,
}

/// One version of a message: as sent, or as an edit left it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageVersion {
    /// `null` once erased or expired.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
    pub at: Timestamp,
    pub by: UserId,
    /// The log position of the commit that wrote it.
    pub position: u64,
}

/// `PUT /api/conversations/:id/retention`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionChanged {
    pub conversation_id: ConversationId,
    /// `null`: kept forever.
    pub retention_seconds: Option<u64>,
    pub position: u64,
}

/// `POST /api/users/:id/suspend`, `/reinstate`.
#[derive(Debug, Clone, Serialize)]
pub struct UserStatus {
    pub id: UserId,
    pub status: &'static str,
    pub position: u64,
}

/// `PUT /api/users/:id`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSaved {
    pub id: UserId,
    pub name: String,
    pub avatar_url: Option<String>,
    pub status: &'static str,
    pub position: u64,
}

/// A participant as `POST /api/conversations` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: UserId,
    pub role: &'static str,
}

/// `POST /api/conversations` (201).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationCreated {
    pub id: ConversationId,
    pub title: Option<String>,
    pub participants: Vec<Member>,
    pub created_at: Timestamp,
    pub position: u64,
}

/// `GET /api/audit`: `entries` as `events::audit` writes them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub entries: Vec<serde_json::Value>,
    pub has_more: bool,
    pub next_after: u64,
}

/// `GET /api/users/:id`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    pub id: String,
    /// `null` once the user is erased.
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub status: String,
    pub last_seen_at: Option<Timestamp>,
}

/// `GET /api/conversations`.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub id: String,
    pub title: Option<String>,
    pub created_by: String,
    pub created_at: Option<Timestamp>,
    pub last_message_at: Option<Timestamp>,
    pub role: String,
    pub unread_count: i64,
    /// Messages mentioning the caller that they have not read (contract 4.4).
    pub unread_mentions: i64,
    pub last_message: Option<LastMessage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    pub id: String,
    pub sender_id: Option<String>,
    pub content: Option<String>,
    pub seq: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

/// `GET /api/conversations/:id`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetails {
    pub id: String,
    pub title: Option<String>,
    pub created_by: String,
    pub created_at: Option<Timestamp>,
    pub last_message_at: Option<Timestamp>,
    pub message_count: i64,
    pub participants: Vec<Participant>,
    /// Pinned message ids, oldest pin first.
    pub pinned: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub user_id: String,
    pub role: String,
    pub joined_at: Option<Timestamp>,
    pub user: ParticipantUser,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantUser {
    pub id: String,
    /// `null` once the user is erased.
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub last_seen_at: Option<Timestamp>,
}

/// `GET /api/messages`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// A message as read over REST.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub sender_id: String,
    pub seq: i64,
    /// `null` when deleted, erased or expired.
    pub content: Option<String>,
    /// The author was erased (contract 4.2).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    /// Past the conversation's retention.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
    pub created_at: Option<Timestamp>,
    pub edited_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    pub offset: i64,
    pub sender: Sender,
    pub reactions: Vec<MessageReaction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_id: Option<String>,
    /// The message this one replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The thread of a message that has replies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
}

/// A parent's thread: `thread` on REST reads (contract 4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    pub reply_count: i64,
    pub last_reply_at: Option<Timestamp>,
    pub participant_ids: Vec<String>,
}

/// `GET /api/mentions`: the caller's mentions, newest last.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MentionPage {
    pub mentions: Vec<Mention>,
    pub has_more: bool,
}

/// One mention of the caller; `position` (the mentioning message's log position) is the
/// `after` cursor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mention {
    pub conversation_id: String,
    pub message_id: String,
    pub sender_id: String,
    /// `null` when the message is erased or expired.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
    pub created_at: Option<Timestamp>,
    pub read: bool,
    pub position: i64,
}

/// `POST` and `DELETE /api/messages/:id/pin`, `message:pin` / `message:unpin` acks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pinned {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub pinned: bool,
    pub by: UserId,
    pub at: Timestamp,
    pub position: u64,
}

/// `GET /api/search`: the best matches first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    pub results: Vec<SearchResult>,
}

/// One match: the message as `GET /api/messages` reads it, and its text with each matched
/// word between `<mark>` and `</mark>` (the raw text, not HTML-escaped).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub message: Message,
    pub highlight: String,
}

/// A message's sender as the read models know it: `{id, name, avatarUrl?}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    pub id: String,
    /// `null` once the sender is erased.
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// A reaction of a message read over REST, oldest first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReaction {
    pub id: String,
    pub emoji: String,
    pub user_id: String,
    pub created_at: Option<Timestamp>,
}

#[cfg(test)]
fn page_message() -> Message {
    Message {
        id: "msg_1".into(),
        conversation_id: "conv_1".into(),
        sender_id: "u1".into(),
        seq: 1,
        content: Some("Hi".into()),
        erased: false,
        expired: false,
        created_at: Some(Timestamp(crate::fixtures::AT)),
        edited_at: None,
        deleted_at: None,
        offset: 4,
        sender: Sender {
            id: "u1".into(),
            name: Some("Ann".into()),
            avatar_url: None,
        },
        reactions: vec![],
        temp_id: None,
        parent_id: None,
        thread: None,
    }
}

/// `POST /api/demo/session` (only with `chat serve --demo`): the user signed in by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoSession {
    pub user_id: UserId,
    pub token: String,
}

/// `GET /api/ops/status` (admin): what the `/ops` page shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpsStatus {
    pub log: OpsLog,
    pub read_store: OpsStore,
    pub projections: Vec<ProjectionLag>,
    /// This node first, then the nodes it hears from.
    pub nodes: Vec<NodeLoad>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpsLog {
    pub backend: &'static str,
    pub position: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpsStore {
    pub backend: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionLag {
    pub name: String,
    pub checkpoint: u64,
    pub lag: u64,
}

/// A node: its distinct users in rooms; its open sockets when it is the node answering.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    pub id: String,
    pub this_node: bool,
    pub users: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u64>,
}

/// `POST /api/ops/audit/verify` (admin): `chat audit verify` over HTTP. Intact: the counts
/// walked; broken: where and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerified {
    pub intact: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregates: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub took_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{UserRef, golden, sample};

    fn reaction() -> ReactionId {
        ReactionId::parse("r1").expect("valid")
    }

    #[test]
    fn message_history() {
        golden(
            &MessageHistory {
                versions: vec![
                    MessageVersion {
                        content: Some("Hi".into()),
                        erased: false,
                        expired: false,
                        at: Timestamp(AT),
                        by: user(),
                        position: 3,
                    },
                    MessageVersion {
                        content: None,
                        erased: false,
                        expired: true,
                        at: Timestamp(AT),
                        by: user(),
                        position: 5,
                    },
                ],
                deleted_at: Some(Timestamp(AT)),
                deleted_by: Some(user()),
            },
            concat!(
                r#"{"versions":[{"content":"Hi","at":"2025-11-09T10:30:00.000Z","by":"u1","position":3},"#,
                r#"{"content":null,"expired":true,"at":"2025-11-09T10:30:00.000Z","by":"u1","position":5}],"#,
                r#""deletedAt":"2025-11-09T10:30:00.000Z","deletedBy":"u1"}"#
            ),
        );
        golden(
            &MessageHistory {
                versions: vec![],
                deleted_at: None,
                deleted_by: None,
            },
            r#"{"versions":[],"deletedAt":null,"deletedBy":null}"#,
        );
    }

    #[test]
    fn hold_and_retention_writes() {
        golden(
            &HoldChanged {
                kind: "conversation",
                id: "conv_1".into(),
                held: true,
                position: 3,
            },
            r#"{"kind":"conversation","id":"conv_1","held":true,"position":3}"#,
        );
        golden(
            &RetentionChanged {
                conversation_id: conv(),
                retention_seconds: Some(86_400),
                position: 4,
            },
            r#"{"conversationId":"conv_1","retentionSeconds":86400,"position":4}"#,
        );
        golden(
            &RetentionChanged {
                conversation_id: conv(),
                retention_seconds: None,
                position: 5,
            },
            r#"{"conversationId":"conv_1","retentionSeconds":null,"position":5}"#,
        );
    }

    #[test]
    fn message_writes() {
        golden(&Positioned { position: 5 }, r#"{"position":5}"#);
        sample(
            "Edited",
            &Edited {
                message_id: msg(),
                edited_at: Timestamp(AT),
                position: 6,
            },
            r#"{"messageId":"msg_1","editedAt":"2025-11-09T10:30:00.000Z","position":6}"#,
        );
        sample(
            "Deleted",
            &Deleted {
                message_id: msg(),
                deleted_at: Timestamp(AT),
                position: 7,
            },
            r#"{"messageId":"msg_1","deletedAt":"2025-11-09T10:30:00.000Z","position":7}"#,
        );
        sample(
            "Reaction",
            &Reaction {
                id: reaction(),
                reaction_id: reaction(),
                message_id: msg(),
                conversation_id: conv(),
                emoji: Emoji::parse("👍").expect("valid"),
                user_id: user(),
                position: 8,
            },
            r#"{"id":"r1","reactionId":"r1","messageId":"msg_1","conversationId":"conv_1","emoji":"👍","userId":"u1","position":8}"#,
        );
        sample(
            "SentMessage",
            &SentMessage {
                message: MessageNew {
                    id: msg(),
                    conversation_id: conv(),
                    sender_id: user(),
                    content: crate::Body::text("Hi"),
                    created_at: Timestamp(AT),
                    seq: 1,
                    offset: Some(3),
                    sender: UserRef::new(&user(), Some("Ann"), None),
                    temp_id: None,
                    parent_id: None,
                    mentions: vec![],
                },
                position: 9,
            },
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","content":"Hi","createdAt":"2025-11-09T10:30:00.000Z","seq":1,"offset":3,"sender":{"id":"u1","name":"Ann"},"position":9}"#,
        );
    }

    #[test]
    fn user_and_conversation_writes() {
        golden(
            &ParticipantChanged {
                conversation_id: conv(),
                user_id: user(),
                position: 4,
            },
            r#"{"conversationId":"conv_1","userId":"u1","position":4}"#,
        );
        golden(
            &UserStatus {
                id: user(),
                status: "suspended",
                position: 2,
            },
            r#"{"id":"u1","status":"suspended","position":2}"#,
        );
        golden(
            &UserSaved {
                id: user(),
                name: "Ann".into(),
                avatar_url: None,
                status: "active",
                position: 1,
            },
            r#"{"id":"u1","name":"Ann","avatarUrl":null,"status":"active","position":1}"#,
        );
        sample(
            "ConversationCreated",
            &ConversationCreated {
                id: conv(),
                title: Some("T".into()),
                participants: vec![Member {
                    user_id: user(),
                    role: "admin",
                }],
                created_at: Timestamp(AT),
                position: 3,
            },
            r#"{"id":"conv_1","title":"T","participants":[{"userId":"u1","role":"admin"}],"createdAt":"2025-11-09T10:30:00.000Z","position":3}"#,
        );
        golden(
            &AuditPage {
                entries: vec![],
                has_more: false,
                next_after: 0,
            },
            r#"{"entries":[],"hasMore":false,"nextAfter":0}"#,
        );
    }

    #[test]
    fn reads() {
        sample(
            "UserProfile",
            &UserProfile {
                id: "u1".into(),
                name: Some("Ann".into()),
                avatar_url: None,
                status: "active".into(),
                last_seen_at: Some(Timestamp(AT)),
            },
            r#"{"id":"u1","name":"Ann","avatarUrl":null,"status":"active","lastSeenAt":"2025-11-09T10:30:00.000Z"}"#,
        );
        sample(
            "ConversationList",
            &ConversationList {
                conversations: vec![ConversationSummary {
                    id: "conv_1".into(),
                    title: None,
                    created_by: "u1".into(),
                    created_at: Some(Timestamp(AT)),
                    last_message_at: None,
                    role: "admin".into(),
                    unread_count: 2,
                    unread_mentions: 1,
                    last_message: Some(LastMessage {
                        id: "msg_1".into(),
                        sender_id: Some("u1".into()),
                        content: None,
                        seq: Some(1),
                        created_at: Some(Timestamp(AT)),
                        deleted_at: Some(Timestamp(AT)),
                    }),
                }],
            },
            r#"{"conversations":[{"id":"conv_1","title":null,"createdBy":"u1","createdAt":"2025-11-09T10:30:00.000Z","lastMessageAt":null,"role":"admin","unreadCount":2,"unreadMentions":1,"lastMessage":{"id":"msg_1","senderId":"u1","content":null,"seq":1,"createdAt":"2025-11-09T10:30:00.000Z","deletedAt":"2025-11-09T10:30:00.000Z"}}]}"#,
        );
        sample(
            "ConversationDetails",
            &ConversationDetails {
                id: "conv_1".into(),
                title: Some("T".into()),
                created_by: "u1".into(),
                created_at: Some(Timestamp(AT)),
                last_message_at: Some(Timestamp(AT)),
                message_count: 3,
                participants: vec![Participant {
                    user_id: "u1".into(),
                    role: "member".into(),
                    joined_at: Some(Timestamp(AT)),
                    user: ParticipantUser {
                        id: "u1".into(),
                        name: Some("Ann".into()),
                        avatar_url: None,
                        last_seen_at: None,
                    },
                }],
                pinned: vec!["msg_1".into()],
            },
            r#"{"id":"conv_1","title":"T","createdBy":"u1","createdAt":"2025-11-09T10:30:00.000Z","lastMessageAt":"2025-11-09T10:30:00.000Z","messageCount":3,"participants":[{"userId":"u1","role":"member","joinedAt":"2025-11-09T10:30:00.000Z","user":{"id":"u1","name":"Ann","avatarUrl":null,"lastSeenAt":null}}],"pinned":["msg_1"]}"#,
        );
        sample(
            "MessagePage",
            &MessagePage {
                messages: vec![Message {
                    reactions: vec![MessageReaction {
                        id: "r1".into(),
                        emoji: "👍".into(),
                        user_id: "u2".into(),
                        created_at: Some(Timestamp(AT)),
                    }],
                    temp_id: Some("t1".into()),
                    ..page_message()
                }],
                has_more: false,
            },
            r#"{"messages":[{"id":"msg_1","conversationId":"conv_1","senderId":"u1","seq":1,"content":"Hi","createdAt":"2025-11-09T10:30:00.000Z","editedAt":null,"deletedAt":null,"offset":4,"sender":{"id":"u1","name":"Ann"},"reactions":[{"id":"r1","emoji":"👍","userId":"u2","createdAt":"2025-11-09T10:30:00.000Z"}],"tempId":"t1"}],"hasMore":false}"#,
        );
        sample(
            "Message",
            &Message {
                parent_id: Some("msg_0".into()),
                ..page_message()
            },
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","seq":1,"content":"Hi","createdAt":"2025-11-09T10:30:00.000Z","editedAt":null,"deletedAt":null,"offset":4,"sender":{"id":"u1","name":"Ann"},"reactions":[],"parentId":"msg_0"}"#,
        );
        sample(
            "Message.thread",
            &Message {
                thread: Some(Thread {
                    reply_count: 2,
                    last_reply_at: Some(Timestamp(AT)),
                    participant_ids: vec!["u2".into()],
                }),
                ..page_message()
            },
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","seq":1,"content":"Hi","createdAt":"2025-11-09T10:30:00.000Z","editedAt":null,"deletedAt":null,"offset":4,"sender":{"id":"u1","name":"Ann"},"reactions":[],"thread":{"replyCount":2,"lastReplyAt":"2025-11-09T10:30:00.000Z","participantIds":["u2"]}}"#,
        );
        sample(
            "MentionPage",
            &MentionPage {
                mentions: vec![Mention {
                    conversation_id: "conv_1".into(),
                    message_id: "msg_1".into(),
                    sender_id: "u1".into(),
                    content: Some("hi @u2".into()),
                    erased: false,
                    expired: false,
                    created_at: Some(Timestamp(AT)),
                    read: false,
                    position: 12,
                }],
                has_more: true,
            },
            r#"{"mentions":[{"conversationId":"conv_1","messageId":"msg_1","senderId":"u1","content":"hi @u2","createdAt":"2025-11-09T10:30:00.000Z","read":false,"position":12}],"hasMore":true}"#,
        );
        sample(
            "Pinned",
            &Pinned {
                conversation_id: ConversationId::parse("conv_1").expect("valid"),
                message_id: MessageId::parse("msg_1").expect("valid"),
                pinned: true,
                by: UserId::parse("u1").expect("valid"),
                at: Timestamp(AT),
                position: 13,
            },
            r#"{"conversationId":"conv_1","messageId":"msg_1","pinned":true,"by":"u1","at":"2025-11-09T10:30:00.000Z","position":13}"#,
        );
        golden(
            &Message {
                content: None,
                erased: true,
                sender: Sender {
                    id: "u1".into(),
                    name: None,
                    avatar_url: None,
                },
                reactions: vec![],
                temp_id: None,
                ..page_message()
            },
            r#"{"id":"msg_1","conversationId":"conv_1","senderId":"u1","seq":1,"content":null,"erased":true,"createdAt":"2025-11-09T10:30:00.000Z","editedAt":null,"deletedAt":null,"offset":4,"sender":{"id":"u1","name":null},"reactions":[]}"#,
        );
    }

    #[test]
    fn search_results() {
        golden(
            &SearchResults {
                results: vec![SearchResult {
                    message: page_message(),
                    highlight: "<mark>Hi</mark>".into(),
                }],
            },
            r#"{"results":[{"message":{"id":"msg_1","conversationId":"conv_1","senderId":"u1","seq":1,"content":"Hi","createdAt":"2025-11-09T10:30:00.000Z","editedAt":null,"deletedAt":null,"offset":4,"sender":{"id":"u1","name":"Ann"},"reactions":[]},"highlight":"<mark>Hi</mark>"}]}"#,
        );
        golden(&SearchResults { results: vec![] }, r#"{"results":[]}"#);
    }
    #[test]
    fn demo_session() {
        sample(
            "DemoSession",
            &DemoSession {
                user_id: UserId::parse("demo-alice").expect("valid"),
                token: "t".into(),
            },
            r#"{"userId":"demo-alice","token":"t"}"#,
        );
    }

    #[test]
    fn operator_console() {
        sample(
            "OpsStatus",
            &OpsStatus {
                log: OpsLog {
                    backend: "embedded",
                    position: 42,
                },
                read_store: OpsStore { backend: "sqlite" },
                projections: vec![ProjectionLag {
                    name: "chat".into(),
                    checkpoint: 40,
                    lag: 2,
                }],
                nodes: vec![
                    NodeLoad {
                        id: "n1".into(),
                        this_node: true,
                        users: 3,
                        sockets: Some(4),
                    },
                    NodeLoad {
                        id: "n2".into(),
                        this_node: false,
                        users: 1,
                        sockets: None,
                    },
                ],
            },
            r#"{"log":{"backend":"embedded","position":42},"readStore":{"backend":"sqlite"},"projections":[{"name":"chat","checkpoint":40,"lag":2}],"nodes":[{"id":"n1","thisNode":true,"users":3,"sockets":4},{"id":"n2","thisNode":false,"users":1}]}"#,
        );
        sample(
            "AuditVerified",
            &AuditVerified {
                intact: true,
                commits: Some(9),
                events: Some(12),
                aggregates: Some(3),
                broken_at: None,
                reason: None,
                took_ms: 5,
            },
            r#"{"intact":true,"commits":9,"events":12,"aggregates":3,"tookMs":5}"#,
        );
        golden(
            &AuditVerified {
                intact: false,
                commits: None,
                events: None,
                aggregates: None,
                broken_at: Some(10),
                reason: Some("hash mismatch".into()),
                took_ms: 5,
            },
            r#"{"intact":false,"brokenAt":10,"reason":"hash mismatch","tookMs":5}"#,
        );
    }
}
