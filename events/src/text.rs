//! Constrained text: message content and client temp ids, each with a parsing constructor
//! that applies the contract's limits.

use serde::{Deserialize, Serialize};

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// Longest `tempId`, in characters.
pub const MAX_TEMP_ID_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("content must not be empty or only white space")]
    BlankContent,
    #[error("content must be at most 10000 characters")]
    ContentTooLong,
    #[error("tempId must be at most 128 characters")]
    TempIdTooLong,
    #[error("emoji must be a single emoji")]
    NotAnEmoji,
}

/// Longest emoji, in bytes (a family or flag sequence fits).
pub const MAX_EMOJI_BYTES: usize = 32;

/// One emoji grapheme cluster, at most 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(s: &str) -> Result<Self, TextError> {
        use unicode_segmentation::UnicodeSegmentation;
        if s.is_empty() || s.len() > MAX_EMOJI_BYTES || s.graphemes(true).count() != 1 {
            return Err(TextError::NotAnEmoji);
        }
        // The Unicode emoji list (with skin tones and the forms without U+FE0F).
        let bare = s.trim_end_matches('\u{fe0f}');
        if emojis::get(s).is_none() && emojis::get(bare).is_none() {
            return Err(TextError::NotAnEmoji);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Message content: 1–10,000 characters, not only white space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Content(String);

impl Content {
    pub fn parse(s: &str) -> Result<Self, TextError> {
        if s.trim().is_empty() {
            return Err(TextError::BlankContent);
        }
        if s.chars().count() > MAX_CONTENT_CHARS {
            return Err(TextError::ContentTooLong);
        }
        Ok(Self(s.to_owned()))
    }

    /// Content read back from the log, where it was checked when it was written.
    pub(crate) fn stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A client-chosen id for optimistic updates and idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TempId(String);

impl TempId {
    pub fn parse(s: &str) -> Result<Self, TextError> {
        if s.chars().count() > MAX_TEMP_ID_CHARS {
            return Err(TextError::TempIdTooLong);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_limits() {
        assert_eq!(Content::parse(""), Err(TextError::BlankContent));
        assert_eq!(Content::parse(" \n\t"), Err(TextError::BlankContent));
        assert!(Content::parse(&"é".repeat(10_000)).is_ok());
        assert_eq!(
            Content::parse(&"x".repeat(10_001)),
            Err(TextError::ContentTooLong)
        );
    }

    #[test]
    fn emoji_is_one_emoji_grapheme() {
        for ok in ["👍", "👍🏽", "❤️", "❤", "🇫🇷", "👨‍👩‍👧‍👦", "1️⃣"]
        {
            assert!(Emoji::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "👍👍", ":)", "ab", " ", "👍 "] {
            assert_eq!(Emoji::parse(bad), Err(TextError::NotAnEmoji), "{bad}");
        }
    }

    #[test]
    fn temp_id_limits() {
        assert!(TempId::parse(&"t".repeat(128)).is_ok());
        assert_eq!(
            TempId::parse(&"t".repeat(129)),
            Err(TextError::TempIdTooLong)
        );
    }
}
