//! What the tests onboard, and the engine they run it on: one place that builds a request the
//! way an operator types it, instead of a builder copied into each test file.

#![allow(dead_code)]

use std::sync::Arc;

use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::{Config, OnboardingConfig};
use onboard_bot::engine::Engine;
use onboard_bot::frontend::ChatFrontend;
use onboard_bot::request::Request;
use sqlx::PgPool;

/// `args` parsed as the bot parses a command, with the default onboarding settings; the test
/// fails if they are not valid.
pub fn request(args: OnboardArgs) -> Request {
    args.parse(&OnboardingConfig::default())
        .expect("valid request")
}

/// An onboarding of `slug` in `mode` (`person-only`, `person-owns-org`, `person-joins-org`),
/// with the org's slug and name where the mode takes them.
pub fn in_mode(
    slug: &str,
    name: &str,
    email: &str,
    mode: &str,
    org: Option<&str>,
    org_name: Option<&str>,
) -> OnboardArgs {
    OnboardArgs {
        slug: slug.into(),
        name: name.into(),
        email: email.into(),
        mode: mode.into(),
        org: org.map(String::from),
        org_name: org_name.map(String::from),
        ..Default::default()
    }
}

/// A person with no org, reached at `{slug}@example.com`.
pub fn person_only(slug: &str, name: &str) -> OnboardArgs {
    in_mode(
        slug,
        name,
        &format!("{slug}@example.com"),
        "person-only",
        None,
        None,
    )
}

/// An engine on this test's config, asking `frontend` for approvals.
pub async fn engine(cfg: Arc<Config>, frontend: Arc<dyn ChatFrontend>) -> Engine {
    Engine::new(cfg, frontend)
        .await
        .expect("engine starts against the lab")
}

/// How many people `slug` names in the tenant DB `platform` (a superuser pool: past RLS).
pub async fn users(platform: &PgPool, slug: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE slug = $1")
        .bind(slug)
        .fetch_one(platform)
        .await
        .unwrap()
}
