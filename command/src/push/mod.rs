//! The push path: how what the log holds reaches sockets. The broadcaster follows the log and
//! emits room events, receipts and removals; catch-up replays a conversation's room events to
//! one socket and hands over to live ones; `rooms` names who an event reaches; `outbound` is
//! the one mapping from a log event to the wire message a client receives (live, in catch-up
//! and in REST answers alike).
//!
//! Must not parse client input nor decide anything: what is pushed is what the log says.

pub mod broadcaster;
pub mod catchup;
pub mod outbound;
pub mod rooms;

use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;

/// Operators on the root namespace; `None` once `SocketIo::close` has removed it (shutdown:
/// nobody is left to push to). socketioxide's own `io.to` and `io.within` panic then.
pub fn root(io: &SocketIo) -> Option<BroadcastOperators> {
    io.of("/")
}

/// Ends a connection with `auth:error` (refused handshake, token expired, user suspended).
pub fn cut_off(socket: &SocketRef, e: api::AuthError) {
    outbound::emit_to(socket, &wire::socket::AuthError::from(e));
    if let Err(e) = socket.clone().disconnect() {
        tracing::debug!(socket = %socket.id, error = %e, "already disconnected");
    }
}
