//! Abandon, first: `held_back: true` again in each released site's services.yaml (commit,
//! push), before anything is taken down, so no deploy publishes a site being undone.

use async_trait::async_trait;

use super::common::{self, RepoEdits, RepoWrite, Site, onboard};
use super::{CheckReport, StepContext, StepError, StepName};
use crate::adapters::repo::Checkout;
use crate::templating;

pub struct UndoRelease;

/// (path, current text, held-back text) for every site of the onboarding that is released. A
/// site whose services.yaml is gone has nothing to hold back.
fn released(
    cx: &StepContext,
    repo: &Checkout<'_>,
) -> Result<Vec<(String, String, String)>, StepError> {
    let mut out = Vec::new();
    for domain in &onboard(cx)?.domains {
        let path = Site::of(cx, domain)?.services_yaml();
        let Some(text) = repo.read(&path)? else {
            continue;
        };
        if !templating::held_back(&text)
            .map_err(|e| StepError::refused(format!("{path}: {e:#}")))?
        {
            let held = templating::set_held_back(&text, true)
                .map_err(|e| StepError::refused(format!("{path}: {e:#}")))?;
            out.push((path, text, held));
        }
    }
    Ok(out)
}

#[async_trait]
impl RepoWrite for UndoRelease {
    fn id(&self) -> StepName {
        StepName::UndoRelease
    }

    fn description(&self) -> &'static str {
        "Undo release: held_back: true again in services.yaml (comments kept), commit and push"
    }

    async fn edits(&self, cx: &StepContext, repo: &Checkout<'_>) -> Result<RepoEdits, StepError> {
        let released = released(cx, repo)?;
        Ok(RepoEdits::rewrites(
            format!(
                "hold back {} site(s) again: held_back: true",
                released.len()
            ),
            released
                .into_iter()
                .map(|(path, old, new)| (path, Some(old), new))
                .collect(),
            "no site of this onboarding is released",
        ))
    }

    fn subject(&self, cx: &StepContext, files: &[(String, String)]) -> Result<String, StepError> {
        Ok(format!(
            "abandon {}: held_back: true again in {}",
            onboard(cx)?.slug,
            common::paths(files)
        ))
    }

    fn note(&self, cx: &StepContext) -> Result<Option<String>, StepError> {
        Ok(Some(common::abandon_note(cx)?))
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let repo = cx.services.repo.lock().await;
        Ok(match released(cx, &repo)?.first() {
            None => CheckReport::ok("held_back: true (or no site), committed and pushed"),
            Some((path, _, _)) => CheckReport::failed(format!("{path} is still released")),
        })
    }
}
