//! REST write routes. Thin: extract (JSON → `INVALID_INPUT` on a bad body, bearer token →
//! 401, `X-Request-Id` → the correlation id), parse into typed values, call the same service
//! as the socket events, answer with the contract's wire shapes.

use super::{id, mentions, text};
use crate::node::NodeState;
use crate::service::{Caller, NewMessage};
use api::{ApiError, ApiJson, ErrorCode, Identity, JwtKeys};
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use eventlog::EventLog;
use events::{Content, ConversationId, Emoji, MessageId, TempId, UserId};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use tracing::Instrument;
use wire::rest::{
    ConversationCreated, Deleted, Edited, HoldChanged, MessageHistory, ParticipantChanged, Pinned,
    Positioned, Reaction, RetentionChanged, SentMessage, UserSaved, UserStatus,
};

/// Finds the conversation of a message (the REST message routes name only the message).
/// Implemented over the read models by the wiring; the command side holds no SQL.
/// It first waits (as reads do) for the read models to reach `minPosition` when given.
pub type MessageLocator = Arc<
    dyn Fn(MessageId, Option<u64>) -> BoxFuture<'static, Result<Option<ConversationId>, ApiError>>
        + Send
        + Sync,
>;

/// The held conversation with a message of a user, from the read models (erasure refuses it).
pub type HoldFinder = Arc<
    dyn Fn(UserId) -> BoxFuture<'static, Result<Option<(String, String)>, ApiError>> + Send + Sync,
>;

/// The REST edge shares the socket edge's node state: same service, same per-user send
/// bucket, same presence (a message sent over REST is delivered to whoever is in the room).
pub struct RestState<L> {
    pub node: Arc<NodeState<L>>,
    pub locate: MessageLocator,
    pub holds: HoldFinder,
}

impl<L> Clone for RestState<L> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            locate: self.locate.clone(),
            holds: self.holds.clone(),
        }
    }
}

/// The header a client (or a proxy) names its request with; echoed into the log as the
/// commands' correlation id.
pub const REQUEST_ID: &str = "x-request-id";

/// The caller of a REST write: the token's identity and the request's correlation id
/// (`X-Request-Id` when it is a usable id, else a new one).
pub struct RestCaller(pub Caller);

/// A valid token whose user is not erased (an erased user's tokens are refused).
impl<L: EventLog> FromRequestParts<RestState<L>> for RestCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &RestState<L>) -> Result<Self, ApiError> {
        let identity = Identity::from_request_parts(parts, state).await?;
        if state.node.service.is_erased(&identity.user_id).await {
            return Err(ApiError::new(ErrorCode::Unauthorized, "User erased"));
        }
        Ok(Self(Caller::new(&identity, request_id(parts))))
    }
}

/// `X-Request-Id` when it is 1–128 visible ASCII characters.
fn request_id(parts: &Parts) -> Option<String> {
    let v = parts.headers.get(REQUEST_ID)?.to_str().ok()?.trim();
    let ok = !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_owned())
}

/// Runs a route's service call in a span that names the route and the correlation id.
async fn traced<T>(
    route: &'static str,
    caller: &Caller,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let span = tracing::info_span!("rest_command", route, user = %caller.user_id, correlation_id = %caller.correlation_id);
    work.instrument(span).await
}

/// The conversation a message route acts in: `conversationId` when the client gave it,
/// else the read models' answer.
async fn conversation_of<L>(
    s: &RestState<L>,
    message: &MessageId,
    given: Option<&str>,
    min_position: Option<u64>,
) -> Result<ConversationId, ApiError> {
    if let Some(c) = given {
        return id(c);
    }
    (s.locate)(message.clone(), min_position)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "Message not found"))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InConversation {
    conversation_id: Option<String>,
    min_position: Option<u64>,
}

/// `?conversationId=` (else the read models find it, after `minPosition`).
async fn message_history<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(message): Path<String>,
    Query(q): Query<InConversation>,
) -> Result<Json<MessageHistory>, ApiError> {
    let history = traced("message_history", &who, async {
        let message: MessageId = id(&message)?;
        let conv =
            conversation_of(&s, &message, q.conversation_id.as_deref(), q.min_position).await?;
        Ok(s.node
            .service
            .message_history(&who, &conv, &message)
            .await?)
    });
    Ok(Json(history.await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EditBody {
    content: String,
    conversation_id: Option<String>,
}

async fn patch_message<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(message): Path<String>,
    Query(q): Query<InConversation>,
    ApiJson(body): ApiJson<EditBody>,
) -> Result<Json<Edited>, ApiError> {
    let message: MessageId = id(&message)?;
    let conv = conversation_of(
        &s,
        &message,
        body.conversation_id.as_deref(),
        q.min_position,
    )
    .await?;
    let content = text(Content::parse(&body.content))?;
    let edited = traced("patch_message", &who, async {
        Ok(s.node
            .service
            .edit_message(&who, &conv, &message, content)
            .await?)
    });
    Ok(Json(edited.await?))
}

/// `POST` (pin) and `DELETE` (unpin) `/api/messages/:id/pin`.
async fn pin<L: EventLog, const PIN: bool>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(message): Path<String>,
    Query(q): Query<InConversation>,
) -> Result<Json<Pinned>, ApiError> {
    let message: MessageId = id(&message)?;
    let conv = conversation_of(&s, &message, q.conversation_id.as_deref(), q.min_position).await?;
    let pinned = traced(
        if PIN { "pin_message" } else { "unpin_message" },
        &who,
        async {
            Ok(s.node
                .service
                .pin_message(&who, &conv, &message, PIN)
                .await?)
        },
    );
    Ok(Json(pinned.await?))
}

async fn delete_message<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(message): Path<String>,
    Query(q): Query<InConversation>,
) -> Result<Json<Deleted>, ApiError> {
    let message: MessageId = id(&message)?;
    let conv = conversation_of(&s, &message, q.conversation_id.as_deref(), q.min_position).await?;
    let deleted = traced("delete_message", &who, async {
        Ok(s.node.service.delete_message(&who, &conv, &message).await?)
    });
    Ok(Json(deleted.await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadBody {
    conversation_id: String,
    message_ids: Vec<String>,
}

async fn mark_read<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    ApiJson(body): ApiJson<ReadBody>,
) -> Result<Json<Positioned>, ApiError> {
    let conv: ConversationId = id(&body.conversation_id)?;
    let ids = body
        .message_ids
        .iter()
        .map(|m| id(m))
        .collect::<Result<Vec<MessageId>, _>>()?;
    let read = traced("mark_read", &who, async {
        Ok(s.node.service.mark_read(&who, &conv, ids).await?)
    });
    Ok(Json(read.await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReactionBody {
    emoji: String,
    conversation_id: Option<String>,
}

async fn add_reaction<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(message): Path<String>,
    Query(q): Query<InConversation>,
    ApiJson(body): ApiJson<ReactionBody>,
) -> Result<(StatusCode, Json<Reaction>), ApiError> {
    let message: MessageId = id(&message)?;
    let conv = conversation_of(
        &s,
        &message,
        body.conversation_id.as_deref(),
        q.min_position,
    )
    .await?;
    let emoji = text(Emoji::parse(&body.emoji))?;
    let added = traced("add_reaction", &who, async {
        Ok(s.node
            .service
            .add_reaction(&who, &conv, &message, emoji)
            .await?)
    });
    Ok((StatusCode::CREATED, Json(added.await?)))
}

async fn remove_reaction<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path((message, reaction)): Path<(String, String)>,
    Query(q): Query<InConversation>,
) -> Result<Json<Positioned>, ApiError> {
    let message: MessageId = id(&message)?;
    let conv = conversation_of(&s, &message, q.conversation_id.as_deref(), q.min_position).await?;
    let reaction = id(&reaction)?;
    let removed = traced("remove_reaction", &who, async {
        Ok(s.node
            .service
            .remove_reaction(&who, &conv, &message, reaction)
            .await?)
    });
    Ok(Json(removed.await?))
}

impl<L> FromRef<RestState<L>> for Arc<JwtKeys> {
    fn from_ref(s: &RestState<L>) -> Self {
        s.node.keys.clone()
    }
}

pub fn router<L: EventLog>(state: RestState<L>) -> Router {
    Router::new()
        .route("/api/users/{id}", put(put_user::<L>))
        .route("/api/users/{id}/suspend", post(suspend::<L>))
        .route("/api/users/{id}/reinstate", post(reinstate::<L>))
        .route("/api/users/{id}/erase", post(erase::<L>))
        .route(
            "/api/holds/users/{id}",
            put(hold_user::<L>).delete(release_user::<L>),
        )
        .route(
            "/api/holds/conversations/{id}",
            put(hold_conversation::<L>).delete(release_conversation::<L>),
        )
        .route("/api/conversations", post(post_conversation::<L>))
        .route("/api/conversations/{id}/retention", put(put_retention::<L>))
        .route(
            "/api/conversations/{id}/participants",
            post(add_participant::<L>),
        )
        .route(
            "/api/conversations/{id}/participants/{user}",
            delete(remove_participant::<L>),
        )
        .route("/api/messages", post(post_message::<L>))
        .route("/api/messages/read", post(mark_read::<L>))
        .route(
            "/api/messages/{id}",
            patch(patch_message::<L>).delete(delete_message::<L>),
        )
        .route("/api/messages/{id}/history", get(message_history::<L>))
        .route(
            "/api/messages/{id}/pin",
            post(pin::<L, true>).delete(pin::<L, false>),
        )
        .route("/api/messages/{id}/reactions", post(add_reaction::<L>))
        .route(
            "/api/messages/{id}/reactions/{reaction}",
            delete(remove_reaction::<L>),
        )
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    name: String,
    avatar_url: Option<String>,
}

async fn put_user<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Json<UserSaved>, ApiError> {
    let saved = traced("put_user", &who, async {
        who.require_admin()?;
        let user: UserId = id(&user)?;
        Ok(s.node
            .service
            .upsert_user(&who, user, body.name, body.avatar_url)
            .await?)
    });
    Ok(Json(saved.await?))
}

async fn suspend<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(user): Path<String>,
) -> Result<Json<UserStatus>, ApiError> {
    set_suspended(&s, &who, &user, true).await
}

async fn reinstate<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(user): Path<String>,
) -> Result<Json<UserStatus>, ApiError> {
    set_suspended(&s, &who, &user, false).await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EraseBody {
    reason: Option<String>,
}

async fn erase<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<UserStatus>, ApiError> {
    let erased = traced("erase_user", &who, async {
        who.require_admin()?;
        let user: UserId = id(&user)?;
        // The body is optional (`{reason?}`); when there is one it must be that object.
        let reason = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice::<EraseBody>(&body)
                .map_err(|e| ApiError::invalid_input(e.to_string()))?
                .reason
        };
        let held_in = (s.holds)(user.clone()).await?;
        Ok(s.node
            .service
            .erase_user(&who, user, reason, held_in)
            .await?)
    });
    Ok(Json(erased.await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: String,
}

async fn hold_user<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Json<HoldChanged>, ApiError> {
    user_hold(&s, &who, &user, Some(body.reason)).await
}

async fn release_user<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(user): Path<String>,
) -> Result<Json<HoldChanged>, ApiError> {
    user_hold(&s, &who, &user, None).await
}

async fn user_hold<L: EventLog>(
    s: &RestState<L>,
    who: &Caller,
    user: &str,
    reason: Option<String>,
) -> Result<Json<HoldChanged>, ApiError> {
    let changed = traced("user_hold", who, async {
        who.require_admin()?;
        let user: UserId = id(user)?;
        Ok(s.node.service.set_user_hold(who, user, reason).await?)
    });
    Ok(Json(changed.await?))
}

async fn hold_conversation<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(conv): Path<String>,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Json<HoldChanged>, ApiError> {
    conversation_hold(&s, &who, &conv, Some(body.reason)).await
}

async fn release_conversation<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(conv): Path<String>,
) -> Result<Json<HoldChanged>, ApiError> {
    conversation_hold(&s, &who, &conv, None).await
}

async fn conversation_hold<L: EventLog>(
    s: &RestState<L>,
    who: &Caller,
    conv: &str,
    reason: Option<String>,
) -> Result<Json<HoldChanged>, ApiError> {
    let changed = traced("conversation_hold", who, async {
        who.require_admin()?;
        let conv: ConversationId = id(conv)?;
        Ok(s.node
            .service
            .set_conversation_hold(who, conv, reason)
            .await?)
    });
    Ok(Json(changed.await?))
}

/// `{retentionSeconds}`: required, a whole number of seconds or `null` (keep forever).
async fn put_retention<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(conv): Path<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<RetentionChanged>, ApiError> {
    use crate::domain::{ConversationError, DomainError};
    let changed = traced("set_retention", &who, async {
        let conv: ConversationId = id(&conv)?;
        let range = || {
            ApiError::from(crate::error::CommandError::Rule(DomainError::Conversation(
                ConversationError::RetentionRange,
            )))
        };
        let seconds = match body.get("retentionSeconds") {
            None => return Err(range()),
            Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(range)?),
        };
        Ok(s.node.service.set_retention(&who, conv, seconds).await?)
    });
    Ok(Json(changed.await?))
}

async fn set_suspended<L: EventLog>(
    s: &RestState<L>,
    who: &Caller,
    user: &str,
    suspended: bool,
) -> Result<Json<UserStatus>, ApiError> {
    let changed = traced("set_suspended", who, async {
        who.require_admin()?;
        let user: UserId = id(user)?;
        Ok(s.node.service.set_suspended(who, user, suspended).await?)
    });
    Ok(Json(changed.await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConversationBody {
    title: Option<String>,
    participant_ids: Vec<String>,
}

async fn post_conversation<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    ApiJson(body): ApiJson<ConversationBody>,
) -> Result<(StatusCode, Json<ConversationCreated>), ApiError> {
    let participants = body
        .participant_ids
        .iter()
        .map(|p| id(p))
        .collect::<Result<Vec<UserId>, _>>()?;
    let created = traced("post_conversation", &who, async {
        Ok(s.node
            .service
            .create_conversation(&who, body.title, participants)
            .await?)
    });
    Ok((StatusCode::CREATED, Json(created.await?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantBody {
    user_id: String,
}

async fn add_participant<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path(conv): Path<String>,
    ApiJson(body): ApiJson<ParticipantBody>,
) -> Result<(StatusCode, Json<ParticipantChanged>), ApiError> {
    let user: UserId = id(&body.user_id)?;
    let conv: ConversationId = id(&conv)?;
    let added = traced("add_participant", &who, async {
        Ok(s.node.service.add_participant(&who, &conv, user).await?)
    });
    Ok((StatusCode::CREATED, Json(added.await?)))
}

async fn remove_participant<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    Path((conv, user)): Path<(String, String)>,
) -> Result<Json<ParticipantChanged>, ApiError> {
    let conv: ConversationId = id(&conv)?;
    let user: UserId = id(&user)?;
    let removed = traced("remove_participant", &who, async {
        Ok(s.node.service.remove_participant(&who, &conv, user).await?)
    });
    Ok(Json(removed.await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    conversation_id: String,
    content: String,
    temp_id: Option<String>,
    parent_id: Option<String>,
    mentions: Option<Vec<String>>,
}

async fn post_message<L: EventLog>(
    State(s): State<RestState<L>>,
    RestCaller(who): RestCaller,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<(StatusCode, Json<SentMessage>), ApiError> {
    if let Err(wait) = s
        .node
        .take_send_token(&who.user_id, std::time::Instant::now())
    {
        return Err(ApiError::rate_limited(wait));
    }
    let conv: ConversationId = id(&body.conversation_id)?;
    let content = text(Content::parse(&body.content))?;
    let new = NewMessage {
        content,
        temp_id: body.temp_id.map(|t| text(TempId::parse(&t))).transpose()?,
        parent: body.parent_id.as_deref().map(id).transpose()?,
        mentions: mentions(body.mentions.as_deref())?,
    };
    let present = s.node.live.online_users(&conv);
    let sent = traced("post_message", &who, async {
        Ok(s.node
            .service
            .send_message(&who, &conv, new, present)
            .await?)
    })
    .await?;
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(SentMessage {
            message: sent.message,
            position: sent.position,
        }),
    ))
}
