//! Resolving what the file points at: relative paths against its folder, `${VAR}` from the
//! environment, and secrets from `{env:}`/`{file:}` sources (each remembered, so the bot can
//! redact it and remove its variable from its own environment).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};
use secrecy::SecretString;

use super::raw::{RawDb, SecretSource};
use super::sections::DbConfig;

pub(super) struct Resolver<'a> {
    pub(super) file: &'a str,
    pub(super) base: &'a Path,
    /// Every secret resolved so far.
    pub(super) secrets: std::cell::RefCell<Vec<SecretString>>,
    /// The environment variables they came from.
    pub(super) env_vars: std::cell::RefCell<Vec<String>>,
}

impl Resolver<'_> {
    pub(super) fn db(&self, key: &str, raw: &RawDb) -> anyhow::Result<DbConfig> {
        Ok(DbConfig {
            host: expand_env(&raw.host).map_err(|e| anyhow!("{}: {key}.host: {e}", self.file))?,
            port: raw.port,
            user: raw.user.clone(),
            database: raw.database.clone(),
            password: self.secret(&format!("{key}.password"), &raw.password)?,
            connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
        })
    }

    pub(super) fn path(&self, key: &str, raw: &str) -> anyhow::Result<PathBuf> {
        let expanded = expand_env(raw).map_err(|e| anyhow!("{}: {key}: {e}", self.file))?;
        let p = PathBuf::from(expanded);
        Ok(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        })
    }

    pub(super) fn secret(&self, key: &str, source: &SecretSource) -> anyhow::Result<SecretString> {
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
    expand_vars(raw, &super::StringMap::new())
}

/// Expands `${VAR}` from `vars`, else from the environment; unset in both is an error.
pub fn expand_vars(raw: &str, vars: &super::StringMap) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{raw}` has `${{` without a closing `}}`"))?;
        let var = &after[..end];
        let value = match vars.get(var) {
            Some(v) => v.clone(),
            None => std::env::var(var).map_err(|_| {
                format!("`{raw}` uses ${{{var}}}, which is not set in the environment")
            })?,
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
