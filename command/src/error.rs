//! The one error a command can end in, as the service reports it: a broken rule of an
//! aggregate, a lookup across aggregates that failed, or the log. Each has a stable code
//! ([`CommandError::code`]); the edges alone turn it into an HTTP status or a socket ack
//! (through `api::ApiError`).

use crate::domain::DomainError;
use crate::executor::ExecError;
use api::{ApiError, ErrorCode};
use events::UserId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rule(#[from] DomainError),
    /// The caller's own user is unknown or suspended.
    #[error("User not authorized")]
    CallerInactive,
    /// An admin route called without the admin role.
    #[error("Admin role required")]
    AdminRequired,
    /// A user the command names is not registered (or not active).
    #[error("User {0} not found")]
    UnknownUser(UserId),
    #[error("too many concurrent changes, retry")]
    Conflict,
    /// The log cannot be reached; the command may be retried (same `tempId`).
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// Erasure refused: the user has messages in a conversation under legal hold.
    #[error("User has messages in conversation {conversation}, under legal hold: {reason}")]
    HeldConversation {
        conversation: String,
        reason: String,
    },
    /// The caller's data key is destroyed: nothing more may be sealed for them.
    #[error("User erased")]
    Erased,
    /// Something that should not happen; the client sees only the code.
    #[error("internal: {0}")]
    Internal(String),
}

impl CommandError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rule(r) => r.code(),
            Self::CallerInactive | Self::AdminRequired | Self::Erased => ErrorCode::Unauthorized,
            Self::UnknownUser(_) => ErrorCode::NotFound,
            Self::Conflict | Self::HeldConversation { .. } => ErrorCode::Conflict,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<ExecError> for CommandError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Domain(d) => Self::Rule(d),
            ExecError::Conflict => Self::Conflict,
            ExecError::Log(l @ eventlog::LogError::Unavailable(_)) => {
                Self::Unavailable(l.to_string())
            }
            ExecError::Log(l) => Self::Internal(l.to_string()),
        }
    }
}

impl From<keys::KeyError> for CommandError {
    fn from(e: keys::KeyError) -> Self {
        match e {
            keys::KeyError::Destroyed(_) => Self::Erased,
            keys::KeyError::Unavailable(_) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Unavailable(detail) => ApiError::unavailable(detail),
            CommandError::Internal(detail) => ApiError::internal(detail),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        CommandError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_are_stable() {
        let unknown = CommandError::UnknownUser(UserId::parse("bob").expect("valid"));
        assert_eq!(unknown.code(), ErrorCode::NotFound);
        assert_eq!(ApiError::from(unknown).message, "User bob not found");
        let admin = ApiError::from(CommandError::AdminRequired);
        assert_eq!(
            (admin.code, admin.message.as_str()),
            (ErrorCode::Unauthorized, "Admin role required")
        );
        let down = ApiError::from(CommandError::Unavailable("nats".into()));
        assert_eq!(down.code, ErrorCode::Unavailable);
        assert!(!down.message.contains("nats"), "detail stays in the log");
        let bug = ApiError::from(CommandError::Internal("secret".into()));
        assert_eq!(
            (bug.code, bug.message.as_str()),
            (ErrorCode::Internal, "Internal error")
        );
    }
}
