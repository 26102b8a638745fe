//! The aggregates: pure decisions (state + command → events) and pure evolution
//! (state + event → state). No I/O, no clock, no randomness: ids and times arrive in the
//! command. Each aggregate also implements cqrs-es's `Aggregate`, so its rules are tested with
//! cqrs-es's given/when/then `TestFramework`.

pub mod conversation;
pub mod user;

pub use conversation::{Conversation, ConversationCommand, ConversationError, MAX_MENTIONS};
pub use user::{User, UserCommand, UserError};

use serde::{Deserialize, Serialize};

/// A rule a command broke, by aggregate. Each maps to one stable contract code (`code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    User(#[from] UserError),
}

impl DomainError {
    /// The contract's code for this refusal.
    pub fn code(&self) -> api::ErrorCode {
        match self {
            Self::Conversation(e) => e.code(),
            Self::User(e) => e.code(),
        }
    }
}

/// A display name, title or reason that is blank or too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextRule {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
}

/// The cqrs-es event type of an aggregate: the event enum of the `events` crate, wrapped so
/// that cqrs-es's `DomainEvent` can be implemented here (the `events` crate stays free of
/// cqrs-es and its tokio dependency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ev<E>(pub E);

impl<E> cqrs_es::DomainEvent for Ev<E>
where
    E: events::EventKind
        + Serialize
        + serde::de::DeserializeOwned
        + Clone
        + PartialEq
        + std::fmt::Debug
        + Send
        + Sync,
{
    fn event_type(&self) -> String {
        self.0.event_type().to_owned()
    }
    fn event_version(&self) -> String {
        self.0.schema_version().to_string()
    }
}

/// The pure core of an aggregate, used by the executor directly (decide without mutating, so a
/// conflict costs no clone) and by the cqrs-es `Aggregate` impl.
pub trait Decide: Default + Clone + Send + Sync + 'static {
    type Command: Send + Sync;
    type Event: events::EventKind + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static;
    /// The aggregate's own refusals.
    type Error: std::error::Error + Into<DomainError> + Clone + PartialEq + Send + Sync + 'static;

    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    fn evolve(&mut self, event: &Self::Event);
    /// An estimate of the heap memory the state holds, in bytes.
    fn heap_bytes(&self) -> usize;
}

/// Implements cqrs-es's `Aggregate` for a [`Decide`] type.
macro_rules! cqrs_aggregate {
    ($ty:ty, $name:literal) => {
        impl cqrs_es::Aggregate for $ty {
            const TYPE: &'static str = $name;
            type Command = <$ty as $crate::domain::Decide>::Command;
            type Event = $crate::domain::Ev<<$ty as $crate::domain::Decide>::Event>;
            type Error = <$ty as $crate::domain::Decide>::Error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _: &(),
                sink: &cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for e in $crate::domain::Decide::decide(self, &command)? {
                    sink.write($crate::domain::Ev(e), self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                $crate::domain::Decide::evolve(self, &event.0);
            }
        }
    };
}
pub(crate) use cqrs_aggregate;

/// Checks a display name or title: trimmed length 1..=max characters.
pub(crate) fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), TextRule> {
    if s.trim().is_empty() {
        return Err(TextRule::Empty { field });
    }
    if s.chars().count() > max {
        return Err(TextRule::TooLong { field, max });
    }
    Ok(())
}

/// A stand-in for a field the service sealed, in the rules' tests (the rules never open it).
#[cfg(test)]
pub(crate) fn sealed(text: &str) -> events::SealedV1 {
    events::SealedV1 {
        user: events::UserId::parse("sealer").expect("valid"),
        period: Some(0),
        nonce: [0; 24],
        ciphertext: text.as_bytes().to_vec(),
    }
}
