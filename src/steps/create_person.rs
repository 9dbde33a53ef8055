//! Runbook "Database steps" 1: create the Person tenant in `users`.

use super::common::{onboard, tenant_conn, tenant_write};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::tenant_db::{self, UserRow};
use async_trait::async_trait;

pub struct CreatePerson;

/// A conflict between the row that exists and the one requested, field by field.
fn user_conflict(existing: &UserRow, email: &str, name: &str) -> Option<String> {
    let mut diffs = Vec::new();
    if existing.email != email {
        diffs.push(format!(
            "  email: existing {:?}, requested {:?}",
            existing.email, email
        ));
    }
    if existing.display_name != name {
        diffs.push(format!(
            "  display_name: existing {:?}, requested {:?}",
            existing.display_name, name
        ));
    }
    (!diffs.is_empty()).then(|| {
        format!(
            "slug `{}` already belongs to user {} with different data; nothing was changed:\n{}",
            existing.slug,
            existing.id,
            diffs.join("\n")
        )
    })
}

/// The plan, from what `conn` (a connection, or the write's transaction) sees.
async fn planned(cx: &StepContext, conn: &mut sqlx::PgConnection) -> Result<Plan, StepError> {
    let req = onboard(cx)?;
    tenant_db::ensure_authoritative(conn, &cx.services.config.tenant_authoritative).await?;
    if let Some(existing) = tenant_db::find_user(conn, &req.slug).await? {
        if let Some(conflict) =
            user_conflict(&existing, req.email.as_str(), req.display_name.as_str())
        {
            return Err(StepError::Refused(conflict));
        }
        cx.set_user_id(existing.id).await?;
        return Ok(Plan::AlreadyDone {
            evidence: format!(
                "users row {} exists for `{}` with the same data",
                existing.id, req.slug
            ),
        });
    }
    Ok(Plan::Change {
        summary: format!("create user `{}` <{}>", req.slug, req.email),
        detail: tenant_db::show_sql(
            tenant_db::INSERT_USER,
            &[
                ("slug", req.slug.to_string()),
                ("email", req.email.to_string()),
                ("display_name", req.display_name.to_string()),
            ],
        ),
    })
}

#[async_trait]
impl Step for CreatePerson {
    fn id(&self) -> StepName {
        StepName::CreatePerson
    }

    fn description(&self) -> &'static str {
        "Database 1: INSERT the Person tenant into users"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let mut conn = tenant_conn(cx).await?;
        planned(cx, &mut conn).await
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let req = onboard(cx)?;
        // Planned again inside the write's transaction: the insert happens only if the state it
        // sees is the one the approved plan was made from (an earlier, interrupted attempt that
        // inserted the row makes the plan "already done", and the engine records that).
        let mut tx = tenant_write(cx).await?;
        let now = planned(cx, &mut tx).await?;
        plan.ensure_current(self.name(), &now)?;
        let id = tenant_db::insert_user(&mut tx, &req.slug, &req.email, &req.display_name).await?;
        tx.commit().await?;
        cx.log(&format!("users.id = {id}"));
        cx.set_user_id(id).await?;
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let req = onboard(cx)?;
        let mut conn = tenant_conn(cx).await?;
        let want = cx.user_id().await;
        Ok(match tenant_db::find_user(&mut conn, &req.slug).await? {
            Some(u) if Some(u.id) == want && u.email == req.email.as_str() => {
                CheckReport::ok(format!("users row {} for `{}` <{}>", u.id, u.slug, u.email))
            }
            Some(u) => CheckReport::failed(format!(
                "users row for `{}` is {} <{}>, expected {want:?}",
                u.slug, u.id, u.email
            )),
            None => CheckReport::failed(format!("no users row for `{}`", req.slug)),
        })
    }
}
