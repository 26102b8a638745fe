//! The user aggregate: registration and profile. Decides `UserRegistered` / `UserUpdated`.
//! The profile arrives sealed (the service seals the trimmed text it passes) and is held
//! sealed: the state never holds a name in the clear, nor do its snapshots.

use super::{Decide, TextRule, check_text, cqrs_aggregate};
use events::{
    Millis, Profile, ProfileV2, UserEvent, UserLastSeenV1, UserReinstatedV1, UserSuspendedV1,
};
use serde::{Deserialize, Serialize};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_AVATAR_URL_CHARS: usize = 2048;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    registered: bool,
    profile: Option<Profile>,
    suspended: bool,
    last_seen_at: Option<Millis>,
    /// Set by `UserErased`, for good.
    erased: bool,
    /// The reason of the legal hold, while one applies.
    hold: Option<String>,
}

impl User {
    /// A registered, active user with this profile (as its `UserRegistered` event leaves it).
    pub fn registered(profile: Profile) -> Self {
        let mut user = Self::default();
        user.evolve(&UserEvent::Registered(profile));
        user
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Registered, not suspended, not erased: may connect and act.
    pub fn is_active(&self) -> bool {
        self.registered && !self.suspended && !self.erased
    }

    pub fn is_erased(&self) -> bool {
        self.erased
    }

    pub fn hold(&self) -> Option<&str> {
        self.hold.as_deref()
    }

    /// The profile as its last event left it (sealed, or in the clear from before sealing).
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Whether `name` and `avatar_url` (with `fingerprint`) are the profile held.
    fn has_profile(&self, name: &str, avatar_url: Option<&String>, fingerprint: &[u8; 32]) -> bool {
        match &self.profile {
            Some(Profile::Clear(p)) => p.name == name && p.avatar_url.as_ref() == avatar_url,
            Some(Profile::Sealed(p)) => &p.fingerprint == fingerprint,
            None => false,
        }
    }

    pub fn last_seen_at(&self) -> Option<Millis> {
        self.last_seen_at
    }
}

/// A rule of the user aggregate a command broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("User not found")]
    NotFound,
    /// An erased user's id is never registered, suspended or reinstated again.
    #[error("User is erased")]
    Erased,
    /// Nothing of a held user is destroyed.
    #[error("User is under legal hold: {0}")]
    Held(String),
    #[error(transparent)]
    Text(#[from] TextRule),
}

impl UserError {
    pub fn code(&self) -> api::ErrorCode {
        match self {
            Self::NotFound => api::ErrorCode::NotFound,
            Self::Erased | Self::Held(_) => api::ErrorCode::Conflict,
            Self::Text(_) => api::ErrorCode::InvalidInput,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per request, never stored
pub enum UserCommand {
    /// Register the user, or update the profile of a registered one. `name` and
    /// `avatar_url` are checked against the rules; `sealed` is what is stored (the same text,
    /// the name trimmed, sealed by the service with its keyed fingerprint).
    Upsert {
        name: String,
        avatar_url: Option<String>,
        sealed: ProfileV2,
    },
    Suspend {
        reason: Option<String>,
    },
    Reinstate,
    /// The user's last socket left a room or disconnected at `at`.
    RecordLastSeen {
        at: Millis,
    },
    /// Erase the user (contract 4.2). Erasing an erased user changes nothing; a held user is
    /// never erased.
    Erase {
        reason: Option<String>,
    },
    /// Place a legal hold; a second hold changes nothing. Admins only (the service checks).
    Hold {
        reason: String,
    },
    /// Release the legal hold; releasing an unheld user changes nothing.
    Release,
}

/// The rules a profile's text follows (the service checks them before it seals anything).
pub fn check_profile(name: &str, avatar_url: Option<&str>) -> Result<(), UserError> {
    check_text("name", name, MAX_NAME_CHARS)?;
    if let Some(url) = avatar_url {
        check_text("avatarUrl", url, MAX_AVATAR_URL_CHARS)?;
    }
    Ok(())
}

impl Decide for User {
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Upsert {
                name,
                avatar_url,
                sealed,
            } => {
                check_profile(name, avatar_url.as_deref())?;
                if self.erased {
                    return Err(UserError::Erased);
                }
                let profile = Profile::Sealed(sealed.clone());
                if !self.registered {
                    return Ok(vec![UserEvent::Registered(profile)]);
                }
                if self.has_profile(name.trim(), avatar_url.as_ref(), &sealed.fingerprint) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::Updated(profile)])
            }
            UserCommand::Suspend { reason } => {
                if !self.registered {
                    return Err(UserError::NotFound);
                }
                if self.erased {
                    return Err(UserError::Erased);
                }
                if let Some(r) = reason {
                    check_text("reason", r, 500)?;
                }
                if self.suspended {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::Suspended(UserSuspendedV1 {
                    reason: reason.clone(),
                })])
            }
            UserCommand::Reinstate => {
                if !self.registered {
                    return Err(UserError::NotFound);
                }
                if self.erased {
                    return Err(UserError::Erased);
                }
                if !self.suspended {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::Reinstated(UserReinstatedV1 {})])
            }
            UserCommand::Erase { reason } => {
                if !self.registered {
                    return Err(UserError::NotFound);
                }
                if let Some(r) = reason {
                    check_text("reason", r, 500)?;
                }
                if self.erased {
                    return Ok(vec![]);
                }
                if let Some(hold) = &self.hold {
                    return Err(UserError::Held(hold.clone()));
                }
                Ok(vec![UserEvent::Erased(events::UserErasedV1 {
                    reason: reason.clone(),
                })])
            }
            UserCommand::Hold { reason } => {
                if !self.registered {
                    return Err(UserError::NotFound);
                }
                check_text("reason", reason, 500)?;
                if self.hold.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::Held(events::HoldPlacedV1 {
                    reason: reason.trim().to_owned(),
                })])
            }
            UserCommand::Release => {
                if !self.registered {
                    return Err(UserError::NotFound);
                }
                if self.hold.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::Released(events::HoldReleasedV1 {})])
            }
            UserCommand::RecordLastSeen { at } => {
                if !self.registered || self.erased || self.last_seen_at.is_some_and(|l| l >= *at) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::LastSeen(UserLastSeenV1 {
                    last_seen_at: *at,
                })])
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match &self.profile {
            Some(Profile::Clear(p)) => p.name.len() + p.avatar_url.as_deref().map_or(0, str::len),
            Some(p @ Profile::Sealed(_)) => p
                .sealed()
                .iter()
                .map(|s| s.ciphertext.len() + s.user.as_str().len() + 48)
                .sum(),
            None => 0,
        }
    }

    fn evolve(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Registered(p) => {
                self.registered = true;
                self.profile = Some(p.clone());
            }
            UserEvent::Updated(p) => self.profile = Some(p.clone()),
            UserEvent::Suspended(_) => self.suspended = true,
            UserEvent::Reinstated(_) => self.suspended = false,
            UserEvent::LastSeen(e) => self.last_seen_at = Some(e.last_seen_at),
            UserEvent::Erased(_) => self.erased = true,
            UserEvent::Held(e) => self.hold = Some(e.reason.clone()),
            UserEvent::Released(_) => self.hold = None,
        }
    }
}

cqrs_aggregate!(User, "user");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Ev;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<User>;

    /// What the service seals: the trimmed name, and a fingerprint standing for the text.
    fn profile(name: &str, avatar: Option<&str>) -> ProfileV2 {
        let mut fingerprint = [0; 32];
        for (i, b) in name
            .trim()
            .bytes()
            .chain(avatar.unwrap_or("").bytes())
            .enumerate()
        {
            fingerprint[i % 32] ^= b;
        }
        ProfileV2 {
            name: crate::domain::sealed(name.trim()),
            avatar_url: avatar.map(crate::domain::sealed),
            fingerprint,
        }
    }

    fn upsert(name: &str, avatar: Option<&str>) -> UserCommand {
        UserCommand::Upsert {
            name: name.into(),
            avatar_url: avatar.map(Into::into),
            sealed: profile(name, avatar),
        }
    }

    fn registered(name: &str) -> Ev<UserEvent> {
        Ev(UserEvent::Registered(Profile::Sealed(profile(name, None))))
    }

    #[test]
    fn a_new_user_is_registered() {
        Given::with(())
            .given_no_previous_events()
            .when(upsert(" Ann ", None))
            .then_expect_events(vec![registered("Ann")]);
    }

    #[test]
    fn a_registered_user_is_updated() {
        Given::with(())
            .given(vec![registered("Ann")])
            .when(upsert("Ann B", Some("https://x/a.png")))
            .then_expect_events(vec![Ev(UserEvent::Updated(Profile::Sealed(profile(
                "Ann B",
                Some("https://x/a.png"),
            ))))]);
    }

    #[test]
    fn the_same_profile_twice_changes_nothing() {
        Given::with(())
            .given(vec![registered("Ann")])
            .when(upsert(" Ann", None))
            .then_expect_events(vec![]);
        let clear = Profile::Clear(events::UserRegisteredV1 {
            name: "Ann".into(),
            avatar_url: None,
        });
        Given::with(())
            .given(vec![Ev(UserEvent::Registered(clear))])
            .when(upsert("Ann", None))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![registered("Ann")])
            .when(upsert("Ann", Some("https://x/a.png")))
            .then_expect_events(vec![Ev(UserEvent::Updated(Profile::Sealed(profile(
                "Ann",
                Some("https://x/a.png"),
            ))))]);
    }

    #[test]
    fn suspension_and_reinstatement_are_idempotent() {
        Given::with(())
            .given(vec![registered("Ann")])
            .when(UserCommand::Suspend { reason: None })
            .then_expect_events(vec![Ev(UserEvent::Suspended(UserSuspendedV1 {
                reason: None,
            }))]);
        Given::with(())
            .given(vec![
                registered("Ann"),
                Ev(UserEvent::Suspended(UserSuspendedV1 { reason: None })),
            ])
            .when(UserCommand::Suspend { reason: None })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![
                registered("Ann"),
                Ev(UserEvent::Suspended(UserSuspendedV1 { reason: None })),
            ])
            .when(UserCommand::Reinstate)
            .then_expect_events(vec![Ev(UserEvent::Reinstated(UserReinstatedV1 {}))]);
        Given::with(())
            .given(vec![registered("Ann")])
            .when(UserCommand::Reinstate)
            .then_expect_events(vec![]);
        Given::with(())
            .given_no_previous_events()
            .when(UserCommand::Suspend { reason: None })
            .then_expect_error(UserError::NotFound);
    }

    #[test]
    fn erasure_is_for_good_and_idempotent() {
        let erased = || Ev(UserEvent::Erased(events::UserErasedV1 { reason: None }));
        let erase = || UserCommand::Erase { reason: None };
        Given::with(())
            .given(vec![registered("Ann")])
            .when(erase())
            .then_expect_events(vec![erased()]);
        Given::with(())
            .given(vec![registered("Ann"), erased()])
            .when(erase())
            .then_expect_events(vec![]);
        Given::with(())
            .given_no_previous_events()
            .when(erase())
            .then_expect_error(UserError::NotFound);
        for command in [
            upsert("Ann", None),
            UserCommand::Suspend { reason: None },
            UserCommand::Reinstate,
        ] {
            Given::with(())
                .given(vec![registered("Ann"), erased()])
                .when(command)
                .then_expect_error(UserError::Erased);
        }
        Given::with(())
            .given(vec![registered("Ann"), erased()])
            .when(UserCommand::RecordLastSeen { at: 9 })
            .then_expect_events(vec![]);
        assert_eq!(UserError::Erased.code(), api::ErrorCode::Conflict);
    }

    #[test]
    fn a_held_user_is_not_erased_until_released() {
        let held = || {
            Ev(UserEvent::Held(events::HoldPlacedV1 {
                reason: "case 7".into(),
            }))
        };
        let released = || Ev(UserEvent::Released(events::HoldReleasedV1 {}));
        Given::with(())
            .given(vec![registered("Ann")])
            .when(UserCommand::Hold {
                reason: " case 7 ".into(),
            })
            .then_expect_events(vec![held()]);
        Given::with(())
            .given(vec![registered("Ann"), held()])
            .when(UserCommand::Erase { reason: None })
            .then_expect_error(UserError::Held("case 7".into()));
        Given::with(())
            .given(vec![registered("Ann"), held()])
            .when(UserCommand::Hold {
                reason: "again".into(),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![registered("Ann"), held()])
            .when(UserCommand::Release)
            .then_expect_events(vec![released()]);
        Given::with(())
            .given(vec![registered("Ann"), held(), released()])
            .when(UserCommand::Erase { reason: None })
            .then_expect_events(vec![Ev(UserEvent::Erased(events::UserErasedV1 {
                reason: None,
            }))]);
        Given::with(())
            .given(vec![registered("Ann")])
            .when(UserCommand::Hold { reason: " ".into() })
            .then_expect_error(UserError::Text(TextRule::Empty { field: "reason" }));
        Given::with(())
            .given_no_previous_events()
            .when(UserCommand::Hold { reason: "x".into() })
            .then_expect_error(UserError::NotFound);
        assert_eq!(
            UserError::Held("case 7".into()).to_string(),
            "User is under legal hold: case 7"
        );
    }

    #[test]
    fn last_seen_only_moves_forward() {
        let seen = |at| Ev(UserEvent::LastSeen(UserLastSeenV1 { last_seen_at: at }));
        Given::with(())
            .given(vec![registered("Ann")])
            .when(UserCommand::RecordLastSeen { at: 5 })
            .then_expect_events(vec![seen(5)]);
        Given::with(())
            .given(vec![registered("Ann"), seen(5)])
            .when(UserCommand::RecordLastSeen { at: 4 })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_blank_or_long_name_is_invalid() {
        Given::with(())
            .given_no_previous_events()
            .when(upsert("  ", None))
            .then_expect_error(UserError::Text(TextRule::Empty { field: "name" }));
        Given::with(())
            .given_no_previous_events()
            .when(upsert(&"n".repeat(101), None))
            .then_expect_error(UserError::Text(TextRule::TooLong {
                field: "name",
                max: 100,
            }));
        let empty = UserError::Text(TextRule::Empty { field: "name" });
        assert_eq!(empty.to_string(), "name must not be empty");
        assert_eq!(empty.code(), api::ErrorCode::InvalidInput);
        let long = UserError::Text(TextRule::TooLong {
            field: "name",
            max: 100,
        });
        assert_eq!(long.to_string(), "name must be at most 100 characters");
    }
}
