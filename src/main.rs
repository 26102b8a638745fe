//! The `chat` binary: configuration, telemetry, the roles and the operator CLI. No domain
//! logic lives here.

/// mimalloc instead of glibc's malloc: the server allocates many small, short-lived buffers
/// (frames, payloads, events) across threads, where glibc's arenas spent a fifth of the CPU
/// time under load (profiled with `perf`, README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chat::{app, cli, config};

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::Config;

#[derive(Parser)]
#[command(
    name = "chat",
    version,
    about = "Real-time chat backend on an auditable event log"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every role (or only those named with --role).
    Serve {
        #[arg(long, value_enum)]
        role: Vec<app::Role>,
        /// Demo mode: `POST /api/demo/session` {name} registers a user by name and returns a
        /// token. Never on by default; anyone reaching the node can sign in.
        #[arg(long, env = "CHAT_DEMO")]
        demo: bool,
    },
    /// Print a signed JWT.
    Token {
        #[arg(long)]
        user: String,
        #[arg(long)]
        admin: bool,
        /// Lifetime: 30s, 15m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Apply the read-model migrations (creating the database if needed).
    Migrate,
    /// Print the event log as JSON lines (one per event).
    Events {
        /// Only this conversation's events.
        #[arg(long)]
        conversation: Option<String>,
        /// Start at this log position.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Keep printing new events as they are appended.
        #[arg(long)]
        follow: bool,
    },
    /// Export a user's or a conversation's events as JSON lines, decrypted, with positions and
    /// commit hashes (contract 4.2), as `GET /api/users/:id/export` and
    /// `/api/conversations/:id/export` do.
    Export {
        #[arg(
            long,
            conflicts_with = "conversation",
            required_unless_present = "conversation"
        )]
        user: Option<String>,
        #[arg(long)]
        conversation: Option<String>,
    },
    /// Audit the log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Inspect and rebuild projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Move the embedded log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Copy the embedded log (under CHAT_DATA_DIR) into JetStream, in order; resumable.
    Copy {
        /// The NATS server to copy into.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every aggregate's hash chain; exit 1 naming the first broken commit.
    Verify,
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Each projection's checkpoint and lag behind the log.
    Status,
    /// Replay the whole log into fresh tables while the current ones serve, then swap.
    Rebuild { name: String },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Register a user (or update their name).
    Add {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        avatar_url: Option<String>,
    },
    /// Erase a user (contract 4.2): destroys their data key, so their profile and the content
    /// of their messages open nowhere again. Cannot be undone.
    Erase {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

fn parse_ttl(s: &str) -> anyhow::Result<i64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().with_context(|| format!("bad --ttl {s}"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("bad --ttl unit in {s}: use s, m, h or d"),
    };
    Ok(n * mult)
}

/// What to type next, exactly: the data dir, and the commands that register a user and mint a
/// token (with this executable's path and data dir, so they work from any shell).
fn print_embedded_banner(config: &config::Config, addr: std::net::SocketAddr) {
    let url = format!("http://{addr}");
    let data = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "chat".into());
    let chat = format!("CHAT_DATA_DIR={} {exe}", data.display());
    let store = if config.database_url.is_some() {
        "Postgres (CHAT_DATABASE_URL)".to_owned()
    } else {
        "read.db".to_owned()
    };
    println!(
        "embedded storage in {}: events.log, {store}, jwt-secret",
        data.display()
    );
    println!("register a user:");
    println!(
        "  curl -X PUT {url}/api/users/alice -H \"authorization: Bearer $({chat} token --user ops --admin)\" -H 'content-type: application/json' -d '{{\"name\":\"Alice\"}}'"
    );
    println!("mint a token for socket.io-client:");
    println!("  {chat} token --user alice");
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = cli.config;
    match cli.command {
        Command::Serve { role, demo } => {
            let config = Config { demo, ..config };
            let mut node = app::start(&config, &role).await?;
            println!("chat listening on http://{}", node.addr);
            println!(
                "web app: http://{0}/ (operators: http://{0}/ops)",
                node.addr
            );
            if demo {
                println!(
                    "demo mode is ON: POST /api/demo/session {{\"name\": …}} signs anyone in by name; never use it in production"
                );
            }
            if config.nats_url.is_none() {
                print_embedded_banner(&config, node.addr);
            }
            tracing::info!(addr = %node.addr, roles = ?role, "serving");
            tokio::select! {
                r = &mut node.server => { r??; }
                () = shutdown_signal() => {
                    tracing::info!("shutting down");
                    node.shutdown(std::time::Duration::from_secs(10)).await;
                    tracing::info!("stopped");
                }
            }
        }
        Command::Token { user, admin, ttl } => {
            let secret = if config.nats_url.is_some() {
                config.jwt_secret()?.to_vec()
            } else {
                config::embedded_secret(&config)?
            };
            let keys = api::JwtKeys::new(&secret);
            let user = events::UserId::parse(&user)?;
            let exp = events::now_millis() / 1000 + parse_ttl(&ttl)?;
            println!("{}", keys.sign(&user, admin, Some(exp)));
        }
        Command::Users {
            command:
                UsersCommand::Add {
                    id,
                    name,
                    avatar_url,
                },
        } => {
            let log = cli::open_log(&config, cli::Access::Owner).await?;
            let user = cli::add_user(log, &config, &id, name, avatar_url).await?;
            println!("{user}");
        }
        Command::Users {
            command: UsersCommand::Erase { id, reason },
        } => {
            let log = cli::open_log(&config, cli::Access::Owner).await?;
            println!("{}", cli::erase_user(log, &config, &id, reason).await?);
        }
        Command::Migrate => {
            readstore::ReadStore::open(&config.read_store_url()).await?;
            println!("migrations applied");
        }
        Command::Events {
            conversation,
            from,
            follow,
        } => cli::events(&config, conversation, from, follow).await?,
        Command::Export { user, conversation } => {
            cli::export(&config, user, conversation).await?;
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            if !cli::verify(&config).await? {
                std::process::exit(1);
            }
        }
        Command::Projections {
            command: ProjectionsCommand::Status,
        } => cli::status(&config).await?,
        Command::Log {
            command: LogCommand::Copy { to },
        } => cli::copy_log(&config, &to).await?,
        Command::Projections {
            command: ProjectionsCommand::Rebuild { name },
        } => cli::rebuild(&config, &name).await?,
    }
    Ok(())
}
