//! The conversation aggregate: creation, participants, messages. It decides `seq` (the
//! message's position in the conversation, 1, 2, 3… with no gap) and `tempId` idempotency.

use super::{DomainError, check_text, cqrs_aggregate};
use events::{
    Content, ConversationCreatedV1, ConversationEvent, ConversationId, MessageId, MessageSentV1,
    ParticipantAddedV1, ParticipantRemovedV1, ParticipantRole, TempId, UserId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const MAX_TITLE_CHARS: usize = 200;
/// Most participants a conversation may be created with.
pub const MAX_INITIAL_PARTICIPANTS: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: Option<ConversationId>,
    pub title: Option<String>,
    /// Active participants and their roles.
    pub participants: BTreeMap<UserId, ParticipantRole>,
    /// `seq` of the last message.
    pub last_seq: u64,
    /// First message of each (sender, tempId), for idempotent retries.
    #[serde(skip)]
    pub by_temp_id: HashMap<(UserId, TempId), SentRef>,
}

/// What a retry with the same tempId answers: the first message's id, seq and time.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        content: Content,
        temp_id: Option<TempId>,
        now: events::Millis,
    },
}

impl Conversation {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    pub fn is_participant(&self, user: &UserId) -> bool {
        self.participants.contains_key(user)
    }

    /// The message an earlier send with this (sender, tempId) created, if any.
    pub fn message_for_temp_id(&self, sender: &UserId, temp_id: &TempId) -> Option<&SentRef> {
        self.by_temp_id.get(&(sender.clone(), temp_id.clone()))
    }

    fn require_participant(&self, user: &UserId) -> Result<ParticipantRole, DomainError> {
        if !self.exists() {
            return Err(DomainError::NotFound("Conversation"));
        }
        self.participants
            .get(user)
            .copied()
            .ok_or(DomainError::NotParticipant)
    }
}

impl super::Decide for Conversation {
    type Command = ConversationCommand;
    type Event = ConversationEvent;

    fn decide(&self, command: &ConversationCommand) -> Result<Vec<ConversationEvent>, DomainError> {
        use ConversationCommand as C;
        match command {
            C::Create {
                id,
                title,
                creator,
                participants,
            } => {
                if self.exists() {
                    return Err(DomainError::Conflict("Conversation already exists"));
                }
                if let Some(t) = title {
                    check_text("title", t, MAX_TITLE_CHARS)?;
                }
                if participants.len() > MAX_INITIAL_PARTICIPANTS {
                    return Err(DomainError::InvalidInput(format!(
                        "participantIds must list at most {MAX_INITIAL_PARTICIPANTS} users"
                    )));
                }
                let mut events = vec![
                    ConversationEvent::Created(ConversationCreatedV1 {
                        conversation_id: id.clone(),
                        title: title.as_ref().map(|t| t.trim().to_owned()),
                        created_by: creator.clone(),
                    }),
                    ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
                        user_id: creator.clone(),
                        role: ParticipantRole::Admin,
                    }),
                ];
                let mut seen = std::collections::HashSet::from([creator]);
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
            C::AddParticipant { by, user } => {
                if self.require_participant(by)? != ParticipantRole::Admin {
                    return Err(DomainError::Unauthorized(
                        "Only a conversation admin can add participants",
                    ));
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
            C::RemoveParticipant { by, user } => {
                let role = self.require_participant(by)?;
                if by != user && role != ParticipantRole::Admin {
                    return Err(DomainError::Unauthorized(
                        "Only a conversation admin can remove other participants",
                    ));
                }
                if !self.is_participant(user) {
                    return Err(DomainError::NotFound("Participant"));
                }
                Ok(vec![ConversationEvent::ParticipantRemoved(
                    ParticipantRemovedV1 {
                        user_id: user.clone(),
                    },
                )])
            }
            C::SendMessage {
                sender,
                message_id,
                content,
                temp_id,
                now,
            } => {
                self.require_participant(sender)?;
                if let Some(t) = temp_id
                    && self.message_for_temp_id(sender, t).is_some()
                {
                    return Ok(vec![]);
                }
                Ok(vec![ConversationEvent::MessageSent(MessageSentV1 {
                    message_id: message_id.clone(),
                    sender_id: sender.clone(),
                    content: content.clone(),
                    temp_id: temp_id.clone(),
                    seq: self.last_seq + 1,
                    sent_at: *now,
                })])
            }
        }
    }

    fn evolve(&mut self, event: &ConversationEvent) {
        match event {
            ConversationEvent::Created(e) => {
                self.id = Some(e.conversation_id.clone());
                self.title = e.title.clone();
            }
            ConversationEvent::ParticipantAdded(e) => {
                self.participants.insert(e.user_id.clone(), e.role);
            }
            ConversationEvent::ParticipantRemoved(e) => {
                self.participants.remove(&e.user_id);
            }
            ConversationEvent::MessageSent(e) => {
                self.last_seq = e.seq;
                if let Some(t) = &e.temp_id {
                    self.by_temp_id.insert(
                        (e.sender_id.clone(), t.clone()),
                        SentRef {
                            message_id: e.message_id.clone(),
                            seq: e.seq,
                            sent_at: e.sent_at,
                        },
                    );
                }
            }
        }
    }
}

cqrs_aggregate!(Conversation, "conversation");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Ev;
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
            content: Content::parse("hi").expect("valid"),
            temp_id: temp.map(|t| TempId::parse(t).expect("valid")),
            now: 5,
        }
    }
    fn sent(sender: &str, id: &str, temp: Option<&str>, seq: u64) -> Ev<ConversationEvent> {
        Ev(ConversationEvent::MessageSent(MessageSentV1 {
            message_id: msg(id),
            sender_id: u(sender),
            content: Content::parse("hi").expect("valid"),
            temp_id: temp.map(|t| TempId::parse(t).expect("valid")),
            seq,
            sent_at: 5,
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
            .then_expect_error(DomainError::Conflict("Conversation already exists"));
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
            .then_expect_error(DomainError::NotParticipant);
    }

    #[test]
    fn sending_to_an_unknown_conversation_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(send("ann", "msg_1", None))
            .then_expect_error(DomainError::NotFound("Conversation"));
    }

    #[test]
    fn a_removed_participant_cannot_send() {
        Given::with(())
            .given(created())
            .and(vec![Ev(ConversationEvent::ParticipantRemoved(
                ParticipantRemovedV1 { user_id: u("bob") },
            ))])
            .when(send("bob", "msg_1", None))
            .then_expect_error(DomainError::NotParticipant);
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
            .then_expect_error(DomainError::Unauthorized(
                "Only a conversation admin can add participants",
            ));
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
            .then_expect_error(DomainError::Unauthorized(
                "Only a conversation admin can remove other participants",
            ));
        Given::with(())
            .given(created())
            .when(ConversationCommand::RemoveParticipant {
                by: u("ann"),
                user: u("zed"),
            })
            .then_expect_error(DomainError::NotFound("Participant"));
    }
}
