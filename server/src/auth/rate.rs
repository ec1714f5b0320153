//! Per-key request rate limits: a token bucket per key id, refilled at the
//! limit per second and holding at most one second's worth (the burst).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Thousandths of a request, so that refills need no fractions.
const MILLI: u128 = 1_000;

pub struct RateLimiter {
    per_second: u64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    milli_tokens: u128,
    refilled_at: Instant,
}

impl RateLimiter {
    /// `per_second` requests per key and second; 0 means no limit.
    pub fn new(per_second: u64) -> Self {
        RateLimiter {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_second(&self) -> u64 {
        self.per_second
    }

    /// Takes one request from `key_id`'s bucket; false when it is empty.
    pub fn admit(&self, key_id: &str, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let capacity = u128::from(self.per_second) * MILLI;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key_id.to_string()).or_insert(Bucket {
            milli_tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_nanos();
        // per_second requests per 1e9 ns, in thousandths: elapsed * rate / 1e6.
        let refill = elapsed.saturating_mul(u128::from(self.per_second)) / 1_000_000;
        bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(capacity);
        bucket.refilled_at = now;
        if bucket.milli_tokens < MILLI {
            return false;
        }
        bucket.milli_tokens -= MILLI;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        let admitted = (0..20).filter(|_| limiter.admit("k", start)).count();
        assert_eq!(admitted, 10, "the burst is one second's worth");
        assert!(limiter.admit("other", start), "buckets are per key");
        assert!(!limiter.admit("k", start + Duration::from_millis(50)));
        assert!(limiter.admit("k", start + Duration::from_millis(100)));
        assert!(!limiter.admit("k", start + Duration::from_millis(100)));
        let later = start + Duration::from_secs(60);
        let admitted = (0..20).filter(|_| limiter.admit("k", later)).count();
        assert_eq!(admitted, 10, "refills stop at the burst");
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        assert!((0..10_000).all(|_| limiter.admit("k", Instant::now())));
    }
}
