//! The outbound webhook (contract 4.3): a projection into an external system. Every committed
//! event is POSTed to `CHAT_WEBHOOK_URL` in log order, in JSON batches (`wire::webhook`),
//! signed `X-Chat-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! - At least once, never out of order, never skipped: its checkpoint (`webhook` in
//!   `projection_checkpoints`, so status, lag and `/metrics` show it like any projection)
//!   advances only after a 2xx; a restart resumes after it. A receiver dedupes by `position`.
//! - A failure (non-2xx, timeout, refused connection) is retried with the same batch after a
//!   wait that doubles from [`BACKOFF_MIN`] up to the configured cap; a `Retry-After` (seconds
//!   or an HTTP date) is honoured instead, up to [`RETRY_AFTER_MAX`].
//! - While a delivery is pending, commits queue up to [`MAX_BATCH`] of them: a slow receiver
//!   gets bigger batches. It runs beside the other projections and blocks none of them.
//! - One active instance in a deployment: it holds the `webhook` lock, like a projector.
//!
//! Must not write to the read models (only its checkpoint).

use crate::runner::{lock_key, write_checkpoint};
use eventlog::{EventLog, From, Log, StoredCommit};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use readstore::ReadStore;
use sha2::Sha256;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wire::webhook::{WebhookBatch, WebhookEvent};

pub const NAME: &str = "webhook";
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);
/// Commits in one batch at most (a commit is never split between batches).
pub const MAX_BATCH: usize = 1000;
/// How long one delivery may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const SIGNATURE_HEADER: &str = "X-Chat-Signature";

/// Where and how to deliver.
#[derive(Clone)]
pub struct Target {
    url: reqwest::Url,
    secret: Vec<u8>,
    backoff_max: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url.as_str())
            .field("backoff_max", &self.backoff_max)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// An `http://` or `https://` URL, and the signing secret.
    pub fn new(url: &str, secret: &str, backoff_max: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".into());
        }
        Ok(Self {
            url,
            secret: secret.as_bytes().to_vec(),
            backoff_max: backoff_max.max(BACKOFF_MIN),
        })
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, thiserror::Error)]
enum SinkError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("stopped")]
    Stopped,
}

/// Delivers the log after the webhook's checkpoint until `stop`; on an error of the log or the
/// store, waits briefly and resumes from the checkpoint.
pub async fn run(
    log: Log,
    store: ReadStore,
    filter: String,
    keyring: std::sync::Arc<keys::Keyring>,
    target: Target,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook: cannot build an HTTP client");
            return;
        }
    };
    let sink = Sink {
        log,
        store,
        filter,
        keyring,
        target,
        client,
    };
    while !stop.is_cancelled() {
        match sink.run_once(&stop).await {
            Ok(()) | Err(SinkError::Stopped) => {}
            Err(e) => {
                tracing::warn!(error = %e, "webhook: restarting from checkpoint");
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

struct Sink {
    log: Log,
    store: ReadStore,
    filter: String,
    keyring: std::sync::Arc<keys::Keyring>,
    target: Target,
    client: reqwest::Client,
}

impl Sink {
    async fn run_once(&self, stop: &CancellationToken) -> Result<(), SinkError> {
        let lock = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            lock = self.store.lock_session(lock_key(&format!("public/{NAME}"))) => lock?,
        };
        let result = self.deliver_all(stop).await;
        lock.release().await;
        result
    }

    async fn deliver_all(&self, stop: &CancellationToken) -> Result<(), SinkError> {
        let from = crate::checkpoint(self.store.pool(), NAME).await?;
        let mut commits = self
            .log
            .follow(&self.filter, From::Position(from + 1))
            .await?
            .ready_chunks(MAX_BATCH);
        loop {
            let chunk = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                next = commits.next() => match next {
                    Some(chunk) => chunk,
                    None => return Ok(()),
                },
            };
            let stored: Vec<StoredCommit> = chunk.into_iter().collect::<Result<_, _>>()?;
            let Some(last) = stored.last().map(|c| c.position) else {
                continue;
            };
            let mut batch = WebhookBatch { events: Vec::new() };
            for c in &stored {
                let keys = self.keyring.prepare_commit(&c.commit).await?;
                batch
                    .events
                    .extend(c.commit.events.iter().map(|e| WebhookEvent {
                        position: c.position,
                        event_type: e.event_type.clone(),
                        aggregate_id: c.commit.aggregate_id.clone(),
                        actor: c.commit.actor.clone(),
                        occurred_at: wire::Timestamp(c.commit.occurred_at),
                        data: events::audit::data_json(&c.commit, e, &keys),
                    }));
            }
            let body = serde_json::to_vec(&batch).unwrap_or_default();
            self.deliver(body, stop).await?;
            let mut conn = self.store.pool().acquire().await?;
            write_checkpoint(&mut conn, NAME, last).await?;
        }
    }

    /// POSTs `body` until a 2xx answers (or `stop`).
    async fn deliver(&self, body: Vec<u8>, stop: &CancellationToken) -> Result<(), SinkError> {
        let signature = signature(&self.target.secret, &body);
        let mut backoff = BACKOFF_MIN;
        loop {
            let sent = self
                .client
                .post(self.target.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .body(body.clone())
                .send()
                .await;
            let wait = match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    tracing::warn!(status = %r.status(), "webhook: delivery refused, retrying");
                    retry_after(r.headers()).unwrap_or(backoff)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: delivery failed, retrying");
                    backoff
                }
            };
            backoff = (backoff * 2).min(self.target.backoff_max);
            tokio::select! {
                () = stop.cancelled() => return Err(SinkError::Stopped),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The wait a `Retry-After` asks for: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(RETRY_AFTER_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn the_signature_is_hex_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "99999".parse().expect("header"),
        );
        assert_eq!(retry_after(&h), Some(RETRY_AFTER_MAX));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        h.insert(reqwest::header::RETRY_AFTER, later.parse().expect("header"));
        let wait = retry_after(&h).expect("a date");
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        h.insert(
            reqwest::header::RETRY_AFTER,
            "soon".parse().expect("header"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn targets_are_http_urls() {
        assert!(Target::new("http://127.0.0.1:9/hook", "s", BACKOFF_MIN).is_ok());
        assert!(Target::new("ftp://example.com/", "s", BACKOFF_MIN).is_err());
        assert!(Target::new("not a url", "s", BACKOFF_MIN).is_err());
    }
}
