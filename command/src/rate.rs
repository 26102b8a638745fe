//! Rate limits: token buckets (the contract's figures: `message:send` per user, all events per
//! socket), and the "ten times the limit" rule that disconnects an abusive socket.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Limits per minute; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub messages_per_min: u32,
    pub events_per_min: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            messages_per_min: 30,
            events_per_min: 600,
        }
    }
}

/// A bucket of `per_min` tokens that refills continuously.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn per_minute(per_min: u32) -> Self {
        let capacity = f64::from(per_min);
        Self {
            capacity,
            tokens: capacity,
            per_sec: capacity / 60.0,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available. A bucket of 0 never limits.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.capacity <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

impl TokenBucket {
    /// Whether the bucket has refilled completely by `now` (it then limits exactly as a new one).
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_sec >= self.capacity
    }
}

/// One [`TokenBucket`] per key (a user), holding only the buckets that are not full: a full
/// bucket limits exactly as a new one, so those are dropped once a minute and the map grows
/// with the users sending within a minute, not with every user ever seen.
#[derive(Debug)]
pub struct Buckets<K> {
    per_min: u32,
    buckets: HashMap<K, TokenBucket>,
    swept: Instant,
}

impl<K: Eq + Hash> Buckets<K> {
    pub fn per_minute(per_min: u32) -> Self {
        Self {
            per_min,
            buckets: HashMap::new(),
            swept: Instant::now(),
        }
    }

    /// Takes a token of `key`, or says how long until one is available.
    pub fn try_take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if now.saturating_duration_since(self.swept) >= Duration::from_secs(60) {
            self.buckets.retain(|_, b| !b.is_full(now));
            self.swept = now;
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::per_minute(self.per_min))
            .try_take(now)
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Counts attempts in one-minute windows; trips when a window sees ten times the limit.
#[derive(Debug, Clone)]
pub struct AbuseWindow {
    limit: u64,
    count: u64,
    started: Instant,
}

impl AbuseWindow {
    pub fn new(per_min: u32) -> Self {
        Self {
            limit: u64::from(per_min) * 10,
            count: 0,
            started: Instant::now(),
        }
    }

    /// Records an attempt; true when this socket is past ten times its limit this minute.
    pub fn record(&mut self, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        if now.saturating_duration_since(self.started) >= Duration::from_secs(60) {
            self.started = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(30);
        for _ in 0..30 {
            assert!(b.try_take(t0).is_ok());
        }
        let wait = b.try_take(t0).expect_err("empty");
        assert!(wait <= Duration::from_secs(2) && wait > Duration::from_millis(1900));
        assert!(b.try_take(t0 + Duration::from_secs(2)).is_ok());
        assert!(b.try_take(t0 + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn buckets_of_users_who_stopped_sending_are_dropped_and_limits_hold() {
        let t0 = Instant::now();
        let mut b = Buckets::per_minute(2);
        for user in 0..100 {
            assert!(b.try_take(user, t0).is_ok());
        }
        assert!(b.try_take(7, t0).is_ok());
        assert!(b.try_take(7, t0).is_err(), "user 7 used both tokens");
        assert_eq!(b.len(), 100);
        // A minute on, every bucket has refilled: the sweep keeps none but the one in use.
        let later = t0 + Duration::from_secs(61);
        assert!(b.try_take(7, later).is_ok());
        assert_eq!(b.len(), 1);
        assert!(b.try_take(7, later).is_ok());
        assert!(
            b.try_take(7, later).is_err(),
            "the limit still holds after the sweep"
        );
    }

    #[test]
    fn zero_is_off() {
        let mut b = TokenBucket::per_minute(0);
        let now = Instant::now();
        assert!((0..10_000).all(|_| b.try_take(now).is_ok()));
        let mut w = AbuseWindow::new(0);
        assert!(!(0..10_000).any(|_| w.record(now)));
    }

    #[test]
    fn abuse_trips_past_ten_times_the_limit_within_a_minute() {
        let t0 = Instant::now();
        let mut w = AbuseWindow::new(3);
        assert!(!(0..30).any(|_| w.record(t0)));
        assert!(w.record(t0));
        assert!(!w.record(t0 + Duration::from_secs(61)));
    }
}
