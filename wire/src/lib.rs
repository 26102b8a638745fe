//! Every JSON shape a client receives, as `#[derive(Serialize)]` types: the server→client
//! Socket.IO events (`socket`), the acks (`ack`), and the REST bodies (`rest`), with the
//! objects they share (`UserRef`, `Timestamp`). The command edge, the push path and the query
//! edge build these types and nothing else; field names are the contract's.
//!
//! The golden tests at the end of each module pin each shape byte for byte. Changing one is a
//! change of the client contract: a renamed or dropped field breaks clients (contract: "extra
//! payload fields are allowed; renaming or dropping a specified field is not"). Add a field as
//! optional, and update the golden string in the same commit, with the contract.
//!
//! Must not hold rules, I/O or anything a client does not see.

pub mod ack;
pub mod rest;
pub mod socket;
pub mod webhook;

use events::{Millis, UserId};
use serde::{Deserialize, Serialize, Serializer};

/// A time as every payload of the contract writes it: ISO 8601, milliseconds, `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub Millis);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&events::iso8601(self.0))
    }
}

/// Message content as a client sees it: the text, or `null` with `erased` (its author was
/// erased) or `expired` (retention), each written only when true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Body {
    pub content: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

impl From<events::Opened> for Body {
    fn from(o: events::Opened) -> Self {
        Self {
            erased: o.is_erased(),
            expired: o.is_expired(),
            content: o.into_text(),
        }
    }
}

impl Body {
    pub fn text(text: &str) -> Self {
        events::Opened::Text(text.to_owned()).into()
    }
}

/// `sender` / `user` objects: `{id, name, avatarUrl?}` (the name falls back to the id for a
/// user the node does not know). Also carried between nodes by presence, hence `Deserialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    pub id: UserId,
    /// `null` once the user is erased.
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub avatar_url: Option<String>,
}

impl UserRef {
    /// The profile of `id`, or the id alone when its name is not known.
    pub fn new(id: &UserId, name: Option<&str>, avatar_url: Option<&str>) -> Self {
        Self {
            id: id.clone(),
            name: Some(name.unwrap_or(id.as_str()).to_owned()),
            avatar_url: avatar_url.map(str::to_owned),
        }
    }

    /// An erased user: no name, no avatar.
    pub fn erased(id: &UserId) -> Self {
        Self {
            id: id.clone(),
            name: None,
            avatar_url: None,
        }
    }
}

/// The error object of a failed ack and of a REST error body: `{message, code}`.
pub type ErrorBody = api::ApiError;

#[cfg(test)]
pub(crate) fn golden<T: Serialize>(value: &T, expected: &str) {
    let got = serde_json::to_string(value).expect("serialises");
    assert_eq!(got, expected);
}

/// [`golden`], and the same JSON kept as `client/wire/<name>.json`, the sample that the
/// TypeScript client's types are checked against (`npm run check` in `client/`). A sample
/// that differs from the golden string fails here; `CHAT_WIRE_SAMPLES=write cargo test -p
/// wire` rewrites them, and the client's check then says which type must follow.
#[cfg(test)]
pub(crate) fn sample<T: Serialize>(name: &str, value: &T, expected: &str) {
    golden(value, expected);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../client/wire")
        .join(format!("{name}.json"));
    let pretty: serde_json::Value = serde_json::from_str(expected).expect("golden is JSON");
    let want = serde_json::to_string_pretty(&pretty).expect("serialises") + "\n";
    if std::env::var("CHAT_WIRE_SAMPLES").as_deref() == Ok("write") {
        std::fs::write(&path, &want).expect("writes the sample");
        return;
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "{} is not the golden JSON: run `CHAT_WIRE_SAMPLES=write cargo test -p wire`, then \
         `npm run check` in client/",
        path.display()
    );
}

#[cfg(test)]
pub(crate) mod fixtures {
    use events::{ConversationId, MessageId, UserId};

    pub fn user() -> UserId {
        UserId::parse("u1").expect("valid")
    }
    pub fn conv() -> ConversationId {
        ConversationId::parse("conv_1").expect("valid")
    }
    pub fn msg() -> MessageId {
        MessageId::parse("msg_1").expect("valid")
    }
    /// 2025-11-09T10:30:00.000Z
    pub const AT: events::Millis = 1_762_684_200_000;
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn timestamps_and_user_refs() {
        golden(&Timestamp(AT), r#""2025-11-09T10:30:00.000Z""#);
        golden(
            &UserRef::new(&user(), Some("Ann"), Some("https://a/b.png")),
            r#"{"id":"u1","name":"Ann","avatarUrl":"https://a/b.png"}"#,
        );
        golden(
            &UserRef::new(&user(), None, None),
            r#"{"id":"u1","name":"u1"}"#,
        );
    }
}
