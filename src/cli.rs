//! The command line: the same commands as in Discord, from a terminal. The clap definition
//! (each command's input is its `src/commands/<name>.rs` struct, flattened), the dispatch, and
//! how the console renders a command's [`Reply`] or [`CommandError`]: exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use crate::chat::console::Console;
use crate::commands::abandon::AbandonArgs;
use crate::commands::audit::AuditArgs;
use crate::commands::cancel::CancelArgs;
use crate::commands::cert::{CertIssueArgs, CertStatusArgs};
use crate::commands::dns_check::DnsCheckArgs;
use crate::commands::locks::TakeOverArgs;
use crate::commands::onboard::OnboardArgs;
use crate::commands::resume::ResumeArgs;
use crate::commands::runs::{RunsListArgs, RunsShowArgs};
use crate::commands::verify::VerifyArgs;
use crate::commands::{self, Answers, Caller, CommandError, ConsoleRunArgs, Reply, RunToExecute};
use crate::config::Config;
use crate::engine::{Engine, LeaseLost};
use crate::state;
use crate::state::runs::RunStatus;
use crate::telemetry::LogFormat;

/// Runs the platform's "Onboarding a new Provider" runbook, from Discord or a terminal.
#[derive(Debug, Parser)]
#[command(name = "onboard-bot", version, about, long_about = None)]
pub struct Cli {
    /// The YAML config file (see config/bot.example.yaml).
    #[arg(
        long,
        env = "ONBOARD_BOT_CONFIG",
        global = true,
        default_value = "config/lab.yaml"
    )]
    pub config: PathBuf,
    /// Log line format on stderr.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        global = true,
        env = "ONBOARD_BOT_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the onboard variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Discord bot (slash commands, approvals, progress threads).
    Serve,
    /// Onboard a new Provider: the whole runbook, in order.
    Onboard {
        #[command(flatten)]
        args: OnboardArgs,
        #[command(flatten)]
        run: ConsoleRunArgs,
    },
    /// Check a Provider's DNS records against authoritative and recursive servers.
    DnsCheck {
        #[command(flatten)]
        args: DnsCheckArgs,
    },
    /// Issue, re-issue or inspect a Provider domain's certificate.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Run the runbook's success check for an onboarded Provider.
    Verify {
        #[command(flatten)]
        args: VerifyArgs,
        #[command(flatten)]
        run: ConsoleRunArgs,
    },
    /// List, show, resume or cancel runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// List locks or take one over.
    Locks {
        #[command(subcommand)]
        command: LocksCommand,
    },
    /// Show the audit trail of a slug or domain.
    Audit {
        #[command(flatten)]
        args: AuditArgs,
    },
    /// Validate the config and try each connection (bot DB, tenant DB, SSH, DNS).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Apply the bot's database migrations (they also run at start-up).
    Migrate,
    /// Print the shell completion script for SHELL (needs no config).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page in roff (needs no config); `man runs resume` prints that page.
    #[command(hide = true)]
    Man { subcommand: Vec<String> },
}

/// What to do with a certificate.
#[derive(Debug, Clone, Subcommand)]
pub enum CertCommand {
    /// Run certbot for DOMAIN and www (over SSH), sync the conf back, release the site.
    Issue {
        #[command(flatten)]
        args: CertIssueArgs,
        #[command(flatten)]
        run: ConsoleRunArgs,
    },
    /// TLS handshake with DOMAIN on the VPS: issuer, names, expiry, chain validity.
    Status {
        #[command(flatten)]
        args: CertStatusArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        #[command(flatten)]
        args: RunsListArgs,
    },
    /// One run: its steps, statuses and plans.
    Show {
        #[command(flatten)]
        args: RunsShowArgs,
    },
    /// Continue an unfinished or failed run from its recorded state.
    Resume {
        #[command(flatten)]
        args: ResumeArgs,
        /// Approve every plan without asking.
        #[arg(long, conflicts_with = "reject_reason")]
        yes: bool,
        /// Reject the first plan asked for, with this reason, without asking.
        #[arg(long, value_name = "REASON")]
        reject_reason: Option<String>,
        /// Required against a config marked production: why the console resumes the run.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// Cancel a run: stop its step, record it, release its locks.
    Cancel {
        #[command(flatten)]
        args: CancelArgs,
    },
    /// Undo an onboarding: its applied steps compensated in reverse order, each planned,
    /// approved, applied and checked (a run still going is cancelled first).
    Abandon {
        #[command(flatten)]
        args: AbandonArgs,
        #[command(flatten)]
        run: ConsoleRunArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// Every held lock and the run holding it.
    List,
    /// Cancel the run holding a lock and release it (audited).
    TakeOver {
        #[command(flatten)]
        args: TakeOverArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the file and try each connection: one line per check, OK or FAIL.
    Check,
}

/// Exit codes: 0 success, 1 the run did not finish (failed, rejected, cancelled), 2 bad input
/// or configuration, 3 internal error.
pub async fn run(cli: Cli) -> ExitCode {
    match load_config(&cli) {
        Ok(config) => run_with(cli, config).await,
        Err(code) => code,
    }
}

/// The config the subcommand needs (`None` for those that need none); a config that does not
/// load is reported on stderr and becomes exit code 2.
pub fn load_config(cli: &Cli) -> Result<Option<Arc<Config>>, ExitCode> {
    // Generated from the CLI definition alone: no config needed.
    if matches!(
        cli.command,
        Command::Completions { .. } | Command::Man { .. }
    ) {
        return Ok(None);
    }
    match Config::load(&cli.config) {
        Ok(c) => Ok(Some(Arc::new(c))),
        Err(e) => {
            eprintln!("config error: {e:#}");
            Err(ExitCode::from(2))
        }
    }
}

/// [`run`] with the config already loaded by [`load_config`] (`src/main.rs` loads it before
/// the runtime starts).
pub async fn run_with(cli: Cli, config: Option<Arc<Config>>) -> ExitCode {
    match dispatch(cli, config).await {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

async fn dispatch(cli: Cli, config: Option<Arc<Config>>) -> Result<ExitCode, CommandError> {
    match cli.command {
        Command::Completions { shell } => {
            return Ok(crate::cli_docs::print_completions(Cli::command(), shell)?);
        }
        Command::Man { ref subcommand } => {
            return Ok(crate::cli_docs::print_man(Cli::command(), subcommand)?);
        }
        _ => {}
    }
    let config = config.context("no config loaded for a subcommand that needs one")?;
    let caller = Caller::console();
    // Input is parsed before the engine connects: bad input needs no database.
    Ok(match cli.command {
        Command::Serve => serve(config).await?,
        Command::Onboard { args, run } => {
            let request = args.parse_in(&config)?;
            let engine = engine(config, run.answers()?).await?;
            let reply =
                commands::onboard::run(&engine, &caller, request, run.start_options()).await;
            answer(Some(&engine), reply).await
        }
        Command::DnsCheck { args } => {
            let request = args.parse()?;
            let engine = engine(config, Answers::Ask).await?;
            let reply = commands::dns_check::run(&engine, &request, |line| eprintln!("{line}"));
            answer(Some(&engine), reply.await).await
        }
        // Needs no state database.
        Command::Cert {
            command: CertCommand::Status { args },
        } => answer(None, commands::cert::status(&config, &args.parse()?).await).await,
        Command::Cert {
            command: CertCommand::Issue { args, run },
        } => {
            let input = args.parse()?;
            let engine = engine(config, run.answers()?).await?;
            let reply = commands::cert::issue(&engine, &caller, input, run.start_options()).await;
            answer(Some(&engine), reply).await
        }
        Command::Verify { args, run } => {
            let request = args.parse()?;
            let engine = engine(config, run.answers()?).await?;
            let reply = commands::verify::run(&engine, &caller, request, run.start_options()).await;
            answer(Some(&engine), reply).await
        }
        Command::Runs { command } => {
            let answers = match &command {
                RunsCommand::Resume {
                    yes, reject_reason, ..
                } => Answers::from_flags(*yes, reject_reason.as_deref())?,
                RunsCommand::Abandon { run, .. } => run.answers()?,
                _ => Answers::Ask,
            };
            let engine = engine(config, answers).await?;
            let reply = match command {
                RunsCommand::List { args } => commands::runs::list(&engine, &args).await,
                RunsCommand::Show { args } => commands::runs::show(&engine, args.parse()?).await,
                RunsCommand::Resume {
                    args, break_glass, ..
                } => {
                    // Nothing runs in this process before this command.
                    let running_here = |_| false;
                    let glass = break_glass.as_deref();
                    commands::resume::run(&engine, &caller, args.parse()?, glass, &running_here)
                        .await
                }
                RunsCommand::Cancel { args } => {
                    commands::cancel::run(&engine, &caller, args.parse()?).await
                }
                RunsCommand::Abandon { args, run } => {
                    let input = args.parse()?;
                    commands::abandon::run(&engine, &caller, input, run.start_options()).await
                }
            };
            answer(Some(&engine), reply).await
        }
        Command::Locks { command } => {
            let engine = engine(config, Answers::Ask).await?;
            let reply = match command {
                LocksCommand::List => commands::locks::list(&engine).await,
                LocksCommand::TakeOver { args } => {
                    commands::locks::take_over(&engine, &caller, &args).await
                }
            };
            answer(Some(&engine), reply).await
        }
        Command::Audit { args } => {
            let request = args.parse()?;
            let engine = engine(config, Answers::Ask).await?;
            let reply = commands::audit::run(&engine, &caller, &request).await;
            answer(Some(&engine), reply).await
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => answer(None, commands::config_check::run(&config).await).await,
        Command::Migrate => {
            state::migrate(&config).await?;
            let done = format!("migrations applied to {}", config.state_db.describe());
            answer(None, Ok(Reply::Text(done))).await
        }
        Command::Completions { .. } | Command::Man { .. } => {
            return Err(anyhow::anyhow!("handled before the config").into());
        }
    })
}

/// The engine for a console command, answering plans as `answers` says.
async fn engine(config: Arc<Config>, answers: Answers) -> anyhow::Result<Engine> {
    Engine::new(config, Arc::new(Console::new(answers))).await
}

async fn serve(config: Arc<Config>) -> anyhow::Result<ExitCode> {
    if config.discord.is_none() {
        eprintln!(
            "config error: {}: `serve` needs a `discord:` section (token, guild_id, ops_channel_id, approver_role_ids); see config/bot.example.yaml",
            config.source.display()
        );
        return Ok(ExitCode::from(2));
    }
    // The /healthz and /metrics listener (`ops.listen`; none when unset).
    let _ops = crate::ops::start(&config, crate::ops::Health::global().expect_gateway()).await?;
    let mut bot = crate::chat::discord::Bot::start(config).await?;
    let stopped = tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.context("waiting for Ctrl-C")?;
            None
        }
        r = bot.wait() => Some(r),
    };
    match stopped {
        None => {
            eprintln!(
                "stopping: unfinished runs resume from their recorded state at the next start"
            );
            bot.shutdown().await;
        }
        Some(r) => r?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what a command answered: a text or a listing on stdout (a listing that does not
/// hold exits 1); a run is executed here, in the foreground (needs `engine`).
async fn answer(engine: Option<&Engine>, reply: Result<Reply, CommandError>) -> ExitCode {
    match reply {
        Ok(Reply::Text(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Reply::Listing(listing)) => {
            print!("{}", listing.text);
            exit_code(listing.ok)
        }
        Ok(Reply::Run(run)) => match engine {
            Some(engine) => execute(engine, &run).await,
            None => fail(anyhow::anyhow!("a run to execute without an engine").into()),
        },
        Err(e) => fail(e),
    }
}

/// Executes the run to its end (or until it stops to wait for a person) and prints its
/// summary; exits 0 when it is done, 1 otherwise (it stays resumable).
async fn execute(engine: &Engine, run: &RunToExecute) -> ExitCode {
    let outcome = match &run.take_over {
        Some((actor, reason)) => engine.take_over(run.id, actor, reason).await,
        None => engine.execute(run.id).await,
    };
    let outcome = match outcome {
        Err(e) if e.downcast_ref::<LeaseLost>().is_some() => {
            eprintln!("stopped: {e}");
            return ExitCode::from(1);
        }
        Err(e) => return fail(e.into()),
        Ok(outcome) => outcome,
    };
    match commands::runs::report(engine, run.id).await {
        Ok(report) => print!("{report}"),
        Err(e) => return fail(e.into()),
    }
    exit_code(outcome.status == RunStatus::Done)
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A command that did nothing, on stderr: bad input and refusals exit 2, internal errors 3
/// with their whole chain (the console's user is the operator who reads the log).
fn fail(e: CommandError) -> ExitCode {
    let code = ExitCode::from(e.exit_code());
    match e {
        CommandError::Input(e) => eprintln!("invalid input: {e}"),
        CommandError::User(text) => eprintln!("{text}"),
        // Refusals and internal errors may quote what a command printed: scrubbed like every
        // log line.
        CommandError::NotStarted(why) | CommandError::Refused(why) => {
            eprintln!(
                "{}",
                crate::redact::redact_output(&format!("refused: {why}"))
            )
        }
        CommandError::Internal(e) => {
            eprintln!("{}", crate::redact::redact_output(&format!("error: {e:#}")))
        }
    }
    code
}
