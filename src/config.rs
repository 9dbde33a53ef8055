//! The bot's configuration: one YAML file, every key documented in `config/bot.example.yaml`.
//!
//! Loading happens in two stages: serde reads the file into `Raw*` shapes with
//! `deny_unknown_fields`, then [`Config::load`] validates them into domain types, resolves
//! relative paths against the config file's folder, expands `${VAR}` in paths and reads
//! secrets from the environment or from files. Errors name the file, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{DomainName, Slug};

/// Where the bot runs: production needs the Discord front-end or `--break-glass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Lab,
    Staging,
    Production,
}

/// Where a secret comes from: `{env: VAR}` or `{file: path}`, exactly one. The value itself
/// is never in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Read from this environment variable.
    #[serde(default)]
    pub env: Option<String>,
    /// Read from this file (trailing newline trimmed); relative to the config file.
    #[serde(default)]
    pub file: Option<String>,
}

/// A PostgreSQL connection as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDb {
    /// Host name or address of the server.
    pub host: String,
    /// TCP port, 5432 by default.
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Database name.
    pub database: String,
    /// Password source: `{env: VAR}` or `{file: path}`.
    pub password: SecretSource,
    /// Seconds to wait for a connection before failing.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

fn default_pg_port() -> u16 {
    5432
}
fn default_connect_timeout() -> u64 {
    5
}

/// The tenant database adds which host is authoritative (runbook: "run on the authoritative
/// Postgres host").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenantDb {
    #[serde(flatten)]
    pub db: RawDb,
    /// `host:port` of the authoritative primary as the server itself reports it
    /// (`inet_server_addr()`:`inet_server_port()`). Writes anywhere else are refused.
    pub authoritative: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    environment: Environment,
    state_db: RawDb,
    tenant_db: RawTenantDb,
    #[serde(default)]
    engine: EngineConfig,
    #[serde(default)]
    onboarding: OnboardingConfig,
    vps: RawVps,
    dns: DnsConfig,
    repo: RawRepo,
    #[serde(default)]
    mail: crate::dnscheck::MailPattern,
    #[serde(default)]
    deploy: DeployConfig,
    #[serde(default)]
    cert: CertConfig,
    #[serde(default)]
    verify: Option<RawVerify>,
    #[serde(default)]
    discord: Option<RawDiscord>,
    #[serde(default)]
    ops: OpsConfig,
    audit: RawAudit,
    #[serde(default)]
    migrate: Option<RawMigrate>,
}

/// The audit trail's key and anchors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// The secret every event's hash is keyed with (HMAC-SHA256): `{env: VAR}` or `{file: path}`.
    /// Without it nobody can append an event that verifies, so keep it out of the database
    /// host. Changing it makes the existing chain fail to verify.
    key: SecretSource,
    /// How often `serve` posts the chain's head to the audit channel, in seconds (besides at
    /// the end of every run); 0 turns the schedule off.
    #[serde(default = "default_anchor_every")]
    anchor_every_secs: u64,
}

fn default_anchor_every() -> u64 {
    3600
}

/// The owner role that `migrate` uses; the runtime role (`state_db.user`) is not the owner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigrate {
    /// Role that owns the bot's tables.
    user: String,
    /// Its password: `{env: VAR}` or `{file: path}`.
    password: SecretSource,
}

/// The operations HTTP listener: `/healthz` and `/metrics` (see `src/ops`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// `ip:port` to serve `/healthz` and `/metrics` on; no listener when unset. The endpoints
    /// have no authentication: bind to loopback or a private interface.
    pub listen: Option<std::net::SocketAddr>,
}

/// Timeouts and retries for every step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Longest a single plan/apply/check call may take, in seconds.
    pub step_timeout_secs: u64,
    /// Attempts for a step failing with a transient error (connection refused, timeout).
    pub retries: u32,
    /// First back-off between attempts, in milliseconds; doubles each attempt.
    pub retry_backoff_ms: u64,
    /// How often a parked run (waiting for DNS) re-checks its condition, in seconds.
    pub recheck_secs: u64,
    /// How long a parked run waits in total before it fails (resumable), in seconds.
    pub park_deadline_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            step_timeout_secs: 300,
            retries: 3,
            retry_backoff_ms: 500,
            recheck_secs: 60,
            park_deadline_secs: 86_400,
        }
    }
}

impl EngineConfig {
    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_secs)
    }
}

/// The platform repo's layout and how a site is deployed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Folder holding one directory per site, inside the repo.
    pub domains_dir: String,
    /// The template site directory, inside `domains_dir` (copied, never forked).
    pub template: String,
    /// Webroot on the VPS (deploy.sh REMOTE_DEST); `{domain}` is replaced, `${VAR}` expanded.
    pub webroot: String,
    /// nginx site file on the VPS (deploy.sh REMOTE_NGINX_CONF); `{domain}` replaced.
    pub nginx_site: String,
    /// The platform's deploy command, run in the checkout without a shell; `{site}` replaced.
    pub command: String,
    /// Extra environment for the deploy command (`${VAR}` expanded), e.g. SSH_CONFIG.
    pub env: StringMap,
    /// Seconds the deploy command may take.
    pub timeout_secs: u64,
    /// The brand-mail config file in the repo (runbook: agency-brands.conf).
    pub brand_mail_file: String,
    /// Text the HTTP stub page contains: the deploy is checked by fetching it.
    pub stub_text: String,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            domains_dir: "deployments/@domains".into(),
            template: "_template/{provider}.com".into(),
            webroot: "/var/www/{domain}".into(),
            nginx_site: "/etc/nginx/sites-available/{domain}".into(),
            command: "./run deploy:{site} --from-local --nginx".into(),
            env: StringMap::new(),
            timeout_secs: 300,
            brand_mail_file: "deployments/@domains/quinn.www/scripts/agency-brands.conf".into(),
            stub_text: "coming soon".into(),
        }
    }
}

/// certbot on the VPS and the certificate checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertConfig {
    /// certbot on the VPS (program name or path).
    pub certbot: String,
    /// Extra certbot arguments (`${VAR}` expanded): ACME server, config/work/logs dirs,
    /// `--nginx-server-root`. Never user input.
    pub extra_args: Vec<String>,
    /// The nginx config test on the VPS, as an argument vector (`${VAR}` expanded).
    pub nginx_test: Vec<String>,
    /// Lock file on the VPS: certbot runs under `flock` on it, one at a time per VPS, whichever
    /// bot process starts it.
    pub lock_file: String,
    /// Seconds one certbot run (plus waiting for the lock) may take.
    pub timeout_secs: u64,
    /// PEM file of the roots a served certificate must chain to; the system's when unset.
    pub trusted_roots: Option<PathBuf>,
}

impl Default for CertConfig {
    fn default() -> Self {
        Self {
            certbot: "certbot".into(),
            extra_args: Vec::new(),
            nginx_test: vec!["nginx".into(), "-t".into()],
            lock_file: "/var/lock/onboard-bot-certbot.lock".into(),
            timeout_secs: 600,
            trusted_roots: None,
        }
    }
}

/// The runbook's success check, as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    /// The application's role (RLS applies to it): test rows are written as the tenant.
    app_db: RawDb,
    /// The setting RLS reads the tenant's user id from (`SET LOCAL app.user_id`).
    #[serde(default = "default_user_setting")]
    user_setting: String,
    /// The setting RLS reads the org context from.
    #[serde(default = "default_org_setting")]
    org_setting: String,
    /// Tenant-data tables to test, each with its INSERT ($1 user_id, $2 org_id, $3 marker).
    tables: Vec<TenantTable>,
    /// Provider portal URL; `{slug}` is the Provider, or the owning org for joining talent.
    /// Without it the portal check is reported as skipped.
    #[serde(default)]
    portal_url: Option<String>,
    /// Text the portal page must show; `{slug}` and `{display_name}` are replaced.
    #[serde(default = "default_portal_expect")]
    portal_expect: String,
    /// Text the Provider's own portal page must show for each org they are in (the context
    /// switcher); `{org_slug}`, `{org_name}`, `{role}`, `{slug}` and `{display_name}` are
    /// replaced. Without it (or without `portal_url`) that check is reported as skipped.
    #[serde(default)]
    portal_org_expect: Option<String>,
    /// PEM root the portal's certificate must chain to (the system's when unset).
    #[serde(default)]
    portal_ca: Option<String>,
    /// Slug of an existing tenant whose rows the cross-tenant read tries to see.
    other_tenant: String,
}

fn default_portal_expect() -> String {
    "{display_name}".into()
}

fn default_user_setting() -> String {
    "app.user_id".into()
}
fn default_org_setting() -> String {
    "app.org_id".into()
}

/// One tenant-data table the success check writes a test row into.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantTable {
    /// Table name (a plain SQL identifier).
    pub name: String,
    /// The INSERT, with `$1` user_id, `$2` org_id (may be NULL), `$3` the test-row marker text,
    /// ending in `RETURNING id`. Written by the operator; values are always bound.
    pub insert: String,
}

/// The validated success-check settings.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub app_db: DbConfig,
    pub user_setting: String,
    pub org_setting: String,
    pub tables: Vec<TenantTable>,
    pub portal_url: Option<String>,
    pub portal_expect: String,
    pub portal_org_expect: Option<String>,
    pub portal_ca: Option<PathBuf>,
    pub other_tenant: Slug,
}

/// A plain SQL identifier: safe to put in a statement as is.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

/// Rules for new Providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnboardingConfig {
    /// Slugs nobody may take (they collide with hostnames or the template).
    pub reserved_slugs: Vec<String>,
    /// Generic features a site may use (naming.md); never a provider-named one.
    pub features: Vec<String>,
    /// The feature used when none is given.
    pub default_feature: String,
    /// Top-level domain for the default `{slug}.com`-style domain.
    pub default_tld: String,
}

impl Default for OnboardingConfig {
    fn default() -> Self {
        Self {
            reserved_slugs: [
                "www",
                "api",
                "admin",
                "mail",
                "root",
                "ops",
                "template",
                "_template",
                "quinn-vps",
                "my",
            ]
            .map(String::from)
            .to_vec(),
            features: ["provider-site", "agency-site", "talent-page"]
                .map(String::from)
                .to_vec(),
            default_feature: "provider-site".into(),
            default_tld: "com".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVps {
    /// Short name shown in chat (`vps-0`).
    name: String,
    /// Host alias as written in the ssh config (`quinn-vps`).
    ssh_host: String,
    /// ssh_config file to use (relative to this file); the system's when absent.
    #[serde(default)]
    ssh_config: Option<String>,
    /// known_hosts file checked for the VPS's host key (relative to this file).
    known_hosts: String,
    /// The VPS's public IPv4: A records must point here.
    ipv4: std::net::Ipv4Addr,
    /// The VPS's IPv6, when it has one: AAAA records must point here.
    #[serde(default)]
    ipv6: Option<std::net::Ipv6Addr>,
    /// Seconds to wait for the SSH connection.
    #[serde(default = "default_connect_timeout")]
    connect_timeout_secs: u64,
}

/// DNS servers to ask.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Authoritative servers (`ip:port`); when empty, found through NS records.
    #[serde(default)]
    pub authoritative: Vec<std::net::SocketAddr>,
    /// Recursive resolvers to compare with (`ip:port`).
    #[serde(default)]
    pub resolvers: Vec<std::net::SocketAddr>,
    /// Seconds before one query times out.
    #[serde(default = "default_connect_timeout")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    /// The bot's own clone of the platform repo (relative to this file).
    checkout: String,
    /// The remote to clone from and push to.
    remote: String,
    /// Branch to fetch, commit on and push.
    #[serde(default = "default_branch")]
    branch: String,
    /// Commit author name.
    #[serde(default = "default_author_name")]
    author_name: String,
    /// Commit author email.
    #[serde(default = "default_author_email")]
    author_email: String,
}

fn default_branch() -> String {
    "main".into()
}
fn default_author_name() -> String {
    "onboard-bot".into()
}
fn default_author_email() -> String {
    "onboard-bot@localhost".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    /// Bot token source.
    token: SecretSource,
    /// The guild whose slash commands the bot registers.
    guild_id: u64,
    /// Channel where each onboarding gets its thread.
    ops_channel_id: u64,
    /// Roles whose members may approve production writes.
    approver_role_ids: Vec<u64>,
    /// Roles whose members may start, resume and cancel runs and read them (`/status`,
    /// `/audit`); approvers may too. Empty: approvers only.
    #[serde(default)]
    operator_role_ids: Vec<u64>,
    /// When true, the person who started a run may not approve its production writes.
    #[serde(default = "default_true")]
    two_person_rule: bool,
    /// Discord API base URL; the tests point it at the fake Discord.
    #[serde(default = "default_discord_base")]
    api_base: String,
    /// Channel where the audit chain's head is posted (the anchor); the ops channel if unset.
    #[serde(default)]
    audit_channel_id: Option<u64>,
}

fn default_true() -> bool {
    true
}
fn default_discord_base() -> String {
    "https://discord.com".into()
}

/// A validated database connection.
#[derive(Clone)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: SecretString,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{} (password redacted)",
            self.user, self.host, self.port, self.database
        )
    }
}

impl DbConfig {
    /// Connection options for sqlx; the password goes in as a value, never into a URL string
    /// that could be logged.
    pub fn connect_options(&self) -> sqlx::postgres::PgConnectOptions {
        sqlx::postgres::PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(self.password.expose_secret())
            .database(&self.database)
            .application_name("onboard-bot")
    }

    /// Human-readable target without the password.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// The VPS reached over SSH.
#[derive(Debug, Clone)]
pub struct VpsConfig {
    pub name: String,
    pub ssh_host: String,
    pub ssh_config: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub ipv4: std::net::Ipv4Addr,
    pub ipv6: Option<std::net::Ipv6Addr>,
    pub connect_timeout: Duration,
}

/// The bot's checkout of the platform repo.
#[derive(Clone)]
pub struct RepoConfig {
    pub checkout: PathBuf,
    /// May hold credentials (`https://user:token@host/...`): shown only through
    /// [`crate::redact::scrub_url_credentials`].
    pub remote: String,
    pub branch: String,
    pub author_name: String,
    pub author_email: String,
}

impl std::fmt::Debug for RepoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoConfig")
            .field("checkout", &self.checkout)
            .field(
                "remote",
                &crate::redact::scrub_url_credentials(&self.remote),
            )
            .field("branch", &self.branch)
            .field("author_name", &self.author_name)
            .field("author_email", &self.author_email)
            .finish()
    }
}

/// Discord front-end settings.
#[derive(Clone)]
pub struct DiscordConfig {
    pub token: SecretString,
    pub guild_id: u64,
    pub ops_channel_id: u64,
    pub approver_role_ids: Vec<u64>,
    /// Who may start, resume and cancel runs besides the approvers.
    pub operator_role_ids: Vec<u64>,
    pub two_person_rule: bool,
    pub api_base: String,
    pub audit_channel_id: Option<u64>,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"[redacted]")
            .field("guild_id", &self.guild_id)
            .field("ops_channel_id", &self.ops_channel_id)
            .field("approver_role_ids", &self.approver_role_ids)
            .field("operator_role_ids", &self.operator_role_ids)
            .field("two_person_rule", &self.two_person_rule)
            .field("api_base", &self.api_base)
            .field("audit_channel_id", &self.audit_channel_id)
            .finish()
    }
}

/// The validated configuration every part of the bot reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages.
    pub source: PathBuf,
    pub environment: Environment,
    pub state_db: DbConfig,
    pub tenant_db: DbConfig,
    /// `host:port` the authoritative primary reports for itself.
    pub tenant_authoritative: String,
    pub engine: EngineConfig,
    pub onboarding: OnboardingConfig,
    pub vps: VpsConfig,
    pub dns: DnsConfig,
    pub repo: RepoConfig,
    /// The brand-mail pattern: which MX, SPF, DKIM and DMARC records a mail plan needs.
    pub mail: crate::dnscheck::MailPattern,
    pub deploy: DeployConfig,
    pub cert: CertConfig,
    /// The success check; /verify refuses to run without it.
    pub verify: Option<VerifyConfig>,
    pub discord: Option<DiscordConfig>,
    /// The `/healthz` and `/metrics` listener of `serve`.
    pub ops: OpsConfig,
    /// The audit chain's key.
    pub audit_key: crate::state::audit::AuditKey,
    /// How often `serve` anchors the chain's head; `None` when off.
    pub anchor_every: Option<Duration>,
    /// The owner role for `migrate`, when the config names one (the environment may instead).
    pub migrate: Option<MigrateConfig>,
    /// The environment variables secrets were read from (`{env: VAR}`): `main` removes them
    /// from the bot's own environment so no process it starts inherits them.
    pub secret_env_vars: Vec<String>,
    /// Every secret read through a `{env:}`/`{file:}` source, whichever key it is for: what
    /// [`Config::secret_values`] starts from, so a new secret key cannot be left out of it.
    resolved_secrets: Vec<SecretString>,
}

/// Environment variables that name the owner role for `migrate`; they win over `migrate:`.
pub const MIGRATE_USER_ENV: &str = "ONBOARD_BOT_MIGRATE_USER";
pub const MIGRATE_PASSWORD_ENV: &str = "ONBOARD_BOT_MIGRATE_PASSWORD";

/// Who runs migrations: the owner of the bot's tables.
#[derive(Clone)]
pub struct MigrateConfig {
    pub user: String,
    pub password: SecretString,
}

impl std::fmt::Debug for MigrateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MigrateConfig({}, password redacted)", self.user)
    }
}

impl Config {
    /// Reads and validates the file. Every error names the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}: check the path given with --config or ONBOARD_BOT_CONFIG", path.display()))?;
        Self::parse(&text, path)
    }

    /// Validates `text` as if read from `path` (relative paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let file = path.display().to_string();
        let raw: RawConfig = serde_norway::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            anyhow!("{file}{at}: {e}. See config/bot.example.yaml for every key and its meaning")
        })?;
        // Relative paths in the file resolve against its folder, made absolute once so that
        // commands run elsewhere (git in the checkout's parent) see the same path.
        let base = std::path::absolute(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .with_context(|| format!("resolving the folder of {file}"))?;
        let cx = Resolver {
            file: &file,
            base: &base,
            secrets: Default::default(),
            env_vars: Default::default(),
        };

        let state_db = cx.db("state_db", &raw.state_db)?;
        let tenant_db = cx.db("tenant_db", &raw.tenant_db.db)?;
        if raw
            .tenant_db
            .authoritative
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            bail!(
                "{file}: tenant_db.authoritative is `{}`; write it as host:port, e.g. 10.0.0.5:5432",
                raw.tenant_db.authoritative
            );
        }
        let onboarding = raw.onboarding;
        for feature in &onboarding.features {
            Slug::parse(feature)
                .map_err(|e| anyhow!("{file}: onboarding.features: `{feature}` {}", e.message))?;
        }
        if !onboarding.features.contains(&onboarding.default_feature) {
            bail!(
                "{file}: onboarding.default_feature `{}` is not in onboarding.features",
                onboarding.default_feature
            );
        }
        DomainName::parse(&format!("x.{}", onboarding.default_tld))
            .map_err(|e| anyhow!("{file}: onboarding.default_tld: {}", e.message))?;
        if raw.engine.retries > 20 || raw.engine.step_timeout_secs == 0 {
            bail!("{file}: engine.retries must be at most 20 and engine.step_timeout_secs above 0");
        }
        let vps = VpsConfig {
            name: raw.vps.name,
            ssh_host: raw.vps.ssh_host,
            ssh_config: raw
                .vps
                .ssh_config
                .as_deref()
                .map(|p| cx.path("vps.ssh_config", p))
                .transpose()?,
            known_hosts: cx.path("vps.known_hosts", &raw.vps.known_hosts)?,
            ipv4: raw.vps.ipv4,
            ipv6: raw.vps.ipv6,
            connect_timeout: Duration::from_secs(raw.vps.connect_timeout_secs),
        };
        let repo = RepoConfig {
            checkout: cx.path("repo.checkout", &raw.repo.checkout)?,
            remote: {
                let remote = expand_env(&raw.repo.remote)
                    .map_err(|e| anyhow!("{file}: repo.remote: {e}"))?;
                // A local path written relative to this file; URLs and scp-style remotes stay.
                if remote.starts_with("./") || remote.starts_with("../") {
                    base.join(&remote).display().to_string()
                } else {
                    remote
                }
            },
            branch: raw.repo.branch,
            author_name: raw.repo.author_name,
            author_email: raw.repo.author_email,
        };
        let audit_key = cx.secret("audit.key", &raw.audit.key)?;
        if audit_key.expose_secret().len() < 16 {
            bail!(
                "{file}: audit.key is shorter than 16 characters: use a long random value (e.g. `openssl rand -hex 32`)"
            );
        }
        // The owner role from the environment wins over the file (production keeps the owner's
        // password out of the runtime config); read here, so that like every `{env:}` secret
        // it is redacted and removed from the bot's own environment.
        let migrate = match (
            std::env::var(MIGRATE_USER_ENV)
                .ok()
                .filter(|v| !v.is_empty()),
            std::env::var_os(MIGRATE_PASSWORD_ENV).is_some(),
        ) {
            (Some(user), true) => Some(MigrateConfig {
                user,
                password: cx.secret(
                    MIGRATE_PASSWORD_ENV,
                    &SecretSource {
                        env: Some(MIGRATE_PASSWORD_ENV.into()),
                        file: None,
                    },
                )?,
            }),
            (None, false) => raw
                .migrate
                .as_ref()
                .map(|m| -> anyhow::Result<MigrateConfig> {
                    Ok(MigrateConfig {
                        user: m.user.clone(),
                        password: cx.secret("migrate.password", &m.password)?,
                    })
                })
                .transpose()?,
            _ => bail!(
                "{file}: set both {MIGRATE_USER_ENV} and {MIGRATE_PASSWORD_ENV} (the owner role of the bot's tables), or neither"
            ),
        };
        let discord = raw
            .discord
            .map(|d| -> anyhow::Result<DiscordConfig> {
                Ok(DiscordConfig {
                    token: cx.secret("discord.token", &d.token)?,
                    guild_id: d.guild_id,
                    ops_channel_id: d.ops_channel_id,
                    approver_role_ids: d.approver_role_ids,
                    operator_role_ids: d.operator_role_ids,
                    two_person_rule: d.two_person_rule,
                    api_base: d.api_base,
                    audit_channel_id: d.audit_channel_id,
                })
            })
            .transpose()?;
        Ok(Self {
            source: path.to_path_buf(),
            environment: raw.environment,
            state_db,
            tenant_db,
            tenant_authoritative: raw.tenant_db.authoritative,
            engine: raw.engine,
            onboarding,
            vps,
            dns: raw.dns,
            repo,
            mail: raw.mail,
            deploy: {
                let mut d = raw.deploy;
                d.webroot =
                    expand_env(&d.webroot).map_err(|e| anyhow!("{file}: deploy.webroot: {e}"))?;
                d.nginx_site = expand_env(&d.nginx_site)
                    .map_err(|e| anyhow!("{file}: deploy.nginx_site: {e}"))?;
                for (k, v) in d.env.iter_mut() {
                    *v = expand_env(v).map_err(|e| anyhow!("{file}: deploy.env.{k}: {e}"))?;
                }
                d
            },
            cert: {
                let mut c = raw.cert;
                let exp = |key: &str, v: &str| {
                    expand_env(v).map_err(|e| anyhow!("{file}: cert.{key}: {e}"))
                };
                c.extra_args = c
                    .extra_args
                    .iter()
                    .map(|a| exp("extra_args", a))
                    .collect::<Result<_, _>>()?;
                c.nginx_test = c
                    .nginx_test
                    .iter()
                    .map(|a| exp("nginx_test", a))
                    .collect::<Result<_, _>>()?;
                c.lock_file = exp("lock_file", &c.lock_file)?;
                c.trusted_roots = c
                    .trusted_roots
                    .as_deref()
                    .map(|p| cx.path("cert.trusted_roots", &p.to_string_lossy()))
                    .transpose()?;
                c
            },
            verify: raw
                .verify
                .map(|v| -> anyhow::Result<VerifyConfig> {
                    for setting in [&v.user_setting, &v.org_setting] {
                        let ok = setting.split('.').count() == 2 && setting.split('.').all(is_identifier);
                        anyhow::ensure!(ok, "{file}: verify: `{setting}` is not a custom setting name like app.user_id");
                    }
                    // No table, no test row and no cross-tenant read: the check would pass
                    // having checked nothing.
                    anyhow::ensure!(
                        !v.tables.is_empty(),
                        "{file}: verify.tables is empty: list at least one tenant-data table (name and insert) for the success check to write a test row into and read across tenants"
                    );
                    for t in &v.tables {
                        anyhow::ensure!(is_identifier(&t.name), "{file}: verify.tables: `{}` is not a plain table name", t.name);
                        let insert = t.insert.to_ascii_lowercase();
                        anyhow::ensure!(
                            insert.trim_start().starts_with(&format!("insert into {} ", t.name))
                                && ["$1", "$2", "$3"].iter().all(|p| insert.contains(p))
                                && insert.trim_end().trim_end_matches(';').ends_with("returning id"),
                            "{file}: verify.tables.{}.insert must be `INSERT INTO {} ... $1 ... $2 ... $3 ... RETURNING id`",
                            t.name,
                            t.name
                        );
                    }
                    Ok(VerifyConfig {
                        app_db: cx.db("verify.app_db", &v.app_db)?,
                        user_setting: v.user_setting,
                        org_setting: v.org_setting,
                        tables: v.tables,
                        portal_url: v.portal_url,
                        portal_expect: v.portal_expect,
                        portal_org_expect: v.portal_org_expect,
                        portal_ca: v.portal_ca.as_deref().map(|p| cx.path("verify.portal_ca", p)).transpose()?,
                        other_tenant: Slug::parse(&v.other_tenant).map_err(|e| anyhow!("{file}: verify.other_tenant: {e}"))?,
                    })
                })
                .transpose()?,
            discord,
            ops: raw.ops,
            audit_key: crate::state::audit::AuditKey::new(audit_key),
            anchor_every: (raw.audit.anchor_every_secs > 0)
                .then(|| Duration::from_secs(raw.audit.anchor_every_secs)),
            migrate,
            secret_env_vars: cx.env_vars.take(),
            resolved_secrets: cx.secrets.take(),
        })
    }

    /// Every secret value in this config, so output paths can assert none leaks and redact
    /// them: every `{env:}`/`{file:}` secret (database passwords, the app DB's, the Discord
    /// token), the credentials written into `repo.remote`, and the `deploy.env` values whose
    /// name looks secret (`..._TOKEN`, `..._PASSWORD`, ...).
    pub fn secret_values(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .resolved_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        out.extend(crate::redact::url_credentials(&self.repo.remote));
        out.extend(
            self.deploy
                .env
                .iter()
                .filter(|(k, _)| crate::redact::looks_secret(k))
                .map(|(_, v)| v.as_str()),
        );
        // Longest first: a secret containing another is redacted whole.
        out.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        out.dedup();
        out
    }
}

struct Resolver<'a> {
    file: &'a str,
    base: &'a Path,
    /// Every secret resolved so far.
    secrets: std::cell::RefCell<Vec<SecretString>>,
    /// The environment variables they came from.
    env_vars: std::cell::RefCell<Vec<String>>,
}

impl Resolver<'_> {
    fn db(&self, key: &str, raw: &RawDb) -> anyhow::Result<DbConfig> {
        Ok(DbConfig {
            host: expand_env(&raw.host).map_err(|e| anyhow!("{}: {key}.host: {e}", self.file))?,
            port: raw.port,
            user: raw.user.clone(),
            database: raw.database.clone(),
            password: self.secret(&format!("{key}.password"), &raw.password)?,
            connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
        })
    }

    fn path(&self, key: &str, raw: &str) -> anyhow::Result<PathBuf> {
        let expanded = expand_env(raw).map_err(|e| anyhow!("{}: {key}: {e}", self.file))?;
        let p = PathBuf::from(expanded);
        Ok(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        })
    }

    fn secret(&self, key: &str, source: &SecretSource) -> anyhow::Result<SecretString> {
        let value = match (&source.env, &source.file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                anyhow!("{}: {key} comes from the environment variable {var}, which is not set: export it before starting", self.file)
            })?,
            (None, Some(p)) => {
                let path = self.path(key, p)?;
                std::fs::read_to_string(&path)
                    .map_err(|e| anyhow!("{}: {key}: cannot read secret file {}: {e}", self.file, path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned()
            }
            _ => bail!("{}: {key} needs exactly one of `env: VAR` or `file: path`", self.file),
        };
        if value.is_empty() {
            bail!("{}: {key} is empty", self.file);
        }
        if let Some(var) = &source.env {
            self.env_vars.borrow_mut().push(var.clone());
        }
        let secret = SecretString::from(value);
        self.secrets.borrow_mut().push(secret.clone());
        Ok(secret)
    }
}

/// Expands `${VAR}` from the environment; an unset variable is an error naming it.
pub fn expand_env(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{raw}` has `${{` without a closing `}}`"))?;
        let var = &after[..end];
        let value = std::env::var(var)
            .map_err(|_| format!("`{raw}` uses ${{{var}}}, which is not set in the environment"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Typed map of free-form values in the config (used for extra environment of commands).
pub type StringMap = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
environment: lab
state_db: {host: 127.0.0.1, user: bot, database: bot, password: {env: OB_TEST_PW}}
tenant_db: {host: 127.0.0.1, user: w, database: platform, password: {env: OB_TEST_PW}, authoritative: "127.0.0.1:5432"}
vps: {name: vps-0, ssh_host: quinn-vps, known_hosts: kh, ipv4: 127.0.0.1}
dns: {authoritative: ["127.0.0.1:53"]}
repo: {checkout: co, remote: /tmp/origin.git}
audit: {key: {env: OB_TEST_AUDIT_KEY}}
"#;

    #[test]
    fn loads_and_redacts() {
        // SAFETY-free: tests in this module use a variable nobody else reads.
        unsafe { std::env::set_var("OB_TEST_PW", "s3cret-value-xyz") };
        unsafe { std::env::set_var("OB_TEST_AUDIT_KEY", "audit-key-for-unit-tests") };
        let cfg = Config::parse(MINIMAL, Path::new("/etc/ob/bot.yaml")).unwrap();
        assert_eq!(cfg.repo.checkout, PathBuf::from("/etc/ob/co"));
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cret-value-xyz"), "{debug}");
        assert!(cfg.secret_values().contains(&"s3cret-value-xyz"));
        assert!(cfg.secret_values().contains(&"audit-key-for-unit-tests"));
    }

    #[test]
    fn every_secret_the_config_holds_is_listed() {
        // SAFETY-free: variables nobody else reads.
        unsafe {
            std::env::set_var("OB_TEST_PW", "s3cret-value-xyz");
            std::env::set_var("OB_TEST_DISCORD", "discord-token-value");
            std::env::set_var("OB_TEST_DEPLOY", "deploy-token-value");
            std::env::set_var("OB_TEST_AUDIT_KEY", "audit-key-for-unit-tests");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.pass"), "app-db-value\n").unwrap();
        let text = MINIMAL.replace(
            "remote: /tmp/origin.git",
            "remote: \"https://bot:remote-token-value@git.example.com/p.git\"",
        ) + r#"
deploy: {env: {SSH_CONFIG: /etc/ssh_config, DEPLOY_TOKEN: "${OB_TEST_DEPLOY}"}}
verify:
  app_db: {host: h, user: app, database: p, password: {file: app.pass}}
  tables: [{name: bookings, insert: "INSERT INTO bookings (user_id, org_id, note) VALUES ($1, $2, $3) RETURNING id"}]
  other_tenant: quinn
discord: {token: {env: OB_TEST_DISCORD}, guild_id: 1, ops_channel_id: 2, approver_role_ids: [3]}
"#;
        let cfg = Config::parse(&text, &dir.path().join("bot.yaml")).unwrap();
        let mut values = cfg.secret_values();
        values.sort_unstable();
        assert_eq!(
            values,
            [
                "app-db-value",
                "audit-key-for-unit-tests",
                "deploy-token-value",
                "discord-token-value",
                "remote-token-value",
                "s3cret-value-xyz"
            ]
        );
        assert_eq!(
            cfg.secret_env_vars,
            [
                "OB_TEST_PW",
                "OB_TEST_PW",
                "OB_TEST_AUDIT_KEY",
                "OB_TEST_DISCORD"
            ]
        );
        let debug = format!("{cfg:?}");
        for v in [
            "app-db-value",
            "discord-token-value",
            "s3cret-value-xyz",
            "remote-token-value",
        ] {
            assert!(!debug.contains(v), "{debug}");
        }
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let text = format!("{MINIMAL}\nbogus_key: 1\n");
        let err = Config::parse(&text, Path::new("bot.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bot.yaml") && err.contains("bogus_key"),
            "{err}"
        );
    }

    #[test]
    fn missing_env_secret_is_explained() {
        let text = MINIMAL.replace("OB_TEST_PW", "OB_TEST_UNSET_VAR");
        let err = Config::parse(&text, Path::new("bot.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("state_db.password") && err.contains("OB_TEST_UNSET_VAR"),
            "{err}"
        );
    }

    #[test]
    fn a_success_check_without_tables_is_refused() {
        // SAFETY-free: tests in this module use a variable nobody else reads.
        unsafe { std::env::set_var("OB_TEST_PW", "s3cret-value-xyz") };
        unsafe { std::env::set_var("OB_TEST_AUDIT_KEY", "audit-key-for-unit-tests") };
        let verify = |tables: &str| {
            format!(
                "{MINIMAL}verify:\n  app_db: {{host: 127.0.0.1, user: app, database: platform, password: {{env: OB_TEST_PW}}}}\n  tables: {tables}\n  other_tenant: quinn\n"
            )
        };
        // With no table the check would write and read nothing, and pass.
        let err = Config::parse(&verify("[]"), Path::new("bot.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bot.yaml") && err.contains("verify.tables"),
            "{err}"
        );
        let one = r#"[{name: bookings, insert: "INSERT INTO bookings (user_id, org_id, note) VALUES ($1, $2, $3) RETURNING id"}]"#;
        Config::parse(&verify(one), Path::new("bot.yaml")).unwrap();
    }

    #[test]
    fn expands_env() {
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert!(
            expand_env("${OB_SURELY_UNSET_1}/x")
                .unwrap_err()
                .contains("OB_SURELY_UNSET_1")
        );
    }
}
