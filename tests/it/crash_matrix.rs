//! The crash matrix (long: run by scripts/crash-matrix, not in CI): SIGKILL the bot before and
//! after every step's apply and in the middle of the long ones (deploy, certbot), restart it
//! with `runs resume`, and compare the end state with an uninterrupted run: the same rows, one
//! certificate, the same commits. Prints "passed N of N". The abandon runbook gets the same
//! treatment (`abandon_crash_matrix`).

use crate::support::harness::within;
use crate::support::lab;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lab::Lab;
use sqlx::PgPool;

const STEPS: [&str; 9] = [
    "preflight",
    "create-person",
    "create-org",
    "deploy-config",
    "deploy-stub",
    "cert",
    "sync-back",
    "release",
    "verify",
];

fn points() -> Vec<String> {
    let mut out = Vec::new();
    for step in STEPS {
        out.push(format!("before-apply:{step}"));
        out.push(format!("after-apply:{step}"));
    }
    out.push("during-apply:deploy-stub:200".into());
    out.push("during-apply:cert:2500".into());
    out
}

fn onboard_args(slug: &str) -> Vec<String> {
    [
        "onboard",
        "--slug",
        slug,
        "--name",
        "Crash Person",
        "--email",
        "crash@example.com",
        "--mode",
        "person-owns-org",
        "--org",
        &format!("{slug}-org"),
        "--org-name",
        "Crash Org",
        "--mail",
        "none",
        "--yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The end state, with the slug written as SLUG so runs of different slugs compare.
async fn end_state(lab: &Lab, platform: &PgPool, tmp: &Path, slug: &str) -> Vec<String> {
    let mut out: Vec<String> = sqlx::query_scalar(
        "SELECT 'user ' || slug || ' ' || email FROM users WHERE slug LIKE $1
         UNION ALL SELECT 'org ' || o.slug || ' owner=' || u.slug FROM orgs o JOIN users u ON u.id = o.owner_id WHERE o.slug LIKE $1
         UNION ALL SELECT 'member ' || o.slug || ' ' || u.slug || ' ' || m.role FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id WHERE u.slug LIKE $1",
    )
    .bind(format!("{slug}%"))
    .fetch_all(platform)
    .await
    .unwrap();
    let log = Command::new("git")
        .args(["log", "--format=%s", "main"])
        .current_dir(tmp.join("origin.git"))
        .output()
        .unwrap();
    out.extend(
        String::from_utf8_lossy(&log.stdout)
            .lines()
            .map(|l| format!("commit {l}")),
    );
    let live = lab.dir.join("vps/letsencrypt/live");
    let certs = std::fs::read_dir(&live)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{slug}.com"))
                })
                .count()
        })
        .unwrap_or(0);
    out.push(format!("certificates {certs}"));
    out.sort();
    out.into_iter().map(|l| l.replace(slug, "SLUG")).collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by scripts/crash-matrix"]
async fn crash_matrix() {
    within(Duration::from_secs(3600), async {
        let lab = Lab::get();
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let run_id = std::process::id();

        let reference = {
            let slug = format!("crash-ref-{run_id}");
            lab.serve_domains(&[&format!("{slug}.com")]);
            let dbs = lab.fresh().await;
            let tmp = tempfile::tempdir().unwrap();
            let cfg = dbs.write_config(tmp.path(), |t| t);
            let ok = Command::new(bin)
                .args(onboard_args(&slug))
                .arg("--config")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "the uninterrupted run failed");
            end_state(&lab, &dbs.platform_admin().await, tmp.path(), &slug).await
        };
        assert!(
            reference.contains(&"certificates 1".to_string()),
            "{reference:#?}"
        );

        let points = points();
        let mut passed = 0;
        for (i, point) in points.iter().enumerate() {
            let slug = format!("crash-{i}-{run_id}");
            lab.serve_domains(&[&format!("{slug}.com")]);
            let dbs = lab.fresh().await;
            let tmp = tempfile::tempdir().unwrap();
            let cfg = dbs.write_config(tmp.path(), |t| t);
            let reached = lab::kill_at_fault_point(&onboard_args(&slug), &cfg, point).await;
            let state = dbs.state_admin().await;
            let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM runs")
                .fetch_one(&state)
                .await
                .unwrap();
            let resume = Command::new(bin)
                .args(["runs", "resume", &id.to_string(), "--yes", "--config"])
                .arg(&cfg)
                .output()
                .unwrap();
            let end = end_state(&lab, &dbs.platform_admin().await, tmp.path(), &slug).await;
            let ok = reached && resume.status.success() && end == reference;
            if ok {
                passed += 1;
            }
            println!(
                "{} {point}{}",
                if ok { "PASS" } else { "FAIL" },
                if ok {
                    String::new()
                } else {
                    format!(
                        " (fault reached: {reached}; resume: {}; end state {:?} vs reference {:?})\n{}",
                        resume.status,
                        end,
                        reference,
                        String::from_utf8_lossy(&resume.stderr)
                            .lines()
                            .rev()
                            .take(5)
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                }
            );
        }
        println!("crash matrix: passed {passed} of {}", points.len());
        assert_eq!(passed, points.len());
    })
    .await;
}

/// The abandon runbook's steps that write (dns-leftovers only lists, it never applies).
const ABANDON_STEPS: [&str; 6] = [
    "undo-release",
    "undo-site",
    "undo-cert",
    "undo-deploy-config",
    "undo-database",
    "forget-site",
];

fn abandon_points() -> Vec<String> {
    let mut out = Vec::new();
    for step in ABANDON_STEPS {
        out.push(format!("before-apply:{step}"));
        out.push(format!("after-apply:{step}"));
    }
    out.push("during-apply:undo-cert:300".into());
    out
}

/// Onboards `slug` to its end with the binary; returns the onboarding's run id.
async fn onboarded(bin: &str, cfg: &Path, state: &PgPool, slug: &str) -> uuid::Uuid {
    let ok = Command::new(bin)
        .args(onboard_args(slug))
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "the onboarding of {slug} failed");
    sqlx::query_scalar("SELECT id FROM runs WHERE runbook = 'onboard'")
        .fetch_one(state)
        .await
        .unwrap()
}

fn abandon_args(onboarding: uuid::Uuid) -> Vec<String> {
    [
        "runs",
        "abandon",
        &onboarding.to_string(),
        "--reason",
        "crash matrix",
        "--yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The abandon runbook under the same treatment: a finished onboarding abandoned, SIGKILLed at
/// every boundary of its writing steps (and in the middle of certbot delete), resumed, and
/// compared with an uninterrupted abandon: no rows, no certificate, the same commits.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by scripts/crash-matrix"]
async fn abandon_crash_matrix() {
    within(Duration::from_secs(3600), async {
        let lab = Lab::get();
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let run_id = std::process::id();

        let reference = {
            let slug = format!("abcrash-ref-{run_id}");
            lab.serve_domains(&[&format!("{slug}.com")]);
            let dbs = lab.fresh().await;
            let tmp = tempfile::tempdir().unwrap();
            let cfg = dbs.write_config(tmp.path(), |t| t);
            let id = onboarded(bin, &cfg, &dbs.state_admin().await, &slug).await;
            let ok = Command::new(bin)
                .args(abandon_args(id))
                .arg("--config")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "the uninterrupted abandon failed");
            end_state(&lab, &dbs.platform_admin().await, tmp.path(), &slug).await
        };
        assert!(
            reference.contains(&"certificates 0".to_string())
                && !reference.iter().any(|l| l.starts_with("user ")),
            "{reference:#?}"
        );

        let points = abandon_points();
        let mut passed = 0;
        for (i, point) in points.iter().enumerate() {
            let slug = format!("abcrash-{i}-{run_id}");
            lab.serve_domains(&[&format!("{slug}.com")]);
            let dbs = lab.fresh().await;
            let tmp = tempfile::tempdir().unwrap();
            let cfg = dbs.write_config(tmp.path(), |t| t);
            let state = dbs.state_admin().await;
            let onboarding = onboarded(bin, &cfg, &state, &slug).await;
            let reached = lab::kill_at_fault_point(&abandon_args(onboarding), &cfg, point).await;
            let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM runs WHERE runbook = 'abandon'")
                .fetch_one(&state)
                .await
                .unwrap();
            let resume = Command::new(bin)
                .args(["runs", "resume", &id.to_string(), "--yes", "--config"])
                .arg(&cfg)
                .output()
                .unwrap();
            let end = end_state(&lab, &dbs.platform_admin().await, tmp.path(), &slug).await;
            let ok = reached && resume.status.success() && end == reference;
            if ok {
                passed += 1;
            }
            println!(
                "{} abandon {point}{}",
                if ok { "PASS" } else { "FAIL" },
                if ok {
                    String::new()
                } else {
                    format!(
                        " (fault reached: {reached}; resume: {}; end state {end:?} vs reference {reference:?})\n{}",
                        resume.status,
                        String::from_utf8_lossy(&resume.stderr)
                            .lines()
                            .rev()
                            .take(5)
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                }
            );
        }
        println!("abandon crash matrix: passed {passed} of {}", points.len());
        assert_eq!(passed, points.len());
    })
    .await;
}
