//! Abandon: the tenant rows the onboarding created (its membership, org and user), deleted in
//! one transaction, and only when nothing else refers to them (bookings, messages, events,
//! other members). Otherwise it refuses and lists what refers to them; it never cascades.

use async_trait::async_trait;
use uuid::Uuid;

use super::common::{abandon, onboard, tenant_conn, tenant_write};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::tenant_db::{self, Reference};
use crate::domain::OperatingMode;

pub struct UndoDatabase;

/// The rows to delete, as they are now (each only if it still exists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rows {
    /// (org, user) of the membership.
    member: Option<(Uuid, Uuid)>,
    org: Option<Uuid>,
    user: Option<Uuid>,
}

impl Rows {
    fn is_empty(&self) -> bool {
        self.member.is_none() && self.org.is_none() && self.user.is_none()
    }
}

/// The references that stop the delete: every referring row but the ones deleted with it (the
/// membership refers to the user and the org, the org to its owner), and any key that would
/// cascade. Pure, so the rule is unit-tested.
fn blocking(rows: &Rows, of_user: &[Reference], of_org: &[Reference]) -> Vec<String> {
    let mut out = Vec::new();
    let mut judge = |what: &str, refs: &[Reference], own: &dyn Fn(&Reference) -> i64| {
        for r in refs {
            let others = r.rows - own(r);
            if others > 0 {
                out.push(format!(
                    "{what}: {others} row(s) of {} (by {})",
                    r.table, r.column
                ));
            } else if r.changes_on_delete {
                out.push(format!(
                    "{what}: {}.{} cascades on delete; the bot never deletes through a cascade",
                    r.table, r.column
                ));
            }
        }
    };
    if let Some(user) = rows.user {
        judge(
            &format!("user {user}"),
            of_user,
            &|r| match (r.table.as_str(), r.column.as_str()) {
                ("public.org_members", "user_id") => {
                    rows.member.is_some_and(|m| m.1 == user) as i64
                }
                ("public.orgs", "owner_id") => rows.org.is_some() as i64,
                _ => 0,
            },
        );
    }
    if let Some(org) = rows.org {
        judge(
            &format!("org {org}"),
            of_org,
            &|r| match (r.table.as_str(), r.column.as_str()) {
                ("public.org_members", "org_id") => rows.member.is_some_and(|m| m.0 == org) as i64,
                _ => 0,
            },
        );
    }
    out
}

/// The refusal: what refers to the rows, and that nothing was deleted.
fn refusal(slug: &str, blocking: &[String]) -> String {
    format!(
        "the tenant rows of `{slug}` are referred to by other data; nothing was deleted (the bot never cascades). Remove or move these first, then resume:\n{}",
        blocking
            .iter()
            .map(|b| format!("  {b}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// The rows the onboarding created that still exist, from what `conn` sees.
async fn rows(cx: &StepContext, conn: &mut sqlx::PgConnection) -> Result<Rows, StepError> {
    let a = abandon(cx)?;
    let req = onboard(cx)?;
    let user = match a.user_id {
        Some(id) => tenant_db::find_user_by_id(conn, id).await?,
        None => tenant_db::find_user(conn, &req.slug).await?,
    };
    let user = user.filter(|u| u.slug == req.slug.as_str());
    if let Some(u) = &user
        && u.email != req.email.as_str()
    {
        return Err(StepError::refused(format!(
            "users row {} of `{}` has the email {:?}, not the onboarding's {:?}: it is not the row the onboarding created; nothing was deleted",
            u.id,
            u.slug,
            u.email,
            req.email.as_str()
        )));
    }
    let user_id = user.as_ref().map(|u| u.id);
    let mut out = Rows {
        user: user_id.filter(|_| a.applied("create-person")),
        ..Rows::default()
    };
    let Some(user_id) = user_id else {
        return Ok(out);
    };
    match &req.mode {
        OperatingMode::PersonOwnsOrg { org_slug, .. } if a.applied("create-org") => {
            if let Some(org) = tenant_db::find_org(conn, org_slug).await? {
                if org.owner_id == user_id {
                    out.org = Some(org.id);
                }
                if tenant_db::membership(conn, org.id, user_id)
                    .await?
                    .is_some()
                {
                    out.member = Some((org.id, user_id));
                }
            }
        }
        OperatingMode::PersonJoinsOrg { org_slug } if a.applied("join-org") => {
            if let Some(org) = tenant_db::find_org(conn, org_slug).await?
                && tenant_db::membership(conn, org.id, user_id)
                    .await?
                    .is_some()
            {
                out.member = Some((org.id, user_id));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The plan and the rows, from what `conn` (a connection, or the write's transaction) sees.
async fn planned(
    cx: &StepContext,
    conn: &mut sqlx::PgConnection,
) -> Result<(Plan, Rows), StepError> {
    let req = onboard(cx)?;
    tenant_db::ensure_authoritative(conn, &cx.services.config.tenant_authoritative).await?;
    let rows = rows(cx, conn).await?;
    if rows.is_empty() {
        return Ok((
            Plan::AlreadyDone {
                evidence: format!("no users, orgs or org_members row of `{}` left", req.slug),
            },
            rows,
        ));
    }
    let of_user = match rows.user {
        Some(u) => tenant_db::references(conn, "users", u).await?,
        None => Vec::new(),
    };
    let of_org = match rows.org {
        Some(o) => tenant_db::references(conn, "orgs", o).await?,
        None => Vec::new(),
    };
    let blocking = blocking(&rows, &of_user, &of_org);
    if !blocking.is_empty() {
        return Err(StepError::Refused(refusal(req.slug.as_str(), &blocking)));
    }
    let mut sql = vec!["BEGIN;".to_owned()];
    let mut what = Vec::new();
    if let Some((org, user)) = rows.member {
        sql.push(tenant_db::show_sql(
            tenant_db::DELETE_MEMBER,
            &[("org_id", org.to_string()), ("user_id", user.to_string())],
        ));
        what.push("its membership".to_owned());
    }
    if let Some(org) = rows.org {
        sql.push(tenant_db::show_sql(
            tenant_db::DELETE_ORG,
            &[("org_id", org.to_string())],
        ));
        what.push(format!("org {org}"));
    }
    if let Some(user) = rows.user {
        sql.push(tenant_db::show_sql(
            tenant_db::DELETE_USER,
            &[("user_id", user.to_string())],
        ));
        what.push(format!("user {user}"));
    }
    sql.push("COMMIT;".into());
    sql.push("-- nothing else refers to these rows (checked again inside the transaction)".into());
    Ok((
        Plan::Change {
            summary: format!("delete {} of `{}`", what.join(", "), req.slug),
            detail: sql.join("\n"),
        },
        rows,
    ))
}

#[async_trait]
impl Step for UndoDatabase {
    fn id(&self) -> StepName {
        StepName::UndoDatabase
    }

    fn description(&self) -> &'static str {
        "Undo the database steps: DELETE the membership, org and user the onboarding created, one transaction, only if nothing refers to them"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let mut conn = tenant_conn(cx).await?;
        Ok(planned(cx, &mut conn).await?.0)
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let mut tx = tenant_write(cx).await?;
        let (now, rows) = planned(cx, &mut tx).await?;
        plan.ensure_current(self.name(), &now)?;
        let fk = |e: crate::adapters::Error| -> StepError {
            let text = format!("{e}");
            if text.contains("foreign key") {
                // A row that refers to them appeared since the plan: nothing is deleted.
                StepError::refused(format!(
                    "a row refers to the tenant rows now ({text}); nothing was deleted"
                ))
            } else {
                e.into()
            }
        };
        if let Some((org, user)) = rows.member {
            tenant_db::delete_member(&mut tx, org, user)
                .await
                .map_err(fk)?;
        }
        if let Some(org) = rows.org {
            tenant_db::delete_org(&mut tx, org).await.map_err(fk)?;
        }
        if let Some(user) = rows.user {
            tenant_db::delete_user(&mut tx, user).await.map_err(fk)?;
        }
        tx.commit().await?;
        cx.log("tenant rows deleted");
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let mut conn = tenant_conn(cx).await?;
        let left = rows(cx, &mut conn).await?;
        Ok(if left.is_empty() {
            CheckReport::ok(format!(
                "no users, orgs or org_members row of `{}` left",
                onboard(cx)?.slug
            ))
        } else {
            CheckReport::failed(format!("still there: {left:?}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(table: &str, column: &str, rows: i64) -> Reference {
        Reference {
            table: table.into(),
            column: column.into(),
            rows,
            changes_on_delete: false,
        }
    }

    #[test]
    fn only_rows_deleted_together_do_not_block() {
        let (u, o) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let rows = Rows {
            member: Some((o, u)),
            org: Some(o),
            user: Some(u),
        };
        let of_user = [
            r("public.org_members", "user_id", 1),
            r("public.orgs", "owner_id", 1),
            r("public.bookings", "user_id", 0),
        ];
        let of_org = [r("public.org_members", "org_id", 1)];
        assert!(blocking(&rows, &of_user, &of_org).is_empty());

        // A booking, another member: both named.
        let of_user = [
            r("public.org_members", "user_id", 1),
            r("public.bookings", "user_id", 2),
        ];
        let of_org = [r("public.org_members", "org_id", 2)];
        let b = blocking(&rows, &of_user, &of_org);
        assert_eq!(
            b,
            [
                "user 00000000-0000-0000-0000-000000000001: 2 row(s) of public.bookings (by user_id)",
                "org 00000000-0000-0000-0000-000000000002: 1 row(s) of public.org_members (by org_id)"
            ]
        );
        insta::assert_snapshot!(refusal("merche", &b));

        // A cascading key blocks even with no rows.
        let mut cascade = r("public.events", "user_id", 0);
        cascade.changes_on_delete = true;
        assert_eq!(blocking(&rows, &[cascade], &[]).len(), 1);
    }
}
