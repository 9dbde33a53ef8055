//! The console front-end: the local lab, and break-glass use when Discord is down.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use crate::frontend::{Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};
use crate::messages;

/// Prints progress to stderr and asks `apply? [y/N]` on a terminal.
pub struct Console {
    /// `--yes`: approve every plan without asking (recorded as such).
    pub assume_yes: bool,
    started: Mutex<Option<Instant>>,
    /// The progress line of the step running now (certbot, a deploy): it ticks until the
    /// step's next event.
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How often a long step's progress line ticks.
const TICK: std::time::Duration = std::time::Duration::from_secs(5);

impl Console {
    pub fn new(assume_yes: bool) -> Self {
        Self {
            assume_yes,
            started: Mutex::new(None),
            ticker: Mutex::new(None),
        }
    }

    fn elapsed(&self) -> String {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let t0 = *started.get_or_insert_with(Instant::now);
        format!("{:>6.1}s", t0.elapsed().as_secs_f64())
    }
}

#[async_trait]
impl ChatFrontend for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn anchor(&self, head: &crate::state::audit::Anchor) {
        eprintln!("{}", crate::messages::audit_anchor(head));
    }

    async fn attach(&self, run: &RunView) -> anyhow::Result<Option<serde_json::Value>> {
        eprintln!("{} {}", self.elapsed(), messages::run_header(run));
        Ok(None)
    }

    async fn event(&self, run: &RunView, event: &RunEvent) {
        if let Some(t) = self
            .ticker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.abort();
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K"); // clear the progress line
            }
        }
        if let RunEvent::Step {
            idx,
            status: crate::state::runs::StepStatus::Applying,
            ..
        } = event
        {
            // A progress bar for long steps: elapsed time on one line, redrawn on a terminal.
            let name = run.steps[*idx].name.clone();
            let t0 = Instant::now();
            let tty = std::io::stderr().is_terminal();
            *self.ticker.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(TICK);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let secs = t0.elapsed().as_secs();
                        let bar = "#".repeat(((secs / TICK.as_secs()) % 20) as usize + 1);
                        if tty {
                            eprint!("\r    {name}: running {secs:>4}s [{bar:<20}]");
                        } else {
                            eprintln!("    {name}: still running ({secs}s)");
                        }
                    }
                }));
        }
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
