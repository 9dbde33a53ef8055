//! The validated sections of the config that the rest of the bot reads. Those serde can read
//! as they are (engine, deploy, cert, ...) derive `Deserialize` here; the others are built
//! from their `Raw*` shape in `raw.rs` by [`super::Config::parse`].

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use hmac::{Hmac, KeyInit};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use super::StringMap;
use crate::domain::Slug;

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

/// How long a plan waits for its decision, and who is reminded meanwhile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Seconds a plan waits for a decision before its approval expires: the run stops as
    /// `expired` (resumable: `/resume` asks again) and its buttons are disabled. At least 1.
    pub ttl_secs: u64,
    /// Seconds after which the approver roles are reminded, once, in the run's thread; 0: never.
    /// Below `ttl_secs`.
    pub remind_after_secs: u64,
    /// How many distinct people must approve a plan before it is applied: `default` for every
    /// production write, then a count per step name (`create-org: 2`). Each count 1 to
    /// [`MAX_REQUIRED`]; a missing `default` is 1.
    pub required: std::collections::BTreeMap<String, u32>,
}

/// The most approvers a step may require: more is a typo, not a policy.
pub const MAX_REQUIRED: u32 = 9;

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 86_400,
            remind_after_secs: 3_600,
            required: std::collections::BTreeMap::new(),
        }
    }
}

impl ApprovalsConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    /// When to remind, if at all.
    pub fn remind_after(&self) -> Option<Duration> {
        (self.remind_after_secs > 0).then(|| Duration::from_secs(self.remind_after_secs))
    }

    /// How many distinct approvers a plan of `step` needs (at least 1).
    pub fn required_for(&self, step: &str) -> u32 {
        self.required
            .get(step)
            .or_else(|| self.required.get("default"))
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    /// The step names `required` gives a count for (`default` left out).
    pub fn required_steps(&self) -> impl Iterator<Item = &str> {
        self.required
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "default")
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
    /// Whether an abandon revokes the onboarding's certificate at the CA before deleting it
    /// (`certbot revoke --delete-after-revoke`); off: it is only deleted from the VPS.
    pub revoke_on_abandon: bool,
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
            revoke_on_abandon: false,
        }
    }
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
    #[serde(default = "super::raw::default_connect_timeout")]
    pub timeout_secs: u64,
}

/// The zones the bot may change (`dns.update`), each with its primary server and TSIG key.
#[derive(Debug, Clone, Default)]
pub struct DnsUpdateConfig {
    pub zones: Vec<DnsUpdateZone>,
}

impl DnsUpdateConfig {
    /// The listed zone `domain` belongs to (the longest match); `None` when the bot may not
    /// change its records.
    pub fn zone_for(&self, domain: &str) -> Option<&DnsUpdateZone> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.zones
            .iter()
            .filter(|z| domain == z.zone || domain.ends_with(&format!(".{}", z.zone)))
            .max_by_key(|z| z.zone.len())
    }
}

/// One zone the bot writes records into.
#[derive(Debug, Clone)]
pub struct DnsUpdateZone {
    /// The apex, lowercase, without the final dot.
    pub zone: String,
    /// The primary server, which takes the updates.
    pub server: std::net::SocketAddr,
    pub key: TsigKey,
}

/// A TSIG key: its name, its algorithm, and the secret (never printed).
#[derive(Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    /// Base64, as configured; decoded when signing.
    pub secret: SecretString,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TsigKey({} {}, secret redacted)",
            self.name, self.algorithm
        )
    }
}

impl TsigKey {
    /// The key's bytes (the config checked the base64 when it loaded).
    pub fn secret_bytes(&self) -> Vec<u8> {
        data_encoding::BASE64
            .decode(self.secret.expose_secret().trim().as_bytes())
            .unwrap_or_default()
    }
}

/// The TSIG algorithms the bot signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha384" => Some(Self::HmacSha384),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }
}

impl std::fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

/// One VPS of the fleet, reached over SSH.
#[derive(Debug, Clone)]
pub struct VpsConfig {
    pub name: crate::domain::VpsName,
    pub ssh_host: String,
    pub ssh_config: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub ipv4: std::net::Ipv4Addr,
    pub ipv6: Option<std::net::Ipv6Addr>,
    pub connect_timeout: Duration,
    /// `deploy:` with this VPS's `vars` put into its VPS-side values (webroot, nginx_site, env).
    pub deploy: DeployConfig,
    /// `cert:` with this VPS's `vars` put into its VPS-side values (extra_args, nginx_test,
    /// lock_file): certbot's lock is per VPS.
    pub cert: CertConfig,
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

/// `audit.key`: the secret the audit chain's hashes are keyed with. Never printed. Here, with
/// the config it is read from, so that the config does not depend on the state module.
#[derive(Clone)]
pub struct AuditKey(Arc<SecretString>);

impl AuditKey {
    pub fn new(secret: SecretString) -> Self {
        Self(Arc::new(secret))
    }

    /// The keyed MAC every event's hash is computed with (`state::audit`).
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length")
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}
