//! Abandon, last: the bot's own record that the onboarding's sites are this tenant's is
//! released, so the slug and the domains are free again (a fresh onboarding may take them).

use async_trait::async_trait;

use super::common::{abandon, onboard};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::state::sites;

pub struct ForgetSite;

/// The domains still on record for the tenant.
async fn on_record(cx: &StepContext) -> Result<Vec<String>, StepError> {
    let req = onboard(cx)?;
    let mut out = Vec::new();
    for d in &req.domains {
        if sites::get(cx.state_db()?, d.as_str())
            .await?
            .is_some_and(|s| s.slug == req.slug.as_str())
        {
            out.push(d.to_string());
        }
    }
    Ok(out)
}

#[async_trait]
impl Step for ForgetSite {
    fn id(&self) -> StepName {
        StepName::ForgetSite
    }

    fn description(&self) -> &'static str {
        "Release the bot's site ownership record of the domains, so the slug and domains are free again"
    }

    /// The bot's own records, not production.
    fn writes_production(&self) -> bool {
        false
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let left = on_record(cx).await?;
        if left.is_empty() {
            return Ok(Plan::AlreadyDone {
                evidence: "no site on record for the tenant".into(),
            });
        }
        Ok(Plan::Change {
            summary: format!("release the site record(s) of {}", left.join(", ")),
            detail: format!(
                "delete the bot's sites record(s) of {} (slug {})",
                left.join(", "),
                onboard(cx)?.slug
            ),
        })
    }

    async fn apply(&self, cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        let req = onboard(cx)?;
        let run = abandon(cx)?.run_id;
        for d in on_record(cx).await? {
            sites::release(cx.state_db()?, &d, req.slug.as_str()).await?;
            cx.log(&format!(
                "{d}: site record released (onboarded by run {run})"
            ));
        }
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let left = on_record(cx).await?;
        Ok(if left.is_empty() {
            CheckReport::ok("the slug and domains are free again")
        } else {
            CheckReport::failed(format!("still on record: {}", left.join(", ")))
        })
    }
}
