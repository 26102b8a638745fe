//! Demo mode (`chat serve --demo`, contract 4.5): `POST /api/demo/session` `{name}` registers a
//! user by name and answers `{userId, token}`, so that a newcomer signs in without an operator.
//! Off by default; without `--demo` the route does not exist (404).
//!
//! Must not be mounted unless the operator asked for it: anyone reaching the node can then
//! sign in as any demo user.

use api::{ApiError, ApiJson, JwtKeys};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use command::node::NodeState;
use command::service::{Caller, new_correlation_id};
use eventlog::EventLog;
use events::UserId;
use serde::Deserialize;
use std::sync::Arc;
use wire::rest::DemoSession;

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// How long a demo token lasts.
pub const TOKEN_SECS: i64 = 24 * 3600;

pub struct Demo<L: EventLog> {
    pub node: Arc<NodeState<L>>,
    pub keys: Arc<JwtKeys>,
}

impl<L: EventLog> Clone for Demo<L> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            keys: self.keys.clone(),
        }
    }
}

pub fn router<L: EventLog>(demo: Demo<L>) -> Router {
    Router::new()
        .route("/api/demo/session", post(session::<L>))
        .with_state(demo)
}

#[derive(Deserialize)]
struct SessionBody {
    name: String,
}

/// The user id of a demo user named `name`: `demo-` and the name's letters and digits, lower
/// case, other characters as `-` (the same name signs in as the same user).
pub fn user_of(name: &str) -> Result<UserId, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_input(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && slug.ends_with('-')) {
            slug.push(c);
        }
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        return Err(ApiError::invalid_input(
            "name must hold at least one letter or digit (a to z, 0 to 9)",
        ));
    }
    UserId::parse(&format!("demo-{slug}")).map_err(|e| ApiError::invalid_input(e.to_string()))
}

async fn session<L: EventLog>(
    State(demo): State<Demo<L>>,
    ApiJson(body): ApiJson<SessionBody>,
) -> Result<Json<DemoSession>, ApiError> {
    let user_id = user_of(&body.name)?;
    let operator = Caller {
        user_id: UserId::parse("demo").map_err(ApiError::internal)?,
        admin: true,
        correlation_id: new_correlation_id(),
    };
    demo.node
        .service
        .upsert_user(
            &operator,
            user_id.clone(),
            body.name.trim().to_owned(),
            None,
        )
        .await?;
    let exp = events::now_millis() / 1000 + TOKEN_SECS;
    let token = demo.keys.sign(&user_id, false, Some(exp));
    Ok(Json(DemoSession { user_id, token }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_becomes_a_stable_user_id_or_a_clear_refusal() {
        let id = |n: &str| user_of(n).map(|u| u.as_str().to_owned());
        assert_eq!(id("Alice").ok().as_deref(), Some("demo-alice"));
        assert_eq!(
            id("  Mary  Ann O'Neil ").ok().as_deref(),
            Some("demo-mary-ann-o-neil")
        );
        assert_eq!(id("Zoë 2").ok().as_deref(), Some("demo-zo-2"));
        for bad in ["", "   ", "日本", "!!!", &"x".repeat(65)] {
            let e = user_of(bad).expect_err(bad);
            assert_eq!(e.code, api::ErrorCode::InvalidInput, "{bad:?}");
        }
    }
}
