//! Proves the fake Discord against the REAL serenity 0.12 client (a tiny handler defined here,
//! not the project's bot), and proves the validator can fail.

use crate::support::fake_discord;
use crate::support::harness::{blocking, init_tracing, within};

use fake_discord::{FakeDiscord, Reconnect};
use serde_json::{Value, json};
use serenity::all::{
    AutoArchiveDuration, ButtonStyle, ChannelId, ChannelType, Client, ClientBuilder,
    CommandOptionType, ComponentInteractionDataKind, Context, CreateActionRow, CreateAttachment,
    CreateAutocompleteResponse, CreateButton, CreateCommand, CreateCommandOption, CreateEmbed,
    CreateInputText, CreateInteractionResponse, CreateInteractionResponseFollowup,
    CreateInteractionResponseMessage, CreateMessage, CreateModal, CreateThread,
    EditInteractionResponse, EditMessage, EditThread, EventHandler, GatewayIntents, InputTextStyle,
    Interaction, Ready, ResumedEvent, ShardManager,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const T: Duration = Duration::from_secs(10);

// ----- a tiny serenity bot ------------------------------------------------------------------

#[derive(Clone)]
struct Handler {
    /// Errors from HTTP calls the handler made (the test asserts there are none).
    errors: Arc<Mutex<Vec<String>>>,
    /// Found by name via REST in `ready`.
    ops_channel: Arc<watch::Sender<Option<ChannelId>>>,
}

impl Handler {
    fn err(&self, what: &str, e: impl std::fmt::Display) {
        self.errors.lock().unwrap().push(format!("{what}: {e}"));
    }

    async fn onboard(&self, ctx: &Context, cmd: &serenity::all::CommandInteraction) {
        let host = cmd
            .data
            .options
            .first()
            .and_then(|o| o.value.as_str())
            .unwrap_or("?")
            .to_string();
        if let Err(e) = cmd.defer(&ctx.http).await {
            return self.err("defer", e);
        }
        let follow = CreateInteractionResponseFollowup::new()
            .content(format!("onboarding {host} requested by <@{}>", cmd.user.id));
        if let Err(e) = cmd.create_followup(&ctx.http, follow).await {
            return self.err("followup", e);
        }
        let ops = self.ops_channel.borrow().expect("ops channel known");
        let embed = CreateEmbed::new()
            .title(format!("Onboard {host}"))
            .description("Waiting for approval")
            .field("requester", format!("<@{}>", cmd.user.id), true);
        let buttons = CreateActionRow::Buttons(vec![
            CreateButton::new(format!("approve:{host}"))
                .label("Approve")
                .style(ButtonStyle::Success),
            CreateButton::new(format!("deny:{host}"))
                .label("Deny")
                .style(ButtonStyle::Danger),
        ]);
        let msg = match ops
            .send_message(
                &ctx.http,
                CreateMessage::new().embed(embed).components(vec![buttons]),
            )
            .await
        {
            Ok(m) => m,
            Err(e) => return self.err("send approval message", e),
        };
        let thread = CreateThread::new(format!("onboard {host}"))
            .auto_archive_duration(AutoArchiveDuration::OneDay);
        let thread = match ops
            .create_thread_from_message(&ctx.http, msg.id, thread)
            .await
        {
            Ok(t) => t,
            Err(e) => return self.err("create thread", e),
        };
        if let Err(e) = thread.id.say(&ctx.http, format!("log for {host}")).await {
            return self.err("post in thread", e);
        }
        let edited = CreateEmbed::new()
            .title(format!("Onboard {host}"))
            .description(format!(
                "Waiting for approval — details in <#{}>",
                thread.id
            ));
        if let Err(e) = ops
            .edit_message(&ctx.http, msg.id, EditMessage::new().embed(edited))
            .await
        {
            self.err("edit approval message", e);
        }
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let guild = ready.guilds[0].id;
        let host = CreateCommandOption::new(CommandOptionType::String, "host", "host to onboard")
            .required(true)
            .set_autocomplete(true);
        let commands = vec![
            CreateCommand::new("onboard")
                .description("onboard a host")
                .add_option(host),
            CreateCommand::new("form").description("open a form"),
            CreateCommand::new("ignore").description("the bot never answers this one"),
        ];
        if let Err(e) = guild.set_commands(&ctx.http, commands).await {
            self.err("set_commands", e);
        }
        let channels = match guild.channels(&ctx.http).await {
            Ok(c) => c,
            Err(e) => return self.err("list channels", e),
        };
        let ops = channels.values().find(|c| c.name == "ops").map(|c| c.id);
        self.ops_channel.send_replace(ops);
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {}

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(cmd) => match cmd.data.name.as_str() {
                "onboard" => self.onboard(&ctx, &cmd).await,
                "form" => {
                    let input = CreateInputText::new(InputTextStyle::Short, "Reason", "reason");
                    let modal = CreateModal::new("form:1", "Details")
                        .components(vec![CreateActionRow::InputText(input)]);
                    if let Err(e) = cmd
                        .create_response(&ctx.http, CreateInteractionResponse::Modal(modal))
                        .await
                    {
                        self.err("modal", e);
                    }
                }
                _ => {} // "ignore": deliberately never acknowledged
            },
            Interaction::Component(c) => {
                assert!(matches!(c.data.kind, ComponentInteractionDataKind::Button));
                let verdict = c
                    .data
                    .custom_id
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let reply = CreateInteractionResponseMessage::new()
                    .content(format!("{verdict}d by <@{}>", c.user.id))
                    .components(vec![]);
                if let Err(e) = c
                    .create_response(&ctx.http, CreateInteractionResponse::UpdateMessage(reply))
                    .await
                {
                    self.err("update message", e);
                }
            }
            Interaction::Modal(m) => {
                let reason = m
                    .data
                    .components
                    .iter()
                    .flat_map(|r| &r.components)
                    .find_map(|c| match c {
                        serenity::all::ActionRowComponent::InputText(t) => t.value.clone(),
                        _ => None,
                    });
                let reason = reason.unwrap_or_default();
                let reply = CreateInteractionResponseMessage::new()
                    .content(format!("reason: {reason}"))
                    .ephemeral(true);
                if let Err(e) = m
                    .create_response(&ctx.http, CreateInteractionResponse::Message(reply))
                    .await
                {
                    return self.err("modal reply", e);
                }
                // Then edit the original response (PATCH .../messages/@original).
                let edit =
                    EditInteractionResponse::new().content(format!("reason: {reason} (saved)"));
                if let Err(e) = m.edit_response(&ctx.http, edit).await {
                    self.err("edit modal reply", e);
                }
            }
            Interaction::Autocomplete(a) => {
                let typed = a
                    .data
                    .autocomplete()
                    .map(|o| o.value.to_string())
                    .unwrap_or_default();
                let choices = CreateAutocompleteResponse::new()
                    .add_string_choice(format!("{typed}-1"), format!("{typed}-1"))
                    .add_string_choice(format!("{typed}-2"), format!("{typed}-2"));
                if let Err(e) = a
                    .create_response(&ctx.http, CreateInteractionResponse::Autocomplete(choices))
                    .await
                {
                    self.err("autocomplete", e);
                }
            }
            _ => {}
        }
    }
}

struct Bot {
    handler: Handler,
    shards: Arc<ShardManager>,
    task: tokio::task::JoinHandle<()>,
}

impl Bot {
    async fn start(fake: &FakeDiscord) -> Bot {
        let handler = Handler {
            errors: Arc::default(),
            ops_channel: Arc::new(watch::channel(None).0),
        };
        let intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES;
        let mut client: Client = ClientBuilder::new_with_http(fake.http(), intents)
            .event_handler(handler.clone())
            .await
            .expect("client builds");
        let shards = client.shard_manager.clone();
        let task = tokio::spawn(async move {
            let _ = client.start().await;
        });
        Bot {
            handler,
            shards,
            task,
        }
    }

    async fn stop(self) {
        self.shards.shutdown_all().await;
        let _ = self.task.await;
        let errors = self.handler.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "the test bot hit errors: {errors:#?}");
    }
}

async fn ready_bot(fake: &FakeDiscord) -> Bot {
    let bot = Bot::start(fake).await;
    fake.wait_ready(T).await;
    fake.wait_for_commands(&["onboard", "form", "ignore"], T)
        .await;
    // The handler learns the ops channel right after registering.
    let mut rx = bot.handler.ops_channel.subscribe();
    tokio::time::timeout(T, rx.wait_for(Option::is_some))
        .await
        .expect("the handler finds the ops channel")
        .expect("sender alive");
    bot
}

// ----- tests --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_command_defer_followup_message_thread_edit_and_button() {
    init_tracing();
    within(Duration::from_secs(30), async {
        let fake = FakeDiscord::start().await;
        let bot = ready_bot(&fake).await;

        // Start-up traffic, in order.
        let ops: Vec<String> = fake
            .requests()
            .iter()
            .filter_map(|r| r.operation_id.clone())
            .collect();
        assert_eq!(
            ops[0], "get_gateway",
            "serenity asks for the gateway URL first: {ops:?}"
        );
        assert!(
            ops.contains(&"bulk_set_guild_application_commands".to_string()),
            "{ops:?}"
        );
        let identify = &fake.identify_payloads()[0];
        assert_eq!(
            identify["d"]["intents"],
            json!((GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES).bits())
        );

        // Slash command: deferred, then followed up (which fills the "thinking…" message).
        let h = fake.send_command(fake.requester(), "onboard", json!({"host": "db1"}));
        let resp = fake.interaction_response(&h).await;
        assert_eq!(resp.kind, 5, "deferred");
        assert!(resp.latency < Duration::from_secs(3));
        let original = fake.original_response(&h, T).await;
        assert_eq!(
            original.content,
            format!("onboarding db1 requested by <@{}>", fake.requester())
        );
        assert_eq!(original.mentions[0].id, fake.requester());
        let first_followup = fake.followup(&h, 0, T).await;
        assert_eq!(
            first_followup.id, original.id,
            "first follow-up replaces the deferred message"
        );

        // Approval message with an embed and two buttons, a thread on it, a post in the thread,
        // and an edit of the approval message.
        let approval = fake
            .wait_for_message(|m| m.embeds.len() == 1 && m.edited_timestamp.is_some(), T)
            .await;
        assert_eq!(approval.channel_id, fake.ops_channel_id());
        assert_eq!(approval.embeds[0].title.as_deref(), Some("Onboard db1"));
        assert!(
            approval.embeds[0]
                .description
                .as_deref()
                .unwrap()
                .contains("details in <#")
        );
        assert_eq!(approval.components[0].components.len(), 2);
        let thread = fake.wait_for_thread(|t| t.name == "onboard db1", T).await;
        assert_eq!(
            thread.id.get(),
            approval.id.get(),
            "a thread from a message has its id"
        );
        assert_eq!(thread.parent_id, Some(fake.ops_channel_id()));
        let in_thread = fake.messages_in(thread.id);
        assert_eq!(in_thread.len(), 1);
        assert_eq!(in_thread[0].content, "log for db1");
        assert_eq!(
            fake.message_history(approval.id).len(),
            3,
            "created, thread attached, edited"
        );

        // A button click answered with UPDATE_MESSAGE.
        let click = fake.click_button(fake.approver(), approval.id, "approve:db1");
        let resp = fake.interaction_response(&click).await;
        assert_eq!(resp.kind, 7, "UPDATE_MESSAGE");
        let updated = fake
            .wait_for_message(
                |m| m.id == approval.id && m.content.starts_with("approved"),
                T,
            )
            .await;
        assert_eq!(
            updated.content,
            format!("approved by <@{}>", fake.approver())
        );
        assert!(updated.components.is_empty(), "buttons removed");

        bot.stop().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modal_and_autocomplete_round_trip() {
    init_tracing();
    within(Duration::from_secs(30), async {
        let fake = FakeDiscord::start().await;
        let bot = ready_bot(&fake).await;

        let ac = fake.autocomplete(fake.requester(), "onboard", json!({"host": "db"}), "host");
        let resp = fake.interaction_response(&ac).await;
        assert_eq!(resp.kind, 8);
        assert_eq!(
            resp.choices(),
            vec![
                ("db-1".into(), json!("db-1")),
                ("db-2".into(), json!("db-2"))
            ]
        );

        let opener = fake.send_command(fake.member(), "form", json!({}));
        let resp = fake.interaction_response(&opener).await;
        assert_eq!(resp.kind, 9, "modal");
        let submit = fake.submit_modal(fake.member(), &opener, &[("reason", "new laptop")]);
        let resp = fake.interaction_response(&submit).await;
        assert_eq!(resp.kind, 4);
        assert!(resp.is_ephemeral());
        let reply = fake
            .wait_for_message(|m| m.content == "reason: new laptop (saved)", T)
            .await;
        assert_eq!(fake.original_response(&submit, T).await.id, reply.id);
        assert_eq!(
            fake.message_history(reply.id)[0].content,
            "reason: new laptop"
        );

        bot.stop().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_drop_is_followed_by_resume_and_replay() {
    init_tracing();
    within(Duration::from_secs(40), async {
        let fake = FakeDiscord::start().await;
        let bot = ready_bot(&fake).await;

        // Drop the connection; an interaction sent while the bot is away is replayed on RESUME.
        let mark = fake.drop_gateway();
        let h = fake.send_command(fake.member(), "form", json!({}));
        assert_eq!(fake.wait_for_reconnect(mark, T).await, Reconnect::Resumed);
        assert_eq!(fake.interaction_response(&h).await.kind, 9);
        fake.submit_modal(fake.member(), &h, &[("reason", "after resume")]);
        fake.wait_for_message(|m| m.content == "reason: after resume (saved)", T)
            .await;

        // A non-resumable close (4009) makes serenity IDENTIFY again; events still arrive.
        let mark = fake.drop_gateway_with(4009);
        assert_eq!(
            fake.wait_for_reconnect(mark, Duration::from_secs(20)).await,
            Reconnect::Identified
        );
        let h = fake.send_command(fake.member(), "form", json!({}));
        assert_eq!(fake.interaction_response(&h).await.kind, 9);
        fake.allow_unacknowledged(&h); // the modal is never submitted; nothing else pending

        bot.stop().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_reported_as_violations() {
    init_tracing();
    within(Duration::from_secs(20), async {
        let fake = FakeDiscord::start().await;
        let http = fake.http();
        let ops = fake.ops_channel_id();

        // 2001 chars of content, sent raw (serenity's builder would refuse it client-side).
        let too_long = json!({"content": "x".repeat(2001)});
        let msg = http.send_message(ops, vec![], &too_long).await.expect("still answered");
        assert_eq!(msg.content.len(), 2001);
        // An embed title over the spec's maxLength, a property the spec does not allow on a
        // button, and 6 buttons in one row.
        let buttons: Vec<Value> = (0..6)
            .map(|i| json!({"type": 2, "style": 1, "label": "b", "custom_id": format!("b{i}"), "colour": 1}))
            .collect();
        let bad = json!({
            "embeds": [{"title": "t".repeat(300)}],
            "components": [{"type": 1, "components": buttons}],
        });
        http.send_message(ops, vec![], &bad).await.expect("still answered");
        // An endpoint that does not exist in Discord's API.
        let req = serenity::http::Request::new(
            serenity::http::Route::Channel { channel_id: ops },
            serenity::http::LightMethod::Post,
        );
        assert!(http.request(req).await.is_err(), "405");

        let v = fake.take_violations();
        let has = |needle: &str| v.iter().any(|x| x.contains(needle));
        assert!(has("content is 2001 chars, Discord's limit is 2000"), "{v:#?}");
        assert!(has("$.embeds[0].title: string of 300 chars exceeds maxLength 256"), "{v:#?}");
        assert!(has("embeds[0].title is 300 chars, limit is 256"), "{v:#?}");
        assert!(has("action row 0 has 6 buttons, limit is 5"), "{v:#?}");
        assert!(has("$.components[0].components: 6 items exceed maxItems 5"), "{v:#?}");
        assert!(has("POST /channels/") && has("the spec has /channels/{channel_id} only for"), "{v:#?}");

        // An interaction answered with 2001 chars, and a modal with an over-long custom_id.
        let cmd = json!({"name": "raw", "description": "raw", "type": 1});
        http.create_guild_command(fake.guild_id(), &cmd).await.expect("register");
        let h = fake.send_command(fake.member(), "raw", json!({}));
        let reply = json!({"type": 4, "data": {"content": "y".repeat(2001)}});
        http.create_interaction_response(h.id, &h.token, &reply, vec![])
            .await
            .expect("still answered");
        let again = json!({"type": 9, "data": {"custom_id": "m".repeat(101), "title": "t", "components": []}});
        assert!(http.create_interaction_response(h.id, &h.token, &again, vec![]).await.is_err());
        let v = fake.take_violations();
        let has = |needle: &str| v.iter().any(|x| x.contains(needle));
        assert!(has("$.data.content: string of 2001 chars exceeds maxLength 2000"), "{v:#?}");
        assert!(has("content is 2001 chars, Discord's limit is 2000"), "{v:#?}");
        assert!(has("modal: custom_id is 101 chars, limit is 100"), "{v:#?}");
        assert!(has("acknowledged twice"), "{v:#?}");

        // With rejection on, the same request gets Discord's 400 instead.
        fake.reject_invalid_requests(true);
        let err = http.send_message(ops, vec![], &too_long).await.expect_err("rejected");
        assert!(err.to_string().contains("Invalid Form Body"), "{err}");
        assert_eq!(fake.take_violations().len(), 1);

        // A valid message with a file upload (multipart) passes.
        fake.reject_invalid_requests(false);
        let file = CreateAttachment::bytes(b"hello".to_vec(), "hello.txt");
        let sent = ops
            .send_message(&http, CreateMessage::new().content("with file").add_file(file))
            .await
            .expect("multipart upload");
        assert_eq!(sent.attachments[0].filename, "hello.txt");
        assert_eq!(fake.uploads(sent.id)[0].data, b"hello");
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_interaction_is_a_violation() {
    init_tracing();
    within(Duration::from_secs(30), async {
        let fake = FakeDiscord::start().await;
        let bot = ready_bot(&fake).await;
        fake.send_command(fake.member(), "ignore", json!({}));
        let v = fake
            .wait_for(
                "the 3 s ack deadline to be flagged",
                Duration::from_secs(6),
                |st| {
                    st.violations
                        .iter()
                        .find(|v| v.contains("was not acknowledged within 3s"))
                        .cloned()
                },
            )
            .await;
        assert!(v.contains("\"ignore\""), "{v}");
        assert_eq!(fake.take_violations().len(), 1);
        bot.stop().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_500_and_429_reach_the_client() {
    init_tracing();
    within(Duration::from_secs(20), async {
        let fake = FakeDiscord::start().await;
        let http = fake.http();
        let ops = fake.ops_channel_id();

        fake.fail_next(1, 500, Some("/channels/"));
        let err = ops.say(&http, "first").await.expect_err("500");
        assert!(err.to_string().contains("500"), "{err}");

        fake.rate_limit_next(1, 0.25, None);
        let err = ops.say(&http, "second").await.expect_err("429");
        match &err {
            serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
                assert_eq!(r.status_code.as_u16(), 429);
            }
            other => panic!("unexpected error {other:?}"),
        }
        // Faults are used up: the next request goes through.
        ops.say(&http, "third").await.expect("ok again");
        assert_eq!(fake.messages_in(ops).len(), 1);
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![500, 429, 200]);
        fake.finish();
    })
    .await;
}

/// With the limits modelled, a sixth message to one channel within 5 s is answered 429 with
/// `retry_after` and the headers Discord sends; another channel is not affected. Counted as a
/// would-be 429 when they are not modelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modelled_rate_limits_refuse_the_sixth_message_to_a_channel_in_five_seconds() {
    init_tracing();
    within(Duration::from_secs(20), async {
        let fake = FakeDiscord::start().await;
        let http = fake.http();
        let ops = fake.ops_channel_id();
        fake.model_rate_limits(true);
        for i in 0..5 {
            ops.say(&http, format!("message {i}"))
                .await
                .expect("within the limit");
        }
        let err = ops.say(&http, "sixth").await.expect_err("429");
        match &err {
            serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
                assert_eq!(r.status_code.as_u16(), 429);
            }
            other => panic!("unexpected error {other:?}"),
        }
        fake.general_channel_id()
            .say(&http, "elsewhere")
            .await
            .expect("another channel has its own bucket");
        assert_eq!(fake.rate_limited().len(), 1);
        assert_eq!(fake.over_limit().len(), 1);
        assert_eq!(fake.channel_requests(ops).len(), 6);
        assert_eq!(fake.messages_in(ops).len(), 5);

        // Not modelled: processed, but counted.
        fake.model_rate_limits(false);
        ops.say(&http, "seventh").await.expect("processed");
        assert_eq!(fake.over_limit().len(), 2);
        assert_eq!(fake.rate_limited().len(), 1);
        fake.finish();
    })
    .await;
}

/// Every answer carries the bucket's `X-RateLimit-*` headers, as Discord's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_rate_limit_headers() {
    init_tracing();
    within(Duration::from_secs(20), async {
        let fake = FakeDiscord::start().await;
        let url = format!(
            "{}/api/v10/channels/{}/messages",
            fake.base_url(),
            fake.ops_channel_id()
        );
        let resp = reqwest::Client::new()
            .post(&url)
            .header("Authorization", format!("Bot {}", fake.token()))
            .header("User-Agent", "DiscordBot (https://example.com, 1)")
            .json(&json!({"content": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let h = |k: &str| {
            resp.headers()
                .get(k)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(h("x-ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(h("x-ratelimit-remaining").as_deref(), Some("4"));
        let after: f64 = h("x-ratelimit-reset-after").unwrap().parse().unwrap();
        assert!(after > 0.0 && after <= 5.0, "{after}");
        assert!(h("x-ratelimit-reset").is_some() && h("x-ratelimit-bucket").is_some());
        fake.finish();
    })
    .await;
}

// ----- the validator itself, on real spec schemas ---------------------------------------------

#[test]
fn validator_accepts_and_rejects_spec_schemas() {
    blocking(Duration::from_secs(30), || {
        let spec = fake_discord::openapi::spec();
        let create = spec.schema("MessageCreateRequest");
        let ok = json!({
            "content": "hi",
            "embeds": [{"title": "t", "fields": [{"name": "a", "value": "b", "inline": true}], "color": 5}],
            "components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Go", "custom_id": "go"}]}],
            "allowed_mentions": {"parse": [], "users": ["1100000000000000040"]},
            "message_reference": null,
            "nonce": "abc",
        });
        assert_eq!(spec.validate(&create, &ok), Vec::<String>::new());

        let errs = spec.validate(&create, &json!({"content": 5}));
        assert_eq!(
            errs,
            vec!["$.content: expected type string|null, got number 5"]
        );
        let errs = spec.validate(&create, &json!({"embeds": vec![json!({}); 11]}));
        assert_eq!(errs, vec!["$.embeds: 11 items exceed maxItems 10"]);
        let errs = spec.validate(&create, &json!({"embeds": [{"color": 16777216}]}));
        assert_eq!(
            errs,
            vec!["$.embeds[0].color: 16777216 is above maximum 16777215"]
        );
        let errs = spec.validate(&create, &json!({"embeds": [{"fields": [{"name": "x"}]}]}));
        assert_eq!(
            errs,
            vec!["$.embeds[0].fields[0]: missing required property \"value\""]
        );
        let errs = spec.validate(&create, &json!({"allowed_mentions": {"users": ["01"]}}));
        assert!(errs[0].contains("does not match pattern"), "{errs:?}");
        let long_id = "x".repeat(101);
        let button =
            json!({"type": 1, "components": [{"type": 2, "style": 1, "custom_id": long_id}]});
        let errs = spec.validate(&create, &json!({"components": [button]}));
        assert!(
            errs[0].contains("string of 101 chars exceeds maxLength 100"),
            "{errs:?}"
        );

        // Callback union (anyOf) and integer enums.
        let cb = spec.schema("CreateMessageInteractionCallbackRequest");
        assert!(
            spec.validate(&cb, &json!({"type": 5, "data": {"flags": 64}}))
                .is_empty()
        );
        assert!(!spec.validate(&cb, &json!({"type": 6})).is_empty());
        assert!(!spec.validate(&cb, &json!({"data": {}})).is_empty());

        // Permission bitfields: integers in the spec, strings in Discord's docs and from clients.
        let command = spec.schema("ApplicationCommandCreateRequest");
        let with = |p: Value| json!({"name": "x", "description": "d", "type": 1, "default_member_permissions": p});
        for ok in [json!("32"), json!(32), json!("0"), Value::Null] {
            assert_eq!(
                spec.validate(&command, &with(ok.clone())),
                Vec::<String>::new(),
                "{ok}"
            );
        }
        for bad in [
            json!("MANAGE_GUILD"),
            json!("-1"),
            json!("36028797018963968"),
        ] {
            assert!(
                !spec.validate(&command, &with(bad.clone())).is_empty(),
                "{bad}"
            );
        }
    });
}

#[test]
fn spec_paths_match_with_literal_precedence() {
    blocking(Duration::from_secs(30), || {
        use fake_discord::openapi::PathMatch;
        let spec = fake_discord::openapi::spec();
        let found = |m: &str, p: &str| match spec.find(m, p) {
            PathMatch::Found(op, params) => (op.operation_id.clone(), params),
            other => panic!("{m} {p}: {other:?}"),
        };
        assert_eq!(found("POST", "/channels/1/messages").0, "create_message");
        assert_eq!(
            found("POST", "/channels/1/messages/bulk-delete").0,
            "bulk_delete_messages"
        );
        let (op, params) = found("PATCH", "/webhooks/5/tok/messages/@original");
        assert_eq!(op, "update_original_webhook_message");
        assert_eq!(params["webhook_token"], "tok");
        assert_eq!(
            found("PATCH", "/webhooks/5/tok/messages/9").0,
            "update_webhook_message"
        );
        assert_eq!(
            found("PUT", "/channels/1/thread-members/@me").0,
            "join_thread"
        );
        assert_eq!(
            found("GET", "/oauth2/applications/@me").0,
            "get_my_oauth2_application"
        );
        assert!(matches!(
            spec.find("POST", "/channels/1"),
            PathMatch::MethodNotAllowed(..)
        ));
        assert!(matches!(spec.find("GET", "/nope"), PathMatch::NotFound));
    });
}

// ----- poise on top of serenity ---------------------------------------------------------------

type PoiseCtx<'a> = poise::Context<'a, (), anyhow::Error>;

/// Greets someone.
#[poise::command(slash_command)]
async fn greet(
    ctx: PoiseCtx<'_>,
    #[description = "who to greet"] who: serenity::all::User,
    #[description = "how often"] times: Option<u8>,
) -> Result<(), anyhow::Error> {
    ctx.defer_ephemeral().await?;
    ctx.say(format!("hello {} x{}", who.name, times.unwrap_or(1)))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poise_registers_commands_and_answers_them() {
    init_tracing();
    within(Duration::from_secs(30), async {
        let fake = FakeDiscord::start().await;
        let framework = poise::Framework::builder()
            .options(poise::FrameworkOptions {
                commands: vec![greet()],
                ..Default::default()
            })
            .setup(|ctx, ready, framework| {
                Box::pin(async move {
                    let guild = ready.guilds[0].id;
                    poise::builtins::register_in_guild(ctx, &framework.options().commands, guild)
                        .await?;
                    Ok(())
                })
            })
            .build();
        let mut client = ClientBuilder::new_with_http(fake.http(), GatewayIntents::GUILDS)
            .framework(framework)
            .await
            .expect("client builds");
        let shards = client.shard_manager.clone();
        let task = tokio::spawn(async move {
            let _ = client.start().await;
        });

        let commands = fake.wait_for_commands(&["greet"], T).await;
        assert_eq!(commands[0].options.len(), 2);
        let ops: Vec<String> = fake
            .requests()
            .iter()
            .filter_map(|r| r.operation_id.clone())
            .collect();
        assert!(
            ops.contains(&"get_my_oauth2_application".to_string()),
            "{ops:?}"
        );

        let h = fake.send_command(
            fake.member(),
            "greet",
            json!({"who": fake.approver().get()}),
        );
        let resp = fake.interaction_response(&h).await;
        assert_eq!(resp.kind, 5);
        assert!(resp.is_ephemeral());
        let reply = fake.original_response(&h, T).await;
        assert_eq!(reply.content, "hello approver x1");
        assert!(
            reply
                .flags
                .is_some_and(|f| f.contains(serenity::all::MessageFlags::EPHEMERAL))
        );

        shards.shutdown_all().await;
        let _ = task.await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_and_thread_members_over_rest() {
    init_tracing();
    within(Duration::from_secs(20), async {
        let fake = FakeDiscord::start().await;
        let http = fake.http();
        let ops = fake.ops_channel_id();

        // Without an explicit kind, API v10 creates a PRIVATE thread.
        let private = ops
            .create_thread(&http, CreateThread::new("no kind given"))
            .await
            .expect("thread");
        assert_eq!(private.kind, ChannelType::PrivateThread);
        let public = ops
            .create_thread(
                &http,
                CreateThread::new("standalone").kind(ChannelType::PublicThread),
            )
            .await
            .expect("thread");
        assert_eq!(public.kind, ChannelType::PublicThread);
        assert_eq!(public.parent_id, Some(ops));

        public
            .id
            .add_thread_member(&http, fake.approver())
            .await
            .expect("add member");
        let members = public.id.get_thread_members(&http).await.expect("members");
        assert_eq!(members.len(), 2, "the creating bot and the approver");
        assert!(fake.thread_members(public.id).contains(&fake.approver()));

        public.id.say(&http, "first").await.expect("post");
        let archived = public
            .id
            .edit_thread(&http, EditThread::new().archived(true))
            .await
            .expect("archive");
        assert!(archived.thread_metadata.unwrap().archived);
        // Posting into an archived (unlocked) thread unarchives it, as on Discord.
        public.id.say(&http, "second").await.expect("post");
        let thread = fake
            .threads()
            .into_iter()
            .find(|t| t.id == public.id)
            .unwrap();
        assert!(!thread.thread_metadata.unwrap().archived);
        let listed = public
            .id
            .messages(&http, serenity::all::GetMessages::new().limit(10))
            .await
            .expect("list");
        let contents: Vec<&str> = listed.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, vec!["second", "first"], "newest first");
        assert_eq!(fake.threads().len(), 2);
        fake.finish();
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "dropped without finish() or assert_no_violations()")]
async fn forgetting_finish_panics() {
    within(Duration::from_secs(30), async {
        let _fake = FakeDiscord::start().await;
    })
    .await;
}
