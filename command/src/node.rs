//! What one write node shares between its edges (Socket.IO, REST) and its push path: the
//! service, the JWT keys, presence, the per-user send buckets, the position the broadcaster has
//! pushed up to, and the drain of graceful shutdown.
//!
//! Owns the room bookkeeping: a socket joining a room, and leaving it (on
//! `conversation:leave`, on disconnect, on removal from the conversation). Must not parse
//! client input or shape client JSON.

use crate::drain::Drain;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::push::rooms::{conversation_room, in_room};
use crate::rate::{Buckets, RateLimits};
use crate::service::Service;
use api::JwtKeys;
use eventlog::EventLog;
use events::{ConversationId, UserId, now_millis};
use socketioxide::extract::SocketRef;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything the edges and the broadcaster of one node need.
pub struct NodeState<L> {
    pub service: Arc<Service<L>>,
    pub keys: Arc<JwtKeys>,
    pub live: Arc<Live>,
    pub limits: RateLimits,
    pub metrics: Arc<Metrics>,
    /// `message:send` buckets per user on this node, shared with `POST /api/messages`.
    send_buckets: Mutex<Buckets<UserId>>,
    /// The log position this node's broadcaster has emitted up to (catch-up waits for it).
    pub broadcast: tokio::sync::watch::Sender<u64>,
    /// Graceful shutdown: refuse new events, wait for those in hand.
    pub drain: Arc<Drain>,
}

impl<L: EventLog> NodeState<L> {
    pub fn new(
        service: Arc<Service<L>>,
        keys: Arc<JwtKeys>,
        live: Arc<Live>,
        limits: RateLimits,
    ) -> Self {
        Self {
            metrics: service.executor.metrics().clone(),
            service,
            keys,
            live,
            limits,
            send_buckets: Mutex::new(Buckets::per_minute(limits.messages_per_min)),
            broadcast: tokio::sync::watch::Sender::new(0),
            drain: Arc::default(),
        }
    }

    /// Takes a `message:send` token of `user`, or says how long to wait.
    pub fn take_send_token(&self, user: &UserId, now: Instant) -> Result<(), Duration> {
        self.send_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_take(user.clone(), now)
    }

    /// Puts `socket` in the room and counts it in presence (returning once every node does). A
    /// socket that disconnected meanwhile leaves again at once: its disconnect may have taken
    /// its rooms before this one was added.
    pub async fn join_room(
        &self,
        socket: &SocketRef,
        user: &UserId,
        conv: &ConversationId,
        profile: wire::UserRef,
    ) {
        socket.join(conversation_room(conv));
        self.live.entered(socket.id, conv, user, profile).await;
        if !socket.connected() {
            self.left_now(socket, user, conv).await;
        }
    }

    /// Takes `socket` out of the room at once (`conversation:leave`, removal): presence (each
    /// node then tells its sockets `user:offline` when the user is in the room on no node),
    /// typing, and a persisted `lastSeenAt` when it was the user's last socket there on this
    /// node.
    pub async fn leave_room(&self, socket: &SocketRef, user: &UserId, conv: &ConversationId) {
        if !in_room(socket, conv) {
            return;
        }
        socket.leave(conversation_room(conv));
        self.left_now(socket, user, conv).await;
    }

    /// `socket` of `user` disconnected: typing stops at once; in each room it was in, presence
    /// holds the socket for the grace period (`CHAT_PRESENCE_GRACE_MS`) in the background, so
    /// that a quick reconnect is not seen as leaving, then persists `lastSeenAt` (the
    /// disconnect, or a later departure that `user:offline` reported) when it was the user's
    /// last socket in a room on this node.
    pub async fn disconnected(self: &Arc<Self>, socket: &SocketRef, user: UserId) {
        let holds = self.live.hold(socket.id, &user, now_millis());
        for conv in holds.conversations() {
            self.live.typing_stopped(socket.id, conv, &user).await;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let (at, last_here) = node.live.release(holds).await;
            if last_here {
                node.record_last_seen(&user, at).await;
            }
        });
    }

    /// Typing stops and presence counts `socket` out of the room now; `lastSeenAt` persists
    /// when it was the user's last socket there on this node.
    async fn left_now(&self, socket: &SocketRef, user: &UserId, conv: &ConversationId) {
        self.live.typing_stopped(socket.id, conv, user).await;
        let now = now_millis();
        if self.live.left(socket.id, conv, user, now).await {
            self.record_last_seen(user, now).await;
        }
    }

    async fn record_last_seen(&self, user: &UserId, at: events::Millis) {
        if let Err(e) = self
            .service
            .record_last_seen(&crate::service::Caller::system(user), at)
            .await
        {
            tracing::warn!(error = %e, "could not persist lastSeenAt");
        }
    }
}
