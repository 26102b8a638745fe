//! Application services: what a client may ask of the write side, shared by the Socket.IO
//! and REST edges so that both decide and answer the same way. Each method takes values the
//! edge already parsed (ids, `Content`, `Emoji`, `TempId`), builds one command, runs it
//! through the executor and answers a typed wire shape or a [`CommandError`]. Rules live in
//! `domain`; this module only looks up what a rule needs across aggregates (does the user
//! exist?).
//!
//! Must not parse raw input, know about HTTP or sockets, or build JSON by hand.

use crate::domain::{Conversation, ConversationCommand, User, UserCommand};
use crate::error::CommandError;
use crate::executor::{Executor, Outcome};
use crate::push::outbound::message_new;
use eventlog::EventLog;
use events::{
    Content, ConversationEvent, ConversationId, Emoji, MessageId, MessageSent, Metadata,
    ReactionId, TempId, UserId, now_millis,
};
use std::sync::Arc;
use wire::Timestamp;
use wire::rest::{
    ConversationCreated, Deleted, Edited, HoldChanged, Member, MessageHistory, MessageVersion,
    ParticipantChanged, Pinned, Positioned, Reaction, RetentionChanged, UserSaved, UserStatus,
};
use wire::socket::MessageNew;

type Result<T> = std::result::Result<T, CommandError>;

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

/// Who asks, and within which request: the caller's identity (from their token) and the
/// correlation id every command of the request carries into the log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub admin: bool,
    pub correlation_id: String,
}

impl Caller {
    /// `correlation_id` is the request's (`X-Request-Id`), else a new one.
    pub fn new(identity: &api::Identity, correlation_id: Option<String>) -> Self {
        Self {
            user_id: identity.user_id.clone(),
            admin: identity.admin,
            correlation_id: correlation_id.unwrap_or_else(new_correlation_id),
        }
    }

    /// The node itself acting for `user` (a presence departure's `lastSeenAt`).
    pub fn system(user: &UserId) -> Self {
        Self {
            user_id: user.clone(),
            admin: false,
            correlation_id: new_correlation_id(),
        }
    }

    fn metadata(&self) -> Metadata {
        metadata(self.user_id.as_str(), Some(&self.correlation_id))
    }

    /// `UNAUTHORIZED` unless the caller's token has the admin role.
    pub fn require_admin(&self) -> Result<()> {
        if self.admin {
            Ok(())
        } else {
            Err(CommandError::AdminRequired)
        }
    }

    /// Admin commands are recorded with actor `admin:<id>`.
    fn admin_metadata(&self) -> Result<Metadata> {
        self.require_admin()?;
        Ok(metadata(
            &format!("admin:{}", self.user_id),
            Some(&self.correlation_id),
        ))
    }
}

/// A fresh correlation id (a ULID, as command ids are).
pub fn new_correlation_id() -> String {
    ulid::Ulid::new().to_string()
}

/// The actor of the retention sweeper's commands.
pub const SWEEPER_ACTOR: &str = "system:retention";

/// What one sweep of a conversation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Whether it appended an expiry.
    pub expired: bool,
    /// Period keys destroyed.
    pub destroyed: usize,
}

pub struct Service<L> {
    pub executor: Arc<Executor<L>>,
    /// Seals what a command writes and opens what an answer shows (ADR 14).
    pub keyring: Arc<keys::Keyring>,
}

/// A user's profile, opened: `name` is `None` once the user is erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView {
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// The command to register or update `id` with this profile: the text checked, then sealed
/// (the name trimmed) with its fingerprint. Nothing is sealed, and no key made, for text
/// the rules refuse.
pub async fn upsert_command(
    keyring: &keys::Keyring,
    id: &UserId,
    name: String,
    avatar_url: Option<String>,
) -> Result<UserCommand> {
    crate::domain::user::check_profile(&name, avatar_url.as_deref())
        .map_err(|e| CommandError::Rule(e.into()))?;
    // An erased user's key is gone for good: nothing can be sealed for them again.
    let sealed = seal_profile(keyring, id, name.trim(), avatar_url.as_deref())
        .await
        .map_err(|e| match e {
            keys::KeyError::Destroyed(_) => {
                CommandError::Rule(crate::domain::UserError::Erased.into())
            }
            other => other.into(),
        })?;
    Ok(UserCommand::Upsert {
        name,
        avatar_url,
        sealed,
    })
}

/// `id`'s profile as the log stores it: each field sealed under the user's key, with the
/// keyed fingerprint of the text (the name as given: [`upsert_command`] trims it first).
pub async fn seal_profile(
    keyring: &keys::Keyring,
    id: &UserId,
    name: &str,
    avatar_url: Option<&str>,
) -> std::result::Result<events::ProfileV2, keys::KeyError> {
    Ok(events::ProfileV2 {
        name: keyring.seal_profile(id, "name", name).await?,
        avatar_url: match avatar_url {
            Some(a) => Some(keyring.seal_profile(id, "avatarUrl", a).await?),
            None => None,
        },
        fingerprint: keyring
            .profile_fingerprint(id, &[Some(name), avatar_url])
            .await?,
    })
}

/// What a client sends: `message:send`, `POST /api/messages`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub content: Content,
    pub temp_id: Option<TempId>,
    /// The message this one replies to (contract 4.4).
    pub parent: Option<MessageId>,
    pub mentions: Vec<UserId>,
}

/// A message as `message:send` and `POST /api/messages` answer it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The `message:new` payload (without `offset` for a retry).
    pub message: MessageNew,
    pub position: u64,
    /// Whether this was a retry of an earlier send (same sender, conversation and tempId).
    pub duplicate: bool,
}

impl<L: EventLog> Service<L> {
    pub fn new(executor: Arc<Executor<L>>, keyring: Arc<keys::Keyring>) -> Self {
        Self { executor, keyring }
    }

    /// Whether `user` may connect: registered (suspension arrives with its event).
    pub async fn active_user(&self, user: &UserId) -> Result<Option<User>> {
        Ok(self
            .executor
            .read_user(user, |u| u.is_active().then(|| u.clone()))
            .await?)
    }

    /// Whether `user` is erased (false when the log cannot tell just now: the command that
    /// follows then fails on the log itself).
    pub async fn is_erased(&self, user: &UserId) -> bool {
        self.executor
            .read_user(user, User::is_erased)
            .await
            .unwrap_or(false)
    }

    /// A user's profile as this node knows it, opened (`None` when unknown or unreadable).
    pub async fn profile(&self, user: &UserId) -> Option<ProfileView> {
        user_profile(&self.executor, &self.keyring, user).await
    }

    /// Refuses what the conversation would refuse of `command` now, before anything is
    /// sealed: no key is made for a refused command, and a destroyed key (an expired period)
    /// is never the reason given. The aggregate's own rules decide, on the current state, with
    /// a placeholder for the content ([`unsealed_placeholder`]).
    async fn refuse_early(
        &self,
        conv: &ConversationId,
        command: &ConversationCommand,
    ) -> Result<()> {
        use crate::domain::{Decide, DomainError};
        let refusal = self
            .executor
            .read_conversation(conv, |c| c.decide(command).err())
            .await?;
        match refusal {
            None => Ok(()),
            Some(e) => Err(CommandError::Rule(DomainError::Conversation(e))),
        }
    }

    async fn conversation(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        command: ConversationCommand,
    ) -> Result<Outcome<ConversationEvent>> {
        Ok(self
            .executor
            .conversation(conversation_id, command, &who.metadata(), |_| ())
            .await?
            .0)
    }

    /// `message:update` / `PATCH /api/messages/:id`.
    pub async fn edit_message(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        content: Content,
    ) -> Result<Edited> {
        let now = now_millis();
        let command = |content| ConversationCommand::EditMessage {
            by: who.user_id.clone(),
            message_id: message_id.clone(),
            content,
            now,
        };
        self.refuse_early(
            conversation_id,
            &command(unsealed_placeholder(&who.user_id)),
        )
        .await?;
        // Sealed in the period of the message's send (its id's time), so that retention
        // expires the edits with the message.
        let sent_at = message_id.created_at().unwrap_or(now);
        let sealed = self
            .keyring
            .seal_message(
                conversation_id,
                "MessageEdited",
                message_id,
                &who.user_id,
                sent_at,
                content.as_str(),
            )
            .await?;
        let outcome = self
            .conversation(who, conversation_id, command(sealed))
            .await?;
        Ok(Edited {
            message_id: message_id.clone(),
            edited_at: Timestamp(now),
            position: outcome.position,
        })
    }

    /// `message:delete` / `DELETE /api/messages/:id`.
    pub async fn delete_message(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Deleted> {
        let now = now_millis();
        let command = ConversationCommand::DeleteMessage {
            by: who.user_id.clone(),
            message_id: message_id.clone(),
            now,
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(Deleted {
            message_id: message_id.clone(),
            deleted_at: Timestamp(now),
            position: outcome.position,
        })
    }

    /// `message:pin` / `message:unpin`, `POST` / `DELETE /api/messages/:id/pin`.
    pub async fn pin_message(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        pin: bool,
    ) -> Result<Pinned> {
        let now = now_millis();
        let (by, message_id) = (who.user_id.clone(), message_id.clone());
        let command = if pin {
            ConversationCommand::PinMessage {
                by,
                message_id: message_id.clone(),
                now,
            }
        } else {
            ConversationCommand::UnpinMessage {
                by,
                message_id: message_id.clone(),
                now,
            }
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(Pinned {
            conversation_id: conversation_id.clone(),
            message_id,
            pinned: pin,
            by: who.user_id.clone(),
            at: Timestamp(now),
            position: outcome.position,
        })
    }

    /// Records delivery to the caller of everything not yet delivered to them in the
    /// conversation; answers the last position written.
    pub async fn deliver_pending(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
    ) -> Result<u64> {
        let mut position = 0;
        loop {
            let command = ConversationCommand::DeliverPending {
                to: who.user_id.clone(),
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
        who: &Caller,
        conversation_id: &ConversationId,
        message_ids: Vec<MessageId>,
    ) -> Result<Positioned> {
        let command = ConversationCommand::MarkRead {
            reader: who.user_id.clone(),
            message_ids,
            now: now_millis(),
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(Positioned {
            position: outcome.position,
        })
    }

    /// `reaction:add` / `POST /api/messages/:id/reactions`. Answers the reaction (the existing
    /// one when the same user already reacted with the same emoji).
    pub async fn add_reaction(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        emoji: Emoji,
    ) -> Result<Reaction> {
        let command = ConversationCommand::AddReaction {
            by: who.user_id.clone(),
            message_id: message_id.clone(),
            reaction_id: ReactionId::generate(),
            emoji: emoji.clone(),
            now: now_millis(),
        };
        let (outcome, reaction) = self
            .executor
            .conversation(conversation_id, command, &who.metadata(), |c| {
                c.reaction_of(message_id, &who.user_id, &emoji).cloned()
            })
            .await?;
        let reaction =
            reaction.ok_or_else(|| CommandError::Internal("reaction missing after add".into()))?;
        Ok(Reaction {
            id: reaction.clone(),
            reaction_id: reaction,
            message_id: message_id.clone(),
            conversation_id: conversation_id.clone(),
            emoji,
            user_id: who.user_id.clone(),
            position: outcome.position,
        })
    }

    /// `reaction:remove` / `DELETE /api/messages/:id/reactions/:reactionId`.
    pub async fn remove_reaction(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        reaction_id: ReactionId,
    ) -> Result<Positioned> {
        let command = ConversationCommand::RemoveReaction {
            by: who.user_id.clone(),
            message_id: message_id.clone(),
            reaction_id,
        };
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(Positioned {
            position: outcome.position,
        })
    }

    /// `POST /api/conversations/:id/participants` (conversation admin).
    pub async fn add_participant(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        user: UserId,
    ) -> Result<ParticipantChanged> {
        if !self.executor.read_user(&user, User::is_registered).await? {
            return Err(CommandError::UnknownUser(user));
        }
        let command = ConversationCommand::AddParticipant {
            by: who.user_id.clone(),
            user: user.clone(),
        };
        self.change_participant(who, conversation_id, user, command)
            .await
    }

    /// `DELETE /api/conversations/:id/participants/:userId` (conversation admin, or self).
    pub async fn remove_participant(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        user: UserId,
    ) -> Result<ParticipantChanged> {
        let command = ConversationCommand::RemoveParticipant {
            by: who.user_id.clone(),
            user: user.clone(),
        };
        self.change_participant(who, conversation_id, user, command)
            .await
    }

    async fn change_participant(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        user: UserId,
        command: ConversationCommand,
    ) -> Result<ParticipantChanged> {
        let outcome = self.conversation(who, conversation_id, command).await?;
        Ok(ParticipantChanged {
            conversation_id: conversation_id.clone(),
            user_id: user,
            position: outcome.position,
        })
    }

    /// `POST /api/users/:id/suspend` and `/reinstate` (admin).
    pub async fn set_suspended(
        &self,
        who: &Caller,
        id: UserId,
        suspended: bool,
    ) -> Result<UserStatus> {
        let meta = who.admin_metadata()?;
        let command = if suspended {
            UserCommand::Suspend { reason: None }
        } else {
            UserCommand::Reinstate
        };
        let (outcome, _) = self.executor.user(&id, command, &meta, |_| ()).await?;
        Ok(UserStatus {
            id,
            status: if suspended { "suspended" } else { "active" },
            position: outcome.position,
        })
    }

    /// `POST /api/users/:id/erase` (contract 4.2): appends `UserErased`, then destroys the
    /// user's data key, so that their profile and the content of their messages open nowhere
    /// again. Erasing an erased user answers the same and changes nothing. Admin only.
    /// `held_in`: a held conversation with a message of the user, as the read models know it
    /// (the edge looks it up): erasure is then refused, as it is for a held user.
    pub async fn erase_user(
        &self,
        who: &Caller,
        id: UserId,
        reason: Option<String>,
        held_in: Option<(String, String)>,
    ) -> Result<UserStatus> {
        let meta = who.admin_metadata()?;
        if let Some((conversation, reason)) = held_in {
            return Err(CommandError::HeldConversation {
                conversation,
                reason,
            });
        }
        let (outcome, ()) = self
            .executor
            .user(&id, UserCommand::Erase { reason }, &meta, |_| ())
            .await?;
        self.keyring.destroy_user(&id).await?;
        Ok(UserStatus {
            id,
            status: "erased",
            position: outcome.position,
        })
    }

    /// `PUT` (`reason` given) or `DELETE /api/holds/users/:id`. Admin only.
    pub async fn set_user_hold(
        &self,
        who: &Caller,
        id: UserId,
        reason: Option<String>,
    ) -> Result<HoldChanged> {
        let meta = who.admin_metadata()?;
        let held = reason.is_some();
        let command = match reason {
            Some(reason) => UserCommand::Hold { reason },
            None => UserCommand::Release,
        };
        let (outcome, ()) = self.executor.user(&id, command, &meta, |_| ()).await?;
        Ok(HoldChanged {
            kind: "user",
            id: id.to_string(),
            held,
            position: outcome.position,
        })
    }

    /// `PUT` (`reason` given) or `DELETE /api/holds/conversations/:id`. Admin only.
    pub async fn set_conversation_hold(
        &self,
        who: &Caller,
        id: ConversationId,
        reason: Option<String>,
    ) -> Result<HoldChanged> {
        let meta = who.admin_metadata()?;
        let held = reason.is_some();
        let command = match reason {
            Some(reason) => ConversationCommand::Hold { reason },
            None => ConversationCommand::Release,
        };
        let (outcome, ()) = self
            .executor
            .conversation(&id, command, &meta, |_| ())
            .await?;
        Ok(HoldChanged {
            kind: "conversation",
            id: id.to_string(),
            held,
            position: outcome.position,
        })
    }

    /// `GET /api/messages/:id/history` (a participant; contract 4.3): every version of the
    /// message, oldest first, read from the conversation's log (not a projection) from the
    /// first commit that can hold its send, sealed content opened (`null` once erased or
    /// expired).
    pub async fn message_history(
        &self,
        who: &Caller,
        conv: &ConversationId,
        message: &MessageId,
    ) -> Result<MessageHistory> {
        use crate::domain::{ConversationError as E, DomainError};
        let rule = |e| CommandError::Rule(DomainError::Conversation(e));
        let (exists, member, seq) = self
            .executor
            .read_conversation(conv, |c| {
                (
                    c.exists(),
                    c.is_participant(&who.user_id),
                    c.seq_of(message),
                )
            })
            .await?;
        match (exists, member, seq) {
            (false, _, _) => return Err(rule(E::NotFound)),
            (true, false, _) => return Err(rule(E::NotParticipant)),
            (true, true, None) => return Err(rule(E::MessageNotFound)),
            (true, true, Some(_)) => {}
        }
        // A message's event number (its offset) is at least its `seq`.
        let after = seq.unwrap_or(1).saturating_sub(1);
        let subject = self.executor.subjects().conversation(conv);
        let commits = eventlog::read_subject_after_version(self.executor.log(), &subject, after)
            .await
            .map_err(|e| CommandError::from(crate::ExecError::from(e)))?;
        let mut history = MessageHistory {
            versions: Vec::new(),
            deleted_at: None,
            deleted_by: None,
        };
        let mut author = None;
        for stored in &commits {
            let events = stored
                .commit
                .decode_events::<ConversationEvent>()
                .map_err(|e| CommandError::Internal(e.to_string()))?;
            let mine: Vec<ConversationEvent> = events
                .into_iter()
                .map(|r| r.event)
                .filter(|e| match e {
                    ConversationEvent::MessageSent(m) => &m.message_id == message,
                    ConversationEvent::MessageEdited(m) => &m.message_id == message,
                    ConversationEvent::MessageDeleted(m) => &m.message_id == message,
                    _ => false,
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let sealed: Vec<&events::SealedV1> = mine.iter().filter_map(|e| e.sealed()).collect();
            let keys = self.keyring.prepare(Some(conv.as_str()), &sealed).await?;
            let version = |opened: events::Opened, at, by: &UserId| MessageVersion {
                erased: opened.is_erased(),
                expired: opened.is_expired(),
                content: opened.into_text(),
                at: Timestamp(at),
                by: by.clone(),
                position: stored.position,
            };
            for event in &mine {
                match event {
                    ConversationEvent::MessageSent(m) => {
                        author = Some(m.sender_id.clone());
                        let opened = m.open(&keys, conv.as_str());
                        history
                            .versions
                            .push(version(opened, m.sent_at, &m.sender_id));
                    }
                    ConversationEvent::MessageEdited(m) => {
                        // Only the author edits (their id is the commit's actor too).
                        let by = author
                            .clone()
                            .or_else(|| UserId::parse(&stored.commit.actor).ok())
                            .unwrap_or_else(|| who.user_id.clone());
                        let opened = m.open(&keys, conv.as_str());
                        history.versions.push(version(opened, m.edited_at, &by));
                    }
                    ConversationEvent::MessageDeleted(m) => {
                        history.deleted_at = Some(Timestamp(m.deleted_at));
                        history.deleted_by = Some(m.deleted_by.clone());
                    }
                    _ => {}
                }
            }
        }
        Ok(history)
    }

    /// `PUT /api/conversations/:id/retention` (a conversation admin, or an admin).
    pub async fn set_retention(
        &self,
        who: &Caller,
        id: ConversationId,
        seconds: Option<u64>,
    ) -> Result<RetentionChanged> {
        let meta = if who.admin {
            who.admin_metadata()?
        } else {
            who.metadata()
        };
        let command = ConversationCommand::SetRetention {
            by: who.user_id.clone(),
            admin: who.admin,
            seconds,
        };
        let (outcome, ()) = self
            .executor
            .conversation(&id, command, &meta, |_| ())
            .await?;
        Ok(RetentionChanged {
            conversation_id: id,
            retention_seconds: seconds,
            position: outcome.position,
        })
    }

    /// The retention sweeper's visit of one conversation at `now` (contract 4.2): appends the
    /// expiry of what is due, then destroys the keys of the periods wholly past the retention
    /// period ([`keys::Keyring::shred`], which also finishes what a crash interrupted). A held
    /// conversation is left untouched.
    pub async fn sweep(&self, id: &ConversationId, now: events::Millis) -> Result<Swept> {
        use crate::domain::{ConversationError, DomainError};
        use crate::executor::ExecError;
        let meta = metadata(SWEEPER_ACTOR, None);
        let command = ConversationCommand::Expire { now };
        let read = |c: &Conversation| {
            (
                c.expired_before(),
                c.retention_cutoff(now),
                c.first_sent_at(),
            )
        };
        let (outcome, (before, cutoff, first)) =
            match self.executor.conversation(id, command, &meta, read).await {
                Err(ExecError::Domain(DomainError::Conversation(ConversationError::Held(_)))) => {
                    return Ok(Swept::default());
                }
                other => other?,
            };
        let through = cutoff.unwrap_or(0).max(before);
        let destroyed = if through > 0 {
            self.keyring.shred(id, before, through, first).await?
        } else {
            0
        };
        Ok(Swept {
            expired: !outcome.events.is_empty(),
            destroyed,
        })
    }

    /// The user's last socket left a room at `at`: persist `lastSeenAt`.
    pub async fn record_last_seen(&self, who: &Caller, at: events::Millis) -> Result<()> {
        self.executor
            .user(
                &who.user_id,
                UserCommand::RecordLastSeen { at },
                &who.metadata(),
                |_| (),
            )
            .await?;
        Ok(())
    }

    /// `PUT /api/users/:id`: register or update a user. Admin only.
    pub async fn upsert_user(
        &self,
        who: &Caller,
        id: UserId,
        name: String,
        avatar_url: Option<String>,
    ) -> Result<UserSaved> {
        let meta = who.admin_metadata()?;
        let saved = (name.trim().to_owned(), avatar_url.clone());
        let command = upsert_command(&self.keyring, &id, name, avatar_url).await?;
        let (outcome, ()) = self.executor.user(&id, command, &meta, |_| ()).await?;
        Ok(UserSaved {
            id,
            name: saved.0,
            avatar_url: saved.1,
            status: "active",
            position: outcome.position,
        })
    }

    /// `POST /api/conversations`: the caller creates a conversation and is its admin.
    pub async fn create_conversation(
        &self,
        who: &Caller,
        title: Option<String>,
        participants: Vec<UserId>,
    ) -> Result<ConversationCreated> {
        if self.active_user(&who.user_id).await?.is_none() {
            return Err(CommandError::CallerInactive);
        }
        for p in &participants {
            if self.active_user(p).await?.is_none() {
                return Err(CommandError::UnknownUser(p.clone()));
            }
        }
        let id = ConversationId::generate();
        let meta = who.metadata();
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
        Ok(ConversationCreated {
            id,
            title: conv.title().map(str::to_owned),
            participants: conv
                .participants()
                .map(|(u, r)| Member {
                    user_id: u.clone(),
                    role: r.as_str(),
                })
                .collect(),
            created_at: Timestamp(meta.occurred_at),
            position: outcome.position,
        })
    }

    /// `message:send` / `POST /api/messages`. `present`: the users in the room on any node,
    /// to whom the message is delivered in the same commit.
    pub async fn send_message(
        &self,
        who: &Caller,
        conversation_id: &ConversationId,
        new: NewMessage,
        present: Vec<UserId>,
    ) -> Result<Sent> {
        let NewMessage {
            content,
            temp_id,
            parent,
            mentions,
        } = new;
        let meta = who.metadata();
        let sender_id = &who.user_id;
        let message_id = MessageId::generate_at(meta.occurred_at);
        let command = |content, present| ConversationCommand::SendMessage {
            sender: sender_id.clone(),
            message_id: message_id.clone(),
            content,
            temp_id: temp_id.clone(),
            now: meta.occurred_at,
            present,
            parent: parent.clone(),
            mentions: mentions.clone(),
        };
        self.refuse_early(
            conversation_id,
            &command(unsealed_placeholder(sender_id), vec![]),
        )
        .await?;
        let sealed = self
            .keyring
            .seal_message(
                conversation_id,
                "MessageSent",
                &message_id,
                sender_id,
                meta.occurred_at,
                content.as_str(),
            )
            .await?;
        let command = command(sealed, present);
        let earlier = |c: &Conversation| {
            temp_id
                .as_ref()
                .and_then(|t| c.message_for_temp_id(sender_id, t))
        };
        let (outcome, first) = self
            .executor
            .conversation(conversation_id, command, &meta, earlier)
            .await?;
        let sender = self.profile(sender_id).await;
        let recorded = outcome.events.iter().find_map(|r| match &r.event {
            ConversationEvent::MessageSent(m) => Some((m.clone(), r.number)),
            _ => None,
        });
        let (m, offset) = match (recorded, first) {
            (Some((m, offset)), _) => (m, Some(offset)),
            (None, Some(f)) => (
                MessageSent {
                    message_id: f.message_id,
                    sender_id: sender_id.clone(),
                    content: events::Text::Clear(String::new()),
                    temp_id: temp_id.clone(),
                    seq: f.seq,
                    sent_at: f.sent_at,
                    reply: parent.map(|parent_id| events::ReplyV1 {
                        parent_id,
                        reply_count: 0,
                        participant_ids: Vec::new(),
                    }),
                    mentions,
                },
                None,
            ),
            (None, None) => {
                return Err(CommandError::Internal(
                    "send decided no event and no earlier message".into(),
                ));
            }
        };
        let opened = events::Opened::Text(content.into_string());
        Ok(Sent {
            message: message_new(conversation_id, &m, opened, offset, sender.as_ref()),
            position: outcome.position,
            duplicate: offset.is_none(),
        })
    }
}

/// What stands for sealed content while the rules decide before sealing
/// ([`Service::refuse_early`]): the rules never look inside it.
fn unsealed_placeholder(user: &UserId) -> events::SealedV1 {
    events::SealedV1 {
        user: user.clone(),
        period: None,
        nonce: [0; 24],
        ciphertext: Vec::new(),
    }
}

/// `user`'s profile as `executor` knows it, opened (`None` when unknown or unreadable).
pub async fn user_profile<L: EventLog>(
    executor: &Executor<L>,
    keyring: &keys::Keyring,
    user: &UserId,
) -> Option<ProfileView> {
    let profile = executor
        .read_user(user, |u| u.profile().cloned())
        .await
        .ok()??;
    open_profile(keyring, user, &profile).await
}

/// `profile` opened with `keyring` (`None` when its keys cannot be read just now).
pub async fn open_profile(
    keyring: &keys::Keyring,
    user: &UserId,
    profile: &events::Profile,
) -> Option<ProfileView> {
    let set = keyring.prepare(None, &profile.sealed()).await.ok()?;
    let opened = profile.open(&set, user.as_str());
    Some(ProfileView {
        name: opened.name,
        avatar_url: opened.avatar_url,
    })
}
