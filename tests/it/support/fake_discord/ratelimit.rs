//! Discord's rate limits, as its docs describe them (developers/topics/rate-limits): a bucket
//! per route and *major parameter* (the channel, guild, or webhook id and token), a global limit
//! of 50 requests per second across every route but the interaction ones, `X-RateLimit-*`
//! headers on every answer, and a 429 with `retry_after` once a bucket is used up.
//!
//! Discord publishes the mechanism, not every route's numbers; the numbers here are the ones its
//! headers have long reported for the routes the bot uses:
//! - `POST /channels/{id}/messages`: 5 per 5 s per channel;
//! - `PATCH /channels/{id}/messages/{id}`: 5 per 5 s per channel (the channel is the major
//!   parameter, so edits of different messages in one channel share the bucket);
//! - `DELETE /channels/{id}/messages/{id}`: 5 per 1 s per channel;
//! - thread creation (`POST /channels/{id}/threads`, `.../messages/{id}/threads`): 5 per 5 s per
//!   parent channel (a guess on the strict side: Discord does not say);
//! - every other route: 50 per 1 s per route and major parameter (headers only, in practice);
//! - the global 50 per second, which interaction callbacks and interaction webhooks are exempt
//!   from.
//!
//! Windows are fixed, as Discord's are: a bucket's window starts at its first request and the
//! bucket is full again `window` later.
//!
//! Every request is counted, whether limits are enforced or not: a request beyond a bucket is
//! recorded in [`RateLimits::over`], and answered 429 only when [`RateLimits::enforce`] is on
//! (`FakeDiscord::model_rate_limits`). The bot's `Http` in tests runs without serenity's
//! ratelimiter (it would ignore the proxy), so the limits are opt-in per test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Discord's global limit: requests per second across all routes of one bot.
pub const GLOBAL_PER_SEC: u32 = 50;

/// A route's limit: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub limit: u32,
    pub window: Duration,
}

const fn per(limit: u32, millis: u64) -> Limit {
    Limit {
        limit,
        window: Duration::from_millis(millis),
    }
}

/// The limit of a route (by the spec's operationId) and whether it counts towards the global
/// limit.
pub fn limit_of(operation_id: &str) -> (Limit, bool) {
    match operation_id {
        "create_message" => (per(5, 5000), true),
        "update_message" => (per(5, 5000), true),
        "delete_message" => (per(5, 1000), true),
        "create_thread" | "create_thread_from_message" => (per(5, 5000), true),
        // Interaction endpoints are not bound to the bot's global limit.
        "create_interaction_response"
        | "execute_webhook"
        | "get_webhook_message"
        | "update_webhook_message"
        | "delete_webhook_message"
        | "get_original_webhook_message"
        | "update_original_webhook_message"
        | "delete_original_webhook_message" => (per(50, 1000), false),
        _ => (per(50, 1000), true),
    }
}

/// The bucket key of a request: its route and major parameter.
pub fn bucket_key(operation_id: &str, params: &HashMap<String, String>) -> String {
    let major = ["channel_id", "guild_id", "webhook_id", "application_id"]
        .iter()
        .find_map(|k| params.get(*k).map(|v| format!("{k}={v}")))
        .unwrap_or_default();
    // An interaction's token is part of its webhook routes' major parameter.
    let token = params
        .get("webhook_token")
        .or_else(|| params.get("interaction_token"))
        .map(|t| format!(",token={t}"))
        .unwrap_or_default();
    format!("{operation_id}:{major}{token}")
}

#[derive(Debug, Clone)]
struct Window {
    start: Instant,
    used: u32,
}

impl Window {
    /// The window in force at `now` (a new one once the old has run out).
    fn at(w: Option<&Window>, now: Instant, window: Duration) -> Window {
        match w {
            Some(w) if now < w.start + window => w.clone(),
            _ => Window {
                start: now,
                used: 0,
            },
        }
    }
}

/// A request beyond a bucket.
#[derive(Debug, Clone)]
pub struct Over {
    pub at: Instant,
    pub bucket: String,
    pub global: bool,
    pub retry_after: Duration,
}

/// What a request is answered with, as far as the limits go.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub headers: Vec<(&'static str, String)>,
    /// Set when the request is to be answered 429: (retry after, global).
    pub limited: Option<(Duration, bool)>,
}

#[derive(Debug, Default)]
pub struct RateLimits {
    /// Answer requests beyond a bucket with 429 (else they are processed and only recorded).
    pub enforce: bool,
    buckets: HashMap<String, Window>,
    global: Option<Window>,
    /// Every request beyond a bucket, enforced or not.
    pub over: Vec<Over>,
}

impl RateLimits {
    /// Counts a request of `operation_id` with these path parameters at `now`.
    pub fn count(
        &mut self,
        operation_id: &str,
        params: &HashMap<String, String>,
        now: Instant,
    ) -> Verdict {
        let (limit, counts_global) = limit_of(operation_id);
        let key = bucket_key(operation_id, params);
        let mut w = Window::at(self.buckets.get(&key), now, limit.window);
        let second = Duration::from_secs(1);
        let mut g = Window::at(self.global.as_ref(), now, second);
        let over_route = w.used >= limit.limit;
        let over_global = counts_global && g.used >= GLOBAL_PER_SEC;
        let reset_after = (w.start + limit.window).saturating_duration_since(now);
        let limited = if over_global {
            Some(((g.start + second).saturating_duration_since(now), true))
        } else if over_route {
            Some((reset_after, false))
        } else {
            None
        };
        if let Some((retry_after, global)) = limited {
            self.over.push(Over {
                at: now,
                bucket: if global { "global".into() } else { key.clone() },
                global,
                retry_after,
            });
        }
        // A request Discord refuses does not use up the bucket; one processed does.
        if limited.is_none() || !self.enforce {
            w.used += 1;
            if counts_global {
                g.used += 1;
            }
        }
        let remaining = limit.limit.saturating_sub(w.used);
        let reset = chrono::Utc::now() + reset_after;
        let mut headers = vec![
            ("x-ratelimit-limit", limit.limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            (
                "x-ratelimit-reset",
                format!("{:.3}", reset.timestamp_millis() as f64 / 1000.0),
            ),
            (
                "x-ratelimit-reset-after",
                format!("{:.3}", reset_after.as_secs_f64()),
            ),
            ("x-ratelimit-bucket", bucket_hash(operation_id)),
        ];
        self.buckets.insert(key, w);
        if counts_global {
            self.global = Some(g);
        }
        let limited = limited.filter(|_| self.enforce);
        if let Some((retry_after, global)) = limited {
            headers.push((
                "retry-after",
                retry_after.as_secs_f64().ceil().max(1.0).to_string(),
            ));
            headers.push((
                "x-ratelimit-scope",
                if global { "global" } else { "user" }.to_string(),
            ));
            if global {
                headers.push(("x-ratelimit-global", "true".to_string()));
            }
        }
        Verdict { headers, limited }
    }
}

/// Discord's opaque bucket id: the same for every major parameter of a route.
fn bucket_hash(operation_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    operation_id.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The most instants that fall in any `window` (a sliding window over sorted `at`).
pub fn peak_in(at: &[Instant], window: Duration) -> usize {
    let mut at = at.to_vec();
    at.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..at.len() {
        while at[hi] - at[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(id: &str) -> HashMap<String, String> {
        HashMap::from([("channel_id".to_string(), id.to_string())])
    }

    #[test]
    fn a_channel_takes_five_messages_per_five_seconds_then_429s_until_the_window_ends() {
        let mut rl = RateLimits {
            enforce: true,
            ..Default::default()
        };
        let t0 = Instant::now();
        for i in 0..5 {
            let v = rl.count("create_message", &chan("1"), t0);
            assert!(v.limited.is_none(), "request {i}");
            let remaining = v.headers.iter().find(|h| h.0 == "x-ratelimit-remaining");
            assert_eq!(remaining.unwrap().1, (4 - i).to_string());
        }
        let v = rl.count("create_message", &chan("1"), t0 + Duration::from_secs(1));
        let (retry, global) = v.limited.expect("the sixth is limited");
        assert!(!global);
        assert_eq!(retry, Duration::from_secs(4));
        assert!(v.headers.iter().any(|h| h.0 == "retry-after" && h.1 == "4"));
        // Another channel has its own bucket; edits have theirs.
        assert!(rl.count("create_message", &chan("2"), t0).limited.is_none());
        assert!(rl.count("update_message", &chan("1"), t0).limited.is_none());
        // The window ends 5 s after its first request.
        let later = t0 + Duration::from_secs(5);
        assert!(
            rl.count("create_message", &chan("1"), later)
                .limited
                .is_none()
        );
        assert_eq!(rl.over.len(), 1);
    }

    #[test]
    fn fifty_requests_a_second_in_all_and_interactions_are_exempt() {
        let mut rl = RateLimits {
            enforce: true,
            ..Default::default()
        };
        let t0 = Instant::now();
        for i in 0..50 {
            assert!(
                rl.count("get_channel", &chan(&i.to_string()), t0)
                    .limited
                    .is_none()
            );
        }
        let v = rl.count("get_channel", &chan("99"), t0);
        assert_eq!(v.limited.map(|l| l.1), Some(true), "global");
        assert!(v.headers.iter().any(|h| h.0 == "x-ratelimit-global"));
        assert!(
            rl.count("create_interaction_response", &HashMap::new(), t0)
                .limited
                .is_none()
        );
    }

    #[test]
    fn unenforced_limits_record_what_would_have_been_refused() {
        let mut rl = RateLimits::default();
        let t0 = Instant::now();
        for _ in 0..7 {
            assert!(rl.count("create_message", &chan("1"), t0).limited.is_none());
        }
        assert_eq!(rl.over.len(), 2);
    }

    #[test]
    fn the_peak_counts_the_busiest_window() {
        let t0 = Instant::now();
        let at: Vec<Instant> = [0, 100, 900, 1000, 1500, 3000]
            .iter()
            .map(|ms| t0 + Duration::from_millis(*ms))
            .collect();
        assert_eq!(peak_in(&at, Duration::from_secs(1)), 3);
        assert_eq!(peak_in(&at, Duration::from_secs(5)), 6);
        assert_eq!(peak_in(&[], Duration::from_secs(1)), 0);
    }
}
