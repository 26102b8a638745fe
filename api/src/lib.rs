//! What the command edge (Socket.IO, REST writes) and the query edge (REST reads) share:
//! the contract's error codes and error shape, JSON body extraction that answers
//! `INVALID_INPUT`, and JWT authentication.
//!
//! Must not hold domain rules, SQL or NATS.

pub mod auth;
pub mod error;

pub use auth::{AuthError, Identity, JwtKeys};
pub use error::{ApiError, ApiJson, ErrorCode};
