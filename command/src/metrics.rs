//! Counters of the command node, read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Room events a socket could not take because its send buffer was full (a slow or
    /// stalled client); the client recovers by rejoining with `sinceOffset`.
    pub dropped_emits: AtomicU64,
}

impl Metrics {
    pub fn add_dropped(&self, n: u64) -> u64 {
        self.dropped_emits.fetch_add(n, Ordering::Relaxed) + n
    }
}
