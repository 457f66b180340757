//! Token-bucket rate limits keyed by device or IP. Sans-IO: time is passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Bounded number of tracked keys; idle (full) buckets are dropped first.
const MAX_KEYS: usize = 200_000;

/// Token buckets, one per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `rate` tokens per second, up to `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key` at `now`; false when the key is over its rate.
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= MAX_KEYS {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(key.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(2.0, 3.0);
        assert!((0..3).all(|_| l.allow(&"a", t0)));
        assert!(!l.allow(&"a", t0));
        assert!(l.allow(&"b", t0));
        assert!(l.allow(&"a", t0 + Duration::from_millis(500)));
        assert!(!l.allow(&"a", t0 + Duration::from_millis(500)));
    }
}
