//! Sealed personal data (contract 4.2): the stored form of a message's content and a user's
//! profile fields, and where each sealed field belongs: the keys it is sealed under and the
//! associated data that binds it to its aggregate, event and field (a ciphertext moved to
//! another message, event or field does not open). Pure: sealing, opening and the keys
//! themselves belong to the `keys` crate; this module only names them.

use crate::Millis;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// A sealed field as stored. Never change this struct: add a `SealedV2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedV1 {
    /// Whose data key it is sealed under.
    pub user: UserId,
    /// The start (ms since the epoch) of the conversation key period it is also sealed under;
    /// none for a profile field, sealed under the user's key alone.
    pub period: Option<Millis>,
    /// XChaCha20-Poly1305 nonce.
    pub nonce: [u8; 24],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Personal text as an event holds it: in the clear in events written before sealing
/// (schema version 1, which cannot be shredded), sealed in every event written since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    Clear(String),
    Sealed(SealedV1),
}

/// What opening a [`Text`] gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Text(String),
    /// The user's data key was destroyed (`UserErased`).
    Erased,
    /// The conversation key of its period was destroyed (retention).
    Expired,
}

impl Opened {
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn into_text(self) -> Option<String> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Self::Erased)
    }

    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
    }
}

/// Where a sealed field belongs: its associated data (the bytes sealing binds the field to),
/// and for message content the message's time (its id's), which retention expires by.
/// Sealing and opening build it from the same constructor, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    ad: String,
    sent_at: Option<Millis>,
}

impl Place {
    /// The content of a message, sent (`MessageSent`) or edited (`MessageEdited`).
    pub fn message_content(conversation: &str, event_type: &str, message: &str) -> Self {
        Self {
            ad: format!("chat/conversation/{conversation}/{event_type}/{message}/content"),
            sent_at: crate::ids::message_time(message),
        }
    }

    /// A profile field (`name`, `avatarUrl`) of a user's `UserRegistered` or `UserUpdated`
    /// (one place for both: the service seals before the aggregate decides which it is).
    pub fn profile(user: &str, field: &str) -> Self {
        Self {
            ad: format!("chat/user/{user}/profile/{field}"),
            sent_at: None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.ad.as_bytes()
    }

    /// The time of the message whose content this is (`None` for a profile field, or a
    /// message id that carries no time).
    pub fn sent_at(&self) -> Option<Millis> {
        self.sent_at
    }
}

/// Opens sealed fields. Implemented by the `keys` crate over the keys a reader prepared.
pub trait Open {
    fn open(&self, place: &Place, sealed: &SealedV1) -> Opened;

    /// What a field at `place` reads whatever it holds, sealed or in the clear: `Expired`
    /// once retention expired its message.
    fn withheld(&self, _place: &Place) -> Option<Opened> {
        None
    }
}

impl Text {
    /// The text, opened with `keys` when it is sealed.
    pub fn open(&self, keys: &dyn Open, place: &Place) -> Opened {
        match self {
            Self::Clear(t) => keys
                .withheld(place)
                .unwrap_or_else(|| Opened::Text(t.clone())),
            Self::Sealed(s) => keys.open(place, s),
        }
    }

    pub fn sealed(&self) -> Option<&SealedV1> {
        match self {
            Self::Sealed(s) => Some(s),
            Self::Clear(_) => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stand-in for the `keys` crate in this crate's tests: a "ciphertext" is its plaintext,
    /// and a field of user `gone` reads as erased.
    pub(crate) struct Unsealed;

    impl Open for Unsealed {
        fn open(&self, _: &Place, sealed: &SealedV1) -> Opened {
            if sealed.user.as_str() == "gone" {
                return Opened::Erased;
            }
            match String::from_utf8(sealed.ciphertext.clone()) {
                Ok(t) => Opened::Text(t),
                Err(_) => Opened::Expired,
            }
        }
    }

    #[test]
    fn places_name_aggregate_event_and_field() {
        assert_eq!(
            Place::message_content("conv_1", "MessageSent", "msg_1").as_bytes(),
            b"chat/conversation/conv_1/MessageSent/msg_1/content"
        );
        assert_eq!(
            Place::profile("ann", "avatarUrl").as_bytes(),
            b"chat/user/ann/profile/avatarUrl"
        );
    }
}
