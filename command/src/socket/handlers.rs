//! The per-socket task: authentication, then one client event at a time, in arrival order.

use super::{Inbound, SocketState, authenticate};
use crate::domain::User;
use api::{ApiError, ErrorCode, Identity};
use eventlog::EventLog;
use events::{ConversationId, iso8601, now_millis};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An authenticated socket's user.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    pub user: User,
}

pub fn conversation_room(id: &ConversationId) -> String {
    format!("conversation-{id}")
}

pub fn user_room(id: &events::UserId) -> String {
    format!("user-{id}")
}

pub(super) async fn run<L: EventLog>(
    state: Arc<SocketState<L>>,
    socket: SocketRef,
    token: Option<String>,
    mut inbox: mpsc::Receiver<Inbound>,
) {
    let session = match authenticate(&state, token.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = socket.emit(
                "auth:error",
                &json!({"message": e.to_string(), "code": e.code()}),
            );
            let _ = socket.disconnect();
            return;
        }
    };
    let user_id = session.identity.user_id.clone();
    socket.extensions.insert(session.clone());
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
    loop {
        tokio::select! {
            next = inbox.recv() => match next {
                Some(inbound) => handle(&state, &socket, &session, inbound).await,
                None => break,
            },
            () = &mut expired => {
                let e = api::AuthError::ExpiredToken;
                let _ = socket.emit("auth:error", &json!({"message": e.to_string(), "code": e.code()}));
                let _ = socket.disconnect();
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

fn parse<T: serde::de::DeserializeOwned>(data: &Result<Value, String>) -> Result<T, ApiError> {
    let value = data
        .as_ref()
        .map_err(|e| ApiError::invalid_input(format!("Malformed payload: {e}")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| ApiError::invalid_input(format!("Invalid payload: {e}")))
}

fn context_of(data: &Result<Value, String>) -> Value {
    let mut ctx = json!({});
    if let Ok(v) = data {
        for key in ["conversationId", "messageId", "tempId"] {
            if let Some(x) = v.get(key).filter(|x| x.is_string()) {
                ctx[key] = x.clone();
            }
        }
    }
    ctx
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomPayload {
    conversation_id: String,
}

/// The conversation of a `{conversationId}` payload.
fn room_payload(data: &Result<Value, String>) -> Result<ConversationId, ApiError> {
    let p: RoomPayload = parse(data)?;
    ConversationId::parse(&p.conversation_id).map_err(|e| ApiError::invalid_input(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendPayload {
    conversation_id: String,
    content: String,
    temp_id: Option<String>,
}

async fn handle<L: EventLog>(
    state: &SocketState<L>,
    socket: &SocketRef,
    session: &Session,
    inbound: Inbound,
) {
    let span = tracing::info_span!("socket_event", event = %inbound.event, socket = %socket.id, user = %session.identity.user_id);
    let _enter = span.enter();
    let result = match inbound.event.as_str() {
        "conversation:join" => join(state, socket, session, &inbound.data).await,
        "conversation:leave" => leave(socket, session, &inbound.data),
        "message:send" => send(state, session, &inbound.data).await,
        other => Err(ApiError::invalid_input(format!("Unknown event {other}"))),
    };
    match result {
        Ok(ack) => {
            let _ = inbound.ack.send(&ack);
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
}

/// Distinct users with a socket of this node in `room`.
fn users_in(socket: &SocketRef, room: &str) -> HashSet<String> {
    socket
        .within(room.to_owned())
        .sockets()
        .into_iter()
        .filter_map(|s| s.extensions.get::<Session>())
        .map(|s| s.identity.user_id.to_string())
        .collect()
}

fn user_has_other_socket_in(socket: &SocketRef, room: &str, user: &events::UserId) -> bool {
    socket
        .within(room.to_owned())
        .sockets()
        .into_iter()
        .any(|s| {
            s.id != socket.id
                && s.extensions
                    .get::<Session>()
                    .is_some_and(|x| &x.identity.user_id == user)
        })
}

async fn join<L: EventLog>(
    state: &SocketState<L>,
    socket: &SocketRef,
    session: &Session,
    data: &Result<Value, String>,
) -> Result<Value, ApiError> {
    let id = room_payload(data)?;
    let user = &session.identity.user_id;
    let (exists, member) = state
        .service
        .executor
        .read_conversation(&id, |c| (c.exists(), c.is_participant(user)))
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
    let room = conversation_room(&id);
    let first = !user_has_other_socket_in(socket, &room, user);
    socket.join(room.clone());
    let count = users_in(socket, &room).len();
    let _ = socket.emit(
        "conversation:joined",
        &json!({"conversationId": id, "participantCount": count}),
    );
    if first {
        let u = &session.user;
        let _ = socket
            .to(room)
            .emit(
                "user:online",
                &json!({
                    "conversationId": id, "userId": user,
                    "user": crate::payload::user_ref(user, Some(u)),
                    "timestamp": iso8601(now_millis()),
                }),
            )
            .await;
    }
    Ok(json!({"success": true, "conversationId": id, "participantCount": count}))
}

fn leave(
    socket: &SocketRef,
    session: &Session,
    data: &Result<Value, String>,
) -> Result<Value, ApiError> {
    let id = room_payload(data)?;
    let room = conversation_room(&id);
    let was_in = socket.rooms().iter().any(|r| r.as_ref() == room);
    socket.leave(room.clone());
    let _ = socket.emit("conversation:left", &json!({"conversationId": id}));
    let user = &session.identity.user_id;
    if was_in && !user_has_other_socket_in(socket, &room, user) {
        let now = iso8601(now_millis());
        let payload =
            json!({"conversationId": id, "userId": user, "timestamp": now, "lastSeenAt": now});
        let socket = socket.clone();
        tokio::spawn(async move {
            let _ = socket.to(room).emit("user:offline", &payload).await;
        });
    }
    Ok(json!({"success": true, "conversationId": id}))
}

async fn send<L: EventLog>(
    state: &SocketState<L>,
    session: &Session,
    data: &Result<Value, String>,
) -> Result<Value, ApiError> {
    let p: SendPayload = parse(data)?;
    let sent = state
        .service
        .send_message(
            &session.identity.user_id,
            &p.conversation_id,
            &p.content,
            p.temp_id.as_deref(),
            None,
        )
        .await?;
    Ok(json!({"success": true, "messageId": sent.message_id, "seq": sent.seq}))
}
