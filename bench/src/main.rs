//! `confab-bench`: a single-threaded Socket.IO v4 and IRC load generator for Confab and the
//! servers people would pick instead, the bare WebSocket reference server, the database
//! seed and the report writer. docs/benchmarks.md describes the method.

mod accounting;
mod irc;
mod load;
mod procstat;
mod reference;
mod report;
mod scenarios;
mod seed;
mod sio;
mod target;
mod workers;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    version,
    about = "Socket.IO and IRC load generator and peer comparison for Confab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One room of N members; rates stepped, then bisected to the highest that passes.
    Fanout {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: scenarios::FanoutArgs,
        /// Output file for the result, as JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// One IRC channel of N members; rates stepped and bisected as in `fanout`.
    IrcFanout {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: scenarios::IrcFanoutArgs,
        /// Output file for the result, as JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// Many rooms of 10 to 50 members each (Confab only).
    Rooms {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: scenarios::RoomsArgs,
        /// Output file for the result, as JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// Idle connections held at several counts; server memory per connection.
    ///
    /// Memory counts from the server's size when the run starts, so each run needs a
    /// freshly started server.
    Idle {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: scenarios::IdleArgs,
        /// Output file for the result, as JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// Holds one share of an idle level for a parent `idle` run (see `workers`).
    #[command(hide = true)]
    HoldWorker {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: workers::HoldArgs,
    },
    /// Connect storm and reconnect storm.
    Storm {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: scenarios::StormArgs,
        /// Output file for the result, as JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// Random history page reads over REST (Confab only).
    History {
        #[command(flatten)]
        target: target::Target,
        #[command(flatten)]
        args: scenarios::HistoryArgs,
        /// Output file for the result, as JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes benchmark accounts, rooms and history into a stopped Confab's database.
    Seed {
        #[command(flatten)]
        args: seed::SeedArgs,
    },
    /// Runs the bare WebSocket broadcast reference server.
    ReferenceServer {
        /// Loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1:3900")]
        listen: std::net::SocketAddr,
    },
    /// Writes docs/benchmarks.md and its plots from a directory of results.
    Report {
        #[command(flatten)]
        args: report::ReportArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread: the generator must stay on the core it is pinned to.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Fanout { target, args, out } => {
            write(&out, &scenarios::fanout(&target, &args).await?)
        }
        Command::IrcFanout { target, args, out } => {
            write(&out, &scenarios::irc_fanout(&target, &args).await?)
        }
        Command::Rooms { target, args, out } => {
            let manifest = seed::read_manifest(&args.manifest)?;
            write(&out, &scenarios::rooms(&target, &args, &manifest).await?)
        }
        Command::Idle { target, args, out } => {
            let manifest = read_optional_manifest(args.manifest.as_deref())?;
            write(
                &out,
                &scenarios::idle(&target, &args, manifest.as_ref()).await?,
            )
        }
        Command::HoldWorker { target, args } => {
            let manifest = read_optional_manifest(args.manifest.as_deref())?;
            workers::serve(&target, &args, manifest.as_ref()).await
        }
        Command::Storm { target, args, out } => {
            let manifest = read_optional_manifest(args.manifest.as_deref())?;
            write(
                &out,
                &scenarios::storm(&target, &args, manifest.as_ref()).await?,
            )
        }
        Command::History { target, args, out } => {
            let manifest = seed::read_manifest(&args.manifest)?;
            write(&out, &scenarios::history(&target, &args, &manifest).await?)
        }
        Command::Seed { args } => {
            let manifest = seed::run(&args).await?;
            eprintln!(
                "seeded {} users in {} rooms and {} history messages",
                manifest.tokens.len(),
                manifest.rooms.len(),
                manifest.history_messages
            );
            Ok(())
        }
        Command::ReferenceServer { listen } => {
            anyhow::ensure!(
                listen.ip().is_loopback(),
                "--listen must be a loopback address"
            );
            reference::serve(listen).await
        }
        Command::Report { args } => report::run(&args),
    }
}

/// Reads the manifest at `path`, if one was given.
fn read_optional_manifest(path: Option<&Path>) -> anyhow::Result<Option<seed::Manifest>> {
    path.map(seed::read_manifest).transpose()
}

fn write<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    seed::write_json(path, value)
}
