//! Open-loop message load over many connections on one thread: the fan-out and
//! many-rooms scenarios.
//!
//! Every connection is a task on a `LocalSet`, so the accounting is shared through
//! `Rc<RefCell<…>>` without locks. Senders wake every millisecond and send the messages
//! their rate owes since the step began, stamping each with the send time; every
//! connection parses the probes it receives into the step's [`Tracker`].

use crate::accounting::{Summary, Tracker};
use crate::irc::{self, IrcConn, Registration};
use crate::procstat;
use crate::sio::{self, ConnectOptions, Probe};
use crate::target::Target;
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Most messages one sender sends in one wake-up, so a stalled sender cannot burst.
const MAX_BATCH: u64 = 2_000;

/// Framing of a sender's messages.
#[derive(Clone, Debug)]
pub enum Framing {
    /// `42["message","b..."]`, received as the plain `message` event.
    Plain,
    /// Confab's `42["message:send",{"room_id":R,"body":"b..."}]`, received as `message:new`.
    Native { room_id: i64 },
}

/// Protocol and handshake settings of one member's connection.
#[derive(Clone, Debug)]
pub enum Connect {
    /// A Socket.IO client, whose messages use the member's [`Framing`].
    SocketIo(ConnectOptions),
    /// An IRC client that registers and joins one channel, where it sends PRIVMSG.
    Irc(Registration),
}

/// An open connection of either protocol.
enum Conn {
    SocketIo(sio::Ws),
    Irc(IrcConn, String),
}

/// One connection of a load run.
#[derive(Clone, Debug)]
pub struct Member {
    pub connect: Connect,
    /// Sender index and the number of connections each of its messages should reach.
    pub sends: Option<(u32, u64, Framing)>,
}

/// Returns where sender `sender` of `senders` sends within each interval between its
/// messages, as a fraction of the interval. Spreading the senders evenly makes their
/// messages reach the server one after another. Sent in the same instant, they would
/// measure how fast the server empties a burst of one message per sender.
fn phase(sender: u32, senders: usize) -> f64 {
    f64::from(sender) / senders.max(1) as f64
}

/// Messages a sender at `phase` owes `elapsed` seconds into a step at `rate` messages
/// a second: its first goes out `phase` intervals after the step starts, and one more
/// after each further interval.
fn owed(elapsed: f64, rate: f64, phase: f64) -> u64 {
    let due = elapsed * rate - phase;
    if due < 0.0 { 0 } else { due as u64 + 1 }
}

/// State shared by the driver and every connection task.
struct Shared {
    step: Cell<u32>,
    sending: Cell<bool>,
    rate_per_sender: Cell<f64>,
    step_started: Cell<Instant>,
    /// Senders in the load, which spread their messages over each interval.
    senders: usize,
    tracker: RefCell<Tracker>,
    /// Messages the senders owed but had not sent when the step ended.
    behind: Cell<u64>,
    /// Messages actually sent in the step.
    sent: Cell<u64>,
    /// Connections that ended before the run did, with the first few reasons.
    dropped: Cell<u64>,
    drop_reasons: RefCell<Vec<String>>,
    native: bool,
}

impl Shared {
    /// Returns the current step and how many messages a sender owes in it now, given
    /// the step it last saw and what it has sent in that step, which it resets when a
    /// new step has begun.
    fn batch_owed(&self, sender: u32, step_seen: &mut u32, sent_in_step: &mut u64) -> (u32, u64) {
        let step = self.step.get();
        if step != *step_seen {
            *step_seen = step;
            *sent_in_step = 0;
        }
        let elapsed = self.step_started.get().elapsed().as_secs_f64();
        let owed = owed(
            elapsed,
            self.rate_per_sender.get(),
            phase(sender, self.senders),
        );
        (step, owed.saturating_sub(*sent_in_step).min(MAX_BATCH))
    }

    /// Counts a connection that ended before the run did, keeping the first reasons.
    fn record_drop(&self, index: usize, reason: String) {
        self.dropped.set(self.dropped.get() + 1);
        let mut reasons = self.drop_reasons.borrow_mut();
        if reasons.len() < 5 {
            reasons.push(format!("member {index}: {reason}"));
        }
    }
}

/// Result of one step at one offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Deliveries per second the senders were asked to cause.
    pub offered_per_s: f64,
    /// Distinct deliveries per second over the sending time.
    pub delivered_per_s: f64,
    pub messages_sent: u64,
    /// Messages the generator could not send on time.
    pub generator_behind: u64,
    /// Whether the generator sent what the rate asked for, give or take rounding: a step
    /// it could not keep up with measures the generator, not the server.
    pub generator_kept_up: bool,
    #[serde(flatten)]
    pub summary: Summary,
    pub server_cpu_us: u64,
    pub server_cpu_us_per_delivery: f64,
    pub server_rss_kib: u64,
    /// CPU time of the generator itself over the step, all of its threads: near a full
    /// second per second means the generator, not the server, limits the step.
    pub generator_cpu_us: u64,
    pub generator_cpu_us_per_delivery: f64,
    pub connections_dropped: u64,
    pub passed: bool,
}

/// Pass rule and timing of the steps.
#[derive(Clone, Debug)]
pub struct StepRule {
    pub step_secs: f64,
    pub drain_secs: f64,
    pub p99_limit_us: u64,
}

/// Connected members ready to run steps.
pub struct Load {
    shared: Rc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    receivers: usize,
    senders: usize,
    fanout_total: u64,
    pid: Option<u32>,
    pub connect_secs: f64,
}

impl Load {
    /// Connects every member, at most `parallel` handshakes at a time. Must run inside a
    /// `LocalSet`.
    pub async fn connect(
        target: &Target,
        members: Vec<Member>,
        parallel: usize,
        native: bool,
    ) -> anyhow::Result<Self> {
        let senders = members.iter().filter(|m| m.sends.is_some()).count();
        let fanout_total = members
            .iter()
            .filter_map(|m| m.sends.as_ref().map(|s| s.1))
            .sum();
        let shared = Rc::new(Shared {
            step: Cell::new(0),
            sending: Cell::new(false),
            rate_per_sender: Cell::new(0.0),
            step_started: Cell::new(Instant::now()),
            senders,
            tracker: RefCell::new(Tracker::new(members.len(), senders.max(1))),
            behind: Cell::new(0),
            sent: Cell::new(0),
            dropped: Cell::new(0),
            drop_reasons: RefCell::new(Vec::new()),
            native,
        });
        let (stop, _) = watch::channel(false);
        let receivers = members.len();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(members.len());
        let mut index = 0;
        for chunk in members.chunks(parallel.max(1)) {
            let handshakes = chunk.iter().enumerate().map(|(i, m)| {
                let source = sio::source_addr(index + i, target.sources);
                let connect = m.connect.clone();
                async move {
                    match connect {
                        Connect::SocketIo(options) => sio::connect(target.addr, source, &options)
                            .await
                            .map(Conn::SocketIo),
                        Connect::Irc(registration) => {
                            irc::connect(target.addr, source, &registration)
                                .await
                                .map(|conn| Conn::Irc(conn, registration.channel))
                        }
                    }
                }
            });
            let connected = futures_util::future::join_all(handshakes).await;
            for (m, result) in chunk.iter().zip(connected) {
                let conn = result.with_context(|| format!("connecting member {index}"))?;
                let task = match conn {
                    Conn::SocketIo(ws) => tokio::task::spawn_local(run_member(
                        index,
                        ws,
                        m.sends.clone(),
                        shared.clone(),
                        stop.subscribe(),
                    )),
                    Conn::Irc(conn, channel) => tokio::task::spawn_local(run_irc_member(
                        index,
                        conn,
                        channel,
                        m.sends.as_ref().map(|s| (s.0, s.1)),
                        shared.clone(),
                        stop.subscribe(),
                    )),
                };
                tasks.push(task);
                index += 1;
            }
        }
        Ok(Self {
            shared,
            stop,
            tasks,
            receivers,
            senders,
            fanout_total,
            pid: target.pid,
            connect_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs one step offering `deliveries_per_s` and returns its figures.
    pub async fn step(&self, deliveries_per_s: f64, rule: &StepRule) -> anyhow::Result<Step> {
        let s = &self.shared;
        s.step.set(s.step.get() + 1);
        *s.tracker.borrow_mut() = Tracker::new(self.receivers, self.senders.max(1));
        s.behind.set(0);
        s.sent.set(0);
        let dropped_before = s.dropped.get();
        s.rate_per_sender
            .set(deliveries_per_s / self.fanout_total.max(1) as f64);

        let before = self.sample()?;
        let generator_before = procstat::sample(std::process::id())?;
        let started = Instant::now();
        s.step_started.set(started);
        s.sending.set(true);
        tokio::time::sleep(Duration::from_secs_f64(rule.step_secs)).await;
        s.sending.set(false);
        let sending_secs = started.elapsed().as_secs_f64();
        // Count what the senders still owed as generator shortfall.
        let owed: u64 = (0..self.senders as u32)
            .map(|sender| {
                owed(
                    rule.step_secs,
                    s.rate_per_sender.get(),
                    phase(sender, self.senders),
                )
            })
            .sum();
        s.behind.set(owed.saturating_sub(s.sent.get()));

        // Wait for what is still in flight, bounded by the drain time.
        let drain_until = Instant::now() + Duration::from_secs_f64(rule.drain_secs);
        while Instant::now() < drain_until {
            let done = {
                let t = s.tracker.borrow();
                t.received() >= t.expected()
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = self.sample()?;
        let generator_after = procstat::sample(std::process::id())?;

        let summary = s.tracker.borrow().summary();
        let cpu_us = after.cpu_us.saturating_sub(before.cpu_us);
        let generator_cpu_us = generator_after
            .cpu_us
            .saturating_sub(generator_before.cpu_us);
        let per_delivery = |us: u64| {
            if summary.received > 0 {
                us as f64 / summary.received as f64
            } else {
                0.0
            }
        };
        let generator_behind = s.behind.get();
        let connections_dropped = s.dropped.get() - dropped_before;
        // Each sender may end a step one message short of its rate, by rounding.
        let generator_kept_up = generator_behind <= self.senders as u64 + s.sent.get() / 100;
        // A step in which nothing was sent shows nothing about the server.
        let passed = summary.expected > 0
            && summary.lost == 0
            && summary.duplicated == 0
            && summary.p99_us < rule.p99_limit_us
            && connections_dropped == 0
            && generator_kept_up;
        Ok(Step {
            offered_per_s: deliveries_per_s,
            delivered_per_s: summary.received as f64 / sending_secs,
            messages_sent: s.sent.get(),
            generator_behind,
            generator_kept_up,
            server_cpu_us: cpu_us,
            server_cpu_us_per_delivery: per_delivery(cpu_us),
            server_rss_kib: after.rss_kib,
            generator_cpu_us,
            generator_cpu_us_per_delivery: per_delivery(generator_cpu_us),
            connections_dropped,
            passed,
            summary,
        })
    }

    fn sample(&self) -> anyhow::Result<procstat::Sample> {
        match self.pid {
            Some(pid) => procstat::sample(pid),
            None => Ok(procstat::Sample::default()),
        }
    }

    /// Connections that ended early so far, and the first reasons.
    pub fn dropped(&self) -> (u64, Vec<String>) {
        (
            self.shared.dropped.get(),
            self.shared.drop_reasons.borrow().clone(),
        )
    }

    /// Closes every connection and waits for the tasks, at most five seconds.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        let _ = tokio::time::timeout(Duration::from_secs(5), all).await;
    }
}

async fn run_member(
    index: usize,
    mut ws: sio::Ws,
    sends: Option<(u32, u64, Framing)>,
    shared: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut step_seen = 0;
    let mut sent_in_step = 0u64;

    let reason = loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break None,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if text == "2" {
                        if let Err(err) = ws.send(Message::text("3")).await {
                            break Some(format!("pong failed: {err}"));
                        }
                    } else if let Some(p) = Probe::find(text, shared.native)
                        && p.step == shared.step.get()
                    {
                        let latency = sio::now_us().saturating_sub(p.sent_us);
                        shared
                            .tracker
                            .borrow_mut()
                            .record(index, p.sender as usize, p.seq, latency);
                    }
                }
                Some(Ok(Message::Close(frame))) => break Some(format!("closed by server: {frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(err)) => break Some(format!("read failed: {err}")),
                None => break Some("connection ended".to_owned()),
            },
            _ = tick.tick(), if sends.is_some() => {
                let Some((sender, fanout, framing)) = &sends else { continue };
                if !shared.sending.get() {
                    continue;
                }
                let (step, batch) = shared.batch_owed(*sender, &mut step_seen, &mut sent_in_step);
                if batch == 0 {
                    continue;
                }
                let mut failed = None;
                for _ in 0..batch {
                    let probe = Probe { step, sender: *sender, seq: sent_in_step, sent_us: sio::now_us() };
                    let frame = match framing {
                        Framing::Plain => sio::message_frame(&probe.body()),
                        Framing::Native { room_id } => format!(
                            "42[\"message:send\",{{\"room_id\":{room_id},\"body\":\"{}\"}}]",
                            probe.body()
                        ),
                    };
                    if let Err(err) = ws.feed(Message::text(frame)).await {
                        failed = Some(format!("send failed: {err}"));
                        break;
                    }
                    shared.tracker.borrow_mut().sent(*fanout);
                    shared.sent.set(shared.sent.get() + 1);
                    sent_in_step += 1;
                }
                if failed.is_none() && let Err(err) = ws.flush().await {
                    failed = Some(format!("flush failed: {err}"));
                }
                if failed.is_some() {
                    break failed;
                }
            }
        }
    };

    if let Some(reason) = reason {
        shared.record_drop(index, reason);
    }
    let _ = ws.close(None).await;
}

async fn run_irc_member(
    index: usize,
    mut conn: IrcConn,
    channel: String,
    sends: Option<(u32, u64)>,
    shared: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut step_seen = 0;
    let mut sent_in_step = 0u64;
    let mut batch_text = String::new();

    let reason = loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break None,
            // `Lines::next_line` is cancel safe, so a tick cannot lose part of a line.
            line = conn.lines.next_line() => match line {
                Ok(Some(text)) => {
                    let Some(line) = irc::Line::parse(&text) else { continue };
                    if let Some(pong) = irc::pong_for(&line) {
                        if let Err(err) = conn.writer.write_all(pong.as_bytes()).await {
                            break Some(format!("pong failed: {err}"));
                        }
                    } else if line.command == "ERROR" {
                        break Some(format!("closed by server: {text}"));
                    } else if let Some(p) = line.privmsg_text(&channel).and_then(Probe::parse)
                        && p.step == shared.step.get()
                    {
                        let latency = sio::now_us().saturating_sub(p.sent_us);
                        shared
                            .tracker
                            .borrow_mut()
                            .record(index, p.sender as usize, p.seq, latency);
                    }
                }
                Ok(None) => break Some("connection ended".to_owned()),
                Err(err) => break Some(format!("read failed: {err}")),
            },
            _ = tick.tick(), if sends.is_some() => {
                let Some((sender, fanout)) = sends else { continue };
                if !shared.sending.get() {
                    continue;
                }
                let (step, batch) = shared.batch_owed(sender, &mut step_seen, &mut sent_in_step);
                if batch == 0 {
                    continue;
                }
                batch_text.clear();
                for seq in sent_in_step..sent_in_step + batch {
                    let probe = Probe { step, sender, seq, sent_us: sio::now_us() };
                    batch_text.push_str(&irc::privmsg_line(&channel, &probe.body()));
                }
                if let Err(err) = conn.writer.write_all(batch_text.as_bytes()).await {
                    break Some(format!("send failed: {err}"));
                }
                let mut tracker = shared.tracker.borrow_mut();
                for _ in 0..batch {
                    tracker.sent(fanout);
                }
                shared.sent.set(shared.sent.get() + batch);
                sent_in_step += batch;
            }
        }
    };

    if let Some(reason) = reason {
        shared.record_drop(index, reason);
    }
    let _ = conn.writer.write_all(b"QUIT\r\n").await;
    let _ = conn.writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_spreads_senders_over_interval() {
        // Two messages a second from each of four senders: sender 0 sends at 0 s and
        // 0.5 s, sender 2 a quarter of a second later each time.
        assert_eq!(owed(0.0, 2.0, phase(0, 4)), 1);
        assert_eq!(owed(0.2, 2.0, phase(2, 4)), 0);
        assert_eq!(owed(0.25, 2.0, phase(2, 4)), 1);
        assert_eq!(owed(0.74, 2.0, phase(2, 4)), 1);
        assert_eq!(owed(0.75, 2.0, phase(2, 4)), 2);
        assert_eq!(owed(0.5, 2.0, phase(0, 4)), 2);
    }

    #[test]
    fn owed_at_slow_rate_matches_offer() {
        // Ten senders at a quarter of a message a second for 5 s offer 12.5 messages.
        // Starting all ten at once would owe 20.
        let total: u64 = (0..10).map(|s| owed(5.0, 0.25, phase(s, 10))).sum();
        assert_eq!(total, 13);
    }
}
