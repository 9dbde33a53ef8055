//! The slash commands, one `async fn` each. Every command acknowledges first (an ephemeral
//! defer, or the brand form for /onboard), then validates through `src/commands` and hands a
//! request to the engine. User errors are answered ephemerally as they are; anything else goes
//! to `on_error`, which answers with a reference id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use serenity::all::{
    ActionRowComponent, CreateActionRow, CreateAllowedMentions, CreateAttachment,
    CreateAutocompleteResponse, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateModal, EditInteractionResponse, InputTextStyle,
    ModalInteraction,
};
use tokio::sync::oneshot;
use tracing::{error, info};
use uuid::Uuid;

use super::access::operators_only;
use super::{Context, Data, Error, reference_id};
use crate::chat::Actor;
use crate::commands::dns_check::DnsCheckArgs;
use crate::commands::onboard::OnboardArgs;
use crate::domain::{InputError, MailPlan, ModeKind};
use crate::engine::request::{Request, VerifyRequest};
use crate::engine::{StartError, StartOptions};
use crate::messages;
use crate::state::{audit, runs};

/// How long the brand form may stay open (Discord's interaction token lives 15 minutes).
const MODAL_TIMEOUT: Duration = Duration::from_secs(14 * 60);
/// How long /onboard waits for its run's thread before answering without the link.
const THREAD_WAIT: Duration = Duration::from_secs(10);
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

/// Where the answer to a command goes: the command's own (deferred) response, or the brand
/// form's submission when /onboard opened one.
enum Origin<'a> {
    Command(Context<'a>),
    Modal(&'a serenity::all::Context, Box<ModalInteraction>),
}

impl Origin<'_> {
    async fn reply(&self, text: String) -> anyhow::Result<()> {
        match self {
            Origin::Command(ctx) => {
                ctx.send(poise::CreateReply::default().content(text).ephemeral(true))
                    .await?;
            }
            Origin::Modal(sctx, m) => {
                m.edit_response(
                    &sctx.http,
                    EditInteractionResponse::new()
                        .content(text)
                        .allowed_mentions(CreateAllowedMentions::new()),
                )
                .await?;
            }
        }
        Ok(())
    }
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
    };
    let actor = actor_of(ctx.author());
    let dry_run = dry_run.unwrap_or(false);
    let wants_form = brand.unwrap_or(false) && mode != ModeKind::PersonOnly;
    if !wants_form {
        ctx.defer_ephemeral().await?;
        if brand.unwrap_or(false) {
            let e = InputError::new(
                "brand",
                "brand assets are for Org-shaped providers; person-only takes none",
            );
            return Origin::Command(ctx)
                .reply(messages::input_refused(e.field, &e.message))
                .await;
        }
        return start_onboarding(ctx.data(), &Origin::Command(ctx), &args, &actor, dry_run).await;
    }
    // A modal must be the first response to the command, so it is the acknowledgement here.
    let custom_id = format!("{MODAL_PREFIX}{}", ctx.interaction.id);
    let (tx, rx) = oneshot::channel();
    ctx.data()
        .modals
        .0
        .lock()
        .expect("modals")
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
        .expect("modals")
        .remove(&custom_id);
    let Ok(Ok(submit)) = submitted else {
        info!("the brand form was not submitted in time");
        return Ok(());
    };
    submit.defer_ephemeral(ctx.http()).await?;
    args.brand_copy = modal_value(&submit, "brand_copy");
    args.palette = modal_value(&submit, "palette");
    let origin = Origin::Modal(ctx.serenity_context(), Box::new(submit));
    // Past the modal, poise can no longer answer on the command: report failures here.
    if let Err(e) = start_onboarding(ctx.data(), &origin, &args, &actor, dry_run).await {
        let reference = reference_id();
        error!(reference, error = ?e, "/onboard failed after the brand form");
        origin.reply(messages::internal_error(&reference)).await?;
    }
    Ok(())
}

fn modal_value(m: &ModalInteraction, id: &str) -> Option<String> {
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
        .expect("modals")
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
    origin: &Origin<'_>,
    args: &OnboardArgs,
    actor: &Actor,
    dry_run: bool,
) -> anyhow::Result<()> {
    match args.parse(&data.config.onboarding) {
        Ok(request) => start_run(data, origin, request, actor, dry_run).await,
        Err(e) => {
            origin
                .reply(messages::input_refused(e.field, &e.message))
                .await
        }
    }
}

/// Starts a run of any runbook (locks taken, or refused with who holds them), executes it in
/// its own task and answers with its thread.
async fn start_run(
    data: &Data,
    origin: &Origin<'_>,
    request: Request,
    actor: &Actor,
    dry_run: bool,
) -> anyhow::Result<()> {
    let opts = StartOptions {
        dry_run,
        break_glass: None,
    };
    let run_id = match data.engine.start(request, actor, opts).await {
        Ok(id) => id,
        Err(StartError::Internal(e)) => return Err(e),
        Err(refused) => {
            return origin
                .reply(messages::truncate(
                    &format!("Not started — {refused}"),
                    1900,
                ))
                .await;
        }
    };
    data.spawn_run(run_id, None);
    let thread = data.frontend.wait_for_thread(run_id, THREAD_WAIT).await;
    origin
        .reply(messages::run_started_reply(run_id, thread.map(|t| t.get())))
        .await
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
    let args = DnsCheckArgs {
        domain,
        mail,
        wait: false,
        deadline_secs: 600,
    };
    let req = match args.parse() {
        Ok(r) => r,
        Err(e) => {
            return Origin::Command(ctx)
                .reply(messages::input_refused(e.field, &e.message))
                .await;
        }
    };
    let data = ctx.data();
    let (report, mail) = data.engine.dns_check(&req, |_, _| {}).await?;
    let text = format!(
        "{}mail plan checked: {}\n",
        crate::dnscheck::render(&report),
        mail.name()
    );
    reply_text_or_file(ctx, &format!("dns-check {}", req.domain), &text).await
}

/// A listing as a code block, or as a file when it does not fit in one message.
async fn reply_text_or_file(ctx: Context<'_>, title: &str, text: &str) -> Result<(), Error> {
    let reply = if text.chars().count() <= 1900 {
        poise::CreateReply::default().content(messages::fence(text, 2000))
    } else {
        let file = format!("{}.txt", title.replace([' ', '/'], "-"));
        poise::CreateReply::default()
            .content(format!("{title}: the full text is attached as `{file}`."))
            .attachment(CreateAttachment::bytes(text.as_bytes().to_vec(), file))
    };
    ctx.send(reply.ephemeral(true)).await?;
    Ok(())
}

// ----- /cert and /verify ---------------------------------------------------------------------

/// Issue or inspect a Provider domain's certificate.
#[poise::command(slash_command, guild_only, subcommands("cert_issue", "cert_status"))]
pub async fn cert(ctx: Context<'_>) -> Result<(), Error> {
    // Discord only delivers the subcommands; this is never called from there.
    ctx.defer_ephemeral().await?;
    Origin::Command(ctx)
        .reply("Use `/cert issue` or `/cert status`.".into())
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
    let origin = Origin::Command(ctx);
    let (domain, email) = match crate::commands::cert::parse_issue(&domain, email.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            return origin
                .reply(messages::input_refused(e.field, &e.message))
                .await;
        }
    };
    let data = ctx.data();
    let request = match data.engine.cert_request(domain, email).await {
        Ok(r) => r,
        Err(StartError::Internal(e)) => return Err(e),
        Err(refused) => {
            return origin
                .reply(messages::truncate(
                    &format!("Not started — {refused}"),
                    1900,
                ))
                .await;
        }
    };
    start_run(
        data,
        &origin,
        request,
        &actor_of(ctx.author()),
        dry_run.unwrap_or(false),
    )
    .await
}

/// TLS handshake with the domain on the VPS: issuer, names, expiry, chain validity.
#[poise::command(slash_command, guild_only, rename = "status")]
pub async fn cert_status(
    ctx: Context<'_>,
    #[description = "The domain"] domain: String,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let domain = match crate::domain::DomainName::parse(&domain) {
        Ok(d) => d,
        Err(e) => {
            return Origin::Command(ctx)
                .reply(messages::input_refused(e.field, &e.message))
                .await;
        }
    };
    let cfg = &ctx.data().config;
    let status = crate::adapters::tls::status(
        domain.as_str(),
        cfg.vps.ipv4.into(),
        cfg.cert.trusted_roots.as_deref(),
        Duration::from_secs(10),
    )
    .await?;
    reply_text_or_file(ctx, &format!("cert status {domain}"), &status.render()).await
}

/// Run the runbook's success check for an onboarded Provider.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn verify(
    ctx: Context<'_>,
    #[description = "The Provider's slug"] slug: String,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let origin = Origin::Command(ctx);
    let slug = match crate::domain::Slug::parse(&slug) {
        Ok(s) => s,
        Err(e) => {
            return origin
                .reply(messages::input_refused(e.field, &e.message))
                .await;
        }
    };
    let request = Request::Verify(VerifyRequest { slug });
    start_run(ctx.data(), &origin, request, &actor_of(ctx.author()), false).await
}

// ----- /status, /cancel, /audit -----------------------------------------------------------------

fn parse_run_id(raw: &str) -> Result<Uuid, InputError> {
    Uuid::try_parse(raw.trim().trim_matches('`'))
        .map_err(|_| InputError::new("run", format!("`{}` is not a run id", raw.trim())))
}

/// Unfinished runs with their threads, or one run's steps.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn status(
    ctx: Context<'_>,
    #[description = "A run id (default: every unfinished run)"] run: Option<String>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let pool = ctx.data().engine.pool();
    let text = match run {
        None => messages::status_overview(&runs::list(pool, 15, true).await?),
        Some(raw) => match parse_run_id(&raw) {
            Err(e) => messages::input_refused(e.field, &e.message),
            Ok(id) => match runs::get(pool, id).await? {
                None => format!("No run `{id}`."),
                Some(r) => messages::status_of_run(&r, &runs::steps(pool, id).await?),
            },
        },
    };
    Origin::Command(ctx).reply(text).await
}

/// Whether the clicker or caller may act on a run: an approver, or the person who started it.
fn may_act_on(ctx: Context<'_>, started_by: &str) -> bool {
    is_approver(ctx) || started_by == actor_of(ctx.author()).id
}

/// Whether the author holds one of the configured approver roles.
fn is_approver(ctx: Context<'_>) -> bool {
    ctx.interaction.member.as_ref().is_some_and(|m| {
        m.roles.iter().any(|r| {
            ctx.data()
                .frontend
                .config()
                .approver_role_ids
                .contains(&r.get())
        })
    })
}

/// The run `run` names, when the author may `verb` it; otherwise the reason is replied (a bad
/// id, no such run, not theirs to act on) and `None` returned.
async fn run_to_act_on(
    ctx: Context<'_>,
    origin: &Origin<'_>,
    run: &str,
    verb: &str,
) -> Result<Option<runs::RunRecord>, Error> {
    let id = match parse_run_id(run) {
        Ok(id) => id,
        Err(e) => {
            origin
                .reply(messages::input_refused(e.field, &e.message))
                .await?;
            return Ok(None);
        }
    };
    let Some(record) = runs::get(ctx.data().engine.pool(), id).await? else {
        origin
            .reply(format!("No run `{id}`: check the id with /status."))
            .await?;
        return Ok(None);
    };
    if !may_act_on(ctx, &record.started_by) {
        origin
            .reply(format!(
                "Only the person who started a run or an approver may {verb} it."
            ))
            .await?;
        return Ok(None);
    }
    Ok(Some(record))
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
    let origin = Origin::Command(ctx);
    let Some(record) = run_to_act_on(ctx, &origin, &run, "resume").await? else {
        return Ok(());
    };
    let (id, data) = (record.id, ctx.data());
    let take_over = take_over.unwrap_or(false);
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if take_over && (!is_approver(ctx) || reason.is_none()) {
        let actor = actor_of(ctx.author());
        let why = if is_approver(ctx) {
            "no_reason"
        } else {
            "not_an_approver"
        };
        data.engine
            .audit(crate::state::audit::NewEvent {
                run_id: Some(id),
                subject: record.subject.clone(),
                step: None,
                actor: actor.id.clone(),
                kind: "run.takeover_refused".into(),
                outcome: why.into(),
                detail: serde_json::json!({"actor_name": actor.display}),
                duration_ms: None,
            })
            .await?;
        return origin
            .reply(messages::takeover_refused(why == "no_reason"))
            .await;
    }
    let text = if record.status.is_terminal() {
        format!(
            "Run `{id}` is {}; there is nothing to resume.",
            record.status.as_str()
        )
    } else if data.is_running_here(id) {
        format!("Run `{id}` is running already; follow it in its thread.")
    } else if let (Some(holder), Some(until)) = (&record.executor, record.executor_until)
        && until > chrono::Utc::now()
        && !take_over
    {
        format!(
            "Run `{id}` is being executed by `{holder}` (lease until {}). If that process is gone or stuck, an approver can take it over with `take_over: true` and a `reason`.",
            until.format("%H:%M:%S UTC")
        )
    } else {
        let take_over = take_over.then(|| (actor_of(ctx.author()), reason.unwrap_or_default()));
        data.spawn_run(id, take_over);
        let thread = data.frontend.wait_for_thread(id, THREAD_WAIT).await;
        messages::run_resumed_reply(id, thread.map(|t| t.get()))
    };
    origin.reply(text).await
}

/// Cancel a run: stop its step, record it, release its locks.
#[poise::command(slash_command, guild_only, check = "operators_only")]
pub async fn cancel(
    ctx: Context<'_>,
    #[description = "The run id"] run: String,
    #[description = "Why (recorded in the audit trail)"] reason: Option<String>,
) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let origin = Origin::Command(ctx);
    let Some(record) = run_to_act_on(ctx, &origin, &run, "cancel").await? else {
        return Ok(());
    };
    let (id, data) = (record.id, ctx.data());
    let actor = actor_of(ctx.author());
    let reason = reason.unwrap_or_else(|| format!("cancelled in Discord by {}", actor.display));
    let msg = data
        .engine
        .cancel(id, &actor, &reason)
        .await
        .context("cancelling the run")?;
    origin.reply(msg).await
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
    let engine = &ctx.data().engine;
    let pool = engine.pool();
    let anchors = match anchors
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(audit::Anchor::parse)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(a) => a,
        Err(e) => {
            ctx.say(e).await?;
            return Ok(());
        }
    };
    let events = audit::for_subject(pool, subject.trim()).await?;
    let mut text = messages::audit_listing(subject.trim(), &events);
    if verify.unwrap_or(false) || !anchors.is_empty() {
        let (count, breaks) =
            audit::verify_chain(pool, &engine.config().audit_key, &anchors).await?;
        if breaks.is_empty() {
            text.push_str(&format!(
                "audit chain OK: {count} events, every hash and link holds\n"
            ));
        }
        for b in &breaks {
            text.push_str(&format!(
                "audit chain BROKEN at event #{}: {}\n",
                b.id, b.problem
            ));
        }
    }
    reply_text_or_file(ctx, &format!("audit {}", subject.trim()), &text).await
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
                "audit"
            ]
        );
    }

    #[test]
    fn run_ids_are_parsed_at_the_edge() {
        let id = Uuid::new_v4();
        assert_eq!(parse_run_id(&format!(" `{id}` ")).unwrap(), id);
        assert_eq!(parse_run_id("nope").unwrap_err().field, "run");
    }
}
