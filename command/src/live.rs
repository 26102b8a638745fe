//! Ephemeral, cross-node state and signals that never enter the log: who is in which room
//! (presence) and who is typing. Carried by core NATS (not the stream) under
//! `_live.<prefix>.…`:
//!
//! - `…presence`: every node announces its local changes (`delta`), its whole local state every
//!   [`HEARTBEAT`] (`state`), and answers a `sync` request from a starting node. A node not heard
//!   from for [`EXPIRY`] is forgotten, so a dead node cannot leave its users online.
//! - `…room.<conversationId>`: a room signal (`user:online`, `user:offline`, typing). Every
//!   node, the sender included, emits it to its own sockets of that room, except the sockets
//!   of the user it is about.

use crate::socket::handlers::{conversation_room, user_room};
use events::{ConversationId, Subjects, UserId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socketioxide::SocketIo;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const EXPIRY: Duration = Duration::from_secs(15);
/// Silence after which the server stops a typist by itself.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(6);

type Rooms = HashMap<String, HashSet<String>>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum PresenceMsg {
    Delta {
        node: String,
        conv: String,
        user: String,
        online: bool,
    },
    State {
        node: String,
        rooms: Rooms,
    },
    Sync {
        node: String,
    },
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
}

#[derive(Default)]
struct State {
    /// conversation → user → number of this node's sockets in the room.
    local: HashMap<String, HashMap<String, usize>>,
    remote: HashMap<String, Remote>,
    /// (socket id, conversation) → generation of the running typing timer.
    typing: HashMap<(String, String), u64>,
    generation: u64,
}

pub struct Live {
    node: String,
    client: async_nats::Client,
    presence_subject: String,
    room_prefix: String,
    io: SocketIo,
    state: Mutex<State>,
}

impl Live {
    /// Starts the live layer: subscribes, asks the other nodes for their state, and keeps
    /// heartbeating until the returned tasks are dropped.
    pub async fn start(
        client: async_nats::Client,
        subjects: &Subjects,
        io: SocketIo,
    ) -> Result<(Arc<Self>, Vec<tokio::task::JoinHandle<()>>), async_nats::Error> {
        let base = format!("_live.{}", subjects.prefix);
        let live = Arc::new(Self {
            node: ulid::Ulid::new().to_string(),
            client: client.clone(),
            presence_subject: format!("{base}.presence"),
            room_prefix: format!("{base}.room"),
            io,
            state: Mutex::new(State::default()),
        });
        let mut presence = client.subscribe(live.presence_subject.clone()).await?;
        let mut rooms = client.subscribe(format!("{}.>", live.room_prefix)).await?;
        client.flush().await?;
        let mut tasks = Vec::new();
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(msg) = presence.next().await {
                if let Ok(m) = serde_json::from_slice::<PresenceMsg>(&msg.payload) {
                    l.on_presence(m).await;
                }
            }
        }));
        let l = live.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(msg) = rooms.next().await {
                let conv = msg
                    .subject
                    .as_str()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Ok(s) = serde_json::from_slice::<RoomSignal>(&msg.payload) {
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
                l.publish_presence(&PresenceMsg::State {
                    node: l.node.clone(),
                    rooms: l.local_rooms(),
                })
                .await;
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

    fn local_rooms(&self) -> Rooms {
        self.lock()
            .local
            .iter()
            .map(|(c, users)| (c.clone(), users.keys().cloned().collect()))
            .collect()
    }

    async fn publish_presence(&self, m: &PresenceMsg) {
        if let Ok(bytes) = serde_json::to_vec(m)
            && let Err(e) = self
                .client
                .publish(self.presence_subject.clone(), bytes.into())
                .await
        {
            tracing::warn!(error = %e, "live: cannot publish presence");
        }
    }

    async fn on_presence(&self, m: PresenceMsg) {
        match m {
            PresenceMsg::Sync { node } if node != self.node => {
                self.publish_presence(&PresenceMsg::State {
                    node: self.node.clone(),
                    rooms: self.local_rooms(),
                })
                .await;
            }
            PresenceMsg::State { node, rooms } if node != self.node => {
                self.lock().remote.insert(
                    node,
                    Remote {
                        heard: Instant::now(),
                        rooms,
                    },
                );
            }
            PresenceMsg::Delta {
                node,
                conv,
                user,
                online,
            } if node != self.node => {
                let mut st = self.lock();
                let r = st.remote.entry(node).or_insert_with(|| Remote {
                    heard: Instant::now(),
                    rooms: Rooms::new(),
                });
                r.heard = Instant::now();
                let users = r.rooms.entry(conv.clone()).or_default();
                if online {
                    users.insert(user);
                } else {
                    users.remove(&user);
                    if users.is_empty() {
                        r.rooms.remove(&conv);
                    }
                }
            }
            _ => {}
        }
    }

    /// Forgets nodes not heard from; their users who are now nowhere in a room go offline for
    /// this node's sockets of that room.
    async fn expire(&self) {
        let gone: Vec<(String, String)> = {
            let mut st = self.lock();
            let dead: Vec<String> = st
                .remote
                .iter()
                .filter(|(_, r)| r.heard.elapsed() > EXPIRY)
                .map(|(n, _)| n.clone())
                .collect();
            let mut gone = Vec::new();
            for n in dead {
                if let Some(r) = st.remote.remove(&n) {
                    tracing::warn!(node = %n, "live: node expired");
                    for (conv, users) in r.rooms {
                        for user in users {
                            gone.push((conv.clone(), user));
                        }
                    }
                }
            }
            gone.retain(|(c, u)| !online_in(&st, c, u));
            gone
        };
        let now = events::iso8601(events::now_millis());
        for (conv, user) in gone {
            let payload = serde_json::json!({"conversationId": conv, "userId": user, "timestamp": now, "lastSeenAt": now});
            self.emit_local(&conv, "user:offline", &payload, Some(&user))
                .await;
        }
    }

    async fn emit_local(
        &self,
        conv: &str,
        event: &str,
        payload: &Value,
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
    pub async fn signal(
        &self,
        conv: &ConversationId,
        event: &str,
        payload: Value,
        except_user: Option<&UserId>,
    ) {
        let s = RoomSignal {
            event: event.to_owned(),
            payload,
            except_user: except_user.map(ToString::to_string),
        };
        if let Ok(bytes) = serde_json::to_vec(&s)
            && let Err(e) = self
                .client
                .publish(format!("{}.{conv}", self.room_prefix), bytes.into())
                .await
        {
            tracing::warn!(error = %e, "live: cannot publish a room signal");
        }
    }

    /// Whether `user` has a socket in the room on any live node.
    pub fn is_online(&self, conv: &ConversationId, user: &UserId) -> bool {
        online_in(&self.lock(), conv.as_str(), user.as_str())
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

    /// A socket of `user` entered the room. Returns whether it is the user's first, all nodes.
    pub async fn entered(&self, conv: &ConversationId, user: &UserId) -> bool {
        let first = {
            let mut st = self.lock();
            let first = !online_in(&st, conv.as_str(), user.as_str());
            *st.local
                .entry(conv.to_string())
                .or_default()
                .entry(user.to_string())
                .or_insert(0) += 1;
            first
        };
        self.publish_presence(&PresenceMsg::Delta {
            node: self.node.clone(),
            conv: conv.to_string(),
            user: user.to_string(),
            online: true,
        })
        .await;
        first
    }

    /// A socket of `user` left the room. Returns whether it was the user's last, all nodes.
    pub async fn left(&self, conv: &ConversationId, user: &UserId) -> bool {
        let (last_here, last_anywhere) = {
            let mut st = self.lock();
            let mut last_here = false;
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
            (last_here, !online_in(&st, conv.as_str(), user.as_str()))
        };
        if last_here {
            self.publish_presence(&PresenceMsg::Delta {
                node: self.node.clone(),
                conv: conv.to_string(),
                user: user.to_string(),
                online: false,
            })
            .await;
        }
        last_here && last_anywhere
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
        let payload = serde_json::json!({"conversationId": conv, "userId": user, "user": {"id": user, "name": name}});
        self.signal(conv, "typing:user:start", payload, Some(user))
            .await;
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
        let payload = serde_json::json!({"conversationId": conv, "userId": user});
        self.signal(conv, "typing:user:stop", payload, Some(user))
            .await;
    }
}

fn online_in(st: &State, conv: &str, user: &str) -> bool {
    st.local.get(conv).is_some_and(|u| u.contains_key(user))
        || st
            .remote
            .values()
            .any(|r| r.rooms.get(conv).is_some_and(|u| u.contains(user)))
}
