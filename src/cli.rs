//! The command line: the same runbooks as the Discord commands, from a terminal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::chat::Actor;
use crate::chat::console::Console;
use crate::commands::ConsoleRunArgs;
use crate::commands::onboard::OnboardArgs;
use crate::config::Config;
use crate::engine::{Engine, RunOutcome, StartError, StartOptions};
use crate::messages;
use crate::state::{self, audit, runs};
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
        args: crate::commands::dns_check::DnsCheckArgs,
    },
    /// Issue, re-issue or inspect a Provider domain's certificate.
    Cert {
        #[command(subcommand)]
        command: crate::commands::cert::CertArgs,
    },
    /// Run the runbook's success check for an onboarded Provider.
    Verify {
        /// The Provider's slug.
        slug: String,
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
        /// The slug or domain the events are about.
        subject: String,
        /// Also verify the whole hash chain and report any edited or deleted event.
        #[arg(long)]
        verify: bool,
        /// An anchor copied from the audit channel (`ID:HASH`, repeatable): the chain must still
        /// hold that event with that hash, which catches a chain cut short at its end.
        #[arg(long = "anchor", value_name = "ID:HASH", value_parser = parse_anchor)]
        anchors: Vec<audit::Anchor>,
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

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        /// Only runs not finished for good: running, waiting, parked, failed or rejected.
        #[arg(long)]
        unfinished: bool,
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One run: its steps, statuses and plans.
    Show {
        /// The run id.
        id: Uuid,
    },
    /// Continue an unfinished or failed run from its recorded state.
    Resume {
        /// The run id.
        id: Uuid,
        /// Take the run over from the process executing it: it is asked to let go and stops
        /// before its next write (or its lease runs out). Needs --reason.
        #[arg(long, requires = "reason")]
        take_over: bool,
        /// Why the run is taken over (recorded in the audit trail).
        #[arg(long, value_name = "REASON")]
        reason: Option<String>,
        /// Approve every plan without asking.
        #[arg(long)]
        yes: bool,
        /// Required against a config marked production: why the console resumes the run.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// Cancel a run: stop its step, record it, release its locks.
    Cancel {
        /// The run id.
        id: Uuid,
        /// Why (recorded in the audit trail).
        #[arg(long, default_value = "cancelled from the console")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// Every held lock and the run holding it.
    List,
    /// Cancel the run holding a lock and release it (audited).
    TakeOver {
        /// The lock key, e.g. slug:merche-biche or domain:merche-biche.com.
        key: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
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
        Err(e) => {
            // Internal errors may quote what a command printed: scrubbed like every log line.
            eprintln!("{}", crate::redact::redact_output(&format!("error: {e:#}")));
            ExitCode::from(3)
        }
    }
}

async fn dispatch(cli: Cli, config: Option<Arc<Config>>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => return crate::cli_docs::print_completions(shell),
        Command::Man { ref subcommand } => return crate::cli_docs::print_man(subcommand),
        _ => {}
    }
    let config = config.context("no config loaded for a subcommand that needs one")?;
    match cli.command {
        Command::Serve => {
            if config.discord.is_none() {
                eprintln!(
                    "config error: {}: `serve` needs a `discord:` section (token, guild_id, ops_channel_id, approver_role_ids); see config/bot.example.yaml",
                    config.source.display()
                );
                return Ok(ExitCode::from(2));
            }
            // The /healthz and /metrics listener (`ops.listen`; none when unset).
            let _ops =
                crate::ops::start(&config, crate::ops::Health::global().expect_gateway()).await?;
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
        Command::Onboard { args, run } => {
            let request = match args.parse(&config.onboarding) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("invalid input: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let engine = Engine::new(config, Arc::new(Console::new(run.yes))).await?;
            run_console(&engine, request, run).await
        }
        Command::DnsCheck { args } => dns_check(config, args).await,
        Command::Cert { command } => cert(config, command).await,
        Command::Verify { slug, run } => {
            let slug = match crate::domain::Slug::parse(&slug) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("invalid input: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let engine = Engine::new(config, Arc::new(Console::new(run.yes))).await?;
            let request =
                crate::engine::request::Request::Verify(crate::engine::request::VerifyRequest {
                    slug,
                });
            run_console(&engine, request, run).await
        }
        Command::Runs { command } => runs_command(config, command).await,
        Command::Locks { command } => {
            let engine = Engine::new(config, Arc::new(Console::new(false))).await?;
            match command {
                LocksCommand::List => {
                    let locks = runs::list_locks(engine.pool()).await?;
                    if locks.is_empty() {
                        println!("no locks held");
                    }
                    for l in locks {
                        println!(
                            "{:<40} run {} ({}) by {} since {}",
                            l.key, l.run_id, l.status, l.started_by, l.acquired_at
                        );
                    }
                }
                LocksCommand::TakeOver { key, reason } => {
                    println!(
                        "{}",
                        engine
                            .take_over_lock(&key, &Actor::console_user(), &reason)
                            .await?
                    )
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            subject,
            verify,
            anchors,
        } => {
            state::migrate(&config).await?;
            let pool = state::connect(&config.state_db).await?;
            for e in audit::for_subject(&pool, &subject).await? {
                println!(
                    "{} #{:<5} {:<24} {:<14} {:<22} {:<10} {}",
                    e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
                    e.id,
                    e.kind,
                    e.step.as_deref().unwrap_or("-"),
                    e.actor,
                    e.outcome,
                    e.detail
                );
            }
            if verify || !anchors.is_empty() {
                let (count, breaks) =
                    audit::verify_chain(&pool, &config.audit_key, &anchors).await?;
                if breaks.is_empty() {
                    println!(
                        "audit chain OK: {count} events, every hash and link holds{}",
                        if anchors.is_empty() {
                            String::new()
                        } else {
                            format!(", and every one of the {} anchors", anchors.len())
                        }
                    );
                } else {
                    for b in &breaks {
                        println!("audit chain BROKEN at event #{}: {}", b.id, b.problem);
                    }
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(&config).await,
        Command::Migrate => {
            state::migrate(&config).await?;
            println!("migrations applied to {}", config.state_db.describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("handled before the config")
        }
    }
}

async fn runs_command(config: Arc<Config>, command: RunsCommand) -> anyhow::Result<ExitCode> {
    let yes = matches!(command, RunsCommand::Resume { yes: true, .. });
    let engine = Engine::new(config, Arc::new(Console::new(yes))).await?;
    match command {
        RunsCommand::List { unfinished, limit } => {
            for r in runs::list(engine.pool(), limit, unfinished).await? {
                println!(
                    "{}  {:<10} {:<24} {:<17} {:<20} {}",
                    r.id,
                    r.runbook,
                    r.subject,
                    r.status.as_str(),
                    r.started_by,
                    r.created_at.format("%Y-%m-%d %H:%M")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { id } => {
            let run = runs::get(engine.pool(), id)
                .await?
                .with_context(|| format!("no run {id}"))?;
            let steps = runs::steps(engine.pool(), id).await?;
            print!("{}", messages::summary_table(&run, &steps));
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Resume {
            id,
            take_over,
            reason: takeover_reason,
            break_glass,
            ..
        } => {
            if engine.config().environment == crate::config::Environment::Production {
                let Some(reason) = break_glass else {
                    eprintln!(
                        "refused: this config is marked production: resume from the console only with --break-glass REASON (recorded in the audit trail)"
                    );
                    return Ok(ExitCode::from(2));
                };
                engine
                    .record_break_glass(id, &Actor::console_user(), &reason)
                    .await?;
            }
            let outcome = match (take_over, takeover_reason) {
                (true, Some(reason)) => engine.take_over(id, &Actor::console_user(), &reason).await,
                _ => engine.execute(id).await,
            };
            let outcome = match outcome {
                Err(e) if e.downcast_ref::<crate::engine::LeaseLost>().is_some() => {
                    eprintln!("stopped: {e}");
                    return Ok(ExitCode::from(1));
                }
                other => other?,
            };
            report(&engine, id, &outcome).await
        }
        RunsCommand::Cancel { id, reason } => {
            println!(
                "{}",
                engine.cancel(id, &Actor::console_user(), &reason).await?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts and executes a run from the console; a refusal (lock held, production without
/// --break-glass) exits 2 with its reason.
async fn run_console(
    engine: &Engine,
    request: crate::engine::request::Request,
    run: ConsoleRunArgs,
) -> anyhow::Result<ExitCode> {
    let opts = StartOptions {
        dry_run: run.dry_run,
        break_glass: run.break_glass,
    };
    match engine.run(request, &Actor::console_user(), opts).await {
        Ok((id, outcome)) => report(engine, id, &outcome).await,
        Err(StartError::Internal(e)) if e.downcast_ref::<crate::engine::LeaseLost>().is_some() => {
            eprintln!("stopped: {e}");
            Ok(ExitCode::from(1))
        }
        Err(StartError::Internal(e)) => Err(e),
        Err(e) => {
            eprintln!("{}", crate::redact::redact_output(&format!("refused: {e}")));
            Ok(ExitCode::from(2))
        }
    }
}

/// Prints the summary table and the run's audit trail; the exit code follows the outcome.
async fn report(engine: &Engine, id: Uuid, outcome: &RunOutcome) -> anyhow::Result<ExitCode> {
    let run = runs::get(engine.pool(), id)
        .await?
        .with_context(|| format!("no run {id}"))?;
    let steps = runs::steps(engine.pool(), id).await?;
    println!("{}", messages::summary_table(&run, &steps));
    if let Some(report) = run.outputs.get("verify_report")
        && let Ok(checks) =
            serde_json::from_value::<Vec<crate::steps::verify::Check>>(report.clone())
    {
        println!("{}", crate::steps::verify::render(&checks));
    }
    println!("audit trail of run {id}:");
    for e in audit::for_run(engine.pool(), id).await? {
        println!(
            "  #{:<5} {} {:<22} {:<14} {:<20} {}",
            e.id,
            e.at.format("%H:%M:%S%.3f"),
            e.kind,
            e.step.as_deref().unwrap_or("-"),
            e.actor,
            e.outcome
        );
    }
    Ok(if outcome.status == runs::RunStatus::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn dns_check(
    config: Arc<Config>,
    args: crate::commands::dns_check::DnsCheckArgs,
) -> anyhow::Result<ExitCode> {
    let req = match args.parse() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("invalid input: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let engine = Engine::new(config.clone(), Arc::new(Console::new(false))).await?;
    let (report, mail) = engine
        .dns_check(&req, |n, r| {
            let ok = r
                .records
                .iter()
                .filter(|x| x.status == crate::dnscheck::Status::Ok)
                .count();
            eprintln!("attempt {n}: {ok}/{} records ok", r.records.len());
        })
        .await?;
    print!("{}", crate::dnscheck::render(&report));
    println!("mail plan checked: {}", mail.name());
    Ok(if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn cert(
    config: Arc<Config>,
    command: crate::commands::cert::CertArgs,
) -> anyhow::Result<ExitCode> {
    use crate::commands::cert::{CertArgs, parse_issue};
    match command {
        CertArgs::Status { domain } => {
            let domain = match crate::domain::DomainName::parse(&domain) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("invalid input: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let status = crate::adapters::tls::status(
                domain.as_str(),
                config.vps.ipv4.into(),
                config.cert.trusted_roots.as_deref(),
                std::time::Duration::from_secs(10),
            )
            .await?;
            print!("{}", status.render());
            Ok(if status.is_good() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CertArgs::Issue { domain, email, run } => {
            let (domain, email) = match parse_issue(&domain, email.as_deref()) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("invalid input: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let engine = Engine::new(config, Arc::new(Console::new(run.yes))).await?;
            let request = match engine.cert_request(domain, email).await {
                Ok(r) => r,
                Err(StartError::Internal(e)) => return Err(e),
                Err(e) => {
                    eprintln!("refused: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            run_console(&engine, request, run).await
        }
    }
}

async fn config_check(config: &Config) -> anyhow::Result<ExitCode> {
    println!(
        "OK    config {} ({:?})",
        config.source.display(),
        config.environment
    );
    let mut failed = false;
    let mut line = |ok: bool, what: &str, detail: String| {
        failed |= !ok;
        println!("{} {what}: {detail}", if ok { "OK   " } else { "FAIL " });
    };
    match state::connect(&config.state_db).await {
        Ok(pool) => match sqlx::query_scalar::<_, String>("SELECT version()")
            .fetch_one(&pool)
            .await
        {
            Ok(v) => line(
                true,
                "state DB",
                format!(
                    "{} — {}",
                    config.state_db.describe(),
                    v.split(',').next().unwrap_or("")
                ),
            ),
            Err(e) => line(false, "state DB", format!("{e:#}")),
        },
        Err(e) => line(false, "state DB", format!("{e:#}")),
    }
    match crate::adapters::tenant_db::connect(&config.tenant_db).await {
        Ok(pool) => {
            let facts = match pool.acquire().await {
                Ok(mut conn) => crate::adapters::tenant_db::host_facts(&mut conn)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match facts {
                Ok(f) if !f.in_recovery && f.address == config.tenant_authoritative => line(
                    true,
                    "tenant DB",
                    format!("{} is the authoritative primary", f.address),
                ),
                Ok(f) => line(
                    false,
                    "tenant DB",
                    format!(
                        "{} (in recovery: {}) is not the authoritative primary {}",
                        f.address, f.in_recovery, config.tenant_authoritative
                    ),
                ),
                Err(e) => line(false, "tenant DB", e),
            }
        }
        Err(e) => line(false, "tenant DB", e.to_string()),
    }
    match crate::adapters::ssh::check(&config.vps).await {
        Ok(detail) => line(true, "SSH", detail),
        Err(e) => line(false, "SSH", format!("{e:#}")),
    }
    match crate::adapters::dns::check(&config.dns).await {
        Ok(detail) => line(true, "DNS", detail),
        Err(e) => line(false, "DNS", format!("{e:#}")),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_anchor(text: &str) -> Result<audit::Anchor, String> {
    audit::Anchor::parse(text)
}
