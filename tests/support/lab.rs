//! The test harness's view of the lab (`scripts/lab up`): a fresh pair of databases per test
//! (the bot's state, and a copy of the platform's tenant DB), and a config pointing at them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use onboard_bot::config::Config;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

/// The lab as the tests use it.
pub struct Lab {
    pub dir: PathBuf,
    admin_password: String,
}

impl Lab {
    /// Finds the running lab, or fails loudly with what to do.
    pub fn get() -> Lab {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("ONBOARD_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join(".lab"));
        let pw = dir.join("secrets/admin_db.pass");
        let admin_password = std::fs::read_to_string(&pw)
            .unwrap_or_else(|e| {
                panic!(
                    "the lab is not set up ({}: {e}). Run the tests with scripts/test, which brings the lab up \
                     and runs them inside its network namespace.",
                    pw.display()
                )
            })
            .trim()
            .to_owned();
        Lab {
            dir,
            admin_password,
        }
    }

    pub fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// A secret the lab generated (`bot_db`, `tenant_db`, `app_db`, `admin_db`).
    pub fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("secrets/{name}.pass")))
            .expect("lab secret")
            .trim()
            .to_owned()
    }

    /// A superuser pool on `db` (for fixtures and for tampering tests).
    pub async fn admin(&self, db: &str) -> PgPool {
        self.admin_on(db, 5432).await
    }

    pub async fn admin_on(&self, db: &str, port: u16) -> PgPool {
        let opts = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("lab_admin")
            .password(&self.admin_password)
            .database(db);
        PgPoolOptions::new().max_connections(2).connect_with(opts).await.unwrap_or_else(|e| {
            panic!("cannot reach the lab's PostgreSQL on 127.0.0.1:{port} as lab_admin ({e}); is the lab up (scripts/lab status) and is this test inside its netns?")
        })
    }

    /// Creates a fresh state database and a fresh copy of the platform DB for one test.
    pub async fn fresh(&self) -> TestDbs<'_> {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let dbs = TestDbs {
            state: format!("t_bot_{tag}"),
            platform: format!("t_platform_{tag}"),
            lab: self,
        };
        let admin = self.admin("postgres").await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {} OWNER onboard_bot_owner",
                dbs.state
            )))
            .await
            .expect("create state db");
        // Copying from the template needs nobody connected to it; retry briefly if the portal
        // stand-in happens to be reading it this instant.
        let mut last = None;
        for _ in 0..50 {
            match admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {} TEMPLATE platform",
                    dbs.platform
                )))
                .await
            {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        if let Some(e) = last {
            panic!("cannot copy the platform template: {e}");
        }
        dbs
    }
}

/// One test's databases and its config.
pub struct TestDbs<'a> {
    pub state: String,
    pub platform: String,
    lab: &'a Lab,
}

impl TestDbs<'_> {
    /// `config/lab.yaml` pointed at this test's databases, written to `dir` (so the binary can
    /// read it too); `edit` may change the YAML text first.
    pub fn write_config(&self, dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
        let text = std::fs::read_to_string(Lab::repo_root().join("config/lab.yaml"))
            .expect("config/lab.yaml");
        // Each test pushes to its own copy of the platform repo, from its own checkout.
        let origin = dir.join("origin.git");
        if !origin.exists() {
            let ok = std::process::Command::new("git")
                .args(["clone", "--quiet", "--bare"])
                .arg(self.lab.dir.join("platform.git"))
                .arg(&origin)
                .status()
                .expect("git clone")
                .success();
            assert!(ok, "cloning the lab's platform repo failed");
        }
        let text = text
            .replace(
                "remote: ../.lab/platform.git",
                &format!("remote: {}", origin.display()),
            )
            .replace(
                "checkout: ../.lab/bot-checkout",
                &format!("checkout: {}", dir.join("checkout").display()),
            )
            .replace(
                "database: onboard_bot",
                &format!("database: {}", self.state),
            )
            .replace(
                "database: platform",
                &format!("database: {}", self.platform),
            )
            .replace("../.lab", &self.lab.dir.display().to_string())
            .replace("recheck_secs: 5", "recheck_secs: 1");
        // The portal stand-in reads the lab's `platform` database, not this test's copy: the
        // portal check is left out here (tests of it use `PLATFORM_DB_PORTAL`).
        let text = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("portal_"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = edit(text);
        let path = dir.join("bot.yaml");
        std::fs::write(&path, text).expect("write test config");
        path
    }

    pub fn config(&self, dir: &Path, edit: impl FnOnce(String) -> String) -> Arc<Config> {
        let path = self.write_config(dir, edit);
        Arc::new(Config::load(&path).expect("test config loads"))
    }

    pub async fn platform_admin(&self) -> PgPool {
        self.lab.admin(&self.platform).await
    }

    pub async fn state_admin(&self) -> PgPool {
        self.lab.admin(&self.state).await
    }
}

impl Lab {
    /// Installs `text` as the zone file of `zone` on the lab's authoritative server (knot) and
    /// loads it, through `scripts/lab zone put` (which validates it first).
    pub fn put_zone(&self, zone: &str, text: &str) {
        let tmp = tempfile::NamedTempFile::new().expect("temp zone file");
        std::fs::write(tmp.path(), text).expect("write zone file");
        let out = std::process::Command::new(Self::repo_root().join("scripts/lab"))
            .args(["zone", "put", zone])
            .arg(tmp.path())
            .env("ONBOARD_LAB_DIR", &self.dir)
            .output()
            .expect("run scripts/lab zone put");
        assert!(
            out.status.success(),
            "scripts/lab zone put {zone} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A zone as a registrar would hold it once the operator created the runbook's records:
    /// apex A → the lab VPS, www CNAME → apex; `extra` lines are appended.
    pub fn zone_text(zone: &str, extra: &str) -> String {
        format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n@ NS ns1.lab.test.\n\
             @ A 127.0.0.1\nwww CNAME @\n{extra}\n"
        )
    }

    /// Makes the web records of each domain hold (what the DNS step waits for).
    pub fn serve_domains(&self, domains: &[&str]) {
        for d in domains {
            self.put_zone(d, &Self::zone_text(d, ""));
        }
    }
}

/// `scripts/lab stop-service|start-service NAME`, for fault injection.
pub fn lab_service(action: &str, name: &str) {
    let ok = std::process::Command::new(Lab::repo_root().join("scripts/lab"))
        .args([action, name])
        .status()
        .expect("scripts/lab")
        .success();
    assert!(ok, "scripts/lab {action} {name} failed");
}

/// Starts a lab service again however the test ends.
pub struct Restart(pub &'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        lab_service("start-service", self.0);
    }
}

/// Runs the bot binary with `args` and `--config cfg`, armed with the fault point `fault`
/// (`ONBOARD_BOT_FAULT`), waits for it to announce the point (an event on its stderr, not a
/// sleep), then SIGKILLs it. Returns whether the point was reached before the process ended.
pub async fn kill_at_fault_point<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    cfg: &Path,
    fault: &str,
) -> bool {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("ONBOARD_BOT_FAULT", fault)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the bot");
    let stderr = child.stderr.take().expect("piped stderr");
    let reached = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("FAULT-POINT"))
    })
    .await
    .expect("stderr reader");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reached
}
