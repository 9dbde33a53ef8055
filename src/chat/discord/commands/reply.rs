//! How Discord shows what a command answered ([`Reply`]) or why it did nothing
//! ([`CommandError`]): every answer is ephemeral; a listing is a code block, or an attached
//! file when it does not fit one message; a run is spawned and answered with its thread. An
//! internal error goes back to poise's `on_error`, which logs it and answers with a reference.

use std::time::Duration;

use serenity::all::{
    CreateAllowedMentions, CreateAttachment, EditInteractionResponse, ModalInteraction,
};

use crate::chat::discord::frontend::embed;
use crate::chat::discord::{Context, Data, Error};
use crate::commands::{CommandError, Listing, Reply};
use crate::messages::{self, Card};

/// How long a command that starts or resumes a run waits for its thread before answering
/// without the link.
const THREAD_WAIT: Duration = Duration::from_secs(10);
/// Discord's limit on a message's content.
const MESSAGE_MAX: usize = 2000;
/// A listing longer than this is attached as a file (room for the fence around it).
const INLINE_MAX: usize = 1900;

/// Where the answer to a command goes: the command's own (deferred) response, or the brand
/// form's submission when /onboard opened one.
pub enum Origin<'a> {
    Command(Context<'a>),
    Modal(&'a serenity::all::Context, Box<ModalInteraction>),
}

impl Origin<'_> {
    /// Answers with a short text.
    pub async fn reply(&self, text: String) -> anyhow::Result<()> {
        self.send(ListingMessage::Inline(text)).await
    }

    async fn send(&self, message: ListingMessage) -> anyhow::Result<()> {
        let (content, embed, file) = match message {
            ListingMessage::Inline(text) => (Some(text), None, None),
            ListingMessage::File {
                content,
                name,
                bytes,
            } => (
                Some(content),
                None,
                Some(CreateAttachment::bytes(bytes, name)),
            ),
            ListingMessage::Card { card, file } => (
                None,
                Some(embed(&card)),
                file.map(|(name, bytes)| CreateAttachment::bytes(bytes, name)),
            ),
        };
        match self {
            Origin::Command(ctx) => {
                let mut reply = poise::CreateReply::default()
                    .allowed_mentions(CreateAllowedMentions::new())
                    .ephemeral(true);
                if let Some(content) = content {
                    reply = reply.content(content);
                }
                if let Some(embed) = embed {
                    reply = reply.embed(embed);
                }
                if let Some(file) = file {
                    reply = reply.attachment(file);
                }
                ctx.send(reply).await?;
            }
            Origin::Modal(sctx, m) => {
                let mut edit =
                    EditInteractionResponse::new().allowed_mentions(CreateAllowedMentions::new());
                if let Some(content) = content {
                    edit = edit.content(content);
                }
                if let Some(embed) = embed {
                    edit = edit.embed(embed);
                }
                if let Some(file) = file {
                    edit = edit.new_attachment(file);
                }
                m.edit_response(&sctx.http, edit).await?;
            }
        }
        Ok(())
    }
}

/// Renders a command's answer where it came from. An internal error is returned, for
/// `on_error` (or the caller past a modal) to log and answer with a reference.
pub async fn answer(
    data: &Data,
    origin: &Origin<'_>,
    answer: Result<Reply, CommandError>,
) -> Result<(), Error> {
    match answer {
        Ok(Reply::Text(text)) => origin.reply(text).await,
        Ok(Reply::Listing(listing)) => origin.send(listing_message(&listing)).await,
        Ok(Reply::Run(run)) => {
            data.spawn_run(run.id, run.take_over);
            let thread = data.frontend.wait_for_thread(run.id, THREAD_WAIT).await;
            let thread = thread.map(|t| t.get());
            origin
                .reply(if run.resumed {
                    messages::run_resumed_reply(run.id, thread)
                } else {
                    messages::run_started_reply(run.id, thread)
                })
                .await
        }
        Err(e) => origin.reply(shown(e)?).await,
    }
}

/// A user error or refusal as shown; an internal error is handed back (its text is never
/// shown, its reference is).
pub fn shown(e: CommandError) -> Result<String, Error> {
    Ok(match e {
        CommandError::Input(e) => messages::input_refused(e.field, &e.message),
        CommandError::NotStarted(why) => {
            messages::truncate(&format!("Not started — {why}"), INLINE_MAX)
        }
        CommandError::User(text) | CommandError::Refused(text) => text,
        CommandError::Internal(e) => return Err(e),
    })
}

/// What Discord gets for a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingMessage {
    /// The content of one message.
    Inline(String),
    /// A short content naming the file the full text is attached as.
    File {
        content: String,
        name: String,
        bytes: Vec<u8>,
    },
    /// An embed, with the full text as a file when the embed could not hold all of it.
    Card {
        card: Card,
        file: Option<(String, Vec<u8>)>,
    },
}

/// A listing as its card when it has one, else as a code block, or as a file when it does not
/// fit in one message.
pub fn listing_message(listing: &Listing) -> ListingMessage {
    if let Some(card) = &listing.card {
        return ListingMessage::Card {
            card: card.card.clone(),
            file: (!card.complete)
                .then(|| (card.attachment.clone(), listing.text.as_bytes().to_vec())),
        };
    }
    if listing.text.chars().count() <= INLINE_MAX {
        return ListingMessage::Inline(messages::fence(&listing.text, MESSAGE_MAX));
    }
    let name = file_name(listing);
    ListingMessage::File {
        content: format!("{}: the full text is attached as `{name}`.", listing.title),
        name,
        bytes: listing.text.as_bytes().to_vec(),
    }
}

/// The name a listing is attached under.
fn file_name(listing: &Listing) -> String {
    format!("{}.txt", listing.title.replace([' ', '/'], "-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::InputError;

    fn listing(text: &str) -> Listing {
        Listing {
            title: "audit merche/x".into(),
            text: text.into(),
            ok: true,
            card: None,
        }
    }

    #[test]
    fn a_listing_is_a_code_block_until_it_needs_a_file() {
        let short = listing_message(&listing("a line\n"));
        let ListingMessage::Inline(content) = short else {
            panic!("inline: {short:?}")
        };
        assert!(
            content.starts_with("```") && content.contains("a line"),
            "{content}"
        );
        let text = "é".repeat(INLINE_MAX);
        let ListingMessage::Inline(content) = listing_message(&listing(&text)) else {
            panic!("1900 characters fit")
        };
        assert!(content.chars().count() <= MESSAGE_MAX);
        let long = "x".repeat(INLINE_MAX + 1);
        let ListingMessage::File {
            content,
            name,
            bytes,
        } = listing_message(&listing(&long))
        else {
            panic!("a file")
        };
        assert_eq!(name, "audit-merche-x.txt");
        assert_eq!(
            content,
            "audit merche/x: the full text is attached as `audit-merche-x.txt`."
        );
        assert_eq!(bytes, long.as_bytes());
    }

    #[test]
    fn user_errors_and_refusals_are_shown_as_they_are() {
        let input = CommandError::from(InputError::new("slug", "`Bad` contains `B`"));
        assert_eq!(
            shown(input).unwrap(),
            "Not started — slug: `Bad` contains `B`"
        );
        let text = shown(CommandError::NotStarted("x".repeat(3000))).unwrap();
        assert!(text.starts_with("Not started — xxx") && text.chars().count() <= INLINE_MAX);
        let no = CommandError::Refused("Only the person who started a run".into());
        assert_eq!(shown(no).unwrap(), "Only the person who started a run");
        let user = CommandError::User("No run `x`: check the id with /status.".into());
        assert_eq!(
            shown(user).unwrap(),
            "No run `x`: check the id with /status."
        );
        let internal = CommandError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(shown(internal).unwrap_err().to_string(), "password=hunter2");
    }
}
