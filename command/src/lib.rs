//! The write side: aggregates (`domain`), the event log (`store`), the command executor, and
//! the edges that turn client input into commands (Socket.IO in `socket`, REST in `rest`),
//! plus the broadcaster that follows the log and pushes room events to local sockets.
//!
//! Must not contain SQL or read models.

pub mod domain;
pub mod executor;
pub mod live;
pub mod metrics;
pub mod rate;

pub use executor::{ExecError, Executor, Outcome};
pub mod payload;
pub mod service;

pub use service::Service;
pub mod audit;
pub mod broadcaster;
pub mod rest;
pub mod socket;
