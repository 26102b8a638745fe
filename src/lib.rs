//! The `chat` package as a library: the configuration (`config`), the wiring of the roles
//! into one server (`app`, whose [`app::start`] runs a whole node in-process, on port 0 in
//! tests), operator endpoints (`ops`), the embedded web app (`web`) and the operator CLI
//! (`cli`). The binary (`main.rs`) only parses arguments, sets up telemetry and calls these.
//! No domain logic lives here.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod ops;
pub mod web;
