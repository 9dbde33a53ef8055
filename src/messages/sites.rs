//! Site ownership in words: what was found serving a domain, who owns it, refusals.

use crate::report::Findings;
use crate::state::sites::{SiteOrigin, SiteRecord};

/// What serves a domain, one phrase per thing found (repo site directory, nginx site,
/// certificate).
pub fn site_found(f: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    for site in &f.repo {
        let services = match &site.services {
            None => "no readable services.yaml".to_owned(),
            Some(s) => {
                let mut parts = vec![format!(
                    "domain: {}",
                    s.domain.as_deref().unwrap_or("(none)")
                )];
                if let Some(feature) = &s.feature {
                    parts.push(format!("feature: {feature}"));
                }
                if let Some(held) = s.held_back {
                    parts.push(format!("held_back: {held}"));
                }
                format!("services.yaml: {}", parts.join(", "))
            }
        };
        out.push(format!(
            "the site directory {} in the platform repo ({services})",
            site.dir
        ));
    }
    for (vps, path) in &f.nginx {
        out.push(format!("the nginx site {path} on {vps}"));
    }
    for (vps, path) in &f.certs {
        out.push(format!("the certificate {path} on {vps}"));
    }
    out
}

/// Whose a site is, per the bot's records.
pub fn site_owner(record: Option<&SiteRecord>) -> String {
    match record {
        None => {
            "it is not in the bot's records (no onboarding run of this bot created or adopted it)"
                .into()
        }
        Some(r) => format!(
            "it belongs to `{}` in the bot's records ({} by run {} on {}{})",
            r.slug,
            r.how.as_str(),
            r.run_id,
            r.updated_at.format("%Y-%m-%d %H:%M UTC"),
            match (&r.how, &r.adopted_from) {
                (SiteOrigin::Adopted, Some(from)) => format!(", from `{from}`"),
                _ => String::new(),
            }
        ),
    }
}

/// Preflight's (and deploy-config's) refusal of a domain that is another tenant's site.
pub fn site_taken(slug: &str, f: &Findings, record: Option<&SiteRecord>) -> String {
    let found = site_found(f);
    let what = if found.is_empty() {
        format!(
            "{} is another tenant's site: nothing of it was found in the platform repo or on {}, but {}",
            f.domain,
            f.vps,
            site_owner(record)
        )
    } else {
        format!(
            "{} is already served: found {}; {}",
            f.domain,
            found.join("; "),
            site_owner(record)
        )
    };
    format!(
        "{what}. Nothing was changed. To take this site over for `{slug}`, start the onboarding again with --adopt-site (Discord: adopt_site), which first asks for an approval naming what is there; otherwise choose another domain."
    )
}

/// The line an adoption's approval is given for.
pub fn site_adoption(f: &Findings, record: Option<&SiteRecord>) -> String {
    let found = site_found(f);
    let found = if found.is_empty() {
        format!("nothing of it found in the platform repo or on {}", f.vps)
    } else {
        found.join("; ")
    };
    format!(
        "adopt the existing site of {}, currently {found}; {}",
        f.domain,
        site_owner(record)
    )
}

/// `/cert issue` of a domain the bot has no site record of.
pub fn domain_not_on_record(domain: &str) -> String {
    format!(
        "{domain} is not in the bot's records: no onboarding run of this bot created or adopted its site, so the bot does not touch its certificate. \
         Onboard it (or adopt its existing site with --adopt-site / adopt_site) first, or renew it by hand."
    )
}

/// `/verify` of a slug the bot has no record of.
pub fn slug_not_on_record(slug: &str) -> String {
    format!(
        "`{slug}` is not in the bot's records: no onboarding run of this bot created its person or site. \
         /verify checks Providers this bot onboarded; onboard `{slug}` first (or check the slug)."
    )
}

/// `/cert issue` without an email, for a site whose onboarding recorded none.
pub fn no_owner_email(domain: &str, owner: &str) -> String {
    format!(
        "email: the onboarding that made {domain} `{owner}`'s site recorded no email; give one (--email / email)"
    )
}

/// `/abandon` of a run that is not an onboarding that wrote (a cert or verify run, a dry run).
pub fn abandon_not_an_onboarding(run: uuid::Uuid, runbook: &str, dry_run: bool) -> String {
    if dry_run {
        format!("run {run} is a dry run: it wrote nothing, so there is nothing to abandon")
    } else {
        format!(
            "run {run} is a {runbook} run: only an onboarding can be abandoned (its undoing is built from what it applied)"
        )
    }
}

/// `/abandon` of an onboarding an earlier abandon undid: its slug and domains may be another
/// onboarding's by now.
pub fn abandon_done_already(run: uuid::Uuid, by: uuid::Uuid) -> String {
    format!(
        "run {run} was already abandoned (run {by}); nothing was started. Its slug and domains are free, and may belong to a newer onboarding: abandon that one instead."
    )
}

/// `/abandon` of an onboarding that adopted an existing site.
pub fn abandon_adopted(run: uuid::Uuid) -> String {
    format!(
        "run {run} adopted a site that existed before it: abandoning it would take down a site that was someone's. Nothing was started; undo it by hand, with the audit trail of the adoption."
    )
}

#[cfg(test)]
mod abandon_tests {
    use super::*;

    #[test]
    fn abandon_refusals_say_why() {
        let run = uuid::Uuid::nil();
        insta::assert_snapshot!(format!(
            "{}\n{}\n{}\n{}",
            abandon_not_an_onboarding(run, "cert", false),
            abandon_not_an_onboarding(run, "onboard", true),
            abandon_adopted(run),
            abandon_done_already(run, run)
        ));
    }
}
