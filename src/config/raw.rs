//! The file as serde reads it: `Raw*` shapes with `deny_unknown_fields` and their defaults.
//! [`super::Config::parse`] validates them into the types of `sections.rs`.

use serde::Deserialize;

use super::sections::{
    ApprovalsConfig, CertConfig, DeployConfig, DnsConfig, EngineConfig, OnboardingConfig,
    OpsConfig, TenantTable,
};
use super::{Environment, StringMap};

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

pub(crate) fn default_pg_port() -> u16 {
    5432
}
pub(crate) fn default_connect_timeout() -> u64 {
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
pub(crate) struct RawConfig {
    pub(crate) environment: Environment,
    pub(crate) state_db: RawDb,
    pub(crate) tenant_db: RawTenantDb,
    #[serde(default)]
    pub(crate) engine: EngineConfig,
    #[serde(default)]
    pub(crate) approvals: ApprovalsConfig,
    #[serde(default)]
    pub(crate) onboarding: OnboardingConfig,
    /// The fleet: a list of servers, or (the form before fleets) one mapping.
    #[serde(deserialize_with = "one_or_many")]
    pub(crate) vps: Vec<RawVps>,
    pub(crate) dns: RawDns,
    pub(crate) repo: RawRepo,
    #[serde(default)]
    pub(crate) mail: crate::dnscheck::MailPattern,
    #[serde(default)]
    pub(crate) deploy: DeployConfig,
    #[serde(default)]
    pub(crate) cert: CertConfig,
    #[serde(default)]
    pub(crate) verify: Option<RawVerify>,
    #[serde(default)]
    pub(crate) discord: Option<RawDiscord>,
    #[serde(default)]
    pub(crate) ops: OpsConfig,
    pub(crate) audit: RawAudit,
    #[serde(default)]
    pub(crate) migrate: Option<RawMigrate>,
}

/// `dns:` as written: the servers to ask, and the zones the bot may change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    #[serde(flatten)]
    pub(crate) servers: DnsConfig,
    /// Zones the bot writes its records into itself (RFC 2136 updates signed with TSIG).
    #[serde(default)]
    pub(crate) update: Vec<RawDnsUpdateZone>,
}

/// One zone the bot may change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDnsUpdateZone {
    /// The zone's apex, e.g. `merche-biche.com`: its domain and every name under it.
    pub(crate) zone: String,
    /// `ip:port` of the zone's primary server, which takes the updates.
    pub(crate) server: std::net::SocketAddr,
    /// The TSIG key the updates are signed with.
    pub(crate) key: RawTsigKey,
}

/// A TSIG key as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTsigKey {
    /// The key's name, as the server knows it.
    pub(crate) name: String,
    /// `hmac-sha256` (the default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_tsig_algorithm")]
    pub(crate) algorithm: String,
    /// The key itself, base64 as knot and BIND print it: `{env: VAR}` or `{file: path}`.
    pub(crate) secret: SecretSource,
}

pub(crate) fn default_tsig_algorithm() -> String {
    "hmac-sha256".into()
}

/// The audit trail's key and anchors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    /// The secret every event's hash is keyed with (HMAC-SHA256): `{env: VAR}` or `{file: path}`.
    /// Without it nobody can append an event that verifies, so keep it out of the database
    /// host. Changing it makes the existing chain fail to verify.
    pub(crate) key: SecretSource,
    /// How often `serve` posts the chain's head to the audit channel, in seconds (besides at
    /// the end of every run); 0 turns the schedule off.
    #[serde(default = "default_anchor_every")]
    pub(crate) anchor_every_secs: u64,
}

pub(crate) fn default_anchor_every() -> u64 {
    3600
}

/// The owner role that `migrate` uses; the runtime role (`state_db.user`) is not the owner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMigrate {
    /// Role that owns the bot's tables.
    pub(crate) user: String,
    /// Its password: `{env: VAR}` or `{file: path}`.
    pub(crate) password: SecretSource,
}

/// The runbook's success check, as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVerify {
    /// The application's role (RLS applies to it): test rows are written as the tenant.
    pub(crate) app_db: RawDb,
    /// The setting RLS reads the tenant's user id from (`SET LOCAL app.user_id`).
    #[serde(default = "default_user_setting")]
    pub(crate) user_setting: String,
    /// The setting RLS reads the org context from.
    #[serde(default = "default_org_setting")]
    pub(crate) org_setting: String,
    /// Tenant-data tables to test, each with its INSERT ($1 user_id, $2 org_id, $3 marker).
    pub(crate) tables: Vec<TenantTable>,
    /// Provider portal URL; `{slug}` is the Provider, or the owning org for joining talent.
    /// Without it the portal check is reported as skipped.
    #[serde(default)]
    pub(crate) portal_url: Option<String>,
    /// Text the portal page must show; `{slug}` and `{display_name}` are replaced.
    #[serde(default = "default_portal_expect")]
    pub(crate) portal_expect: String,
    /// Text the Provider's own portal page must show for each org they are in (the context
    /// switcher); `{org_slug}`, `{org_name}`, `{role}`, `{slug}` and `{display_name}` are
    /// replaced. Without it (or without `portal_url`) that check is reported as skipped.
    #[serde(default)]
    pub(crate) portal_org_expect: Option<String>,
    /// PEM root the portal's certificate must chain to (the system's when unset).
    #[serde(default)]
    pub(crate) portal_ca: Option<String>,
    /// Slug of an existing tenant whose rows the cross-tenant read tries to see.
    pub(crate) other_tenant: String,
}

pub(crate) fn default_portal_expect() -> String {
    "{display_name}".into()
}

pub(crate) fn default_user_setting() -> String {
    "app.user_id".into()
}
pub(crate) fn default_org_setting() -> String {
    "app.org_id".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVps {
    /// Short name shown in chat (`vps-0`).
    pub(crate) name: String,
    /// Host alias as written in the ssh config (`quinn-vps`).
    pub(crate) ssh_host: String,
    /// ssh_config file to use (relative to this file); the system's when absent.
    #[serde(default)]
    pub(crate) ssh_config: Option<String>,
    /// known_hosts file checked for the VPS's host key (relative to this file).
    pub(crate) known_hosts: String,
    /// The VPS's public IPv4: A records must point here.
    pub(crate) ipv4: std::net::Ipv4Addr,
    /// The VPS's IPv6, when it has one: AAAA records must point here.
    #[serde(default)]
    pub(crate) ipv6: Option<std::net::Ipv6Addr>,
    /// Seconds to wait for the SSH connection.
    #[serde(default = "default_connect_timeout")]
    pub(crate) connect_timeout_secs: u64,
    /// Variables of this VPS for `${NAME}` in the VPS-side values of `deploy:` and `cert:`
    /// (looked up here first, then in the environment).
    #[serde(default)]
    pub(crate) vars: StringMap,
}

/// `vps:` as a list of servers, or as the single mapping configs had before the fleet.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RawVps>, D::Error> {
    use serde::de::Error;
    match serde_norway::Value::deserialize(d)? {
        v @ serde_norway::Value::Mapping(_) => Ok(vec![
            serde_norway::from_value(v).map_err(|e| D::Error::custom(format!("vps: {e}")))?,
        ]),
        v @ serde_norway::Value::Sequence(_) => {
            serde_norway::from_value(v).map_err(|e| D::Error::custom(format!("vps: {e}")))
        }
        _ => Err(D::Error::custom(
            "vps: give a list of servers, each `{name, ssh_host, known_hosts, ipv4, ...}`",
        )),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRepo {
    /// The bot's own clone of the platform repo (relative to this file).
    pub(crate) checkout: String,
    /// The remote to clone from and push to.
    pub(crate) remote: String,
    /// Branch to fetch, commit on and push.
    #[serde(default = "default_branch")]
    pub(crate) branch: String,
    /// Commit author name.
    #[serde(default = "default_author_name")]
    pub(crate) author_name: String,
    /// Commit author email.
    #[serde(default = "default_author_email")]
    pub(crate) author_email: String,
}

pub(crate) fn default_branch() -> String {
    "main".into()
}
pub(crate) fn default_author_name() -> String {
    "onboard-bot".into()
}
pub(crate) fn default_author_email() -> String {
    "onboard-bot@localhost".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiscord {
    /// Bot token source.
    pub(crate) token: SecretSource,
    /// The guild whose slash commands the bot registers.
    pub(crate) guild_id: u64,
    /// Channel where each onboarding gets its thread.
    pub(crate) ops_channel_id: u64,
    /// Roles whose members may approve production writes.
    pub(crate) approver_role_ids: Vec<u64>,
    /// Roles whose members may start, resume and cancel runs and read them (`/status`,
    /// `/audit`); approvers may too. Empty: approvers only.
    #[serde(default)]
    pub(crate) operator_role_ids: Vec<u64>,
    /// When true, the person who started a run may not approve its production writes.
    #[serde(default = "default_true")]
    pub(crate) two_person_rule: bool,
    /// Discord API base URL; the tests point it at the fake Discord.
    #[serde(default = "default_discord_base")]
    pub(crate) api_base: String,
    /// Channel where the audit chain's head is posted (the anchor); the ops channel if unset.
    #[serde(default)]
    pub(crate) audit_channel_id: Option<u64>,
}

pub(crate) fn default_true() -> bool {
    true
}
pub(crate) fn default_discord_base() -> String {
    "https://discord.com".into()
}
