//! REST write routes. Thin: extract (JSON → `INVALID_INPUT` on a bad body, bearer token →
//! 401), call the same service as the socket events, answer with the contract's shapes.

use crate::service::Service;
use api::{ApiError, ApiJson, Identity, JwtKeys};
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use eventlog::EventLog;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

pub struct RestState<L> {
    pub service: Arc<Service<L>>,
    pub keys: Arc<JwtKeys>,
}

impl<L> Clone for RestState<L> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<L> FromRef<RestState<L>> for Arc<JwtKeys> {
    fn from_ref(s: &RestState<L>) -> Self {
        s.keys.clone()
    }
}

pub fn router<L: EventLog>(state: RestState<L>) -> Router {
    Router::new()
        .route("/api/users/{id}", put(put_user::<L>))
        .route("/api/conversations", post(post_conversation::<L>))
        .route("/api/messages", post(post_message::<L>))
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
    who: Identity,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        s.service
            .upsert_user(&who, &id, body.name, body.avatar_url)
            .await?,
    ))
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
        .service
        .create_conversation(&who, body.title, body.participant_ids)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
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
    let sent = s
        .service
        .send_message(
            &who.user_id,
            &body.conversation_id,
            &body.content,
            body.temp_id.as_deref(),
            None,
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
