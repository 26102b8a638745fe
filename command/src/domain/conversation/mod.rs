//! The conversation aggregate: creation, participants, messages. It decides `seq` (the
//! message's position in the conversation, 1, 2, 3… with no gap) and `tempId` idempotency.
//!
//! The rules read the state through [`Facts`]; [`Conversation`] (`state.rs`) is the compact
//! state the node caches, and a plain reference state in the tests checks that it answers
//! every rule exactly as a map of every message would.

#[cfg(test)]
mod reference;
mod state;

pub use state::Conversation;

use super::{Decide, TextRule, check_text, cqrs_aggregate};
use events::{
    ConversationCreatedV1, ConversationEvent, ConversationId, Emoji, MessageDeletedV1,
    MessageEdited, MessageId, MessagePinnedV1, MessageRefV1, MessageSent, MessageUnpinnedV1,
    MessagesDeliveredV1, MessagesReadV1, Millis, ParticipantAddedV1, ParticipantRemovedV1,
    ParticipantRole, ReactionAddedV1, ReactionId, ReactionRemovedV1, ReplyV1, SealedV1, TempId,
    Text, UserId,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub const MAX_TITLE_CHARS: usize = 200;
/// Most participants a conversation may be created with.
pub const MAX_INITIAL_PARTICIPANTS: usize = 1000;
/// Most messages one delivery event lists; a longer backlog takes several commits.
pub const MAX_DELIVERY_BATCH: usize = 500;
/// Most message ids one `message:read` may name.
pub const MAX_READ_IDS: usize = 100;
/// Longest reason of a legal hold.
pub const MAX_HOLD_REASON_CHARS: usize = 500;
/// Longest retention period a conversation may have: 100 years, in seconds.
pub const MAX_RETENTION_SECS: u64 = 100 * 366 * 86_400;
/// Most users one message may mention.
pub const MAX_MENTIONS: usize = 50;
/// Most messages a conversation may have pinned at once.
pub const MAX_PINS: usize = 100;

/// What the rules read of a conversation's state.
pub(crate) trait Facts {
    fn exists(&self) -> bool;
    /// The role of an active participant.
    fn role(&self, user: &UserId) -> Option<ParticipantRole>;
    /// `seq` of the last message (0 before the first).
    fn last_seq(&self) -> u64;
    fn message(&self, id: &MessageId) -> Option<MessageFacts<'_>>;
    fn message_at(&self, seq: u64) -> Option<MessageFacts<'_>>;
    fn message_id(&self, seq: u64) -> Option<MessageId>;
    /// The message an earlier send with this (sender, tempId) created.
    fn sent_for_temp_id(&self, sender: &UserId, temp_id: &TempId) -> Option<SentRef>;
    /// Highest `seq` delivered to `user` (0: none).
    fn delivered_upto(&self, user: &UserId) -> u64;
    /// Whether `user` read message `seq`. May also answer `true` for the user's own messages
    /// and for deleted ones: no rule tells those apart from read ones.
    fn has_read(&self, user: &UserId, seq: u64) -> bool;
    /// The reaction `user` has on message `seq` with `emoji`.
    fn reaction_key(&self, seq: u64, user: &UserId, emoji: &Emoji) -> Option<&ReactionId>;
    /// The message `seq` and the owner of a reaction.
    fn reaction(&self, id: &ReactionId) -> Option<(u64, &UserId)>;
    /// The reason of the legal hold on the conversation, while one applies.
    fn hold(&self) -> Option<&str>;
    /// The retention period in seconds, while one is set.
    fn retention(&self) -> Option<u64>;
    /// The thread of message `parent`: how many replies it has, and who replied (in the order
    /// of their first reply).
    fn thread(&self, parent: u64) -> (u64, Vec<&UserId>);
    /// Pinned messages' `seq`, oldest pin first.
    fn pins(&self) -> &[u64];
    /// How many leading messages (`seq` 1, 2, …) retention expired.
    fn expired_upto(&self) -> u64;
    /// How many leading messages were sent before `before`, by their ids' times (a message
    /// whose id carries no time, or an earlier one than the message before it, counts as sent
    /// with the message before it).
    fn sent_before(&self, before: Millis) -> u64;
}

/// The time before which messages are past a retention period of `seconds` at `now`.
pub(crate) fn retention_cutoff(seconds: u64, now: Millis) -> Millis {
    let period = Millis::try_from(seconds.saturating_mul(1000)).unwrap_or(Millis::MAX);
    now.saturating_sub(period)
}

/// What the rules know of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageFacts<'a> {
    pub seq: u64,
    pub sender: &'a UserId,
    pub deleted: bool,
    /// A reply in a thread.
    pub reply: bool,
}

/// The rules, over any [`Facts`].
struct Rules<'a, F>(&'a F);

impl<F: Facts> Rules<'_, F> {
    fn exists(&self) -> bool {
        self.0.exists()
    }

    fn is_participant(&self, user: &UserId) -> bool {
        self.0.role(user).is_some()
    }

    /// A live (neither deleted nor expired) message, or `NOT_FOUND`.
    fn live_message(&self, id: &MessageId) -> Result<MessageFacts<'_>, ConversationError> {
        match self.0.message(id) {
            Some(m) if !m.deleted && m.seq > self.0.expired_upto() => Ok(m),
            _ => Err(ConversationError::MessageNotFound),
        }
    }

    fn require_participant(&self, user: &UserId) -> Result<ParticipantRole, ConversationError> {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        self.0.role(user).ok_or(ConversationError::NotParticipant)
    }
}

/// What a retry with the same tempId answers: the first message's id, seq and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRef {
    pub message_id: MessageId,
    pub seq: u64,
    pub sent_at: events::Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationCommand {
    Create {
        id: ConversationId,
        title: Option<String>,
        creator: UserId,
        participants: Vec<UserId>,
    },
    AddParticipant {
        by: UserId,
        user: UserId,
    },
    RemoveParticipant {
        by: UserId,
        user: UserId,
    },
    SendMessage {
        sender: UserId,
        message_id: MessageId,
        /// Sealed by the service before the command (the aggregate never sees the text).
        content: SealedV1,
        temp_id: Option<TempId>,
        now: Millis,
        /// Users with a socket in the room (any node) when the message is sent: the message
        /// is delivered to them in the same commit.
        present: Vec<UserId>,
        /// The message this one replies to (contract 4.4).
        parent: Option<MessageId>,
        /// Participants the message mentions.
        mentions: Vec<UserId>,
    },
    /// Pin a live message: by a conversation admin or its author.
    PinMessage {
        by: UserId,
        message_id: MessageId,
        now: Millis,
    },
    /// Unpin a pinned message: by a conversation admin or its author.
    UnpinMessage {
        by: UserId,
        message_id: MessageId,
        now: Millis,
    },
    EditMessage {
        by: UserId,
        message_id: MessageId,
        content: SealedV1,
        now: Millis,
    },
    DeleteMessage {
        by: UserId,
        message_id: MessageId,
        now: Millis,
    },
    /// Record delivery to `to` of the messages not yet delivered to them (up to
    /// [`MAX_DELIVERY_BATCH`] per commit), as when they join the room.
    DeliverPending {
        to: UserId,
        now: Millis,
    },
    MarkRead {
        reader: UserId,
        message_ids: Vec<MessageId>,
        now: Millis,
    },
    AddReaction {
        by: UserId,
        message_id: MessageId,
        reaction_id: ReactionId,
        emoji: Emoji,
        now: Millis,
    },
    RemoveReaction {
        by: UserId,
        message_id: MessageId,
        reaction_id: ReactionId,
    },
    /// Place a legal hold (contract 4.2); a second hold changes nothing. Admins only (the
    /// service checks).
    Hold {
        reason: String,
    },
    /// Release the legal hold; releasing an unheld conversation changes nothing.
    Release,
    /// Set the retention period (`None`: keep forever); by a conversation admin, or by an
    /// admin (`admin`, which the service checks) who need not be a participant.
    SetRetention {
        by: UserId,
        admin: bool,
        seconds: Option<u64>,
    },
    /// Expire what the retention period makes due at `now` (the sweeper's command).
    Expire {
        now: Millis,
    },
}

/// A rule of the conversation a command broke. Each maps to one stable contract code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    #[error("Conversation not found")]
    NotFound,
    #[error("Conversation already exists")]
    AlreadyExists,
    #[error("Not a participant of this conversation")]
    NotParticipant,
    #[error("Participant not found")]
    ParticipantNotFound,
    #[error("Message not found")]
    MessageNotFound,
    #[error("Reaction not found")]
    ReactionNotFound,
    #[error("Only a conversation admin can add participants")]
    OnlyAdminsAdd,
    #[error("Only a conversation admin can remove other participants")]
    OnlyAdminsRemoveOthers,
    #[error("Only the author can edit a message")]
    OnlyAuthorEdits,
    #[error("Only the author or a conversation admin can delete a message")]
    OnlyAuthorOrAdminDeletes,
    #[error("Only the owner can remove a reaction")]
    OnlyOwnerRemovesReaction,
    #[error(transparent)]
    Text(TextRule),
    #[error("participantIds must list at most {MAX_INITIAL_PARTICIPANTS} users")]
    TooManyParticipants,
    #[error("messageIds must list 1 to {MAX_READ_IDS} ids")]
    ReadIdCount,
    #[error("Only a conversation admin can set the retention period")]
    OnlyAdminsSetRetention,
    #[error("retentionSeconds must be null or a whole number from 1 to {MAX_RETENTION_SECS}")]
    RetentionRange,
    #[error("Conversation under legal hold: {0}")]
    Held(String),
    #[error("Parent message not found")]
    ParentNotFound,
    #[error("A reply cannot have replies: threads are one level deep")]
    NestedReply,
    #[error("mentions must list participants of the conversation: {0} is not one")]
    MentionNotParticipant(UserId),
    #[error("mentions must list at most {MAX_MENTIONS} users")]
    TooManyMentions,
    #[error("Only a conversation admin or the author can pin or unpin a message")]
    OnlyAuthorOrAdminPins,
    #[error("Message already pinned")]
    AlreadyPinned,
    #[error("Message is not pinned")]
    NotPinned,
    #[error("A conversation may have at most {MAX_PINS} pinned messages")]
    TooManyPins,
}

impl ConversationError {
    pub fn code(&self) -> api::ErrorCode {
        use api::ErrorCode as C;
        match self {
            Self::NotFound
            | Self::ParticipantNotFound
            | Self::MessageNotFound
            | Self::ReactionNotFound
            | Self::ParentNotFound
            | Self::NotPinned => C::NotFound,
            Self::AlreadyExists | Self::AlreadyPinned | Self::TooManyPins => C::Conflict,
            Self::NotParticipant => C::NotParticipant,
            Self::OnlyAdminsAdd
            | Self::OnlyAdminsRemoveOthers
            | Self::OnlyAuthorEdits
            | Self::OnlyAuthorOrAdminDeletes
            | Self::OnlyOwnerRemovesReaction
            | Self::OnlyAdminsSetRetention
            | Self::OnlyAuthorOrAdminPins => C::Unauthorized,
            Self::Text(_)
            | Self::TooManyParticipants
            | Self::ReadIdCount
            | Self::RetentionRange
            | Self::NestedReply
            | Self::MentionNotParticipant(_)
            | Self::TooManyMentions => C::InvalidInput,
            Self::Held(_) => C::Conflict,
        }
    }
}

type Decision = Result<Vec<ConversationEvent>, ConversationError>;

/// A `SendMessage` command's fields, as the send rule reads them.
struct Send<'a> {
    sender: &'a UserId,
    message_id: &'a MessageId,
    content: &'a SealedV1,
    temp_id: Option<&'a TempId>,
    now: Millis,
    present: &'a [UserId],
    parent: Option<&'a MessageId>,
    mentions: &'a [UserId],
}

/// One method per command; [`decide`] only dispatches.
impl<F: Facts> Rules<'_, F> {
    fn create(
        &self,
        id: &ConversationId,
        title: Option<&String>,
        creator: &UserId,
        participants: &[UserId],
    ) -> Decision {
        if self.exists() {
            return Err(ConversationError::AlreadyExists);
        }
        if let Some(t) = title {
            check_text("title", t, MAX_TITLE_CHARS).map_err(ConversationError::Text)?;
        }
        if participants.len() > MAX_INITIAL_PARTICIPANTS {
            return Err(ConversationError::TooManyParticipants);
        }
        let mut events = vec![
            ConversationEvent::Created(ConversationCreatedV1 {
                conversation_id: id.clone(),
                title: title.map(|t| t.trim().to_owned()),
                created_by: creator.clone(),
            }),
            ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
                user_id: creator.clone(),
                role: ParticipantRole::Admin,
            }),
        ];
        let mut seen = HashSet::from([creator]);
        for p in participants {
            if seen.insert(p) {
                events.push(ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
                    user_id: p.clone(),
                    role: ParticipantRole::Member,
                }));
            }
        }
        Ok(events)
    }

    fn add_participant(&self, by: &UserId, user: &UserId) -> Decision {
        if self.require_participant(by)? != ParticipantRole::Admin {
            return Err(ConversationError::OnlyAdminsAdd);
        }
        if self.is_participant(user) {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::ParticipantAdded(
            ParticipantAddedV1 {
                user_id: user.clone(),
                role: ParticipantRole::Member,
            },
        )])
    }

    /// A legal hold (an admin's: the service checks the role).
    fn hold(&self, reason: &str) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        check_text("reason", reason, MAX_HOLD_REASON_CHARS).map_err(ConversationError::Text)?;
        if self.0.hold().is_some() {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::Held(events::HoldPlacedV1 {
            reason: reason.trim().to_owned(),
        })])
    }

    fn release(&self) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        if self.0.hold().is_none() {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::Released(events::HoldReleasedV1 {})])
    }

    fn set_retention(&self, by: &UserId, admin: bool, seconds: Option<u64>) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        if !admin && self.require_participant(by)? != ParticipantRole::Admin {
            return Err(ConversationError::OnlyAdminsSetRetention);
        }
        if seconds.is_some_and(|s| s == 0 || s > MAX_RETENTION_SECS) {
            return Err(ConversationError::RetentionRange);
        }
        if self.0.retention() == seconds {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::RetentionSet(
            events::RetentionSetV1 {
                retention_seconds: seconds,
            },
        )])
    }

    /// Expires the messages sent more than the retention period before `now`; nothing while
    /// a hold applies (refused, so that the sweeper destroys no key either).
    fn expire(&self, now: Millis) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        if let Some(reason) = self.0.hold() {
            return Err(ConversationError::Held(reason.to_owned()));
        }
        let Some(seconds) = self.0.retention() else {
            return Ok(vec![]);
        };
        let before = retention_cutoff(seconds, now);
        let upto_seq = self.0.sent_before(before);
        if upto_seq <= self.0.expired_upto() {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::MessagesExpired(
            events::MessagesExpiredV1 { before, upto_seq },
        )])
    }

    fn remove_participant(&self, by: &UserId, user: &UserId) -> Decision {
        let role = self.require_participant(by)?;
        if by != user && role != ParticipantRole::Admin {
            return Err(ConversationError::OnlyAdminsRemoveOthers);
        }
        if !self.is_participant(user) {
            return Err(ConversationError::ParticipantNotFound);
        }
        Ok(vec![ConversationEvent::ParticipantRemoved(
            ParticipantRemovedV1 {
                user_id: user.clone(),
            },
        )])
    }

    fn send_message(&self, send: Send<'_>) -> Decision {
        let Send {
            sender,
            message_id,
            content,
            temp_id,
            now,
            present,
            parent,
            mentions,
        } = send;
        self.require_participant(sender)?;
        if let Some(t) = temp_id
            && self.0.sent_for_temp_id(sender, t).is_some()
        {
            return Ok(vec![]);
        }
        let reply = parent.map(|p| self.reply(sender, p)).transpose()?;
        let mentions = self.mentions(mentions)?;
        let mut events = vec![ConversationEvent::MessageSent(MessageSent {
            message_id: message_id.clone(),
            sender_id: sender.clone(),
            content: Text::Sealed(content.clone()),
            temp_id: temp_id.cloned(),
            seq: self.0.last_seq() + 1,
            sent_at: now,
            reply,
            mentions,
        })];
        let mut seen = HashSet::new();
        let recipients: Vec<UserId> = present
            .iter()
            .filter(|u| *u != sender && self.is_participant(u) && seen.insert(*u))
            .cloned()
            .collect();
        if !recipients.is_empty() {
            events.push(ConversationEvent::MessagesDelivered(MessagesDeliveredV1 {
                recipients,
                messages: vec![MessageRefV1 {
                    message_id: message_id.clone(),
                    sender_id: sender.clone(),
                }],
                delivered_at: now,
            }));
        }
        Ok(events)
    }

    /// The thread a reply by `sender` to `parent` joins, as it stands with the reply: the
    /// parent is a live message of this conversation and not a reply itself.
    fn reply(&self, sender: &UserId, parent: &MessageId) -> Result<ReplyV1, ConversationError> {
        let p = self
            .live_message(parent)
            .map_err(|_| ConversationError::ParentNotFound)?;
        if p.reply {
            return Err(ConversationError::NestedReply);
        }
        let (replies, who) = self.0.thread(p.seq);
        let mut participant_ids: Vec<UserId> = who.into_iter().cloned().collect();
        if !participant_ids.contains(sender) {
            participant_ids.push(sender.clone());
        }
        Ok(ReplyV1 {
            parent_id: parent.clone(),
            reply_count: replies + 1,
            participant_ids,
        })
    }

    /// The users a message mentions, each once in the order given: participants only.
    fn mentions(&self, mentions: &[UserId]) -> Result<Vec<UserId>, ConversationError> {
        let mut seen = HashSet::new();
        let unique: Vec<UserId> = mentions
            .iter()
            .filter(|u| seen.insert(*u))
            .cloned()
            .collect();
        if unique.len() > MAX_MENTIONS {
            return Err(ConversationError::TooManyMentions);
        }
        if let Some(u) = unique.iter().find(|u| !self.is_participant(u)) {
            return Err(ConversationError::MentionNotParticipant(u.clone()));
        }
        Ok(unique)
    }

    /// Who may pin or unpin message `m`: a conversation admin (`role`), or its author.
    fn may_pin(
        by: &UserId,
        role: ParticipantRole,
        m: &MessageFacts<'_>,
    ) -> Result<(), ConversationError> {
        if m.sender != by && role != ParticipantRole::Admin {
            return Err(ConversationError::OnlyAuthorOrAdminPins);
        }
        Ok(())
    }

    fn pin_message(&self, by: &UserId, message_id: &MessageId, now: Millis) -> Decision {
        let role = self.require_participant(by)?;
        let m = self.live_message(message_id)?;
        Self::may_pin(by, role, &m)?;
        if self.0.pins().contains(&m.seq) {
            return Err(ConversationError::AlreadyPinned);
        }
        if self.0.pins().len() >= MAX_PINS {
            return Err(ConversationError::TooManyPins);
        }
        Ok(vec![ConversationEvent::MessagePinned(MessagePinnedV1 {
            message_id: message_id.clone(),
            pinned_by: by.clone(),
            pinned_at: now,
        })])
    }

    fn unpin_message(&self, by: &UserId, message_id: &MessageId, now: Millis) -> Decision {
        let role = self.require_participant(by)?;
        let m = self
            .0
            .message(message_id)
            .ok_or(ConversationError::MessageNotFound)?;
        Self::may_pin(by, role, &m)?;
        if !self.0.pins().contains(&m.seq) {
            return Err(ConversationError::NotPinned);
        }
        Ok(vec![ConversationEvent::MessageUnpinned(
            MessageUnpinnedV1 {
                message_id: message_id.clone(),
                unpinned_by: by.clone(),
                unpinned_at: now,
            },
        )])
    }

    fn edit_message(
        &self,
        by: &UserId,
        message_id: &MessageId,
        content: &SealedV1,
        now: Millis,
    ) -> Decision {
        self.require_participant(by)?;
        let m = self.live_message(message_id)?;
        if m.sender != by {
            return Err(ConversationError::OnlyAuthorEdits);
        }
        Ok(vec![ConversationEvent::MessageEdited(MessageEdited {
            message_id: message_id.clone(),
            content: Text::Sealed(content.clone()),
            edited_at: now,
        })])
    }

    fn delete_message(&self, by: &UserId, message_id: &MessageId, now: Millis) -> Decision {
        let role = self.require_participant(by)?;
        let m = self.live_message(message_id)?;
        if m.sender != by && role != ParticipantRole::Admin {
            return Err(ConversationError::OnlyAuthorOrAdminDeletes);
        }
        Ok(vec![ConversationEvent::MessageDeleted(MessageDeletedV1 {
            message_id: message_id.clone(),
            deleted_by: by.clone(),
            deleted_at: now,
        })])
    }

    fn deliver_pending(&self, to: &UserId, now: Millis) -> Decision {
        self.require_participant(to)?;
        let from = self.0.delivered_upto(to);
        let messages: Vec<MessageRefV1> = (from.saturating_add(1)..=self.0.last_seq())
            .filter_map(|seq| self.0.message_at(seq))
            .filter(|m| m.sender != to && !m.deleted)
            .take(MAX_DELIVERY_BATCH)
            .filter_map(|m| {
                Some(MessageRefV1 {
                    message_id: self.0.message_id(m.seq)?,
                    sender_id: m.sender.clone(),
                })
            })
            .collect();
        if messages.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::MessagesDelivered(
            MessagesDeliveredV1 {
                recipients: vec![to.clone()],
                messages,
                delivered_at: now,
            },
        )])
    }

    fn mark_read(&self, reader: &UserId, message_ids: &[MessageId], now: Millis) -> Decision {
        if message_ids.is_empty() || message_ids.len() > MAX_READ_IDS {
            return Err(ConversationError::ReadIdCount);
        }
        self.require_participant(reader)?;
        let mut seen = HashSet::new();
        let mut messages = Vec::new();
        for id in message_ids {
            let m = self
                .0
                .message(id)
                .ok_or(ConversationError::MessageNotFound)?;
            if m.sender == reader
                || m.deleted
                || self.0.has_read(reader, m.seq)
                || !seen.insert(m.seq)
            {
                continue;
            }
            messages.push(MessageRefV1 {
                message_id: id.clone(),
                sender_id: m.sender.clone(),
            });
        }
        if messages.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::MessagesRead(MessagesReadV1 {
            reader: reader.clone(),
            messages,
            read_at: now,
        })])
    }

    fn add_reaction(
        &self,
        by: &UserId,
        message_id: &MessageId,
        reaction_id: &ReactionId,
        emoji: &Emoji,
        now: Millis,
    ) -> Decision {
        self.require_participant(by)?;
        let m = self.live_message(message_id)?;
        if self.0.reaction_key(m.seq, by, emoji).is_some() {
            return Ok(vec![]);
        }
        Ok(vec![ConversationEvent::ReactionAdded(ReactionAddedV1 {
            reaction_id: reaction_id.clone(),
            message_id: message_id.clone(),
            user_id: by.clone(),
            emoji: emoji.clone(),
            created_at: now,
        })])
    }

    fn remove_reaction(
        &self,
        by: &UserId,
        message_id: &MessageId,
        reaction_id: &ReactionId,
    ) -> Decision {
        self.require_participant(by)?;
        let m = self.live_message(message_id)?;
        let (_, owner) = self
            .0
            .reaction(reaction_id)
            .filter(|(seq, _)| *seq == m.seq)
            .ok_or(ConversationError::ReactionNotFound)?;
        if owner != by {
            return Err(ConversationError::OnlyOwnerRemovesReaction);
        }
        Ok(vec![ConversationEvent::ReactionRemoved(
            ReactionRemovedV1 {
                reaction_id: reaction_id.clone(),
                message_id: message_id.clone(),
                user_id: by.clone(),
            },
        )])
    }
}

/// Decides a command against any [`Facts`].
pub(crate) fn decide(facts: &impl Facts, command: &ConversationCommand) -> Decision {
    let rules = Rules(facts);
    use ConversationCommand as C;
    match command {
        C::Create {
            id,
            title,
            creator,
            participants,
        } => rules.create(id, title.as_ref(), creator, participants),
        C::AddParticipant { by, user } => rules.add_participant(by, user),
        C::RemoveParticipant { by, user } => rules.remove_participant(by, user),
        C::SendMessage {
            sender,
            message_id,
            content,
            temp_id,
            now,
            present,
            parent,
            mentions,
        } => rules.send_message(Send {
            sender,
            message_id,
            content,
            temp_id: temp_id.as_ref(),
            now: *now,
            present,
            parent: parent.as_ref(),
            mentions,
        }),
        C::PinMessage {
            by,
            message_id,
            now,
        } => rules.pin_message(by, message_id, *now),
        C::UnpinMessage {
            by,
            message_id,
            now,
        } => rules.unpin_message(by, message_id, *now),
        C::EditMessage {
            by,
            message_id,
            content,
            now,
        } => rules.edit_message(by, message_id, content, *now),
        C::DeleteMessage {
            by,
            message_id,
            now,
        } => rules.delete_message(by, message_id, *now),
        C::DeliverPending { to, now } => rules.deliver_pending(to, *now),
        C::MarkRead {
            reader,
            message_ids,
            now,
        } => rules.mark_read(reader, message_ids, *now),
        C::AddReaction {
            by,
            message_id,
            reaction_id,
            emoji,
            now,
        } => rules.add_reaction(by, message_id, reaction_id, emoji, *now),
        C::RemoveReaction {
            by,
            message_id,
            reaction_id,
        } => rules.remove_reaction(by, message_id, reaction_id),
        C::Hold { reason } => rules.hold(reason),
        C::Release => rules.release(),
        C::SetRetention { by, admin, seconds } => rules.set_retention(by, *admin, *seconds),
        C::Expire { now } => rules.expire(*now),
    }
}

impl Decide for Conversation {
    type Command = ConversationCommand;
    type Event = ConversationEvent;
    type Error = ConversationError;

    fn decide(&self, command: &ConversationCommand) -> Decision {
        decide(self, command)
    }

    fn evolve(&mut self, event: &ConversationEvent) {
        Conversation::evolve(self, event);
    }

    fn heap_bytes(&self) -> usize {
        Conversation::heap_bytes(self)
    }
}

cqrs_aggregate!(Conversation, "conversation");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Ev, sealed};
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Conversation>;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }
    fn conv() -> ConversationId {
        ConversationId::parse("conv_1").expect("valid")
    }
    fn msg(s: &str) -> MessageId {
        MessageId::parse(s).expect("valid")
    }
    fn created() -> Vec<Ev<ConversationEvent>> {
        vec![
            Ev(ConversationEvent::Created(ConversationCreatedV1 {
                conversation_id: conv(),
                title: Some("T".into()),
                created_by: u("ann"),
            })),
            added("ann", ParticipantRole::Admin),
            added("bob", ParticipantRole::Member),
        ]
    }
    fn added(user: &str, role: ParticipantRole) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
            user_id: u(user),
            role,
        }))
    }
    fn send(sender: &str, id: &str, temp: Option<&str>) -> ConversationCommand {
        ConversationCommand::SendMessage {
            sender: u(sender),
            message_id: msg(id),
            content: sealed("hi"),
            temp_id: temp.map(|t| TempId::parse(t).expect("valid")),
            now: 5,
            present: vec![],
            parent: None,
            mentions: vec![],
        }
    }
    fn sent(sender: &str, id: &str, temp: Option<&str>, seq: u64) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::MessageSent(MessageSent {
            message_id: msg(id),
            sender_id: u(sender),
            content: Text::Sealed(sealed("hi")),
            temp_id: temp.map(|t| TempId::parse(t).expect("valid")),
            seq,
            sent_at: 5,
            reply: None,
            mentions: Vec::new(),
        }))
    }

    #[test]
    fn create_makes_the_creator_admin_and_dedupes_participants() {
        Given::with(())
            .given_no_previous_events()
            .when(ConversationCommand::Create {
                id: conv(),
                title: Some(" T ".into()),
                creator: u("ann"),
                participants: vec![u("bob"), u("ann"), u("bob")],
            })
            .then_expect_events(created());
    }

    #[test]
    fn create_twice_is_a_conflict() {
        Given::with(())
            .given(created())
            .when(ConversationCommand::Create {
                id: conv(),
                title: None,
                creator: u("ann"),
                participants: vec![],
            })
            .then_expect_error(ConversationError::AlreadyExists);
    }

    #[test]
    fn messages_get_consecutive_seq() {
        Given::with(())
            .given(created())
            .and(vec![sent("ann", "msg_1", None, 1)])
            .when(send("bob", "msg_2", None))
            .then_expect_events(vec![sent("bob", "msg_2", None, 2)]);
    }

    #[test]
    fn a_repeated_temp_id_creates_nothing() {
        Given::with(())
            .given(created())
            .and(vec![sent("bob", "msg_1", Some("t1"), 1)])
            .when(send("bob", "msg_2", Some("t1")))
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_same_temp_id_from_another_sender_is_a_new_message() {
        Given::with(())
            .given(created())
            .and(vec![sent("bob", "msg_1", Some("t1"), 1)])
            .when(send("ann", "msg_2", Some("t1")))
            .then_expect_events(vec![sent("ann", "msg_2", Some("t1"), 2)]);
    }

    #[test]
    fn a_non_participant_cannot_send() {
        Given::with(())
            .given(created())
            .when(send("eve", "msg_1", None))
            .then_expect_error(ConversationError::NotParticipant);
    }

    #[test]
    fn sending_to_an_unknown_conversation_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(send("ann", "msg_1", None))
            .then_expect_error(ConversationError::NotFound);
    }

    #[test]
    fn a_removed_participant_cannot_send() {
        Given::with(())
            .given(created())
            .and(vec![Ev(ConversationEvent::ParticipantRemoved(
                ParticipantRemovedV1 { user_id: u("bob") },
            ))])
            .when(send("bob", "msg_1", None))
            .then_expect_error(ConversationError::NotParticipant);
    }

    #[test]
    fn only_admins_add_participants_and_adding_twice_is_a_no_op() {
        Given::with(())
            .given(created())
            .when(ConversationCommand::AddParticipant {
                by: u("ann"),
                user: u("cat"),
            })
            .then_expect_events(vec![added("cat", ParticipantRole::Member)]);
        Given::with(())
            .given(created())
            .when(ConversationCommand::AddParticipant {
                by: u("bob"),
                user: u("cat"),
            })
            .then_expect_error(ConversationError::OnlyAdminsAdd);
        Given::with(())
            .given(created())
            .when(ConversationCommand::AddParticipant {
                by: u("ann"),
                user: u("bob"),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn members_may_leave_but_not_remove_others() {
        Given::with(())
            .given(created())
            .when(ConversationCommand::RemoveParticipant {
                by: u("bob"),
                user: u("bob"),
            })
            .then_expect_events(vec![Ev(ConversationEvent::ParticipantRemoved(
                ParticipantRemovedV1 { user_id: u("bob") },
            ))]);
        Given::with(())
            .given(created())
            .when(ConversationCommand::RemoveParticipant {
                by: u("bob"),
                user: u("ann"),
            })
            .then_expect_error(ConversationError::OnlyAdminsRemoveOthers);
        Given::with(())
            .given(created())
            .when(ConversationCommand::RemoveParticipant {
                by: u("ann"),
                user: u("zed"),
            })
            .then_expect_error(ConversationError::ParticipantNotFound);
    }

    // ------------------------------------------------------------ edits, deletes, receipts

    fn removed(user: &str) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::ParticipantRemoved(
            ParticipantRemovedV1 { user_id: u(user) },
        ))
    }
    fn with_messages() -> Vec<Ev<ConversationEvent>> {
        let mut e = created();
        e.push(sent("ann", "msg_1", None, 1));
        e.push(sent("bob", "msg_2", None, 2));
        e
    }
    fn content(s: &str) -> SealedV1 {
        sealed(s)
    }
    fn edit(by: &str, id: &str) -> ConversationCommand {
        ConversationCommand::EditMessage {
            by: u(by),
            message_id: msg(id),
            content: content("new"),
            now: 9,
        }
    }
    fn delete(by: &str, id: &str) -> ConversationCommand {
        ConversationCommand::DeleteMessage {
            by: u(by),
            message_id: msg(id),
            now: 9,
        }
    }
    fn deleted(by: &str, id: &str) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::MessageDeleted(MessageDeletedV1 {
            message_id: msg(id),
            deleted_by: u(by),
            deleted_at: 9,
        }))
    }
    fn mref(id: &str, sender: &str) -> MessageRefV1 {
        MessageRefV1 {
            message_id: msg(id),
            sender_id: u(sender),
        }
    }
    fn emoji(s: &str) -> Emoji {
        Emoji::parse(s).expect("valid")
    }
    fn rid(s: &str) -> ReactionId {
        ReactionId::parse(s).expect("valid")
    }

    #[test]
    fn only_the_author_edits() {
        Given::with(())
            .given(with_messages())
            .when(edit("ann", "msg_1"))
            .then_expect_events(vec![Ev(ConversationEvent::MessageEdited(MessageEdited {
                message_id: msg("msg_1"),
                content: Text::Sealed(content("new")),
                edited_at: 9,
            }))]);
        Given::with(())
            .given(with_messages())
            .when(edit("bob", "msg_1"))
            .then_expect_error(ConversationError::OnlyAuthorEdits);
        Given::with(())
            .given(with_messages())
            .when(edit("ann", "msg_9"))
            .then_expect_error(ConversationError::MessageNotFound);
        Given::with(())
            .given(with_messages())
            .when(edit("eve", "msg_1"))
            .then_expect_error(ConversationError::NotParticipant);
    }

    #[test]
    fn a_deleted_message_cannot_be_edited_deleted_or_reacted_to() {
        let given = || {
            let mut e = with_messages();
            e.push(deleted("ann", "msg_1"));
            e
        };
        Given::with(())
            .given(given())
            .when(edit("ann", "msg_1"))
            .then_expect_error(ConversationError::MessageNotFound);
        Given::with(())
            .given(given())
            .when(delete("ann", "msg_1"))
            .then_expect_error(ConversationError::MessageNotFound);
        Given::with(())
            .given(given())
            .when(ConversationCommand::AddReaction {
                by: u("bob"),
                message_id: msg("msg_1"),
                reaction_id: rid("rxn_1"),
                emoji: emoji("👍"),
                now: 9,
            })
            .then_expect_error(ConversationError::MessageNotFound);
    }

    #[test]
    fn the_author_or_an_admin_deletes() {
        Given::with(())
            .given(with_messages())
            .when(delete("bob", "msg_2"))
            .then_expect_events(vec![deleted("bob", "msg_2")]);
        Given::with(())
            .given(with_messages())
            .when(delete("ann", "msg_2"))
            .then_expect_events(vec![deleted("ann", "msg_2")]);
        Given::with(())
            .given(with_messages())
            .when(delete("bob", "msg_1"))
            .then_expect_error(ConversationError::OnlyAuthorOrAdminDeletes);
    }

    #[test]
    fn a_send_is_delivered_to_present_participants_other_than_the_sender() {
        let cmd = ConversationCommand::SendMessage {
            sender: u("ann"),
            message_id: msg("msg_1"),
            content: content("hi"),
            temp_id: None,
            now: 5,
            present: vec![u("ann"), u("bob"), u("bob"), u("eve")],
            parent: None,
            mentions: vec![],
        };
        Given::with(())
            .given(created())
            .when(cmd)
            .then_expect_events(vec![
                sent("ann", "msg_1", None, 1),
                Ev(ConversationEvent::MessagesDelivered(MessagesDeliveredV1 {
                    recipients: vec![u("bob")],
                    messages: vec![mref("msg_1", "ann")],
                    delivered_at: 5,
                })),
            ]);
    }

    #[test]
    fn joining_delivers_what_was_not_yet_delivered_once() {
        let pending = |to: &str| ConversationCommand::DeliverPending { to: u(to), now: 7 };
        let mut given = created();
        given.extend([
            sent("ann", "msg_1", None, 1),
            sent("bob", "msg_2", None, 2),
            sent("ann", "msg_3", None, 3),
        ]);
        given.push(deleted("ann", "msg_3"));
        let delivered = Ev(ConversationEvent::MessagesDelivered(MessagesDeliveredV1 {
            recipients: vec![u("bob")],
            messages: vec![mref("msg_1", "ann")],
            delivered_at: 7,
        }));
        Given::with(())
            .given(given.clone())
            .when(pending("bob"))
            .then_expect_events(vec![delivered.clone()]);
        given.push(delivered);
        Given::with(())
            .given(given.clone())
            .when(pending("bob"))
            .then_expect_events(vec![]);
        given.push(sent("ann", "msg_4", None, 4));
        Given::with(())
            .given(given)
            .when(pending("bob"))
            .then_expect_events(vec![Ev(ConversationEvent::MessagesDelivered(
                MessagesDeliveredV1 {
                    recipients: vec![u("bob")],
                    messages: vec![mref("msg_4", "ann")],
                    delivered_at: 7,
                },
            ))]);
        Given::with(())
            .given(created())
            .when(pending("eve"))
            .then_expect_error(ConversationError::NotParticipant);
    }

    #[test]
    fn reads_are_idempotent_ignore_own_messages_and_check_ids() {
        let read = |ids: &[&str]| ConversationCommand::MarkRead {
            reader: u("bob"),
            message_ids: ids.iter().map(|i| msg(i)).collect(),
            now: 8,
        };
        let receipt = Ev(ConversationEvent::MessagesRead(MessagesReadV1 {
            reader: u("bob"),
            messages: vec![mref("msg_1", "ann")],
            read_at: 8,
        }));
        Given::with(())
            .given(with_messages())
            .when(read(&["msg_1", "msg_2", "msg_1"]))
            .then_expect_events(vec![receipt.clone()]);
        let mut given = with_messages();
        given.push(receipt);
        Given::with(())
            .given(given)
            .when(read(&["msg_1"]))
            .then_expect_events(vec![]);
        Given::with(())
            .given(with_messages())
            .when(read(&["msg_9"]))
            .then_expect_error(ConversationError::MessageNotFound);
        Given::with(())
            .given(with_messages())
            .when(read(&[]))
            .then_expect_error(ConversationError::ReadIdCount);
        assert_eq!(
            ConversationError::ReadIdCount.to_string(),
            "messageIds must list 1 to 100 ids"
        );
        Given::with(())
            .given(with_messages())
            .when(ConversationCommand::MarkRead {
                reader: u("eve"),
                message_ids: vec![msg("msg_1")],
                now: 8,
            })
            .then_expect_error(ConversationError::NotParticipant);
    }

    #[test]
    fn reactions_are_idempotent_per_user_message_and_emoji_and_removed_by_their_owner() {
        let add = |by: &str, e: &str, id: &str| ConversationCommand::AddReaction {
            by: u(by),
            message_id: msg("msg_1"),
            reaction_id: rid(id),
            emoji: emoji(e),
            now: 9,
        };
        let added = Ev(ConversationEvent::ReactionAdded(ReactionAddedV1 {
            reaction_id: rid("rxn_1"),
            message_id: msg("msg_1"),
            user_id: u("bob"),
            emoji: emoji("👍"),
            created_at: 9,
        }));
        Given::with(())
            .given(with_messages())
            .when(add("bob", "👍", "rxn_1"))
            .then_expect_events(vec![added.clone()]);
        let mut given = with_messages();
        given.push(added);
        Given::with(())
            .given(given.clone())
            .when(add("bob", "👍", "rxn_2"))
            .then_expect_events(vec![]);
        Given::with(())
            .given(given.clone())
            .when(add("ann", "👍", "rxn_2"))
            .then_expect_events(vec![Ev(ConversationEvent::ReactionAdded(
                ReactionAddedV1 {
                    reaction_id: rid("rxn_2"),
                    message_id: msg("msg_1"),
                    user_id: u("ann"),
                    emoji: emoji("👍"),
                    created_at: 9,
                },
            ))]);
        let remove = |by: &str, id: &str, m: &str| ConversationCommand::RemoveReaction {
            by: u(by),
            message_id: msg(m),
            reaction_id: rid(id),
        };
        Given::with(())
            .given(given.clone())
            .when(remove("bob", "rxn_1", "msg_1"))
            .then_expect_events(vec![Ev(ConversationEvent::ReactionRemoved(
                ReactionRemovedV1 {
                    reaction_id: rid("rxn_1"),
                    message_id: msg("msg_1"),
                    user_id: u("bob"),
                },
            ))]);
        Given::with(())
            .given(given.clone())
            .when(remove("ann", "rxn_1", "msg_1"))
            .then_expect_error(ConversationError::OnlyOwnerRemovesReaction);
        Given::with(())
            .given(given.clone())
            .when(remove("bob", "rxn_9", "msg_1"))
            .then_expect_error(ConversationError::ReactionNotFound);
        Given::with(())
            .given(given)
            .when(remove("bob", "rxn_1", "msg_2"))
            .then_expect_error(ConversationError::ReactionNotFound);
    }

    #[test]
    fn a_removed_participant_can_do_nothing() {
        let mut given = with_messages();
        given.push(removed("bob"));
        Given::with(())
            .given(given.clone())
            .when(edit("bob", "msg_2"))
            .then_expect_error(ConversationError::NotParticipant);
        Given::with(())
            .given(given)
            .when(ConversationCommand::MarkRead {
                reader: u("bob"),
                message_ids: vec![msg("msg_1")],
                now: 1,
            })
            .then_expect_error(ConversationError::NotParticipant);
    }

    fn retention(by: &str, admin: bool, seconds: Option<u64>) -> ConversationCommand {
        ConversationCommand::SetRetention {
            by: u(by),
            admin,
            seconds,
        }
    }
    fn retention_set(seconds: Option<u64>) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::RetentionSet(events::RetentionSetV1 {
            retention_seconds: seconds,
        }))
    }

    #[test]
    fn retention_is_set_by_a_conversation_admin_or_an_admin_within_range() {
        Given::with(())
            .given(created())
            .when(retention("ann", false, Some(60)))
            .then_expect_events(vec![retention_set(Some(60))]);
        Given::with(())
            .given(created())
            .when(retention("zed", true, Some(60)))
            .then_expect_events(vec![retention_set(Some(60))]);
        Given::with(())
            .given(created())
            .when(retention("bob", false, Some(60)))
            .then_expect_error(ConversationError::OnlyAdminsSetRetention);
        Given::with(())
            .given(created())
            .when(retention("zed", false, Some(60)))
            .then_expect_error(ConversationError::NotParticipant);
        for bad in [0, MAX_RETENTION_SECS + 1] {
            Given::with(())
                .given(created())
                .when(retention("ann", false, Some(bad)))
                .then_expect_error(ConversationError::RetentionRange);
        }
        Given::with(())
            .given(created())
            .and(vec![retention_set(Some(60))])
            .when(retention("ann", false, Some(60)))
            .then_expect_events(vec![]);
        Given::with(())
            .given(created())
            .and(vec![retention_set(Some(60))])
            .when(retention("ann", false, None))
            .then_expect_events(vec![retention_set(None)]);
        Given::with(())
            .given_no_previous_events()
            .when(retention("ann", true, Some(60)))
            .then_expect_error(ConversationError::NotFound);
    }

    /// Three messages sent at 10 s, 20 s and 30 s, a retention of 15 s.
    fn timed() -> (Vec<Ev<ConversationEvent>>, Vec<MessageId>) {
        let ids: Vec<MessageId> = [10_000, 20_000, 30_000]
            .into_iter()
            .map(|t| MessageId::from_ulid(ulid::Ulid::from_parts(t, 1)))
            .collect();
        let mut given = created();
        for (i, id) in ids.iter().enumerate() {
            given.push(Ev(ConversationEvent::MessageSent(MessageSent {
                message_id: id.clone(),
                sender_id: u("bob"),
                content: Text::Sealed(sealed("hi")),
                temp_id: None,
                seq: i as u64 + 1,
                sent_at: id.created_at().expect("timed"),
                reply: None,
                mentions: Vec::new(),
            })));
        }
        given.push(retention_set(Some(15)));
        (given, ids)
    }

    fn expired(before: Millis, upto_seq: u64) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::MessagesExpired(
            events::MessagesExpiredV1 { before, upto_seq },
        ))
    }

    #[test]
    fn expiry_covers_what_is_older_than_the_period_once() {
        let (given, _) = timed();
        Given::with(())
            .given(given.clone())
            .when(ConversationCommand::Expire { now: 20_000 })
            .then_expect_events(vec![]);
        Given::with(())
            .given(given.clone())
            .when(ConversationCommand::Expire { now: 36_000 })
            .then_expect_events(vec![expired(21_000, 2)]);
        Given::with(())
            .given(given.clone())
            .and(vec![expired(21_000, 2)])
            .when(ConversationCommand::Expire { now: 40_000 })
            .then_expect_events(vec![]);
        Given::with(())
            .given(given.clone())
            .and(vec![expired(21_000, 2)])
            .when(ConversationCommand::Expire { now: 46_000 })
            .then_expect_events(vec![expired(31_000, 3)]);
        let mut forever = given;
        forever.push(retention_set(None));
        Given::with(())
            .given(forever)
            .when(ConversationCommand::Expire { now: 99_000 })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_hold_stops_expiry_until_released() {
        let (mut given, _) = timed();
        given.push(Ev(ConversationEvent::Held(events::HoldPlacedV1 {
            reason: "case 7".into(),
        })));
        Given::with(())
            .given(given.clone())
            .when(ConversationCommand::Expire { now: 36_000 })
            .then_expect_error(ConversationError::Held("case 7".into()));
        given.push(Ev(ConversationEvent::Released(events::HoldReleasedV1 {})));
        Given::with(())
            .given(given)
            .when(ConversationCommand::Expire { now: 36_000 })
            .then_expect_events(vec![expired(21_000, 2)]);
    }

    #[test]
    fn an_expired_message_can_no_longer_be_edited_deleted_or_reacted_to() {
        let (mut given, ids) = timed();
        given.push(expired(21_000, 2));
        let old = ids[1].clone();
        Given::with(())
            .given(given.clone())
            .when(ConversationCommand::EditMessage {
                by: u("bob"),
                message_id: old.clone(),
                content: sealed("new"),
                now: 40_000,
            })
            .then_expect_error(ConversationError::MessageNotFound);
        Given::with(())
            .given(given.clone())
            .when(ConversationCommand::DeleteMessage {
                by: u("bob"),
                message_id: old,
                now: 40_000,
            })
            .then_expect_error(ConversationError::MessageNotFound);
        Given::with(())
            .given(given)
            .when(ConversationCommand::DeleteMessage {
                by: u("bob"),
                message_id: ids[2].clone(),
                now: 40_000,
            })
            .then_expect_events(vec![Ev(ConversationEvent::MessageDeleted(
                MessageDeletedV1 {
                    message_id: ids[2].clone(),
                    deleted_by: u("bob"),
                    deleted_at: 40_000,
                },
            ))]);
    }

    fn reply(sender: &str, id: &str, parent: &str, mentions: &[&str]) -> ConversationCommand {
        let ConversationCommand::SendMessage {
            sender,
            message_id,
            content,
            temp_id,
            now,
            present,
            ..
        } = send(sender, id, None)
        else {
            unreachable!("send builds a SendMessage")
        };
        ConversationCommand::SendMessage {
            sender,
            message_id,
            content,
            temp_id,
            now,
            present,
            parent: (!parent.is_empty()).then(|| msg(parent)),
            mentions: mentions.iter().map(|m| u(m)).collect(),
        }
    }
    fn replied(
        sender: &str,
        id: &str,
        seq: u64,
        thread: Option<(&str, u64, &[&str])>,
        mentions: &[&str],
    ) -> Ev<ConversationEvent> {
        let Ev(ConversationEvent::MessageSent(mut m)) = sent(sender, id, None, seq) else {
            unreachable!("sent builds a MessageSent")
        };
        m.reply = thread.map(|(parent, count, who)| ReplyV1 {
            parent_id: msg(parent),
            reply_count: count,
            participant_ids: who.iter().map(|w| u(w)).collect(),
        });
        m.mentions = mentions.iter().map(|w| u(w)).collect();
        Ev(ConversationEvent::MessageSent(m))
    }
    fn pin(by: &str, id: &str) -> ConversationCommand {
        ConversationCommand::PinMessage {
            by: u(by),
            message_id: msg(id),
            now: 7,
        }
    }
    fn unpin(by: &str, id: &str) -> ConversationCommand {
        ConversationCommand::UnpinMessage {
            by: u(by),
            message_id: msg(id),
            now: 8,
        }
    }
    fn pinned(by: &str, id: &str) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::MessagePinned(MessagePinnedV1 {
            message_id: msg(id),
            pinned_by: u(by),
            pinned_at: 7,
        }))
    }
    fn with_cat() -> Vec<Ev<ConversationEvent>> {
        let mut given = created();
        given.push(added("cat", ParticipantRole::Member));
        given
    }

    #[test]
    fn replies_carry_the_thread_as_it_stands() {
        Given::with(())
            .given(with_cat())
            .and(vec![
                sent("ann", "msg_1", None, 1),
                replied("bob", "msg_2", 2, Some(("msg_1", 1, &["bob"])), &[]),
                replied("cat", "msg_3", 3, Some(("msg_1", 2, &["bob", "cat"])), &[]),
            ])
            .when(reply("bob", "msg_4", "msg_1", &[]))
            .then_expect_events(vec![replied(
                "bob",
                "msg_4",
                4,
                Some(("msg_1", 3, &["bob", "cat"])),
                &[],
            )]);
    }

    #[test]
    fn a_reply_to_a_reply_is_refused() {
        Given::with(())
            .given(created())
            .and(vec![
                sent("ann", "msg_1", None, 1),
                replied("bob", "msg_2", 2, Some(("msg_1", 1, &["bob"])), &[]),
            ])
            .when(reply("ann", "msg_3", "msg_2", &[]))
            .then_expect_error(ConversationError::NestedReply);
    }

    #[test]
    fn a_reply_to_an_unknown_deleted_or_foreign_parent_is_refused() {
        for parent in ["msg_9", "msg_1"] {
            Given::with(())
                .given(created())
                .and(vec![sent("ann", "msg_1", None, 1), deleted("ann", "msg_1")])
                .when(reply("bob", "msg_2", parent, &[]))
                .then_expect_error(ConversationError::ParentNotFound);
        }
        // A message of another conversation is not in this one's state: the same refusal.
        Given::with(())
            .given(created())
            .when(reply("bob", "msg_2", "msg_elsewhere", &[]))
            .then_expect_error(ConversationError::ParentNotFound);
        assert_eq!(
            ConversationError::ParentNotFound.code(),
            api::ErrorCode::NotFound
        );
        assert_eq!(
            ConversationError::NestedReply.code(),
            api::ErrorCode::InvalidInput
        );
    }

    #[test]
    fn a_retried_reply_creates_nothing_even_once_its_parent_is_gone() {
        let mut retry = reply("bob", "msg_3", "msg_1", &[]);
        if let ConversationCommand::SendMessage { temp_id, .. } = &mut retry {
            *temp_id = Some(TempId::parse("t1").expect("valid"));
        }
        let Ev(ConversationEvent::MessageSent(mut first)) =
            replied("bob", "msg_2", 2, Some(("msg_1", 1, &["bob"])), &[])
        else {
            unreachable!("replied builds a MessageSent")
        };
        first.temp_id = Some(TempId::parse("t1").expect("valid"));
        Given::with(())
            .given(created())
            .and(vec![
                sent("ann", "msg_1", None, 1),
                Ev(ConversationEvent::MessageSent(first)),
                deleted("ann", "msg_1"),
            ])
            .when(retry)
            .then_expect_events(vec![]);
    }

    #[test]
    fn mentions_name_participants_once_each() {
        Given::with(())
            .given(with_cat())
            .when(reply("ann", "msg_1", "", &["bob", "cat", "bob"]))
            .then_expect_events(vec![replied("ann", "msg_1", 1, None, &["bob", "cat"])]);
    }

    #[test]
    fn a_mention_of_a_non_participant_is_refused() {
        Given::with(())
            .given(created())
            .when(reply("ann", "msg_1", "", &["bob", "eve"]))
            .then_expect_error(ConversationError::MentionNotParticipant(u("eve")));
        let too_many: Vec<String> = (0..=MAX_MENTIONS).map(|i| format!("u{i}")).collect();
        let names: Vec<&str> = too_many.iter().map(String::as_str).collect();
        Given::with(())
            .given(created())
            .when(reply("ann", "msg_1", "", &names))
            .then_expect_error(ConversationError::TooManyMentions);
        assert_eq!(
            ConversationError::MentionNotParticipant(u("eve")).code(),
            api::ErrorCode::InvalidInput
        );
    }

    #[test]
    fn the_author_or_an_admin_pins_and_unpins() {
        Given::with(())
            .given(created())
            .and(vec![sent("bob", "msg_1", None, 1)])
            .when(pin("bob", "msg_1"))
            .then_expect_events(vec![pinned("bob", "msg_1")]);
        Given::with(())
            .given(created())
            .and(vec![sent("bob", "msg_1", None, 1), pinned("bob", "msg_1")])
            .when(unpin("ann", "msg_1"))
            .then_expect_events(vec![Ev(ConversationEvent::MessageUnpinned(
                MessageUnpinnedV1 {
                    message_id: msg("msg_1"),
                    unpinned_by: u("ann"),
                    unpinned_at: 8,
                },
            ))]);
    }

    #[test]
    fn a_member_cannot_pin_someone_elses_message() {
        Given::with(())
            .given(with_cat())
            .and(vec![sent("cat", "msg_1", None, 1)])
            .when(pin("bob", "msg_1"))
            .then_expect_error(ConversationError::OnlyAuthorOrAdminPins);
        Given::with(())
            .given(with_cat())
            .and(vec![sent("cat", "msg_1", None, 1), pinned("cat", "msg_1")])
            .when(unpin("bob", "msg_1"))
            .then_expect_error(ConversationError::OnlyAuthorOrAdminPins);
        Given::with(())
            .given(created())
            .and(vec![sent("ann", "msg_1", None, 1)])
            .when(pin("eve", "msg_1"))
            .then_expect_error(ConversationError::NotParticipant);
    }

    #[test]
    fn a_double_pin_a_missing_pin_and_a_deleted_message_are_refused() {
        Given::with(())
            .given(created())
            .and(vec![sent("ann", "msg_1", None, 1), pinned("ann", "msg_1")])
            .when(pin("ann", "msg_1"))
            .then_expect_error(ConversationError::AlreadyPinned);
        Given::with(())
            .given(created())
            .and(vec![sent("ann", "msg_1", None, 1)])
            .when(unpin("ann", "msg_1"))
            .then_expect_error(ConversationError::NotPinned);
        Given::with(())
            .given(created())
            .and(vec![sent("ann", "msg_1", None, 1), deleted("ann", "msg_1")])
            .when(pin("ann", "msg_1"))
            .then_expect_error(ConversationError::MessageNotFound);
        // Deleting a pinned message drops its pin.
        Given::with(())
            .given(created())
            .and(vec![
                sent("ann", "msg_1", None, 1),
                pinned("ann", "msg_1"),
                deleted("ann", "msg_1"),
            ])
            .when(unpin("ann", "msg_1"))
            .then_expect_error(ConversationError::NotPinned);
        assert_eq!(
            ConversationError::AlreadyPinned.code(),
            api::ErrorCode::Conflict
        );
    }

    #[test]
    fn pins_are_bounded() {
        let mut given = vec![];
        for i in 1..=MAX_PINS as u64 {
            given.push(sent("ann", &format!("msg_{i}"), None, i));
            given.push(pinned("ann", &format!("msg_{i}")));
        }
        given.push(sent("ann", "msg_last", None, MAX_PINS as u64 + 1));
        Given::with(())
            .given(created())
            .and(given)
            .when(pin("ann", "msg_last"))
            .then_expect_error(ConversationError::TooManyPins);
    }
}
