//! The chat front-ends, each implementing [`crate::frontend::ChatFrontend`]: the console
//! (`console.rs`) and Discord (`discord/`).

pub mod console;
pub mod discord;
