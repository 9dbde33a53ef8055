//! The support code every integration test shares, compiled once.

pub mod fake_discord;
pub mod harness;
pub mod lab;
pub mod onboarding;
pub mod scripted;
