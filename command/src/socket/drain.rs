//! Graceful shutdown of the socket edge: once draining, an event not yet being handled is
//! refused with `UNAVAILABLE` (the client retries elsewhere, with the same `tempId`), and the
//! node waits until the events being handled have finished (appended and acknowledged) before
//! it closes the sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    busy: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            busy: watch::Sender::new(0),
        }
    }
}

/// Held while one event is handled.
#[must_use]
pub struct Busy<'a>(&'a Drain);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.send_modify(|n| *n -= 1);
    }
}

impl Drain {
    /// Marks an event as being handled, or `None` once draining. Counts first, then checks:
    /// `idle` either sees this event counted or this check sees the drain started.
    pub fn enter(&self) -> Option<Busy<'_>> {
        self.busy.send_modify(|n| *n += 1);
        let busy = Busy(self);
        (!self.draining.load(Ordering::SeqCst)).then_some(busy)
    }

    /// Refuses every event from now on.
    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves when no event is being handled.
    pub async fn idle(&self) {
        let mut rx = self.busy.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_events_in_hand_and_refuses_new_ones() {
        let drain = std::sync::Arc::new(Drain::default());
        let busy = drain.enter().expect("not draining yet");
        drain.start();
        assert!(drain.enter().is_none(), "a new event is refused once draining");
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "idle while an event is in hand");
        drop(busy);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("idle once the event finished")
            .expect("task");
    }
}
