//! Rate limits and the throughput window behind `/api/v1/stats`.

use crate::core::error::ChatError;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket per key: `burst` requests at once, then one every `period`.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// Builds a limiter allowing `burst` requests, refilled at `per_second` requests a second.
    pub fn new(burst: u32, per_second: f64) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).expect("burst is at least 1");
        // The configuration accepts only positive, bounded rates; the clamps keep the
        // period finite and non-zero for any other caller.
        let per_second = per_second.clamp(0.001, 1_000_000_000.0);
        let period = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token for `key`, or fails with the wait until one is available.
    pub fn check(&self, key: &K) -> Result<(), ChatError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Round up to whole milliseconds so a client that waits exactly this long succeeds.
            let retry_after = Duration::from_millis(wait.as_millis() as u64 + 1);
            ChatError::RateLimited { retry_after }
        })
    }

    /// Forgets keys whose buckets are full again, bounding memory.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

/// Counts of stored messages in one-second buckets over the last minute.
pub struct Throughput {
    start: Instant,
    window: Mutex<Window>,
}

struct Window {
    /// Messages per second, indexed by `second % 60`.
    buckets: [u64; 60],
    /// The second (since `start`) that `buckets` was last advanced to.
    current: u64,
}

impl Default for Throughput {
    fn default() -> Self {
        Self::new()
    }
}

impl Throughput {
    /// Starts an empty window.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            window: Mutex::new(Window {
                buckets: [0; 60],
                current: 0,
            }),
        }
    }

    fn advance(w: &mut Window, now: u64) {
        let steps = now.saturating_sub(w.current).min(60);
        for i in 1..=steps {
            w.buckets[((w.current + i) % 60) as usize] = 0;
        }
        w.current = w.current.max(now);
    }

    /// Records `n` stored messages now.
    pub fn record(&self, n: u64) {
        self.record_at(self.start.elapsed().as_secs(), n);
    }

    fn record_at(&self, second: u64, n: u64) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Self::advance(&mut w, second);
        w.buckets[(second % 60) as usize] += n;
    }

    /// Returns the number of messages stored in the last 60 seconds, counting the
    /// current partial second.
    pub fn last_minute(&self) -> u64 {
        self.last_minute_at(self.start.elapsed().as_secs())
    }

    fn last_minute_at(&self, second: u64) -> u64 {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Self::advance(&mut w, second);
        w.buckets.iter().sum()
    }
}

impl super::ChatService {
    /// Takes one send token for `user`. With a Redis bus the budget is shared by every
    /// node; while Redis does not respond, this node's own bucket applies instead.
    pub(super) async fn check_send_limit(
        &self,
        user: crate::core::ids::UserId,
    ) -> Result<(), ChatError> {
        let Some(bus) = self.hub.bus() else {
            return self.send_limit.check(&user);
        };
        let shared = bus
            .take_token(
                "send",
                &user.0.to_string(),
                self.config.send_burst,
                self.config.send_per_second,
            )
            .await;
        match shared {
            Ok(None) => Ok(()),
            Ok(Some(retry_after)) => Err(ChatError::RateLimited { retry_after }),
            Err(err) => {
                tracing::debug!(cause = %err, user_id = %user, "shared rate limit unavailable, using this node's");
                self.send_limit.check(&user)
            }
        }
    }
}

impl super::ChatService {
    /// Takes one sign-in token for the client address. With a Redis bus the budget is
    /// shared by every node, so spreading attempts over nodes does not multiply it.
    /// While Redis does not respond, this node's own bucket applies instead.
    pub(super) async fn check_auth_limit(
        &self,
        addr: Option<std::net::IpAddr>,
    ) -> Result<(), ChatError> {
        let Some(bus) = self.hub.bus() else {
            return self.auth_limit.check(&addr);
        };
        let key = addr.map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
        let shared = bus
            .take_token(
                "auth",
                &key,
                self.config.auth_burst,
                self.config.auth_per_minute / 60.0,
            )
            .await;
        match shared {
            Ok(None) => Ok(()),
            Ok(Some(retry_after)) => Err(ChatError::RateLimited { retry_after }),
            Err(err) => {
                tracing::debug!(cause = %err, addr = %key, "shared rate limit unavailable, using this node's");
                self.auth_limit.check(&addr)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rejects_with_retry_time() {
        let limit = KeyedLimit::new(3, 1.0);
        for _ in 0..3 {
            assert!(limit.check(&1u32).is_ok());
        }
        let err = limit.check(&1u32).unwrap_err();
        let wait = err.retry_after().expect("rate limit carries a wait");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(1001),
            "{wait:?}"
        );
        assert!(
            limit.check(&2u32).is_ok(),
            "other keys have their own bucket"
        );
    }

    #[test]
    fn bucket_refills_at_the_steady_rate() {
        let limit = KeyedLimit::new(1, 50.0);
        assert!(limit.check(&"a").is_ok());
        assert!(limit.check(&"a").is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(limit.check(&"a").is_ok());
    }

    #[test]
    fn throughput_window_forgets_old_seconds() {
        let t = Throughput::new();
        t.record_at(0, 5);
        t.record_at(1, 7);
        assert_eq!(t.last_minute_at(1), 12);
        assert_eq!(t.last_minute_at(59), 12);
        assert_eq!(t.last_minute_at(60), 7, "second 0 fell out");
        assert_eq!(t.last_minute_at(200), 0);
        t.record_at(200, 3);
        assert_eq!(t.last_minute_at(200), 3);
    }
}
