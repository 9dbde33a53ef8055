//! A chat front-end whose approvals are decided by the test: the second implementation of the
//! `ChatFrontend` boundary (besides console and Discord), recording everything it was shown.

#![allow(dead_code)]

use std::sync::Mutex;

use async_trait::async_trait;
use onboard_bot::frontend::{Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};

type Decide = Box<dyn Fn(&ApprovalRequest, usize) -> Decision + Send + Sync>;

pub struct Scripted {
    decide: Decide,
    pub requests: Mutex<Vec<ApprovalRequest>>,
    pub events: Mutex<Vec<RunEvent>>,
    changed: tokio::sync::Notify,
}

impl Scripted {
    /// `decide(request, n)` where `n` counts the approval requests so far (0-based).
    pub fn new(
        decide: impl Fn(&ApprovalRequest, usize) -> Decision + Send + Sync + 'static,
    ) -> Self {
        Self {
            decide: Box::new(decide),
            requests: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn approve_all() -> Self {
        Self::new(|_, _| approve("approver-1"))
    }

    pub fn reject_all() -> Self {
        Self::new(|_, _| Decision {
            approved: false,
            actor: actor("approver-1"),
            how: "test".into(),
            reason: Some("not today".into()),
        })
    }

    pub fn requests(&self) -> Vec<ApprovalRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (without polling) until an event matching `pred` has been seen.
    pub async fn wait_for_event(&self, pred: impl Fn(&RunEvent) -> bool) -> RunEvent {
        loop {
            let notified = self.changed.notified();
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            notified.await;
        }
    }
}

pub fn actor(id: &str) -> Actor {
    Actor {
        id: format!("test:{id}"),
        display: id.into(),
    }
}

pub fn approve(who: &str) -> Decision {
    Decision {
        approved: true,
        actor: actor(who),
        how: "test".into(),
        reason: None,
    }
}

#[async_trait]
impl ChatFrontend for Scripted {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn attach(&self, _run: &RunView) -> anyhow::Result<Option<serde_json::Value>> {
        Ok(None)
    }

    async fn event(&self, _run: &RunView, event: &RunEvent) {
        self.events.lock().unwrap().push(event.clone());
        self.changed.notify_waiters();
    }

    async fn request_approval(&self, req: &ApprovalRequest) -> anyhow::Result<Decision> {
        let n = {
            let mut r = self.requests.lock().unwrap();
            r.push(req.clone());
            r.len() - 1
        };
        Ok((self.decide)(req, n))
    }
}
