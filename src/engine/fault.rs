//! Fault injection for the crash tests: where a test may kill the process.

use std::time::Duration;

/// A test hook: `ONBOARD_BOT_FAULT=<when>:<step>[:<ms>]` makes the process print a marker at
/// that point so a test can SIGKILL it there. `before-apply` and `after-apply` (the write done,
/// its success not yet recorded: the worst moment) then hang; `during-apply` prints the marker
/// `<ms>` milliseconds into the apply and lets it go on, so the kill lands mid-step (certbot or
/// the deploy command running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FaultPoint {
    when: String,
    step: String,
    delay: Duration,
}

impl FaultPoint {
    pub(super) fn from_env() -> Option<Self> {
        let raw = std::env::var("ONBOARD_BOT_FAULT").ok()?;
        let mut parts = raw.split(':');
        let when = parts.next()?.to_owned();
        let step = parts.next()?.to_owned();
        let delay = Duration::from_millis(parts.next().and_then(|ms| ms.parse().ok()).unwrap_or(0));
        Some(Self { when, step, delay })
    }

    pub(super) fn matches(fault: &Option<Self>, when: &str, step: &str) -> Option<Duration> {
        fault
            .as_ref()
            .filter(|f| f.when == when && f.step == step)
            .map(|f| f.delay)
    }

    pub(super) async fn hit(fault: &Option<Self>, when: &str, step: &str) {
        if Self::matches(fault, when, step).is_some() {
            eprintln!("FAULT-POINT {when}:{step} reached; waiting to be killed");
            std::future::pending::<()>().await;
        }
    }

    /// Runs `work`; with a matching `during-apply` fault, announces the kill point meanwhile.
    pub(super) async fn during<T>(
        fault: &Option<Self>,
        step: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let Some(delay) = Self::matches(fault, "during-apply", step) else {
            return work.await;
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => out,
            _ = tokio::time::sleep(delay) => {
                eprintln!("FAULT-POINT during-apply:{step} reached; waiting to be killed");
                work.await
            }
        }
    }
}
