//! Keeping secrets in the bot: pure functions that find credentials in URLs and decide which
//! environment variables hold secrets, and the process-wide list of secret values that every
//! log line is scrubbed of (see [`crate::telemetry`]).
//!
//! The engine's `Redactor` scrubs what goes to chat and the audit trail; this module scrubs
//! what goes to stderr. Both replace the same values with the same marker.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// What a secret is replaced with.
pub const MARK: &str = "[redacted]";

/// Shortest value redacted: shorter ones would also hit ordinary words (the config refuses
/// empty secrets; a secret this short is not one worth the name).
pub const MIN_SECRET_LEN: usize = 4;

/// Schemes whose user part is a login name, not a credential (`ssh://git@host/repo`).
const LOGIN_SCHEMES: &[&str] = &["ssh", "git+ssh", "ssh+git", "sftp"];

/// `scheme://userinfo@host...` → where the userinfo is in `text` (byte range), when it holds a
/// credential: a password (`user:pass@`), or a token given as the user (`https://TOKEN@`).
fn credential_spans(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let sep = from + at;
        let scheme_start = text[..sep]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &text[scheme_start..sep];
        let auth_start = sep + 3;
        // The authority ends at the path, query or fragment, or where the URL ends in prose.
        let auth_end = text[auth_start..]
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '\'' | '"' | '`' | '<' | '>' | '(' | ')' | ','
                ) || c.is_whitespace()
            })
            .map_or(text.len(), |i| auth_start + i);
        if let Some(at_sign) = text[auth_start..auth_end].rfind('@') {
            let userinfo = &text[auth_start..auth_start + at_sign];
            let login_only = !userinfo.contains(':')
                && LOGIN_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str());
            if !userinfo.is_empty() && !login_only {
                out.push((auth_start..auth_start + at_sign, userinfo));
            }
        }
        from = auth_end.max(auth_start);
    }
    out
}

/// `text` with the credentials of every URL in it replaced: `https://bot:tok@host/x` becomes
/// `https://[redacted]@host/x`. Login names of ssh URLs stay (they are no secret).
pub fn scrub_url_credentials(text: &str) -> Cow<'_, str> {
    let spans = credential_spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, _) in spans {
        out.push_str(&text[last..range.start]);
        out.push_str(MARK);
        last = range.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// The credentials written into URLs in `text` (the password, or the token given as the user):
/// the values to redact wherever they appear on their own.
pub fn url_credentials(text: &str) -> Vec<&str> {
    credential_spans(text)
        .into_iter()
        .map(|(_, userinfo)| match userinfo.split_once(':') {
            Some((_, password)) => password,
            None => userinfo,
        })
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect()
}

/// Whether an environment variable's name says it holds a secret (`DISCORD_TOKEN`,
/// `PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, ...).
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Of the variables `env` (name, value), those to remove from the bot's own environment so no
/// process it starts can inherit them: every variable the config read a secret from
/// (`secret_vars`), every one whose name looks secret, and every one holding a secret value.
pub fn env_to_remove(
    env: impl IntoIterator<Item = (String, String)>,
    secret_vars: &[String],
    secret_values: &[&str],
) -> Vec<String> {
    env.into_iter()
        .filter(|(name, value)| {
            secret_vars.contains(name)
                || looks_secret(name)
                || secret_values
                    .iter()
                    .any(|s| s.len() >= MIN_SECRET_LEN && value.contains(s))
        })
        .map(|(name, _)| name)
        .collect()
}

/// Every form a secret may take in a log line: as is, escaped in a JSON string or a
/// `Debug`-quoted string (tracing's `?field`), and both (a `?field` in a JSON line).
fn forms(secret: &str) -> Vec<String> {
    let escaped = |s: &str| {
        let json = serde_json::to_string(s).unwrap_or_default();
        let debug = format!("{s:?}");
        [json, debug].map(|q| q[1..q.len() - 1].to_owned())
    };
    let mut out = vec![secret.to_owned()];
    for _ in 0..2 {
        let more: Vec<String> = out.iter().flat_map(|f| escaped(f)).collect();
        for f in more {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// `text` with every one of `secrets` (in each of its forms) and every URL credential
/// replaced by [`MARK`].
pub fn redact_with<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut out = scrub_url_credentials(text);
    for s in secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MARK));
        }
    }
    out
}

/// The secret values (in every form) this process's log lines are scrubbed of; added to by
/// every config loaded ([`register`]), never emptied.
static LOG_SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `secrets` to what every log line is scrubbed of.
pub fn register<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let mut list = LOG_SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for s in secrets.into_iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        for f in forms(s) {
            if !list.contains(&f) {
                list.push(f);
            }
        }
    }
    // Longest first: a secret containing another is replaced whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` scrubbed of every registered secret and every URL credential: for anything the
/// process writes to its own stderr or stdout outside the engine.
pub fn redact_output(text: &str) -> Cow<'_, str> {
    let list = LOG_SECRETS.read().unwrap_or_else(|e| e.into_inner());
    match redact_with(text, &list) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// Replaces every configured secret value with `[redacted]` before text leaves the process
/// (chat, audit trail): defence in depth behind never putting secrets into plans at all.
#[derive(Clone)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Self {
        // Short values would redact ordinary words; the config refuses empty ones already.
        secrets.retain(|s| s.len() >= 4);
        Self {
            secrets: Arc::new(secrets),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        // Credentials in URLs (a git remote's) even when their value is not known here.
        let mut out = crate::redact::scrub_url_credentials(text).into_owned();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }

    pub fn redact_json(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| self.redact_json(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.redact_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redactor_hides_secrets_everywhere() {
        let r = Redactor::new(vec!["hunter22".into(), "x".into()]);
        assert_eq!(r.redact("pw=hunter22;x"), "pw=[redacted];x");
        let v = r.redact_json(json!({"a": ["hunter22"], "b": {"c": "say hunter22"}}));
        assert_eq!(
            v,
            json!({"a": ["[redacted]"], "b": {"c": "say [redacted]"}})
        );
    }

    #[test]
    fn url_credentials_are_scrubbed_and_found() {
        let cases = [
            (
                "git clone https://bot:s3cr3t-tok@git.example.com/platform.git /x failed",
                "git clone https://[redacted]@git.example.com/platform.git /x failed",
                vec!["s3cr3t-tok"],
            ),
            (
                "remote 'https://ghp_abcdef123456@github.com/o/r' refused",
                "remote 'https://[redacted]@github.com/o/r' refused",
                vec!["ghp_abcdef123456"],
            ),
            (
                "https://u:p%40ss-word@h:8443?x=1 and http://a:bcdefg@h2",
                "https://[redacted]@h:8443?x=1 and http://[redacted]@h2",
                vec!["p%40ss-word", "bcdefg"],
            ),
            // A login name of an ssh URL is no secret; a password in one is.
            ("ssh://git@host/repo.git", "ssh://git@host/repo.git", vec![]),
            (
                "ssh://git:hunter22@host/repo.git",
                "ssh://[redacted]@host/repo.git",
                vec!["hunter22"],
            ),
            // No URL, or an email address, or scp-style: nothing to do.
            (
                "git@host:repo.git and me@example.com",
                "git@host:repo.git and me@example.com",
                vec![],
            ),
            ("https://host/path@v2", "https://host/path@v2", vec![]),
            ("", "", vec![]),
            ("é://x:yyyy@h ü", "é://[redacted]@h ü", vec!["yyyy"]),
        ];
        for (text, scrubbed, creds) in cases {
            assert_eq!(scrub_url_credentials(text), scrubbed, "{text}");
            assert_eq!(url_credentials(text), creds, "{text}");
        }
        assert!(matches!(scrub_url_credentials("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn secret_looking_variables_are_recognised() {
        for yes in [
            "DISCORD_TOKEN",
            "PGPASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "github_token",
            "MY_API_KEY",
            "DB_PASSWD",
        ] {
            assert!(looks_secret(yes), "{yes}");
        }
        for no in [
            "PATH",
            "HOME",
            "SSH_AUTH_SOCK",
            "LANG",
            "ONBOARD_BOT_CONFIG",
            "GIT_ASKPASS",
        ] {
            assert!(!looks_secret(no), "{no}");
        }
        let env = [
            ("PATH", "/usr/bin"),
            ("BOT_DB", "hunter22"),
            ("ALIAS", "the hunter22 again"),
            ("DISCORD_TOKEN", "x"),
            ("OTHER", "abc"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            env_to_remove(env, &["BOT_DB".into()], &["hunter22", "abc"]),
            ["BOT_DB", "ALIAS", "DISCORD_TOKEN"],
            "a value under 4 characters is too short to match on"
        );
    }

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let secret = r#"pa"ss\word"#;
        let list: Vec<String> = forms(secret);
        let json = serde_json::json!({"error": format!("bad {secret}")}).to_string();
        let debug = format!("{:?}", format!("bad {secret}"));
        for text in [format!("bad {secret}"), json, debug] {
            let out = redact_with(&text, &list);
            assert!(
                out.contains(MARK) && !out.contains("ss\\"),
                "{text} -> {out}"
            );
        }
        assert_eq!(redact_with("a abc b", &["abc".into()]), "a abc b");
    }
}
