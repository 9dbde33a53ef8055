//! `/metrics` in the Prometheus text format (version 0.0.4), written by hand: four families
//! do not need a metrics crate.
//!
//! Runs, approvals and step durations are read from the state database at scrape time (the
//! database is the source of truth and survives restarts); Discord API errors are counted in
//! this process.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;

use crate::state::runs::RunStatus;
use crate::state::stats;

/// Every run status, so each series exists (at 0) before its first run.
const RUN_STATUSES: [RunStatus; 8] = [
    RunStatus::Running,
    RunStatus::WaitingApproval,
    RunStatus::Parked,
    RunStatus::Failed,
    RunStatus::Rejected,
    RunStatus::Expired,
    RunStatus::Done,
    RunStatus::Cancelled,
];

/// Upper bounds of the step duration buckets, in seconds: from a quick INSERT to a DNS step
/// parked for a day.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0,
];

static DISCORD_API_ERRORS: AtomicU64 = AtomicU64::new(0);

/// For the Discord front-end: one failed call to Discord's API (REST error, rate limit,
/// gateway error). Shown as `onboard_bot_discord_api_errors_total`.
pub fn discord_api_error() {
    DISCORD_API_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// Discord API errors counted in this process so far.
pub fn discord_api_errors() -> u64 {
    DISCORD_API_ERRORS.load(Ordering::Relaxed)
}

/// Durations of the finished steps of one name.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDurations {
    pub step: String,
    /// Cumulative counts, one per [`DURATION_BUCKETS`] bound.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_secs: f64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Whether the state database answered; when not, the database-backed families are absent.
    pub state_db_up: bool,
    /// Runs per status (as stored).
    pub runs: Vec<(String, u64)>,
    pub steps: Vec<StepDurations>,
    /// `None` when this process has no Discord gateway.
    pub gateway_connected: Option<bool>,
    pub discord_api_errors: u64,
}

/// Reads what the state database knows; a database error leaves `state_db_up` false.
pub async fn gather(pool: &PgPool, gateway_connected: Option<bool>) -> Snapshot {
    let mut snap = Snapshot {
        gateway_connected,
        discord_api_errors: discord_api_errors(),
        ..Default::default()
    };
    match from_db(pool).await {
        Ok((runs, steps)) => {
            snap.state_db_up = true;
            snap.runs = runs;
            snap.steps = steps;
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "metrics: the state database did not answer")
        }
    }
    snap
}

type DbFigures = (Vec<(String, u64)>, Vec<StepDurations>);

async fn from_db(pool: &PgPool) -> anyhow::Result<DbFigures> {
    let by_status = stats::runs_by_status(pool).await?;
    let mut runs: Vec<(String, u64)> = RUN_STATUSES
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for (status, n) in by_status {
        match runs.iter_mut().find(|(s, _)| *s == status) {
            Some(slot) => slot.1 = n as u64,
            None => runs.push((status, n as u64)),
        }
    }
    let stats::StepTimes { totals, buckets } = stats::step_times(pool, &DURATION_BUCKETS).await?;
    let steps = totals
        .into_iter()
        .map(|(step, count, sum_secs)| {
            let mut counts = vec![0u64; DURATION_BUCKETS.len()];
            for (_, i, n) in buckets.iter().filter(|(s, _, _)| *s == step) {
                if let Some(slot) = counts.get_mut(*i as usize - 1) {
                    *slot = *n as u64;
                }
            }
            StepDurations {
                step,
                buckets: counts,
                count: count as u64,
                sum_secs,
            }
        })
        .collect();
    Ok((runs, steps))
}

/// The Prometheus text for a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for sample in samples {
            let _ = writeln!(out, "{name}{sample}");
        }
    };

    family(
        "onboard_bot_state_db_up",
        "gauge",
        "Whether the bot's state database answered this scrape (1) or not (0).",
        vec![format!(" {}", u8::from(s.state_db_up))],
    );
    if s.state_db_up {
        family(
            "onboard_bot_runs",
            "gauge",
            "Runs recorded in the state database, by status.",
            s.runs
                .iter()
                .map(|(status, n)| format!("{{status=\"{}\"}} {n}", escape(status)))
                .collect(),
        );
        let waiting = s
            .runs
            .iter()
            .find(|(st, _)| st == RunStatus::WaitingApproval.as_str())
            .map_or(0, |(_, n)| *n);
        family(
            "onboard_bot_approvals_waiting",
            "gauge",
            "Runs waiting for a person to approve a plan.",
            vec![format!(" {waiting}")],
        );
        let mut samples = Vec::new();
        for d in &s.steps {
            let step = escape(&d.step);
            for (le, n) in DURATION_BUCKETS.iter().zip(&d.buckets) {
                samples.push(format!("_bucket{{step=\"{step}\",le=\"{le}\"}} {n}"));
            }
            samples.push(format!(
                "_bucket{{step=\"{step}\",le=\"+Inf\"}} {}",
                d.count
            ));
            samples.push(format!("_sum{{step=\"{step}\"}} {}", d.sum_secs));
            samples.push(format!("_count{{step=\"{step}\"}} {}", d.count));
        }
        family(
            "onboard_bot_step_duration_seconds",
            "histogram",
            "Wall time of finished steps (first planning to end, waits included), by step.",
            samples,
        );
    }
    if let Some(up) = s.gateway_connected {
        family(
            "onboard_bot_discord_gateway_connected",
            "gauge",
            "Whether the Discord gateway is connected (1) or not (0).",
            vec![format!(" {}", u8::from(up))],
        );
    }
    family(
        "onboard_bot_discord_api_errors_total",
        "counter",
        "Failed calls to Discord's API made by this process.",
        vec![format!(" {}", s.discord_api_errors)],
    );
    out
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let snap = Snapshot {
            state_db_up: true,
            runs: vec![("done".into(), 2), ("waiting_approval".into(), 1)],
            steps: vec![StepDurations {
                step: "create-person".into(),
                buckets: vec![1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
                count: 2,
                sum_secs: 0.75,
            }],
            gateway_connected: Some(false),
            discord_api_errors: 3,
        };
        let text = render(&snap);
        for want in [
            "onboard_bot_state_db_up 1\n",
            "onboard_bot_runs{status=\"done\"} 2\n",
            "onboard_bot_approvals_waiting 1\n",
            "# TYPE onboard_bot_step_duration_seconds histogram\n",
            "onboard_bot_step_duration_seconds_bucket{step=\"create-person\",le=\"0.1\"} 1\n",
            "onboard_bot_step_duration_seconds_bucket{step=\"create-person\",le=\"+Inf\"} 2\n",
            "onboard_bot_step_duration_seconds_sum{step=\"create-person\"} 0.75\n",
            "onboard_bot_step_duration_seconds_count{step=\"create-person\"} 2\n",
            "onboard_bot_discord_gateway_connected 0\n",
            "onboard_bot_discord_api_errors_total 3\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn database_down_leaves_out_its_families() {
        let text = render(&Snapshot::default());
        assert!(text.contains("onboard_bot_state_db_up 0\n"), "{text}");
        assert!(!text.contains("onboard_bot_runs"), "{text}");
        assert!(!text.contains("gateway"), "{text}");
        assert!(text.contains("onboard_bot_discord_api_errors_total 0\n"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
