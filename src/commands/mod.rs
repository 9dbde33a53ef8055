//! One file per slash command / CLI subcommand: chat or terminal input in, a validated
//! request out. Nothing here touches an external system.

pub mod cert;
pub mod dns_check;
pub mod onboard;
