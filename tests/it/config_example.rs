//! `config/bot.example.yaml` loads, and `docs/configuration.md` documents each of its keys.

use crate::support::harness::blocking;

use std::path::Path;
use std::time::Duration;

use onboard_bot::config::Config;

/// Ample for what these tests do (no lab service, no network).
const LIMIT: Duration = Duration::from_secs(60);

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_example_config_loads() {
    blocking(LIMIT, || {
        // Its secrets point at production files and variables: the test gives them its own, in
        // a file (setting a variable would race the other tests of this process, which read the
        // environment whenever they start a process).
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "example-secret-of-16+").unwrap();
        let own = format!("{{file: {}}}", secret.display());
        let text = repo("config/bot.example.yaml");
        let mut text = text.clone();
        for var in ["ONBOARD_BOT_STATE_DB_PASSWORD", "DISCORD_TOKEN"] {
            text = text.replace(&format!("{{env: {var}}}"), &own);
        }
        for file in [
            "/run/secrets/tenant_db",
            "/run/secrets/app_db",
            "/run/secrets/state_db_owner",
            "/run/secrets/audit_key",
        ] {
            text = text.replace(&format!("{{file: {file}}}"), &own);
        }
        // A TSIG key is base64.
        let tsig = dir.path().join("tsig");
        std::fs::write(&tsig, "ZXhhbXBsZS10c2lnLWtleS0zMi1ieXRlcy1sb25nLi4=\n").unwrap();
        let text = text.replace(
            "{file: /run/secrets/dns_update_tsig}",
            &format!("{{file: {}}}", tsig.display()),
        );
        let cfg = Config::parse(&text, Path::new("/etc/onboard-bot/bot.yaml"))
            .unwrap_or_else(|e| panic!("config/bot.example.yaml does not load: {e:#}"));
        assert!(cfg.discord.is_some() && cfg.verify.is_some());
        assert!(
            cfg.dns_update
                .zone_for("www.quinn-hosted.example")
                .is_some(),
            "the example shows a zone the bot may change"
        );
        assert_eq!(
            cfg.ops.listen,
            Some("127.0.0.1:9090".parse().unwrap()),
            "the example shows the ops listener"
        );
    });
}

/// Every key path of a YAML mapping, `a.b.c`, down to values that are not mappings.
fn key_paths(prefix: &str, v: &serde_norway::Value, out: &mut Vec<String>) {
    if let serde_norway::Value::Mapping(m) = v {
        for (k, v) in m {
            let k = k.as_str().expect("string keys");
            let path = if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            };
            // Secret sources ({env: VAR}) are documented once, not per key.
            if !matches!(k, "password" | "token" | "key") {
                key_paths(&path, v, out);
            }
            out.push(path);
        }
    }
}

#[test]
fn every_example_key_is_documented() {
    blocking(LIMIT, || {
        let example: serde_norway::Value =
            serde_norway::from_str(&repo("config/bot.example.yaml")).unwrap();
        let doc = repo("docs/configuration.md");
        let mut paths = Vec::new();
        key_paths("", &example, &mut paths);
        let missing: Vec<_> = paths
            .iter()
            .filter(|p| {
                // The database keys are documented once for state_db, tenant_db and verify.app_db.
                let leaf = p.rsplit('.').next().unwrap();
                let shared_db = ["state_db.", "tenant_db.", "verify.app_db."]
                    .iter()
                    .any(|db| p.strip_prefix(db).is_some_and(|rest| !rest.contains('.')));
                !(doc.contains(&format!("`{p}`"))
                    || shared_db && doc.contains(&format!("`{leaf}`")))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks {missing:?}"
        );
    });
}
