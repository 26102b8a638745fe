//! Scenario `webhook` (issue 15): a receiver for the outbound webhook on a loopback port,
//! for `scripts/bench.sh` to point a `chat serve` at. It checks every batch's signature and
//! order, answers 204, and measures what arrived: events per second from the first batch to
//! the last, and each event's delay from its `occurredAt` to its arrival (the webhook's lag
//! in time). It stops by itself once nothing has come for `idle` (after a first batch), or
//! after `max`, and writes its figures.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Received {
    pub events: u64,
    pub batches: u64,
    /// Events of a batch delivered again (at least once): not counted in `events`.
    pub redelivered: u64,
    /// Events whose position is below one already received in an earlier batch.
    pub out_of_order: u64,
    pub bad_signatures: u64,
    /// From the first batch's arrival to the last's.
    pub span_s: f64,
    pub events_per_s: f64,
    pub largest_batch: u64,
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    pub delay_max_ms: f64,
}

struct Tally {
    secret: Vec<u8>,
    out: Received,
    first: Option<Instant>,
    last: Option<Instant>,
    /// The highest position received so far.
    high: Option<u64>,
    delay: Histogram<u64>,
}

type Shared = Arc<Mutex<Tally>>;

fn now_ms() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
}

async fn batch(State(tally): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let arrived = Instant::now();
    let at_ms = now_ms();
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&body);
    let Ok(mut t) = tally.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let signed = headers
        .get(projector::webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if signed != Some(projector::webhook::signature(&t.secret, &body).as_str()) {
        t.out.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(parsed) = parsed else {
        return StatusCode::BAD_REQUEST;
    };
    let events = parsed["events"].as_array().cloned().unwrap_or_default();
    t.first.get_or_insert(arrived);
    t.last = Some(arrived);
    t.out.batches += 1;
    t.out.largest_batch = t.out.largest_batch.max(events.len() as u64);
    let earlier_high = t.high;
    for e in &events {
        let position = e["position"].as_u64().unwrap_or(0);
        if earlier_high.is_some_and(|h| position <= h) {
            // A commit is never split and every batch is accepted: at or below what an
            // earlier batch held, it is a redelivery.
            t.out.redelivered += 1;
            continue;
        }
        if t.high.is_some_and(|h| position < h) {
            t.out.out_of_order += 1;
        }
        t.high = Some(t.high.map_or(position, |h| h.max(position)));
        t.out.events += 1;
        let occurred = e["occurredAt"]
            .as_str()
            .and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp_nanos() / 1_000_000);
        if let Some(occurred) = occurred {
            let delay = u64::try_from((at_ms - occurred).max(0)).unwrap_or(u64::MAX);
            t.delay.saturating_record(delay);
        }
    }
    StatusCode::NO_CONTENT
}

/// Listens on a loopback port, prints `listening on http://…`, and receives until idle.
pub async fn receive(secret: &str, idle: Duration, max: Duration) -> anyhow::Result<Received> {
    let tally: Shared = Arc::new(Mutex::new(Tally {
        secret: secret.as_bytes().to_vec(),
        out: Received::default(),
        first: None,
        last: None,
        high: None,
        delay: Histogram::new(3)?,
    }));
    let app = axum::Router::new()
        .route("/", axum::routing::post(batch))
        .with_state(tally.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let began = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = tally.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.last;
        if last.is_some_and(|l| l.elapsed() >= idle) || began.elapsed() >= max {
            break;
        }
    }
    server.abort();
    let t = tally.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut out = t.out.clone();
    if let (Some(first), Some(last)) = (t.first, t.last) {
        out.span_s = last.duration_since(first).as_secs_f64();
        out.events_per_s = out.events as f64 / out.span_s.max(1e-3);
    }
    out.delay_p50_ms = t.delay.value_at_quantile(0.5) as f64;
    out.delay_p99_ms = t.delay.value_at_quantile(0.99) as f64;
    out.delay_max_ms = t.delay.max() as f64;
    Ok(out)
}
