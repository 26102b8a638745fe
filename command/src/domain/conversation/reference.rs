//! The reference state: every fact in a plain map, as the aggregate held it before the compact
//! layout (ADR 13). The property test below runs random command sequences on both and requires
//! the same events and the same refusals, before and after a snapshot round trip.

use super::{Conversation, ConversationCommand, Facts, MessageFacts, SentRef, decide};
use events::{
    ConversationEvent, ConversationId, Emoji, MessageId, ParticipantRole, ReactionId, TempId,
    UserId,
};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Default)]
struct Reference {
    id: Option<ConversationId>,
    participants: BTreeMap<UserId, ParticipantRole>,
    /// (id, sender, deleted) at index `seq - 1`.
    messages: Vec<(MessageId, UserId, bool)>,
    /// Replies by `seq`, and each thread's repliers by the parent's `seq`, in reply order.
    replies: HashSet<u64>,
    threads: HashMap<u64, Vec<UserId>>,
    pins: Vec<u64>,
    seq_of: HashMap<MessageId, u64>,
    by_temp_id: HashMap<(UserId, TempId), SentRef>,
    delivered_upto: HashMap<UserId, u64>,
    read: HashSet<(UserId, u64)>,
    reactions: HashMap<ReactionId, (u64, UserId, Emoji)>,
    reaction_keys: HashMap<(u64, UserId, Emoji), ReactionId>,
    hold: Option<String>,
    retention: Option<u64>,
    expired_upto: u64,
}

impl Reference {
    fn evolve(&mut self, event: &ConversationEvent) {
        match event {
            ConversationEvent::Created(e) => self.id = Some(e.conversation_id.clone()),
            ConversationEvent::Held(e) => self.hold = Some(e.reason.clone()),
            ConversationEvent::Released(_) => self.hold = None,
            ConversationEvent::RetentionSet(e) => self.retention = e.retention_seconds,
            ConversationEvent::MessagesExpired(e) => {
                self.expired_upto = self.expired_upto.max(e.upto_seq);
            }
            ConversationEvent::ParticipantAdded(e) => {
                self.participants.insert(e.user_id.clone(), e.role);
            }
            ConversationEvent::ParticipantRemoved(e) => {
                self.participants.remove(&e.user_id);
            }
            ConversationEvent::MessageSent(e) => {
                self.messages
                    .push((e.message_id.clone(), e.sender_id.clone(), false));
                self.seq_of.insert(e.message_id.clone(), e.seq);
                if let Some(r) = &e.reply
                    && let Some(parent) = self.seq_of.get(&r.parent_id)
                {
                    self.replies.insert(e.seq);
                    self.threads
                        .entry(*parent)
                        .or_default()
                        .push(e.sender_id.clone());
                }
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
            ConversationEvent::MessageEdited(_) => {}
            ConversationEvent::MessageDeleted(e) => {
                if let Some(seq) = self.seq_of.get(&e.message_id)
                    && let Some(m) = self.messages.get_mut(index(*seq))
                {
                    m.2 = true;
                    self.pins.retain(|p| p != seq);
                }
            }
            ConversationEvent::MessagePinned(e) => {
                if let Some(seq) = self.seq_of.get(&e.message_id) {
                    self.pins.push(*seq);
                }
            }
            ConversationEvent::MessageUnpinned(e) => {
                if let Some(seq) = self.seq_of.get(&e.message_id) {
                    self.pins.retain(|p| p != seq);
                }
            }
            ConversationEvent::MessagesDelivered(e) => {
                let top = e
                    .messages
                    .iter()
                    .filter_map(|m| self.seq_of.get(&m.message_id).copied())
                    .max()
                    .unwrap_or(0);
                for r in &e.recipients {
                    let upto = self.delivered_upto.entry(r.clone()).or_insert(0);
                    *upto = (*upto).max(top);
                }
            }
            ConversationEvent::MessagesRead(e) => {
                for m in &e.messages {
                    if let Some(seq) = self.seq_of.get(&m.message_id) {
                        self.read.insert((e.reader.clone(), *seq));
                    }
                }
            }
            ConversationEvent::ReactionAdded(e) => {
                if let Some(seq) = self.seq_of.get(&e.message_id).copied() {
                    self.reaction_keys.insert(
                        (seq, e.user_id.clone(), e.emoji.clone()),
                        e.reaction_id.clone(),
                    );
                    self.reactions.insert(
                        e.reaction_id.clone(),
                        (seq, e.user_id.clone(), e.emoji.clone()),
                    );
                }
            }
            ConversationEvent::ReactionRemoved(e) => {
                if let Some(key) = self.reactions.remove(&e.reaction_id) {
                    self.reaction_keys.remove(&key);
                }
            }
        }
    }
}

fn index(seq: u64) -> usize {
    usize::try_from(seq.saturating_sub(1)).unwrap_or(usize::MAX)
}

impl Facts for Reference {
    fn exists(&self) -> bool {
        self.id.is_some()
    }
    fn hold(&self) -> Option<&str> {
        self.hold.as_deref()
    }
    fn retention(&self) -> Option<u64> {
        self.retention
    }
    fn expired_upto(&self) -> u64 {
        self.expired_upto
    }
    /// Counted by each message's own id, the running latest of the ids' times standing for
    /// one that carries none.
    fn sent_before(&self, before: events::Millis) -> u64 {
        let mut latest = 0u128;
        let mut count = 0;
        for (id, _, _) in &self.messages {
            latest = latest.max(super::state::ulid_of(id).unwrap_or(0));
            let at = i64::try_from(ulid::Ulid(latest).timestamp_ms()).unwrap_or(i64::MAX);
            if at >= before {
                break;
            }
            count += 1;
        }
        count
    }
    fn role(&self, user: &UserId) -> Option<ParticipantRole> {
        self.participants.get(user).copied()
    }
    fn last_seq(&self) -> u64 {
        self.messages.len() as u64
    }
    fn message(&self, id: &MessageId) -> Option<MessageFacts<'_>> {
        self.message_at(*self.seq_of.get(id)?)
    }
    fn message_at(&self, seq: u64) -> Option<MessageFacts<'_>> {
        let (_, sender, deleted) = self.messages.get(index(seq)).filter(|_| seq > 0)?;
        Some(MessageFacts {
            seq,
            sender,
            deleted: *deleted,
            reply: self.replies.contains(&seq),
        })
    }
    fn thread(&self, parent: u64) -> (u64, Vec<&UserId>) {
        let all = self.threads.get(&parent).map_or(&[][..], Vec::as_slice);
        let mut who: Vec<&UserId> = Vec::new();
        for u in all {
            if !who.contains(&u) {
                who.push(u);
            }
        }
        (all.len() as u64, who)
    }
    fn pins(&self) -> &[u64] {
        &self.pins
    }
    fn message_id(&self, seq: u64) -> Option<MessageId> {
        self.messages.get(index(seq)).map(|m| m.0.clone())
    }
    fn sent_for_temp_id(&self, sender: &UserId, temp_id: &TempId) -> Option<SentRef> {
        self.by_temp_id
            .get(&(sender.clone(), temp_id.clone()))
            .cloned()
    }
    fn delivered_upto(&self, user: &UserId) -> u64 {
        self.delivered_upto.get(user).copied().unwrap_or(0)
    }
    fn has_read(&self, user: &UserId, seq: u64) -> bool {
        self.read.contains(&(user.clone(), seq))
    }
    fn reaction_key(&self, seq: u64, user: &UserId, emoji: &Emoji) -> Option<&ReactionId> {
        self.reaction_keys.get(&(seq, user.clone(), emoji.clone()))
    }
    fn reaction(&self, id: &ReactionId) -> Option<(u64, &UserId)> {
        self.reactions.get(id).map(|(s, u, _)| (*s, u))
    }
}

use proptest::prelude::*;

const USERS: [&str; 4] = ["ann", "bob", "cat", "dan"];
const TEMPS: [&str; 3] = ["t1", "t2", "t3"];
const EMOJIS: [&str; 2] = ["👍", "🎉"];

/// One step of a random session. Indexes pick from small pools so that steps collide: the
/// same tempId again, a read of a deleted message, a reaction twice.
#[derive(Debug, Clone)]
enum Step {
    Create(u8, u8),
    Add(u8, u8),
    Remove(u8, u8),
    /// sender, tempId (3: none), how the id is made, whether `now` is the id's time, present
    Send(u8, u8, u8, bool, u8),
    /// sender, parent, mentions (a bit per user)
    Reply(u8, u16, u8),
    /// by, message, pin (or unpin)
    Pin(u8, u16, bool),
    Edit(u8, u16),
    Delete(u8, u16),
    Deliver(u8),
    Read(u8, Vec<u16>),
    React(u8, u16, u8),
    Unreact(u8, u16, u16),
    /// by, as an admin, seconds (0: none, 3: out of range)
    Retention(u8, bool, u8),
    /// how far past the clock, in seconds
    Expire(u8),
    Hold,
    Release,
}

fn step() -> impl Strategy<Value = Step> {
    let u = || 0u8..4;
    let m = || any::<u16>();
    prop_oneof![
        1 => (u(), any::<u8>()).prop_map(|(a, b)| Step::Create(a, b)),
        2 => (u(), u()).prop_map(|(a, b)| Step::Add(a, b)),
        1 => (u(), u()).prop_map(|(a, b)| Step::Remove(a, b)),
        10 => (u(), 0u8..4, 0u8..10, any::<bool>(), any::<u8>())
            .prop_map(|(a, t, k, n, p)| Step::Send(a, t, k, n, p)),
        4 => (u(), m(), any::<u8>()).prop_map(|(a, b, c)| Step::Reply(a, b, c)),
        3 => (u(), m(), any::<bool>()).prop_map(|(a, b, c)| Step::Pin(a, b, c)),
        2 => (u(), m()).prop_map(|(a, b)| Step::Edit(a, b)),
        2 => (u(), m()).prop_map(|(a, b)| Step::Delete(a, b)),
        2 => u().prop_map(Step::Deliver),
        4 => (u(), prop::collection::vec(m(), 0..5)).prop_map(|(a, b)| Step::Read(a, b)),
        3 => (u(), m(), 0u8..2).prop_map(|(a, b, c)| Step::React(a, b, c)),
        2 => (u(), m(), any::<u16>()).prop_map(|(a, b, c)| Step::Unreact(a, b, c)),
        1 => (u(), any::<bool>(), 0u8..4).prop_map(|(a, b, c)| Step::Retention(a, b, c)),
        2 => (0u8..3).prop_map(Step::Expire),
        1 => Just(Step::Hold),
        1 => Just(Step::Release),
    ]
}

fn user(i: u8) -> UserId {
    UserId::parse(USERS[usize::from(i) % USERS.len()]).expect("valid")
}

/// Turns steps into commands, remembering the ids it made.
#[derive(Default)]
struct Session {
    messages: Vec<MessageId>,
    reactions: Vec<ReactionId>,
    clock: u64,
    made: u64,
}

impl Session {
    fn pick(&self, i: u16) -> MessageId {
        match self
            .messages
            .get(usize::from(i) % (self.messages.len() + 1))
        {
            Some(m) => m.clone(),
            None => MessageId::parse("msg_unknown").expect("valid"),
        }
    }

    fn message_id(&mut self, kind: u8) -> MessageId {
        self.made += 1;
        self.clock += 1 + self.made % 3;
        let random = u128::from(self.made).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        match kind {
            // another node's clock behind this one
            0 => MessageId::from_ulid(ulid::Ulid::from_parts(
                self.clock.saturating_sub(50),
                random,
            )),
            // an id from old data
            1 => MessageId::parse(&format!("msg_old{}", self.made)).expect("valid"),
            2 => MessageId::parse(&format!(
                "msg_{}",
                ulid::Ulid::from_parts(self.clock, random).to_string()
            ))
            .expect("valid"),
            _ => MessageId::from_ulid(ulid::Ulid::from_parts(self.clock, random)),
        }
    }

    fn command(&mut self, step: &Step) -> ConversationCommand {
        use ConversationCommand as C;
        let now = i64::try_from(self.clock).unwrap_or(0);
        match step {
            Step::Create(by, mask) => C::Create {
                id: ConversationId::parse("conv_p").expect("valid"),
                title: None,
                creator: user(*by),
                participants: (0..4).filter(|i| mask >> i & 1 == 1).map(user).collect(),
            },
            Step::Add(by, u) => C::AddParticipant {
                by: user(*by),
                user: user(*u),
            },
            Step::Remove(by, u) => C::RemoveParticipant {
                by: user(*by),
                user: user(*u),
            },
            Step::Send(by, temp, kind, at_id_time, present) => {
                let message_id = self.message_id(*kind);
                self.messages.push(message_id.clone());
                let now = i64::try_from(self.clock).unwrap_or(0) + i64::from(!at_id_time);
                C::SendMessage {
                    sender: user(*by),
                    message_id,
                    content: crate::domain::sealed("hi"),
                    temp_id: TEMPS
                        .get(usize::from(*temp))
                        .map(|t| TempId::parse(t).expect("valid")),
                    now,
                    present: (0..4).filter(|i| present >> i & 1 == 1).map(user).collect(),
                    parent: None,
                    mentions: vec![],
                }
            }
            Step::Reply(by, parent, mentions) => {
                let parent = self.pick(*parent);
                let message_id = self.message_id(3);
                self.messages.push(message_id.clone());
                C::SendMessage {
                    sender: user(*by),
                    message_id,
                    content: crate::domain::sealed("re"),
                    temp_id: None,
                    now,
                    present: vec![],
                    parent: Some(parent),
                    mentions: (0..8)
                        .filter(|i| mentions >> i & 1 == 1)
                        .map(user)
                        .collect(),
                }
            }
            Step::Pin(by, m, pin) => {
                let (by, message_id) = (user(*by), self.pick(*m));
                if *pin {
                    C::PinMessage {
                        by,
                        message_id,
                        now,
                    }
                } else {
                    C::UnpinMessage {
                        by,
                        message_id,
                        now,
                    }
                }
            }
            Step::Edit(by, m) => C::EditMessage {
                by: user(*by),
                message_id: self.pick(*m),
                content: crate::domain::sealed("new"),
                now,
            },
            Step::Delete(by, m) => C::DeleteMessage {
                by: user(*by),
                message_id: self.pick(*m),
                now,
            },
            Step::Deliver(to) => C::DeliverPending { to: user(*to), now },
            Step::Read(by, ms) => C::MarkRead {
                reader: user(*by),
                message_ids: ms.iter().map(|m| self.pick(*m)).collect(),
                now,
            },
            Step::React(by, m, e) => {
                let reaction_id =
                    ReactionId::parse(&format!("rxn_{}", self.reactions.len())).expect("valid");
                self.reactions.push(reaction_id.clone());
                C::AddReaction {
                    by: user(*by),
                    message_id: self.pick(*m),
                    reaction_id,
                    emoji: Emoji::parse(EMOJIS[usize::from(*e)]).expect("valid"),
                    now,
                }
            }
            Step::Retention(by, admin, secs) => C::SetRetention {
                by: user(*by),
                admin: *admin,
                seconds: match secs {
                    0 => None,
                    3 => Some(super::MAX_RETENTION_SECS + 1),
                    s => Some(u64::from(*s)),
                },
            },
            Step::Expire(lag) => C::Expire {
                now: now + i64::from(*lag) * 1000,
            },
            Step::Hold => C::Hold {
                reason: "case".into(),
            },
            Step::Release => C::Release,
            Step::Unreact(by, m, r) => C::RemoveReaction {
                by: user(*by),
                message_id: self.pick(*m),
                reaction_id: self
                    .reactions
                    .get(usize::from(*r) % (self.reactions.len() + 1))
                    .cloned()
                    .unwrap_or_else(|| ReactionId::parse("rxn_none").expect("valid")),
            },
        }
    }
}

fn round_trip(c: &Conversation) -> Conversation {
    let bytes = postcard::to_stdvec(c).expect("encodes");
    postcard::from_bytes(&bytes).expect("decodes")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_compact_state_decides_exactly_as_the_reference(
        first in (0u8..4, any::<u8>()),
        steps in prop::collection::vec(step(), 1..120),
        snapshot_at in 0usize..120,
    ) {
        let mut session = Session::default();
        let mut reference = Reference::default();
        let mut compact = Conversation::default();
        let steps = std::iter::once(Step::Create(first.0, first.1)).chain(steps);
        for (i, step) in steps.enumerate() {
            if i == snapshot_at {
                compact = round_trip(&compact);
            }
            let command = session.command(&step);
            let expected = decide(&reference, &command);
            let got = decide(&compact, &command);
            prop_assert_eq!(&got, &expected, "step {}: {:?}", i, step);
            if let Ok(events) = expected {
                for e in &events {
                    reference.evolve(e);
                    compact.evolve(e);
                }
            }
            prop_assert_eq!(compact.last_seq(), reference.last_seq());
        }
        for (u, t) in USERS.iter().flat_map(|u| TEMPS.iter().map(move |t| (u, t))) {
            let (u, t) = (UserId::parse(u).expect("valid"), TempId::parse(t).expect("valid"));
            prop_assert_eq!(
                compact.message_for_temp_id(&u, &t),
                reference.sent_for_temp_id(&u, &t)
            );
        }
        prop_assert_eq!(round_trip(&compact), compact);
    }
}
