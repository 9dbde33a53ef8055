//! `onboard-bot config check`: validate the config file and try each connection, one line
//! per check, OK or FAIL.

use super::{CommandError, Listing, Reply};
use crate::config::Config;
use crate::state;

pub async fn run(config: &Config) -> Result<Reply, CommandError> {
    let mut text = format!(
        "OK    config {} ({:?})\n",
        config.source.display(),
        config.environment
    );
    let mut failed = false;
    let mut line = |ok: bool, what: &str, detail: String| {
        failed |= !ok;
        text.push_str(&format!(
            "{} {what}: {detail}\n",
            if ok { "OK   " } else { "FAIL " }
        ));
    };
    // Step names are known above the config layer: checked here as the engine checks them.
    match crate::engine::check_required_approvals(&config.approvals) {
        Ok(()) => line(true, "approvals", approvals_line(config)),
        Err(e) => line(false, "approvals", format!("{e:#}")),
    }
    match state::connect(&config.state_db).await {
        Ok(pool) => match state::stats::server_version(&pool).await {
            Ok(v) => line(
                true,
                "state DB",
                format!(
                    "{} — {}",
                    config.state_db.describe(),
                    v.split(',').next().unwrap_or("")
                ),
            ),
            Err(e) => line(false, "state DB", format!("{e:#}")),
        },
        Err(e) => line(false, "state DB", format!("{e:#}")),
    }
    match crate::adapters::tenant_db::connect(&config.tenant_db).await {
        Ok(pool) => {
            let facts = match pool.acquire().await {
                Ok(mut conn) => crate::adapters::tenant_db::host_facts(&mut conn)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match facts {
                Ok(f) if !f.in_recovery && f.address == config.tenant_authoritative => line(
                    true,
                    "tenant DB",
                    format!("{} is the authoritative primary", f.address),
                ),
                Ok(f) => line(
                    false,
                    "tenant DB",
                    format!(
                        "{} (in recovery: {}) is not the authoritative primary {}",
                        f.address, f.in_recovery, config.tenant_authoritative
                    ),
                ),
                Err(e) => line(false, "tenant DB", e),
            }
        }
        Err(e) => line(false, "tenant DB", e.to_string()),
    }
    // Every VPS of the fleet, one line each.
    for vps in &config.fleet {
        match crate::adapters::ssh::check(vps).await {
            Ok(detail) => line(true, "SSH", detail),
            Err(e) => line(false, "SSH", format!("{e:#}")),
        }
    }
    match crate::adapters::dns::check(&config.dns).await {
        Ok(detail) => line(true, "DNS", detail),
        Err(e) => line(false, "DNS", format!("{e:#}")),
    }
    Ok(Reply::Listing(Listing {
        title: "config check".into(),
        text,
        ok: !failed,
        card: None,
    }))
}

/// `one approver per plan` or `create-org: 2, cert: 2, otherwise 1`.
fn approvals_line(config: &Config) -> String {
    let a = &config.approvals;
    let per_step: Vec<String> = a
        .required_steps()
        .map(|s| format!("{s}: {}", a.required_for(s)))
        .collect();
    let default = a.required_for("default");
    let default = if default == 1 {
        "one approver per plan".to_owned()
    } else {
        format!("{default} approvers per plan")
    };
    if per_step.is_empty() {
        default
    } else {
        format!("{}; otherwise {default}", per_step.join(", "))
    }
}
