//! What is applied is what was approved: the world changes after the engine's last plan and
//! before the step writes (a person pushes to the platform repo, the org to join is replaced),
//! and the step must notice under its own lock and ask again, never write the changed plan.
//!
//! The change is made by a front-end hook on the step's "applying" event, which the engine sends
//! after its last plan and before it calls `apply`: the worst moment, reached without sleeps.

use crate::support::harness::within;
use crate::support::{lab, scripted};

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lab::{Lab, git, push_change};
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::frontend::{ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};
use onboard_bot::request::Request;
use onboard_bot::state::audit;
use onboard_bot::state::runs::{RunStatus, StepStatus};
use scripted::Scripted;
use sha2::{Digest, Sha256};

const TIMEOUT: Duration = Duration::from_secs(240);

type Hook = Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A scripted front-end that runs `hook` once per step, when the step starts applying.
struct Hooked {
    inner: Scripted,
    hook: Hook,
    fired: Mutex<HashSet<String>>,
}

impl Hooked {
    fn new(inner: Scripted, hook: Hook) -> Self {
        Self {
            inner,
            hook,
            fired: Mutex::default(),
        }
    }
}

#[async_trait]
impl ChatFrontend for Hooked {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn attach(&self, run: &RunView) -> anyhow::Result<Option<serde_json::Value>> {
        self.inner.attach(run).await
    }

    async fn event(&self, run: &RunView, event: &RunEvent) {
        if let RunEvent::Step {
            idx,
            status: StepStatus::Applying,
            ..
        } = event
        {
            let step = run.steps[*idx].name.clone();
            if self.fired.lock().unwrap().insert(step.clone()) {
                (self.hook)(step).await;
            }
        }
        self.inner.event(run, event).await
    }

    async fn request_approval(&self, req: &ApprovalRequest) -> anyhow::Result<Decision> {
        self.inner.request_approval(req).await
    }
}

fn onboard(slug: &str, mode: &str, org: Option<&str>) -> Request {
    OnboardArgs {
        slug: slug.into(),
        name: "Replan Person".into(),
        email: format!("{slug}@example.com"),
        mode: mode.into(),
        org: org.map(String::from),
        org_name: (mode == "person-owns-org").then(|| "Replan Org".into()),
        ..Default::default()
    }
    .parse(&OnboardingConfig::default())
    .unwrap()
}

fn reject(reason: &str) -> Decision {
    Decision {
        approved: false,
        actor: scripted::actor("approver-1"),
        how: "test".into(),
        reason: Some(reason.into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_between_the_last_plan_and_the_write_makes_deploy_config_ask_again() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["replan-one.com"]);
        let dbs = lab.fresh().await;
        let tmp = Arc::new(tempfile::tempdir().unwrap());
        let cfg = dbs.config(tmp.path(), |t| t);
        // A change to the template far from any line the bot edits: it does not show in the
        // diff's context, yet it is in the files the step would write.
        let template = "deployments/@domains/_template/{provider}.com/nginx/prod.conf";
        let note = "# a person's note, pushed while the plan waited\n";
        let dir = tmp.clone();
        let hook: Hook = Box::new(move |step| {
            let dir = dir.clone();
            Box::pin(async move {
                if step == "deploy-config" {
                    push_change(dir.path(), template, |t| format!("{t}{note}"));
                }
            })
        });
        // The run stops at the stub deploy: what matters is done by then.
        let front = Arc::new(Hooked::new(
            Scripted::new(|req, _| {
                if req.step == "deploy-stub" {
                    reject("enough")
                } else {
                    scripted::approve("approver-1")
                }
            }),
            hook,
        ));
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let (id, out) = engine
            .run(
                onboard("replan-one", "person-only", None),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");

        // The plan approved first did not cover the pushed note: the step asked again.
        let asked: Vec<ApprovalRequest> = front
            .inner
            .requests()
            .into_iter()
            .filter(|r| r.step == "deploy-config")
            .collect();
        assert_eq!(
            asked.len(),
            2,
            "deploy-config must ask again after the push: {asked:#?}"
        );
        assert_ne!(asked[0].plan_hash, asked[1].plan_hash);

        // What was pushed is what the last approval covers: each file the commit wrote is
        // named in that plan with the SHA-256 of exactly its content.
        let origin = tmp.path().join("origin.git");
        let commit = git(
            &origin,
            &[
                "log",
                "-1",
                "--format=%H",
                "--grep=deploy config for",
                "main",
            ],
        );
        let commit = commit.trim();
        assert!(!commit.is_empty(), "no deploy-config commit");
        let files = git(&origin, &["show", "--name-only", "--format=", commit]);
        let approved = &asked[1].detail;
        for path in files.lines().filter(|l| !l.is_empty()) {
            let text = git(&origin, &["show", &format!("{commit}:{path}")]);
            let sha = hex::encode(Sha256::digest(text.as_bytes()));
            assert!(
                approved.contains(&format!("{path}: sha256 {}", &sha[..16])),
                "{path} as pushed is not what was approved:\n{approved}"
            );
        }
        let conf = git(
            &origin,
            &[
                "show",
                &format!("{commit}:deployments/@domains/replan-one.com/nginx/prod.conf"),
            ],
        );
        assert!(
            conf.contains(note.trim_end()),
            "the pushed note is in the site written:\n{conf}"
        );

        // The first approval was voided, with the reason in the audit trail.
        let kinds: Vec<(String, String)> = audit::for_run(engine.pool(), id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.step.as_deref() == Some("deploy-config"))
            .map(|e| (e.kind, e.outcome))
            .collect();
        assert!(
            kinds.contains(&("step.plan_changed".into(), "plan_changed".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("approval.voided".into(), "plan_changed".into())),
            "{kinds:?}"
        );
        let applied = kinds.iter().filter(|k| k.0 == "step.applied").count();
        assert_eq!(applied, 1, "{kinds:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_replaced_after_the_last_plan_is_not_joined_on_an_old_approval() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["replan-two.com"]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let platform = dbs.platform_admin().await;
        let admin = platform.clone();
        // Between the last plan and the write, `cocotte` is renamed away and an impostor org
        // takes its slug.
        let hook: Hook = Box::new(move |step| {
            let admin = admin.clone();
            Box::pin(async move {
                if step == "join-org" {
                    sqlx::raw_sql(
                        "UPDATE orgs SET slug = 'cocotte-old' WHERE slug = 'cocotte';
                         INSERT INTO orgs (slug, name, owner_id) VALUES ('cocotte', 'Impostor', '00000000-0000-4000-8000-000000000003');",
                    )
                    .execute(&admin)
                    .await
                    .unwrap();
                }
            })
        });
        // create-person and the first join-org plan are approved; any plan after them is
        // rejected (the run stops there either way).
        let front = Arc::new(Hooked::new(
            Scripted::new(|_, n| {
                if n >= 2 {
                    reject("not that org")
                } else {
                    scripted::approve("approver-1")
                }
            }),
            hook,
        ));
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let (_, out) = engine
            .run(onboard("replan-two", "person-joins-org", Some("cocotte")), &scripted::actor("ops"), StartOptions::default())
            .await
            .unwrap();
        let asked: Vec<ApprovalRequest> =
            front.inner.requests().into_iter().filter(|r| r.step == "join-org").collect();
        assert_eq!(asked.len(), 2, "join-org must ask again for the new org: {asked:#?}");
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        let members: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM org_members m JOIN users u ON u.id = m.user_id WHERE u.slug = 'replan-two'",
        )
        .fetch_one(&platform)
        .await
        .unwrap();
        assert_eq!(members, 0, "the person joined an org no approval covered");
    })
    .await
}
