//! The runbooks: which steps a request runs, in the runbook's order. An inherent method of
//! [`Request`] written here, beside the steps it names, so that the request types need not
//! know the steps (and the steps may read the requests without an import cycle).

use super::StepName;
use crate::domain::OperatingMode;
use crate::request::Request;

impl Request {
    /// The steps of this run, in the runbook's order.
    pub fn steps(&self) -> Vec<StepName> {
        match self {
            Request::Onboard(r) => {
                let mut steps = vec![StepName::Preflight];
                // Before anything is written: a rejected adoption leaves nothing behind.
                if r.adopt_site {
                    steps.push(StepName::AdoptSite);
                }
                steps.push(StepName::CreatePerson);
                match r.mode {
                    OperatingMode::PersonOnly => {}
                    OperatingMode::PersonOwnsOrg { .. } => steps.push(StepName::CreateOrg),
                    OperatingMode::PersonJoinsOrg { .. } => steps.push(StepName::JoinOrg),
                }
                steps.extend([
                    StepName::DnsRecords,
                    StepName::DeployConfig,
                    StepName::DeployStub,
                    StepName::Cert,
                    StepName::SyncBack,
                    StepName::Release,
                    StepName::Verify,
                ]);
                steps
            }
            Request::Cert(_) => vec![StepName::Cert, StepName::SyncBack, StepName::Release],
            Request::Verify(_) => vec![StepName::Verify],
            Request::Abandon(r) => {
                // The onboarding's writes undone in reverse order, each only if it applied.
                let mut steps = Vec::new();
                if r.applied("release") {
                    // Held back again before anything is taken down.
                    steps.push(StepName::UndoRelease);
                }
                if r.applied("sync-back") || r.applied("deploy-stub") {
                    // The site comes down before its certificate goes (nginx -t needs the
                    // files a site names).
                    steps.push(StepName::UndoSite);
                }
                if r.applied("cert") {
                    steps.push(StepName::UndoCert);
                }
                if r.applied("deploy-config") {
                    steps.push(StepName::UndoDeployConfig);
                }
                if ["create-person", "create-org", "join-org"]
                    .iter()
                    .any(|s| r.applied(s))
                {
                    steps.push(StepName::UndoDatabase);
                }
                steps.extend([StepName::DnsLeftovers, StepName::ForgetSite]);
                steps
            }
        }
    }
}
