//! Graceful shutdown of the socket edge. Every client event is counted from the moment it is
//! queued until it has been answered. Once draining, an event not yet being handled is
//! answered `UNAVAILABLE` (the client retries elsewhere, with the same `tempId`) and the one
//! being handled finishes (appended, acknowledged); the node closes the sockets only when
//! every queued event has its answer, so no client is left guessing about an event the node
//! had received.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    pending: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            pending: watch::Sender::new(0),
        }
    }
}

/// One event between its arrival and its answer; dropping it marks it answered.
#[must_use]
#[derive(Debug)]
pub struct Pending(Arc<Drain>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.send_modify(|n| *n -= 1);
    }
}

impl Drain {
    /// Counts an event that just arrived.
    pub fn track(self: &Arc<Self>) -> Pending {
        self.pending.send_modify(|n| *n += 1);
        Pending(self.clone())
    }

    /// From now on, events not yet being handled are refused.
    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves when every event that arrived has been answered.
    pub async fn idle(&self) {
        let mut rx = self.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_until_every_queued_event_is_answered() {
        let drain = Arc::new(Drain::default());
        let handled = drain.track();
        let queued = drain.track();
        drain.start();
        assert!(drain.is_draining());
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        drop(handled);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a queued event has no answer yet");
        drop(queued);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("idle once every event was answered")
            .expect("task");
    }
}
