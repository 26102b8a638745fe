//! The broadcaster: every node follows the log from its tail and emits each event to the
//! sockets concerned on this node: room events to `conversation-<id>`, receipts and deliveries
//! to `user-<senderId>`, mentions to `user-<mentionedId>`. Nodes never talk to each other about state changes; the log is the
//! bus. It also feeds every commit to the executor's cache (so this node's aggregates stay
//! current with what other nodes append), takes removed participants out of their rooms,
//! cuts off suspended and erased users, makes this node forget an erased user's key, and
//! raises its retention watermark of a conversation as expiry events pass.

use super::catchup::emit_room_event;
use super::cut_off;
use super::outbound::{emit_counted, receipts, room_event};
use super::rooms::user_room;
use crate::node::NodeState;
use eventlog::{EventLog, From, StoredCommit};
use events::{ConversationEvent, ConversationId, EventKind, Recorded, UserEvent, UserId};
use futures::StreamExt;
use socketioxide::SocketIo;
use std::sync::Arc;
use std::time::Duration;
use wire::socket::{MentionNew, SocketEvent};

/// Follows the log until the task is dropped; resumes after an error where it stopped.
pub async fn run<L: EventLog>(
    state: Arc<NodeState<L>>,
    io: SocketIo,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let executor = state.service.executor.clone();
    let filter = executor.subjects().all();
    let mut ready = Some(ready);
    // Everything up to the log's current end is history, never broadcast: the broadcaster has
    // "passed" it (catch-up waits on this position).
    let mut from = match executor.log().last_position().await {
        Ok(last) => {
            state.broadcast.send_replace(last);
            From::Position(last + 1)
        }
        Err(_) => From::New,
    };
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
                            executor.observe(&stored).await;
                            deliver(&state, &io, &stored).await;
                            state.broadcast.send_replace(stored.position);
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

async fn deliver<L: EventLog>(state: &NodeState<L>, io: &SocketIo, stored: &StoredCommit) {
    let commit = &stored.commit;
    if commit.aggregate_type == UserEvent::AGGREGATE {
        let events = commit.decode_events::<UserEvent>().unwrap_or_default();
        let erased = events
            .iter()
            .any(|r| matches!(r.event, UserEvent::Erased(_)));
        if let Ok(user) = UserId::parse(&commit.aggregate_id)
            && erased
        {
            state.service.keyring.forget_user(&user);
        }
        if (erased
            || events
                .iter()
                .any(|r| matches!(r.event, UserEvent::Suspended(_))))
            && let Ok(user) = UserId::parse(&commit.aggregate_id)
        {
            for socket in super::root(io)
                .map(|root| root.within(user_room(&user)).sockets())
                .unwrap_or_default()
            {
                cut_off(&socket, api::AuthError::Unauthorized);
            }
        }
        return;
    }
    if commit.aggregate_type != ConversationEvent::AGGREGATE {
        return;
    }
    let Ok(conv) = ConversationId::parse(&commit.aggregate_id) else {
        return;
    };
    let events = match commit.decode_events::<ConversationEvent>() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(position = stored.position, error = %e, "broadcaster: undecodable commit");
            return;
        }
    };
    for r in &events {
        if let ConversationEvent::MessagesExpired(e) = &r.event {
            state.service.keyring.note_expired(conv.as_str(), e.before);
        }
        deliver_event(state, io, &conv, r).await;
    }
}

async fn deliver_event<L: EventLog>(
    state: &NodeState<L>,
    io: &SocketIo,
    conv: &ConversationId,
    r: &Recorded<ConversationEvent>,
) {
    let executor = &state.service.executor;
    let mut mentioned = None;
    let messages = room_event(
        executor,
        &state.service.keyring,
        conv,
        r,
        Some(&mut mentioned),
    )
    .await;
    for message in &messages {
        emit_room_event(io, &state.metrics, conv, r.number, message).await;
    }
    if let (Some((to, mention)), Some(root)) = (&mentioned, super::root(io)) {
        let rooms: Vec<String> = to.iter().map(user_room).collect();
        emit_counted(root.to(rooms), &state.metrics, MentionNew::NAME, mention).await;
    }
    if !messages.is_empty() {
        return;
    }
    for (to, receipt) in receipts(&r.event, conv) {
        let Some(root) = super::root(io) else {
            return;
        };
        emit_counted(
            root.to(user_room(&to)),
            &state.metrics,
            receipt.name(),
            &receipt,
        )
        .await;
    }
    if let ConversationEvent::ParticipantRemoved(p) = &r.event
        && let Some(root) = super::root(io)
    {
        for socket in root.within(user_room(&p.user_id)).sockets() {
            state.leave_room(&socket, &p.user_id, conv).await;
        }
    }
}
