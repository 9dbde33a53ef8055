//! One file per slash command / CLI subcommand: chat or terminal input in, a validated
//! request out. Nothing here touches an external system.

pub mod cert;
pub mod dns_check;
pub mod onboard;

/// Approval options for runs started from the console.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleRunArgs {
    /// Plan every step and show the plans; ask nothing and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Approve every plan without asking (recorded in the audit trail as `console --yes`).
    #[arg(long)]
    pub yes: bool,
    /// Required against a config marked production: why the console is used instead of Discord.
    #[arg(long, value_name = "REASON")]
    pub break_glass: Option<String>,
}
