//! Who is in which room, as this node sees every node: a pure state machine. It takes this
//! node's socket changes and the other nodes' messages, and answers what this node's sockets
//! must be told (`Transition`s) and what the other nodes must be told (`PresenceMsg`s). No I/O,
//! no clock (times are arguments), no timers: `live/mod.rs` drives it.
//!
//! The rules:
//! - A user is online in a room while any node counts a socket of theirs there. Each node
//!   decides `user:online` / `user:offline` for its own sockets, when the user appears in or
//!   disappears from the room in its view, so two sockets of one user leaving on two nodes at
//!   once still yield one `user:offline` per watching socket.
//! - Every node applies another node's messages in that node's order: deltas and snapshots
//!   carry the sender's change counter, and a message older than what was applied is dropped
//!   (messages are published after the lock that ordered them, so they can cross).
//! - A join counts everywhere before it is acknowledged: its delta asks for a [`Confirm`] from
//!   every node that confirms, and the driver waits for them ([`Presence::awaiting`]). A node
//!   that does not answer in time is not waited for again until it confirms something.
//! - A disconnect is held ([`Presence::hold`]) for the grace period: the socket still counts,
//!   and a socket of the same user entering the room on this node takes its place (no
//!   `user:offline`, no new `user:online`, nothing sent). On another node, the held socket
//!   keeps the user online until the new one counts. [`Presence::release`] ends a hold.
//! - A node not heard from for [`EXPIRY`] is forgotten ([`Presence::expire`]), so a dead node
//!   cannot leave its users online.
//! - Profiles and departure times are kept only for users in a room somewhere
//!   ([`Presence::prune`]).

use super::protocol::{Confirm, NodeId, PresenceMsg, Rooms};
use events::{ConversationId, Millis, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use wire::UserRef;

/// A node not heard from for this long is forgotten.
pub const EXPIRY: Duration = Duration::from_secs(15);

/// What this node's sockets of `conv` must be told about `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub conv: ConversationId,
    pub user: UserId,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Online(UserRef),
    /// `lastSeenAt`: the latest departure of the user from the room seen on any node.
    Offline {
        last_seen_at: Millis,
    },
}

/// The answer to a change of this node's sockets.
#[derive(Debug, Default, PartialEq)]
pub struct Changed {
    pub transitions: Vec<Transition>,
    /// To publish to every node.
    pub delta: Option<PresenceMsg>,
    /// Whether it was the user's last socket in the room on this node (`lastSeenAt` persists).
    pub last_here: bool,
}

impl Changed {
    /// The change counter whose confirmation a join waits for.
    pub fn awaits(&self) -> Option<u64> {
        match &self.delta {
            Some(PresenceMsg::Delta {
                online: true, seq, ..
            }) => Some(*seq),
            _ => None,
        }
    }
}

/// The answer to another node's message.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    pub transitions: Vec<Transition>,
    /// To publish to every node (our state, for a starting node).
    pub reply: Option<PresenceMsg>,
    /// To send to that node's confirm subject.
    pub confirm: Option<(NodeId, Confirm)>,
}

/// A disconnected socket still counted until its grace ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HoldId(u64);

#[derive(Debug)]
struct Held {
    conv: ConversationId,
    user: UserId,
    at: Millis,
}

#[derive(Debug)]
struct Remote {
    heard: Instant,
    rooms: Rooms,
    /// The latest change counter applied from that node.
    seq: u64,
    /// Whether it confirms joins.
    confirms: bool,
    /// The latest of our change counters it confirmed.
    confirmed: u64,
    /// False after it failed to confirm in time, until it confirms again.
    responsive: bool,
}

impl Remote {
    fn new(heard: Instant, seq: u64, confirms: bool) -> Self {
        Self {
            heard,
            rooms: Rooms::new(),
            seq,
            confirms,
            confirmed: 0,
            responsive: true,
        }
    }

    /// Whether a message with change counter `seq` is older than what was applied (0 is a
    /// sender without counters: always applied).
    fn is_stale(&self, seq: u64) -> bool {
        seq != 0 && seq < self.seq
    }
}

#[derive(Debug)]
pub struct Presence {
    node: NodeId,
    /// conversation → user → this node's sockets in the room (held ones included).
    local: HashMap<ConversationId, HashMap<UserId, usize>>,
    held: BTreeMap<HoldId, Held>,
    next_hold: u64,
    remote: HashMap<NodeId, Remote>,
    /// Profiles of the users in rooms, for `user:online`.
    profiles: HashMap<UserId, UserRef>,
    /// Latest departure seen of each (conversation, user) still in the room somewhere.
    left_at: HashMap<(ConversationId, UserId), Millis>,
    /// Counts this node's changes; sent with each delta and snapshot. Starts at 1: 0 is what
    /// nodes without counters send, and is always applied.
    seq: u64,
}

type Pair = (ConversationId, UserId);

impl Presence {
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            local: HashMap::new(),
            held: BTreeMap::new(),
            next_hold: 0,
            remote: HashMap::new(),
            profiles: HashMap::new(),
            left_at: HashMap::new(),
            seq: 1,
        }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// This node first, then every node it hears from, each with the distinct users it has in
    /// rooms.
    pub fn nodes(&self) -> Vec<(NodeId, usize)> {
        let mine: HashSet<&UserId> = self.local.values().flat_map(|u| u.keys()).collect();
        let mut out = vec![(self.node.clone(), mine.len())];
        let mut remote: Vec<_> = self
            .remote
            .iter()
            .map(|(id, r)| {
                let users: HashSet<&UserId> = r.rooms.values().flatten().collect();
                (id.clone(), users.len())
            })
            .collect();
        remote.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        out.extend(remote);
        out
    }

    /// The message a starting node sends.
    pub fn hello(&self) -> PresenceMsg {
        PresenceMsg::Sync {
            node: self.node.clone(),
        }
    }

    /// This node's whole local state, for the heartbeat.
    pub fn snapshot(&self) -> PresenceMsg {
        let rooms: Rooms = self
            .local
            .iter()
            .map(|(c, users)| (c.clone(), users.keys().cloned().collect()))
            .collect();
        let profiles = rooms
            .values()
            .flatten()
            .filter_map(|u| self.profiles.get(u).map(|p| (u.clone(), p.clone())))
            .collect();
        PresenceMsg::State {
            node: self.node.clone(),
            rooms,
            profiles,
            seq: self.seq,
            confirms: true,
        }
    }

    /// A socket of `user` (with its profile) entered the room on this node.
    pub fn enter(
        &mut self,
        conv: &ConversationId,
        user: &UserId,
        profile: UserRef,
        at: Millis,
    ) -> Changed {
        self.profiles.insert(user.clone(), profile.clone());
        if let Some(id) = self
            .held
            .iter()
            .find(|(_, h)| h.conv == *conv && h.user == *user)
            .map(|(id, _)| *id)
        {
            self.held.remove(&id);
            return Changed::default();
        }
        self.seq += 1;
        let pair = (conv.clone(), user.clone());
        let transitions = self.transitions([pair], at, |p| {
            *p.local
                .entry(conv.clone())
                .or_default()
                .entry(user.clone())
                .or_insert(0) += 1;
        });
        Changed {
            transitions,
            delta: Some(self.delta(conv, user, Some(profile), true, at)),
            last_here: false,
        }
    }

    /// A socket of `user` left the room on this node at `at` (an explicit leave, a removal, or
    /// the end of a hold).
    pub fn leave(&mut self, conv: &ConversationId, user: &UserId, at: Millis) -> Changed {
        self.note_departure(conv, user, at);
        let mut last_here = false;
        let pair = (conv.clone(), user.clone());
        let transitions = self.transitions([pair], at, |p| {
            if let Some(users) = p.local.get_mut(conv) {
                if let Some(n) = users.get_mut(user) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        users.remove(user);
                        last_here = true;
                    }
                }
                if users.is_empty() {
                    p.local.remove(conv);
                }
            }
        });
        let delta = last_here.then(|| {
            self.seq += 1;
            let profile = self.profiles.get(user).cloned();
            self.delta(conv, user, profile, false, at)
        });
        Changed {
            transitions,
            delta,
            last_here,
        }
    }

    /// A socket of `user` disconnected from the room at `at`: it keeps counting until
    /// [`Self::release`], unless a socket of the user enters the room here first.
    pub fn hold(&mut self, conv: &ConversationId, user: &UserId, at: Millis) -> HoldId {
        self.next_hold += 1;
        let id = HoldId(self.next_hold);
        self.held.insert(
            id,
            Held {
                conv: conv.clone(),
                user: user.clone(),
                at,
            },
        );
        id
    }

    /// The grace of a hold is over: the socket leaves at the time it disconnected. `None` when
    /// a socket of the user took its place.
    pub fn release(&mut self, id: HoldId) -> Option<Changed> {
        let h = self.held.remove(&id)?;
        Some(self.leave(&h.conv, &h.user, h.at))
    }

    /// Disconnected sockets still counted.
    pub fn holds(&self) -> usize {
        self.held.len()
    }

    /// Applies another node's message received at `now` (`now_ms` on the wall clock).
    pub fn receive(&mut self, msg: PresenceMsg, now: Instant, now_ms: Millis) -> Received {
        match msg {
            PresenceMsg::Sync { node } if node != self.node => Received {
                reply: Some(self.snapshot()),
                ..Received::default()
            },
            PresenceMsg::State {
                node,
                rooms,
                profiles,
                seq,
                confirms,
            } if node != self.node => {
                if let Some(r) = self.remote.get_mut(&node)
                    && r.is_stale(seq)
                {
                    r.heard = now;
                    return Received::default();
                }
                self.profiles.extend(profiles);
                let mut pairs = pairs_of(&rooms);
                if let Some(old) = self.remote.get(&node) {
                    pairs.extend(pairs_of(&old.rooms));
                }
                let transitions = self.transitions(pairs, now_ms, |p| {
                    let r = p
                        .remote
                        .entry(node)
                        .or_insert_with(|| Remote::new(now, seq, confirms));
                    r.heard = now;
                    r.rooms = rooms;
                    r.seq = seq;
                    r.confirms = confirms;
                });
                Received {
                    transitions,
                    ..Received::default()
                }
            }
            PresenceMsg::Delta {
                node,
                conv,
                user,
                profile,
                online,
                at,
                seq,
                confirms,
            } if node != self.node => {
                let confirm = (online && confirms).then(|| {
                    (
                        node.clone(),
                        Confirm {
                            node: self.node.clone(),
                            seq,
                        },
                    )
                });
                if let Some(r) = self.remote.get_mut(&node)
                    && (r.is_stale(seq) || (seq != 0 && seq == r.seq))
                {
                    r.heard = now;
                    return Received {
                        confirm,
                        ..Received::default()
                    };
                }
                if let Some(profile) = profile {
                    self.profiles.insert(user.clone(), profile);
                }
                if !online {
                    self.note_departure(&conv, &user, at);
                }
                let pair = (conv.clone(), user.clone());
                let transitions = self.transitions([pair], at, |p| {
                    let r = p
                        .remote
                        .entry(node)
                        .or_insert_with(|| Remote::new(now, seq, confirms));
                    r.heard = now;
                    r.seq = r.seq.max(seq);
                    r.confirms = confirms;
                    let users = r.rooms.entry(conv.clone()).or_default();
                    if online {
                        users.insert(user);
                    } else {
                        users.remove(&user);
                        if users.is_empty() {
                            r.rooms.remove(&conv);
                        }
                    }
                });
                Received {
                    transitions,
                    reply: None,
                    confirm,
                }
            }
            _ => Received::default(),
        }
    }

    /// `confirm` arrived on this node's confirm subject at `now`.
    pub fn confirmed(&mut self, confirm: Confirm, now: Instant) {
        let r = self
            .remote
            .entry(confirm.node)
            .or_insert_with(|| Remote::new(now, 0, true));
        r.heard = now;
        r.confirms = true;
        r.responsive = true;
        r.confirmed = r.confirmed.max(confirm.seq);
    }

    /// The nodes a join with change counter `seq` still waits for.
    pub fn awaiting(&self, seq: u64) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .remote
            .iter()
            .filter(|(_, r)| r.confirms && r.responsive && r.confirmed < seq)
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    /// `nodes` did not confirm in time: joins stop waiting for them until they confirm.
    pub fn unresponsive(&mut self, nodes: &[NodeId]) {
        for n in nodes {
            if let Some(r) = self.remote.get_mut(n) {
                r.responsive = false;
            }
        }
    }

    /// Forgets the nodes not heard from for [`EXPIRY`] at `now`; returns them and what this
    /// node's sockets must be told.
    pub fn expire(&mut self, now: Instant, now_ms: Millis) -> (Vec<NodeId>, Vec<Transition>) {
        let mut dead: Vec<NodeId> = self
            .remote
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.heard) > EXPIRY)
            .map(|(n, _)| n.clone())
            .collect();
        dead.sort();
        let pairs: Vec<Pair> = dead
            .iter()
            .filter_map(|n| self.remote.get(n))
            .flat_map(|r| pairs_of(&r.rooms))
            .collect();
        let transitions = self.transitions(pairs, now_ms, |p| {
            for n in &dead {
                p.remote.remove(n);
            }
        });
        (dead, transitions)
    }

    /// Drops the profiles and departure times of users who are in no room on any node.
    pub fn prune(&mut self) {
        let mut present: HashSet<&UserId> = HashSet::new();
        let mut pairs: HashSet<(&ConversationId, &UserId)> = HashSet::new();
        for (c, users) in &self.local {
            for u in users.keys() {
                present.insert(u);
                pairs.insert((c, u));
            }
        }
        for r in self.remote.values() {
            for (c, users) in &r.rooms {
                for u in users {
                    present.insert(u);
                    pairs.insert((c, u));
                }
            }
        }
        let present: HashSet<UserId> = present.into_iter().cloned().collect();
        let pairs: HashSet<Pair> = pairs
            .into_iter()
            .map(|(c, u)| (c.clone(), u.clone()))
            .collect();
        self.profiles.retain(|u, _| present.contains(u));
        self.left_at.retain(|p, _| pairs.contains(p));
    }

    /// Distinct users with a socket in the room, all nodes, sorted.
    pub fn online_users(&self, conv: &ConversationId) -> Vec<UserId> {
        let mut all: BTreeSet<&UserId> = BTreeSet::new();
        if let Some(users) = self.local.get(conv) {
            all.extend(users.keys());
        }
        for r in self.remote.values() {
            if let Some(users) = r.rooms.get(conv) {
                all.extend(users.iter());
            }
        }
        all.into_iter().cloned().collect()
    }

    /// How many profiles and departure times are kept (for tests and metrics).
    pub fn kept(&self) -> (usize, usize) {
        (self.profiles.len(), self.left_at.len())
    }

    fn delta(
        &self,
        conv: &ConversationId,
        user: &UserId,
        profile: Option<UserRef>,
        online: bool,
        at: Millis,
    ) -> PresenceMsg {
        PresenceMsg::Delta {
            node: self.node.clone(),
            conv: conv.clone(),
            user: user.clone(),
            profile,
            online,
            at,
            seq: self.seq,
            confirms: true,
        }
    }

    fn note_departure(&mut self, conv: &ConversationId, user: &UserId, at: Millis) {
        let e = self
            .left_at
            .entry((conv.clone(), user.clone()))
            .or_insert(at);
        *e = (*e).max(at);
    }

    fn is_online(&self, conv: &ConversationId, user: &UserId) -> bool {
        self.local.get(conv).is_some_and(|u| u.contains_key(user))
            || self
                .remote
                .values()
                .any(|r| r.rooms.get(conv).is_some_and(|u| u.contains(user)))
    }

    /// Runs `change` and reports which of `pairs` went online or offline; `at` is when (the
    /// `lastSeenAt` of a departure, unless a later one was seen).
    fn transitions(
        &mut self,
        pairs: impl IntoIterator<Item = Pair>,
        at: Millis,
        change: impl FnOnce(&mut Self),
    ) -> Vec<Transition> {
        let pairs: BTreeSet<Pair> = pairs.into_iter().collect();
        let before: Vec<bool> = pairs.iter().map(|(c, u)| self.is_online(c, u)).collect();
        change(self);
        let mut out = Vec::new();
        for ((conv, user), was) in pairs.into_iter().zip(before) {
            let now = self.is_online(&conv, &user);
            if now == was {
                continue;
            }
            let change = if now {
                let profile = self
                    .profiles
                    .get(&user)
                    .cloned()
                    .unwrap_or_else(|| UserRef::new(&user, None, None));
                Change::Online(profile)
            } else {
                let latest = self.left_at.remove(&(conv.clone(), user.clone()));
                Change::Offline {
                    last_seen_at: latest.unwrap_or(at).max(at),
                }
            };
            out.push(Transition { conv, user, change });
        }
        out
    }
}

fn pairs_of(rooms: &Rooms) -> Vec<Pair> {
    rooms
        .iter()
        .flat_map(|(c, users)| users.iter().map(move |u| (c.clone(), u.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> ConversationId {
        ConversationId::parse("conv_1").expect("a valid id")
    }
    fn user(n: &str) -> UserId {
        UserId::parse(n).expect("a valid id")
    }
    fn profile(u: &UserId) -> UserRef {
        UserRef::new(u, Some("Name"), None)
    }
    fn node(n: &str) -> Presence {
        Presence::new(NodeId(n.into()))
    }
    fn online(u: &UserId) -> Transition {
        Transition {
            conv: conv(),
            user: u.clone(),
            change: Change::Online(profile(u)),
        }
    }
    fn offline(u: &UserId, last_seen_at: Millis) -> Transition {
        Transition {
            conv: conv(),
            user: u.clone(),
            change: Change::Offline { last_seen_at },
        }
    }
    /// Delivers `msg` from one node to another, as NATS would.
    fn deliver(to: &mut Presence, msg: &PresenceMsg, now: Instant) -> Received {
        to.receive(msg.clone(), now, 1000)
    }

    #[test]
    fn first_socket_is_online_and_last_is_offline_others_are_silent() {
        let mut a = node("a");
        let ann = user("user_ann");
        let first = a.enter(&conv(), &ann, profile(&ann), 1);
        assert_eq!(first.transitions, vec![online(&ann)]);
        assert!(first.awaits().is_some());
        let second = a.enter(&conv(), &ann, profile(&ann), 2);
        assert_eq!(second.transitions, vec![]);
        assert_eq!(a.online_users(&conv()), vec![ann.clone()]);
        let one_left = a.leave(&conv(), &ann, 3);
        assert_eq!((one_left.transitions, one_left.last_here), (vec![], false));
        assert_eq!(one_left.delta, None, "the other nodes see no change");
        let last = a.leave(&conv(), &ann, 4);
        assert_eq!(last.transitions, vec![offline(&ann, 4)]);
        assert!(last.last_here);
        assert!(matches!(
            last.delta,
            Some(PresenceMsg::Delta {
                online: false,
                at: 4,
                ..
            })
        ));
        assert_eq!(a.online_users(&conv()), vec![]);
    }

    #[test]
    fn a_user_on_two_nodes_goes_offline_once_when_both_are_gone() {
        let (mut a, mut b) = (node("a"), node("b"));
        let now = Instant::now();
        let bob = user("user_bob");
        let on_a = a.enter(&conv(), &bob, profile(&bob), 1);
        let seen = deliver(&mut b, on_a.delta.as_ref().expect("a delta"), now);
        assert_eq!(seen.transitions, vec![online(&bob)]);
        let on_b = b.enter(&conv(), &bob, profile(&bob), 2);
        assert_eq!(on_b.transitions, vec![], "b already counts bob on a");
        assert_eq!(
            deliver(&mut a, on_b.delta.as_ref().expect("a delta"), now).transitions,
            vec![]
        );
        let left_a = a.leave(&conv(), &bob, 10);
        assert_eq!(left_a.transitions, vec![], "a still sees bob on b");
        let left_b = b.leave(&conv(), &bob, 20);
        assert_eq!(left_b.transitions, vec![], "b still sees bob on a");
        // Each node learns of the other's departure: both announce one offline, with the
        // latest departure seen anywhere.
        let at_b = deliver(&mut b, left_a.delta.as_ref().expect("a delta"), now);
        let at_a = deliver(&mut a, left_b.delta.as_ref().expect("a delta"), now);
        assert_eq!(at_b.transitions, vec![offline(&bob, 20)]);
        assert_eq!(at_a.transitions, vec![offline(&bob, 20)]);
        assert_eq!(a.kept().1, 0, "departure times pruned at the offline");
    }

    #[test]
    fn a_join_asks_every_confirming_node_and_waits_for_them() {
        let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
        let now = Instant::now();
        for n in [&mut b, &mut c] {
            deliver(&mut a, &n.snapshot(), now);
        }
        let ann = user("user_ann");
        let join = a.enter(&conv(), &ann, profile(&ann), 1);
        let seq = join.awaits().expect("a join awaits");
        assert_eq!(
            a.awaiting(seq),
            vec![NodeId("b".into()), NodeId("c".into())]
        );
        let from_b = deliver(&mut b, join.delta.as_ref().expect("a delta"), now);
        let (to, confirm) = from_b.confirm.expect("a confirm");
        assert_eq!(to, NodeId("a".into()));
        assert_eq!(
            b.online_users(&conv()),
            vec![ann.clone()],
            "counted before it confirms"
        );
        a.confirmed(confirm, now);
        assert_eq!(a.awaiting(seq), vec![NodeId("c".into())]);
        a.unresponsive(&[NodeId("c".into())]);
        assert_eq!(
            a.awaiting(seq + 1),
            vec![NodeId("b".into())],
            "c not waited for again"
        );
        let from_c = deliver(&mut c, join.delta.as_ref().expect("a delta"), now);
        a.confirmed(from_c.confirm.expect("a confirm").1, now);
        assert_eq!(
            a.awaiting(seq + 1),
            vec![NodeId("b".into()), NodeId("c".into())]
        );
    }

    #[test]
    fn nodes_that_do_not_confirm_are_not_waited_for() {
        let (mut a, b) = (node("a"), node("b"));
        let now = Instant::now();
        let PresenceMsg::State {
            node,
            rooms,
            profiles,
            seq,
            ..
        } = b.snapshot()
        else {
            unreachable!()
        };
        let older = PresenceMsg::State {
            node,
            rooms,
            profiles,
            seq,
            confirms: false,
        };
        deliver(&mut a, &older, now);
        let ann = user("user_ann");
        let join = a.enter(&conv(), &ann, profile(&ann), 1);
        assert_eq!(a.awaiting(join.awaits().expect("a join awaits")), vec![]);
    }

    #[test]
    fn a_late_snapshot_does_not_undo_a_newer_delta() {
        let (mut a, mut b) = (node("a"), node("b"));
        let now = Instant::now();
        let cat = user("user_cat");
        let before = a.snapshot();
        let join = a.enter(&conv(), &cat, profile(&cat), 1);
        deliver(&mut b, join.delta.as_ref().expect("a delta"), now);
        let late = deliver(&mut b, &before, now);
        assert_eq!(late.transitions, vec![], "the older snapshot is dropped");
        assert_eq!(b.online_users(&conv()), vec![cat.clone()]);
        // A delta delivered twice is applied once.
        let left = a.leave(&conv(), &cat, 5);
        assert_eq!(
            deliver(&mut b, left.delta.as_ref().expect("a delta"), now).transitions,
            vec![offline(&cat, 5)]
        );
        assert_eq!(
            deliver(&mut b, join.delta.as_ref().expect("a delta"), now).transitions,
            vec![],
            "a replayed join is stale"
        );
        assert_eq!(b.online_users(&conv()), vec![]);
    }

    #[test]
    fn a_snapshot_replaces_what_was_known_of_that_node() {
        let (mut a, mut b) = (node("a"), node("b"));
        let now = Instant::now();
        let (ann, bob) = (user("user_ann"), user("user_bob"));
        a.enter(&conv(), &ann, profile(&ann), 1);
        let seen = deliver(&mut b, &a.snapshot(), now);
        assert_eq!(seen.transitions, vec![online(&ann)]);
        a.leave(&conv(), &ann, 2);
        a.enter(&conv(), &bob, profile(&bob), 3);
        let seen = deliver(&mut b, &a.snapshot(), now);
        assert_eq!(
            seen.transitions,
            vec![offline(&ann, 1000), online(&bob)],
            "a snapshot says nothing of when: the time it arrived"
        );
    }

    #[test]
    fn a_node_not_heard_from_expires_with_its_users() {
        let (mut a, mut b) = (node("a"), node("b"));
        let start = Instant::now();
        let cat = user("user_cat");
        b.enter(&conv(), &cat, profile(&cat), 1);
        deliver(&mut a, &b.snapshot(), start);
        let (dead, t) = a.expire(start + EXPIRY / 2, 100);
        assert_eq!((dead, t), (vec![], vec![]));
        let (dead, t) = a.expire(start + EXPIRY + Duration::from_secs(1), 100);
        assert_eq!(dead, vec![NodeId("b".into())]);
        assert_eq!(t, vec![offline(&cat, 100)]);
        assert_eq!(a.online_users(&conv()), vec![]);
        a.prune();
        assert_eq!(a.kept(), (0, 0));
    }

    #[test]
    fn a_user_on_two_dead_nodes_goes_offline_once() {
        let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
        let start = Instant::now();
        let cat = user("user_cat");
        for n in [&mut b, &mut c] {
            n.enter(&conv(), &cat, profile(&cat), 1);
            deliver(&mut a, &n.snapshot(), start);
        }
        let (_, t) = a.expire(start + EXPIRY * 2, 100);
        assert_eq!(t, vec![offline(&cat, 100)]);
    }

    #[test]
    fn a_disconnect_is_held_and_a_return_within_the_grace_cancels_it() {
        let (mut a, mut b) = (node("a"), node("b"));
        let now = Instant::now();
        let dan = user("user_dan");
        let join = a.enter(&conv(), &dan, profile(&dan), 1);
        deliver(&mut b, join.delta.as_ref().expect("a delta"), now);
        let hold = a.hold(&conv(), &dan, 5);
        assert_eq!(a.online_users(&conv()), vec![dan.clone()], "still counted");
        assert_eq!(a.holds(), 1);
        let back = a.enter(&conv(), &dan, profile(&dan), 6);
        assert_eq!(
            back,
            Changed::default(),
            "no offline, no online, nothing sent"
        );
        assert_eq!(a.release(hold), None, "the hold was taken over");
        assert_eq!(a.holds(), 0);
        let gone = a.leave(&conv(), &dan, 9);
        assert_eq!(gone.transitions, vec![offline(&dan, 9)]);
    }

    #[test]
    fn a_hold_released_leaves_at_the_disconnect_time() {
        let mut a = node("a");
        let dan = user("user_dan");
        a.enter(&conv(), &dan, profile(&dan), 1);
        let hold = a.hold(&conv(), &dan, 5);
        let released = a.release(hold).expect("still held");
        assert_eq!(released.transitions, vec![offline(&dan, 5)]);
        assert!(released.last_here);
    }

    #[test]
    fn a_return_on_another_node_within_the_grace_is_seamless() {
        let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
        let now = Instant::now();
        let dan = user("user_dan");
        let join = a.enter(&conv(), &dan, profile(&dan), 1);
        for n in [&mut b, &mut c] {
            deliver(n, join.delta.as_ref().expect("a delta"), now);
        }
        let hold = a.hold(&conv(), &dan, 5);
        let back = b.enter(&conv(), &dan, profile(&dan), 6);
        assert_eq!(
            back.transitions,
            vec![],
            "b still counts the held socket on a"
        );
        for n in [&mut a, &mut c] {
            assert_eq!(
                deliver(n, back.delta.as_ref().expect("a delta"), now).transitions,
                vec![]
            );
        }
        let released = a.release(hold).expect("still held");
        assert_eq!(released.transitions, vec![], "dan is on b");
        for n in [&mut b, &mut c] {
            let t = deliver(n, released.delta.as_ref().expect("a delta"), now).transitions;
            assert_eq!(t, vec![]);
        }
        assert_eq!(c.online_users(&conv()), vec![dan]);
    }

    #[test]
    fn profiles_and_departures_of_users_gone_everywhere_are_pruned() {
        let (mut a, mut b) = (node("a"), node("b"));
        let now = Instant::now();
        let eve = user("user_eve");
        let fay = user("user_fay");
        a.enter(&conv(), &eve, profile(&eve), 1);
        a.enter(&conv(), &fay, profile(&fay), 1);
        // A departure of a user this node never saw in the room.
        let stray = PresenceMsg::Delta {
            node: NodeId("c".into()),
            conv: conv(),
            user: user("user_gus"),
            profile: Some(profile(&user("user_gus"))),
            online: false,
            at: 3,
            seq: 1,
            confirms: true,
        };
        deliver(&mut a, &stray, now);
        let join = b.enter(&conv(), &fay, profile(&fay), 1);
        deliver(&mut a, join.delta.as_ref().expect("a delta"), now);
        a.leave(&conv(), &fay, 4);
        a.leave(&conv(), &eve, 4);
        a.prune();
        assert_eq!(a.kept(), (1, 1), "fay is still on b; eve and gus are gone");
        assert_eq!(a.online_users(&conv()), vec![fay]);
    }

    #[test]
    fn a_starting_node_is_answered_with_the_state() {
        let (mut a, b) = (node("a"), node("b"));
        let ann = user("user_ann");
        a.enter(&conv(), &ann, profile(&ann), 1);
        let r = a.receive(b.hello(), Instant::now(), 0);
        assert_eq!(r.reply, Some(a.snapshot()));
        assert_eq!(a.receive(a.hello(), Instant::now(), 0), Received::default());
    }
}
