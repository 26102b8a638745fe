//! REST write routes. Thin: extract (JSON → `INVALID_INPUT` on a bad body, bearer token →
//! 401), call the same service as the socket events, answer with the contract's shapes.

use crate::node::NodeState;
use api::{ApiError, ApiJson, ErrorCode, Identity, JwtKeys};
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, patch, post, put};
use axum::{Json, Router};
use eventlog::EventLog;
use events::{ConversationId, MessageId};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Finds the conversation of a message (the REST message routes name only the message).
/// Implemented over the read models by the wiring; the command side holds no SQL.
/// It first waits (as reads do) for the read models to reach `minPosition` when given.
pub type MessageLocator = Arc<
    dyn Fn(MessageId, Option<u64>) -> BoxFuture<'static, Result<Option<ConversationId>, ApiError>>
        + Send
        + Sync,
>;

/// The REST edge shares the socket edge's state: same service, same per-user send bucket,
/// same presence (a message sent over REST is delivered to whoever is in the room).
pub struct RestState<L> {
    pub node: Arc<NodeState<L>>,
    pub locate: MessageLocator,
}

impl<L> Clone for RestState<L> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            locate: self.locate.clone(),
        }
    }
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
        return ConversationId::parse(c).map_err(|e| ApiError::invalid_input(e.to_string()));
    }
    (s.locate)(message.clone(), min_position)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "Message not found"))
}

fn message_id(id: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(id).map_err(|e| ApiError::invalid_input(e.to_string()))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InConversation {
    conversation_id: Option<String>,
    min_position: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EditBody {
    content: String,
    conversation_id: Option<String>,
}

async fn patch_message<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
    Query(q): Query<InConversation>,
    ApiJson(body): ApiJson<EditBody>,
) -> Answer {
    let id = message_id(&id)?;
    let conv = conversation_of(&s, &id, body.conversation_id.as_deref(), q.min_position).await?;
    Ok(Json(
        s.node
            .service
            .edit_message(&who.user_id, &conv, &id, &body.content)
            .await?,
    ))
}

async fn delete_message<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
    Query(q): Query<InConversation>,
) -> Answer {
    let id = message_id(&id)?;
    let conv = conversation_of(&s, &id, q.conversation_id.as_deref(), q.min_position).await?;
    Ok(Json(
        s.node
            .service
            .delete_message(&who.user_id, &conv, &id)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadBody {
    conversation_id: String,
    message_ids: Vec<String>,
}

async fn mark_read<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    ApiJson(body): ApiJson<ReadBody>,
) -> Answer {
    let conv = ConversationId::parse(&body.conversation_id)
        .map_err(|e| ApiError::invalid_input(e.to_string()))?;
    Ok(Json(
        s.node
            .service
            .mark_read(&who.user_id, &conv, &body.message_ids)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReactionBody {
    emoji: String,
    conversation_id: Option<String>,
}

async fn add_reaction<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
    Query(q): Query<InConversation>,
    ApiJson(body): ApiJson<ReactionBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = message_id(&id)?;
    let conv = conversation_of(&s, &id, body.conversation_id.as_deref(), q.min_position).await?;
    let added = s
        .node
        .service
        .add_reaction(&who.user_id, &conv, &id, &body.emoji)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

async fn remove_reaction<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path((id, reaction)): Path<(String, String)>,
    Query(q): Query<InConversation>,
) -> Answer {
    let id = message_id(&id)?;
    let conv = conversation_of(&s, &id, q.conversation_id.as_deref(), q.min_position).await?;
    Ok(Json(
        s.node
            .service
            .remove_reaction(&who.user_id, &conv, &id, &reaction)
            .await?,
    ))
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
        .route("/api/conversations", post(post_conversation::<L>))
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
        .route("/api/messages/{id}/reactions", post(add_reaction::<L>))
        .route(
            "/api/messages/{id}/reactions/{reaction}",
            delete(remove_reaction::<L>),
        )
        .with_state(state)
}

type Answer = Result<Json<Value>, ApiError>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    name: String,
    avatar_url: Option<String>,
}

async fn put_user<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Answer {
    Ok(Json(
        s.node
            .service
            .upsert_user(&who, &id, body.name, body.avatar_url)
            .await?,
    ))
}

async fn suspend<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
) -> Answer {
    Ok(Json(s.node.service.set_suspended(&who, &id, true).await?))
}

async fn reinstate<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
) -> Answer {
    Ok(Json(s.node.service.set_suspended(&who, &id, false).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConversationBody {
    title: Option<String>,
    participant_ids: Vec<String>,
}

async fn post_conversation<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    ApiJson(body): ApiJson<ConversationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = s
        .node
        .service
        .create_conversation(&who, body.title, body.participant_ids)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantBody {
    user_id: String,
}

async fn add_participant<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ParticipantBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let added = s
        .node
        .service
        .add_participant(&who.user_id, &id, &body.user_id)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

async fn remove_participant<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    Path((id, user)): Path<(String, String)>,
) -> Answer {
    Ok(Json(
        s.node
            .service
            .remove_participant(&who.user_id, &id, &user)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    conversation_id: String,
    content: String,
    temp_id: Option<String>,
}

async fn post_message<L: EventLog>(
    State(s): State<RestState<L>>,
    who: Identity,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Err(wait) = s
        .node
        .take_send_token(&who.user_id, std::time::Instant::now())
    {
        return Err(ApiError {
            retry_after_secs: Some(wait.as_secs().max(1)),
            ..ApiError::new(ErrorCode::RateLimit, "Rate limit exceeded")
        });
    }
    let present = events::ConversationId::parse(&body.conversation_id)
        .map(|c| s.node.live.online_users(&c))
        .unwrap_or_default();
    let sent = s
        .node
        .service
        .send_message(
            &who.user_id,
            &body.conversation_id,
            &body.content,
            body.temp_id.as_deref(),
            present,
        )
        .await?;
    let mut payload = sent.payload;
    payload["position"] = sent.position.into();
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(payload)))
}
