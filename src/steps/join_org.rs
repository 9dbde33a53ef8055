//! Runbook "Database steps" 2c: the Person joins an existing Org as a member.

use async_trait::async_trait;
use serde_json::json;

use super::create_org::person_id;
use super::preflight::onboard;
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError};
use crate::adapters::tenant_db::{self, OrgRow};
use crate::domain::OperatingMode;

pub struct JoinOrg;

const ROLE: &str = "member";

fn org_slug(cx: &StepContext) -> Result<&str, StepError> {
    match &onboard(cx)?.mode {
        OperatingMode::PersonJoinsOrg { org_slug } => Ok(org_slug.as_str()),
        _ => Err(StepError::Internal(anyhow::anyhow!(
            "join-org in a run whose mode joins no org"
        ))),
    }
}

async fn existing_org(conn: &mut sqlx::PgConnection, slug: &str) -> Result<OrgRow, StepError> {
    tenant_db::find_org(conn, slug)
        .await?
        .ok_or_else(|| StepError::refused(format!("there is no org `{slug}` to join")))
}

#[async_trait]
impl Step for JoinOrg {
    fn name(&self) -> &'static str {
        "join-org"
    }

    fn description(&self) -> &'static str {
        "Database 2c: INSERT the Person into an existing Org's org_members as member"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let slug = org_slug(cx)?;
        let mut conn = cx.services.tenant_db().await?.acquire().await?;
        tenant_db::ensure_authoritative(&mut conn, &cx.services.config.tenant_authoritative)
            .await?;
        let user = person_id(cx, &mut conn).await?;
        let org = existing_org(&mut conn, slug).await?;
        cx.set_output("org_id", json!(org.id)).await;
        match tenant_db::membership(&mut conn, org.id, user).await? {
            Some(role) if role == ROLE => Ok(Plan::AlreadyDone {
                evidence: format!("user {user} is already a member of `{slug}` ({})", org.id),
            }),
            Some(role) => Err(StepError::Refused(format!(
                "user {user} is already `{role}` of org `{slug}`; joining as `{ROLE}` would change that. Nothing was changed."
            ))),
            // The org's id is part of the plan: if the org is replaced between approval and
            // apply, the plan's hash changes and the approval no longer covers it.
            None => Ok(Plan::Change {
                summary: format!("add {user} to org `{slug}` ({}) as {ROLE}", org.id),
                detail: tenant_db::show_sql(
                    tenant_db::INSERT_MEMBER,
                    &[
                        ("org slug", format!("{slug} -> {}", org.id)),
                        ("user_id", user.to_string()),
                        ("role", ROLE.into()),
                    ],
                ),
            }),
        }
    }

    async fn apply(&self, cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        let slug = org_slug(cx)?;
        let mut tx = cx.services.tenant_db().await?.begin().await?;
        tenant_db::ensure_authoritative(&mut tx, &cx.services.config.tenant_authoritative).await?;
        let user = person_id(cx, &mut tx).await?;
        let org = existing_org(&mut tx, slug).await?;
        if tenant_db::membership(&mut tx, org.id, user)
            .await?
            .is_none()
        {
            tenant_db::insert_member(&mut tx, slug, user, ROLE).await?;
        }
        tx.commit().await?;
        cx.set_output("org_id", json!(org.id)).await;
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let slug = org_slug(cx)?;
        let mut conn = cx.services.tenant_db().await?.acquire().await?;
        let user = person_id(cx, &mut conn).await?;
        let org = existing_org(&mut conn, slug).await?;
        Ok(
            match tenant_db::membership(&mut conn, org.id, user).await? {
                Some(role) if role == ROLE => {
                    CheckReport::ok(format!("org_members ({}, {user}, {ROLE}) present", org.id))
                }
                other => {
                    CheckReport::failed(format!("membership of {user} in `{slug}` is {other:?}"))
                }
            },
        )
    }
}
