//! What a run is asked to do: a validated request for one runbook, built by `src/commands`
//! and executed by the engine. Which steps each runbook has is the steps' business
//! (`src/steps/runbook.rs`); this module depends on nothing above the domain types.

use serde::{Deserialize, Serialize};

use crate::domain::{
    Brand, DisplayName, DomainName, Email, MailPlan, OperatingMode, Slug, VpsName,
};

/// A new Provider, as the runbook's "Inputs" section gathers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnboardRequest {
    pub slug: Slug,
    pub display_name: DisplayName,
    pub email: Email,
    pub mode: OperatingMode,
    /// One or two; `{slug}.com` when none was given.
    pub domains: Vec<DomainName>,
    pub brand: Option<Brand>,
    pub mail: MailPlan,
    /// A generic feature from the configured list (never provider-named).
    pub feature: String,
    /// Take over the existing site of each domain (adopt-site asks for an approval first).
    /// Absent in runs stored before the option existed.
    #[serde(default)]
    pub adopt_site: bool,
    /// The VPS of the fleet the sites go on, as chosen at the edge (the first by default).
    /// Absent in runs stored before the fleet: the first VPS.
    #[serde(default)]
    pub vps: Option<VpsName>,
}

/// `/cert`: (re-)issue a certificate for a domain already deployed, sync the conf back,
/// release the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRequest {
    pub domain: DomainName,
    /// Contact address for the ACME account (`certbot -m`).
    pub email: Email,
    /// The VPS the site is on, from its record. Absent in runs stored before the fleet.
    #[serde(default)]
    pub vps: Option<VpsName>,
}

/// `/verify`: the runbook's success check for an onboarded Provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    pub slug: Slug,
}

/// `/abandon`: undo what an onboarding run applied, step by step, in reverse order. Built by
/// the engine from the onboarding's record (its request, the steps it applied, the ids it
/// created), so the compensations act on what that run did and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonRequest {
    /// The onboarding run undone.
    pub run_id: uuid::Uuid,
    /// Why (recorded in the audit trail and shown in the run's thread).
    pub reason: String,
    /// The onboarding's own request.
    pub onboarding: OnboardRequest,
    /// The onboarding's steps that wrote (or may have written: an apply interrupted), by their
    /// stored names, in the onboarding's order.
    pub applied: Vec<String>,
    /// The `users.id` the onboarding recorded, if any.
    pub user_id: Option<uuid::Uuid>,
    /// The `orgs.id` the onboarding recorded, if any.
    pub org_id: Option<uuid::Uuid>,
}

impl AbandonRequest {
    /// Whether the onboarding applied the step of this stored name.
    pub fn applied(&self, step: &str) -> bool {
        self.applied.iter().any(|s| s == step)
    }
}

/// `/dns-check`: which records a domain needs and whether they hold (starts no run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheckRequest {
    pub domain: DomainName,
    /// The mail plan to check; `None`: the one its onboarding recorded, else none.
    pub mail: Option<MailPlan>,
    /// Poll until every record holds or this deadline passes.
    pub wait: Option<std::time::Duration>,
}

/// A request for one of the runbooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "runbook", rename_all = "kebab-case")]
pub enum Request {
    Onboard(OnboardRequest),
    Cert(CertRequest),
    Verify(VerifyRequest),
    Abandon(AbandonRequest),
}

impl Request {
    /// The runbook's name as stored and shown.
    pub fn runbook(&self) -> &'static str {
        match self {
            Request::Onboard(_) => "onboard",
            Request::Cert(_) => "cert",
            Request::Verify(_) => "verify",
            Request::Abandon(_) => "abandon",
        }
    }

    /// What `audit SUBJECT` finds the run under.
    pub fn subject(&self) -> String {
        match self {
            Request::Onboard(r) => r.slug.to_string(),
            Request::Cert(r) => r.domain.to_string(),
            Request::Verify(r) => r.slug.to_string(),
            Request::Abandon(r) => r.onboarding.slug.to_string(),
        }
    }

    /// One active run per slug and per domain.
    pub fn lock_keys(&self) -> Vec<crate::state::locks::LockKey> {
        use crate::state::locks::LockKey;
        match self {
            // The onboarding's own keys: nobody onboards over a Provider being undone.
            Request::Abandon(r) => Request::Onboard(r.onboarding.clone()).lock_keys(),
            Request::Onboard(r) => {
                let mut keys = vec![LockKey::Slug(r.slug.clone())];
                if let Some(org) = r
                    .mode
                    .org_slug()
                    .filter(|_| matches!(r.mode, OperatingMode::PersonOwnsOrg { .. }))
                {
                    keys.push(LockKey::Slug(org.clone()));
                }
                keys.extend(r.domains.iter().cloned().map(LockKey::Domain));
                keys
            }
            Request::Cert(r) => vec![LockKey::Domain(r.domain.clone())],
            // Verify only adds and removes its own test rows: it may run beside other runs.
            Request::Verify(_) => vec![],
        }
    }

    /// The VPS the run acts on, by name; `None`: the first VPS (a verify run, which acts on
    /// no VPS, or a run stored before the fleet).
    pub fn vps(&self) -> Option<&VpsName> {
        match self {
            Request::Onboard(r) | Request::Abandon(AbandonRequest { onboarding: r, .. }) => {
                r.vps.as_ref()
            }
            Request::Cert(r) => r.vps.as_ref(),
            Request::Verify(_) => None,
        }
    }

    pub fn as_onboard(&self) -> Option<&OnboardRequest> {
        match self {
            Request::Onboard(r) => Some(r),
            Request::Cert(_) | Request::Verify(_) | Request::Abandon(_) => None,
        }
    }

    /// The onboarding a run acts on: its own, or the one an abandon undoes.
    pub fn tenant(&self) -> Option<&OnboardRequest> {
        match self {
            Request::Onboard(r) => Some(r),
            Request::Abandon(r) => Some(&r.onboarding),
            Request::Cert(_) | Request::Verify(_) => None,
        }
    }

    pub fn as_abandon(&self) -> Option<&AbandonRequest> {
        match self {
            Request::Abandon(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(mode: OperatingMode) -> Request {
        Request::Onboard(OnboardRequest {
            slug: Slug::parse("merche-biche").unwrap(),
            display_name: DisplayName::parse_field("name", "Merche Biche").unwrap(),
            email: Email::parse("merche@example.com").unwrap(),
            mode,
            domains: vec![DomainName::parse("merche-biche.com").unwrap()],
            brand: None,
            mail: MailPlan::None,
            feature: "provider-site".into(),
            adopt_site: false,
            vps: None,
        })
    }

    /// The runbook after the database steps, the same for every mode.
    const TAIL: [&str; 7] = [
        "dns-records",
        "deploy-config",
        "deploy-stub",
        "cert",
        "sync-back",
        "release",
        "verify",
    ];

    #[test]
    fn steps_follow_the_mode() {
        assert_eq!(
            req(OperatingMode::PersonOnly).steps(),
            [&["preflight", "create-person"][..], &TAIL].concat()
        );
        let owns = OperatingMode::PersonOwnsOrg {
            org_slug: Slug::parse("merche-collective").unwrap(),
            org_name: DisplayName::parse_field("org-name", "Merche Collective").unwrap(),
        };
        assert_eq!(
            req(owns.clone()).steps(),
            [&["preflight", "create-person", "create-org"][..], &TAIL].concat()
        );
        assert_eq!(
            req(owns).lock_keys(),
            [
                "slug:merche-biche",
                "slug:merche-collective",
                "domain:merche-biche.com"
            ]
        );
        let joins = OperatingMode::PersonJoinsOrg {
            org_slug: Slug::parse("cocotte").unwrap(),
        };
        assert_eq!(
            req(joins.clone()).steps(),
            [&["preflight", "create-person", "join-org"][..], &TAIL].concat()
        );
        assert_eq!(
            req(joins).lock_keys(),
            ["slug:merche-biche", "domain:merche-biche.com"]
        );
    }

    #[test]
    fn an_adoption_is_decided_before_anything_is_written() {
        let Request::Onboard(mut r) = req(OperatingMode::PersonOnly) else {
            unreachable!()
        };
        r.adopt_site = true;
        assert_eq!(
            Request::Onboard(r).steps(),
            [&["preflight", "adopt-site", "create-person"][..], &TAIL].concat()
        );
        // A run stored before the option existed reads as no adoption.
        let mut json = serde_json::to_value(req(OperatingMode::PersonOnly)).unwrap();
        json.as_object_mut().unwrap().remove("adopt_site");
        let Request::Onboard(old) = serde_json::from_value::<Request>(json).unwrap() else {
            unreachable!()
        };
        assert!(!old.adopt_site);
    }

    #[test]
    fn request_round_trips_through_json() {
        let r = req(OperatingMode::PersonOnly);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["runbook"], "onboard");
        assert_eq!(serde_json::from_value::<Request>(json).unwrap(), r);
    }
}
