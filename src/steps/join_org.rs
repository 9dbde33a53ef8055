//! Runbook "Database steps" 2c: the Person joins an existing Org as a member.

use super::common::{onboard, person_id, tenant_conn, tenant_write};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::tenant_db::{self, OrgRow};
use crate::domain::{OperatingMode, Slug};
use async_trait::async_trait;

pub struct JoinOrg;

const ROLE: &str = "member";

fn org_slug(cx: &StepContext) -> Result<&Slug, StepError> {
    match &onboard(cx)?.mode {
        OperatingMode::PersonJoinsOrg { org_slug } => Ok(org_slug),
        _ => Err(StepError::Internal(anyhow::anyhow!(
            "join-org in a run whose mode joins no org"
        ))),
    }
}

async fn existing_org(conn: &mut sqlx::PgConnection, slug: &Slug) -> Result<OrgRow, StepError> {
    tenant_db::find_org(conn, slug)
        .await?
        .ok_or_else(|| StepError::refused(format!("there is no org `{slug}` to join")))
}

/// The plan, the org and the person, from what `conn` (a connection, or the write's
/// transaction) sees.
/// The Person is named by slug (the SQL finds the id), so the plan is the same before and after
/// create-person; `ahead`: planned before it, the Person may not exist yet.
async fn planned(
    cx: &StepContext,
    conn: &mut sqlx::PgConnection,
    ahead: bool,
) -> Result<(Plan, OrgRow), StepError> {
    let slug = org_slug(cx)?;
    let person = &onboard(cx)?.slug;
    tenant_db::ensure_authoritative(conn, &cx.services.config.tenant_authoritative).await?;
    let user = if ahead {
        tenant_db::find_user(conn, person).await?.map(|u| u.id)
    } else {
        Some(person_id(cx, conn).await?)
    };
    let org = existing_org(conn, slug).await?;
    if !ahead {
        cx.set_org_id(org.id).await?;
    }
    let role = match user {
        Some(user) => tenant_db::membership(conn, org.id, user).await?,
        None => None,
    };
    let plan = match role {
        Some(role) if role == ROLE => Plan::AlreadyDone {
            evidence: format!(
                "user `{person}` is already a member of `{slug}` ({})",
                org.id
            ),
        },
        Some(role) => {
            return Err(StepError::Refused(format!(
                "user `{person}` is already `{role}` of org `{slug}`; joining as `{ROLE}` would change that. Nothing was changed."
            )));
        }
        // The org's id is part of the plan: if the org is replaced after the approval, the
        // plan made again in the write's transaction differs and nothing is written.
        None => Plan::Change {
            summary: format!("add user `{person}` to org `{slug}` ({}) as {ROLE}", org.id),
            detail: tenant_db::show_sql(
                tenant_db::INSERT_MEMBER,
                &[
                    ("org slug", format!("{slug} -> {}", org.id)),
                    ("user slug", person.to_string()),
                    ("role", ROLE.into()),
                ],
            ),
        },
    };
    Ok((plan, org))
}

#[async_trait]
impl Step for JoinOrg {
    fn id(&self) -> StepName {
        StepName::JoinOrg
    }

    fn description(&self) -> &'static str {
        "Database 2c: INSERT the Person into an existing Org's org_members as member"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let mut conn = tenant_conn(cx).await?;
        Ok(planned(cx, &mut conn, false).await?.0)
    }

    /// Up front, before create-person: the same plan, as it will be once the Person exists.
    async fn plan_ahead(&self, cx: &StepContext) -> Result<(Plan, Option<String>), StepError> {
        let mut conn = tenant_conn(cx).await?;
        let (plan, _) = planned(cx, &mut conn, true).await?;
        Ok((plan, Some(crate::messages::person_presumes().to_owned())))
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let slug = org_slug(cx)?;
        // Planned again inside the write's transaction, which reads one snapshot: the org the
        // member row goes into is the one (by id) the approved plan names.
        let mut tx = tenant_write(cx).await?;
        let (now, org) = planned(cx, &mut tx, false).await?;
        plan.ensure_current(self.name(), &now)?;
        tenant_db::insert_member(&mut tx, slug, &onboard(cx)?.slug, ROLE).await?;
        tx.commit().await?;
        cx.set_org_id(org.id).await?;
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let slug = org_slug(cx)?;
        let mut conn = tenant_conn(cx).await?;
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
