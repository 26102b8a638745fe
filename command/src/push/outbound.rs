//! The one mapping from a log event to the wire message a client receives, used by the
//! broadcaster, catch-up and the REST answers; and the counted emit every push goes through.

use crate::executor::Executor;
use crate::metrics::Metrics;
use crate::payload;
use eventlog::EventLog;
use events::{ConversationEvent, ConversationId, Recorded};
use serde_json::Value;

/// The Socket.IO event and payload of a room event (`None` for events that are not).
pub async fn room_event<L: EventLog>(
    executor: &Executor<L>,
    conv: &ConversationId,
    r: &Recorded<ConversationEvent>,
) -> Option<(&'static str, Value)> {
    Some(match &r.event {
        ConversationEvent::MessageSent(m) => {
            let sender = executor.read_user(&m.sender_id, Clone::clone).await.ok();
            (
                "message:new",
                payload::message_new(conv, m, r.number, sender.as_ref()),
            )
        }
        ConversationEvent::MessageEdited(e) => (
            "message:updated",
            payload::message_updated(conv, e, r.number),
        ),
        ConversationEvent::MessageDeleted(e) => (
            "message:deleted",
            payload::message_deleted(conv, e, r.number),
        ),
        ConversationEvent::ReactionAdded(e) => {
            let user = executor.read_user(&e.user_id, Clone::clone).await.ok();
            (
                "reaction:added",
                payload::reaction_added(conv, e, r.number, user.as_ref()),
            )
        }
        ConversationEvent::ReactionRemoved(e) => (
            "reaction:removed",
            payload::reaction_removed(conv, e, r.number),
        ),
        _ => return None,
    })
}

/// Emits through `op`. A socket whose send buffer is full misses the event: counted and
/// logged here; the client recovers by rejoining with `sinceOffset`.
pub async fn emit_counted(
    op: socketioxide::operators::BroadcastOperators,
    metrics: &Metrics,
    event: &str,
    payload: &Value,
) {
    match op.emit(event, payload).await {
        Ok(()) => {}
        Err(socketioxide::BroadcastError::Socket(failed)) => {
            let total = metrics.add_dropped(failed.len() as u64);
            tracing::warn!(
                event,
                sockets = failed.len(),
                total,
                "slow sockets missed an event"
            );
        }
        Err(e) => tracing::error!(event, error = %e, "broadcast failed"),
    }
}
