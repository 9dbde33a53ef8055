//! The slash commands, one `async fn` each: its poise signature, filling the command's input
//! struct of `src/commands`, and the rendering of the answer (`reply.rs`). Every command
//! acknowledges first (an ephemeral defer, or the brand form for /onboard). The brand form is
//! Discord's own and handled here.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serenity::all::{
    ActionRowComponent, CreateActionRow, CreateAllowedMentions, CreateAutocompleteResponse,
    CreateInputText, CreateInteractionResponse, CreateInteractionResponseMessage, CreateModal,
    InputTextStyle, ModalInteraction,
};
use tokio::sync::oneshot;
use tracing::{error, info};

use super::access::operators_only;
use super::{Context, Data, Error, reference_id};
use crate::commands::abandon::AbandonArgs;
use crate::commands::audit::AuditArgs;
use crate::commands::cancel::CancelArgs;
use crate::commands::cert::{CertIssueArgs, CertStatusArgs};
use crate::commands::dns_check::DnsCheckArgs;
use crate::commands::onboard::{OnboardArgs, brand_refused};
use crate::commands::resume::ResumeArgs;
use crate::commands::status::StatusArgs;
use crate::commands::verify::VerifyArgs;
use crate::commands::{self, Caller, CommandError, Frontend, Reply};
use crate::domain::{MailPlan, ModeKind};
use crate::engine::StartOptions;
use crate::frontend::Actor;
use crate::messages;
use reply::Origin;

pub mod reply;

/// How long the brand form may stay open (Discord's interaction token lives 15 minutes).
const MODAL_TIMEOUT: Duration = Duration::from_secs(14 * 60);
/// Autocomplete must answer within Discord's 3 seconds.
const AUTOCOMPLETE_BUDGET: Duration = Duration::from_millis(1500);
const MODAL_PREFIX: &str = "ob-brand:";

/// Every command the bot registers, in one list (names unique, see the test below), each
/// hidden from members by default (see `access`).
pub fn all() -> Vec<poise::Command<Data, Error>> {
    let mut commands = vec![
        onboard(),
        dns_check(),
        cert(),
        verify(),
        status(),
        resume(),
        cancel(),
        abandon(),
        audit(),
    ];
    for c in &mut commands {
        c.default_member_permissions = super::access::COMMAND_PERMISSIONS;
    }
    commands
}

/// Brand forms waiting for their submission, by modal custom_id.
#[derive(Default)]
pub struct ModalWaiters(Mutex<HashMap<String, oneshot::Sender<ModalInteraction>>>);

fn actor_of(user: &serenity::all::User) -> Actor {
    Actor {
        id: format!("discord:{}", user.id),
        display: user.name.clone(),
    }
}

/// Who invokes the command: the author, and whether they hold an approver role.
fn caller_of(ctx: Context<'_>) -> Caller {
    let approver = ctx.interaction.member.as_ref().is_some_and(|m| {
        m.roles.iter().any(|r| {
            ctx.data()
                .frontend
                .config()
                .approver_role_ids
                .contains(&r.get())
        })
    });
    Caller {
        actor: actor_of(ctx.author()),
        approver,
        frontend: Frontend::Discord,
    }
}

/// Answers on the command's own (deferred) response.
async fn answer(ctx: Context<'_>, answer: Result<Reply, CommandError>) -> Result<(), Error> {
    reply::answer(ctx.data(), &Origin::Command(ctx), answer).await
}

// ----- /onboard ----------------------------------------------------------------------------------

/// Onboard a new Provider: the whole runbook, with a thread for its progress and approvals.
#[poise::command(slash_command, guild_only, check = "operators_only")]
#[allow(clippy::too_many_arguments)]
pub async fn onboard(
    ctx: Context<'_>,
    #[description = "Short kebab-case name, unique across people and orgs (e.g. merche-biche)"]
    slug: String,
    #[description = "The Person's display name"] name: String,
    #[description = "The Person's email address"] email: String,
    #[description = "Operating mode (default person-only)"] mode: Option<ModeKind>,
    #[description = "Org slug: the new org (owns) or the existing one to join (joins)"]
    #[autocomplete = "autocomplete_org"]
    org: Option<String>,
    #[description = "Name of the new org (person-owns-org)"] org_name: Option<String>,
    #[description = "Domain to serve (default: {slug}.com)"] domain: Option<String>,
    #[description = "A second domain to serve"] domain2: Option<String>,
    #[description = "Mail on the domain (default none)"] mail: Option<MailPlan>,
    #[description = "Generic site feature (never provider-named)"]
    #[autocomplete = "autocomplete_feature"]
    feature: Option<String>,
    #[description = "Brand logo URL, https (org-shaped modes)"] logo: Option<String>,
    #[description = "Open a form for brand copy and palette (org-shaped modes)"] brand: Option<
        bool,
    >,
    #[description = "Plan every step and write nothing"] dry_run: Option<bool>,
    #[description = "Take over the domain's existing site (asks for an approval naming it)"]
    adopt_site: Option<bool>,
    #[description = "The VPS the sites go on (default: the fleet's first)"]
    #[autocomplete = "autocomplete_vps"]
    vps: Option<String>,
) -> Result<(), Error> {
    let mode = mode.unwrap_or(ModeKind::PersonOnly);
    let mut args = OnboardArgs {
        slug,
        name,
        email,
        mode: mode.name().into(),
        org,
        org_name,
        domains: domain.into_iter().chain(domain2).collect(),
        mail: mail.unwrap_or_default(),
        feature,
        brand_copy: None,
        logo,
        palette: None,
        adopt_site: adopt_site.unwrap_or(false),
        vps,
    };
    let caller = caller_of(ctx);
    let opts = StartOptions {
        dry_run: dry_run.unwrap_or(false),
        break_glass: None,
    };
    let wants_form = brand.unwrap_or(false) && mode != ModeKind::PersonOnly;
    if !wants_form {
        ctx.defer_ephemeral().await?;
        let origin = Origin::Command(ctx);
        let answer = if brand.unwrap_or(false) {
            Err(brand_refused().into())
        } else {
            start_onboarding(ctx.data(), &caller, &args, opts).await
        };
        return reply::answer(ctx.data(), &origin, answer).await;
    }
    // A modal must be the first response to the command, so it is the acknowledgement here.
    let custom_id = format!("{MODAL_PREFIX}{}", ctx.interaction.id);
    let (tx, rx) = oneshot::channel();
    ctx.data()
        .modals
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(custom_id.clone(), tx);
    let form = CreateModal::new(custom_id.clone(), "Brand for the new site").components(vec![
        CreateActionRow::InputText(
            CreateInputText::new(InputTextStyle::Paragraph, "Brand copy", "brand_copy")
                .placeholder("The site's headline and blurb")
                .max_length(2000)
                .required(false),
        ),
        CreateActionRow::InputText(
            CreateInputText::new(
                InputTextStyle::Short,
                "Palette (hex, comma-separated)",
                "palette",
            )
            .placeholder("#1a2b3c,#ffffff")
            .max_length(200)
            .required(false),
        ),
    ]);
    ctx.interaction
        .create_response(ctx.http(), CreateInteractionResponse::Modal(form))
        .await?;
    let submitted = tokio::time::timeout(MODAL_TIMEOUT, rx).await;
    ctx.data()
        .modals
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&custom_id);
    let Ok(Ok(submit)) = submitted else {
        info!("the brand form was not submitted in time");
        return Ok(());
    };
    submit.defer_ephemeral(ctx.http()).await?;
    args.brand_copy = modal_value(&submit, "brand_copy");
    args.palette = modal_value(&submit, "palette");
    let origin = Origin::Modal(ctx.serenity_context(), Box::new(submit));
    let answer = start_onboarding(ctx.data(), &caller, &args, opts).await;
    // Past the modal, poise can no longer answer on the command: report failures here.
    if let Err(e) = reply::answer(ctx.data(), &origin, answer).await {
        let reference = reference_id();
        error!(reference, error = ?e, "/onboard failed after the brand form");
        origin.reply(messages::internal_error(&reference)).await?;
    }
    Ok(())
}

pub(super) fn modal_value(m: &ModalInteraction, id: &str) -> Option<String> {
    m.data
        .components
        .iter()
        .flat_map(|r| &r.components)
        .find_map(|c| match c {
            ActionRowComponent::InputText(t) if t.custom_id == id => t.value.clone(),
            _ => None,
        })
        .filter(|v| !v.trim().is_empty())
}

/// A modal submission: handed to the /onboard waiting for it, or told it expired.
pub async fn on_modal(
    ctx: &serenity::all::Context,
    data: &Data,
    m: &ModalInteraction,
) -> anyhow::Result<()> {
    let waiter = data
        .modals
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&m.data.custom_id);
    match waiter {
        Some(tx) => {
            if let Err(m) = tx.send(m.clone()) {
                expired(ctx, &m).await?;
            }
        }
        None => expired(ctx, m).await?,
    }
    Ok(())
}

async fn expired(ctx: &serenity::all::Context, m: &ModalInteraction) -> anyhow::Result<()> {
    let reply = CreateInteractionResponseMessage::new()
        .content(
            "This form expired (the bot restarted or it stayed open too long): run /onboard again.",
        )
        .ephemeral(true)
        .allowed_mentions(CreateAllowedMentions::new());
    m.create_response(&ctx.http, CreateInteractionResponse::Message(reply))
        .await?;
    Ok(())
}

async fn start_onboarding(
    data: &Data,
    caller: &Caller,
    args: &OnboardArgs,
    opts: StartOptions,
) -> Result<Reply, CommandError> {
    let request = args.parse_in(&data.config)?;
    commands::onboard::run(&data.engine, caller, request, opts).await
}

async fn autocomplete_org(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let slugs = tokio::time::timeout(AUTOCOMPLETE_BUDGET, org_slugs(ctx.data(), partial))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
    let slugs = slugs.unwrap_or_else(|e| {
        info!(error = %e, "org autocomplete without suggestions");
        Vec::new()
    });
    CreateAutocompleteResponse::new().set_choices(
        slugs
            .into_iter()
            .map(serenity::all::AutocompleteChoice::from)
            .collect(),
    )
}

/// Existing org slugs starting with what was typed (read-only, at most 25: Discord's limit).
async fn org_slugs(data: &Data, partial: &str) -> anyhow::Result<Vec<String>> {
    let pool = data
        .engine
        .services()
        .tenant_db()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = pool.acquire().await?;
    crate::adapters::tenant_db::org_slugs(&mut conn, partial.trim(), 25)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn autocomplete_feature(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let choices = ctx
        .data()
        .config
        .onboarding
        .features
        .iter()
        .filter(|f| f.starts_with(partial.trim()))
        .take(25)
        .map(|f| serenity::all::AutocompleteChoice::from(f.as_str()))
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}

/// The fleet's VPS names, in the config's order (the first is the default).
async fn autocomplete_vps(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let choices = ctx
        .data()
        .config
        .fleet
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| n.starts_with(partial.trim()))
        .take(25)
        .map(serenity::all::AutocompleteChoice::from)
        .collect();
    CreateAutocompleteResponse::new().set_choices(choices)
}

// ----- /dns-check --------------------------------------------------------------------------------

/// Check a domain's DNS records on the authoritative and recursive servers.
#[poise::command(slash_command, guild_only, rename = "dns-check")]
pub async fn dns_check(
    ctx: Context<'_>,
    #[description = "The domain (e.g. merche-biche.com)"] domain: String,
    #[description = "Mail plan to check (default: the one its onboarding recorded)"] mail: Option<
        MailPlan,
    >,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let request = DnsCheckArgs::once(domain, mail).parse()?;
        commands::dns_check::run(&ctx.data().engine, &request, |_| {}).await
    };
    answer(ctx, run.await).await
}

// ----- /cert and /verify ---------------------------------------------------------------------

/// Issue or inspect a Provider domain's certificate.
#[poise::command(slash_command, guild_only, subcommands("cert_issue", "cert_status"))]
pub async fn cert(ctx: Context<'_>) -> Result<(), Error> {
    // Discord only delivers the subcommands; this is never called from there.
    ctx.defer_ephemeral().await?;
    answer(
        ctx,
        Ok(Reply::Text("Use `/cert issue` or `/cert status`.".into())),
    )
    .await
}

/// Run certbot for the domain and www, sync the conf back, release the site.
#[poise::command(slash_command, guild_only, rename = "issue", check = "operators_only")]
pub async fn cert_issue(
    ctx: Context<'_>,
    #[description = "The domain (already deployed by an onboarding)"] domain: String,
    #[description = "ACME account email (default: the one its onboarding recorded)"] email: Option<
        String,
    >,
    #[description = "Plan every step and write nothing"] dry_run: Option<bool>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let input = CertIssueArgs { domain, email }.parse()?;
        let opts = StartOptions {
            dry_run: dry_run.unwrap_or(false),
            break_glass: None,
        };
        commands::cert::issue(&ctx.data().engine, &caller_of(ctx), input, opts).await
    };
    answer(ctx, run.await).await
}

/// TLS handshake with the domain on the VPS: issuer, names, expiry, chain validity.
#[poise::command(slash_command, guild_only, rename = "status")]
pub async fn cert_status(
    ctx: Context<'_>,
    #[description = "The domain"] domain: String,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let domain = CertStatusArgs { domain }.parse()?;
        commands::cert::status(&ctx.data().config, &domain).await
    };
    answer(ctx, run.await).await
}

/// Run the runbook's success check for an onboarded Provider.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn verify(
    ctx: Context<'_>,
    #[description = "The Provider's slug"] slug: String,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let request = VerifyArgs { slug }.parse()?;
        let opts = StartOptions::default();
        commands::verify::run(&ctx.data().engine, &caller_of(ctx), request, opts).await
    };
    answer(ctx, run.await).await
}

// ----- /status, /resume, /cancel, /audit ------------------------------------------------------

/// Unfinished runs with their threads, or one run's steps.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn status(
    ctx: Context<'_>,
    #[description = "A run id (default: every unfinished run)"] run: Option<String>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let reply = commands::status::run(&ctx.data().engine, &StatusArgs { run }).await;
    answer(ctx, reply).await
}

/// Continue an unfinished or failed run from its recorded state, in its thread.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn resume(
    ctx: Context<'_>,
    #[description = "The run id"] run: String,
    #[description = "Approvers only: take the run over from the process executing it (it stops before its next write)"]
    take_over: Option<bool>,
    #[description = "Why the run is taken over (required with take_over; recorded in the audit trail)"]
    reason: Option<String>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let data = ctx.data();
    let run = async {
        let args = ResumeArgs {
            run,
            take_over: take_over.unwrap_or(false),
            reason,
        };
        let running_here = |id| data.is_running_here(id);
        commands::resume::run(
            &data.engine,
            &caller_of(ctx),
            args.parse()?,
            None,
            &running_here,
        )
        .await
    };
    answer(ctx, run.await).await
}

/// Cancel a run: stop its step, record it, release its locks.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn cancel(
    ctx: Context<'_>,
    #[description = "The run id"] run: String,
    #[description = "Why (recorded in the audit trail)"] reason: Option<String>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let request = CancelArgs { run, reason }.parse()?;
        commands::cancel::run(&ctx.data().engine, &caller_of(ctx), request).await
    };
    answer(ctx, run.await).await
}

/// Undo an onboarding step by step, each step approved (a run still going is cancelled first).
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn abandon(
    ctx: Context<'_>,
    #[description = "The onboarding run id"] run: String,
    #[description = "Why (recorded in the audit trail and the commits)"] reason: String,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let input = AbandonArgs { run, reason }.parse()?;
        let opts = StartOptions::default();
        commands::abandon::run(&ctx.data().engine, &caller_of(ctx), input, opts).await
    };
    answer(ctx, run.await).await
}

/// The audit trail of a slug or domain.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn audit(
    ctx: Context<'_>,
    #[description = "The slug or domain the events are about"] subject: String,
    #[description = "Also verify the whole hash chain"] verify: Option<bool>,
    #[description = "Anchors copied from the audit channel (ID:HASH, space-separated) the chain must still hold"]
    anchors: Option<String>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let run = async {
        let args = AuditArgs {
            subject,
            verify: verify.unwrap_or(false),
            anchors: anchors
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
        };
        commands::audit::run(&ctx.data().engine, &caller_of(ctx), &args.parse()?).await
    };
    answer(ctx, run.await).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_unique_and_fit_discord() {
        let cmds = all();
        let mut names: Vec<&str> = cmds.iter().map(|c| &*c.name).collect();
        assert_eq!(
            names,
            [
                "onboard",
                "dns-check",
                "cert",
                "verify",
                "status",
                "resume",
                "cancel",
                "abandon",
                "audit"
            ]
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), cmds.len());
        let cert = &cmds[2];
        let subs: Vec<&str> = cert.subcommands.iter().map(|c| &*c.name).collect();
        assert_eq!(subs, ["issue", "status"]);
        for c in cmds.iter().chain(&cert.subcommands) {
            let desc = c.description.as_deref().unwrap_or_default();
            assert!(
                !desc.is_empty() && desc.chars().count() <= 100,
                "/{}",
                c.name
            );
            for p in &c.parameters {
                let d = p.description.as_deref().unwrap_or_default();
                assert!(
                    !d.is_empty() && d.chars().count() <= 100,
                    "/{} {}",
                    c.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn every_command_is_hidden_from_members_and_the_run_commands_are_for_operators() {
        let cmds = all();
        let mut gated = Vec::new();
        for c in &cmds {
            assert_eq!(
                c.default_member_permissions,
                super::super::access::COMMAND_PERMISSIONS,
                "/{}",
                c.name
            );
            if !c.checks.is_empty() {
                gated.push(c.name.to_string());
            }
            for sub in &c.subcommands {
                if !sub.checks.is_empty() {
                    gated.push(format!("{} {}", c.name, sub.name));
                }
            }
        }
        // /dns-check and /cert status answer from public DNS and TLS only.
        assert_eq!(
            gated,
            [
                "onboard",
                "cert issue",
                "verify",
                "status",
                "resume",
                "cancel",
                "abandon",
                "audit"
            ]
        );
    }
}
