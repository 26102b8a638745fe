//! Ephemeral, cross-node state and signals that never enter the log: who is in which room
//! (presence) and who is typing. Carried by core NATS (not the stream) under
//! `_live.<prefix>.…`:
//!
//! - `…presence`: every node announces its local changes (`delta`), its whole local state every
//!   [`HEARTBEAT`] (`state`), and answers a `sync` request from a starting node. A node not heard
//!   from for [`EXPIRY`] is forgotten, so a dead node cannot leave its users online.
//!   `user:online` / `user:offline` are decided by each node for its own sockets, when a user
//!   appears in or disappears from a room in that node's view of all nodes. Two sockets of one
//!   user leaving on two nodes at once therefore still yield exactly one `user:offline` per
//!   watching socket (a "last one out" decided by one node would race).
//! - `…room.<conversationId>`: a room signal (typing). Every node, the sender included, emits
//!   it to its own sockets of that room, except the sockets of the user it is about.

mod bus;

pub use bus::Bus;

use crate::push::rooms::{conversation_room, user_room};
use events::{ConversationId, Subjects, UserId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socketioxide::SocketIo;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::socket::{NamedUser, SocketEvent, TypingStart, TypingStop, UserOffline, UserOnline};
use wire::{Timestamp, UserRef};

pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const EXPIRY: Duration = Duration::from_secs(15);
/// Silence after which the server stops a typist by itself.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(6);

type Rooms = HashMap<String, HashSet<String>>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum PresenceMsg {
    /// `user` (with its `{id, name, avatarUrl}` profile) entered or left `conv` on `node` at `at`.
    Delta {
        node: String,
        conv: String,
        user: String,
        /// Absent (null) from a node that does not know the profile.
        #[serde(default)]
        profile: Option<UserRef>,
        online: bool,
        at: i64,
        /// The sending node's change counter after this change (see [`State::seq`]).
        #[serde(default)]
        seq: u64,
    },
    State {
        node: String,
        rooms: Rooms,
        profiles: HashMap<String, UserRef>,
        /// The sending node's change counter when this snapshot was taken.
        #[serde(default)]
        seq: u64,
    },
    Sync {
        node: String,
    },
}

/// A user appearing in (or disappearing from) a room in this node's view.
struct Transition {
    conv: String,
    user: String,
    online: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct RoomSignal {
    event: String,
    payload: Value,
    except_user: Option<String>,
}

struct Remote {
    heard: Instant,
    rooms: Rooms,
    /// The latest change counter applied from that node.
    seq: u64,
}

impl Remote {
    /// Whether a message with change counter `seq` is older than what was applied (messages
    /// are published after the lock that ordered them is released, so a snapshot or a delta
    /// can arrive after a later delta; 0 is a sender without counters: always applied).
    fn is_stale(&self, seq: u64) -> bool {
        seq != 0 && seq < self.seq
    }
}

#[derive(Default)]
struct State {
    /// conversation → user → number of this node's sockets in the room.
    local: HashMap<String, HashMap<String, usize>>,
    remote: HashMap<String, Remote>,
    /// Profiles of the users in rooms, for `user:online`.
    profiles: HashMap<String, UserRef>,
    /// Latest departure seen of each (conversation, user), on any node: the `lastSeenAt` of
    /// `user:offline`, equal to the persisted one (the latest of the nodes' records).
    left_at: HashMap<(String, String), i64>,
    /// (socket id, conversation) → generation of the running typing timer.
    typing: HashMap<(String, String), u64>,
    generation: u64,
    /// Counts this node's presence changes; sent with each delta and snapshot so that other
    /// nodes apply them in order.
    seq: u64,
}

impl State {
    /// Runs `change` and reports which of `pairs` changed between online and offline.
    fn transitions(
        &mut self,
        pairs: Vec<(String, String)>,
        change: impl FnOnce(&mut Self),
    ) -> Vec<Transition> {
        let before: Vec<bool> = pairs.iter().map(|(c, u)| online_in(self, c, u)).collect();
        change(self);
        pairs
            .into_iter()
            .zip(before)
            .filter_map(|((conv, user), was)| {
                let now = online_in(self, &conv, &user);
                (now != was).then_some(Transition {
                    conv,
                    user,
                    online: now,
                })
            })
            .collect()
    }
}

fn pairs_of(rooms: &Rooms) -> Vec<(String, String)> {
    rooms
        .iter()
        .flat_map(|(c, users)| users.iter().map(move |u| (c.clone(), u.clone())))
        .collect()
}

pub struct Live {
    node: String,
    bus: Bus,
    presence_subject: String,
    room_prefix: String,
    io: SocketIo,
    state: Mutex<State>,
}

impl Live {
    /// Starts the live layer: subscribes, asks the other nodes for their state, and keeps
    /// heartbeating until the returned tasks are dropped.
    pub async fn start(
        bus: Bus,
        subjects: &Subjects,
        io: SocketIo,
    ) -> Result<(Arc<Self>, Vec<tokio::task::JoinHandle<()>>), String> {
        let base = format!("_live.{}", subjects.prefix);
        let live = Arc::new(Self {
            node: ulid::Ulid::new().to_string(),
            bus: bus.clone(),
            presence_subject: format!("{base}.presence"),
            room_prefix: format!("{base}.room"),
            io,
            state: Mutex::new(State::default()),
        });
        let mut presence = bus.subscribe(live.presence_subject.clone()).await?;
        let mut rooms = bus.subscribe(format!("{}.>", live.room_prefix)).await?;
        let mut tasks = Vec::new();
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((_, payload)) = presence.next().await {
                if let Ok(m) = serde_json::from_slice::<PresenceMsg>(&payload) {
                    l.on_presence(m).await;
                }
            }
        }));
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((subject, payload)) = rooms.next().await {
                let conv = subject.rsplit('.').next().unwrap_or_default().to_owned();
                if let Ok(s) = serde_json::from_slice::<RoomSignal>(&payload) {
                    l.emit_local(&conv, &s.event, &s.payload, s.except_user.as_deref())
                        .await;
                }
            }
        }));
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                l.publish_presence(&l.state_message()).await;
                l.expire().await;
            }
        }));
        live.publish_presence(&PresenceMsg::Sync {
            node: live.node.clone(),
        })
        .await;
        Ok((live, tasks))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state_message(&self) -> PresenceMsg {
        let st = self.lock();
        let rooms: Rooms = st
            .local
            .iter()
            .map(|(c, users)| (c.clone(), users.keys().cloned().collect()))
            .collect();
        let profiles = rooms
            .values()
            .flatten()
            .filter_map(|u| st.profiles.get(u).map(|p| (u.clone(), p.clone())))
            .collect();
        PresenceMsg::State {
            node: self.node.clone(),
            rooms,
            seq: st.seq,
            profiles,
        }
    }

    async fn publish_presence(&self, m: &PresenceMsg) {
        if let Ok(bytes) = serde_json::to_vec(m)
            && let Err(e) = self
                .bus
                .publish(self.presence_subject.clone(), bytes.into())
                .await
        {
            tracing::warn!(error = %e, "live: cannot publish presence");
        }
    }

    async fn on_presence(&self, m: PresenceMsg) {
        let now = events::now_millis();
        let (changes, at) = match m {
            PresenceMsg::Sync { node } if node != self.node => {
                self.publish_presence(&self.state_message()).await;
                return;
            }
            PresenceMsg::State {
                node,
                rooms,
                profiles,
                seq,
            } if node != self.node => {
                let mut st = self.lock();
                if let Some(r) = st.remote.get_mut(&node)
                    && r.is_stale(seq)
                {
                    r.heard = Instant::now();
                    return;
                }
                st.profiles.extend(profiles);
                let mut pairs = pairs_of(&rooms);
                if let Some(old) = st.remote.get(&node) {
                    pairs.extend(pairs_of(&old.rooms));
                }
                let changes = st.transitions(pairs, |st| {
                    st.remote.insert(
                        node,
                        Remote {
                            heard: Instant::now(),
                            rooms,
                            seq,
                        },
                    );
                });
                (changes, now)
            }
            PresenceMsg::Delta {
                node,
                conv,
                user,
                profile,
                online,
                at,
                seq,
            } if node != self.node => {
                let mut st = self.lock();
                if let Some(r) = st.remote.get_mut(&node)
                    && (r.is_stale(seq) || (seq != 0 && seq == r.seq))
                {
                    r.heard = Instant::now();
                    return;
                }
                if let Some(profile) = profile {
                    st.profiles.insert(user.clone(), profile);
                }
                if !online {
                    note_departure(&mut st, &conv, &user, at);
                }
                let changes = st.transitions(vec![(conv.clone(), user.clone())], |st| {
                    let r = st.remote.entry(node).or_insert_with(|| Remote {
                        heard: Instant::now(),
                        rooms: Rooms::new(),
                        seq: 0,
                    });
                    r.heard = Instant::now();
                    r.seq = r.seq.max(seq);
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
                (changes, at)
            }
            _ => return,
        };
        self.announce(changes, at).await;
    }

    /// Tells this node's sockets about users appearing in or leaving rooms; `at` is when the
    /// change happened (the `lastSeenAt` of a departure).
    async fn announce(&self, changes: Vec<Transition>, at: events::Millis) {
        let timestamp = Timestamp(events::now_millis());
        for t in changes {
            let (Ok(conversation_id), Ok(user_id)) =
                (ConversationId::parse(&t.conv), UserId::parse(&t.user))
            else {
                continue;
            };
            if t.online {
                let user = self
                    .lock()
                    .profiles
                    .get(&t.user)
                    .cloned()
                    .unwrap_or_else(|| UserRef::new(&user_id, None, None));
                let online = UserOnline {
                    conversation_id,
                    user_id,
                    user,
                    timestamp,
                };
                self.emit_local(&t.conv, UserOnline::NAME, &online, Some(&t.user))
                    .await;
            } else {
                let latest = self
                    .lock()
                    .left_at
                    .get(&(t.conv.clone(), t.user.clone()))
                    .copied();
                let offline = UserOffline {
                    conversation_id,
                    user_id,
                    timestamp,
                    last_seen_at: Timestamp(latest.unwrap_or(at).max(at)),
                };
                self.emit_local(&t.conv, UserOffline::NAME, &offline, Some(&t.user))
                    .await;
            }
        }
    }

    /// Forgets nodes not heard from; their users who are now nowhere in a room go offline for
    /// this node's sockets of that room.
    async fn expire(&self) {
        let changes = {
            let mut st = self.lock();
            let dead: Vec<String> = st
                .remote
                .iter()
                .filter(|(_, r)| r.heard.elapsed() > EXPIRY)
                .map(|(n, _)| n.clone())
                .collect();
            let pairs = dead
                .iter()
                .filter_map(|n| st.remote.get(n))
                .flat_map(|r| pairs_of(&r.rooms))
                .collect();
            st.transitions(pairs, |st| {
                for n in &dead {
                    tracing::warn!(node = %n, "live: node expired");
                    st.remote.remove(n);
                }
            })
        };
        self.announce(changes, events::now_millis()).await;
    }

    async fn emit_local<T: Serialize + ?Sized>(
        &self,
        conv: &str,
        event: &str,
        payload: &T,
        except_user: Option<&str>,
    ) {
        let Ok(id) = ConversationId::parse(conv) else {
            return;
        };
        let mut op = self.io.to(conversation_room(&id));
        if let Some(u) = except_user.and_then(|u| UserId::parse(u).ok()) {
            op = op.except(user_room(&u));
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
        let Ok(payload) = serde_json::to_value(payload) else {
            return;
        };
        let s = RoomSignal {
            event: E::NAME.to_owned(),
            payload,
            except_user: except_user.map(ToString::to_string),
        };
        if let Ok(bytes) = serde_json::to_vec(&s)
            && let Err(e) = self
                .bus
                .publish(format!("{}.{conv}", self.room_prefix), bytes.into())
                .await
        {
            tracing::warn!(error = %e, "live: cannot publish a room signal");
        }
    }

    /// Distinct users with a socket in the room, all nodes.
    pub fn online_users(&self, conv: &ConversationId) -> Vec<UserId> {
        let st = self.lock();
        let mut all: HashSet<&String> = HashSet::new();
        if let Some(users) = st.local.get(conv.as_str()) {
            all.extend(users.keys());
        }
        for r in st.remote.values() {
            if let Some(users) = r.rooms.get(conv.as_str()) {
                all.extend(users.iter());
            }
        }
        let mut out: Vec<UserId> = all
            .into_iter()
            .filter_map(|u| UserId::parse(u).ok())
            .collect();
        out.sort();
        out
    }

    /// A socket of `user` (with its `{id, name, avatarUrl}` profile) entered the room.
    pub async fn entered(&self, conv: &ConversationId, user: &UserId, profile: UserRef) {
        let (changes, seq) = {
            let mut st = self.lock();
            st.profiles.insert(user.to_string(), profile.clone());
            st.seq += 1;
            let changes = st.transitions(vec![(conv.to_string(), user.to_string())], |st| {
                *st.local
                    .entry(conv.to_string())
                    .or_default()
                    .entry(user.to_string())
                    .or_insert(0) += 1;
            });
            (changes, st.seq)
        };
        let at = events::now_millis();
        self.publish_presence(&PresenceMsg::Delta {
            node: self.node.clone(),
            conv: conv.to_string(),
            user: user.to_string(),
            profile: Some(profile),
            online: true,
            at,
            seq,
        })
        .await;
        self.announce(changes, at).await;
    }

    /// A socket of `user` left the room at `at`. Returns whether it was the user's last socket
    /// there on this node.
    pub async fn left(&self, conv: &ConversationId, user: &UserId, at: events::Millis) -> bool {
        let (last_here, changes, profile, seq) = {
            let mut st = self.lock();
            note_departure(&mut st, conv.as_str(), user.as_str(), at);
            st.seq += 1;
            let mut last_here = false;
            let changes = st.transitions(vec![(conv.to_string(), user.to_string())], |st| {
                if let Some(users) = st.local.get_mut(conv.as_str()) {
                    if let Some(n) = users.get_mut(user.as_str()) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            users.remove(user.as_str());
                            last_here = true;
                        }
                    }
                    if users.is_empty() {
                        st.local.remove(conv.as_str());
                    }
                }
            });
            (
                last_here,
                changes,
                st.profiles.get(user.as_str()).cloned(),
                st.seq,
            )
        };
        if last_here {
            self.publish_presence(&PresenceMsg::Delta {
                node: self.node.clone(),
                conv: conv.to_string(),
                user: user.to_string(),
                profile,
                online: false,
                at,
                seq,
            })
            .await;
        }
        self.announce(changes, at).await;
        last_here
    }

    /// `typing:start` from socket `sid`: tells the room, and (re)arms the 6 s stop.
    pub async fn typing_started(
        self: &Arc<Self>,
        sid: &str,
        conv: &ConversationId,
        user: &UserId,
        name: &str,
    ) {
        let key = (sid.to_owned(), conv.to_string());
        let generation = {
            let mut st = self.lock();
            st.generation += 1;
            let g = st.generation;
            st.typing.insert(key.clone(), g);
            g
        };
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
            let expired = {
                let mut st = live.lock();
                if st.typing.get(&key) == Some(&generation) {
                    st.typing.remove(&key);
                    true
                } else {
                    false
                }
            };
            if expired {
                live.signal_stop(&conv, &user).await;
            }
        });
    }

    /// `typing:stop`, leaving or disconnecting: tells the room if `sid` was typing there.
    pub async fn typing_stopped(&self, sid: &str, conv: &ConversationId, user: &UserId) {
        let was = self
            .lock()
            .typing
            .remove(&(sid.to_owned(), conv.to_string()))
            .is_some();
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

fn note_departure(st: &mut State, conv: &str, user: &str, at: i64) {
    let e = st
        .left_at
        .entry((conv.to_owned(), user.to_owned()))
        .or_insert(at);
    *e = (*e).max(at);
}

fn online_in(st: &State, conv: &str, user: &str) -> bool {
    st.local.get(conv).is_some_and(|u| u.contains_key(user))
        || st
            .remote
            .values()
            .any(|r| r.rooms.get(conv).is_some_and(|u| u.contains(user)))
}
