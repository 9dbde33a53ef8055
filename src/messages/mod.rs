//! Every text a person reads, built by pure functions so it can be snapshot-tested and edited
//! in one place, by what they are about:
//!
//! - `run.rs`: a run's progress, the same in the console and in chat;
//! - `console.rs`: the console's listings;
//! - `chat.rs`: a run's Discord thread (the progress card, logs);
//! - `dns.rs`: `/dns-check`'s embed (the console's table is `dnscheck::table`, from the same view);
//! - `approval.rs`: the approval card and the outcomes of its buttons;
//! - `replies.rs`: the answers to slash commands;
//! - `sites.rs`: site ownership;
//! - `templates.rs`: what the deploy-config plan says about the template;
//! - `text.rs`: making any text safe to post (truncate, fence, defuse, mentions).

mod approval;
mod chat;
mod console;
mod dns;
mod replies;
mod run;
mod sites;
mod templates;
mod text;

pub use approval::*;
pub use chat::*;
pub use console::*;
pub use dns::*;
pub use replies::*;
pub use run::*;
pub use sites::*;
pub use templates::*;
pub use text::*;

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod chat_tests;
