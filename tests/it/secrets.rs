//! Secrets stay in the bot: the processes it starts (the platform's deploy command, git, the
//! SSH master and the ssh the deploy runs) see none of them, and neither its output nor its
//! logs, the chat or the audit trail show one. The bot runs as the binary, as in production,
//! with its secrets in its environment. Run through scripts/test (inside the lab).

use crate::support::harness::within;
use crate::support::lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lab::{Lab, git};

const TIMEOUT: Duration = Duration::from_secs(300);

fn random(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs the bot binary with `args`, `--config cfg` and `env` added to this process's env.
fn bot(args: &[&str], cfg: &Path, env: &[(&str, &str)]) -> tokio::task::JoinHandle<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onboard-bot"));
    cmd.args(args).arg("--config").arg(cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run the bot"))
}

/// Every file in `dir` whose name starts with `prefix`, with its text.
fn dumps(dir: &Path, prefix: &str) -> Vec<(PathBuf, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    out
}

/// The variable names of an `env` dump.
fn names(dump: &str) -> Vec<&str> {
    dump.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect()
}

fn assert_clean(what: &str, text: &str, secrets: &[&str], vars: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} contains the secret {s}:\n{text}");
    }
    let names = names(text);
    for v in vars {
        assert!(!names.contains(v), "{what} has the variable {v}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_command_git_and_ssh_see_none_of_the_bots_secrets() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        // The lab's VPS keeps what earlier runs deployed: a fresh slug each time.
        let slug = &format!("secret-env-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        lab.serve_domains(&[&format!("{slug}.com")]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let dumps_dir = dir.join("dumps");
        std::fs::create_dir(&dumps_dir).unwrap();

        // An ssh config like the lab's that records the environment of every ssh started with
        // it: the bot's SSH master and the ssh the deploy command runs.
        let ssh_config = dir.join("ssh_config");
        let lab_ssh = std::fs::read_to_string(lab.dir.join("ssh/config")).unwrap();
        std::fs::write(
            &ssh_config,
            format!(
                // For every host: the lab's config ends with vps-1's `Host` block.
                "{}\n\nHost *\n    PermitLocalCommand yes\n    LocalCommand env > {}/ssh-env.$$\n",
                lab_ssh.trim_end(),
                dumps_dir.display()
            ),
        )
        .unwrap();
        let lab_ssh_config = lab.dir.join("ssh/config").display().to_string();
        let cfg = dbs.write_config(dir, |t| {
            let tenant_file = format!("{{file: {}/secrets/tenant_db.pass}}", lab.dir.display());
            assert!(t.contains(&tenant_file), "{t}");
            let t = t
                .replace(&tenant_file, "{env: OB_TEST_TENANT_PASSWORD}")
                .replace(&lab_ssh_config, &ssh_config.display().to_string())
                .replace(
                    "SSH_CONFIG: \"${ONBOARD_LAB_DIR}/ssh/config\"",
                    &format!("SSH_CONFIG: \"{}\"\n    DEPLOY_MARKER: present", ssh_config.display()),
                );
            t + "\ndiscord:\n  token: {env: DISCORD_TOKEN}\n  guild_id: 1\n  ops_channel_id: 2\n  approver_role_ids: [3]\n"
        });
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("DEPLOY_MARKER") && text.contains(&ssh_config.display().to_string()));

        // The platform's ./run in this test's origin records its environment, and so does a
        // hook of the origin for the bot's git push.
        let work = dir.join("work");
        git(dir, &["clone", "--quiet", "origin.git", "work"]);
        let run = std::fs::read_to_string(work.join("run")).unwrap();
        let run = run.replacen(
            "set -euo pipefail\n",
            &format!("set -euo pipefail\nenv > {}/deploy-env\n", dumps_dir.display()),
            1,
        );
        std::fs::write(work.join("run"), run).unwrap();
        git(&work, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "run: dump env"]);
        git(&work, &["push", "--quiet", "origin", "HEAD:main"]);
        let hook = dir.join("origin.git/hooks/pre-receive");
        std::fs::write(&hook, format!("#!/bin/sh\nenv > {}/git-env.$$\ncat >/dev/null\n", dumps_dir.display())).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&hook).status().unwrap();

        let token = random("discord-token");
        let tenant_pw = lab.secret("tenant_db");
        let unrelated = random("unrelated-api-token");
        let out = bot(
            &["onboard", "--slug", slug, "--name", "Secret Env", "--email", "secret@example.com", "--yes"],
            &cfg,
            &[
                ("DISCORD_TOKEN", &token),
                ("OB_TEST_TENANT_PASSWORD", &tenant_pw),
                ("OB_UNRELATED_API_TOKEN", &unrelated),
            ],
        )
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the onboarding failed:\n{stdout}\n{stderr}");

        let secrets = [
            token.as_str(),
            tenant_pw.as_str(),
            unrelated.as_str(),
            &lab.secret("bot_db"),
            &lab.secret("app_db"),
        ];
        let vars = ["DISCORD_TOKEN", "OB_TEST_TENANT_PASSWORD", "OB_UNRELATED_API_TOKEN"];
        assert_clean("the bot's stdout", &stdout, &secrets, &[]);
        assert_clean("the bot's stderr", &stderr, &secrets, &[]);

        let deploy = dumps(&dumps_dir, "deploy-env");
        assert_eq!(deploy.len(), 1, "the deploy command ran once");
        let deploy = &deploy[0].1;
        assert_clean("the deploy command's environment", deploy, &secrets, &vars);
        let deploy_names = names(deploy);
        for wanted in ["DEPLOY_MARKER", "SSH_CONFIG", "PATH", "HOME"] {
            assert!(deploy_names.contains(&wanted), "deploy.env and the allowlist reach it: {wanted}:\n{deploy}");
        }
        assert!(
            !deploy_names.iter().any(|n| n.starts_with("LAB_") || n.starts_with("CARGO")),
            "nothing else of the bot's environment reaches it:\n{deploy}"
        );

        let pushes = dumps(&dumps_dir, "git-env");
        assert!(!pushes.is_empty(), "the bot pushed to origin");
        for (path, env) in &pushes {
            assert_clean(&format!("git push ({})", path.display()), env, &secrets, &vars);
            assert!(!names(env).iter().any(|n| n.starts_with("LAB_")), "{env}");
        }

        let sshs = dumps(&dumps_dir, "ssh-env");
        let (from_deploy, from_bot): (Vec<_>, Vec<_>) =
            sshs.iter().partition(|(_, env)| names(env).contains(&"DEPLOY_MARKER"));
        assert!(!from_deploy.is_empty(), "the deploy command's ssh ran: {sshs:?}");
        assert!(!from_bot.is_empty(), "the bot's SSH master ran: {sshs:?}");
        for (path, env) in &sshs {
            assert_clean(&format!("ssh ({})", path.display()), env, &secrets, &vars);
        }
    })
    .await
}

/// Everything the bot recorded in its state database, as text.
async fn state_text(pool: &sqlx::PgPool) -> String {
    let mut out = String::new();
    for table in ["runs", "step_runs", "approvals", "audit_events"] {
        let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, E'\\n') FROM {table} t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push_str(&rows.unwrap_or_default());
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_url_with_credentials_never_shows_them_in_errors_logs_or_the_audit_trail() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let slug = &format!(
            "secret-url-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        lab.serve_domains(&[&format!("{slug}.com")]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let password = random("remote-password");
        // Nothing listens on port 9: every clone fails, naming the remote in its error.
        let remote = format!("https://onboard-bot:{password}@127.0.0.1:9/platform.git");
        let cfg = dbs.write_config(tmp.path(), |t| {
            let origin = format!("remote: {}", tmp.path().join("origin.git").display());
            assert!(t.contains(&origin), "{t}");
            t.replace(&origin, &format!("remote: \"{remote}\""))
        });

        let onboard = bot(
            &[
                "onboard",
                "--slug",
                slug,
                "--name",
                "Secret Url",
                "--email",
                "url@example.com",
                "--yes",
            ],
            &cfg,
            &[],
        )
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&onboard.stdout);
        let stderr = String::from_utf8_lossy(&onboard.stderr);
        assert_eq!(
            onboard.status.code(),
            Some(1),
            "the run fails at the clone:\n{stdout}\n{stderr}"
        );

        // Resumed with JSON log lines: the same step error, escaped for JSON.
        let state = dbs.state_admin().await;
        let run_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM runs")
            .fetch_one(&state)
            .await
            .unwrap();
        let resume = bot(
            &[
                "runs",
                "resume",
                &run_id.to_string(),
                "--yes",
                "--log-format",
                "json",
            ],
            &cfg,
            &[],
        )
        .await
        .unwrap();
        let resume_out = String::from_utf8_lossy(&resume.stdout);
        let resume_err = String::from_utf8_lossy(&resume.stderr);
        assert_eq!(resume.status.code(), Some(1), "{resume_out}\n{resume_err}");
        let audit = bot(&["audit", slug], &cfg, &[]).await.unwrap();
        let audit_out = String::from_utf8_lossy(&audit.stdout);
        let recorded = state_text(&state).await;

        for (what, text) in [
            ("stdout of onboard", &*stdout),
            ("stderr of onboard", &*stderr),
            ("stdout of resume", &*resume_out),
            ("stderr of resume", &*resume_err),
            ("the audit listing", &*audit_out),
            ("the state database", recorded.as_str()),
        ] {
            assert!(
                !text.contains(&password),
                "{what} shows the remote's password:\n{text}"
            );
        }
        // The error is there for people to read, without the password.
        let scrubbed = "https://[redacted]@127.0.0.1:9/platform.git";
        assert!(
            stderr.contains(scrubbed),
            "the log names the remote, scrubbed:\n{stderr}"
        );
        assert!(resume_err.contains(scrubbed), "{resume_err}");
        assert!(
            stdout.contains(scrubbed),
            "the console shows the failure:\n{stdout}"
        );
        assert!(
            recorded.contains(scrubbed),
            "the failure is recorded:\n{recorded}"
        );
    })
    .await
}

/// The TSIG secret of a `dns.update` zone signs the update and shows nowhere: not on the
/// console, not in the logs (at trace level, every crate's, text and JSON), not in the state
/// database (plans, approvals, audit events, step rows). The key here is wrong for the lab's
/// knot, so the update is refused (BADSIG) and the run stops at dns-records, resumable.
#[tokio::test(flavor = "multi_thread")]
async fn the_tsig_secret_of_a_dns_update_zone_shows_nowhere() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let slug = format!(
            "secret-tsig-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let zone = format!("{slug}.com");
        lab.put_zone(
            &zone,
            &format!(
                "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n@ NS ns1.lab.test.\n"
            ),
        );
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect();
        let secret = data_encoding::BASE64.encode(&raw);
        let hex = data_encoding::HEXLOWER.encode(&raw);
        let secret_file = tmp.path().join("tsig.key");
        std::fs::write(&secret_file, &secret).unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| {
            assert!(t.contains("  update:\n"), "config/lab.yaml lists dns.update");
            t.replacen(
                "  update:\n",
                &format!(
                    "  update:\n    - {{zone: {zone}, server: \"127.0.0.1:53\", key: {{name: onboard-bot-lab, algorithm: hmac-sha256, secret: {{file: {}}}}}}}\n",
                    secret_file.display()
                ),
                1,
            )
        });
        let trace = [("RUST_LOG", "trace")];
        let onboard = bot(
            &[
                "onboard", "--slug", &slug, "--name", "Secret Tsig", "--email",
                "tsig@example.com", "--yes",
            ],
            &cfg,
            &trace,
        )
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&onboard.stdout);
        let stderr = String::from_utf8_lossy(&onboard.stderr);
        assert_eq!(
            onboard.status.code(),
            Some(1),
            "the update is refused:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("BADSIG") || stderr.contains("BADSIG"),
            "the server's answer, in words:\n{stdout}\n{stderr}"
        );
        let state = dbs.state_admin().await;
        let run_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM runs")
            .fetch_one(&state)
            .await
            .unwrap();
        let resume = bot(
            &["runs", "resume", &run_id.to_string(), "--yes", "--log-format", "json"],
            &cfg,
            &trace,
        )
        .await
        .unwrap();
        let resume_out = String::from_utf8_lossy(&resume.stdout);
        let resume_err = String::from_utf8_lossy(&resume.stderr);
        let audit = bot(&["audit", &slug], &cfg, &[]).await.unwrap();
        let audit_out = String::from_utf8_lossy(&audit.stdout);
        let recorded = state_text(&state).await;
        assert!(
            recorded.contains("dns-records"),
            "the run reached the DNS step:\n{recorded}"
        );
        for (what, text) in [
            ("stdout of onboard", &*stdout),
            ("stderr of onboard", &*stderr),
            ("stdout of resume", &*resume_out),
            ("stderr of resume", &*resume_err),
            ("the audit listing", &*audit_out),
            ("the state database", recorded.as_str()),
        ] {
            assert_clean(what, text, &[&secret, &hex, &secret[..16]], &[]);
        }
    })
    .await
}
