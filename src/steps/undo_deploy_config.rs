//! Abandon: undo deploy-config in one commit: the onboarding's site directories removed and
//! its brand-mail line taken out, pushed. Only sites the bot has on record for this tenant.

use async_trait::async_trait;

use super::common::{self, RepoEdits, RepoWrite, Site, onboard};
use super::ownership;
use super::{CheckReport, StepContext, StepError, StepName};
use crate::adapters::repo::Checkout;
use crate::domain::MailPlan;
use crate::messages;
use crate::templating;

pub struct UndoDeployConfig;

/// What is left of the onboarding in the repo: the files of its sites, and the brand-mail
/// config as it would be without its lines (path, now, after) when it has them.
async fn leftovers(
    cx: &StepContext,
    repo: &Checkout<'_>,
) -> Result<(Vec<(String, String)>, Option<(String, String, String)>), StepError> {
    let req = onboard(cx)?;
    let mut files = Vec::new();
    for domain in &req.domains {
        let site = Site::of(cx, domain)?;
        let found = repo.list(site.dir()).unwrap_or_default();
        if found.is_empty() {
            continue;
        }
        // Only a site the bot created for this tenant: never another tenant's directory.
        let record = ownership::record(cx, domain).await?;
        if record.as_ref().is_none_or(|r| r.slug != req.slug.as_str()) {
            return Err(StepError::refused(format!(
                "{} is in the repo but {}; nothing was removed",
                site.dir(),
                messages::site_owner(record.as_ref())
            )));
        }
        for rel in found {
            let path = site.file(&rel);
            let text = repo.read(&path)?.unwrap_or_default();
            files.push((path, text));
        }
    }
    let mut brand = None;
    if req.mail != MailPlan::None {
        let file = cx.services.config.deploy.brand_mail_file.clone();
        if let Some(now) = repo.read(&file)? {
            let mut after = now.clone();
            for domain in &req.domains {
                after = templating::brand_mail_conf_without(&after, domain);
            }
            if after != now {
                brand = Some((file, now, after));
            }
        }
    }
    Ok((files, brand))
}

#[async_trait]
impl RepoWrite for UndoDeployConfig {
    fn id(&self) -> StepName {
        StepName::UndoDeployConfig
    }

    fn description(&self) -> &'static str {
        "Undo deploy config: remove the site directory and the brand-mail line, one commit, pushed"
    }

    async fn edits(&self, cx: &StepContext, repo: &Checkout<'_>) -> Result<RepoEdits, StepError> {
        let req = onboard(cx)?;
        let (files, brand) = leftovers(cx, repo).await?;
        let dirs: Vec<String> = req.domains.iter().map(|d| Site::repo_dir(cx, d)).collect();
        let mut diffs: String = files
            .iter()
            .map(|(path, _)| format!("remove {path}\n"))
            .collect();
        let mut rewrites = Vec::new();
        if let Some((path, now, after)) = brand {
            diffs.push_str(&templating::unified_diff(&path, Some(&now), &after));
            rewrites.push((path, after));
        }
        Ok(RepoEdits {
            summary: format!(
                "remove {} file(s) of {} from the platform repo{}, commit and push",
                files.len(),
                dirs.join(", "),
                if rewrites.is_empty() {
                    ""
                } else {
                    " and its brand-mail line"
                }
            ),
            diffs,
            files: rewrites,
            removed: files,
            done: format!("{} not in the repo", dirs.join(", ")),
        })
    }

    fn subject(&self, cx: &StepContext, _files: &[(String, String)]) -> Result<String, StepError> {
        let req = onboard(cx)?;
        Ok(format!(
            "abandon {}: remove the deploy config of {}",
            req.slug,
            req.domains
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn note(&self, cx: &StepContext) -> Result<Option<String>, StepError> {
        Ok(Some(common::abandon_note(cx)?))
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let repo = cx.services.repo.lock().await;
        let sync = repo.sync().await?;
        let (files, brand) = leftovers(cx, &repo).await?;
        if let Some((path, _)) = files.first() {
            return Ok(CheckReport::failed(format!("{path} is still in the repo")));
        }
        if let Some((path, _, _)) = brand {
            return Ok(CheckReport::failed(format!(
                "{path} still lists the domain"
            )));
        }
        if sync.ahead > 0 {
            return Ok(CheckReport::failed(format!(
                "{} commit(s) not pushed",
                sync.ahead
            )));
        }
        Ok(CheckReport::ok(
            "the site directories and brand-mail lines are gone from the repo head, pushed",
        ))
    }
}
