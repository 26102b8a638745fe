//! The Socket.IO edge. Per socket:
//!
//! 1. The connect handler registers, before any `.await`, one fallback handler that puts every
//!    incoming event, in packet order, into the socket's bounded inbox (the extraction runs
//!    synchronously inside socketioxide's dispatch, so order is the client's emission order).
//! 2. One task per socket authenticates (`auth:success` or `auth:error` + disconnect), then
//!    handles the inbox one event at a time: parse (`INVALID_INPUT` on a bad payload, the
//!    socket stays) → service → ack or `error` event.
//!
//! Handlers are thin: rules live in `domain`, cross-aggregate lookups in `service`, pushing
//! in `push`.

pub(crate) mod handlers;
pub mod request;

use crate::drain;
use crate::node::NodeState;
use api::AuthError;
use eventlog::EventLog;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events a socket may have waiting; beyond this the client is answered `RATE_LIMIT`.
pub const INBOX_CAPACITY: usize = 256;

/// One incoming client event, waiting its turn.
pub(crate) struct Inbound {
    pub event: String,
    pub data: Result<Value, String>,
    pub ack: AckSender,
    pub has_ack: bool,
    pub received: std::time::Instant,
    /// Counted until answered (graceful shutdown waits for it).
    pub _pending: drain::Pending,
}

/// The sending half of a socket's inbox, kept in the socket's extensions, and the node's drain
/// that counts what is queued.
#[derive(Clone)]
struct Inbox(mpsc::Sender<Inbound>, Arc<drain::Drain>);

/// Extractor that enqueues the event synchronously, during socketioxide's in-order dispatch.
struct Enqueued;

impl FromMessageParts<socketioxide::adapter::LocalAdapter> for Enqueued {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let event = Event::from_message_parts(s, v, ack_id)
            .map(|e| e.0)
            .unwrap_or_default();
        let TryData(data) = TryData::<Value>::from_message_parts(s, v, ack_id)?;
        let ack = AckSender::from_message_parts(s, v, ack_id)?;
        let Some(Inbox(tx, drain)) = s.extensions.get::<Inbox>() else {
            return Ok(Enqueued);
        };
        let inbound = Inbound {
            event,
            data: data.map_err(|e| e.to_string()),
            ack,
            has_ack: ack_id.is_some(),
            received: std::time::Instant::now(),
            _pending: drain.track(),
        };
        if let Err(mpsc::error::TrySendError::Full(inbound)) = tx.try_send(inbound) {
            let error = api::ApiError::new(api::ErrorCode::RateLimit, "Too many pending events");
            let Ok(socket) = SocketRef::from_message_parts(s, v, ack_id);
            handlers::reply_error(&socket, inbound, &error, Default::default());
        }
        Ok(Enqueued)
    }
}

/// Registers the default namespace on `io`.
pub fn register<L: EventLog>(io: &SocketIo, state: Arc<NodeState<L>>) {
    io.ns(
        "/",
        move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let state = state.clone();
            let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
            socket.extensions.insert(Inbox(tx, state.drain.clone()));
            socket.on_fallback(async |_: Enqueued| {});
            let on_disconnect = state.clone();
            socket.on_disconnect(async move |socket: SocketRef| {
                socket.extensions.remove::<Inbox>();
                if let Some(session) = socket.extensions.get::<handlers::Session>() {
                    on_disconnect.metrics.sockets.dec();
                    let user = session.identity.user_id;
                    on_disconnect.disconnected(&socket, user).await;
                }
            });
            let token = auth
                .ok()
                .and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_owned))
                .or_else(|| {
                    let header = socket
                        .req_parts()
                        .headers
                        .get(axum::http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    api::auth::bearer(header).map(str::to_owned)
                });
            tokio::spawn(handlers::run(state, socket, token, rx));
            async {}
        },
    );
}

/// Verifies the handshake token and that its user may connect.
async fn authenticate<L: EventLog>(
    state: &NodeState<L>,
    token: Option<&str>,
) -> Result<handlers::Session, AuthError> {
    let identity = state.keys.verify(token.ok_or(AuthError::MissingToken)?)?;
    state
        .service
        .active_user(&identity.user_id)
        .await
        .map_err(|_| AuthError::Unauthorized)?
        .ok_or(AuthError::Unauthorized)?;
    let profile = state.service.profile(&identity.user_id).await;
    let me = crate::push::outbound::user_ref(&identity.user_id, profile.as_ref());
    Ok(handlers::Session { identity, me })
}
