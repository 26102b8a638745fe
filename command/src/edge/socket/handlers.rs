//! The per-socket task: authentication, then one client event at a time, in arrival order:
//! rate limits → parse (`request`) → one service call → ack, or the error reply. Each event
//! runs in its own span and under its own correlation id.

use super::request::Request;
use super::{Inbound, authenticate};
use crate::node::NodeState;
use crate::push::outbound::{emit_to, user_ref};
use crate::push::rooms::{in_room, user_room};
use crate::push::{catchup, cut_off};
use crate::rate::{AbuseWindow, TokenBucket};
use crate::service::{Caller, NewMessage, new_correlation_id};
use api::{ApiError, ErrorCode, Identity};
use eventlog::EventLog;
use events::{ConversationId, UserId, now_millis};
use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;
use wire::Timestamp;
use wire::ack::{self, Ack, Failure};
use wire::rest::{Deleted, Edited, Pinned, Positioned, Reaction};
use wire::socket::{
    AuthSuccess, ConversationJoinError, ConversationJoined, ConversationLeft, ErrorContext,
    PresenceResponse,
};

/// An authenticated socket's user.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    /// The user's `sender` / `user` object, opened when they connected.
    pub me: wire::UserRef,
}

/// Per-socket limits: all events, and the abuse window that disconnects.
struct Limits {
    events: TokenBucket,
    events_abuse: AbuseWindow,
    sends_abuse: AbuseWindow,
}

/// A successful ack, whichever event it answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Reply {
    Sent(Ack<ack::Sent>),
    Joined(Ack<ack::Joined>),
    Left(Ack<ack::Left>),
    Edited(Ack<Edited>),
    Deleted(Ack<Deleted>),
    Positioned(Ack<Positioned>),
    Reaction(Ack<Reaction>),
    Empty(Ack<ack::Empty>),
    Presence(Ack<PresenceResponse>),
    Pinned(Ack<Pinned>),
}

pub(super) async fn run<L: EventLog>(
    state: Arc<NodeState<L>>,
    socket: SocketRef,
    token: Option<String>,
    mut inbox: mpsc::Receiver<Inbound>,
) {
    let session = match Box::pin(authenticate(&state, token.as_deref())).await {
        Ok(s) => s,
        Err(e) => return cut_off(&socket, e),
    };
    let user_id = session.identity.user_id.clone();
    socket.extensions.insert(session.clone());
    state.metrics.sockets.inc();
    socket.join(user_room(&user_id));
    emit_to(
        &socket,
        &AuthSuccess::new(user_id.clone(), socket.id.to_string()),
    );
    let expiry = api::auth::millis_until_expiry(session.identity.exp, now_millis())
        .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    let expired = async {
        match expiry {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let mut limits = Limits {
        events: TokenBucket::per_minute(state.limits.events_per_min),
        events_abuse: AbuseWindow::new(state.limits.events_per_min),
        sends_abuse: AbuseWindow::new(state.limits.messages_per_min),
    };
    loop {
        tokio::select! {
            next = inbox.recv() => match next {
                Some(inbound) => {
                    let span = tracing::info_span!("socket_event", event = %inbound.event,
                        socket = %socket.id, user = %user_id, correlation_id = tracing::field::Empty);
                    // Boxed: the handler's future lives only while an event is handled, not in
                    // this long-lived task (whose size every idle socket pays).
                    let handled = Box::pin(handle(&state, &socket, &session, &mut limits, inbound).instrument(span));
                    if !handled.await {
                        tracing::warn!(user = %user_id, socket = %socket.id, "disconnecting a socket far over its rate limit");
                        socket.clone().disconnect().ok();
                        break;
                    }
                }
                None => break,
            },
            () = &mut expired => {
                cut_off(&socket, api::AuthError::ExpiredToken);
                break;
            }
        }
    }
}

/// Answers a failed event: through its ack when it has one, else with an `error` event.
pub(super) fn reply_error(
    socket: &SocketRef,
    inbound: Inbound,
    error: &ApiError,
    context: ErrorContext,
) {
    if inbound.has_ack {
        send_ack(inbound, &Failure::new(error));
    } else {
        emit_to(
            socket,
            &wire::socket::Error {
                message: error.message.clone(),
                code: error.code,
                context,
            },
        );
    }
}

fn send_ack<T: Serialize>(inbound: Inbound, ack: &T) {
    if let Err(e) = inbound.ack.send(ack) {
        tracing::debug!(event = %inbound.event, error = %e, "ack not sent");
    }
}

/// The payload's string ids, echoed in an `error` event.
fn context_of(data: &Result<Value, String>) -> ErrorContext {
    let field = |key: &str| {
        data.as_ref()
            .ok()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ErrorContext {
        conversation_id: field("conversationId"),
        message_id: field("messageId"),
        reaction_id: field("reactionId"),
        temp_id: field("tempId"),
    }
}

/// Handles one event; false when the socket must be disconnected for abuse.
async fn handle<L: EventLog>(
    state: &NodeState<L>,
    socket: &SocketRef,
    session: &Session,
    limits: &mut Limits,
    inbound: Inbound,
) -> bool {
    if state.drain.is_draining() {
        let error = ApiError::new(
            ErrorCode::Unavailable,
            "Server shutting down; reconnect and retry",
        );
        let context = context_of(&inbound.data);
        reply_error(socket, inbound, &error, context);
        return true;
    }
    let now = Instant::now();
    let is_send = inbound.event == "message:send";
    let abusive = limits.events_abuse.record(now) | (is_send && limits.sends_abuse.record(now));
    if abusive {
        let error = ApiError::new(ErrorCode::RateLimit, "Rate limit exceeded; disconnecting");
        reply_error(socket, inbound, &error, ErrorContext::default());
        return false;
    }
    let limited = limits.events.try_take(now).err().or_else(|| {
        is_send
            .then(|| state.take_send_token(&session.identity.user_id, now).err())
            .flatten()
    });
    let caller = Caller::new(&session.identity, Some(new_correlation_id()));
    tracing::Span::current().record("correlation_id", caller.correlation_id.as_str());
    let result = match limited {
        Some(wait) => Err(ApiError::rate_limited(wait)),
        None => dispatch(state, socket, session, &caller, &inbound).await,
    };
    match result {
        Ok(reply) => {
            let received = inbound.received;
            send_ack(inbound, &reply);
            if is_send {
                state
                    .metrics
                    .send_ack_seconds
                    .observe(received.elapsed().as_secs_f64());
            }
        }
        Err(error) => {
            let context = context_of(&inbound.data);
            if inbound.event == "conversation:join" {
                emit_to(
                    socket,
                    &ConversationJoinError {
                        message: error.message.clone(),
                        code: error.code,
                        conversation_id: context.conversation_id,
                    },
                );
                if inbound.has_ack {
                    send_ack(inbound, &Failure::new(&error));
                }
            } else {
                reply_error(socket, inbound, &error, context);
            }
        }
    }
    true
}

async fn dispatch<L: EventLog>(
    state: &NodeState<L>,
    socket: &SocketRef,
    session: &Session,
    caller: &Caller,
    inbound: &Inbound,
) -> Result<Reply, ApiError> {
    let me = &caller.user_id;
    let service = &state.service;
    Ok(match Request::parse(&inbound.event, &inbound.data)? {
        Request::Join { conv, since_offset } => Reply::Joined(Ack::ok(
            join(state, socket, session, caller, conv, since_offset).await?,
        )),
        Request::Leave(conv) => {
            state.leave_room(socket, me, &conv).await;
            emit_to(
                socket,
                &ConversationLeft {
                    conversation_id: conv.clone(),
                },
            );
            Reply::Left(Ack::ok(ack::Left {
                conversation_id: conv,
            }))
        }
        Request::Send {
            conv,
            content,
            temp_id,
            parent,
            mentions,
        } => {
            let present = state.live.online_users(&conv);
            let new = NewMessage {
                content,
                temp_id,
                parent,
                mentions,
            };
            let sent = service.send_message(caller, &conv, new, present).await?;
            Reply::Sent(Ack::ok(ack::Sent {
                message_id: sent.message.id,
                seq: sent.message.seq,
            }))
        }
        Request::Update { conv, msg, content } => Reply::Edited(Ack::ok(
            service.edit_message(caller, &conv, &msg, content).await?,
        )),
        Request::Delete { conv, msg } => {
            Reply::Deleted(Ack::ok(service.delete_message(caller, &conv, &msg).await?))
        }
        Request::Pin { conv, msg, pin } => Reply::Pinned(Ack::ok(
            service.pin_message(caller, &conv, &msg, pin).await?,
        )),
        Request::Read { conv, message_ids } => Reply::Positioned(Ack::ok(
            service.mark_read(caller, &conv, message_ids).await?,
        )),
        Request::ReactionAdd { conv, msg, emoji } => Reply::Reaction(Ack::ok(
            service.add_reaction(caller, &conv, &msg, emoji).await?,
        )),
        Request::ReactionRemove {
            conv,
            msg,
            reaction_id,
        } => Reply::Positioned(Ack::ok(
            service
                .remove_reaction(caller, &conv, &msg, reaction_id)
                .await?,
        )),
        Request::Typing { conv, start } => {
            if !in_room(socket, &conv) {
                return Err(ApiError::new(
                    ErrorCode::NotParticipant,
                    "Join the conversation before typing",
                ));
            }
            if start {
                let name = session.me.name.as_deref().unwrap_or(me.as_str());
                state.live.typing_started(socket.id, &conv, me, name).await;
            } else {
                state.live.typing_stopped(socket.id, &conv, me).await;
            }
            Reply::Empty(Ack::ok(ack::Empty {}))
        }
        Request::Presence(conv) => {
            require_member(state, &conv, me).await?;
            let mut online = Vec::new();
            for u in state.live.online_users(&conv) {
                online.push(user_ref(&u, service.profile(&u).await.as_ref()));
            }
            let response = PresenceResponse {
                conversation_id: conv,
                online_users: online,
                timestamp: Timestamp(now_millis()),
            };
            emit_to(socket, &response);
            Reply::Presence(Ack::ok(response))
        }
    })
}

/// `NOT_FOUND` for an unknown conversation, `NOT_PARTICIPANT` for a non-member.
async fn require_member<L: EventLog>(
    state: &NodeState<L>,
    conv: &ConversationId,
    user: &UserId,
) -> Result<(), ApiError> {
    let (exists, member) = state
        .service
        .executor
        .read_conversation(conv, |c| (c.exists(), c.is_participant(user)))
        .await
        .map_err(|e| match ApiError::from(e) {
            e if e.code == ErrorCode::Unavailable => e,
            _ => ApiError::new(ErrorCode::JoinFailed, "Failed to join conversation"),
        })?;
    if !exists {
        return Err(ApiError::new(ErrorCode::NotFound, "Conversation not found"));
    }
    if !member {
        return Err(ApiError::new(
            ErrorCode::NotParticipant,
            "Not authorized to join conversation",
        ));
    }
    Ok(())
}

async fn join<L: EventLog>(
    state: &NodeState<L>,
    socket: &SocketRef,
    session: &Session,
    caller: &Caller,
    conv: ConversationId,
    since_offset: Option<u64>,
) -> Result<ack::Joined, ApiError> {
    let user = &session.identity.user_id;
    require_member(state, &conv, user).await?;
    if since_offset.is_some() {
        catchup::begin(socket, &conv);
    }
    state
        .join_room(socket, user, &conv, session.me.clone())
        .await;
    let count = state.live.online_users(&conv).len();
    emit_to(
        socket,
        &ConversationJoined {
            conversation_id: conv.clone(),
            participant_count: count,
        },
    );
    if let Some(since) = since_offset {
        let broadcast = state.broadcast.subscribe();
        catchup::replay(&state.service, broadcast, socket, &conv, since).await?;
    }
    if let Err(e) = state.service.deliver_pending(caller, &conv).await {
        tracing::warn!(error = %e, "could not record deliveries on join");
    }
    Ok(ack::Joined {
        conversation_id: conv,
        participant_count: count,
    })
}
