//! `bench report`: the comparison table (`results.md`) and the chart of p99 send→ack latency
//! against offered load (`throughput.svg`) from the JSON results of one run. The SVG is
//! written by hand: a few polylines do not need a plotting library.

use crate::asof::AsOf;
use crate::history::History;
use crate::replay::Replay;
use crate::scenario::{Connections, Step, Throughput};
use crate::webhook::Received;
use serde::de::DeserializeOwned;
use std::fmt::Write as _;
use std::path::Path;

const TARGETS: [&str; 3] = ["chat", "node", "node-pg"];

fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let bytes = std::fs::read(dir.join(format!("{name}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One figure for each target.
struct Row {
    figure: &'static str,
    /// Higher is better (rates) or lower is better (latencies, bytes).
    higher_better: bool,
    values: [Option<f64>; 3],
    target: &'static str,
    met: Option<bool>,
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// How many times better `chat` is than `reference` (>1: better).
fn ratio(row: &Row, reference: usize) -> String {
    match (row.values[0], row.values[reference]) {
        (Some(c), Some(r)) if c > 0.0 && r > 0.0 => {
            let x = if row.higher_better { c / r } else { r / c };
            format!("{x:.2}×")
        }
        _ => "–".into(),
    }
}

pub fn write(dir: &Path) -> anyhow::Result<()> {
    let per = |scenario: &str| -> [Option<Step>; 3] {
        TARGETS.map(|t| read::<Step>(dir, &format!("{t}-{scenario}")))
    };
    let ack = per("ack");
    let fanout = per("fanout");
    let tput: [Option<Throughput>; 3] = TARGETS.map(|t| read(dir, &format!("{t}-throughput")));
    let conns: [Option<Connections>; 3] = TARGETS.map(|t| read(dir, &format!("{t}-connections")));
    let replay: Option<Replay> = read(dir, "chat-replay");
    let pick = |f: &dyn Fn(usize) -> Option<f64>| [f(0), f(1), f(2)];

    let mut rows = vec![
        Row {
            figure: "ack: p99 send→ack (ms)",
            higher_better: false,
            values: pick(&|i| ack[i].as_ref().map(|s| s.ack.p99)),
            target: "≤ 25",
            met: None,
        },
        Row {
            figure: "ack: p99 send→delivery (ms)",
            higher_better: false,
            values: pick(&|i| ack[i].as_ref().map(|s| s.delivery.p99)),
            target: "≤ 50",
            met: None,
        },
        Row {
            figure: "ack: p50 send→ack (ms)",
            higher_better: false,
            values: pick(&|i| ack[i].as_ref().map(|s| s.ack.p50)),
            target: "",
            met: None,
        },
        Row {
            figure: "throughput: highest rate held (msg/s)",
            higher_better: true,
            values: pick(&|i| tput[i].as_ref().map(|t| t.held_per_s)),
            target: "≥ 10,000 and ≥ 3× node-pg",
            met: None,
        },
        Row {
            figure: "fanout: deliveries/s",
            higher_better: true,
            values: pick(&|i| fanout[i].as_ref().map(|s| s.deliveries_per_s)),
            target: "≥ 50,000",
            met: None,
        },
        Row {
            figure: "fanout: p99 delivery (ms)",
            higher_better: false,
            values: pick(&|i| fanout[i].as_ref().map(|s| s.delivery.p99)),
            target: "≤ 100",
            met: None,
        },
        Row {
            figure: "connections: server RSS per idle socket (KB)",
            higher_better: false,
            values: pick(&|i| conns[i].as_ref().map(|c| c.bytes_per_socket / 1024.0)),
            target: "≤ 16 and < ½ node",
            met: None,
        },
        Row {
            figure: "connections: p99 connect (ms)",
            higher_better: false,
            values: pick(&|i| conns[i].as_ref().map(|c| c.connect.p99)),
            target: "",
            met: None,
        },
        Row {
            figure: "replay: events/s into Postgres",
            higher_better: true,
            values: [replay.as_ref().map(|r| r.events_per_s), None, None],
            target: "≥ 50,000",
            met: None,
        },
    ];
    let v = |r: &Row, i: usize| r.values[i];
    for r in &mut rows {
        r.met = match r.figure {
            "ack: p99 send→ack (ms)" => v(r, 0).map(|c| c <= 25.0),
            "ack: p99 send→delivery (ms)" => v(r, 0).map(|c| c <= 50.0),
            "throughput: highest rate held (msg/s)" => {
                v(r, 0).map(|c| c >= 10_000.0 && v(r, 2).is_none_or(|p| c >= 3.0 * p))
            }
            "fanout: deliveries/s" => v(r, 0).map(|c| c >= 50_000.0),
            "fanout: p99 delivery (ms)" => v(r, 0).map(|c| c <= 100.0),
            "connections: server RSS per idle socket (KB)" => {
                v(r, 0).map(|c| c <= 16.0 && v(r, 1).is_none_or(|n| c < n / 2.0))
            }
            "replay: events/s into Postgres" => v(r, 0).map(|c| c >= 50_000.0),
            _ => None,
        };
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| figure | chat | node | node-pg | chat vs node | chat vs node-pg | target | met |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---|");
    for r in &rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {met} |",
            r.figure,
            fmt(r.values[0]),
            fmt(r.values[1]),
            fmt(r.values[2]),
            ratio(r, 1),
            ratio(r, 2),
            r.target
        );
    }
    let _ = writeln!(
        md,
        "\nRatios: how many times better `chat` is (rates: chat ÷ reference; latencies and memory: reference ÷ chat)."
    );
    if let Some(c) = &conns[0] {
        let _ = writeln!(
            md,
            "Connections: {} sockets held (server RSS {} MB → {} MB).",
            c.sockets,
            c.rss_before / 1_048_576,
            c.rss_after / 1_048_576
        );
    }
    if let Some(r) = &replay {
        let _ = writeln!(
            md,
            "Replay: {} events in {} commits, rebuilt in {:.1} s. Search over them: built by \
             replay at {:.0} events/s; query p50 {:.1} ms, p99 {:.1} ms.",
            r.events,
            r.commits,
            r.rebuild_s,
            r.search_events_per_s,
            r.search_p50_ms,
            r.search_p99_ms
        );
    }
    baseline_table(&mut md, dir, &ack[0], &tput[0], &fanout[0]);
    history_table(&mut md, dir);
    features_table(&mut md, dir);
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(dir.join("throughput.svg"), chart(&tput))?;
    print!("{md}");
    Ok(())
}

/// `chat` against the baseline build of the same run (`BENCH_BASELINE`), when there is one.
fn baseline_table(
    md: &mut String,
    dir: &Path,
    ack: &Option<Step>,
    tput: &Option<Throughput>,
    fanout: &Option<Step>,
) {
    let base_ack: Option<Step> = read(dir, "chat-baseline-ack");
    let base_tput: Option<Throughput> = read(dir, "chat-baseline-throughput");
    let base_fanout: Option<Step> = read(dir, "chat-baseline-fanout");
    if base_ack.is_none() && base_tput.is_none() {
        return;
    }
    let rows: [(&str, Option<f64>, Option<f64>); 5] = [
        (
            "ack: p50 send→ack (ms)",
            base_ack.as_ref().map(|s| s.ack.p50),
            ack.as_ref().map(|s| s.ack.p50),
        ),
        (
            "ack: p99 send→ack (ms)",
            base_ack.as_ref().map(|s| s.ack.p99),
            ack.as_ref().map(|s| s.ack.p99),
        ),
        (
            "ack: p99 send→delivery (ms)",
            base_ack.as_ref().map(|s| s.delivery.p99),
            ack.as_ref().map(|s| s.delivery.p99),
        ),
        (
            "throughput: highest rate held (msg/s)",
            base_tput.as_ref().map(|t| t.held_per_s),
            tput.as_ref().map(|t| t.held_per_s),
        ),
        (
            "fanout: deliveries/s",
            base_fanout.as_ref().map(|s| s.deliveries_per_s),
            fanout.as_ref().map(|s| s.deliveries_per_s),
        ),
    ];
    let _ = writeln!(
        md,
        "\n| figure | baseline | chat | change |\n|---|---:|---:|---:|"
    );
    for (figure, before, after) in rows {
        let change = match (before, after) {
            (Some(b), Some(a)) if b != 0.0 => format!("{:+.0} %", (a / b - 1.0) * 100.0),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "| {figure} | {} | {} | {change} |",
            fmt(before),
            fmt(after)
        );
    }
    let _ = writeln!(
        md,
        "\nBaseline: `chat` as built from `BENCH_BASELINE`, run in the same invocation (just before it, or just after with `BENCH_BASELINE_AFTER=1`)."
    );
}

/// p99 send→ack against offered load, one line per server.
fn chart(tput: &[Option<Throughput>; 3]) -> String {
    let (w, h, left, bottom) = (720.0, 420.0, 70.0, 50.0);
    let points: Vec<Vec<(f64, f64)>> = tput
        .iter()
        .map(|t| {
            t.as_ref().map_or_else(Vec::new, |t| {
                t.steps
                    .iter()
                    .map(|s| (s.offered_per_s, s.ack.p99))
                    .collect()
            })
        })
        .collect();
    let max_x = points.iter().flatten().map(|p| p.0).fold(1000.0, f64::max);
    let max_y = 200.0_f64;
    let x = |v: f64| left + (v / max_x) * (w - left - 20.0);
    let y = |v: f64| h - bottom - (v.min(max_y) / max_y) * (h - bottom - 20.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    for k in 0..=4 {
        let v = max_y * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.0} ms</text>"##,
            w - 20.0,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0
        );
        let xv = max_x * k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{xv:.0}</text>"#,
            x(xv),
            h - bottom + 18.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#c00" stroke-dasharray="4"/>"##,
        w - 20.0,
        y(50.0),
        y(50.0)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">offered messages/s</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">p99 send→ack</text>"#,
        (w + left) / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for (i, (pts, color)) in points
        .iter()
        .zip(["#1f77b4", "#2ca02c", "#ff7f0e"])
        .enumerate()
    {
        if pts.is_empty() {
            continue;
        }
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (a, b) in pts {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(*a),
                y(*b)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
            left + 10.0,
            20.0 + 16.0 * i as f64,
            TARGETS[i]
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The `history` scenario's figures, JetStream and embedded side by side, with the targets of
/// issue 13.
fn history_table(md: &mut String, dir: &Path) {
    let runs: [Option<History>; 2] = [
        read(dir, "chat-history"),
        read(dir, "chat-history-embedded"),
    ];
    let Some(first) = runs.iter().flatten().next() else {
        return;
    };
    let _ = writeln!(
        md,
        "\nHistory: one conversation of {} messages among 10 members who read everything, {} small conversations (embedded: 2,000).\n",
        first.messages, first.small_conversations
    );
    let _ = writeln!(
        md,
        "| figure | JetStream | embedded | target | met |\n|---|---:|---:|---|---|"
    );
    type Row = (
        &'static str,
        fn(&History) -> f64,
        Option<fn(f64) -> bool>,
        &'static str,
    );
    let rows: [Row; 14] = [
        (
            "memory per message held (bytes)",
            |h| h.bytes_per_message,
            Some(|v| v <= 32.0),
            "≤ 32",
        ),
        (
            "memory per read receipt held (bytes)",
            |h| h.bytes_per_receipt,
            Some(|v| v <= 2.0),
            "≤ 2",
        ),
        ("cold load, log only (ms)", |h| h.log_load_ms, None, ""),
        (
            "cold load after a restart, snapshot + tail, p50 (ms)",
            |h| h.cold_load_p50_ms,
            None,
            "",
        ),
        (
            "cold load after a restart, snapshot + tail, p99 (ms)",
            |h| h.cold_load_p99_ms,
            Some(|v| v <= 50.0),
            "≤ 50",
        ),
        (
            "cold load on a new node (object store), p50 (ms)",
            |h| h.new_node_load_p50_ms.unwrap_or(f64::NAN),
            None,
            "",
        ),
        (
            "cold load on a new node (object store), p99 (ms)",
            |h| h.new_node_load_p99_ms.unwrap_or(f64::NAN),
            None,
            "",
        ),
        (
            "… snapshot fetch / open / tail read (ms)",
            |h| h.snapshot_fetch_ms,
            None,
            "",
        ),
        (
            "RSS after touching every small conversation, cache 64 MiB (MB)",
            |h| h.rss_after_small_mb,
            Some(|v| v <= 164.0),
            "≤ 64 + 100",
        ),
        (
            "command p99, idle (ms)",
            |h| h.command_p99_idle_ms,
            None,
            "",
        ),
        (
            "command p99, while cold loads run (ms)",
            |h| h.command_p99_loading_ms,
            None,
            "unchanged",
        ),
        (
            "… runtime timer lag p99, idle / while loading (ms)",
            |h| h.runtime_lag_p99_idle_ms,
            None,
            "",
        ),
        (
            "… one log read p99, idle / while loading (ms)",
            |h| h.log_read_p99_idle_ms,
            None,
            "",
        ),
        (
            "snapshot size (MB)",
            |h| h.snapshot_bytes as f64 / 1e6,
            None,
            "",
        ),
    ];
    for (name, get, target, label) in rows {
        let cell = |h: &Option<History>| match h {
            Some(h) if name.starts_with("… snapshot") => format!(
                "{:.1} / {:.1} / {:.1}",
                h.snapshot_fetch_ms, h.snapshot_open_ms, h.tail_read_ms
            ),
            Some(h) if name.starts_with("… runtime") => format!(
                "{:.1} / {:.1}",
                h.runtime_lag_p99_idle_ms, h.runtime_lag_p99_loading_ms
            ),
            Some(h) if name.starts_with("… one log") => format!(
                "{:.1} / {:.1}",
                h.log_read_p99_idle_ms, h.log_read_p99_loading_ms
            ),
            Some(h) if get(h).is_nan() => "–".into(),
            Some(h) => format!("{:.1}", get(h)),
            None => "–".into(),
        };
        let met = target.map_or(String::new(), |t| {
            runs.iter()
                .map(|h| match h {
                    Some(h) if t(get(h)) => "yes",
                    Some(_) => "**no**",
                    None => "–",
                })
                .collect::<Vec<_>>()
                .join(" / ")
        });
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {label} | {met} |",
            cell(&runs[0]),
            cell(&runs[1])
        );
    }
}

/// History as a feature (issue 15): search, as-of reads and the webhook, JetStream + Postgres
/// and embedded side by side, with the issue's targets.
fn features_table(md: &mut String, dir: &Path) {
    let replay: [Option<Replay>; 2] = [read(dir, "chat-replay"), read(dir, "chat-replay-embedded")];
    let asof: [Option<AsOf>; 2] = [read(dir, "chat-asof"), read(dir, "chat-asof-embedded")];
    let load: Option<Received> = read(dir, "chat-webhook-load");
    let drain: Option<Received> = read(dir, "chat-webhook-drain");
    if replay.iter().all(Option::is_none)
        && asof.iter().all(Option::is_none)
        && load.is_none()
        && drain.is_none()
    {
        return;
    }
    let events = replay.iter().flatten().next().map_or(0, |r| r.events);
    let messages = asof.iter().flatten().next().map_or(0, |a| a.messages);
    let _ = writeln!(
        md,
        "\nHistory as a feature: search over a replayed log of {events} events; as-of reads at \
         random positions of one conversation of {messages} messages; the webhook to a local \
         receiver.\n"
    );
    let _ = writeln!(
        md,
        "| figure | JetStream + Postgres | embedded | target | met |\n|---|---:|---:|---|---|"
    );
    let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| fmt(Some(v)));
    let met = |vs: [Option<f64>; 2], ok: fn(f64) -> bool| {
        vs.iter()
            .map(|v| match v {
                Some(v) if ok(*v) => "yes",
                Some(_) => "**no**",
                None => "–",
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let mut row = |name: &str, vs: [Option<f64>; 2], target: &str, ok: Option<fn(f64) -> bool>| {
        let m = ok.map_or(String::new(), |ok| met(vs, ok));
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {target} | {m} |",
            cell(vs[0]),
            cell(vs[1])
        );
    };
    let r = |f: fn(&Replay) -> f64| replay.clone().map(|r| r.map(|r| f(&r)));
    let a = |f: fn(&AsOf) -> f64| asof.clone().map(|a| a.map(|a| f(&a)));
    row(
        "search index built by replay (events/s)",
        r(|r| r.search_events_per_s),
        "≥ 30,000",
        Some(|v| v >= 30_000.0),
    );
    row(
        "… the chat projection, same run (events/s)",
        r(|r| r.events_per_s),
        "",
        None,
    );
    row("search query p50 (ms)", r(|r| r.search_p50_ms), "", None);
    row(
        "search query p99 (ms)",
        r(|r| r.search_p99_ms),
        "≤ 20",
        Some(|v| v <= 20.0),
    );
    row("as-of read p50 (ms)", a(|a| a.asof_p50_ms), "", None);
    row(
        "as-of read p99 (ms)",
        a(|a| a.asof_p99_ms),
        "≤ 100",
        Some(|v| v <= 100.0),
    );
    row(
        "… the live list p99, same run (ms)",
        a(|a| a.live_p99_ms),
        "",
        None,
    );
    let w = |h: &Option<Received>, f: fn(&Received) -> f64| [h.as_ref().map(f), None];
    row(
        "webhook: events/s drained by a node with a fresh checkpoint",
        w(&drain, |d| d.events_per_s),
        "",
        None,
    );
    row(
        "webhook: delay p50 under 2,000 msg/s (ms)",
        w(&load, |l| l.delay_p50_ms),
        "",
        None,
    );
    row(
        "webhook: delay p99 under 2,000 msg/s (ms)",
        w(&load, |l| l.delay_p99_ms),
        "",
        None,
    );
    row(
        "webhook: delay max under 2,000 msg/s (ms)",
        w(&load, |l| l.delay_max_ms),
        "",
        None,
    );
    let with: Option<Step> = read(dir, "chat-webhook-ack");
    let without: Option<Step> = read(dir, "chat-ack");
    row(
        "send→ack p99 at 2,000 msg/s with the webhook (ms)",
        [with.map(|s| s.ack.p99), None],
        "",
        None,
    );
    row(
        "… without it, same run (ms)",
        [without.map(|s| s.ack.p99), None],
        "",
        None,
    );
    for (name, h) in [("under load", &load), ("drain", &drain)] {
        if let Some(h) = h {
            let _ = writeln!(
                md,
                "\nWebhook, {name}: {} events in {} batches (largest {}), {} redelivered, {} out \
                 of order, {} bad signatures.",
                h.events,
                h.batches,
                h.largest_batch,
                h.redelivered,
                h.out_of_order,
                h.bad_signatures
            );
        }
    }
}
