//! JWT authentication as the contract fixes it: HS256 only (`none` and every other algorithm
//! refused), `userId` claim with `sub` as fallback, `exp` and `nbf` checked when present with no
//! leeway (a token not yet valid is `INVALID_TOKEN`),
//! `role: "admin"` for the admin routes.

use crate::error::{ApiError, ErrorCode};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use events::{Millis, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication token required")]
    MissingToken,
    #[error("Invalid authentication token")]
    InvalidToken,
    #[error("Authentication token expired")]
    ExpiredToken,
    #[error("User not authorized")]
    Unauthorized,
}

impl AuthError {
    pub fn code(self) -> ErrorCode {
        match self {
            Self::MissingToken => ErrorCode::MissingToken,
            Self::InvalidToken => ErrorCode::InvalidToken,
            Self::ExpiredToken => ErrorCode::ExpiredToken,
            Self::Unauthorized => ErrorCode::Unauthorized,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub admin: bool,
    /// Expiry in seconds since the epoch, when the token has one.
    pub exp: Option<i64>,
}

impl Identity {
    /// The actor recorded in the log for this identity's commands.
    pub fn actor(&self) -> String {
        self.user_id.to_string()
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "Admin role required",
            ))
        }
    }
}

/// Signing and verification keys from `CHAT_JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        validation.validate_exp = true;
        // A token carrying `nbf` is refused before that time (no leeway either).
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::ExpiredToken,
                _ => AuthError::InvalidToken,
            })?;
        let c = data.claims;
        let raw = c.user_id.or(c.sub).ok_or(AuthError::InvalidToken)?;
        let user_id = UserId::parse(&raw).map_err(|_| AuthError::InvalidToken)?;
        Ok(Identity {
            user_id,
            admin: c.role.as_deref() == Some("admin"),
            exp: c.exp,
        })
    }

    /// Signs a token for `user`, valid until `exp` (seconds since the epoch) when given.
    pub fn sign(&self, user: &UserId, admin: bool, exp: Option<i64>) -> String {
        let claims = Claims {
            user_id: Some(user.to_string()),
            sub: None,
            exp,
            role: admin.then(|| "admin".to_owned()),
        };
        // HS256 signing of a small JSON object has no failure mode with a byte secret.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }
}

/// Reads the bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let v = header?.trim();
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Milliseconds until a token with `exp` (seconds) expires; `None` for no expiry.
pub fn millis_until_expiry(exp: Option<i64>, now: Millis) -> Option<i64> {
    exp.map(|e| e.saturating_mul(1000).saturating_sub(now))
}

/// REST authentication: `Authorization: Bearer <jwt>`; 401 with the token's code otherwise.
impl<S> FromRequestParts<S> for Identity
where
    Arc<JwtKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let keys = Arc::<JwtKeys>::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = bearer(header).ok_or(AuthError::MissingToken)?;
        Ok(keys.verify(token)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"secret")
    }

    fn now_secs() -> i64 {
        events::now_millis() / 1000
    }

    #[test]
    fn round_trip_and_claims() {
        let u = UserId::parse("alice").expect("valid");
        let t = keys().sign(&u, true, Some(now_secs() + 60));
        let id = keys().verify(&t).expect("valid");
        assert_eq!(id.user_id, u);
        assert!(id.admin);
        let t = keys().sign(&u, false, None);
        assert!(!keys().verify(&t).expect("valid").admin);
    }

    #[test]
    fn rejections() {
        let u = UserId::parse("alice").expect("valid");
        let expired = keys().sign(&u, false, Some(now_secs() - 1));
        assert_eq!(keys().verify(&expired), Err(AuthError::ExpiredToken));
        let other = JwtKeys::new(b"other").sign(&u, false, None);
        assert_eq!(keys().verify(&other), Err(AuthError::InvalidToken));
        assert_eq!(keys().verify("garbage"), Err(AuthError::InvalidToken));
        // alg: none with a userId claim
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ1c2VySWQiOiJhbGljZSJ9.";
        assert_eq!(keys().verify(none), Err(AuthError::InvalidToken));
        // Altered claims under the original signature: bob's token made into alice's.
        let bob = keys().sign(&UserId::parse("bob").expect("valid"), false, None);
        let (head, rest) = bob.split_once('.').expect("jwt");
        let (_, sig) = rest.split_once('.').expect("jwt");
        let altered = format!("{head}.eyJ1c2VySWQiOiJhbGljZSJ9.{sig}");
        assert_eq!(keys().verify(&altered), Err(AuthError::InvalidToken));
        // Not valid before a minute from now.
        #[derive(serde::Serialize)]
        struct Early {
            #[serde(rename = "userId")]
            user_id: &'static str,
            nbf: i64,
        }
        let early = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Early {
                user_id: "alice",
                nbf: now_secs() + 60,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("sign");
        assert_eq!(keys().verify(&early), Err(AuthError::InvalidToken));
    }

    #[test]
    fn sub_is_the_fallback_claim() {
        let claims = serde_json::json!({"sub": "bob"});
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("sign");
        assert_eq!(keys().verify(&t).expect("valid").user_id.as_str(), "bob");
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
