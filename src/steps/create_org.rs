//! Runbook "Database steps" 2b: the Person owns a new Org: the `orgs` row and the owner's
//! `org_members` row, in one transaction.

use async_trait::async_trait;
use uuid::Uuid;

use super::common::{onboard, person_id, tenant_conn, tenant_write};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::tenant_db;
use crate::domain::{DisplayName, OperatingMode, Slug};
use crate::messages;

pub struct CreateOrg;

/// What is missing for the org, or a conflict.
enum OrgState {
    Complete(Uuid),
    NeedsOrgAndOwner,
    NeedsOwner(Uuid),
}

async fn org_state(
    conn: &mut sqlx::PgConnection,
    slug: &Slug,
    name: &DisplayName,
    owner: Option<Uuid>,
) -> Result<OrgState, StepError> {
    let Some(org) = tenant_db::find_org(conn, slug).await? else {
        return Ok(OrgState::NeedsOrgAndOwner);
    };
    // Planned ahead, before the Person exists: an existing org cannot be theirs.
    let Some(owner) = owner else {
        return Err(StepError::Refused(format!(
            "org `{slug}` already exists ({}) and its owner-to-be has no users row yet",
            org.id
        )));
    };
    let mut diffs = Vec::new();
    if org.owner_id != owner {
        diffs.push(format!(
            "  owner_id: existing {}, requested {owner}",
            org.owner_id
        ));
    }
    if org.name != name.as_str() {
        diffs.push(format!(
            "  name: existing {:?}, requested {:?}",
            org.name,
            name.as_str()
        ));
    }
    if !diffs.is_empty() {
        return Err(StepError::Refused(format!(
            "org `{slug}` already exists ({}) with different data; nothing was changed:\n{}",
            org.id,
            diffs.join("\n")
        )));
    }
    match tenant_db::membership(conn, org.id, owner).await?.as_deref() {
        Some("owner") => Ok(OrgState::Complete(org.id)),
        Some(other) => Err(StepError::Refused(format!(
            "user {owner} is `{other}` of org `{slug}`, not its owner; nothing was changed"
        ))),
        None => Ok(OrgState::NeedsOwner(org.id)),
    }
}

fn parts(cx: &StepContext) -> Result<(&Slug, &DisplayName), StepError> {
    match &onboard(cx)?.mode {
        OperatingMode::PersonOwnsOrg { org_slug, org_name } => Ok((org_slug, org_name)),
        _ => Err(StepError::Internal(anyhow::anyhow!(
            "create-org in a run whose mode owns no org"
        ))),
    }
}

/// The plan and what is missing, from what `conn` (a connection, or the write's transaction)
/// sees. The owner is named by the Person's slug (the SQL finds the id), so the plan is the
/// same before and after create-person; `ahead`: planned before it, the Person may not exist.
async fn planned(
    cx: &StepContext,
    conn: &mut sqlx::PgConnection,
    ahead: bool,
) -> Result<(Plan, OrgState), StepError> {
    let (slug, name) = parts(cx)?;
    let person = &onboard(cx)?.slug;
    tenant_db::ensure_authoritative(conn, &cx.services.config.tenant_authoritative).await?;
    let owner = if ahead {
        tenant_db::find_user(conn, person).await?.map(|u| u.id)
    } else {
        Some(person_id(cx, conn).await?)
    };
    let member_sql = tenant_db::show_sql(
        tenant_db::INSERT_MEMBER,
        &[
            ("org slug", slug.to_string()),
            ("user slug", person.to_string()),
            ("role", "owner".into()),
        ],
    );
    let state = org_state(conn, slug, name, owner).await?;
    let plan = match &state {
        OrgState::Complete(id) => {
            cx.set_org_id(*id).await?;
            Plan::AlreadyDone {
                evidence: format!(
                    "org `{slug}` ({id}) exists, owned by user `{person}`, with its owner membership"
                ),
            }
        }
        OrgState::NeedsOwner(id) => Plan::Change {
            summary: format!("add user `{person}` as owner of the existing org `{slug}` ({id})"),
            detail: format!("BEGIN;\n{member_sql}\nCOMMIT;"),
        },
        OrgState::NeedsOrgAndOwner => Plan::Change {
            summary: format!("create org `{slug}` owned by user `{person}`"),
            detail: format!(
                "BEGIN;\n{}\n{member_sql}\nCOMMIT;",
                tenant_db::show_sql(
                    tenant_db::INSERT_ORG,
                    &[
                        ("slug", slug.to_string()),
                        ("name", name.to_string()),
                        ("owner slug", person.to_string())
                    ]
                )
            ),
        },
    };
    Ok((plan, state))
}

#[async_trait]
impl Step for CreateOrg {
    fn id(&self) -> StepName {
        StepName::CreateOrg
    }

    fn description(&self) -> &'static str {
        "Database 2b: INSERT the Org into orgs and the owner into org_members, one transaction"
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
        Ok((plan, Some(messages::person_presumes().to_owned())))
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let (slug, name) = parts(cx)?;
        // Planned again inside the write's transaction (see create-person): the rows inserted
        // are the ones the approved plan shows.
        let mut tx = tenant_write(cx).await?;
        let (now, state) = planned(cx, &mut tx, false).await?;
        plan.ensure_current(self.name(), &now)?;
        let person = &onboard(cx)?.slug;
        let org_id = match state {
            OrgState::Complete(id) => id,
            OrgState::NeedsOwner(id) => {
                tenant_db::insert_member(&mut tx, slug, person, "owner").await?;
                id
            }
            OrgState::NeedsOrgAndOwner => {
                let id = tenant_db::insert_org(&mut tx, slug, name, person).await?;
                tenant_db::insert_member(&mut tx, slug, person, "owner").await?;
                id
            }
        };
        // Both rows or neither: a failure above drops the transaction and rolls back.
        tx.commit().await?;
        cx.log(&format!("orgs.id = {org_id}"));
        cx.set_org_id(org_id).await?;
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let (slug, name) = parts(cx)?;
        let mut conn = tenant_conn(cx).await?;
        let owner = person_id(cx, &mut conn).await?;
        Ok(match org_state(&mut conn, slug, name, Some(owner)).await {
            Ok(OrgState::Complete(id)) => CheckReport::ok(format!(
                "org `{slug}` ({id}) owned by {owner}, owner membership present"
            )),
            Ok(_) => {
                CheckReport::failed(format!("org `{slug}` or its owner membership is missing"))
            }
            Err(e) => CheckReport::failed(e.to_string()),
        })
    }
}
