//! The per-socket task: authentication, then one client event at a time, in arrival order:
//! rate limits → parse → service (rules in `domain`) → ack, or the error reply.

use super::request::Request;
use super::{Inbound, authenticate};
use crate::domain::User;
use crate::node::NodeState;
use crate::push::cut_off;
use crate::push::rooms::{conversation_room, in_room, user_room};
use crate::rate::{AbuseWindow, TokenBucket};
use api::{ApiError, ErrorCode, Identity};
use eventlog::EventLog;
use events::{ConversationId, UserId, iso8601, now_millis};
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An authenticated socket's user.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    pub user: User,
}

/// Per-socket limits: all events, and the abuse window that disconnects.
struct Limits {
    events: TokenBucket,
    events_abuse: AbuseWindow,
    sends_abuse: AbuseWindow,
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
    let _ = socket.emit(
        "auth:success",
        &json!({"userId": user_id, "socketId": socket.id.to_string(), "message": "Authentication successful"}),
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
                    // Boxed: the handler's future lives only while an event is handled, not in
                    // this long-lived task (whose size every idle socket pays).
                    if !Box::pin(handle(&state, &socket, &session, &mut limits, inbound)).await {
                        tracing::warn!(user = %user_id, socket = %socket.id, "disconnecting a socket far over its rate limit");
                        let _ = socket.clone().disconnect();
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
pub(super) fn reply_error(socket: &SocketRef, inbound: Inbound, error: &ApiError, context: Value) {
    if inbound.has_ack {
        let _ = inbound.ack.send(&json!({"success": false, "error": error}));
    } else {
        let _ = socket.emit(
            "error",
            &json!({"message": error.message, "code": error.code, "context": context}),
        );
    }
}

fn context_of(data: &Result<Value, String>) -> Value {
    let mut ctx = json!({});
    if let Ok(v) = data {
        for key in ["conversationId", "messageId", "reactionId", "tempId"] {
            if let Some(x) = v.get(key).filter(|x| x.is_string()) {
                ctx[key] = x.clone();
            }
        }
    }
    ctx
}

/// Handles one event; false when the socket must be disconnected for abuse.
async fn handle<L: EventLog>(
    state: &NodeState<L>,
    socket: &SocketRef,
    session: &Session,
    limits: &mut Limits,
    inbound: Inbound,
) -> bool {
    let span = tracing::info_span!("socket_event", event = %inbound.event, socket = %socket.id, user = %session.identity.user_id);
    let _enter = span.enter();
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
        reply_error(socket, inbound, &error, json!({}));
        return false;
    }
    let limited = limits.events.try_take(now).err().or_else(|| {
        is_send
            .then(|| state.take_send_token(&session.identity.user_id, now).err())
            .flatten()
    });
    let result = match limited {
        Some(wait) => Err(ApiError {
            retry_after_secs: Some(wait.as_secs().max(1)),
            ..ApiError::new(ErrorCode::RateLimit, "Rate limit exceeded")
        }),
        None => dispatch(state, socket, session, &inbound).await,
    };
    match result {
        Ok(ack) => {
            let _ = inbound.ack.send(&ack);
            if is_send {
                state
                    .metrics
                    .send_ack_seconds
                    .observe(inbound.received.elapsed().as_secs_f64());
            }
        }
        Err(error) => {
            let context = context_of(&inbound.data);
            if inbound.event == "conversation:join" {
                let mut payload = json!({"message": error.message, "code": error.code});
                payload["conversationId"] = context
                    .get("conversationId")
                    .cloned()
                    .unwrap_or(Value::Null);
                let _ = socket.emit("conversation:join:error", &payload);
                if inbound.has_ack {
                    let _ = inbound.ack.send(&json!({"success": false, "error": error}));
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
    inbound: &Inbound,
) -> Result<Value, ApiError> {
    let me = &session.identity.user_id;
    let service = &state.service;
    match Request::parse(&inbound.event, &inbound.data)? {
        Request::Join { conv, since_offset } => {
            join(state, socket, session, conv, since_offset).await
        }
        Request::Leave(conv) => {
            state.leave_room(socket, me, &conv).await;
            let _ = socket.emit("conversation:left", &json!({"conversationId": conv}));
            Ok(json!({"success": true, "conversationId": conv}))
        }
        Request::Send {
            conv,
            content,
            temp_id,
        } => {
            let present = state.live.online_users(&conv);
            let sent = service
                .send_message(me, conv.as_str(), &content, temp_id.as_deref(), present)
                .await?;
            Ok(json!({"success": true, "messageId": sent.message_id, "seq": sent.seq}))
        }
        Request::Update { conv, msg, content } => Ok(success(
            service.edit_message(me, &conv, &msg, &content).await?,
        )),
        Request::Delete { conv, msg } => {
            Ok(success(service.delete_message(me, &conv, &msg).await?))
        }
        Request::Read { conv, message_ids } => {
            Ok(success(service.mark_read(me, &conv, &message_ids).await?))
        }
        Request::ReactionAdd { conv, msg, emoji } => Ok(success(
            service.add_reaction(me, &conv, &msg, &emoji).await?,
        )),
        Request::ReactionRemove {
            conv,
            msg,
            reaction_id,
        } => Ok(success(
            service
                .remove_reaction(me, &conv, &msg, &reaction_id)
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
                state
                    .live
                    .typing_started(&socket.id.to_string(), &conv, me, &session.user.name)
                    .await;
            } else {
                state
                    .live
                    .typing_stopped(&socket.id.to_string(), &conv, me)
                    .await;
            }
            Ok(json!({"success": true}))
        }
        Request::Presence(conv) => {
            require_member(state, &conv, me).await?;
            let mut online = Vec::new();
            for u in state.live.online_users(&conv) {
                let user = service.executor.read_user(&u, Clone::clone).await.ok();
                online.push(crate::payload::user_ref(&u, user.as_ref()));
            }
            let response = json!({"conversationId": conv, "onlineUsers": online, "timestamp": iso8601(now_millis())});
            let _ = socket.emit("presence:response", &response);
            let mut ack = response;
            ack["success"] = true.into();
            Ok(ack)
        }
    }
}

fn success(mut v: Value) -> Value {
    v["success"] = true.into();
    v
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
    conv: ConversationId,
    since_offset: Option<u64>,
) -> Result<Value, ApiError> {
    let user = &session.identity.user_id;
    require_member(state, &conv, user).await?;
    if since_offset.is_some() {
        crate::push::catchup::begin(socket, &conv);
    }
    let room = conversation_room(&conv);
    let already = in_room(socket, &conv);
    socket.join(room);
    if !already {
        let profile = crate::payload::user_ref(user, Some(&session.user));
        state.live.entered(&conv, user, profile).await;
    }
    let count = state.live.online_users(&conv).len();
    let _ = socket.emit(
        "conversation:joined",
        &json!({"conversationId": conv, "participantCount": count}),
    );
    if let Some(since) = since_offset {
        let broadcast = state.broadcast.subscribe();
        crate::push::catchup::replay(&state.service.executor, broadcast, socket, &conv, since)
            .await?;
    }
    if let Err(e) = state.service.deliver_pending(user, &conv).await {
        tracing::warn!(error = %e.message, "could not record deliveries on join");
    }
    Ok(json!({"success": true, "conversationId": conv, "participantCount": count}))
}
