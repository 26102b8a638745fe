//! Gapless catch-up: `conversation:join` with `sinceOffset` replays the conversation's room
//! events after that offset from the log, then hands over to live events with no gap and no
//! duplicate.
//!
//! While a socket catches up it is in the conversation room *and* in `catchup-<id>`. The
//! broadcaster emits room events to the room except `catchup-<id>`, and pushes them into the
//! catching-up sockets' buffers instead. When the replay has emitted everything the log held,
//! and this node's broadcaster has gone past the last commit replayed (the replay reads the
//! log directly and may be ahead of it), the buffer is drained (skipping offsets already
//! replayed) and the socket leaves `catchup-<id>`, all under the buffer's lock, so an event is
//! either buffered or emitted live, never both, never neither.

use super::outbound::{RoomMessage, emit_counted, emit_named, room_event};
use super::rooms::{catchup_room, conversation_room};
use crate::service::Service;
use eventlog::EventLog;
use events::{ConversationEvent, ConversationId};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A live room event held back, with its offset.
type Held = (u64, RoomMessage);
type Buffers = HashMap<ConversationId, Vec<Held>>;

/// Room events held for a socket that is catching up, by conversation.
#[derive(Clone, Default)]
pub struct CatchUps(Arc<Mutex<Buffers>>);

impl CatchUps {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffers> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Emits a room event live, or into the buffers of sockets catching up on the conversation.
pub async fn emit_room_event(
    io: &SocketIo,
    metrics: &crate::metrics::Metrics,
    conv: &ConversationId,
    offset: u64,
    message: &RoomMessage,
) {
    let (Some(live), Some(catching_up)) = (super::root(io), super::root(io)) else {
        return;
    };
    let catchup = catchup_room(conv);
    let live = live.to(conversation_room(conv)).except(catchup.clone());
    emit_counted(live, metrics, message.name(), message).await;
    for socket in catching_up.within(catchup).sockets() {
        let buffered = socket.extensions.get::<CatchUps>().is_some_and(|c| {
            let mut map = c.lock();
            match map.get_mut(conv) {
                Some(buffer) => {
                    buffer.push((offset, message.clone()));
                    true
                }
                None => false,
            }
        });
        if !buffered {
            emit_named(&socket, message.name(), message);
        }
    }
}

/// Starts catching up: from now on live room events for `conv` are held for this socket.
pub fn begin(socket: &SocketRef, conv: &ConversationId) {
    let catchups = socket.extensions.get::<CatchUps>().unwrap_or_else(|| {
        let c = CatchUps::default();
        socket.extensions.insert(c.clone());
        c
    });
    let mut map = catchups.lock();
    map.insert(conv.clone(), Vec::new());
    socket.join(catchup_room(conv));
}

/// Replays every room event after `since` from the log, then the held live events not
/// already replayed, then leaves catch-up mode.
pub async fn replay<L: EventLog>(
    service: &Service<L>,
    mut broadcast: tokio::sync::watch::Receiver<u64>,
    socket: &SocketRef,
    conv: &ConversationId,
    since: u64,
) -> Result<u64, api::ApiError> {
    let subject = service.executor.subjects().conversation(conv);
    let result = replay_log(service, socket, conv, since, &subject).await;
    let (last, position) = *result.as_ref().unwrap_or(&(since, 0));
    // Until the broadcaster has passed the last replayed commit, it may still emit events the
    // replay already sent; while the socket is in catch-up mode they land in its buffer and
    // are skipped below. The broadcaster follows the log within milliseconds; the deadline
    // only bounds a stalled one.
    let passed = broadcast.wait_for(|at| *at >= position);
    if tokio::time::timeout(std::time::Duration::from_secs(5), passed)
        .await
        .is_err()
    {
        tracing::warn!(
            position,
            "catch-up: the broadcaster is behind; handing over anyway"
        );
    }
    let catchups = socket.extensions.get::<CatchUps>().unwrap_or_default();
    let mut map = catchups.lock();
    for (offset, message) in map.remove(conv).unwrap_or_default() {
        if offset > last {
            emit_named(socket, message.name(), &message);
        }
    }
    socket.leave(catchup_room(conv));
    drop(map);
    result.map(|(last, _)| last)
}

async fn replay_log<L: EventLog>(
    service: &Service<L>,
    socket: &SocketRef,
    conv: &ConversationId,
    since: u64,
    subject: &str,
) -> Result<(u64, u64), api::ApiError> {
    let mut last = since;
    let mut position = 0;
    let commits = eventlog::read_subject_after_version(service.executor.log(), subject, since)
        .await
        .map_err(|e| api::ApiError::from(crate::ExecError::from(e)))?;
    for stored in commits.iter().filter(|s| s.commit.next_version() > since) {
        let events = stored
            .commit
            .decode_events::<ConversationEvent>()
            .map_err(api::ApiError::internal)?;
        for r in events.iter().filter(|r| r.number > since) {
            for message in room_event(&service.executor, &service.keyring, conv, r, None).await {
                emit_named(socket, message.name(), &message);
            }
            last = r.number;
        }
        position = stored.position;
    }
    Ok((last, position))
}
