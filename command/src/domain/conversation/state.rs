//! The conversation's state, laid out so that a cached conversation costs about 30 bytes per
//! message and next to nothing per read receipt (ADR 13). What it holds is what the decisions
//! in `super` read (the [`Facts`] trait), and it must answer them exactly as a plain map of
//! every message would (`reference.rs`, the property test). Pure: no I/O.
//!
//! - Message ids are ULIDs (`msg_` + 26 characters): kept as `u128` at index `seq - 1`, in a
//!   vector that never decreases, so id → `seq` is a binary search. An id that is not a
//!   canonical ULID above every earlier one (another node's clock behind, an id from old data)
//!   is kept aside in `odd`, and its slot repeats the previous value.
//! - Senders are indexes into the table of users the conversation has seen (`u16` until a
//!   conversation has seen 65,536 users); the deleted flags are a bitset.
//! - tempIds are 64-bit fingerprints of (sender, tempId) in a sorted vector plus a small map
//!   of recent ones; the first message's `sentAt` is its id's time, kept aside when it is not.
//! - Replies are a bitset like the deleted flags; threads (reply count and who replied) are
//!   kept only for messages that have replies, and pins as a list of `seq`.
//! - Read receipts are a per-user watermark (every message up to it read, or the reader's
//!   own, or deleted: no decision tells these apart) and the few reads above it.

use super::{Facts, MessageFacts, SentRef};
use events::{
    ConversationEvent, ConversationId, Emoji, MessageId, Millis, ParticipantRole, ReactionId,
    TempId, UserId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    id: Option<ConversationId>,
    title: Option<String>,
    /// Active participants and their roles.
    participants: BTreeMap<UserId, ParticipantRole>,
    users: Users,
    messages: Messages,
    temp_ids: TempIndex,
    /// Highest `seq` delivered to each user.
    delivered_upto: HashMap<UserId, u64>,
    read: HashMap<UserId, Watermark>,
    reactions: HashMap<ReactionId, Reaction>,
    #[serde(with = "pairs")]
    reaction_keys: HashMap<(u64, u32, Emoji), ReactionId>,
    /// The reason of the legal hold, while one applies.
    hold: Option<String>,
    retention: Option<u64>,
    /// Retention's watermark: the time before which messages are expired, and how many
    /// leading messages that covers.
    expired_before: Millis,
    expired_upto: u64,
    /// The threads, by the parent's `seq`.
    threads: HashMap<u64, Thread>,
    /// Pinned messages' `seq`, oldest pin first.
    pins: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Thread {
    replies: u64,
    /// Who replied (indexes into `users`), in the order of their first reply.
    participants: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reaction {
    seq: u64,
    user: u32,
    emoji: Emoji,
}

impl Conversation {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Active participants and their roles, by user id.
    pub fn participants(&self) -> impl Iterator<Item = (&UserId, ParticipantRole)> {
        self.participants.iter().map(|(u, r)| (u, *r))
    }

    /// `seq` of the last message (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.messages.len()
    }

    pub fn is_participant(&self, user: &UserId) -> bool {
        self.participants.contains_key(user)
    }

    /// The `seq` of a message of this conversation.
    pub fn seq_of(&self, message: &MessageId) -> Option<u64> {
        Facts::message(self, message).map(|m| m.seq)
    }

    /// The message an earlier send with this (sender, tempId) created, if any.
    pub fn message_for_temp_id(&self, sender: &UserId, temp_id: &TempId) -> Option<SentRef> {
        Facts::sent_for_temp_id(self, sender, temp_id)
    }

    /// The reaction `user` already has on `message` with `emoji`, if any.
    pub fn reaction_of(
        &self,
        message: &MessageId,
        user: &UserId,
        emoji: &Emoji,
    ) -> Option<&ReactionId> {
        let m = Facts::message(self, message)?;
        Facts::reaction_key(self, m.seq, user, emoji)
    }

    /// An estimate of the heap memory this state holds, in bytes (what the cache counts).
    pub fn heap_bytes(&self) -> usize {
        const MAP_ENTRY: usize = 16;
        let text = |s: &str| s.len() + 24;
        self.title.as_deref().map_or(0, text)
            + self
                .participants
                .keys()
                .map(|u| text(u.as_str()) + 8)
                .sum::<usize>()
            + self.users.heap_bytes()
            + self.messages.heap_bytes()
            + self.temp_ids.heap_bytes()
            + self.delivered_upto.capacity() * (24 + 8 + MAP_ENTRY)
            + self
                .read
                .values()
                .map(|w| 24 + 16 + MAP_ENTRY + w.above.len() * 24)
                .sum::<usize>()
            // Reaction ids (`rxn_` and a ULID) and emoji (a few bytes) counted at their usual
            // length: this runs after every command and must not walk every reaction.
            + self.reactions.capacity() * (24 + 16 + 24 + MAP_ENTRY + 32 + 8)
            + self.reaction_keys.capacity() * (16 + 24 + 24 + MAP_ENTRY + 32 + 8)
            + self
                .threads
                .values()
                .map(|t| 8 + 32 + MAP_ENTRY + t.participants.capacity() * 4)
                .sum::<usize>()
            + self.pins.capacity() * 8
    }

    pub(super) fn evolve(&mut self, event: &ConversationEvent) {
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
                let sender = self.users.intern(&e.sender_id);
                let seq = self.messages.push(&e.message_id, sender);
                if let Some(reply) = &e.reply
                    && let Some(parent) = self.messages.seq_of(&reply.parent_id)
                {
                    self.messages.mark_reply(seq);
                    let thread = self.threads.entry(parent).or_default();
                    thread.replies = reply.reply_count;
                    thread.participants = reply
                        .participant_ids
                        .iter()
                        .map(|u| self.users.intern(u))
                        .collect();
                }
                if let Some(t) = &e.temp_id {
                    self.temp_ids.insert(fingerprint(&e.sender_id, t), seq);
                    if self.messages.id_time(seq) != Some(e.sent_at) {
                        self.messages.sent_at.insert(seq, e.sent_at);
                    }
                }
            }
            ConversationEvent::MessageEdited(_) => {}
            ConversationEvent::MessageDeleted(e) => {
                if let Some(seq) = self.messages.seq_of(&e.message_id) {
                    self.messages.delete(seq);
                    self.pins.retain(|p| *p != seq);
                }
            }
            ConversationEvent::MessagePinned(e) => {
                if let Some(seq) = self.messages.seq_of(&e.message_id)
                    && !self.pins.contains(&seq)
                {
                    self.pins.push(seq);
                }
            }
            ConversationEvent::MessageUnpinned(e) => {
                if let Some(seq) = self.messages.seq_of(&e.message_id) {
                    self.pins.retain(|p| *p != seq);
                }
            }
            ConversationEvent::MessagesDelivered(e) => {
                let top = e
                    .messages
                    .iter()
                    .filter_map(|m| self.messages.seq_of(&m.message_id))
                    .max()
                    .unwrap_or(0);
                for r in &e.recipients {
                    let upto = self.delivered_upto.entry(r.clone()).or_insert(0);
                    *upto = (*upto).max(top);
                }
            }
            ConversationEvent::MessagesRead(e) => {
                let reader = self.users.find(&e.reader);
                let mark = self.read.entry(e.reader.clone()).or_default();
                for m in &e.messages {
                    if let Some(seq) = self.messages.seq_of(&m.message_id)
                        && seq > mark.upto
                    {
                        mark.above.insert(seq);
                    }
                }
                mark.advance(&self.messages, reader);
            }
            ConversationEvent::ReactionAdded(e) => {
                if let Some(seq) = self.messages.seq_of(&e.message_id) {
                    let user = self.users.intern(&e.user_id);
                    self.reaction_keys
                        .insert((seq, user, e.emoji.clone()), e.reaction_id.clone());
                    self.reactions.insert(
                        e.reaction_id.clone(),
                        Reaction {
                            seq,
                            user,
                            emoji: e.emoji.clone(),
                        },
                    );
                }
            }
            ConversationEvent::ReactionRemoved(e) => {
                if let Some(r) = self.reactions.remove(&e.reaction_id) {
                    self.reaction_keys.remove(&(r.seq, r.user, r.emoji));
                }
            }
            ConversationEvent::Held(e) => self.hold = Some(e.reason.clone()),
            ConversationEvent::Released(_) => self.hold = None,
            ConversationEvent::RetentionSet(e) => self.retention = e.retention_seconds,
            ConversationEvent::MessagesExpired(e) => {
                self.expired_before = self.expired_before.max(e.before);
                self.expired_upto = self.expired_upto.max(e.upto_seq);
            }
        }
    }

    /// The time before which messages are past the retention period at `now`, while one is
    /// set.
    pub fn retention_cutoff(&self, now: Millis) -> Option<Millis> {
        self.retention.map(|s| super::retention_cutoff(s, now))
    }

    /// Retention's watermark: messages sent before it are expired (0: none).
    pub fn expired_before(&self) -> Millis {
        self.expired_before
    }

    /// The time of the first message (its id's), where the conversation's keys begin.
    pub fn first_sent_at(&self) -> Option<Millis> {
        match self.messages.sent_at.get(&1) {
            Some(at) => Some(*at),
            None => self.messages.id_time(1),
        }
    }
}

impl Facts for Conversation {
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

    fn sent_before(&self, before: Millis) -> u64 {
        let time =
            |u: &u128| Millis::try_from(ulid::Ulid(*u).timestamp_ms()).unwrap_or(Millis::MAX);
        self.messages.ulids.partition_point(|u| time(u) < before) as u64
    }

    fn role(&self, user: &UserId) -> Option<ParticipantRole> {
        self.participants.get(user).copied()
    }

    fn last_seq(&self) -> u64 {
        self.messages.len()
    }

    fn message(&self, id: &MessageId) -> Option<MessageFacts<'_>> {
        let seq = self.messages.seq_of(id)?;
        self.message_at(seq)
    }

    fn message_at(&self, seq: u64) -> Option<MessageFacts<'_>> {
        let sender = self.users.name(self.messages.sender(seq)?)?;
        Some(MessageFacts {
            seq,
            sender,
            deleted: self.messages.is_deleted(seq),
            reply: self.messages.is_reply(seq),
        })
    }

    fn thread(&self, parent: u64) -> (u64, Vec<&UserId>) {
        self.threads.get(&parent).map_or((0, Vec::new()), |t| {
            let who = t
                .participants
                .iter()
                .filter_map(|u| self.users.name(*u))
                .collect();
            (t.replies, who)
        })
    }

    fn pins(&self) -> &[u64] {
        &self.pins
    }

    fn message_id(&self, seq: u64) -> Option<MessageId> {
        self.messages.id(seq)
    }

    fn sent_for_temp_id(&self, sender: &UserId, temp_id: &TempId) -> Option<SentRef> {
        let seq = self.temp_ids.get(fingerprint(sender, temp_id))?;
        let sent_at = match self.messages.sent_at.get(&seq) {
            Some(at) => *at,
            None => self.messages.id_time(seq)?,
        };
        Some(SentRef {
            message_id: self.messages.id(seq)?,
            seq,
            sent_at,
        })
    }

    fn delivered_upto(&self, user: &UserId) -> u64 {
        self.delivered_upto.get(user).copied().unwrap_or(0)
    }

    fn has_read(&self, user: &UserId, seq: u64) -> bool {
        self.read
            .get(user)
            .is_some_and(|w| seq <= w.upto || w.above.contains(&seq))
    }

    fn reaction_key(&self, seq: u64, user: &UserId, emoji: &Emoji) -> Option<&ReactionId> {
        let user = self.users.find(user)?;
        self.reaction_keys.get(&(seq, user, emoji.clone()))
    }

    fn reaction(&self, id: &ReactionId) -> Option<(u64, &UserId)> {
        let r = self.reactions.get(id)?;
        Some((r.seq, self.users.name(r.user)?))
    }
}

/// The 64-bit fingerprint of a (sender, tempId) pair: the first bytes of its SHA-256 (0xFF,
/// which UTF-8 never contains, separates the two). Stable across builds, as snapshots need.
fn fingerprint(sender: &UserId, temp_id: &TempId) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(sender.as_str().as_bytes());
    h.update([0xFF]);
    h.update(temp_id.as_str().as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The ULID of a canonical message id (`msg_` and the 26 lower-case characters
/// `MessageId::from_ulid` writes), or `None`.
pub(super) fn ulid_of(id: &MessageId) -> Option<u128> {
    let text = id.as_str().strip_prefix("msg_")?;
    let ulid = ulid::Ulid::from_string(text).ok()?;
    let mut buf = [0u8; ulid::ULID_LEN];
    let canonical = ulid.array_to_str(&mut buf);
    canonical.make_ascii_lowercase();
    (canonical == text).then_some(ulid.0)
}

/// Bit `i` of a bitset (`false` past its end).
fn bit(words: &[u64], i: Option<usize>) -> bool {
    i.and_then(|i| words.get(i / 64).map(|w| w >> (i % 64) & 1 == 1))
        .unwrap_or(false)
}

fn set_bit(words: &mut [u64], i: Option<usize>) {
    if let Some(i) = i
        && let Some(w) = words.get_mut(i / 64)
    {
        *w |= 1 << (i % 64);
    }
}

/// Appends to one of the long per-message vectors, growing it by a sixteenth at a time rather
/// than doubling it: a million-message conversation then holds ~3% spare, not up to 100%.
fn push<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 16).max(64));
    }
    v.push(x);
}

/// Every user the conversation has seen as a sender or a reactor, by index. Written as the
/// list of names; the index is rebuilt when read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<UserId>", into = "Vec<UserId>")]
struct Users {
    names: Vec<UserId>,
    index: HashMap<UserId, u32>,
}

impl From<Vec<UserId>> for Users {
    fn from(names: Vec<UserId>) -> Self {
        let index = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.clone(), u32::try_from(i).ok()?)))
            .collect();
        Self { names, index }
    }
}

impl From<Users> for Vec<UserId> {
    fn from(users: Users) -> Self {
        users.names
    }
}

impl Users {
    fn intern(&mut self, user: &UserId) -> u32 {
        if let Some(i) = self.index.get(user) {
            return *i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(user.clone());
        self.index.insert(user.clone(), i);
        i
    }

    fn find(&self, user: &UserId) -> Option<u32> {
        self.index.get(user).copied()
    }

    fn name(&self, index: u32) -> Option<&UserId> {
        self.names.get(usize::try_from(index).ok()?)
    }

    fn heap_bytes(&self) -> usize {
        self.names
            .iter()
            .map(|n| 2 * (n.as_str().len() + 24) + 4 + 16)
            .sum()
    }
}

/// Message facts by `seq`: id, sender, deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Messages {
    /// The id of message `seq` at index `seq - 1` as a ULID; never decreasing (the slot of an
    /// odd id repeats the value before it).
    #[serde(with = "packed_u128")]
    ulids: Vec<u128>,
    /// Ids that are not canonical ULIDs above every earlier id, by `seq`, and the reverse.
    odd: HashMap<u64, MessageId>,
    odd_seq: HashMap<MessageId, u64>,
    senders: Senders,
    #[serde(with = "packed_u64")]
    deleted: Vec<u64>,
    /// Which messages are replies in a thread, a bit each like `deleted`.
    #[serde(with = "packed_u64")]
    replies: Vec<u64>,
    /// `sentAt` of messages sent with a tempId whose id does not carry that time.
    sent_at: HashMap<u64, Millis>,
}

impl Messages {
    fn len(&self) -> u64 {
        self.ulids.len() as u64
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        (i < self.ulids.len()).then_some(i)
    }

    /// Appends a message; returns its `seq`.
    fn push(&mut self, id: &MessageId, sender: u32) -> u64 {
        let top = self.ulids.last().copied().unwrap_or(0);
        let seq = self.len() + 1;
        match ulid_of(id).filter(|u| *u > top) {
            Some(u) => push(&mut self.ulids, u),
            None => {
                push(&mut self.ulids, top);
                self.odd.insert(seq, id.clone());
                self.odd_seq.insert(id.clone(), seq);
            }
        }
        self.senders.push(sender);
        if self.deleted.len() * 64 < self.ulids.len() {
            push(&mut self.deleted, 0);
        }
        if self.replies.len() * 64 < self.ulids.len() {
            push(&mut self.replies, 0);
        }
        seq
    }

    fn seq_of(&self, id: &MessageId) -> Option<u64> {
        if let Some(seq) = self.odd_seq.get(id) {
            return Some(*seq);
        }
        let u = ulid_of(id)?;
        let i = self.ulids.partition_point(|x| *x < u);
        let seq = i as u64 + 1;
        (self.ulids.get(i) == Some(&u) && !self.odd.contains_key(&seq)).then_some(seq)
    }

    fn id(&self, seq: u64) -> Option<MessageId> {
        if let Some(id) = self.odd.get(&seq) {
            return Some(id.clone());
        }
        let u = *self.ulids.get(self.index(seq)?)?;
        Some(MessageId::from_ulid(ulid::Ulid(u)))
    }

    /// The time in the message's id (`None` for an odd id).
    fn id_time(&self, seq: u64) -> Option<Millis> {
        if self.odd.contains_key(&seq) {
            return None;
        }
        let u = *self.ulids.get(self.index(seq)?)?;
        Millis::try_from(ulid::Ulid(u).timestamp_ms()).ok()
    }

    fn sender(&self, seq: u64) -> Option<u32> {
        self.senders.get(self.index(seq)?)
    }

    fn is_deleted(&self, seq: u64) -> bool {
        bit(&self.deleted, self.index(seq))
    }

    fn delete(&mut self, seq: u64) {
        let i = self.index(seq);
        set_bit(&mut self.deleted, i);
    }

    fn is_reply(&self, seq: u64) -> bool {
        bit(&self.replies, self.index(seq))
    }

    fn mark_reply(&mut self, seq: u64) {
        let i = self.index(seq);
        set_bit(&mut self.replies, i);
    }

    fn heap_bytes(&self) -> usize {
        self.ulids.capacity() * 16
            + self.senders.heap_bytes()
            + (self.deleted.capacity() + self.replies.capacity()) * 8
            + (self.odd.capacity() + self.odd_seq.capacity()) * (8 + 24 + 16)
            + self
                .odd
                .values()
                .map(|m| 2 * m.as_str().len())
                .sum::<usize>()
            + self.sent_at.capacity() * (16 + 8)
    }
}

/// Sender indexes, two bytes each until an index needs four.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Senders {
    Narrow(#[serde(with = "packed_u16")] Vec<u16>),
    Wide(#[serde(with = "packed_u32")] Vec<u32>),
}

impl Default for Senders {
    fn default() -> Self {
        Self::Narrow(Vec::new())
    }
}

impl Senders {
    fn push(&mut self, sender: u32) {
        match self {
            Self::Narrow(v) => match u16::try_from(sender) {
                Ok(s) => push(v, s),
                Err(_) => {
                    let mut wide: Vec<u32> = v.iter().map(|s| u32::from(*s)).collect();
                    wide.push(sender);
                    *self = Self::Wide(wide);
                }
            },
            Self::Wide(v) => push(v, sender),
        }
    }

    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Self::Narrow(v) => v.get(i).map(|s| u32::from(*s)),
            Self::Wide(v) => v.get(i).copied(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Narrow(v) => v.capacity() * 2,
            Self::Wide(v) => v.capacity() * 4,
        }
    }
}

/// tempId fingerprint → `seq`: a vector sorted by fingerprint (12 bytes an entry) and a map
/// of the recent ones, merged into it once the map outgrows a 32nd of the vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TempIndex {
    #[serde(with = "packed_u64")]
    fingerprints: Vec<u64>,
    #[serde(with = "packed_u32")]
    seqs: Vec<u32>,
    recent: HashMap<u64, u64>,
}

impl TempIndex {
    const MIN_RECENT: usize = 1024;

    fn get(&self, fingerprint: u64) -> Option<u64> {
        if let Some(seq) = self.recent.get(&fingerprint) {
            return Some(*seq);
        }
        let i = self.fingerprints.partition_point(|f| *f < fingerprint);
        (self.fingerprints.get(i) == Some(&fingerprint))
            .then(|| self.seqs.get(i).map(|s| u64::from(*s)))
            .flatten()
    }

    fn insert(&mut self, fingerprint: u64, seq: u64) {
        let i = self.fingerprints.partition_point(|f| *f < fingerprint);
        if self.fingerprints.get(i) == Some(&fingerprint)
            && let (Some(slot), Ok(seq)) = (self.seqs.get_mut(i), u32::try_from(seq))
        {
            *slot = seq;
            return;
        }
        self.recent.insert(fingerprint, seq);
        if self.recent.len() > Self::MIN_RECENT.max(self.fingerprints.len() / 32) {
            self.merge();
        }
    }

    fn merge(&mut self) {
        let mut recent: Vec<(u64, u32)> = Vec::with_capacity(self.recent.len());
        self.recent.retain(|f, s| match u32::try_from(*s) {
            Ok(s) => {
                recent.push((*f, s));
                false
            }
            Err(_) => true,
        });
        recent.sort_unstable();
        let total = self.fingerprints.len() + recent.len();
        let mut fingerprints = Vec::with_capacity(total);
        let mut seqs = Vec::with_capacity(total);
        let mut old = self.fingerprints.iter().zip(&self.seqs).peekable();
        let mut new = recent.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some((f, _)), Some((g, _))) => **f <= *g,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (f, s) = if take_old {
                old.next().map(|(f, s)| (*f, *s))
            } else {
                new.next()
            }
            .unwrap_or_default();
            fingerprints.push(f);
            seqs.push(s);
        }
        self.fingerprints = fingerprints;
        self.seqs = seqs;
    }

    fn heap_bytes(&self) -> usize {
        self.fingerprints.capacity() * 8 + self.seqs.capacity() * 4 + self.recent.capacity() * 17
    }
}

/// What one reader has read: every message up to `upto` (or their own, or deleted), and the
/// reads above it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Watermark {
    upto: u64,
    above: BTreeSet<u64>,
}

impl Watermark {
    fn advance(&mut self, messages: &Messages, reader: Option<u32>) {
        while self.upto < messages.len() {
            let next = self.upto + 1;
            let moot =
                messages.is_deleted(next) || (reader.is_some() && messages.sender(next) == reader);
            if !self.above.remove(&next) && !moot {
                break;
            }
            self.upto = next;
        }
    }
}

/// Maps whose keys are not strings, written as a list of `(key, value)` pairs.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;
    use std::hash::Hash;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Vectors of integers written as one byte string (little-endian), so that a snapshot of a
/// million messages decodes in a few copies rather than a million varints.
macro_rules! packed {
    ($name:ident, $t:ty) => {
        mod $name {
            use serde::{Deserializer, Serializer, de::Error};
            const N: usize = std::mem::size_of::<$t>();

            pub fn serialize<S: Serializer>(v: &[$t], s: S) -> Result<S::Ok, S::Error> {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                serde_bytes::serialize(&bytes, s)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<$t>, D::Error> {
                let bytes: &'de [u8] = serde_bytes::deserialize(d)?;
                if bytes.len() % N != 0 {
                    return Err(D::Error::custom("packed integers of a partial length"));
                }
                Ok(bytes
                    .chunks_exact(N)
                    .map(|c| {
                        let mut a = [0u8; N];
                        a.copy_from_slice(c);
                        <$t>::from_le_bytes(a)
                    })
                    .collect())
            }
        }
    };
}
packed!(packed_u128, u128);
packed!(packed_u64, u64);
packed!(packed_u32, u32);
packed!(packed_u16, u16);

#[cfg(test)]
mod tests {
    use super::*;
    use events::{
        ConversationCreatedV1, MessageRefV1, MessageSent, MessagesReadV1, ParticipantAddedV1,
    };

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    /// A conversation of `members` where each message, sent with a tempId, is read by all.
    fn busy(messages: u64, members: usize) -> Conversation {
        let users: Vec<UserId> = (0..members).map(|i| u(&format!("user_{i}"))).collect();
        let mut c = Conversation::default();
        c.evolve(&ConversationEvent::Created(ConversationCreatedV1 {
            conversation_id: ConversationId::parse("conv_1").expect("valid"),
            title: None,
            created_by: users[0].clone(),
        }));
        for user_id in &users {
            c.evolve(&ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
                user_id: user_id.clone(),
                role: ParticipantRole::Member,
            }));
        }
        for seq in 1..=messages {
            let at = 1_700_000_000_000 + seq;
            let id = MessageId::from_ulid(ulid::Ulid::from_parts(at, u128::from(seq) << 40));
            let sender = &users[usize::try_from(seq).expect("small") % members];
            c.evolve(&ConversationEvent::MessageSent(MessageSent {
                message_id: id.clone(),
                sender_id: sender.clone(),
                content: events::Text::Sealed(crate::domain::sealed("hi")),
                temp_id: Some(TempId::parse(&format!("tmp-{seq}")).expect("valid")),
                seq,
                sent_at: i64::try_from(at).expect("small"),
                reply: None,
                mentions: Vec::new(),
            }));
            for reader in users.iter().filter(|r| *r != sender) {
                c.evolve(&ConversationEvent::MessagesRead(MessagesReadV1 {
                    reader: reader.clone(),
                    messages: vec![MessageRefV1 {
                        message_id: id.clone(),
                        sender_id: sender.clone(),
                    }],
                    read_at: 0,
                }));
            }
        }
        c
    }

    #[test]
    fn temp_ids_and_ids_are_found_after_merges_and_a_round_trip() {
        let c = busy(5_000, 3);
        assert!(
            c.temp_ids.fingerprints.len() > 3_000,
            "merged at least once"
        );
        let decoded: Conversation =
            postcard::from_bytes(&postcard::to_stdvec(&c).expect("encodes")).expect("decodes");
        for state in [&c, &decoded] {
            for seq in [1u64, 777, 4_096, 5_000] {
                let sender = u(&format!("user_{}", seq % 3));
                let temp = TempId::parse(&format!("tmp-{seq}")).expect("valid");
                let sent = state.message_for_temp_id(&sender, &temp).expect("found");
                assert_eq!(sent.seq, seq);
                assert_eq!(
                    sent.sent_at,
                    1_700_000_000_000 + i64::try_from(seq).expect("small")
                );
                assert_eq!(state.messages.seq_of(&sent.message_id), Some(seq));
                assert!(state.message_for_temp_id(&u("user_9"), &temp).is_none());
            }
            assert!(
                state
                    .read
                    .values()
                    .all(|w| w.upto >= 4_999 && w.above.is_empty())
            );
        }
    }

    #[test]
    fn a_message_held_costs_at_most_32_bytes_and_a_receipt_next_to_nothing() {
        let messages = 100_000;
        let c = busy(messages, 10);
        let per_message = c.heap_bytes() as f64 / messages as f64;
        assert!(per_message <= 32.0, "{per_message} bytes per message");
        let receipts = (messages * 9) as f64;
        let readless = {
            let mut c = c.clone();
            c.read.clear();
            c.heap_bytes()
        };
        let per_receipt = (c.heap_bytes() - readless) as f64 / receipts;
        assert!(per_receipt <= 2.0, "{per_receipt} bytes per receipt");
    }
}
