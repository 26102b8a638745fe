//! The vocabulary of the chat log: typed ids, domain events, the commit envelope that carries
//! them in the stream, the postcard codec (with upcasting by type and schema version) and the
//! subject layout.
//!
//! This crate is pure: it must not depend on tokio, NATS, sqlx or socketioxide, so that every
//! other crate (and any future reader of the log) can decode events without the runtime.

pub mod audit;
pub mod codec;
pub mod envelope;
pub mod event;
pub mod ids;
pub mod sealed;
pub mod subject;
pub mod text;

pub use codec::{CodecError, decode_commit, encode_commit};
pub use envelope::{Commit, CommitHash, Metadata, Recorded, StoredEventV1};
pub use event::*;
pub use ids::{ConversationId, IdError, MessageId, ReactionId, UserId};
pub use sealed::{Open, Opened, Place, SealedV1, Text};
pub use subject::Subjects;
pub use text::{Content, Emoji, TempId, TextError};

/// Milliseconds since the Unix epoch, UTC. Domain code receives clock values; it never reads
/// the clock itself.
pub type Millis = i64;

/// Formats milliseconds since the epoch as ISO 8601 with millisecond precision
/// (`2025-11-09T10:30:00.000Z`), the form every payload of the contract uses.
pub fn iso8601(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
            format!(
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        }
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// The current wall clock in milliseconds. Only the edges (handlers, the executor) call this.
pub fn now_millis() -> Millis {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_has_millisecond_precision_and_z() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::iso8601(1_762_684_200_123),
            "2025-11-09T10:30:00.123Z"
        );
    }
}
