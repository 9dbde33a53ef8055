//! What the steps find and check, as plain data: built in `src/steps`, rendered by
//! `src/messages`. It sits below both so that neither imports the other.

use serde::{Deserialize, Serialize};

use crate::domain::DomainName;

// ----- site ownership (steps/ownership.rs) ---------------------------------------------------

/// A site directory of the platform repo that serves the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSite {
    /// Its path in the repo (`deployments/@domains/cocotte.com`).
    pub dir: String,
    /// What its services.yaml says, when it has one.
    pub services: Option<ServicesFacts>,
}

/// The values of a services.yaml that tell whose a site is and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicesFacts {
    pub domain: Option<String>,
    pub feature: Option<String>,
    pub held_back: Option<bool>,
    pub aliases: Vec<String>,
}

/// What serves a domain today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    pub domain: DomainName,
    /// The VPSes looked at: every VPS of the fleet, by name (`vps-0, vps-1`).
    pub vps: String,
    pub repo: Vec<RepoSite>,
    /// nginx site files, each as (the VPS it is on, its path there).
    pub nginx: Vec<(String, String)>,
    /// certbot lineages (their `live/` folders), each as (its VPS, its path there).
    pub certs: Vec<(String, String)>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.repo.is_empty() && self.nginx.is_empty() && self.certs.is_empty()
    }
}

// ----- preconditions (steps/cert.rs, steps/deploy_stub.rs) --------------------------------

/// A condition a plan checks before it asks to change anything (DNS points at the VPS, the
/// webroot exists, `nginx -t` passes), as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    pub what: String,
    pub ok: bool,
    /// What was found, when it says more than ok or not (the records a server answered).
    pub found: String,
}

// ----- the success check (steps/verify.rs) --------------------------------------------------

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Not checked (not configured): neither passed nor failed, and said so.
    #[serde(default)]
    pub skipped: bool,
    pub evidence: String,
}

impl Check {
    /// A check that ran: passed or failed.
    pub fn new(name: impl Into<String>, passed: bool, evidence: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed,
            skipped: false,
            evidence: evidence.into(),
        }
    }

    /// A check that was not made (not configured), with why.
    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: false,
            skipped: true,
            evidence: why.into(),
        }
    }
}
