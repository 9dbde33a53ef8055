//! The Discord front-end (`onboard-bot serve`): poise slash commands, approval buttons and a
//! thread per run, on serenity.
//!
//! - [`Bot::start`] builds the engine with a [`DiscordFrontend`], registers the guild commands
//!   and, once the gateway is ready, resumes unfinished runs in their threads.
//! - Every interaction is acknowledged (deferred) before any I/O; runs execute in spawned tasks
//!   and report with the bot token, so nothing depends on a 15-minute interaction token.
//! - `discord.api_base` is Discord's own by default; anything else (the tests' fake Discord) is
//!   reached through serenity's proxy setting with its ratelimiter off, because serenity's
//!   ratelimiter ignores the proxy and would call discord.com.

pub mod access;
mod approvals;
pub mod buttons;
pub mod commands;
pub mod custom_id;
pub mod frontend;
pub mod pace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use secrecy::ExposeSecret;
use serenity::all::{
    ClientBuilder, ConnectionStage, CreateAllowedMentions, CreateCommand, FullEvent,
    GatewayIntents, GuildId, Http, HttpBuilder, Interaction, ShardManager,
};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{error, info, warn};
use uuid::Uuid;

pub use approvals::Delivered;
pub use frontend::DiscordFrontend;

use crate::config::{Config, DiscordConfig};
use crate::engine::{Engine, ExecutorBusy, LeaseLost};
use crate::frontend::Actor;

/// Discord's own API; any other base URL is treated as a test double.
pub const DISCORD_API: &str = "https://discord.com";

pub type Error = anyhow::Error;
pub type Context<'a> = poise::ApplicationContext<'a, Data, Error>;

/// What every command and event handler gets.
#[derive(Clone)]
pub struct Data {
    pub engine: Engine,
    pub frontend: Arc<DiscordFrontend>,
    pub config: Arc<Config>,
    runs: Arc<RunTasks>,
    modals: Arc<commands::ModalWaiters>,
    /// The Discord runs left unfinished by the last process, listed before the gateway
    /// connects (so no run this process starts is among them); taken at the first Ready, so
    /// the start-up work runs once, not at every reconnect.
    unfinished: Arc<Mutex<Option<Vec<Uuid>>>>,
    /// The scheduled audit anchor, stopped at shutdown like the runs.
    anchor_task: Arc<Mutex<Option<AbortHandle>>>,
}

/// Runs executing in this process, so a shutdown can stop them.
#[derive(Default)]
struct RunTasks(Mutex<HashMap<Uuid, AbortHandle>>);

impl Data {
    /// Executes a run in its own task (it may wait for people for days); failures are logged
    /// with a reference and reported in the run's thread by the engine where it can.
    /// A run already executing in this process is left alone (two executors in one process
    /// would share its lease).
    /// With `take_over` (who and why), the run is taken over from the process executing it.
    pub fn spawn_run(&self, run_id: Uuid, take_over: Option<(Actor, String)>) {
        if self.is_running_here(run_id) {
            warn!(run_id = %run_id, "not starting a second executor for a run running here");
            return;
        }
        let engine = self.engine.clone();
        let frontend = self.frontend.clone();
        let task = tokio::spawn(async move {
            let result = match &take_over {
                None => engine.execute(run_id).await,
                Some((actor, reason)) => engine.take_over(run_id, actor, reason).await,
            };
            match result {
                Ok(outcome) => {
                    info!(run_id = %run_id, status = outcome.status.as_str(), "run stopped")
                }
                Err(e) if e.downcast_ref::<ExecutorBusy>().is_some() => {
                    let holder = e
                        .downcast_ref::<ExecutorBusy>()
                        .map(|b| b.holder.as_str())
                        .unwrap_or_default();
                    warn!(run_id = %run_id, holder, "the run is executed by another live process; left alone");
                    frontend.report_run_elsewhere(run_id, holder).await;
                }
                Err(e) if e.downcast_ref::<LeaseLost>().is_some() => {
                    // The engine said so in the thread already; the new executor carries on.
                    warn!(run_id = %run_id, error = %e, "stopped: the run was taken over");
                }
                Err(e) => {
                    let reference = reference_id();
                    error!(run_id = %run_id, reference, error = ?e, "run stopped on an internal error");
                    frontend.report_run_error(run_id, &reference).await;
                }
            }
        });
        let mut runs = self.runs.0.lock().unwrap_or_else(PoisonError::into_inner);
        runs.retain(|_, h| !h.is_finished());
        runs.insert(run_id, task.abort_handle());
    }

    /// Whether this process is executing the run right now.
    pub fn is_running_here(&self, run_id: Uuid) -> bool {
        self.runs
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run_id)
            .is_some_and(|h| !h.is_finished())
    }

    fn discord(&self) -> &DiscordConfig {
        self.frontend.config()
    }
}

/// A short id to quote in chat and find in the log.
pub fn reference_id() -> String {
    format!("e-{}", &Uuid::new_v4().simple().to_string()[..10])
}

/// serenity's HTTP client for the configured API base.
pub fn build_http(cfg: &DiscordConfig) -> Http {
    let token = cfg.token.expose_secret();
    let base = cfg.api_base.trim_end_matches('/');
    if base == DISCORD_API {
        Http::new(token)
    } else {
        HttpBuilder::new(token)
            .proxy(base)
            .ratelimiter_disabled(true)
            .build()
    }
}

/// The running bot: the gateway client and the engine behind it.
pub struct Bot {
    pub data: Data,
    shards: Arc<ShardManager>,
    client: JoinHandle<Result<(), serenity::Error>>,
}

impl Bot {
    /// Connects to the state DB and to Discord; returns once the client is started (the
    /// commands are registered and runs resumed when the gateway says READY).
    pub async fn start(config: Arc<Config>) -> anyhow::Result<Bot> {
        let dc = config.discord.clone().with_context(|| {
            format!(
                "{}: `serve` needs a `discord:` section (token, guild_id, ops_channel_id, approver_role_ids); see config/bot.example.yaml",
                config.source.display()
            )
        })?;
        let frontend = Arc::new(DiscordFrontend::new(Arc::new(build_http(&dc)), dc.clone()));
        let engine = Engine::new(config.clone(), frontend.clone()).await?;
        frontend.set_engine(&engine);
        let unfinished = unfinished_discord_runs(&engine).await;
        let data = Data {
            engine,
            frontend,
            config,
            runs: Arc::default(),
            modals: Arc::default(),
            unfinished: Arc::new(Mutex::new(Some(unfinished))),
            anchor_task: Arc::default(),
        };
        let setup_data = data.clone();
        let framework = poise::Framework::builder()
            .options(poise::FrameworkOptions {
                commands: commands::all(),
                on_error: |e| Box::pin(on_error(e)),
                event_handler: |fw, event| Box::pin(on_event(fw, event)),
                // poise's default lets every reply ping the users it names; replies carry user
                // input (a refused slug, a display name), so they ping nobody.
                allowed_mentions: Some(CreateAllowedMentions::new()),
                ..Default::default()
            })
            // poise holds every event back, polling every 100 ms, until this returns the user
            // data: so it returns at once, and the slow start-up (registering the commands,
            // resuming runs) waits for the Ready event, which poise passes on only after the
            // data is in place. No command is advertised before it can be served.
            .setup(move |_ctx, _ready, _fw| Box::pin(async move { Ok(setup_data) }))
            .build();
        let mut client = ClientBuilder::new_with_http(build_http(&dc), GatewayIntents::GUILDS)
            .framework(framework)
            .await
            .context("building the Discord client")?;
        let shards = client.shard_manager.clone();
        let task = tokio::spawn(async move { client.start().await });
        Ok(Bot {
            data,
            shards,
            client: task,
        })
    }

    /// Runs until the gateway client stops (it reconnects by itself on dropped connections).
    /// Call [`Bot::shutdown`] only if this has not returned.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.client)
            .await
            .context("the Discord client task panicked")?
            .context("the Discord client stopped")
    }

    /// Disconnects and stops this process's runs where they are (as a crash would: they
    /// resume from their recorded state in the next process).
    pub async fn shutdown(self) {
        self.shards.shutdown_all().await;
        crate::ops::set_gateway_connected(false);
        for (_, h) in self
            .data
            .runs
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            h.abort();
        }
        if let Some(h) = self
            .data
            .anchor_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            h.abort();
        }
        let _ = self.client.await;
    }
}

/// Start-up work once, at the first Ready: register the guild commands, open the tenant DB
/// pool, resume unfinished runs. A failure to register is logged and counted in /metrics as a
/// Discord API error; the commands registered by an earlier start keep working meanwhile.
async fn after_ready(
    ctx: &serenity::all::Context,
    commands: Vec<CreateCommand>,
    data: &Data,
    unfinished: Vec<Uuid>,
) {
    let guild = GuildId::new(data.discord().guild_id);
    match guild.set_commands(&ctx.http, commands).await {
        Ok(_) => info!(guild = %guild, "slash commands registered"),
        Err(e) => {
            crate::ops::metrics::discord_api_error();
            error!(error = %e, "could not register the slash commands in the guild");
        }
    }
    // Org autocomplete has under 3 s: open the tenant DB pool now, not then.
    if let Err(e) = data.engine.services().tenant_db().await {
        warn!(error = %e, "the tenant DB is not reachable yet (org autocomplete stays empty)");
    }
    for run_id in unfinished {
        info!(run_id = %run_id, "resuming an unfinished run");
        data.spawn_run(run_id, None);
    }
    if let Some(every) = data.engine.config().anchor_every {
        let engine = data.engine.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut last = None;
            loop {
                tick.tick().await;
                // Only a head that moved is worth a message.
                match engine.audit_head().await {
                    Ok(head) if head != last => match engine.post_anchor().await {
                        Ok(posted) => last = posted,
                        Err(e) => {
                            warn!(error = %format!("{e:#}"), "could not post the audit anchor")
                        }
                    },
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "could not read the audit chain's head")
                    }
                }
            }
        });
        *data
            .anchor_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
    }
}

/// The Discord runs that were running, waiting or parked when the last process stopped; they
/// keep posting in their threads. Console runs are left to `runs resume`.
async fn unfinished_discord_runs(engine: &Engine) -> Vec<Uuid> {
    match engine.resumable().await {
        Ok(runs) => runs
            .into_iter()
            .filter(|r| r.frontend == "discord")
            .map(|r| r.id)
            .collect(),
        Err(e) => {
            error!(error = ?e, "could not list unfinished runs to resume");
            Vec::new()
        }
    }
}

async fn on_event(
    fw: poise::FrameworkContext<'_, Data, Error>,
    event: &FullEvent,
) -> Result<(), Error> {
    let (ctx, data) = (fw.serenity_context, fw.user_data);
    match event {
        FullEvent::InteractionCreate {
            interaction: Interaction::Component(c),
        } => buttons::on_click(ctx, data, c).await,
        FullEvent::InteractionCreate {
            interaction: Interaction::Modal(m),
        } => match custom_id::ApprovalButton::decode_reject_form(&m.data.custom_id) {
            Some(button) => buttons::on_reject_form(ctx, data, m, &button).await,
            None => commands::on_modal(ctx, data, m).await,
        },
        FullEvent::Ready { .. } => {
            crate::ops::set_gateway_connected(true);
            let unfinished = data
                .unfinished
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(unfinished) = unfinished {
                let commands = poise::builtins::create_application_commands(&fw.options.commands);
                let (ctx, data) = (ctx.clone(), data.clone());
                tokio::spawn(async move { after_ready(&ctx, commands, &data, unfinished).await });
            }
            Ok(())
        }
        FullEvent::Resume { .. } => {
            info!("gateway session resumed");
            crate::ops::set_gateway_connected(true);
            Ok(())
        }
        FullEvent::ShardStageUpdate { event } => {
            // /healthz: the gateway is up only while the shard is connected.
            crate::ops::set_gateway_connected(event.new == ConnectionStage::Connected);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `/metrics` counts failed calls to Discord's API.
fn count_api_error(error: &Error) {
    if error.chain().any(|e| e.is::<serenity::Error>()) {
        crate::ops::metrics::discord_api_error();
    }
}

/// An internal error of a command: logged with a reference id, which is all the person sees.
async fn report_internal(ctx: poise::Context<'_, Data, Error>, error: &Error, what: &'static str) {
    count_api_error(error);
    let reference = reference_id();
    error!(reference, command = %ctx.command().name, error = ?error, "{what}");
    let reply = poise::CreateReply::default()
        .content(crate::messages::internal_error(&reference))
        .ephemeral(true);
    if let Err(e) = ctx.send(reply).await {
        warn!(reference, error = %e, "could not report the failure in Discord");
    }
}

/// Errors that escaped a command: a short message with a reference, the chain in the log.
async fn on_error(err: poise::FrameworkError<'_, Data, Error>) {
    match err {
        poise::FrameworkError::Command { error, ctx, .. } => {
            report_internal(ctx, &error, "command failed").await;
        }
        // Refused by `access::operators_only`, which answered and audited it.
        poise::FrameworkError::CommandCheckFailed { error: None, .. } => {}
        poise::FrameworkError::CommandCheckFailed {
            error: Some(error),
            ctx,
            ..
        } => {
            // The check could not decide (the audit write failed): the command did not run.
            report_internal(ctx, &error, "command check failed").await;
        }
        poise::FrameworkError::EventHandler { error, event, .. } => {
            count_api_error(&error);
            let reference = reference_id();
            error!(reference, event = event.snake_case_name(), error = ?error, "event handler failed");
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                warn!(error = %e, "poise's default error handler failed");
            }
        }
    }
}
