//! Ephemeral, cross-node state and signals that never enter the log: who is in which room
//! (presence) and who is typing. Carried by the [`Bus`] (core NATS between nodes, not the
//! stream) under `_live.<prefix>.…`:
//!
//! - `…presence`: every node announces its local changes (deltas), its whole local state every
//!   [`HEARTBEAT`], and answers a starting node's `sync` with its state.
//! - `…confirm.<node>`: the answers to a join's delta; a join is acknowledged only once every
//!   node counts the socket.
//! - `…room.<conversationId>`: a room signal (typing). Every node, the sender included, emits
//!   it to its own sockets of that room, except the sockets of the user it is about.
//!
//! This module is the driver: it owns the clock, the timers (typing's stop, the disconnect
//! grace, the heartbeat), the emits, and which rooms each socket of this node is in. What
//! presence and typing mean is decided in [`presence`] and [`typing`], pure state machines
//! with their own tests; what nodes send each other is [`protocol`]. Must not touch the log or parse client input.

mod bus;
pub mod presence;
pub mod protocol;
pub mod typing;

pub use bus::Bus;

use crate::push::rooms::{conversation_room, user_room};
use events::{ConversationId, Millis, Subjects, UserId, now_millis};
use futures::StreamExt;
use presence::{Change, Changed, HoldId, Presence, Transition};
use prometheus_client::metrics::gauge::Gauge;
use protocol::{Confirm, NodeId, PresenceMsg, RoomSignal};
use serde::Serialize;
use serde::de::DeserializeOwned;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use typing::{TYPING_TIMEOUT, Typing};
use wire::Timestamp;
use wire::socket::{NamedUser, SocketEvent, TypingStart, TypingStop, UserOffline, UserOnline};

pub use presence::EXPIRY;

pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a join waits for the other nodes to confirm they count it.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

struct LiveSubjects {
    presence: String,
    room_prefix: String,
    confirm_prefix: String,
}

pub struct Live {
    bus: Bus,
    subjects: LiveSubjects,
    io: SocketIo,
    /// How long a disconnected socket still counts (`CHAT_PRESENCE_GRACE_MS`).
    grace: Duration,
    presence: Mutex<Presence>,
    typing: Mutex<Typing>,
    /// Woken by every confirm received.
    confirmed: Notify,
    /// Disconnected sockets still held (shutdown waits for their grace to end), also shown as
    /// the `chat_presence_held` gauge.
    holds: watch::Sender<usize>,
    held_gauge: Gauge,
    /// The rooms each socket of this node entered: socketioxide forgets a socket's rooms when
    /// its transport closes, which can be before its disconnect handler runs.
    joined: Mutex<HashMap<Sid, HashSet<ConversationId>>>,
}

/// The disconnects of one socket, held until their grace ends ([`Live::release`]).
#[must_use]
pub struct Holds {
    at: Millis,
    held: Vec<(ConversationId, HoldId)>,
}

impl Holds {
    /// The rooms the socket was in.
    pub fn conversations(&self) -> impl Iterator<Item = &ConversationId> {
        self.held.iter().map(|(c, _)| c)
    }
}

impl Live {
    /// Starts the live layer: subscribes, asks the other nodes for their state, and keeps
    /// heartbeating until the returned tasks are dropped.
    pub async fn start(
        bus: Bus,
        subjects: &Subjects,
        io: SocketIo,
        grace: Duration,
        held_gauge: Gauge,
    ) -> Result<(Arc<Self>, Vec<tokio::task::JoinHandle<()>>), String> {
        let base = format!("_live.{}", subjects.prefix);
        let node = NodeId::generate();
        let live = Arc::new(Self {
            bus: bus.clone(),
            subjects: LiveSubjects {
                presence: format!("{base}.presence"),
                room_prefix: format!("{base}.room"),
                confirm_prefix: format!("{base}.confirm"),
            },
            io,
            grace,
            presence: Mutex::new(Presence::new(node.clone())),
            typing: Mutex::default(),
            confirmed: Notify::new(),
            holds: watch::Sender::new(0),
            held_gauge,
            joined: Mutex::default(),
        });
        let mut presence = bus.subscribe(live.subjects.presence.clone()).await?;
        let mut confirms = bus
            .subscribe(format!("{}.{node}", live.subjects.confirm_prefix))
            .await?;
        let mut rooms = bus
            .subscribe(format!("{}.>", live.subjects.room_prefix))
            .await?;
        let mut tasks = Vec::new();
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((_, payload)) = presence.next().await {
                if let Some(m) = decode::<PresenceMsg>(&payload) {
                    l.on_presence(m).await;
                }
            }
        }));
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((_, payload)) = confirms.next().await {
                if let Some(c) = decode::<Confirm>(&payload) {
                    l.lock().confirmed(c, Instant::now());
                    l.confirmed.notify_waiters();
                }
            }
        }));
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((subject, payload)) = rooms.next().await {
                let Some(conv) = subject
                    .rsplit('.')
                    .next()
                    .and_then(|c| ConversationId::parse(c).ok())
                else {
                    continue;
                };
                if let Some(s) = decode::<RoomSignal>(&payload) {
                    l.emit_local(&conv, &s.event, &s.payload, s.except_user.as_ref())
                        .await;
                }
            }
        }));
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let snapshot = l.lock().snapshot();
                l.publish_presence(&snapshot).await;
                l.expire().await;
                l.lock().prune();
            }
        }));
        let hello = live.lock().hello();
        live.publish_presence(&hello).await;
        Ok((live, tasks))
    }

    fn lock(&self) -> MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_typing(&self) -> MutexGuard<'_, Typing> {
        self.typing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_holds(&self, n: usize) {
        self.holds.send_replace(n);
        self.held_gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn lock_joined(&self) -> MutexGuard<'_, HashMap<Sid, HashSet<ConversationId>>> {
        self.joined.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn publish<T: Serialize>(&self, subject: String, m: &T) {
        match serde_json::to_vec(m) {
            Ok(bytes) => {
                if let Err(e) = self.bus.publish(subject, bytes.into()).await {
                    tracing::warn!(error = %e, "live: cannot publish");
                }
            }
            Err(e) => tracing::warn!(error = %e, "live: cannot encode a message"),
        }
    }

    async fn publish_presence(&self, m: &PresenceMsg) {
        self.publish(self.subjects.presence.clone(), m).await;
    }

    async fn on_presence(&self, m: PresenceMsg) {
        let r = self.lock().receive(m, Instant::now(), now_millis());
        if let Some(reply) = &r.reply {
            self.publish_presence(reply).await;
        }
        if let Some((to, confirm)) = &r.confirm {
            self.publish(format!("{}.{to}", self.subjects.confirm_prefix), confirm)
                .await;
        }
        self.announce(r.transitions).await;
    }

    /// Publishes a change of this node's sockets and tells this node's sockets about it.
    async fn apply(&self, changed: Changed) {
        if let Some(delta) = &changed.delta {
            self.publish_presence(delta).await;
        }
        self.announce(changed.transitions).await;
    }

    /// Tells this node's sockets about users appearing in or leaving rooms.
    async fn announce(&self, transitions: Vec<Transition>) {
        let timestamp = Timestamp(now_millis());
        for Transition { conv, user, change } in transitions {
            match change {
                Change::Online(profile) => {
                    let online = UserOnline {
                        conversation_id: conv.clone(),
                        user_id: user.clone(),
                        user: profile,
                        timestamp,
                    };
                    self.emit_local(&conv, UserOnline::NAME, &online, Some(&user))
                        .await;
                }
                Change::Offline { last_seen_at } => {
                    let offline = UserOffline {
                        conversation_id: conv.clone(),
                        user_id: user.clone(),
                        timestamp,
                        last_seen_at: Timestamp(last_seen_at),
                    };
                    self.emit_local(&conv, UserOffline::NAME, &offline, Some(&user))
                        .await;
                }
            }
        }
    }

    /// Forgets nodes not heard from; their users who are now nowhere in a room go offline for
    /// this node's sockets of that room.
    async fn expire(&self) {
        let (dead, transitions) = self.lock().expire(Instant::now(), now_millis());
        for n in dead {
            tracing::warn!(node = %n, "live: node expired");
        }
        self.announce(transitions).await;
    }

    async fn emit_local<T: Serialize + ?Sized>(
        &self,
        conv: &ConversationId,
        event: &str,
        payload: &T,
        except_user: Option<&UserId>,
    ) {
        let Some(root) = crate::push::root(&self.io) else {
            return;
        };
        let mut op = root.to(conversation_room(conv));
        if let Some(u) = except_user {
            op = op.except(user_room(u));
        }
        if let Err(e) = op.emit(event, payload).await {
            tracing::debug!(error = %e, event, "live: emit failed for some sockets");
        }
    }

    /// Sends a room signal to every node's sockets in the room, except `except_user`'s.
    pub async fn signal<E: SocketEvent>(
        &self,
        conv: &ConversationId,
        payload: &E,
        except_user: Option<&UserId>,
    ) {
        let payload = match serde_json::to_value(payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, event = E::NAME, "live: cannot encode a room signal");
                return;
            }
        };
        let s = RoomSignal {
            event: E::NAME.to_owned(),
            payload,
            except_user: except_user.cloned(),
        };
        self.publish(format!("{}.{conv}", self.subjects.room_prefix), &s)
            .await;
    }

    /// This node first, then the nodes it hears from, with the distinct users each has in rooms.
    pub fn nodes(&self) -> Vec<(protocol::NodeId, usize)> {
        self.lock().nodes()
    }

    /// Distinct users with a socket in the room, all nodes.
    pub fn online_users(&self, conv: &ConversationId) -> Vec<UserId> {
        self.lock().online_users(conv)
    }

    /// Socket `sid` of `user` (with its `{id, name, avatarUrl}` profile) entered the room; a
    /// second entry of the same socket changes nothing. Returns once every node that answers
    /// counts it (at most [`CONFIRM_TIMEOUT`]).
    pub async fn entered(
        &self,
        sid: Sid,
        conv: &ConversationId,
        user: &UserId,
        profile: wire::UserRef,
    ) {
        if !self
            .lock_joined()
            .entry(sid)
            .or_default()
            .insert(conv.clone())
        {
            return;
        }
        let (changed, held) = {
            let mut p = self.lock();
            (p.enter(conv, user, profile, now_millis()), p.holds())
        };
        self.count_holds(held);
        let awaits = changed.awaits();
        self.apply(changed).await;
        if let Some(seq) = awaits {
            self.await_confirms(seq).await;
        }
    }

    async fn await_confirms(&self, seq: u64) {
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        loop {
            let notified = self.confirmed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let missing = self.lock().awaiting(seq);
            if missing.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    nodes = ?missing,
                    "live: nodes did not confirm a join in time; not waiting for them until they answer"
                );
                self.lock().unresponsive(&missing);
                return;
            }
        }
    }

    /// Socket `sid` of `user` left the room at `at`. Returns whether it was the user's last
    /// socket in the room on this node (false when the socket was not in it).
    pub async fn left(&self, sid: Sid, conv: &ConversationId, user: &UserId, at: Millis) -> bool {
        if !self.forget(sid, Some(conv)).contains(conv) {
            return false;
        }
        let changed = self.lock().leave(conv, user, at);
        let last_here = changed.last_here;
        self.apply(changed).await;
        last_here
    }

    /// Socket `sid` of `user` disconnected at `at`: in each room it was in, it keeps counting
    /// for the grace period, so that a socket of the user joining within it replaces it
    /// unnoticed. End the holds with [`Self::release`].
    pub fn hold(&self, sid: Sid, user: &UserId, at: Millis) -> Holds {
        let convs = self.forget(sid, None);
        let mut p = self.lock();
        let held = convs
            .into_iter()
            .map(|c| {
                let id = p.hold(&c, user, at);
                (c, id)
            })
            .collect();
        self.count_holds(p.holds());
        Holds { at, held }
    }

    /// Takes `conv` (or every room, for `None`) off the rooms socket `sid` entered; returns
    /// those it was in.
    fn forget(&self, sid: Sid, conv: Option<&ConversationId>) -> HashSet<ConversationId> {
        let mut joined = self.lock_joined();
        let Some(rooms) = joined.get_mut(&sid) else {
            return HashSet::new();
        };
        let gone = match conv {
            Some(c) => rooms.take(c).into_iter().collect(),
            None => std::mem::take(rooms),
        };
        if rooms.is_empty() {
            joined.remove(&sid);
        }
        gone
    }

    /// Waits out the grace of `holds`, then ends them. Returns when the user was last seen
    /// (the disconnect, or a later departure of theirs that `user:offline` reports), and
    /// whether it was the user's last socket on this node in any of the rooms.
    pub async fn release(&self, holds: Holds) -> (Millis, bool) {
        tokio::time::sleep(self.grace).await;
        let (mut seen, mut last_here) = (holds.at, false);
        for (_, id) in holds.held {
            let released = self.lock().release(id);
            if let Some(changed) = released {
                last_here |= changed.last_here;
                for t in &changed.transitions {
                    if let Change::Offline { last_seen_at } = t.change {
                        seen = seen.max(last_seen_at);
                    }
                }
                self.apply(changed).await;
            }
        }
        let held = self.lock().holds();
        self.count_holds(held);
        (seen, last_here)
    }

    /// Resolves when no disconnected socket is held any more (shutdown waits for this, so that
    /// the grace of its sockets runs out before the node is gone).
    pub async fn settled(&self) {
        let mut rx = self.holds.subscribe();
        if rx.wait_for(|n| *n == 0).await.is_err() {
            tracing::debug!("live: hold counter closed");
        }
    }

    /// `typing:start` from socket `sid`: tells the room, and (re)arms the 6 s stop.
    pub async fn typing_started(
        self: &Arc<Self>,
        sid: Sid,
        conv: &ConversationId,
        user: &UserId,
        name: &str,
    ) {
        let generation = self.lock_typing().start(sid, conv);
        let start = TypingStart {
            conversation_id: conv.clone(),
            user_id: user.clone(),
            user: NamedUser {
                id: user.clone(),
                name: name.to_owned(),
            },
        };
        self.signal(conv, &start, Some(user)).await;
        let live = self.clone();
        let (conv, user) = (conv.clone(), user.clone());
        tokio::spawn(async move {
            tokio::time::sleep(TYPING_TIMEOUT).await;
            let expired = live.lock_typing().timed_out(sid, &conv, generation);
            if expired {
                live.signal_stop(&conv, &user).await;
            }
        });
    }

    /// `typing:stop`, leaving or disconnecting: tells the room if `sid` was typing there.
    pub async fn typing_stopped(&self, sid: Sid, conv: &ConversationId, user: &UserId) {
        let was = self.lock_typing().stop(sid, conv);
        if was {
            self.signal_stop(conv, user).await;
        }
    }

    async fn signal_stop(&self, conv: &ConversationId, user: &UserId) {
        let stop = TypingStop {
            conversation_id: conv.clone(),
            user_id: user.clone(),
        };
        self.signal(conv, &stop, Some(user)).await;
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    match serde_json::from_slice(payload) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::debug!(error = %e, "live: ignoring a message that does not decode");
            None
        }
    }
}
