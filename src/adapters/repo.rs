//! The bot's own clone of the platform repo: git through its command line (arguments passed
//! as a vector, never through a shell), files read and written inside the checkout only.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};

use super::Error;
use crate::config::{RepoConfig, StringMap};
use crate::redact::scrub_url_credentials;

/// How git reaches an SSH remote, when the bot was started with it: passed on to git (a
/// command, not a secret), as everything else of the bot's environment is not.
const GIT_SSH_ENV: &[&str] = &["GIT_SSH_COMMAND", "GIT_SSH"];

/// The checkout. Everything that reads or writes it goes through a [`Checkout`], this
/// process's turn at it: the checkout has one working tree, and repo steps of concurrent runs
/// take turns (a read beside another run's write could see it half made).
pub struct Repo {
    cfg: RepoConfig,
    turn: tokio::sync::Mutex<()>,
}

/// The checkout while this process's turn at it lasts (until dropped). Held from a step's
/// fetch to its push, so the plan checked against the approval is the one written.
pub struct Checkout<'a> {
    repo: &'a Repo,
    _turn: tokio::sync::MutexGuard<'a, ()>,
}

/// How the checkout relates to its remote branch after a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sync {
    /// Local commits not pushed yet (an interrupted apply pushes them).
    pub ahead: u32,
}

impl Repo {
    pub fn new(cfg: RepoConfig) -> Self {
        Self {
            cfg,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits for this process's turn at the checkout.
    pub async fn lock(&self) -> Checkout<'_> {
        Checkout {
            repo: self,
            _turn: self.turn.lock().await,
        }
    }

    async fn git_in(&self, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        let mut env = StringMap::from([
            ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
            ("GIT_AUTHOR_NAME".to_owned(), self.cfg.author_name.clone()),
            ("GIT_AUTHOR_EMAIL".to_owned(), self.cfg.author_email.clone()),
            (
                "GIT_COMMITTER_NAME".to_owned(),
                self.cfg.author_name.clone(),
            ),
            (
                "GIT_COMMITTER_EMAIL".to_owned(),
                self.cfg.author_email.clone(),
            ),
        ]);
        for name in GIT_SSH_ENV {
            if let Ok(v) = std::env::var(name) {
                env.insert((*name).to_owned(), v);
            }
        }
        // The remote may carry credentials (https://user:token@host/...): never in a message.
        let shown = || scrub_url_credentials(&args.join(" ")).into_owned();
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            super::child_command("git", &env)
                .args(args)
                .current_dir(dir)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| anyhow!("git {} timed out after 120 s", shown()))?
        .with_context(|| format!("cannot run git {}", shown()))?;
        if !out.status.success() {
            anyhow::bail!(
                "git {} failed: {}",
                shown(),
                scrub_url_credentials(String::from_utf8_lossy(&out.stderr).trim())
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Checkout<'_> {
    /// The checkout's directory (the deploy command runs in it, during the turn).
    pub fn root(&self) -> &Path {
        &self.repo.cfg.checkout
    }

    async fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        self.repo.git_in(self.root(), args).await
    }

    /// Clones when missing, fetches, and refuses a dirty tree or a diverged branch; a checkout
    /// that is only behind is fast-forwarded.
    pub async fn sync(&self) -> Result<Sync, Error> {
        let co = &self.repo.cfg.checkout;
        if !co.join(".git").exists() {
            let parent = co
                .parent()
                .context("checkout path has no parent")
                .map_err(Error::Internal)?;
            std::fs::create_dir_all(parent).map_err(|e| Error::Internal(e.into()))?;
            // Clone beside the target and rename: an interrupted clone never leaves a
            // half-made checkout in the way of the next attempt.
            let name = co
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("checkout");
            let partial = parent.join(format!(".{name}.partial"));
            let _ = std::fs::remove_dir_all(&partial);
            let target = partial.to_string_lossy().into_owned();
            self.repo
                .git_in(
                    parent,
                    &[
                        "clone",
                        "--quiet",
                        "--branch",
                        &self.repo.cfg.branch,
                        &self.repo.cfg.remote,
                        &target,
                    ],
                )
                .await
                .map_err(Error::Transient)?;
            if co.exists()
                && std::fs::read_dir(co)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false)
            {
                std::fs::remove_dir(co).ok();
            }
            std::fs::rename(&partial, co).map_err(|e| {
                Error::refused(format!(
                    "cannot move the fresh clone to {}: {e}; is something else there?",
                    co.display()
                ))
            })?;
        }
        self.git(&["fetch", "--quiet", "origin"])
            .await
            .map_err(Error::Transient)?;
        let dirty = self.git(&["status", "--porcelain"]).await?;
        if !dirty.trim().is_empty() {
            return Err(Error::refused(format!(
                "the bot's checkout {} has uncommitted changes; nothing was changed. Commit or discard them by hand:\n{}",
                co.display(),
                dirty.trim_end()
            )));
        }
        let branch = self.git(&["rev-parse", "--abbrev-ref", "HEAD"]).await?;
        if branch.trim() != self.repo.cfg.branch {
            return Err(Error::refused(format!(
                "the bot's checkout {} is on branch `{}`, not `{}`; check out {} by hand",
                co.display(),
                branch.trim(),
                self.repo.cfg.branch,
                self.repo.cfg.branch
            )));
        }
        let counts = self
            .git(&[
                "rev-list",
                "--left-right",
                "--count",
                &format!("HEAD...origin/{}", self.repo.cfg.branch),
            ])
            .await?;
        let mut it = counts
            .split_whitespace()
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let (ahead, behind) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        if ahead > 0 && behind > 0 {
            return Err(Error::refused(format!(
                "the bot's checkout {} has diverged from origin/{}: {ahead} local and {behind} remote commits. \
                 Rebase or reset it by hand; nothing was changed.",
                co.display(),
                self.repo.cfg.branch
            )));
        }
        if behind > 0 {
            self.git(&[
                "merge",
                "--quiet",
                "--ff-only",
                &format!("origin/{}", self.repo.cfg.branch),
            ])
            .await?;
        }
        Ok(Sync { ahead })
    }

    /// A path inside the checkout; refuses anything that could leave it.
    fn path(&self, rel: &str) -> Result<PathBuf, Error> {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::Internal(anyhow!(
                "repo path {rel} leaves the checkout"
            )));
        }
        Ok(self.repo.cfg.checkout.join(p))
    }

    pub fn read(&self, rel: &str) -> Result<Option<String>, Error> {
        match std::fs::read_to_string(self.path(rel)?) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Internal(anyhow!("reading {rel}: {e}"))),
        }
    }

    fn write(&self, rel: &str, text: &str) -> Result<(), Error> {
        let p = self.path(rel)?;
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Internal(anyhow!("creating {}: {e}", dir.display())))?;
        }
        std::fs::write(&p, text).map_err(|e| Error::Internal(anyhow!("writing {rel}: {e}")))
    }

    /// The names of the directories directly under `rel`, sorted; none when `rel` is missing.
    pub fn subdirs(&self, rel: &str) -> Result<Vec<String>, Error> {
        let base = self.path(rel)?;
        let entries = match std::fs::read_dir(&base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::Internal(anyhow!("listing {rel}: {e}"))),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::Internal(anyhow!("listing {rel}: {e}")))?;
            if entry.path().is_dir() {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every file under `rel` (a directory), as paths relative to it, sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, Error> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let p = entry?.path();
                if p.is_dir() {
                    walk(base, &p, out)?;
                } else if let Ok(r) = p.strip_prefix(base) {
                    out.push(r.to_string_lossy().into_owned());
                }
            }
            Ok(())
        }
        let base = self.path(rel)?;
        let mut out = Vec::new();
        walk(&base, &base, &mut out).map_err(|e| Error::Internal(anyhow!("listing {rel}: {e}")))?;
        out.sort();
        Ok(out)
    }

    /// Stages `paths`, commits them when anything changed, and pushes every unpushed commit.
    /// Returns the commit at HEAD.
    async fn commit_and_push(&self, paths: &[String], message: &str) -> Result<String, Error> {
        if !paths.is_empty() {
            let mut add = vec!["add", "--"];
            add.extend(paths.iter().map(String::as_str));
            self.git(&add).await?;
        }
        let staged = self.git(&["diff", "--cached", "--name-only"]).await?;
        if !staged.trim().is_empty() {
            self.git(&["commit", "--quiet", "-m", message]).await?;
        }
        self.git(&[
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:{}", self.repo.cfg.branch),
        ])
        .await
        .map_err(Error::Transient)?;
        Ok(self.git(&["rev-parse", "HEAD"]).await?.trim().to_owned())
    }

    /// Writes `files` (path, text), removes `removed` (files or whole directories), commits
    /// them with `message` and pushes; on any failure the
    /// working tree is restored and the commit made here undone, so a failed step leaves
    /// nothing half-written. (A push refused because origin moved is retried by the engine: the
    /// retry fetches, plans again and writes only if the plan is still the approved one.)
    pub async fn write_commit_push(
        &self,
        files: &[(String, String)],
        removed: &[String],
        message: &str,
    ) -> Result<String, Error> {
        let mut paths: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
        let before = self.git(&["rev-parse", "HEAD"]).await?.trim().to_owned();
        let result = async {
            for (path, text) in files {
                self.write(path, text)?;
            }
            for path in removed {
                self.path(path)?;
                self.git(&["rm", "-r", "-q", "--ignore-unmatch", "--", path])
                    .await?;
            }
            self.commit_and_push(&paths, message).await
        }
        .await;
        paths.extend(removed.iter().cloned());
        if result.is_err() {
            self.git(&["reset", "--quiet", "--mixed", &before])
                .await
                .ok();
            self.restore(&paths).await?;
        }
        result
    }

    /// The commits in the checkout that origin does not have yet, with their full diff: what a
    /// push would add besides the step's own files (left by an apply interrupted after its
    /// commit). Empty when there are none.
    pub async fn unpushed(&self) -> Result<String, Error> {
        let range = format!("origin/{}..HEAD", self.repo.cfg.branch);
        let log = self.git(&["log", "--format=%h %s", &range]).await?;
        if log.trim().is_empty() {
            return Ok(String::new());
        }
        let diff = self
            .git(&["diff", &format!("origin/{}", self.repo.cfg.branch), "HEAD"])
            .await?;
        Ok(format!(
            "push the commit(s) already made in the bot's checkout:\n{log}{diff}"
        ))
    }

    /// Discards uncommitted changes to `paths` (a failed apply leaves nothing behind).
    async fn restore(&self, paths: &[String]) -> Result<(), Error> {
        let mut reset = vec!["reset", "--quiet", "--"];
        reset.extend(paths.iter().map(String::as_str));
        self.git(&reset).await.ok();
        let mut clean = vec!["checkout", "--quiet", "--"];
        clean.extend(paths.iter().map(String::as_str));
        self.git(&clean).await.ok();
        let mut rm = vec!["clean", "-fdq", "--"];
        rm.extend(paths.iter().map(String::as_str));
        self.git(&rm).await.ok();
        Ok(())
    }
}
