//! The five scenarios of issue 6. Each returns a JSON-serialisable result.

use crate::load::{self, Latency, Stats, Target};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Step {
    pub offered_per_s: f64,
    pub acked_per_s: f64,
    pub errors: u64,
    pub ack: Latency,
    pub delivery: Latency,
    pub deliveries_per_s: f64,
    /// Time the read models took to catch up after the step (None: no read models).
    pub catch_up_ms: Option<f64>,
}

/// Runs one open-loop step over every member of `rooms` as senders.
async fn step(
    target: &Target,
    rooms: &Arc<Vec<load::Room>>,
    senders: &[(usize, usize)],
    rate: f64,
    duration: Duration,
    stats: &Arc<Stats>,
) -> anyhow::Result<Step> {
    stats.reset();
    stats.measuring.store(true, Ordering::SeqCst);
    let began = Instant::now();
    load::send_load(rooms, senders, rate, duration, stats).await;
    let elapsed = began.elapsed().as_secs_f64().max(duration.as_secs_f64());
    // Let the last deliveries land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stats.measuring.store(false, Ordering::SeqCst);
    let catch_up_ms = if target.projections {
        Some(
            load::catch_up_time(target, Duration::from_secs(30))
                .await?
                .as_secs_f64()
                * 1000.0,
        )
    } else {
        None
    };
    Ok(Step {
        offered_per_s: rate,
        acked_per_s: stats.acked.load(Ordering::SeqCst) as f64 / elapsed,
        errors: stats.errors.load(Ordering::SeqCst),
        ack: Latency::of(&stats.ack),
        delivery: Latency::of(&stats.delivery),
        deliveries_per_s: stats.deliveries.load(Ordering::SeqCst) as f64 / elapsed,
        catch_up_ms,
    })
}

fn all_members(rooms: &[load::Room]) -> Vec<(usize, usize)> {
    rooms
        .iter()
        .enumerate()
        .flat_map(|(r, room)| (0..room.members.len()).map(move |m| (r, m)))
        .collect()
}

/// The ack and throughput setup: 20 conversations of [`ROOM`] members, every member a sender,
/// and a short warm-up at `warm_up` messages/s (connections, caches, the JIT on the Node side),
/// not measured. With `mention_all`, every send mentions every member of its room.
async fn senders_in_rooms(
    target: &Target,
    run: &str,
    warm_up: f64,
    mention_all: bool,
) -> anyhow::Result<(Arc<Stats>, Arc<Vec<load::Room>>, Vec<(usize, usize)>)> {
    let stats = Arc::new(Stats::default());
    let (mut rooms, _) = load::rooms(target, run, 20, ROOM, &stats, 64).await?;
    if mention_all {
        for room in &mut rooms {
            room.mentions = room.users.clone();
        }
    }
    let rooms = Arc::new(rooms);
    let senders = all_members(&rooms);
    step(
        target,
        &rooms,
        &senders,
        warm_up,
        Duration::from_secs(2),
        &stats,
    )
    .await?;
    Ok((stats, rooms, senders))
}

/// 1. ack: 20 conversations of 10 members, `rate` messages/s for `secs`; with `mention_all`,
///    each send mentions the 10 members of its room.
pub async fn ack(
    target: &Target,
    run: &str,
    rate: f64,
    secs: u64,
    mention_all: bool,
) -> anyhow::Result<Step> {
    let (stats, rooms, senders) = senders_in_rooms(target, run, rate / 4.0, mention_all).await?;
    step(
        target,
        &rooms,
        &senders,
        rate,
        Duration::from_secs(secs),
        &stats,
    )
    .await
}

/// Members per conversation in the ack and throughput scenarios.
const ROOM: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Throughput {
    pub steps: Vec<Step>,
    /// The highest offered rate held: acknowledged, persisted and broadcast (see `throughput`).
    pub held_per_s: f64,
}

/// 2. throughput: the offered rate stepped up until a step is not held.
pub async fn throughput(
    target: &Target,
    run: &str,
    first: f64,
    increment: f64,
    secs: u64,
    max: f64,
) -> anyhow::Result<Throughput> {
    let (stats, rooms, senders) = senders_in_rooms(target, run, first / 4.0, false).await?;
    let mut out = Throughput::default();
    let mut rate = first;
    while rate <= max {
        let s = step(
            target,
            &rooms,
            &senders,
            rate,
            Duration::from_secs(secs),
            &stats,
        )
        .await?;
        // Acknowledged (p99 ≤ 50 ms, ≥ 95 % of the offered rate, no error), persisted (read
        // models caught up within 1 s of the step's end) and broadcast (≥ 95 % of the
        // `message:new` frames due, p99 delivery ≤ 1 s).
        let held = s.ack.p99 <= 50.0
            && s.errors == 0
            && s.acked_per_s >= 0.95 * rate
            && s.catch_up_ms.is_none_or(|ms| ms <= 1000.0)
            && s.deliveries_per_s >= 0.95 * rate * ROOM as f64
            && s.delivery.p99 <= 1000.0;
        eprintln!(
            "  {}: offered {rate:.0}/s acked {:.0}/s p99 ack {:.1} ms p99 delivery {:.1} ms catch-up {:?} ms {}",
            target.name,
            s.acked_per_s,
            s.ack.p99,
            s.delivery.p99,
            s.catch_up_ms.map(|m| m.round()),
            if held { "held" } else { "NOT held" }
        );
        out.steps.push(s);
        if !held {
            break;
        }
        out.held_per_s = rate;
        rate += increment;
    }
    Ok(out)
}

/// 3. fanout: one room of `members`, `rate` messages/s from one sender for `secs`.
pub async fn fanout(
    target: &Target,
    run: &str,
    members: usize,
    rate: f64,
    secs: u64,
) -> anyhow::Result<Step> {
    let stats = Arc::new(Stats::default());
    let (rooms, _) = load::rooms(target, run, 1, members, &stats, 64).await?;
    let rooms = Arc::new(rooms);
    step(
        target,
        &rooms,
        &[(0, 0)],
        rate,
        Duration::from_secs(2),
        &stats,
    )
    .await?;
    step(
        target,
        &rooms,
        &[(0, 0)],
        rate,
        Duration::from_secs(secs),
        &stats,
    )
    .await
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Connections {
    pub sockets: usize,
    pub connect: Latency,
    pub connect_total_s: f64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub bytes_per_socket: f64,
}

/// 4. connections: `n` authenticated idle sockets, each in one room (of 10).
pub async fn connections(target: &Target, run: &str, n: usize) -> anyhow::Result<Connections> {
    let pid = target
        .pid
        .ok_or_else(|| anyhow::anyhow!("connections needs the server's pid"))?;
    let rss_before = load::rss(pid)?;
    let stats = Arc::new(Stats::default());
    let began = Instant::now();
    let (rooms, connect) = load::rooms(target, run, n / 10, 10, &stats, 256).await?;
    let connect_total_s = began.elapsed().as_secs_f64();
    // Idle: let the server settle (pings, buffers) before reading its memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after = load::rss(pid)?;
    let sockets = rooms.iter().map(|r| r.members.len()).sum::<usize>();
    let connect = Latency::of(&std::sync::Mutex::new(connect));
    drop(rooms);
    Ok(Connections {
        sockets,
        connect,
        connect_total_s,
        rss_before,
        rss_after,
        bytes_per_socket: rss_after.saturating_sub(rss_before) as f64 / sockets.max(1) as f64,
    })
}
