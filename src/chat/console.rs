//! The console front-end: the local lab, and break-glass use when Discord is down.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use crate::commands::Answers;
use crate::frontend::{Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};
use crate::messages;

/// Prints progress to stderr and asks for each plan's decision on a terminal.
pub struct Console {
    /// Ask, `--yes` (approve every plan, recorded as such) or `--reject-reason`.
    pub answers: Answers,
    started: Mutex<Option<Instant>>,
    /// The progress line of the step running now (certbot, a deploy): it ticks until the
    /// step's next event.
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How often a long step's progress line ticks.
const TICK: std::time::Duration = std::time::Duration::from_secs(5);

impl Console {
    pub fn new(answers: Answers) -> Self {
        Self {
            answers,
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
        match &self.answers {
            Answers::Yes => {
                eprintln!("approved with --yes by {}", actor.display);
                return Ok(Decision {
                    approved: true,
                    actor,
                    how: "console --yes".into(),
                    reason: None,
                });
            }
            Answers::Reject(reason) => {
                eprintln!(
                    "rejected with --reject-reason by {}: {reason}",
                    actor.display
                );
                return Ok(Decision {
                    approved: false,
                    actor,
                    how: "console --reject-reason".into(),
                    reason: Some(reason.clone()),
                });
            }
            Answers::Ask => {}
        }
        if !std::io::stdin().is_terminal() {
            return Ok(Decision {
                approved: false,
                actor,
                how: "console (no terminal)".into(),
                reason: Some("no terminal to ask on and --yes not given".into()),
            });
        }
        let detail = req.detail.clone();
        let (approved, reason) =
            tokio::task::spawn_blocking(move || ask_on_terminal(&detail)).await??;
        Ok(Decision {
            approved,
            actor,
            how: "console prompt".into(),
            reason,
        })
    }
}

/// What a person typed at the approval prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptAnswer {
    Approve,
    Reject,
    ShowDiff,
    /// Anything else: asked again.
    Unclear,
}

impl PromptAnswer {
    pub fn parse(line: &str) -> Self {
        match line.trim().to_ascii_lowercase().as_str() {
            "a" | "approve" | "y" | "yes" => Self::Approve,
            "r" | "reject" | "n" | "no" => Self::Reject,
            "d" | "diff" | "show" => Self::ShowDiff,
            _ => Self::Unclear,
        }
    }
}

/// Asks on the terminal until the person approves, or rejects with a reason.
fn ask_on_terminal(detail: &str) -> anyhow::Result<(bool, Option<String>)> {
    ask(detail, &mut std::io::stdin().lock(), &mut std::io::stderr())
}

/// The approval dialogue: `a` approves; `r` rejects and asks for the reason until one is
/// given; `d` shows the plan again; anything else asks again. The end of the input decides
/// nothing: it is a rejection saying so.
fn ask(
    detail: &str,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<(bool, Option<String>)> {
    let mut read = |out: &mut dyn Write, prompt: &str| -> anyhow::Result<Option<String>> {
        write!(out, "{prompt}")?;
        out.flush().ok();
        let mut line = String::new();
        Ok((input.read_line(&mut line)? > 0).then_some(line))
    };
    loop {
        let Some(line) = read(out, messages::console_approval_prompt())? else {
            return Ok((false, Some("the terminal closed before an answer".into())));
        };
        match PromptAnswer::parse(&line) {
            PromptAnswer::Approve => return Ok((true, None)),
            PromptAnswer::ShowDiff => writeln!(out, "{detail}")?,
            PromptAnswer::Unclear => {}
            PromptAnswer::Reject => loop {
                let Some(reason) = read(out, messages::console_reject_reason_prompt())? else {
                    return Ok((false, Some("the terminal closed before a reason".into())));
                };
                let reason = reason.trim();
                if !reason.is_empty() {
                    return Ok((false, Some(reason.to_owned())));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PromptAnswer, ask};

    fn dialogue(typed: &str) -> ((bool, Option<String>), String) {
        let mut out = Vec::new();
        let decided = ask("+ the plan", &mut typed.as_bytes(), &mut out).unwrap();
        (decided, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_dialogue_approves_rejects_with_a_reason_and_shows_the_plan() {
        assert_eq!(dialogue("a\n").0, (true, None));
        // A rejection asks why until it is told; the plan is shown again on `d`.
        let (decided, shown) = dialogue("what?\nd\nr\n\n  \nwrong e-mail\n");
        assert_eq!(decided, (false, Some("wrong e-mail".into())));
        assert_eq!(shown.matches("[a]pprove").count(), 3, "{shown}");
        assert_eq!(shown.matches("reason for rejecting").count(), 3, "{shown}");
        assert!(shown.contains("+ the plan\n"), "{shown}");
        // The input ends: nothing is approved.
        assert_eq!(
            dialogue("").0,
            (false, Some("the terminal closed before an answer".into()))
        );
        assert_eq!(
            dialogue("r\n").0,
            (false, Some("the terminal closed before a reason".into()))
        );
    }

    #[test]
    fn prompt_answers() {
        assert_eq!(PromptAnswer::parse("a\n"), PromptAnswer::Approve);
        assert_eq!(PromptAnswer::parse(" Y "), PromptAnswer::Approve);
        assert_eq!(PromptAnswer::parse("r"), PromptAnswer::Reject);
        assert_eq!(PromptAnswer::parse("no"), PromptAnswer::Reject);
        assert_eq!(PromptAnswer::parse("d"), PromptAnswer::ShowDiff);
        assert_eq!(PromptAnswer::parse(""), PromptAnswer::Unclear);
        assert_eq!(PromptAnswer::parse("apply"), PromptAnswer::Unclear);
    }
}
