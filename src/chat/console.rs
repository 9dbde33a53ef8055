//! The console front-end: the local lab, and break-glass use when Discord is down.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use super::{Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};
use crate::messages;

/// Prints progress to stderr and asks `apply? [y/N]` on a terminal.
pub struct Console {
    /// `--yes`: approve every plan without asking (recorded as such).
    pub assume_yes: bool,
    started: Mutex<Option<Instant>>,
}

impl Console {
    pub fn new(assume_yes: bool) -> Self {
        Self {
            assume_yes,
            started: Mutex::new(None),
        }
    }

    fn elapsed(&self) -> String {
        let mut started = self.started.lock().expect("console clock");
        let t0 = *started.get_or_insert_with(Instant::now);
        format!("{:>6.1}s", t0.elapsed().as_secs_f64())
    }
}

#[async_trait]
impl ChatFrontend for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn attach(&self, run: &RunView) -> anyhow::Result<Option<serde_json::Value>> {
        eprintln!("{} {}", self.elapsed(), messages::run_header(run));
        Ok(None)
    }

    async fn event(&self, run: &RunView, event: &RunEvent) {
        let line = match event {
            RunEvent::Step {
                idx,
                status,
                message,
            } => messages::step_event(&run.steps[*idx].name, *status, message),
            RunEvent::Log { idx, line } => format!("    {} │ {line}", run.steps[*idx].name),
            RunEvent::Finished { message, .. } => message.clone(),
        };
        eprintln!("{} {line}", self.elapsed());
    }

    async fn request_approval(&self, req: &ApprovalRequest) -> anyhow::Result<Decision> {
        eprintln!("{}", messages::approval_text(req));
        let actor = Actor::console_user();
        if self.assume_yes {
            eprintln!("approved with --yes by {}", actor.display);
            return Ok(Decision {
                approved: true,
                actor,
                how: "console --yes".into(),
                reason: None,
            });
        }
        if !std::io::stdin().is_terminal() {
            return Ok(Decision {
                approved: false,
                actor,
                how: "console (no terminal)".into(),
                reason: Some("no terminal to ask on and --yes not given".into()),
            });
        }
        let answer = tokio::task::spawn_blocking(|| {
            eprint!("apply? [y/N] ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|_| line)
        })
        .await??;
        let approved = matches!(answer.trim(), "y" | "Y" | "yes");
        Ok(Decision {
            approved,
            actor,
            how: "console prompt".into(),
            reason: (!approved).then(|| "answered no at the prompt".into()),
        })
    }
}
