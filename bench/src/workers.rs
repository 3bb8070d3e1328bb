//! Generator processes that hold a share of the idle connections.
//!
//! Every connection costs the generator one file descriptor, and a process may not open
//! more than its `RLIMIT_NOFILE`. When an idle level needs more connections than that, the
//! generator starts copies of itself with the hidden `hold-worker` command, each holding
//! one contiguous share, and talks to them over their standard input and output:
//!
//! 1. the worker connects its share and writes one JSON line, [`Connected`];
//! 2. it replies to pings until a stop request (any line, or end of file) arrives on its
//!    standard input;
//! 3. it closes every connection and writes one more JSON line, [`Closed`].
//!
//! A worker inherits the parent's CPU affinity, so the generator stays on its core.

use crate::scenarios::{ERRORS_KEPT, connect_many, hold};
use crate::seed::Manifest;
use crate::target::{ServerKind, Target};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Descriptors a generator process keeps for itself: standard streams, the runtime's
/// epoll, wake-up and signal descriptors, and a file it reads such as the manifest. A
/// margin, not a count. A parent also keeps two pipes open per worker.
const RESERVED_FILES: usize = 32;

/// Maximum wait for a worker's reply to the stop request.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Returns how many connections one generator process can hold: its open-file limit
/// less the descriptors it keeps for itself.
pub fn connections_per_process() -> anyhow::Result<usize> {
    Ok(open_file_limit()?.saturating_sub(RESERVED_FILES).max(1))
}

/// Returns this process's soft `RLIMIT_NOFILE`, which its workers inherit.
fn open_file_limit() -> anyhow::Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live, writable value.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading RLIMIT_NOFILE");
    }
    Ok(usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

/// Splits connections `0..count` into contiguous shares of at most `per_process` each,
/// as (first index, length) pairs, sized as evenly as the count allows.
pub fn shares(count: usize, per_process: usize) -> Vec<(usize, usize)> {
    if count == 0 {
        return Vec::new();
    }
    let processes = count.div_ceil(per_process.max(1));
    let (base, extra) = (count / processes, count % processes);
    let mut first = 0;
    (0..processes)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let share = (first, len);
            first += len;
            share
        })
        .collect()
}

/// The first line a worker writes: its share is connected, or as far as it got.
#[derive(Debug, Serialize, Deserialize)]
pub struct Connected {
    pub connected: usize,
    pub errors: Vec<String>,
}

/// The last line a worker writes: how many of its connections were still open when
/// the stop request arrived.
#[derive(Debug, Serialize, Deserialize)]
pub struct Closed {
    pub still_open: usize,
}

/// Settings of the `hold-worker` command; the parent fills them in.
#[derive(Clone, Debug, clap::Args)]
pub struct HoldArgs {
    /// Index of the first connection of this share: its token and source address.
    #[arg(long)]
    pub first: usize,
    /// Connections in this share.
    #[arg(long)]
    pub count: usize,
    /// Handshakes in flight at once.
    #[arg(long)]
    pub parallel: usize,
    /// Manifest with tokens, for Confab.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// Runs one worker: connects its share, holds it until the stop request, then reports.
pub async fn serve(
    target: &Target,
    args: &HoldArgs,
    manifest: Option<&Manifest>,
) -> anyhow::Result<()> {
    let range = args.first..args.first + args.count;
    let (conns, errors) = connect_many(target, range, args.parallel, manifest).await?;
    let mut stdout = tokio::io::stdout();
    write_line(
        &mut stdout,
        &Connected {
            connected: conns.len(),
            errors,
        },
    )
    .await?;

    let (stop, _) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::task::spawn_local(hold(ws, stop.subscribe())))
        .collect();
    // Any line or the end of the parent's pipe means stop.
    let mut request = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut request)
        .await
        .context("reading the stop request")?;
    let _ = stop.send(true);
    let mut still_open = 0;
    for task in tasks {
        if task.await.unwrap_or(false) {
            still_open += 1;
        }
    }
    write_line(&mut stdout, &Closed { still_open }).await
}

async fn write_line<T: Serialize>(out: &mut tokio::io::Stdout, value: &T) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}

/// One running worker process and its pipes.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn reply<T: for<'de> Deserialize<'de>>(&mut self) -> anyhow::Result<T> {
        let line = self
            .replies
            .next_line()
            .await
            .context("reading a worker's reply")?;
        let Some(line) = line else {
            let status = self.child.wait().await?;
            bail!("a generator worker exited with {status} before replying");
        };
        serde_json::from_str(&line).with_context(|| format!("invalid worker reply {line:?}"))
    }
}

/// Worker processes that together hold one idle level.
pub struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    /// Starts one worker per share; each begins connecting at once.
    pub fn spawn(
        target: &Target,
        shares: &[(usize, usize)],
        parallel: usize,
        manifest: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let needed = RESERVED_FILES + 2 * shares.len();
        let allowed = open_file_limit()?;
        if needed > allowed {
            bail!(
                "{} worker processes need {needed} open files in the parent, and its limit is {allowed}: raise it with ulimit -n",
                shares.len()
            );
        }
        let exe = std::env::current_exe().context("finding the generator's own binary")?;
        // The handshakes in flight stay what one process would have, split among workers.
        let parallel = parallel.div_ceil(shares.len().max(1)).max(1);
        let mut workers = Vec::with_capacity(shares.len());
        for &(first, count) in shares {
            let mut command = Command::new(&exe);
            command
                .arg("hold-worker")
                .args(["--addr", &target.addr.to_string()])
                .args(["--kind", kind_name(target.kind)])
                .args(["--sources", &target.sources.to_string()])
                .args(["--first", &first.to_string()])
                .args(["--count", &count.to_string()])
                .args(["--parallel", &parallel.to_string()]);
            if let Some(path) = manifest {
                command.arg("--manifest").arg(path);
            }
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", exe.display()))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().context("a worker without stdout")?;
            workers.push(Worker {
                child,
                stdin,
                replies: BufReader::new(stdout).lines(),
            });
        }
        Ok(Self { workers })
    }

    /// Waits until every worker has connected its share; returns the connections made
    /// and the first few errors.
    pub async fn connected(&mut self) -> anyhow::Result<(usize, Vec<String>)> {
        let mut connected = 0;
        let mut errors = Vec::new();
        for worker in &mut self.workers {
            let reply: Connected = worker.reply().await?;
            connected += reply.connected;
            let room = ERRORS_KEPT.saturating_sub(errors.len());
            errors.extend(reply.errors.into_iter().take(room));
        }
        Ok((connected, errors))
    }

    /// Tells every worker to close its connections; returns how many were still open,
    /// once all workers have exited.
    pub async fn stop(mut self) -> anyhow::Result<usize> {
        for worker in &mut self.workers {
            if let Some(mut stdin) = worker.stdin.take() {
                stdin.write_all(b"stop\n").await?;
            }
        }
        let mut still_open = 0;
        for worker in &mut self.workers {
            let reply: Closed = tokio::time::timeout(STOP_TIMEOUT, worker.reply())
                .await
                .context("a generator worker did not reply to stop")??;
            still_open += reply.still_open;
            let status = worker.child.wait().await?;
            anyhow::ensure!(status.success(), "a generator worker exited with {status}");
        }
        Ok(still_open)
    }
}

/// Returns the `--kind` value clap parses back into `kind`.
fn kind_name(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Confab => "confab",
        ServerKind::Node => "node",
        ServerKind::FlaskThreading => "flask-threading",
        ServerKind::FlaskGevent => "flask-gevent",
        ServerKind::Reference => "reference",
        ServerKind::Ngircd => "ngircd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn shares_cover_every_connection_once() {
        let split = shares(19_500, 9_000);
        assert_eq!(split, vec![(0, 6_500), (6_500, 6_500), (13_000, 6_500)]);
        let split = shares(10, 4);
        assert_eq!(split, vec![(0, 4), (4, 3), (7, 3)]);
    }

    #[test]
    fn shares_of_a_small_count() {
        assert_eq!(shares(5, 100), vec![(0, 5)]);
        assert_eq!(shares(0, 100), Vec::<(usize, usize)>::new());
        assert_eq!(shares(3, 0), vec![(0, 1), (1, 1), (2, 1)]);
    }

    #[test]
    fn kind_names_parse_back() {
        for kind in ServerKind::value_variants() {
            let parsed = ServerKind::from_str(kind_name(*kind), false);
            assert_eq!(parsed, Ok(*kind));
        }
    }

    #[test]
    fn connections_per_process_below_the_limit() {
        let per_process = connections_per_process().unwrap();
        let limit = open_file_limit().unwrap();
        assert!(per_process >= 1);
        assert!(per_process < limit.max(2));
    }
}
