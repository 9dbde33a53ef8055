//! onboard-bot: runs the platform's "Onboarding a new Provider" runbook from chat.
//!
//! The library builds everything from a [`config::Config`]; `src/main.rs` only parses the
//! command line. See `docs/architecture.md` for the shape.

pub mod adapters;
pub mod chat;
pub mod cli;
pub mod cli_docs;
pub mod commands;
pub mod config;
pub mod dnscheck;
pub mod domain;
pub mod engine;
pub mod frontend;
pub mod messages;
pub mod ops;
pub mod redact;
pub mod report;
pub mod request;
pub mod state;
pub mod steps;
pub mod telemetry;
pub mod templating;
