//! Notifications between the bot's processes over Postgres `LISTEN`/`NOTIFY`: a run's
//! executor may be another process than the one a person asked.

use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// What a notification asks of the process executing a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `runs cancel`: stop the run (payload: its id).
    Cancel,
    /// `dns-check`: runs parked on the domain re-check now (payload: the domain).
    Nudge,
    /// A take-over: let go of the run (payload: its id).
    TakeOver,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Self::Cancel, Self::Nudge, Self::TakeOver];

    /// The Postgres channel's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cancel => "onboard_bot_cancel",
            Self::Nudge => "onboard_bot_nudge",
            Self::TakeOver => "onboard_bot_takeover",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Sends `payload` to every process listening on `channel`.
pub async fn notify(pool: &PgPool, channel: Channel, payload: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel.name())
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}

/// A connection listening on some channels.
pub struct Listener(PgListener);

/// Starts listening on `channels`.
pub async fn listen(pool: &PgPool, channels: &[Channel]) -> anyhow::Result<Listener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all(channels.iter().map(|c| c.name()))
        .await?;
    Ok(Listener(listener))
}

impl Listener {
    /// The next notification: its channel and payload. After an error the next call
    /// reconnects.
    pub async fn recv(&mut self) -> anyhow::Result<(Channel, String)> {
        loop {
            let note = self.0.recv().await?;
            if let Some(channel) = Channel::from_name(note.channel()) {
                return Ok((channel, note.payload().to_owned()));
            }
        }
    }
}
