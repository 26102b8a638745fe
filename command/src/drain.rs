//! Graceful shutdown of a node's socket edge (owned by the node, counted by the edge). Every
//! client event is counted from the moment it is queued until it has been answered. Once draining, an event not yet being handled is
//! answered `UNAVAILABLE` (the client retries elsewhere, with the same `tempId`) and the one
//! being handled finishes (appended, acknowledged); the node closes the sockets only when
//! every queued event has its answer, so no client is left guessing about an event the node
//! had received.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Counted on every client event: two atomic operations, no lock.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    pending: AtomicUsize,
    /// Woken when `pending` drops to zero.
    answered: Notify,
}

/// One event between its arrival and its answer; dropping it marks it answered.
#[must_use]
#[derive(Debug)]
pub struct Pending(Arc<Drain>);

impl Drop for Pending {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.answered.notify_waiters();
        }
    }
}

impl Drain {
    /// Counts an event that just arrived.
    pub fn track(self: &Arc<Self>) -> Pending {
        self.pending.fetch_add(1, Ordering::SeqCst);
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
        loop {
            // Registered before the check, so a drop to zero in between is not missed.
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            answered.await;
        }
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
