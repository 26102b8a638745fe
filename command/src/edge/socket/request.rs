//! What a socket event asks for, parsed once, before anything runs, into typed values: ids
//! well-formed, `content`, `emoji` and `tempId` within the contract's limits, fields present.
//! Rules that need state (membership, authorship) are decided in `domain`. Pure, so it is
//! fuzzed (`fuzz/`).

use super::super::{id, mentions, text};
use api::ApiError;
use events::{Content, ConversationId, Emoji, MessageId, ReactionId, TempId, UserId};
use serde::Deserialize;
use serde_json::Value;

/// One socket event's request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Join {
        conv: ConversationId,
        since_offset: Option<u64>,
    },
    Leave(ConversationId),
    Send {
        conv: ConversationId,
        content: Content,
        temp_id: Option<TempId>,
        parent: Option<MessageId>,
        mentions: Vec<UserId>,
    },
    /// `message:pin` (`pin`) or `message:unpin`.
    Pin {
        conv: ConversationId,
        msg: MessageId,
        pin: bool,
    },
    Update {
        conv: ConversationId,
        msg: MessageId,
        content: Content,
    },
    Delete {
        conv: ConversationId,
        msg: MessageId,
    },
    Read {
        conv: ConversationId,
        message_ids: Vec<MessageId>,
    },
    ReactionAdd {
        conv: ConversationId,
        msg: MessageId,
        emoji: Emoji,
    },
    ReactionRemove {
        conv: ConversationId,
        msg: MessageId,
        reaction_id: ReactionId,
    },
    Typing {
        conv: ConversationId,
        start: bool,
    },
    Presence(ConversationId),
}

/// The events a client may send (after authentication).
pub const EVENTS: &[&str] = &[
    "conversation:join",
    "conversation:leave",
    "message:send",
    "message:update",
    "message:delete",
    "message:pin",
    "message:unpin",
    "message:read",
    "reaction:add",
    "reaction:remove",
    "typing:start",
    "typing:stop",
    "presence:request",
];

impl Request {
    /// `data` is the event's first argument, or why socketioxide could not read one.
    /// Refusals are `INVALID_INPUT`, unknown events included.
    pub fn parse(event: &str, data: &Result<Value, String>) -> Result<Self, ApiError> {
        Ok(match event {
            "conversation:join" => {
                let p: JoinPayload = parse(data)?;
                Self::Join {
                    conv: id(&p.conversation_id)?,
                    since_offset: p.since_offset,
                }
            }
            "conversation:leave" => Self::Leave(room(data)?),
            "message:send" => {
                let p: SendPayload = parse(data)?;
                Self::Send {
                    conv: id(&p.conversation_id)?,
                    content: text(Content::parse(&p.content))?,
                    temp_id: p.temp_id.map(|t| text(TempId::parse(&t))).transpose()?,
                    parent: p.parent_id.as_deref().map(id).transpose()?,
                    mentions: mentions(p.mentions.as_deref())?,
                }
            }
            "message:pin" | "message:unpin" => {
                let p: MessagePayload = parse(data)?;
                Self::Pin {
                    conv: id(&p.conversation_id)?,
                    msg: id(&p.message_id)?,
                    pin: event == "message:pin",
                }
            }
            "message:update" => {
                let p: UpdatePayload = parse(data)?;
                Self::Update {
                    conv: id(&p.conversation_id)?,
                    msg: id(&p.message_id)?,
                    content: text(Content::parse(&p.content))?,
                }
            }
            "message:delete" => {
                let p: MessagePayload = parse(data)?;
                Self::Delete {
                    conv: id(&p.conversation_id)?,
                    msg: id(&p.message_id)?,
                }
            }
            "message:read" => {
                let p: ReadPayload = parse(data)?;
                Self::Read {
                    conv: id(&p.conversation_id)?,
                    message_ids: p
                        .message_ids
                        .iter()
                        .map(|m| id(m))
                        .collect::<Result<_, _>>()?,
                }
            }
            "reaction:add" => {
                let p: ReactionAddPayload = parse(data)?;
                Self::ReactionAdd {
                    conv: id(&p.conversation_id)?,
                    msg: id(&p.message_id)?,
                    emoji: text(Emoji::parse(&p.emoji))?,
                }
            }
            "reaction:remove" => {
                let p: ReactionRemovePayload = parse(data)?;
                Self::ReactionRemove {
                    conv: id(&p.conversation_id)?,
                    msg: id(&p.message_id)?,
                    reaction_id: id(&p.reaction_id)?,
                }
            }
            "typing:start" | "typing:stop" => Self::Typing {
                conv: room(data)?,
                start: event == "typing:start",
            },
            "presence:request" => Self::Presence(room(data)?),
            other => return Err(ApiError::invalid_input(format!("Unknown event {other}"))),
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(data: &Result<Value, String>) -> Result<T, ApiError> {
    let value = data
        .as_ref()
        .map_err(|e| ApiError::invalid_input(format!("Malformed payload: {e}")))?;
    T::deserialize(value).map_err(|e| ApiError::invalid_input(format!("Invalid payload: {e}")))
}

/// The conversation of a `{conversationId}` payload.
fn room(data: &Result<Value, String>) -> Result<ConversationId, ApiError> {
    let p: RoomPayload = parse(data)?;
    id(&p.conversation_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomPayload {
    conversation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinPayload {
    conversation_id: String,
    since_offset: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendPayload {
    conversation_id: String,
    content: String,
    temp_id: Option<String>,
    parent_id: Option<String>,
    mentions: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatePayload {
    message_id: String,
    conversation_id: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagePayload {
    message_id: String,
    conversation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadPayload {
    conversation_id: String,
    message_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReactionAddPayload {
    message_id: String,
    conversation_id: String,
    emoji: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReactionRemovePayload {
    reaction_id: String,
    message_id: String,
    conversation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::ErrorCode;
    use serde_json::json;

    #[test]
    fn every_event_parses_its_payload_and_refuses_a_bad_one() {
        let conv = ConversationId::generate();
        let msg = MessageId::generate();
        let ok = json!({"conversationId": conv, "messageId": msg, "content": "hi", "emoji": "👍",
            "reactionId": "rxn_1", "messageIds": [msg], "sinceOffset": 3, "tempId": "t"});
        for event in EVENTS {
            assert!(Request::parse(event, &Ok(ok.clone())).is_ok(), "{event}");
            for bad in [
                Ok(json!({})),
                Ok(json!({"conversationId": "bad id"})),
                Ok(json!("x")),
                Err("no payload".into()),
            ] {
                let e = Request::parse(event, &bad).expect_err(event);
                assert_eq!(e.code, ErrorCode::InvalidInput, "{event} {bad:?}");
            }
        }
        assert_eq!(
            Request::parse("conversation:join", &Ok(ok.clone())).ok(),
            Some(Request::Join {
                conv: conv.clone(),
                since_offset: Some(3)
            })
        );
        assert_eq!(
            Request::parse("message:send", &Ok(ok.clone())).ok(),
            Some(Request::Send {
                conv: conv.clone(),
                content: Content::parse("hi").expect("valid"),
                temp_id: Some(TempId::parse("t").expect("valid")),
                parent: None,
                mentions: vec![],
            })
        );
        let mut reply = ok.clone();
        reply["parentId"] = json!(msg);
        reply["mentions"] = json!(["u2"]);
        assert_eq!(
            Request::parse("message:send", &Ok(reply)).ok(),
            Some(Request::Send {
                conv: conv.clone(),
                content: Content::parse("hi").expect("valid"),
                temp_id: Some(TempId::parse("t").expect("valid")),
                parent: Some(msg.clone()),
                mentions: vec![UserId::parse("u2").expect("valid")],
            })
        );
        assert_eq!(
            Request::parse("message:unpin", &Ok(ok.clone())).ok(),
            Some(Request::Pin {
                conv: conv.clone(),
                msg: msg.clone(),
                pin: false
            })
        );
        for (event, field, bad) in [
            ("message:send", "content", json!("   ")),
            ("message:send", "tempId", json!("x".repeat(129))),
            ("message:send", "parentId", json!("bad id")),
            ("message:send", "mentions", json!(["bad id"])),
            ("message:send", "mentions", json!("u2")),
            ("message:send", "mentions", json!(vec!["u2"; 51])),
            ("message:update", "content", json!("")),
            ("message:read", "messageIds", json!(["bad id"])),
            ("reaction:add", "emoji", json!("not an emoji")),
            ("reaction:remove", "reactionId", json!("")),
        ] {
            let mut payload = ok.clone();
            payload[field] = bad;
            let e = Request::parse(event, &Ok(payload)).expect_err(event);
            assert_eq!(e.code, ErrorCode::InvalidInput, "{event} {field}");
        }
        let e = Request::parse("nope", &Ok(ok)).expect_err("unknown");
        assert_eq!(e.code, ErrorCode::InvalidInput);
    }
}
