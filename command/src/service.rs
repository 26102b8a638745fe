//! Application services: what a client may ask of the write side, shared by the Socket.IO
//! handlers and the REST routes so that both validate, decide and answer the same way.
//! Each function turns raw input into a command, runs it through the executor and shapes the
//! answer. Rules live in `domain`; this module only looks up what a rule needs across
//! aggregates (does the user exist?).

use crate::domain::{ConversationCommand, DomainError, UserCommand};
use crate::executor::{ExecError, Executor};
use crate::payload;
use api::{ApiError, ErrorCode, Identity};
use eventlog::EventLog;
use events::{
    Content, ConversationEvent, ConversationId, MessageId, MessageSentV1, Metadata, TempId, UserId,
    now_millis,
};
use events::{Emoji, ReactionId};
use serde_json::{Value, json};

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let code = match &e {
            DomainError::InvalidInput(_) => ErrorCode::InvalidInput,
            DomainError::NotFound(_) => ErrorCode::NotFound,
            DomainError::NotParticipant => ErrorCode::NotParticipant,
            DomainError::Unauthorized(_) => ErrorCode::Unauthorized,
            DomainError::Conflict(_) => ErrorCode::Conflict,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Domain(d) => d.into(),
            ExecError::Conflict => ApiError::new(ErrorCode::Conflict, e.to_string()),
            ExecError::Log(l @ eventlog::LogError::Unavailable(_)) => ApiError::unavailable(l),
            ExecError::Log(l) => ApiError::internal(l),
        }
    }
}

/// Metadata of a new command issued by `actor` within request `correlation_id`.
pub fn metadata(actor: &str, correlation_id: Option<&str>) -> Metadata {
    let command_id = ulid::Ulid::new().to_string();
    Metadata {
        correlation_id: correlation_id.map_or_else(|| command_id.clone(), str::to_owned),
        command_id,
        actor: actor.to_owned(),
        occurred_at: now_millis(),
    }
}

fn parse<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::invalid_input(e.to_string()))
}

pub struct Service<L> {
    pub executor: std::sync::Arc<Executor<L>>,
}

/// A message as `message:send` and `POST /api/messages` answer it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message_id: MessageId,
    pub seq: u64,
    pub position: u64,
    /// The `message:new` payload.
    pub payload: Value,
    /// Whether this was a retry of an earlier send (same sender, conversation and tempId).
    pub duplicate: bool,
}

impl<L: EventLog> Service<L> {
    pub fn new(executor: std::sync::Arc<Executor<L>>) -> Self {
        Self { executor }
    }

    /// Whether `user` may connect: registered (suspension arrives with its event).
    pub async fn active_user(
        &self,
        user: &UserId,
    ) -> Result<Option<crate::domain::User>, ApiError> {
        Ok(self
            .executor
            .read_user(user, |u| u.is_active().then(|| u.clone()))
            .await?)
    }

    async fn conversation(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
        command: ConversationCommand,
    ) -> Result<crate::executor::Outcome<ConversationEvent>, ApiError> {
        let meta = metadata(who.as_str(), None);
        Ok(self
            .executor
            .conversation(conversation_id, command, &meta, |_| ())
            .await?
            .0)
    }

    /// `message:update` / `PATCH /api/messages/:id`. Answers `{messageId, editedAt, position}`.
    pub async fn edit_message(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        content: &str,
    ) -> Result<Value, ApiError> {
        let content = parse(Content::parse(content))?;
        let now = now_millis();
        let command = ConversationCommand::EditMessage {
            by: who.clone(),
            message_id: message_id.clone(),
            content,
            now,
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(
            json!({"messageId": message_id, "editedAt": events::iso8601(now), "position": outcome.position}),
        )
    }

    /// `message:delete` / `DELETE /api/messages/:id`.
    pub async fn delete_message(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Value, ApiError> {
        let now = now_millis();
        let command = ConversationCommand::DeleteMessage {
            by: who.clone(),
            message_id: message_id.clone(),
            now,
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(
            json!({"messageId": message_id, "deletedAt": events::iso8601(now), "position": outcome.position}),
        )
    }

    /// Records delivery to `who` of everything not yet delivered to them in the conversation.
    pub async fn deliver_pending(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<u64, ApiError> {
        let mut position = 0;
        loop {
            let command = ConversationCommand::DeliverPending {
                to: who.clone(),
                now: now_millis(),
            };
            let outcome = self.conversation(who, conversation_id, command).await?;
            position = position.max(outcome.position);
            if outcome.events.is_empty() {
                return Ok(position);
            }
        }
    }

    /// `message:read` / `POST /api/messages/read`.
    pub async fn mark_read(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
        message_ids: &[String],
    ) -> Result<Value, ApiError> {
        let ids = message_ids
            .iter()
            .map(|m| parse(MessageId::parse(m)))
            .collect::<Result<Vec<_>, _>>()?;
        let command = ConversationCommand::MarkRead {
            reader: who.clone(),
            message_ids: ids,
            now: now_millis(),
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(json!({"position": outcome.position}))
    }

    /// `reaction:add` / `POST /api/messages/:id/reactions`. Answers the reaction (the existing
    /// one when the same user already reacted with the same emoji).
    pub async fn add_reaction(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        emoji: &str,
    ) -> Result<Value, ApiError> {
        let emoji = parse(Emoji::parse(emoji))?;
        let command = ConversationCommand::AddReaction {
            by: who.clone(),
            message_id: message_id.clone(),
            reaction_id: ReactionId::generate(),
            emoji: emoji.clone(),
            now: now_millis(),
        };
        let meta = metadata(who.as_str(), None);
        let (outcome, reaction) = self
            .executor
            .conversation(conversation_id, command, &meta, |c| {
                c.reaction_of(message_id, who, &emoji).cloned()
            })
            .await?;
        let reaction = reaction.ok_or_else(|| ApiError::internal("reaction missing after add"))?;
        Ok(json!({
            "id": reaction, "reactionId": reaction, "messageId": message_id, "conversationId": conversation_id,
            "emoji": emoji, "userId": who, "position": outcome.position,
        }))
    }

    /// `reaction:remove` / `DELETE /api/messages/:id/reactions/:reactionId`.
    pub async fn remove_reaction(
        &self,
        who: &UserId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        reaction_id: &str,
    ) -> Result<Value, ApiError> {
        let reaction_id = parse(ReactionId::parse(reaction_id))?;
        let command = ConversationCommand::RemoveReaction {
            by: who.clone(),
            message_id: message_id.clone(),
            reaction_id,
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(json!({"position": outcome.position}))
    }

    /// `POST /api/conversations/:id/participants` (conversation admin).
    pub async fn add_participant(
        &self,
        who: &UserId,
        conversation_id: &str,
        user: &str,
    ) -> Result<Value, ApiError> {
        let user_id = parse(UserId::parse(user))?;
        if !self.executor.read_user(&user_id, |u| u.registered).await? {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("User {user_id} not found"),
            ));
        }
        self.change_participant(who, conversation_id, user, |by, user| {
            ConversationCommand::AddParticipant { by, user }
        })
        .await
    }

    /// `DELETE /api/conversations/:id/participants/:userId` (conversation admin, or self).
    pub async fn remove_participant(
        &self,
        who: &UserId,
        conversation_id: &str,
        user: &str,
    ) -> Result<Value, ApiError> {
        self.change_participant(who, conversation_id, user, |by, user| {
            ConversationCommand::RemoveParticipant { by, user }
        })
        .await
    }

    async fn change_participant(
        &self,
        who: &UserId,
        conversation_id: &str,
        user: &str,
        command: impl FnOnce(UserId, UserId) -> ConversationCommand,
    ) -> Result<Value, ApiError> {
        let conversation_id = parse(ConversationId::parse(conversation_id))?;
        let user = parse(UserId::parse(user))?;
        let outcome = self
            .conversation(who, &conversation_id, command(who.clone(), user.clone()))
            .await?;
        Ok(json!({"conversationId": conversation_id, "userId": user, "position": outcome.position}))
    }

    /// `POST /api/users/:id/suspend` and `/reinstate` (admin).
    pub async fn set_suspended(
        &self,
        who: &Identity,
        id: &str,
        suspended: bool,
    ) -> Result<Value, ApiError> {
        who.require_admin()?;
        let id = parse(UserId::parse(id))?;
        let command = if suspended {
            UserCommand::Suspend { reason: None }
        } else {
            UserCommand::Reinstate
        };
        let meta = metadata(&format!("admin:{}", who.user_id), None);
        let (outcome, _) = self.executor.user(&id, command, &meta, |_| ()).await?;
        let status = if suspended { "suspended" } else { "active" };
        Ok(json!({"id": id, "status": status, "position": outcome.position}))
    }

    /// The user's last socket left a room at `at`: persist `lastSeenAt`.
    pub async fn record_last_seen(&self, who: &UserId, at: events::Millis) -> Result<(), ApiError> {
        let meta = metadata(who.as_str(), None);
        self.executor
            .user(who, UserCommand::RecordLastSeen { at }, &meta, |_| ())
            .await?;
        Ok(())
    }

    /// `PUT /api/users/:id`: register or update a user. Admin only.
    pub async fn upsert_user(
        &self,
        who: &Identity,
        id: &str,
        name: String,
        avatar_url: Option<String>,
    ) -> Result<Value, ApiError> {
        who.require_admin()?;
        let id = parse(UserId::parse(id))?;
        let meta = metadata(&format!("admin:{}", who.user_id), None);
        let (outcome, user) = self
            .executor
            .user(
                &id,
                UserCommand::Upsert { name, avatar_url },
                &meta,
                Clone::clone,
            )
            .await?;
        Ok(json!({
            "id": id, "name": user.name, "avatarUrl": user.avatar_url, "status": "active",
            "position": outcome.position,
        }))
    }

    /// `POST /api/conversations`: the caller creates a conversation and is its admin.
    pub async fn create_conversation(
        &self,
        who: &Identity,
        title: Option<String>,
        participant_ids: Vec<String>,
    ) -> Result<Value, ApiError> {
        let participants = participant_ids
            .iter()
            .map(|p| parse(UserId::parse(p)))
            .collect::<Result<Vec<_>, _>>()?;
        if self.active_user(&who.user_id).await?.is_none() {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "User not authorized",
            ));
        }
        for p in &participants {
            if self.active_user(p).await?.is_none() {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("User {p} not found"),
                ));
            }
        }
        let id = ConversationId::generate();
        let meta = metadata(who.user_id.as_str(), None);
        let command = ConversationCommand::Create {
            id: id.clone(),
            title,
            creator: who.user_id.clone(),
            participants,
        };
        let (outcome, conv) = self
            .executor
            .conversation(&id, command, &meta, Clone::clone)
            .await?;
        let participants: Vec<Value> = conv
            .participants
            .iter()
            .map(|(u, r)| json!({"userId": u, "role": r.as_str()}))
            .collect();
        Ok(json!({
            "id": id, "title": conv.title, "participants": participants,
            "createdAt": events::iso8601(meta.occurred_at), "position": outcome.position,
        }))
    }

    /// `message:send` / `POST /api/messages`.
    pub async fn send_message(
        &self,
        who: &UserId,
        conversation_id: &str,
        content: &str,
        temp_id: Option<&str>,
        present: Vec<UserId>,
    ) -> Result<Sent, ApiError> {
        let conversation_id = parse(ConversationId::parse(conversation_id))?;
        let content = parse(Content::parse(content))?;
        let temp_id = temp_id.map(|t| parse(TempId::parse(t))).transpose()?;
        let meta = metadata(who.as_str(), None);
        let command = ConversationCommand::SendMessage {
            sender: who.clone(),
            message_id: MessageId::generate(),
            content: content.clone(),
            temp_id: temp_id.clone(),
            now: meta.occurred_at,
            present,
        };
        let earlier = |c: &crate::domain::Conversation| {
            temp_id
                .as_ref()
                .and_then(|t| c.message_for_temp_id(who, t).cloned())
        };
        let (outcome, first) = self
            .executor
            .conversation(&conversation_id, command, &meta, earlier)
            .await?;
        let sender = self.executor.read_user(who, Clone::clone).await.ok();
        let recorded = outcome.events.iter().find_map(|r| match &r.event {
            ConversationEvent::MessageSent(m) => Some((m.clone(), r.number)),
            _ => None,
        });
        let (m, offset, duplicate) = match (recorded, first) {
            (Some((m, offset)), _) => (m, offset, false),
            (None, Some(f)) => (
                MessageSentV1 {
                    message_id: f.message_id,
                    sender_id: who.clone(),
                    content,
                    temp_id,
                    seq: f.seq,
                    sent_at: f.sent_at,
                },
                0,
                true,
            ),
            (None, None) => {
                return Err(ApiError::internal(
                    "send decided no event and no earlier message",
                ));
            }
        };
        let mut payload = payload::message_new(&conversation_id, &m, offset, sender.as_ref());
        if duplicate && let Some(obj) = payload.as_object_mut() {
            obj.remove("offset");
        }
        Ok(Sent {
            message_id: m.message_id,
            seq: m.seq,
            position: outcome.position,
            payload,
            duplicate,
        })
    }
}
