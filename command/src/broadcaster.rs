//! The broadcaster: every node follows the log from its tail and emits each room event to the
//! sockets of that room on this node. Nodes never talk to each other about messages; the log
//! is the bus. It also feeds every commit to the executor's cache, so this node's aggregates
//! stay current with what other nodes append.

use crate::executor::Executor;
use crate::payload;
use crate::socket::handlers::{conversation_room, user_room};
use eventlog::{EventLog, From, StoredCommit};
use events::{ConversationEvent, ConversationId, EventKind, UserId};
use futures::StreamExt;
use socketioxide::SocketIo;
use std::sync::Arc;
use std::time::Duration;

/// Follows the log until the task is dropped; restarts the subscription after an error.
pub async fn run<L: EventLog>(
    executor: Arc<Executor<L>>,
    io: SocketIo,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let filter = executor.subjects().all();
    let mut ready = Some(ready);
    let mut from = From::New;
    loop {
        match executor.log().follow(&filter, from).await {
            Ok(mut commits) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                while let Some(next) = commits.next().await {
                    match next {
                        Ok(stored) => {
                            from = From::Position(stored.position + 1);
                            deliver(&executor, &io, &stored).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "broadcaster: log error");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "broadcaster: cannot follow the log"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn deliver<L: EventLog>(executor: &Executor<L>, io: &SocketIo, stored: &StoredCommit) {
    executor.observe(stored).await;
    if stored.commit.aggregate_type != ConversationEvent::AGGREGATE {
        return;
    }
    let Ok(conversation_id) = ConversationId::parse(&stored.commit.aggregate_id) else {
        return;
    };
    let events = match stored.commit.decode_events::<ConversationEvent>() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(position = stored.position, error = %e, "broadcaster: undecodable commit");
            return;
        }
    };
    let room = conversation_room(&conversation_id);
    for r in events {
        match &r.event {
            ConversationEvent::MessageSent(m) => {
                let sender = executor.read_user(&m.sender_id, Clone::clone).await.ok();
                let payload = payload::message_new(&conversation_id, m, r.number, sender.as_ref());
                let _ = io.to(room.clone()).emit("message:new", &payload).await;
            }
            ConversationEvent::ParticipantRemoved(p) => remove_from_room(io, &p.user_id, &room),
            _ => {}
        }
    }
}

/// A removed participant's sockets on this node leave the room at once.
fn remove_from_room(io: &SocketIo, user: &UserId, room: &str) {
    for s in io.within(user_room(user)).sockets() {
        s.leave(room.to_owned());
    }
}
