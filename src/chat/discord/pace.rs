//! The bot's own pacing of what it writes to a channel, below Discord's per-route limits.
//!
//! Discord allows about 5 new messages per 5 s per channel, 5 edits per 5 s per channel, and
//! limits thread creation per parent channel (docs: topics/rate-limits; the numbers come from its
//! `X-RateLimit-*` headers). serenity's ratelimiter (on against Discord itself) learns a bucket
//! only from the answers, so a burst on a new bucket — ten onboardings started at once, each
//! posting its line in the ops channel — still draws 429s before it waits; and against any other
//! API base (the tests' fake) the ratelimiter is off and a 429 is an error. So the bot keeps its
//! run reporting under the limits itself: each write waits here for a slot in its channel's
//! window first. Interaction answers are not paced (Discord does not limit them so, and an
//! acknowledgement may not wait).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serenity::all::ChannelId;
use tokio::time::Instant;

/// What a write does, as far as Discord's buckets go: each has its own bucket per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Write {
    /// `POST /channels/{id}/messages`
    Post,
    /// `PATCH /channels/{id}/messages/{id}` (any message of the channel)
    Edit,
    /// A thread created in the channel.
    Thread,
}

/// Writes of one kind allowed per channel per [`WINDOW`].
pub const PER_WINDOW: usize = 5;
/// Discord's window (5 s) plus a margin for the time a request takes to arrive, so that a
/// window measured where Discord receives the requests never holds more than [`PER_WINDOW`].
pub const WINDOW: Duration = Duration::from_millis(5_500);

/// Recent writes per (kind, channel): a sliding window, stricter than Discord's fixed one.
#[derive(Debug)]
pub struct Pacer {
    per_window: usize,
    window: Duration,
    sent: Mutex<HashMap<(Write, ChannelId), VecDeque<Instant>>>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new(PER_WINDOW, WINDOW)
    }
}

impl Pacer {
    /// `per_window` writes of a kind per channel in any `window`.
    pub fn new(per_window: usize, window: Duration) -> Self {
        Self {
            per_window,
            window,
            sent: Mutex::default(),
        }
    }

    /// Discord answered a `write` to `channel` with a 429: no write of the kind goes to the
    /// channel for a whole window. (The answer's own `retry_after` does not reach the bot: with
    /// serenity's ratelimiter off, as it must be behind an API proxy, serenity keeps only the
    /// status of a refused request. Against Discord itself the ratelimiter is on and honours
    /// `retry_after` before the bot sees anything. The window is Discord's reset time for every
    /// bucket the bot's paced writes use, so waiting it out is waiting at least `retry_after`.)
    pub fn hold_off(&self, write: Write, channel: ChannelId) {
        // The window counts as full from now: its first slot frees a whole window later.
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let q = sent.entry((write, channel)).or_default();
        q.clear();
        q.extend(std::iter::repeat_n(now, self.per_window));
    }

    /// Waits until a `write` to `channel` fits in the window, and takes the slot.
    pub async fn wait(&self, write: Write, channel: ChannelId) {
        loop {
            let until = {
                let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
                let (n, window) = (self.per_window, self.window);
                let now = Instant::now();
                // Forget windows that have run out, so the map does not grow with every thread.
                sent.retain(|_, q| q.back().is_some_and(|t| now < *t + window));
                let q = sent.entry((write, channel)).or_default();
                while q.front().is_some_and(|t| now >= *t + window) {
                    q.pop_front();
                }
                if q.len() < n {
                    q.push_back(now);
                    return;
                }
                q[q.len() - n] + window
            };
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_channel_takes_n_writes_of_a_kind_per_window_and_the_next_waits() {
        let window = Duration::from_millis(300);
        let p = Pacer::new(2, window);
        let (a, b) = (ChannelId::new(1), ChannelId::new(2));
        let mut at = Vec::new();
        for _ in 0..2 {
            p.wait(Write::Post, a).await;
            at.push(Instant::now());
        }
        // Other channels and kinds have slots of their own (nothing to wait for: no bound on
        // how long that takes is asserted, only that the limited channel waited).
        p.wait(Write::Post, b).await;
        p.wait(Write::Edit, a).await;
        for _ in 0..3 {
            p.wait(Write::Post, a).await;
            at.push(Instant::now());
        }
        for w in at.windows(3) {
            assert!(w[2] - w[0] >= window, "3 writes within {:?}", w[2] - w[0]);
        }
    }

    #[tokio::test]
    async fn after_a_429_a_channel_takes_no_write_of_that_kind_for_a_window() {
        let window = Duration::from_millis(300);
        let p = Pacer::new(5, window);
        let (a, b) = (ChannelId::new(1), ChannelId::new(2));
        p.wait(Write::Edit, a).await;
        let refused = Instant::now();
        p.hold_off(Write::Edit, a);
        p.wait(Write::Post, a).await;
        p.wait(Write::Edit, b).await;
        p.wait(Write::Edit, a).await;
        assert!(refused.elapsed() >= window, "{:?}", refused.elapsed());
    }
}
