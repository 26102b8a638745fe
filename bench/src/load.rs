//! The load side: a target server, users and conversations made over its REST API, sockets
//! joined to their rooms, open-loop senders, and the latencies they see.
//!
//! Latencies are measured from the *intended* send time (open loop: a late send counts its
//! lateness, no coordinated omission). Each message carries its intended send time and its
//! sender in its content (`bench|<ns>|<sender>|`), so a delivery's latency is read off the
//! frame without shared state.

use crate::sio;
use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A server under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub keys: Arc<api::JwtKeys>,
    /// For RSS readings.
    pub pid: Option<u32>,
    /// Whether it has read models to wait for (`/readyz` with projection lags).
    pub projections: bool,
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

pub fn now_ns() -> u64 {
    u64::try_from(start().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Latency histograms (microseconds) and counters of one measurement.
pub struct Stats {
    pub ack: Mutex<Histogram<u64>>,
    pub delivery: Mutex<Histogram<u64>>,
    pub acked: AtomicU64,
    pub deliveries: AtomicU64,
    pub errors: AtomicU64,
    /// Deliveries only count while this is set (not during setup or drain).
    pub measuring: std::sync::atomic::AtomicBool,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 5 min, 3 significant digits.
    Histogram::new_with_bounds(1, 300_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            ack: Mutex::new(histogram()),
            delivery: Mutex::new(histogram()),
            acked: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            measuring: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn record(h: &Mutex<Histogram<u64>>, ns: u64) {
    let us = (ns / 1000).max(1);
    let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
    let high = h.high();
    let _ = h.record(us.min(high));
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Mutex<Histogram<u64>>) -> Self {
        let h = h.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl Stats {
    pub fn reset(&self) {
        self.ack.lock().unwrap_or_else(|p| p.into_inner()).reset();
        self.delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
        self.acked.store(0, Ordering::SeqCst);
        self.deliveries.store(0, Ordering::SeqCst);
        self.errors.store(0, Ordering::SeqCst);
    }
}

/// One member: their socket and index.
pub struct Member {
    pub index: usize,
    pub client: sio::Client,
}

/// A room of members.
pub struct Room {
    pub conversation: String,
    pub members: Vec<Member>,
    /// The members' user ids, by index.
    pub users: Vec<String>,
    /// The user ids every send in this room mentions (contract 4.4); none by default.
    pub mentions: Vec<String>,
}

/// The REST client of the setup.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    target: Target,
}

impl Rest {
    pub fn new(target: &Target) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
            target: target.clone(),
        }
    }

    fn token(&self, user: &str, admin: bool) -> anyhow::Result<String> {
        let id = events::UserId::parse(user)?;
        Ok(self.target.keys.sign(&id, admin, Some(now_secs() + 86_400)))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: String,
        as_user: &str,
        admin: bool,
        body: Value,
    ) -> anyhow::Result<Value> {
        let token = self.token(as_user, admin)?;
        let res = self
            .http
            .request(method, format!("{}{path}", self.target.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{path} on {}", self.target.name))?;
        let status = res.status();
        let value: Value = res.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {value}");
        Ok(value)
    }

    /// Registers users `ids` (64 requests in flight).
    pub async fn users(&self, ids: &[String]) -> anyhow::Result<()> {
        let results: Vec<anyhow::Result<Value>> = futures::stream::iter(ids.iter().map(|id| {
            self.call(
                reqwest::Method::PUT,
                format!("/api/users/{id}"),
                "bench-admin",
                true,
                json!({"name": id}),
            )
        }))
        .buffer_unordered(64)
        .collect()
        .await;
        results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        Ok(())
    }

    /// Creates a conversation of `members` (the first one creates it); returns its id.
    pub async fn conversation(&self, members: &[String]) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/conversations".into(),
                &members[0],
                false,
                json!({"title": "bench", "participantIds": &members[1..]}),
            )
            .await?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .context("no conversation id")
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Users `<run>-<n>` for n in `range`.
pub fn user_ids(run: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{run}-{i}")).collect()
}

/// Records a `message:new` frame's latency at a member that did not send it.
fn on_event(stats: Arc<Stats>, me: usize) -> sio::OnEvent {
    Arc::new(move |name, body| {
        if name != "message:new" || !stats.measuring.load(Ordering::Relaxed) {
            return;
        }
        let Some(at) = body.find("bench|") else {
            return;
        };
        let mut parts = body[at + 6..].splitn(3, '|');
        let (Some(sent), Some(sender)) = (parts.next(), parts.next()) else {
            return;
        };
        // Every `message:new` frame is a delivery (the sender's echo too); latency is measured at
        // the other members.
        stats.deliveries.fetch_add(1, Ordering::Relaxed);
        if sender.parse::<usize>().ok() == Some(me) {
            return;
        }
        if let Ok(sent) = sent.parse::<u64>() {
            record(&stats.delivery, now_ns().saturating_sub(sent));
        }
    })
}

/// Registers `rooms × size` users, creates the rooms, connects every member (`parallel` at a
/// time) and joins them to their room. Returns the rooms and each connect's duration.
pub async fn rooms(
    target: &Target,
    run: &str,
    rooms: usize,
    size: usize,
    stats: &Arc<Stats>,
    parallel: usize,
) -> anyhow::Result<(Vec<Room>, Histogram<u64>)> {
    let rest = Rest::new(target);
    let users = user_ids(run, 0..rooms * size);
    rest.users(&users).await?;
    let conversations: Vec<String> =
        futures::stream::iter(users.chunks(size).map(|m| rest.conversation(m)))
            .buffered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
    let connect_times = Mutex::new(histogram());
    let joined: Vec<anyhow::Result<(usize, Member)>> =
        futures::stream::iter(users.iter().enumerate().map(|(i, user)| {
            let conversation = conversations[i / size].clone();
            let (rest, stats, connect_times) = (&rest, stats.clone(), &connect_times);
            async move {
                let token = rest.token(user, false)?;
                let began = Instant::now();
                let client = sio::connect(&target.url, &token, on_event(stats, i)).await?;
                record(
                    connect_times,
                    u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX),
                );
                let ack = client
                    .emit_ack(
                        "conversation:join",
                        &json!({"conversationId": conversation}),
                    )
                    .await?;
                anyhow::ensure!(ack["success"] == json!(true), "join: {ack}");
                Ok((i, Member { index: i, client }))
            }
        }))
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut by_room: Vec<Room> = conversations
        .into_iter()
        .zip(users.chunks(size))
        .map(|(conversation, users)| Room {
            conversation,
            members: Vec::new(),
            users: users.to_vec(),
            mentions: Vec::new(),
        })
        .collect();
    for r in joined {
        let (i, m) = r?;
        by_room[i / size].members.push(m);
    }
    for room in &mut by_room {
        room.members.sort_by_key(|m| m.index);
    }
    let h = connect_times
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok((by_room, h))
}

/// Sends `rate` messages per second in total for `duration`, spread evenly over `senders`
/// (room, member index) pairs, open loop; waits for the outstanding acks.
pub async fn send_load(
    rooms: &Arc<Vec<Room>>,
    senders: &[(usize, usize)],
    rate: f64,
    duration: Duration,
    stats: &Arc<Stats>,
) {
    let per_sender = rate / senders.len() as f64;
    let period = Duration::from_secs_f64(1.0 / per_sender);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for (k, &(room, member)) in senders.iter().enumerate() {
        let (rooms, stats) = (rooms.clone(), stats.clone());
        // Stagger the senders over one period.
        let offset = period.mul_f64(k as f64 / senders.len() as f64);
        tasks.push(tokio::spawn(async move {
            let mut next = tokio::time::Instant::from_std(began) + offset;
            let end = tokio::time::Instant::from_std(began) + duration;
            let mut inflight = Vec::new();
            while next < end {
                tokio::time::sleep_until(next).await;
                let intended = now_ns().saturating_sub(
                    u64::try_from(
                        tokio::time::Instant::now()
                            .saturating_duration_since(next)
                            .as_nanos(),
                    )
                    .unwrap_or(0),
                );
                next += period;
                let (rooms, stats) = (rooms.clone(), stats.clone());
                inflight.push(tokio::spawn(async move {
                    let r = &rooms[room];
                    let content = format!("bench|{intended}|{}|", r.members[member].index);
                    let mut payload = json!({"conversationId": r.conversation, "content": content});
                    if !r.mentions.is_empty() {
                        payload["mentions"] = json!(r.mentions);
                    }
                    match r.members[member]
                        .client
                        .emit_ack("message:send", &payload)
                        .await
                    {
                        Ok(ack) if ack["success"] == json!(true) => {
                            record(&stats.ack, now_ns().saturating_sub(intended));
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in inflight {
                let _ = t.await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Resident set size of `pid`, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// The largest projection lag (log positions) `/readyz` reports.
pub async fn projection_lag(target: &Target) -> anyhow::Result<u64> {
    let v: Value = reqwest::get(format!("{}/readyz", target.url))
        .await?
        .json()
        .await?;
    Ok(v["projections"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|p| p["lag"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0))
}

/// How long the read models take to catch up with the log from now (up to `limit`).
pub async fn catch_up_time(target: &Target, limit: Duration) -> anyhow::Result<Duration> {
    let began = Instant::now();
    while projection_lag(target).await? > 0 {
        if began.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(began.elapsed())
}
