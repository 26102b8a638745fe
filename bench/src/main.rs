//! `bench`: the load generator of issue 6. `scripts/bench.sh` runs the whole comparison (this
//! backend, the Node.js references) and then `bench report`.
//!
//! - `bench scenario NAME --url … --secret …`: one scenario against one running server, JSON
//!   result to `--out`.
//! - `bench replay --nats … --database …` (or `--embedded DIR`): seed a log, time rebuilds of
//!   the chat and search projections and searches over them; `bench search --store …` times
//!   the searches again.
//! - `bench asof …`: as-of reads at random positions of one large conversation (issue 15).
//! - `bench webhook --secret …`: a receiver for the outbound webhook, until idle (issue 15).
//! - `bench history …`: what a command node costs as history grows (issue 13).
//! - `bench report --dir …`: the results table (Markdown) and a latency-against-load chart (SVG).

mod asof;
mod history;
mod load;
mod replay;
mod report;
mod scenario;
mod sealer;
mod sio;
mod webhook;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Load generator and report for the chat backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    Ack,
    Throughput,
    Fanout,
    Connections,
}

#[derive(Subcommand)]
enum Command {
    /// One scenario against a running server.
    Scenario {
        scenario: Scenario,
        /// Name of the server in the report (`chat`, `node`, `node-pg`).
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// HS256 secret the server verifies tokens with.
        #[arg(long)]
        secret: String,
        /// The server's pid, for RSS readings.
        #[arg(long)]
        pid: Option<u32>,
        /// The server has read models (`/readyz` projection lags).
        #[arg(long)]
        projections: bool,
        #[arg(long)]
        out: PathBuf,
        /// Messages per second (ack, fanout) or the first step (throughput).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        /// Members of the fanout room, or sockets of the connections scenario.
        #[arg(long)]
        size: Option<usize>,
        /// Throughput: step increment and ceiling.
        #[arg(long, default_value_t = 2000.0)]
        increment: f64,
        #[arg(long, default_value_t = 40000.0)]
        max: f64,
        /// Ack: every send mentions the 10 members of its room (contract 4.4).
        #[arg(long)]
        mentions: bool,
    },
    /// Seeds a log of `events` events, times a rebuild of the `chat` and `search` projections
    /// and searches over them.
    Replay {
        #[command(flatten)]
        on: replay::TargetArgs,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// As-of reads at random positions of one large conversation (issue 15).
    Asof {
        #[command(flatten)]
        on: replay::TargetArgs,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// A receiver for the outbound webhook on a loopback port (prints `listening on …`):
    /// checks signatures and order, measures rate and delay, stops once idle.
    Webhook {
        #[arg(long)]
        secret: String,
        /// Stop once nothing has come for this long after a first batch.
        #[arg(long, default_value_t = 5)]
        idle_secs: u64,
        /// Stop after this long whatever comes.
        #[arg(long, default_value_t = 900)]
        max_secs: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Times the searches of `replay` again on the read store a replay left (its `store`).
    Search {
        #[arg(long)]
        store: String,
    },
    /// What a command node costs as history grows (issue 13), in process on JetStream.
    History {
        #[arg(long)]
        nats: Option<String>,
        /// Run on an embedded log and snapshot directory here instead of JetStream.
        #[arg(long)]
        embedded: Option<PathBuf>,
        /// Messages of the big conversation.
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Messages of each of the two conversations that price a read receipt.
        #[arg(long, default_value_t = 200_000)]
        pair: u64,
        /// Small conversations touched under a 64 MiB cache.
        #[arg(long, default_value_t = 100_000)]
        small: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes the results table and chart from the JSON files in `dir`.
    Report {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// The server's allocator, so that the `history` scenario's memory figures are the server's,
/// counted (`cap`) so that it can tell the bytes a state holds from what the allocator keeps.
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Bytes allocated and not yet freed.
pub fn allocated() -> usize {
    ALLOCATOR.allocated()
}

/// Thousands of sockets need thousands of descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        eprintln!("cannot raise the descriptor limit: {e}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raise_fd_limit();
    let cli = Cli::parse();
    match cli.command {
        Command::Scenario {
            scenario,
            name,
            url,
            secret,
            pid,
            projections,
            out,
            rate,
            secs,
            size,
            increment,
            max,
            mentions,
        } => {
            let target = load::Target {
                name: name.clone(),
                url,
                keys: Arc::new(api::JwtKeys::new(secret.as_bytes())),
                pid,
                projections,
            };
            let run = format!("b{}", ulid::Ulid::new().to_string().to_lowercase());
            let value = match scenario {
                Scenario::Ack => serde_json::to_value(
                    scenario::ack(&target, &run, rate.unwrap_or(2000.0), secs, mentions).await?,
                )?,
                Scenario::Throughput => serde_json::to_value(
                    scenario::throughput(
                        &target,
                        &run,
                        rate.unwrap_or(2000.0),
                        increment,
                        secs,
                        max,
                    )
                    .await?,
                )?,
                Scenario::Fanout => serde_json::to_value(
                    scenario::fanout(
                        &target,
                        &run,
                        size.unwrap_or(1000),
                        rate.unwrap_or(50.0),
                        secs,
                    )
                    .await?,
                )?,
                Scenario::Connections => serde_json::to_value(
                    scenario::connections(&target, &run, size.unwrap_or(20_000)).await?,
                )?,
            };
            save(&name, &value, &out)?;
        }
        Command::Replay { on, events, out } => {
            let r = replay::run(on.target()?, events).await?;
            save("replay", &r, &out)?;
        }
        Command::Asof { on, messages, out } => {
            let r = asof::run(on.target()?, messages).await?;
            save("asof", &r, &out)?;
        }
        Command::Webhook {
            secret,
            idle_secs,
            max_secs,
            out,
        } => {
            let r = webhook::receive(
                &secret,
                std::time::Duration::from_secs(idle_secs),
                std::time::Duration::from_secs(max_secs),
            )
            .await?;
            save("webhook", &r, &out)?;
        }
        Command::Search { store } => {
            let store = readstore::ReadStore::open(&store).await?;
            let (p50, p99) = replay::searches(&store).await?;
            println!("search: p50 {p50:.1} ms, p99 {p99:.1} ms");
        }
        Command::History {
            nats,
            embedded,
            messages,
            pair,
            small,
            out,
        } => {
            let h =
                history::run(nats.as_deref(), embedded.as_deref(), messages, pair, small).await?;
            save("history", &h, &out)?;
        }
        Command::Report { dir } => report::write(&dir)?,
    }
    Ok(())
}

/// Prints a scenario's result and writes it to `out` as JSON.
fn save<T: serde::Serialize>(name: &str, result: &T, out: &std::path::Path) -> anyhow::Result<()> {
    eprintln!("{name}: {}", serde_json::to_string(result)?);
    std::fs::write(out, serde_json::to_vec_pretty(result)?)?;
    Ok(())
}
