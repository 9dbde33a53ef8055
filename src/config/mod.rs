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

mod raw;
mod resolve;
mod sections;

use raw::RawConfig;
pub use raw::{RawDb, RawTenantDb, SecretSource};
use resolve::Resolver;
pub use resolve::expand_env;
pub use sections::*;

/// Where the bot runs: production needs the Discord front-end or `--break-glass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Lab,
    Staging,
    Production,
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
    /// Expiry and reminders of approvals.
    pub approvals: ApprovalsConfig,
    pub onboarding: OnboardingConfig,
    /// The fleet, in the config's order (never empty): the first is the default VPS.
    pub fleet: Vec<VpsConfig>,
    pub dns: DnsConfig,
    /// `dns.update`: the zones the bot writes its records into itself.
    pub dns_update: DnsUpdateConfig,
    pub repo: RepoConfig,
    /// The brand-mail pattern: which MX, SPF, DKIM and DMARC records a mail plan needs.
    pub mail: crate::dnscheck::MailPattern,
    /// `deploy:` as resolved for the first VPS; the VPS-side values of a run's VPS are in
    /// its [`VpsConfig::deploy`].
    pub deploy: DeployConfig,
    /// `cert:` as resolved for the first VPS; see [`VpsConfig::cert`].
    pub cert: CertConfig,
    /// The success check; /verify refuses to run without it.
    pub verify: Option<VerifyConfig>,
    pub discord: Option<DiscordConfig>,
    /// The `/healthz` and `/metrics` listener of `serve`.
    pub ops: OpsConfig,
    /// The audit chain's key.
    pub audit_key: AuditKey,
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

/// One `dns.update` entry, checked: a zone name, a known algorithm, a base64 secret of at
/// least 16 bytes.
fn dns_update_zone(
    cx: &Resolver<'_>,
    i: usize,
    raw: &raw::RawDnsUpdateZone,
) -> anyhow::Result<DnsUpdateZone> {
    let file = cx.file;
    let key = format!("dns.update[{i}]");
    let zone = DomainName::parse(&raw.zone)
        .map_err(|e| anyhow!("{file}: {key}.zone: `{}`: {e}", raw.zone))?
        .as_str()
        .to_owned();
    let name = raw
        .key
        .name
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let name_ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !name_ok {
        bail!(
            "{file}: {key}.key.name: `{}` is not a DNS name (the key's name as the server knows it)",
            raw.key.name
        );
    }
    let algorithm = TsigAlgorithm::parse(&raw.key.algorithm).ok_or_else(|| {
        anyhow!(
            "{file}: {key}.key.algorithm: `{}` is not hmac-sha256, hmac-sha384 or hmac-sha512",
            raw.key.algorithm
        )
    })?;
    let secret = cx.secret(&format!("{key}.key.secret"), &raw.key.secret)?;
    match data_encoding::BASE64.decode(secret.expose_secret().trim().as_bytes()) {
        Ok(bytes) if bytes.len() >= 16 => {}
        Ok(_) => bail!(
            "{file}: {key}.key.secret is shorter than 16 bytes: generate one with `openssl rand -base64 32` (or keymgr/tsig-keygen)"
        ),
        Err(_) => {
            bail!("{file}: {key}.key.secret is not base64 (the form knot and BIND print keys in)")
        }
    }
    Ok(DnsUpdateZone {
        zone,
        server: raw.server,
        key: TsigKey {
            name,
            algorithm,
            secret,
        },
    })
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
        if raw.approvals.ttl_secs == 0 {
            bail!(
                "{file}: approvals.ttl_secs must be at least 1 (seconds a plan waits for a decision)"
            );
        }
        if raw.approvals.remind_after_secs >= raw.approvals.ttl_secs {
            bail!(
                "{file}: approvals.remind_after_secs ({}) must be below approvals.ttl_secs ({}), or 0 for no reminder",
                raw.approvals.remind_after_secs,
                raw.approvals.ttl_secs
            );
        }
        for (key, n) in &raw.approvals.required {
            if !(1..=sections::MAX_REQUIRED).contains(n) {
                bail!(
                    "{file}: approvals.required.{key}: {n} approvers; give a count from 1 to {}",
                    sections::MAX_REQUIRED
                );
            }
        }
        let fleet = fleet(&cx, &raw.vps, &raw.deploy, &raw.cert)?;
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
        let dns_update = DnsUpdateConfig {
            zones: raw
                .dns
                .update
                .iter()
                .enumerate()
                .map(|(i, z)| dns_update_zone(&cx, i, z))
                .collect::<anyhow::Result<_>>()?,
        };
        for (i, z) in dns_update.zones.iter().enumerate() {
            if dns_update.zones[..i].iter().any(|o| o.zone == z.zone) {
                bail!("{file}: dns.update lists the zone {} twice", z.zone);
            }
        }
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
            approvals: raw.approvals,
            onboarding,
            deploy: fleet[0].deploy.clone(),
            cert: fleet[0].cert.clone(),
            fleet,
            dns: raw.dns.servers,
            dns_update,
            repo,
            mail: raw.mail,
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
            audit_key: AuditKey::new(audit_key),
            anchor_every: (raw.audit.anchor_every_secs > 0)
                .then(|| Duration::from_secs(raw.audit.anchor_every_secs)),
            migrate,
            secret_env_vars: cx.env_vars.take(),
            resolved_secrets: cx.secrets.take(),
        })
    }

    /// The VPS of this name, or the first (the default) for none.
    pub fn vps(&self, name: Option<&crate::domain::VpsName>) -> Option<&VpsConfig> {
        match name {
            None => self.fleet.first(),
            Some(n) => self.fleet.iter().find(|v| &v.name == n),
        }
    }

    /// The fleet's names, in the config's order, for messages (`vps-0, vps-1`).
    pub fn vps_names(&self) -> String {
        self.fleet
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
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
        out.extend(self.fleet.iter().flat_map(|v| {
            v.deploy
                .env
                .iter()
                .filter(|(k, _)| crate::redact::looks_secret(k))
                .map(|(_, v)| v.as_str())
        }));
        // Longest first: a secret containing another is redacted whole.
        out.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        out.dedup();
        out
    }
}

/// The fleet: each VPS checked (a kebab-case name, unique) with its own copy of `deploy:` and
/// `cert:`, whose VPS-side values take `${NAME}` from its `vars` first, then the environment.
fn fleet(
    cx: &Resolver<'_>,
    raw: &[raw::RawVps],
    deploy: &DeployConfig,
    cert: &CertConfig,
) -> anyhow::Result<Vec<VpsConfig>> {
    let file = cx.file;
    if raw.is_empty() {
        bail!(
            "{file}: vps: the list is empty; name at least one VPS (name, ssh_host, known_hosts, ipv4)"
        );
    }
    let mut out: Vec<VpsConfig> = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let key = format!("vps[{i}]");
        let name = crate::domain::VpsName::parse(&v.name)
            .map_err(|e| anyhow!("{file}: {key}.name: {e}"))?;
        if out.iter().any(|o| o.name == name) {
            bail!(
                "{file}: vps: the name `{name}` is given to two servers; each VPS needs a name of its own"
            );
        }
        let mut vars = StringMap::new();
        for (k, val) in &v.vars {
            anyhow::ensure!(
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{file}: {key}.vars: `{k}` is not a variable name (letters, digits, _)"
            );
            vars.insert(
                k.clone(),
                expand_env(val).map_err(|e| anyhow!("{file}: {key}.vars.{k}: {e}"))?,
            );
        }
        let exp = |what: &str, s: &str| {
            resolve::expand_vars(s, &vars).map_err(|e| anyhow!("{file}: {what} (for {name}): {e}"))
        };
        let mut d = deploy.clone();
        d.webroot = exp("deploy.webroot", &d.webroot)?;
        d.nginx_site = exp("deploy.nginx_site", &d.nginx_site)?;
        for (k, val) in d.env.iter_mut() {
            *val = exp(&format!("deploy.env.{k}"), val)?;
        }
        let mut c = cert.clone();
        c.extra_args = c
            .extra_args
            .iter()
            .map(|a| exp("cert.extra_args", a))
            .collect::<Result<_, _>>()?;
        c.nginx_test = c
            .nginx_test
            .iter()
            .map(|a| exp("cert.nginx_test", a))
            .collect::<Result<_, _>>()?;
        c.lock_file = exp("cert.lock_file", &c.lock_file)?;
        c.trusted_roots = c
            .trusted_roots
            .as_deref()
            .map(|p| cx.path("cert.trusted_roots", &p.to_string_lossy()))
            .transpose()?;
        out.push(VpsConfig {
            ssh_host: v.ssh_host.clone(),
            ssh_config: v
                .ssh_config
                .as_deref()
                .map(|p| cx.path(&format!("{key}.ssh_config"), p))
                .transpose()?,
            known_hosts: cx.path(&format!("{key}.known_hosts"), &v.known_hosts)?,
            ipv4: v.ipv4,
            ipv6: v.ipv6,
            connect_timeout: Duration::from_secs(v.connect_timeout_secs),
            deploy: d,
            cert: c,
            name,
        });
    }
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
    fn approvals_required_per_step_with_a_default() {
        // SAFETY-free: tests in this module use a variable nobody else reads.
        unsafe { std::env::set_var("OB_TEST_PW", "s3cret-value-xyz") };
        unsafe { std::env::set_var("OB_TEST_AUDIT_KEY", "audit-key-for-unit-tests") };
        let with = |required: &str| format!("{MINIMAL}approvals:\n  required: {required}\n");
        let cfg = Config::parse(MINIMAL, Path::new("bot.yaml")).unwrap();
        assert_eq!(
            cfg.approvals.required_for("cert"),
            1,
            "one approver unless told"
        );
        let cfg = Config::parse(&with("{create-org: 2, cert: 3}"), Path::new("bot.yaml")).unwrap();
        assert_eq!(cfg.approvals.required_for("create-org"), 2);
        assert_eq!(cfg.approvals.required_for("cert"), 3);
        assert_eq!(cfg.approvals.required_for("create-person"), 1);
        let cfg = Config::parse(&with("{default: 2, cert: 1}"), Path::new("bot.yaml")).unwrap();
        assert_eq!(cfg.approvals.required_for("create-person"), 2);
        assert_eq!(cfg.approvals.required_for("cert"), 1);
        assert_eq!(cfg.approvals.required_steps().collect::<Vec<_>>(), ["cert"]);
        for bad in ["{cert: 0}", "{default: 10}"] {
            let err = Config::parse(&with(bad), Path::new("bot.yaml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("bot.yaml") && err.contains("approvals.required."),
                "{err}"
            );
        }
    }

    fn with_env() {
        // SAFETY-free: tests in this module use variables nobody else reads.
        unsafe { std::env::set_var("OB_TEST_PW", "s3cret-value-xyz") };
        unsafe { std::env::set_var("OB_TEST_AUDIT_KEY", "audit-key-for-unit-tests") };
    }

    const FLEET: &str = r#"
vps:
  - {name: vps-0, ssh_host: quinn-vps, known_hosts: kh, ipv4: 10.0.0.1, vars: {ROOT: /srv/a}}
  - {name: vps-1, ssh_host: quinn-vps-1, known_hosts: kh1, ipv4: 10.0.0.2, ipv6: "2001:db8::2", vars: {ROOT: /srv/b}}
deploy: {webroot: "${ROOT}/www/{domain}", nginx_site: "${ROOT}/nginx/{domain}"}
cert: {extra_args: ["--config-dir=${ROOT}/le"], lock_file: "${ROOT}/certbot.lock", nginx_test: ["${ROOT}/nginx", "-t"]}
"#;

    fn fleet_config(vps_part: &str) -> anyhow::Result<Config> {
        with_env();
        let base: String = MINIMAL
            .lines()
            .filter(|l| !l.starts_with("vps:"))
            .map(|l| format!("{l}\n"))
            .collect();
        Config::parse(&format!("{base}{vps_part}"), Path::new("/etc/ob/bot.yaml"))
    }

    #[test]
    fn a_single_vps_mapping_is_a_fleet_of_one() {
        with_env();
        let cfg = Config::parse(MINIMAL, Path::new("/etc/ob/bot.yaml")).unwrap();
        assert_eq!(cfg.fleet.len(), 1);
        let only = cfg.vps(None).unwrap();
        assert_eq!(
            (only.name.as_str(), only.ssh_host.as_str()),
            ("vps-0", "quinn-vps")
        );
        assert_eq!(only.known_hosts, PathBuf::from("/etc/ob/kh"));
        assert_eq!(only.deploy.webroot, "/var/www/{domain}");
        assert_eq!(only.cert.lock_file, cfg.cert.lock_file);
    }

    #[test]
    fn a_fleet_gives_each_vps_its_own_paths_from_its_vars() {
        let cfg = fleet_config(FLEET).unwrap();
        assert_eq!(cfg.vps_names(), "vps-0, vps-1");
        let one = crate::domain::VpsName::parse("vps-1").unwrap();
        let b = cfg.vps(Some(&one)).unwrap();
        assert_eq!(b.ipv6, Some("2001:db8::2".parse().unwrap()));
        assert_eq!(b.deploy.webroot, "/srv/b/www/{domain}");
        assert_eq!(b.deploy.nginx_site, "/srv/b/nginx/{domain}");
        assert_eq!(b.cert.extra_args, ["--config-dir=/srv/b/le"]);
        assert_eq!(b.cert.nginx_test, ["/srv/b/nginx", "-t"]);
        assert_eq!(
            b.cert.lock_file, "/srv/b/certbot.lock",
            "one certbot lock per VPS"
        );
        let a = cfg.vps(None).unwrap();
        assert_eq!(
            (a.name.as_str(), a.cert.lock_file.as_str()),
            ("vps-0", "/srv/a/certbot.lock")
        );
        // The config-wide copies are the first VPS's.
        assert_eq!(cfg.deploy.webroot, "/srv/a/www/{domain}");
        let none = crate::domain::VpsName::parse("vps-9").unwrap();
        assert!(cfg.vps(Some(&none)).is_none());
    }

    #[test]
    fn a_fleet_with_a_name_twice_or_a_bad_name_or_none_is_refused() {
        let twice = FLEET.replace("name: vps-1", "name: vps-0");
        let err = fleet_config(&twice).unwrap_err().to_string();
        assert!(
            err.contains("bot.yaml") && err.contains("`vps-0` is given to two servers"),
            "{err}"
        );
        let err = fleet_config(&FLEET.replace("name: vps-1", "name: VPS 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("vps[1].name"), "{err}");
        let err = fleet_config("vps: []\n").unwrap_err().to_string();
        assert!(err.contains("vps: the list is empty"), "{err}");
        let err = fleet_config("vps: quinn-vps\n").unwrap_err().to_string();
        assert!(err.contains("give a list of servers"), "{err}");
        // A path variable neither the VPS nor the environment sets is named, with the VPS.
        let err = fleet_config(&FLEET.replace("vars: {ROOT: /srv/b}", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("deploy.webroot (for vps-1)") && err.contains("${ROOT}"),
            "{err}"
        );
        // Unknown keys of a VPS are refused as everywhere else.
        let err = fleet_config(&FLEET.replace("ipv4: 10.0.0.2", "ipv4: 10.0.0.2, ipv5: x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ipv5"), "{err}");
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
