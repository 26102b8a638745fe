//! The contract's error codes, the REST error body `{"error": {"message", "code"}}`, and the
//! socket error payload `{message, code}`.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every error code a client can see. The string form is stable: clients branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidInput,
    NotParticipant,
    NotFound,
    Unauthorized,
    RateLimit,
    Conflict,
    Unavailable,
    Internal,
    JoinFailed,
    MissingToken,
    InvalidToken,
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "INVALID_INPUT",
            Self::NotParticipant => "NOT_PARTICIPANT",
            Self::NotFound => "NOT_FOUND",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::RateLimit => "RATE_LIMIT",
            Self::Conflict => "CONFLICT",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::JoinFailed => "JOIN_FAILED",
            Self::MissingToken => "MISSING_TOKEN",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::ExpiredToken => "EXPIRED_TOKEN",
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidInput => StatusCode::BAD_REQUEST,
            Self::MissingToken | Self::InvalidToken | Self::ExpiredToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::NotParticipant | Self::Unauthorized => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal | Self::JoinFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An error as a client sees it: a code and a human message, never internal detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub message: String,
    pub code: ErrorCode,
    /// For `RATE_LIMIT`: seconds until a retry may succeed.
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
            retry_after_secs: None,
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// An internal failure: logged here, once, with its detail; the client sees only a code.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "Internal error")
    }

    /// `RATE_LIMIT`, with `Retry-After` of at least one second.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        Self {
            retry_after_secs: Some(wait.as_secs().max(1)),
            ..Self::new(ErrorCode::RateLimit, "Rate limit exceeded")
        }
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "dependency unavailable");
        Self::new(ErrorCode::Unavailable, "Service temporarily unavailable")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        let retry = self.retry_after_secs;
        let mut res = (status, Json(serde_json::json!({ "error": self }))).into_response();
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

/// A JSON body whose rejection (bad JSON, wrong shape, wrong content type) is the contract's
/// 400 `INVALID_INPUT`, not axum's plain-text default.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::invalid_input(rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_strings_with_statuses() {
        assert_eq!(ErrorCode::NotParticipant.as_str(), "NOT_PARTICIPANT");
        assert_eq!(
            ErrorCode::InvalidInput.http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ErrorCode::ExpiredToken.http_status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ErrorCode::Unavailable.http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let json = serde_json::to_value(ApiError::new(ErrorCode::NotFound, "x")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"message": "x", "code": "NOT_FOUND"})
        );
    }
}
