//! Benchmark (not a test: ignored, run by scripts/bench): interaction acknowledgement latency of
//! onboard-bot beside a bare serenity handler that only acknowledges, both against the fake
//! Discord; 1000 interactions with 20 in flight (a p99 over 200 is the second-worst sample, too
//! noisy to compare), p50 and p99, again while a run hangs waiting for an approval, and a bare
//! handler doing /status's work after its ack. Prints figures; asserts nothing about time.

use crate::support::harness::exclusive;
use crate::support::{fake_discord, lab};

use std::sync::Arc;
use std::time::Duration;

use fake_discord::FakeDiscord;
use lab::Lab;
use onboard_bot::chat::discord::Bot;
use serde_json::json;
use serenity::all::{
    Client, ClientBuilder, Context, CreateCommand, CreateInteractionResponse,
    CreateInteractionResponseMessage, EditInteractionResponse, EventHandler, GatewayIntents,
    Interaction, Ready,
};

const N: usize = 1000;
const IN_FLIGHT: usize = 20;
const T: Duration = Duration::from_secs(60);

/// Sends N `/status` commands, IN_FLIGHT at a time; returns the ack latencies in ms, sorted.
async fn measure(fake: &FakeDiscord) -> Vec<f64> {
    let mut lat = Vec::with_capacity(N);
    let mut sent = 0;
    while sent < N {
        let batch: Vec<_> = (0..IN_FLIGHT.min(N - sent))
            .map(|_| fake.send_command(fake.requester(), "status", json!({})))
            .collect();
        sent += batch.len();
        for h in &batch {
            lat.push(fake.interaction_response(h).await.latency.as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    lat
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)]
}

/// A serenity handler that acknowledges each command; with a pool, it then does what the bot's
/// /status does after its acknowledgement (one query of the runs, one edit of the response),
/// to tell the bot's own overhead from the cost of that work on this machine's two cores,
/// which the fake Discord and PostgreSQL share with the client.
struct Bare {
    follow_up: Option<sqlx::PgPool>,
}

#[serenity::async_trait]
impl EventHandler for Bare {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let guild = ready.guilds[0].id;
        guild
            .set_commands(
                &ctx.http,
                vec![CreateCommand::new("status").description("ack only")],
            )
            .await
            .expect("register");
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(cmd) = interaction {
            let _ = cmd
                .create_response(
                    &ctx.http,
                    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new()),
                )
                .await;
            if let Some(pool) = &self.follow_up {
                let rows = sqlx::query(
                    "SELECT * FROM runs WHERE NOT $1 OR status NOT IN ('done', 'cancelled') ORDER BY created_at DESC LIMIT $2",
                )
                .bind(true)
                .bind(15_i64)
                .fetch_all(pool)
                .await
                .expect("query the runs");
                let _ = cmd
                    .edit_response(
                        &ctx.http,
                        EditInteractionResponse::new().content(format!("{} runs", rows.len())),
                    )
                    .await;
            }
        }
    }
}

/// Runs a [`Bare`] handler against a fresh fake Discord and measures it.
async fn measure_bare(follow_up: Option<sqlx::PgPool>) -> Vec<f64> {
    let fake = FakeDiscord::start().await;
    let mut client: Client = ClientBuilder::new_with_http(fake.http(), GatewayIntents::GUILDS)
        .event_handler(Bare { follow_up })
        .await
        .unwrap();
    let shards = client.shard_manager.clone();
    let task = tokio::spawn(async move {
        let _ = client.start().await;
    });
    fake.wait_ready(T).await;
    fake.wait_for_commands(&["status"], T).await;
    let lat = measure(&fake).await;
    shards.shutdown_all().await;
    let _ = task.await;
    fake.finish();
    lat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench"]
async fn ack_latency() {
    exclusive(Duration::from_secs(600), async {
        let bare = measure_bare(None).await;

        // onboard-bot, against the lab.
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeDiscord::start().await;
        let discord = fake.config_section(tmp.path());
        let cfg = dbs.config(tmp.path(), |t| t + &discord);
        let bot = Bot::start(Arc::clone(&cfg)).await.expect("bot starts");
        fake.wait_ready(T).await;
        fake.wait_for_commands(&["onboard", "status"], T).await;
        let ours = measure(&fake).await;
        // A run hanging on its approval (nobody clicks) while the interactions keep coming.
        let h = fake.send_command(
            fake.requester(),
            "onboard",
            json!({"slug": "bench-hang", "name": "Hang", "email": "hang@example.com"}),
        );
        fake.interaction_response(&h).await;
        fake.wait_for_thread(|t| t.name.starts_with("onboard bench-hang"), T)
            .await;
        let hanging = measure(&fake).await;
        let state = onboard_bot::state::connect(&cfg.state_db).await.unwrap();
        let bare_work = measure_bare(Some(state)).await;

        println!(
            "interaction acknowledgement latency, {N} interactions, {IN_FLIGHT} in flight (ms):"
        );
        println!("{:<36} {:>8} {:>8}", "", "p50", "p99");
        for (name, v) in [
            ("bare serenity handler", &bare),
            ("onboard-bot", &ours),
            ("onboard-bot while a run hangs", &hanging),
            ("bare handler + /status's work", &bare_work),
        ] {
            println!("{name:<36} {:>8.2} {:>8.2}", pct(v, 0.5), pct(v, 0.99));
        }
        println!(
            "{:<36} {:>8.2} {:>8.2}  (target: p99 at most 1.3x, and under 50 ms)",
            "ratio onboard-bot / bare",
            pct(&ours, 0.5) / pct(&bare, 0.5),
            pct(&ours, 0.99) / pct(&bare, 0.99)
        );
        println!(
            "{:<36} {:>8.2} {:>8.2}  (the bot's own overhead, same work after the ack)",
            "ratio onboard-bot / bare + work",
            pct(&ours, 0.5) / pct(&bare_work, 0.5),
            pct(&ours, 0.99) / pct(&bare_work, 0.99)
        );
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}
