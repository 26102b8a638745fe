//! The live bus: how nodes reach each other with signals that never enter the log. Core NATS
//! between nodes, or a channel inside the process for one node on embedded storage.

use futures::StreamExt;

/// How nodes reach each other with live signals: core NATS, or, for a single node on embedded
/// storage, a channel inside the process. Either way a node receives its own messages too.
#[derive(Clone)]
pub enum Bus {
    Nats(async_nats::Client),
    Local(tokio::sync::broadcast::Sender<(String, bytes::Bytes)>),
}

type Messages = futures::stream::BoxStream<'static, (String, bytes::Bytes)>;

impl Bus {
    /// An in-process bus.
    pub fn local() -> Self {
        Self::Local(tokio::sync::broadcast::channel(4096).0)
    }

    pub(super) async fn publish(
        &self,
        subject: String,
        payload: bytes::Bytes,
    ) -> Result<(), String> {
        match self {
            Self::Nats(c) => c.publish(subject, payload).await.map_err(|e| e.to_string()),
            Self::Local(tx) => {
                // No receiver yet is not an error: nobody is listening.
                let _ = tx.send((subject, payload));
                Ok(())
            }
        }
    }

    pub(super) async fn subscribe(&self, filter: String) -> Result<Messages, String> {
        match self {
            Self::Nats(c) => {
                let sub = c.subscribe(filter).await.map_err(|e| e.to_string())?;
                c.flush().await.map_err(|e| e.to_string())?;
                Ok(sub.map(|m| (m.subject.to_string(), m.payload)).boxed())
            }
            Self::Local(tx) => {
                let rx = tx.subscribe();
                Ok(futures::stream::unfold(rx, move |mut rx| {
                    let filter = filter.clone();
                    async move {
                        loop {
                            match rx.recv().await {
                                Ok((s, p)) if eventlog::subject_matches(&filter, &s) => {
                                    return Some(((s, p), rx));
                                }
                                Ok(_) => {}
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                    tracing::warn!(missed = n, "live: local bus lagged");
                                }
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                    return None;
                                }
                            }
                        }
                    }
                })
                .boxed())
            }
        }
    }
}
