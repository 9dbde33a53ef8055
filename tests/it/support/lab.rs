//! The test harness's view of the lab (`scripts/lab up`): a fresh pair of databases per test
//! (the bot's state, and a copy of the platform's tenant DB), and a config pointing at them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

    /// A fact the lab exports in its lab.env (`LAB_VPS1_IPV4`, ...).
    pub fn env(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("lab.env")).expect("the lab's lab.env");
        let prefix = format!("export {name}=");
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| {
                panic!("lab.env has no {name}: is the lab up to date (scripts/lab up)?")
            });
        value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value)
            .replace("'\\''", "'")
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
            sites: Mutex::new(Vec::new()),
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
    /// The lab VPS sites this test uses, held until it ends (see [`TestDbs::own_vps_sites`]).
    sites: Mutex<Vec<SiteLease>>,
}

/// Lab-wide locks this process holds on test domains: the lock file and how many tests of
/// this process hold it.
static SITE_LOCKS: Mutex<BTreeMap<String, (std::fs::File, usize)>> = Mutex::new(BTreeMap::new());

/// A test's hold on some domains of the lab VPS; released when the test's `TestDbs` drops.
struct SiteLease(Vec<String>);

impl Drop for SiteLease {
    fn drop(&mut self) {
        let mut locks = SITE_LOCKS.lock().unwrap_or_else(|e| e.into_inner());
        for d in &self.0 {
            if let Some(held) = locks.get_mut(d) {
                held.1 -= 1;
                if held.1 == 0 {
                    // Closing the file releases the lock for other processes.
                    locks.remove(d);
                }
            }
        }
    }
}

/// A test that passed drops its databases as it ends (each test makes a pair; a session of
/// test runs would otherwise fill the disk). A failed test's are kept to look into; scripts/test
/// drops every test database at its start.
impl Drop for TestDbs<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // On a thread of its own with its own runtime: Drop cannot await, and the test's
        // runtime may be a current-thread one. WITH (FORCE) ends the connections the test's
        // bot and pools still hold.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime to drop the test's databases");
                rt.block_on(async {
                    let admin = self.lab.admin("postgres").await;
                    for db in [&self.state, &self.platform] {
                        let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                        if let Err(e) = admin.execute(sqlx::AssertSqlSafe(drop)).await {
                            eprintln!("could not drop the test database {db}: {e}");
                        }
                    }
                    admin.close().await;
                });
            });
        });
    }
}

impl TestDbs<'_> {
    /// Takes the domains this test onboards onto the shared lab VPS for the rest of the test,
    /// and clears what earlier runs left there for them ([`Lab::clear_vps_site`]). The test
    /// starts with a fresh state database, so without this a re-run would rightly be refused
    /// the domain as somebody else's site. The hold is a lock file per domain in the lab: the
    /// same test run at the same time from another checkout waits here instead of having its
    /// site removed under it. All of a test's domains are taken at once, in order, so two
    /// processes never wait for each other.
    pub async fn own_vps_sites(&self, domains: &[&str]) {
        let mut domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        domains.sort();
        domains.dedup();
        for d in &domains {
            let held_here = {
                let mut locks = SITE_LOCKS.lock().unwrap();
                locks.get_mut(d).map(|held| held.1 += 1).is_some()
            };
            let lock =
                (!held_here).then(|| self.lab.dir.join("tmp").join(format!("test-site-{d}.lock")));
            let (lab_dir, domain) = (self.lab.dir.clone(), d.clone());
            // Locks are waited for on a thread of their own: the test's timeout still applies,
            // and a process that ends releases them.
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let file = lock.map(|path| {
                    let file = std::fs::File::options()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    file.lock().expect("lock the test site");
                    file
                });
                Lab {
                    dir: lab_dir,
                    admin_password: String::new(),
                }
                .clear_vps_site(&domain);
                let _ = tx.send(file);
            });
            let file = rx
                .await
                .expect("clearing the test site on the lab VPS failed");
            if let Some(file) = file {
                SITE_LOCKS.lock().unwrap().insert(d.clone(), (file, 1));
            }
        }
        self.sites.lock().unwrap().push(SiteLease(domains));
    }

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
        Self::zone_text_at(zone, "127.0.0.1", extra)
    }

    /// [`Lab::zone_text`] with the apex A record at `ipv4`.
    fn zone_text_at(zone: &str, ipv4: &str, extra: &str) -> String {
        format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n@ NS ns1.lab.test.\n\
             @ A {ipv4}\nwww CNAME @\n{extra}\n"
        )
    }

    /// The zone of `domain` as a registrar holds it once its records point at vps-1: apex A and
    /// AAAA at vps-1's addresses, www CNAME to the apex.
    pub fn vps1_zone_text(&self, domain: &str) -> String {
        let aaaa = format!("@ AAAA {}", self.env("LAB_VPS1_IPV6"));
        Self::zone_text_at(domain, &self.env("LAB_VPS1_IPV4"), &aaaa)
    }

    /// Makes the web records of each domain hold (what the DNS step waits for).
    pub fn serve_domains(&self, domains: &[&str]) {
        for d in domains {
            self.put_zone(d, &Self::zone_text(d, ""));
        }
    }

    /// Removes what earlier runs of a test left on the shared lab VPS for `domain` and its
    /// www: the nginx site, the webroot, certbot's lineage. Only under the domain's lock, see
    /// [`TestDbs::own_vps_sites`].
    ///
    /// It holds certbot's lock on the VPS (`cert.lock_file`, which every certbot of the bot
    /// runs under) meanwhile: certbot's nginx plugin reads and may write back every site
    /// file, so one running now could bring a removed site back. The VPS is then as a fresh lab
    /// has it: no entry in `sites-enabled/` (what the platform's deploy restores if its `nginx
    /// -t` fails), nginx reloaded so that it no longer serves the site.
    fn clear_vps_site(&self, domain: &str) {
        // vps-0's tree, and vps-1's (whose nginx answers on its own address).
        self.clear_site_on(&self.dir.join("vps"), "127.0.0.1:80", domain);
        if self.dir.join("vps-1/nginx").is_dir() {
            let addr = format!("{}:80", self.env("LAB_VPS1_IPV4"));
            self.clear_site_on(&self.dir.join("vps-1"), &addr, domain);
        }
    }

    /// [`Lab::clear_vps_site`] on one VPS: its tree, and the address its nginx answers on.
    fn clear_site_on(&self, vps: &Path, addr: &str, domain: &str) {
        let vps = vps.to_path_buf();
        let names = [domain.to_owned(), format!("www.{domain}")];
        let certbot = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(vps.join("certbot.lock"))
            .expect("open the lab's certbot lock");
        certbot.lock().expect("take the lab's certbot lock");
        let mut removed = false;
        for name in &names {
            removed |= std::fs::remove_file(vps.join("nginx/sites-enabled").join(name)).is_ok();
            let _ = std::fs::remove_file(vps.join("nginx/sites-available").join(name));
            let _ = std::fs::remove_dir_all(vps.join("www").join(name));
        }
        if removed {
            // The running nginx serves the removed site until it reloads, and the bot would
            // take what it serves (a stub, a redirect to HTTPS) for its own deploy.
            let _ = std::process::Command::new(vps.join("bin/nginx"))
                .args(["-s", "reload"])
                .status();
            for name in &names {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while http_status(addr, name) != Some(404) {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "nginx still serves {name} 20 s after a reload; does `nginx -t` pass?"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
            // A config parse takes milliseconds; one (`nginx -t` of a deploy) that opened the
            // site file before it was removed is long over after this.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        for name in &names {
            for sub in ["live", "archive", "renewal"] {
                let dir = vps.join("letsencrypt").join(sub);
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let file = entry.file_name().to_string_lossy().into_owned();
                    let stem = file.strip_suffix(".conf").unwrap_or(&file);
                    // certbot names a second lineage of a name `{name}-0001`.
                    let base = match stem.rsplit_once('-') {
                        Some((b, n)) if n.len() == 4 && n.bytes().all(|c| c.is_ascii_digit()) => b,
                        _ => stem,
                    };
                    if base == name {
                        let _ = std::fs::remove_file(entry.path());
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        drop(certbot);
    }
}

/// The HTTP status the lab VPS's nginx answers for `http://{host}/` (its default server
/// answers 404 for a host it does not serve).
fn http_status(addr: &str, host: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(tcp, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
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

/// Runs git in `dir`; fails the test with git's stderr when it fails. Returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `path` as committed on `main` of this test's platform repo (`origin.git` in the test's
/// directory `tmp`, see [`TestDbs::write_config`]), if it is there.
pub fn origin_file(tmp: &Path, path: &str) -> Option<String> {
    origin_file_at(tmp, "main", path)
}

/// [`origin_file`] as of `rev`.
pub fn origin_file_at(tmp: &Path, rev: &str, path: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["show", &format!("{rev}:{path}")])
        .current_dir(tmp.join("origin.git"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Commits what is staged in `dir` as somebody other than the bot, with `message`.
pub fn commit(dir: &Path, message: &str) -> String {
    git(
        dir,
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@x",
            "commit",
            "-qm",
            message,
        ],
    )
}

/// A person's push to the test's origin: `edit` changes the file at `path`.
pub fn push_change(tmp: &Path, path: &str, edit: impl FnOnce(String) -> String) {
    let origin = tmp.join("origin.git");
    let clone: PathBuf = tmp.join("person");
    if !clone.exists() {
        git(
            tmp,
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        );
    }
    git(&clone, &["pull", "-q", "--ff-only"]);
    let file = clone.join(path);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, edit(text)).unwrap();
    git(&clone, &["add", path]);
    git(
        &clone,
        &[
            "-c",
            "user.name=person",
            "-c",
            "user.email=p@example.com",
            "commit",
            "-qm",
            "a person's change",
        ],
    );
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
}
