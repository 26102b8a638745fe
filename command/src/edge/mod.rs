//! The edges: where client input arrives and answers leave. Each parses what it receives into
//! typed requests, calls one service method, and turns the typed result or error into its
//! transport's shape (a socket ack or event, an HTTP status and body). Nothing else: rules
//! live in `domain`, persistence in `executor`, pushing in `push`.

pub mod audit;
pub mod rest;
pub mod socket;

use api::ApiError;

/// An id received from a client, or `INVALID_INPUT`.
pub(crate) fn id<T: std::str::FromStr<Err = events::IdError>>(s: &str) -> Result<T, ApiError> {
    s.parse()
        .map_err(|e: events::IdError| ApiError::invalid_input(e.to_string()))
}

/// A checked text value (`Content`, `Emoji`, `TempId`), or `INVALID_INPUT`.
pub(crate) fn text<T>(parsed: Result<T, events::TextError>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::invalid_input(e.to_string()))
}

/// The users a send mentions: well-formed ids, at most `MAX_MENTIONS` of them.
pub(crate) fn mentions(given: Option<&[String]>) -> Result<Vec<events::UserId>, ApiError> {
    let given = given.unwrap_or_default();
    if given.len() > crate::domain::MAX_MENTIONS {
        return Err(ApiError::invalid_input(format!(
            "mentions must list at most {} users",
            crate::domain::MAX_MENTIONS
        )));
    }
    given.iter().map(|u| id(u)).collect()
}
