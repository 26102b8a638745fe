//! The retention sweeper (contract 4.2): every `every`, it visits each conversation that has a
//! retention period and asks the service to expire what is due ([`Service::sweep`]). One
//! instance is active in a deployment: the caller runs it under a session lock, as it runs a
//! projector. Must not decide what is due or what a hold protects (the conversation aggregate
//! does), nor read the read models itself (the caller's `due` lists the conversations).

use crate::Service;
use eventlog::EventLog;
use events::ConversationId;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// The conversations that have a retention period (from the read models).
pub type Due =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<ConversationId>, String>> + Send + Sync>;

/// Sweeps every `every` until dropped.
pub async fn run<L: EventLog>(service: Arc<Service<L>>, due: Due, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweep_once(&service, &due).await;
    }
}

/// One sweep over every conversation `due` lists; a failure is logged and retried next time.
pub async fn sweep_once<L: EventLog>(service: &Service<L>, due: &Due) {
    let ids = match due().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "retention: cannot list conversations");
            return;
        }
    };
    for id in ids {
        match service.sweep(&id, events::now_millis()).await {
            Ok(s) if s.expired || s.destroyed > 0 => {
                tracing::info!(conversation = %id, expired = s.expired, keys_destroyed = s.destroyed, "retention");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(conversation = %id, error = %e, "retention: sweep failed"),
        }
    }
}
