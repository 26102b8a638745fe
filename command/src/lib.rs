//! The write side of a node, one folder per step of an event's way:
//!
//! - `edge/`: where client input arrives (Socket.IO in `socket`, REST writes in `rest`, the
//!   audit read in `audit`): parse into typed requests, call the service, answer in wire shapes.
//! - `service`: what a client may ask, shared by both edges; `domain/` decides (pure
//!   aggregates); `executor` persists (load → decide → append to the log).
//! - `push/`: the broadcaster following the log, catch-up, room names, and the mapping from a
//!   log event to its wire message.
//! - `live/`: presence and typing, which never enter the log.
//! - `node`: the state one node's edges and push path share; `drain`, `rate`, `metrics`.
//! - `retention`: the sweeper that expires messages past their conversation's retention.
//!
//! Must not contain SQL or read models (the read side is `projector` and `query`).

pub mod domain;
pub mod drain;
pub mod edge;
pub mod error;
pub mod executor;
pub mod live;
pub mod metrics;
pub mod node;
pub mod push;
pub mod rate;
pub mod retention;
pub mod service;

pub use executor::{ExecError, Executor, Outcome};
pub use service::Service;
