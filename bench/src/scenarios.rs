//! The benchmark scenarios. Each returns a serialisable result; `main` writes it as JSON.

use crate::accounting::median_by;
use crate::irc::Registration;
use crate::load::{Connect, Framing, Load, Member, Step, StepRule};
use crate::procstat;
use crate::seed::Manifest;
use crate::sio;
use crate::target::{ServerKind, Target};
use crate::workers;
use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Settings of the fan-out search.
#[derive(Clone, Debug, clap::Args)]
pub struct FanoutArgs {
    /// Connections in the room, senders included.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Connections that send; each also receives.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// First offered rate, in deliveries per second; doubled until a step fails.
    #[arg(long, default_value_t = 10_000.0)]
    pub start_rate: f64,
    /// Highest rate tried, in deliveries per second.
    #[arg(long, default_value_t = 2_000_000.0)]
    pub max_rate: f64,
    /// Bisection steps between the last passing and the first failing rate.
    #[arg(long, default_value_t = 4)]
    pub bisect: u32,
    /// Rate at which server CPU per delivery is compared, in deliveries per second.
    #[arg(long, default_value_t = 20_000.0)]
    pub cpu_rate: f64,
    /// Times the comparison step is run. The run with the median CPU per delivery is
    /// the one reported, and every run is kept for its spread.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub cpu_runs: u32,
    /// Seconds of sending per step.
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Maximum seconds to wait for deliveries still in flight after a step.
    #[arg(long, default_value_t = 3.0)]
    pub drain_secs: f64,
    /// A step passes when p99 latency stays under this, with nothing lost.
    #[arg(long, default_value_t = 100)]
    pub p99_limit_ms: u64,
    /// Handshakes in flight at once while the members connect.
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// Seconds to wait after connecting, for join and presence events to settle.
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
}

impl FanoutArgs {
    fn rule(&self) -> StepRule {
        StepRule {
            step_secs: self.step_secs,
            drain_secs: self.drain_secs,
            p99_limit_us: self.p99_limit_ms * 1000,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FanoutResult {
    pub scenario: &'static str,
    pub server: ServerKind,
    pub members: usize,
    pub senders: usize,
    pub connect_secs: f64,
    /// The step at `cpu_rate`, for comparing CPU per delivery between servers: of the
    /// `cpu_runs` runs, the one with the median CPU per delivery.
    pub at_cpu_rate: Step,
    /// Every run of the comparison step, in the order run.
    pub cpu_runs: Vec<Step>,
    /// Every step of the search, in the order run.
    pub steps: Vec<Step>,
    /// Highest offered rate that passed, in deliveries per second; 0 if none did.
    pub max_passing_per_s: f64,
    /// Whether any failing step failed because the generator could not keep up.
    pub generator_saturated: bool,
    pub connections_dropped: u64,
    pub drop_reasons: Vec<String>,
}

/// Fan-out in one room: every member receives every sender's messages.
pub async fn fanout(target: &Target, args: &FanoutArgs) -> anyhow::Result<FanoutResult> {
    anyhow::ensure!(
        args.senders >= 1 && args.senders <= args.members,
        "--senders must be between 1 and --members"
    );
    let fanout = args.members as u64;
    let members = (0..args.members)
        .map(|i| Member {
            connect: Connect::SocketIo(target.kind.anonymous()),
            sends: (i < args.senders).then_some((i as u32, fanout, Framing::Plain)),
        })
        .collect();
    let load = Load::connect(target, members, args.parallel, false).await?;
    search(target, args, load, "fanout").await
}

/// Settings of the IRC fan-out search.
#[derive(Clone, Debug, clap::Args)]
pub struct IrcFanoutArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Channel every member joins; on Confab it must exist, because guests may not
    /// create rooms unless the server allows it.
    #[arg(long, default_value = "#lobby")]
    pub channel: String,
}

/// Fan-out in one IRC channel: every member registers as a guest under its own
/// nickname and joins the channel, and the senders send PRIVMSG. Each message reaches
/// every member but its sender, because IRC returns a client's own messages only with
/// the echo-message capability, which the generator does not request.
pub async fn irc_fanout(target: &Target, args: &IrcFanoutArgs) -> anyhow::Result<FanoutResult> {
    let fanout_args = &args.fanout;
    anyhow::ensure!(
        fanout_args.senders >= 1 && fanout_args.senders < fanout_args.members,
        "--senders must be between 1 and --members - 1, because a sender does not receive its own messages"
    );
    anyhow::ensure!(
        args.channel.starts_with('#') && !args.channel.contains([' ', ',', '\r', '\n']),
        "--channel must be one channel name starting with '#', got {:?}",
        args.channel
    );
    // The prefix changes every millisecond, so nicknames do not collide with guests of
    // an earlier run that the server still holds. A nickname may not start with a
    // digit, and 13 characters fit ngIRCd's configured and Confab's default NICKLEN.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 1_000_000;
    let fanout = fanout_args.members as u64 - 1;
    let members = (0..fanout_args.members)
        .map(|i| Member {
            connect: Connect::Irc(Registration {
                nick: format!("b{run}x{i}"),
                channel: args.channel.clone(),
            }),
            sends: (i < fanout_args.senders).then_some((i as u32, fanout, Framing::Plain)),
        })
        .collect();
    let load = Load::connect(target, members, fanout_args.parallel, false).await?;
    search(target, fanout_args, load, "irc-fanout").await
}

/// Runs the fan-out search on connected members: a warm-up step, the step at the
/// comparison rate, rates doubled until a step fails, then bisection.
async fn search(
    target: &Target,
    args: &FanoutArgs,
    load: Load,
    scenario: &'static str,
) -> anyhow::Result<FanoutResult> {
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    let rule = args.rule();

    // A short warm-up step, not recorded, then the comparison step.
    load.step(
        args.cpu_rate.min(args.start_rate),
        &StepRule {
            step_secs: rule.step_secs.min(1.0),
            ..rule.clone()
        },
    )
    .await?;
    let mut cpu_runs = Vec::new();
    for _ in 0..args.cpu_runs {
        let step = load.step(args.cpu_rate, &rule).await?;
        eprintln!(
            "{scenario} {:?}: at {} /s: {:.2} us/delivery, {:?}",
            target.kind, args.cpu_rate, step.server_cpu_us_per_delivery, step.summary
        );
        cpu_runs.push(step);
    }
    let at_cpu_rate = median_by(&cpu_runs, |s| s.server_cpu_us_per_delivery).clone();

    let mut steps = Vec::new();
    let mut last_pass = 0.0;
    let mut first_fail = None;
    let mut rate = args.start_rate;
    while rate <= args.max_rate {
        let step = load.step(rate, &rule).await?;
        eprintln!(
            "{scenario} {:?}: offered {rate:.0}/s delivered {:.0}/s p99 {} us lost {} passed {}",
            target.kind, step.delivered_per_s, step.summary.p99_us, step.summary.lost, step.passed
        );
        let passed = step.passed;
        steps.push(step);
        if !passed {
            first_fail = Some(rate);
            break;
        }
        last_pass = rate;
        rate *= 2.0;
        // Let queues left by a heavy step empty before the next.
        tokio::time::sleep(Duration::from_secs_f64(args.drain_secs.min(1.0))).await;
    }
    if let Some(mut high) = first_fail {
        let mut low = last_pass;
        for _ in 0..args.bisect {
            tokio::time::sleep(Duration::from_secs_f64(args.drain_secs)).await;
            let mid = if low > 0.0 {
                (low + high) / 2.0
            } else {
                high / 2.0
            };
            let step = load.step(mid, &rule).await?;
            eprintln!(
                "{scenario} {:?}: bisect {mid:.0}/s p99 {} us lost {} passed {}",
                target.kind, step.summary.p99_us, step.summary.lost, step.passed
            );
            if step.passed {
                low = mid;
            } else {
                high = mid;
            }
            steps.push(step);
        }
        last_pass = low;
    }

    let generator_saturated = steps.iter().any(|s| !s.passed && !s.generator_kept_up);
    let (connections_dropped, drop_reasons) = load.dropped();
    let connect_secs = load.connect_secs;
    load.close().await;
    Ok(FanoutResult {
        scenario,
        server: target.kind,
        members: args.members,
        senders: args.senders,
        connect_secs,
        at_cpu_rate,
        cpu_runs,
        steps,
        max_passing_per_s: last_pass,
        generator_saturated,
        connections_dropped,
        drop_reasons,
    })
}

/// Settings of the many-rooms run.
#[derive(Clone, Debug, clap::Args)]
pub struct RoomsArgs {
    /// Manifest written by `confab-bench seed`.
    #[arg(long)]
    pub manifest: std::path::PathBuf,
    /// Users to connect, taken room by room from the manifest.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Offered rates to run, in deliveries per second.
    #[arg(long, value_delimiter = ',', default_value = "20000,50000,100000")]
    pub rates: Vec<f64>,
    /// Seconds each rate is offered.
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Seconds to wait after a step for deliveries still in flight.
    #[arg(long, default_value_t = 3.0)]
    pub drain_secs: f64,
    /// A step passes when p99 latency stays under this, with nothing lost.
    #[arg(long, default_value_t = 100)]
    pub p99_limit_ms: u64,
    /// Handshakes in flight at once while the users connect.
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
}

#[derive(Debug, Serialize)]
pub struct RoomsResult {
    pub scenario: &'static str,
    pub server: ServerKind,
    pub users: usize,
    pub rooms: usize,
    pub connect_secs: f64,
    pub steps: Vec<Step>,
    pub connections_dropped: u64,
    pub drop_reasons: Vec<String>,
}

/// Many small rooms: one member of each room sends, all members receive `message:new`.
pub async fn rooms(
    target: &Target,
    args: &RoomsArgs,
    manifest: &Manifest,
) -> anyhow::Result<RoomsResult> {
    if target.kind != ServerKind::Confab {
        bail!("the many-rooms scenario uses Confab's room events; the peers have no rooms");
    }
    let mut members = Vec::new();
    let mut room_count = 0;
    for room in &manifest.rooms {
        if members.len() + room.members.len() > args.users {
            break;
        }
        for (i, &user) in room.members.iter().enumerate() {
            let sends = (i == 0).then_some((
                room_count as u32,
                room.members.len() as u64,
                Framing::Native { room_id: room.id },
            ));
            members.push(Member {
                connect: Connect::SocketIo(target.kind.with_token(&manifest.tokens[user])),
                sends,
            });
        }
        room_count += 1;
    }
    anyhow::ensure!(
        !members.is_empty(),
        "the manifest has no room that fits --users"
    );

    let users = members.len();
    let load = Load::connect(target, members, args.parallel, true).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rule = StepRule {
        step_secs: args.step_secs,
        drain_secs: args.drain_secs,
        p99_limit_us: args.p99_limit_ms * 1000,
    };
    let mut steps = Vec::new();
    for &rate in &args.rates {
        let step = load.step(rate, &rule).await?;
        eprintln!(
            "rooms: offered {rate:.0}/s delivered {:.0}/s p99 {} us lost {} passed {}",
            step.delivered_per_s, step.summary.p99_us, step.summary.lost, step.passed
        );
        steps.push(step);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (connections_dropped, drop_reasons) = load.dropped();
    let connect_secs = load.connect_secs;
    load.close().await;
    Ok(RoomsResult {
        scenario: "rooms",
        server: target.kind,
        users,
        rooms: room_count,
        connect_secs,
        steps,
        connections_dropped,
        drop_reasons,
    })
}

/// Settings of the idle-connection run.
#[derive(Clone, Debug, clap::Args)]
pub struct IdleArgs {
    /// Connection counts to hold, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19500")]
    pub counts: Vec<usize>,
    /// Seconds to hold each count before checking that all are still open.
    #[arg(long, default_value_t = 10.0)]
    pub hold_secs: f64,
    /// Handshakes in flight at once while a level connects.
    #[arg(long, default_value_t = 100)]
    pub parallel: usize,
    /// Manifest with tokens, for Confab; without it Confab clients become guests.
    #[arg(long)]
    pub manifest: Option<std::path::PathBuf>,
    /// Maximum connections one generator process holds. A level above it is split among
    /// worker processes. The default is the open-file limit less a reserve.
    #[arg(long)]
    pub per_process: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct IdleLevel {
    pub connections: usize,
    /// Generator processes that held this level's connections.
    pub generator_processes: usize,
    pub connected: usize,
    pub still_open: usize,
    pub connect_secs: f64,
    /// Server RSS before the first level of the run.
    pub server_rss_baseline_kib: u64,
    pub server_rss_before_kib: u64,
    pub server_rss_after_kib: u64,
    /// RSS growth since the baseline, divided by the connections made.
    pub rss_per_connection_kib: f64,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct IdleResult {
    pub scenario: &'static str,
    pub server: ServerKind,
    pub levels: Vec<IdleLevel>,
}

/// Holds idle connections and measures the server's memory per connection.
pub async fn idle(
    target: &Target,
    args: &IdleArgs,
    manifest: Option<&Manifest>,
) -> anyhow::Result<IdleResult> {
    let mut levels = Vec::new();
    // Memory per connection is counted from the process's size before the first level:
    // a server keeps much of what an earlier level's connections freed, so the growth
    // during a later level alone would undercount what its connections need.
    let baseline = sample(target)?;
    let per_process = match args.per_process {
        Some(n) => n.max(1),
        None => workers::connections_per_process()?,
    };
    if let Some(m) = manifest
        && target.kind == ServerKind::Confab
    {
        let max_count = args.counts.iter().copied().max().unwrap_or(0);
        if m.tokens.len() < max_count {
            bail!(
                "the manifest has {} tokens, {max_count} needed",
                m.tokens.len()
            );
        }
    }
    for &count in &args.counts {
        let before = sample(target)?;
        let outcome = if count <= per_process {
            hold_in_process(target, count, args, manifest).await?
        } else {
            let shares = workers::shares(count, per_process);
            hold_in_workers(target, &shares, args).await?
        };
        let HeldLevel {
            processes,
            connected,
            connect_secs,
            after,
            still_open,
            errors,
        } = outcome;
        let level = IdleLevel {
            connections: count,
            generator_processes: processes,
            connected,
            still_open,
            connect_secs,
            server_rss_baseline_kib: baseline.rss_kib,
            server_rss_before_kib: before.rss_kib,
            server_rss_after_kib: after.rss_kib,
            rss_per_connection_kib: if connected > 0 {
                after.rss_kib.saturating_sub(baseline.rss_kib) as f64 / connected as f64
            } else {
                0.0
            },
            errors,
        };
        eprintln!(
            "idle {:?}: {count} wanted, {connected} connected by {processes} process(es) in {connect_secs:.1} s, {still_open} open after the hold, {:.1} KiB each",
            target.kind, level.rss_per_connection_kib
        );
        levels.push(level);
        // Let the server notice the closes before the next level measures its baseline.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Ok(IdleResult {
        scenario: "idle",
        server: target.kind,
        levels,
    })
}

/// Outcome of holding one idle level.
struct HeldLevel {
    processes: usize,
    connected: usize,
    connect_secs: f64,
    /// The server's sample at the end of the hold, with every connection open.
    after: procstat::Sample,
    still_open: usize,
    errors: Vec<String>,
}

/// Connects and holds `count` connections in this process.
async fn hold_in_process(
    target: &Target,
    count: usize,
    args: &IdleArgs,
    manifest: Option<&Manifest>,
) -> anyhow::Result<HeldLevel> {
    let started = Instant::now();
    let (conns, errors) = connect_many(target, 0..count, args.parallel, manifest).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = conns.len();

    // Hold the connections, replying to pings, then count those still open.
    let (stop, _) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::task::spawn_local(hold(ws, stop.subscribe())))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let after = sample(target)?;
    let _ = stop.send(true);
    let mut still_open = 0;
    for task in tasks {
        if task.await.unwrap_or(false) {
            still_open += 1;
        }
    }
    Ok(HeldLevel {
        processes: 1,
        connected,
        connect_secs,
        after,
        still_open,
        errors,
    })
}

/// Connects and holds one share of the connections in each worker process.
async fn hold_in_workers(
    target: &Target,
    shares: &[(usize, usize)],
    args: &IdleArgs,
) -> anyhow::Result<HeldLevel> {
    let started = Instant::now();
    let mut workers =
        workers::Workers::spawn(target, shares, args.parallel, args.manifest.as_deref())?;
    let (connected, errors) = workers.connected().await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let after = sample(target)?;
    let still_open = workers.stop().await?;
    Ok(HeldLevel {
        processes: shares.len(),
        connected,
        connect_secs,
        after,
        still_open,
        errors,
    })
}

/// Replies to pings until `stop` changes, then returns whether the connection was
/// still open.
pub(crate) async fn hold(mut ws: sio::Ws, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return true;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    if ws.send(Message::text("3")).await.is_err() {
                        return false;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Handshake errors a connection run keeps for its result; the rest are only counted.
pub(crate) const ERRORS_KEPT: usize = 5;

/// Failed handshakes after which a connection run stops trying.
const MAX_FAILED_HANDSHAKES: usize = 200;

/// Connects clients `indexes` (which pick their tokens and source addresses),
/// `parallel` handshakes at a time; returns the connections and the first few errors.
pub(crate) async fn connect_many(
    target: &Target,
    indexes: std::ops::Range<usize>,
    parallel: usize,
    manifest: Option<&Manifest>,
) -> anyhow::Result<(Vec<sio::Ws>, Vec<String>)> {
    if let Some(m) = manifest
        && target.kind == ServerKind::Confab
        && m.tokens.len() < indexes.end
    {
        bail!(
            "the manifest has {} tokens, {} needed",
            m.tokens.len(),
            indexes.end
        );
    }
    let count = indexes.len();
    let mut conns = Vec::with_capacity(count);
    let mut errors = Vec::new();
    let mut failed = 0;
    let indexes: Vec<usize> = indexes.collect();
    for chunk in indexes.chunks(parallel.max(1)) {
        let handshakes = chunk.iter().map(|&i| {
            let options = match manifest {
                Some(m) => target.kind.with_token(&m.tokens[i]),
                None => target.kind.anonymous(),
            };
            let source = sio::source_addr(i, target.sources);
            async move { sio::connect(target.addr, source, &options).await }
        });
        for result in futures_util::future::join_all(handshakes).await {
            match result {
                Ok(ws) => conns.push(ws),
                Err(err) => {
                    failed += 1;
                    if errors.len() < ERRORS_KEPT {
                        errors.push(format!("{err:#}"));
                    }
                }
            }
        }
        // A server that has stopped accepting would otherwise cost a handshake timeout
        // per remaining batch.
        if failed >= MAX_FAILED_HANDSHAKES && conns.len() + failed < count {
            errors.push(format!(
                "gave up after {failed} failed handshakes, {} not attempted",
                count - conns.len() - failed
            ));
            break;
        }
    }
    Ok((conns, errors))
}

fn sample(target: &Target) -> anyhow::Result<procstat::Sample> {
    match target.pid {
        Some(pid) => procstat::sample(pid),
        None => Ok(procstat::Sample::default()),
    }
}

/// Settings of the connect storm.
#[derive(Clone, Debug, clap::Args)]
pub struct StormArgs {
    /// Clients that connect at once.
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    /// Rounds of a connect storm followed by a reconnect storm. The round with the
    /// median connect rate is the one reported, and every round is kept.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub rounds: u32,
    /// Manifest with tokens, for Confab.
    #[arg(long)]
    pub manifest: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StormPhase {
    pub clients: usize,
    pub connected: usize,
    pub failed: usize,
    pub secs: f64,
    pub connections_per_s: f64,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StormRound {
    /// Every client starts its handshake at the same moment.
    pub connect: StormPhase,
    /// Every client drops its connection and connects again at once.
    pub reconnect: StormPhase,
}

#[derive(Debug, Serialize)]
pub struct StormResult {
    pub scenario: &'static str,
    pub server: ServerKind,
    /// The round with the median connect rate.
    #[serde(flatten)]
    pub median: StormRound,
    /// Every round, in the order run.
    pub rounds: Vec<StormRound>,
}

/// Connect storm, then reconnect storm, `rounds` times: all handshakes of a phase
/// start together, and every connection is closed before the next phase.
pub async fn storm(
    target: &Target,
    args: &StormArgs,
    manifest: Option<&Manifest>,
) -> anyhow::Result<StormResult> {
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let (connect, conns) = storm_phase(target, args.clients, manifest).await?;
        eprintln!(
            "storm {:?} round {round}: connect {:.0}/s, {} failed",
            target.kind, connect.connections_per_s, connect.failed
        );
        close_all(conns).await;
        let (reconnect, conns) = storm_phase(target, args.clients, manifest).await?;
        eprintln!(
            "storm {:?} round {round}: reconnect {:.0}/s, {} failed",
            target.kind, reconnect.connections_per_s, reconnect.failed
        );
        close_all(conns).await;
        rounds.push(StormRound { connect, reconnect });
        // Let the server finish closing the last phase's connections.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let median = median_by(&rounds, |r| r.connect.connections_per_s).clone();
    Ok(StormResult {
        scenario: "storm",
        server: target.kind,
        median,
        rounds,
    })
}

async fn close_all(conns: Vec<sio::Ws>) {
    for mut ws in conns {
        let _ = ws.close(None).await;
    }
}

async fn storm_phase(
    target: &Target,
    clients: usize,
    manifest: Option<&Manifest>,
) -> anyhow::Result<(StormPhase, Vec<sio::Ws>)> {
    let started = Instant::now();
    let (conns, errors) = connect_many(target, 0..clients, clients, manifest).await?;
    let secs = started.elapsed().as_secs_f64();
    let connected = conns.len();
    Ok((
        StormPhase {
            clients,
            connected,
            failed: clients - connected,
            secs,
            connections_per_s: connected as f64 / secs,
            errors,
        },
        conns,
    ))
}

/// Settings of the history read run.
#[derive(Clone, Debug, clap::Args)]
pub struct HistoryArgs {
    /// Manifest that `confab-bench seed` wrote: the history room and the tokens to read with.
    #[arg(long)]
    pub manifest: std::path::PathBuf,
    /// Page reads to time, one at a time.
    #[arg(long, default_value_t = 2000)]
    pub reads: usize,
    /// Messages per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Serialize)]
pub struct HistoryResult {
    pub scenario: &'static str,
    pub stored_messages: u64,
    pub reads: usize,
    pub limit: u32,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Random history pages over REST (`GET /api/v1/rooms/{id}/messages?before=S`).
pub async fn history(
    target: &Target,
    args: &HistoryArgs,
    manifest: &Manifest,
) -> anyhow::Result<HistoryResult> {
    use rand::Rng;
    if target.kind != ServerKind::Confab {
        bail!("the history scenario reads Confab's REST API; the peers store nothing");
    }
    anyhow::ensure!(
        manifest.history_messages > 0,
        "the manifest's history room is empty"
    );
    anyhow::ensure!(!manifest.tokens.is_empty(), "the manifest has no tokens");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut rng = rand::rng();
    let url = format!(
        "http://{}/api/v1/rooms/{}/messages",
        target.addr, manifest.history_room
    );
    for i in 0..args.reads {
        // Confab limits each user's reads (20 a second), so the reads rotate over users.
        let token = &manifest.tokens[i % manifest.tokens.len()];
        let before = rng.random_range(2..=manifest.history_messages + 1);
        let started = Instant::now();
        let response = client
            .get(&url)
            .bearer_auth(token)
            .query(&[
                ("before", before.to_string()),
                ("limit", args.limit.to_string()),
            ])
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed().as_micros() as u64;
        if !status.is_success() {
            bail!(
                "history read {i} returned {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        let count = page["messages"].as_array().map_or(0, Vec::len) as u64;
        let wanted = (before - 1).min(u64::from(args.limit));
        if count != wanted {
            bail!(
                "history read {i} before seq {before} returned {count} messages, expected {wanted}"
            );
        }
        latency.saturating_record(elapsed.max(1));
    }
    Ok(HistoryResult {
        scenario: "history",
        stored_messages: manifest.history_messages,
        reads: args.reads,
        limit: args.limit,
        p50_us: latency.value_at_quantile(0.5),
        p90_us: latency.value_at_quantile(0.9),
        p99_us: latency.value_at_quantile(0.99),
        max_us: latency.max(),
    })
}
