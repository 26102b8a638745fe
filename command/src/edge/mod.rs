//! The edges: where client input arrives and answers leave. Each parses what it receives into
//! typed requests, calls one service method, and turns the typed result or error into its
//! transport's shape (a socket ack or event, an HTTP status and body). Nothing else: rules
//! live in `domain`, persistence in `executor`, pushing in `push`.

pub mod audit;
pub mod rest;
pub mod socket;
