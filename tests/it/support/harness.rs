//! What every integration test runs under: a deadline, and the lab shared with the tests beside
//! it or, for a test that stops lab services, taken alone.
//!
//! All tests are one binary, so libtest runs any of them side by side. Most tests share the lab
//! safely (each has its own databases, its own repo copy, lock files on the VPS sites it uses),
//! but a test that stops or restarts a lab service (sshd, PostgreSQL, pebble) would fail the
//! tests running beside it, and a measurement would measure them too. Those run
//! [`exclusive`]ly: every test holds [`LAB`] shared while it runs, an exclusive one holds it
//! alone. The deadline starts once the lock is held, so waiting for an exclusive test (minutes)
//! never counts against a test's own limit.
//!
//! The lock is the process's: it keeps apart the tests of this binary, not two `cargo test`s run
//! at once from two checkouts against one lab.

use std::future::Future;
use std::panic::Location;
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Held shared by every test while it runs and alone by an exclusive one. tokio's lock is fair:
/// once an exclusive test waits for it, no test starts before that one has run.
static LAB: RwLock<()> = RwLock::const_new(());

/// How a test holds the lab; dropped when the test ends, however it ends.
#[allow(dead_code)] // held for its drop
enum Hold {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// Runs an async test's `body`, sharing the lab, and fails it, naming it, if it takes longer
/// than `limit`.
#[track_caller]
pub fn within<F: Future>(limit: Duration, body: F) -> impl Future<Output = F::Output> {
    run(&LAB, false, Deadline::here(limit), body)
}

/// [`within`], with the lab to itself: for a test that stops or restarts a lab service, or
/// measures.
#[track_caller]
pub fn exclusive<F: Future>(limit: Duration, body: F) -> impl Future<Output = F::Output> {
    run(&LAB, true, Deadline::here(limit), body)
}

/// `lab` is [`LAB`], but for the harness's own tests: one of them taking [`LAB`] alone would
/// stop every other test meanwhile.
async fn run<F: Future>(
    lab: &'static RwLock<()>,
    alone: bool,
    deadline: Deadline,
    body: F,
) -> F::Output {
    let _hold = if alone {
        Hold::Alone(lab.write().await)
    } else {
        Hold::Shared(lab.read().await)
    };
    match tokio::time::timeout(deadline.limit, body).await {
        Ok(out) => out,
        Err(_) => deadline.missed(),
    }
}

/// Runs a synchronous test's `body`, sharing the lab, on a thread of its own, and fails the
/// test, naming it, if `body` takes longer than `limit`. A panic in `body` is the test's own
/// (`#[should_panic]` sees it as it was).
#[track_caller]
pub fn blocking<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let deadline = Deadline::here(limit);
    let _hold = LAB.blocking_read();
    let (tx, rx) = mpsc::channel();
    // Named as the test is, so that its panic message names the test too.
    let worker = std::thread::Builder::new()
        .name(deadline.test.clone())
        .spawn(move || {
            let _ = tx.send(body());
        })
        .unwrap_or_else(|e| panic!("{}: cannot start its thread: {e}", deadline.test));
    match rx.recv_timeout(deadline.limit) {
        Ok(out) => out,
        // The body panicked (and dropped the sender): the test fails with that panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{}: its body ended without a result", deadline.test),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => deadline.missed(),
    }
}

/// Which test a deadline is for and where it was set, for the message when it is missed.
struct Deadline {
    test: String,
    limit: Duration,
    at: &'static Location<'static>,
}

impl Deadline {
    /// Called on the test's own thread, which libtest names after the test.
    #[track_caller]
    fn here(limit: Duration) -> Deadline {
        let test = std::thread::current()
            .name()
            .unwrap_or("an unnamed test")
            .to_owned();
        Deadline {
            test,
            limit,
            at: Location::caller(),
        }
    }

    fn missed(&self) -> ! {
        panic!(
            "{} did not finish within its time limit of {} s (set at {})",
            self.test,
            self.limit.as_secs(),
            self.at
        )
    }
}

/// Logs of the bot to the test's captured output (shown when it fails), at `RUST_LOG` or
/// `onboard_bot=info`. Once per process: the first test to ask sets it up.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "onboard_bot=info".into()),
        )
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[should_panic(
        expected = "support::harness::tests::an_overrun_names_the_test did not finish within its time limit of 0 s"
    )]
    async fn an_overrun_names_the_test() {
        within(Duration::from_millis(10), std::future::pending::<()>()).await;
    }

    #[test]
    #[should_panic(
        expected = "support::harness::tests::a_blocking_overrun_names_the_test did not finish"
    )]
    fn a_blocking_overrun_names_the_test() {
        blocking(Duration::from_millis(10), || {
            std::thread::sleep(Duration::from_secs(1))
        });
    }

    #[test]
    #[should_panic(expected = "the body's own panic")]
    fn a_blocking_body_panics_as_itself() {
        blocking(Duration::from_secs(10), || panic!("the body's own panic"));
    }

    /// A lab of this test's own, see [`run`].
    static OWN_LAB: RwLock<()> = RwLock::const_new(());

    #[tokio::test]
    async fn an_exclusive_test_holds_the_lab_alone_and_others_share_it() {
        let limit = Duration::from_secs(60);
        run(&OWN_LAB, true, Deadline::here(limit), async {
            assert!(
                OWN_LAB.try_read().is_err(),
                "a test ran beside an exclusive one"
            );
        })
        .await;
        run(&OWN_LAB, false, Deadline::here(limit), async {
            assert!(
                OWN_LAB.try_write().is_err(),
                "an exclusive test could start beside this one"
            );
            assert!(
                OWN_LAB.try_read().is_ok(),
                "a shared test waits for another"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_body_within_its_limit_returns_its_value() {
        assert_eq!(within(Duration::from_secs(10), async { 7 }).await, 7);
    }

    #[test]
    fn a_blocking_body_within_its_limit_returns_its_value() {
        assert_eq!(blocking(Duration::from_secs(10), || 8), 8);
    }
}
