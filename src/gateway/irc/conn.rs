//! One IRC connection: the read loop, the socket writer, command dispatch through the
//! command table, and reply helpers.

use super::Shared;
use super::caps::{CapSet, Capability};
use super::commands::{self, CommandId};
use super::line::{self, Frame, LineReader, ParseError};
use super::numerics::*;
use super::sink::{ClientView, SendQueue};
use crate::core::error::ChatError;
use crate::core::i18n::{self, Lang, Notice};
use crate::hub::ConnId;
use crate::service::{ClientAddr, Session};
use governor::{Quota, RateLimiter};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Maximum time the writer keeps flushing queued lines, the final `ERROR` included,
/// once the connection is closing.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// Maximum time a labeled message to several targets waits for its echoes, which pass
/// through the hub (and the Redis bus on a cluster), before closing its batch.
const ECHO_WAIT: Duration = Duration::from_secs(2);

/// State of a SASL exchange (IRCv3 SASL 3.1).
pub(super) enum SaslState {
    Idle,
    /// PLAIN selected; the base64 chunks received so far.
    Plain(String),
}

/// A connection and everything known about its client.
pub(super) struct Connection {
    pub shared: Arc<Shared>,
    /// Per-process serial, used to hold a nickname before registration.
    pub serial: u64,
    pub peer: SocketAddr,
    pub queue: Arc<SendQueue>,
    /// Capabilities enabled before registration; copied into the view at registration.
    pub early_caps: CapSet,
    /// Set at registration: the identity and state the hub's sink shares.
    pub view: Option<Arc<ClientView>>,
    pub conn_id: Option<ConnId>,
    pub session: Option<Session>,
    /// The nickname requested before registration.
    pub nick: Option<String>,
    /// The USER parameters: user name and real name.
    pub user: Option<(String, String)>,
    pub pass: Option<String>,
    /// True between `CAP LS` or `CAP REQ` and `CAP END` before registration.
    pub cap_negotiating: bool,
    pub sasl: SaslState,
    /// Session opened by a successful SASL exchange, used at registration.
    pub sasl_session: Option<Session>,
    /// Replies to the labeled command being handled; `None` when no label applies.
    pending: Option<Vec<String>>,
    /// Label of the command being handled, when the client negotiated labeled-response.
    pub label: Option<String>,
    /// Set when the echo-message echo of the command carries its label, so the labeled
    /// response needs no `ACK`.
    pub label_in_echo: bool,
    /// Id of the `labeled-response` batch the command opened before its replies were
    /// gathered, because its echoes arrive through the hub.
    open_batch: Option<String>,
    /// Set after a successful `OPER` (user mode `+o`).
    pub operator: bool,
}

/// Runs one connection until the client quits, the connection fails or the server
/// shuts down.
pub(super) async fn serve<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, serial: u64)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (queue, rx) = SendQueue::new(shared.settings.sendq_bytes);
    let writer_task = tokio::spawn(write_loop(writer, rx, queue.clone()));

    let mut conn = Connection {
        shared,
        serial,
        peer,
        queue,
        early_caps: CapSet::default(),
        view: None,
        conn_id: None,
        session: None,
        nick: None,
        user: None,
        pass: None,
        cap_negotiating: false,
        sasl: SaslState::Idle,
        sasl_session: None,
        pending: None,
        label: None,
        label_in_echo: false,
        open_batch: None,
        operator: false,
    };
    conn.read_loop(reader).await;
    conn.finish().await;
    // The writer ends once the queue is closing and flushed, or after CLOSE_FLUSH.
    conn.queue.close("Connection closed");
    if tokio::time::timeout(CLOSE_FLUSH * 2, writer_task)
        .await
        .is_err()
    {
        tracing::warn!(%peer, "IRC writer did not stop in time");
    }
}

/// Writes queued lines to the socket until the connection closes, then flushes what is
/// left (the final `ERROR` line included) for at most [`CLOSE_FLUSH`].
async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    mut rx: mpsc::UnboundedReceiver<String>,
    queue: Arc<SendQueue>,
) {
    let mut writer = tokio::io::BufWriter::new(writer);
    // Set when closing interrupted a write, so the stream may end inside a line.
    let mut interrupted = false;
    loop {
        // Queued lines go out before the close is noticed, the final ERROR included.
        let line = tokio::select! {
            biased;
            line = rx.recv() => line,
            _ = queue.closing.cancelled() => break,
        };
        let Some(line) = line else { break };
        let written = tokio::select! {
            biased;
            result = write_line(&mut writer, &line, rx.is_empty()) => result,
            // A client that stopped reading blocks the write; closing must not wait on it.
            _ = queue.closing.cancelled() => {
                interrupted = true;
                break;
            }
        };
        queue.written(line.len());
        if written.is_err() {
            queue.close("Write error");
            return;
        }
    }

    // After a SendQ overflow only the final ERROR line is worth sending: the client is
    // not reading what is queued.
    let mut rest: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    if queue.close_reason() == Some(super::sink::SENDQ_EXCEEDED) {
        rest.drain(..rest.len().saturating_sub(1));
    }
    if interrupted && let Some(first) = rest.first_mut() {
        first.insert_str(0, "\r\n");
    }
    let flush = async {
        for line in rest {
            if writer.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
    };
    let _ = tokio::time::timeout(CLOSE_FLUSH, flush).await;
}

async fn write_line<W: AsyncWrite + Unpin>(
    writer: &mut tokio::io::BufWriter<W>,
    line: &str,
    flush: bool,
) -> std::io::Result<()> {
    writer.write_all(line.as_bytes()).await?;
    if flush {
        writer.flush().await?;
    }
    Ok(())
}

impl Connection {
    /// Reads and handles lines until the connection closes.
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, mut reader: R) {
        let settings = &self.shared.settings;
        let burst = NonZeroU32::new(settings.flood_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / settings.flood_rate))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let flood = RateLimiter::direct(quota);
        let registration_deadline = tokio::time::sleep(settings.registration_timeout);
        tokio::pin!(registration_deadline);
        let shutdown = self.shared.shutdown.clone();
        let closing = self.queue.closing.clone();

        let mut lines = LineReader::default();
        let mut buffer = vec![0u8; 4096];
        loop {
            // Handle every complete line before reading more.
            while let Some(frame) = lines.next_frame() {
                // Past the burst, lines wait for the steady rate instead of being refused,
                // so a fast paste slows down rather than disconnecting.
                tokio::select! {
                    _ = flood.until_ready() => {}
                    _ = closing.cancelled() => return,
                }
                self.handle_frame(frame).await;
                if closing.is_cancelled() {
                    return;
                }
            }

            // Wait for more input, a close, shutdown or the registration deadline.
            let registered = self.view.is_some();
            tokio::select! {
                read = reader.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => lines.extend(&buffer[..n]),
                },
                _ = closing.cancelled() => return,
                _ = shutdown.cancelled() => {
                    self.queue.close(i18n::notice(Notice::ServerShuttingDown, Lang::En));
                    return;
                }
                _ = &mut registration_deadline, if !registered => {
                    self.queue.close("Registration timed out");
                    return;
                }
            }
        }
    }

    /// Releases what the connection holds: its hub registration, its nickname and the
    /// login session it opened.
    async fn finish(&mut self) {
        if let Some(conn_id) = self.conn_id.take() {
            // Peers on IRC see this as the QUIT reason if no other connection of the
            // user remains.
            let reason = self.queue.close_reason().unwrap_or("Connection closed");
            let service = &self.shared.service;
            service
                .hub()
                .disconnect_with_reason(conn_id, Some(reason.to_owned()));
            if let Some(view) = &self.view {
                service.forget_away_if_offline(view.user_id);
            }
        }
        if self.operator
            && let Some(view) = &self.view
        {
            self.shared.operators.release(view.user_id);
        }
        if let Some(view) = &self.view {
            self.shared
                .nicks
                .release(&view.nick(), super::NickOwner::User(view.user_id));
        }
        if let Some(nick) = self.nick.take() {
            self.shared
                .nicks
                .release(&nick, super::NickOwner::Connection(self.serial));
        }
        // The session was opened for this connection alone and its token never left the
        // server, so it ends with the connection.
        for session in [self.session.take(), self.sasl_session.take()]
            .into_iter()
            .flatten()
        {
            if let Err(err) = self.shared.service.logout(&session).await {
                tracing::warn!(cause = %err, session_id = %session.id, "failed to end IRC session");
            }
        }
        tracing::debug!(peer = %self.peer, reason = self.queue.close_reason().unwrap_or("connection lost"), "IRC connection ended");
    }

    async fn handle_frame(&mut self, frame: Frame) {
        let bytes = match frame {
            Frame::TooLong => {
                self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
                return;
            }
            Frame::Line(bytes) => bytes,
        };
        match line::parse(&bytes) {
            Ok(message) => self.dispatch(message).await,
            Err(ParseError::TooLong) => {
                self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"])
            }
            Err(ParseError::InvalidUtf8 { command }) => {
                let line = self.server_line(
                    "FAIL",
                    &[
                        &command,
                        "INVALID_UTF8",
                        "Message rejected: it is not valid UTF-8",
                    ],
                );
                self.emit(line);
            }
            Err(ParseError::NoCommand) => {}
        }
    }

    /// Runs a command, gathering its replies for one labeled response when the client
    /// sent a label and negotiated labeled-response.
    async fn dispatch(&mut self, message: line::Message) {
        let label = message
            .tag("label")
            .filter(|l| !l.is_empty() && self.caps().has(Capability::LabeledResponse))
            .map(str::to_owned);
        if label.is_some() {
            self.pending = Some(Vec::new());
        }
        self.label = label.clone();
        self.label_in_echo = false;
        let quit = self.run_command(message).await;
        self.label = None;
        self.flush_labeled(label.as_deref());
        if let Some(reason) = quit {
            self.queue.close(&format!("Quit: {reason}"));
        }
    }

    /// Runs the checks of the command table, then the command's handler. Returns the
    /// quit reason when the command was QUIT.
    async fn run_command(&mut self, message: line::Message) -> Option<String> {
        let registered = self.view.is_some();
        let Some(spec) = commands::find(&message.command) else {
            if registered {
                self.numeric(ERR_UNKNOWNCOMMAND, &[&message.command, "Unknown command"]);
            } else {
                self.numeric(ERR_NOTREGISTERED, &["You have not registered"]);
            }
            return None;
        };
        if !registered && !spec.before_registration {
            self.numeric(ERR_NOTREGISTERED, &["You have not registered"]);
            return None;
        }
        if message.params.len() < spec.min_params {
            self.numeric(ERR_NEEDMOREPARAMS, &[spec.name, "Not enough parameters"]);
            return None;
        }
        if let (Some(max), Some(targets)) = (spec.max_targets, message.param(0))
            && targets.split(',').count() > max
        {
            self.numeric("407", &[targets, "Too many targets"]);
            return None;
        }

        let client_tags = super::tags::client_tags(&message);
        let params = message.params;
        match spec.id {
            CommandId::Authenticate => self.authenticate(&params[0]).await,
            CommandId::Away => self.away_command(params.first()).await,
            CommandId::Capability => self.cap(&params).await,
            CommandId::Chathistory => self.chathistory(&params).await,
            CommandId::Invite => self.invite(&params).await,
            CommandId::Kick => self.kick(&params).await,
            CommandId::List => self.list().await,
            CommandId::Who => self.who(params.first()).await,
            CommandId::Whois => self.whois(&params).await,
            CommandId::Join => self.join(&params[0]).await,
            CommandId::Lusers => self.lusers(),
            CommandId::Mode => self.mode(&params).await,
            CommandId::Motd => self.motd(),
            CommandId::Names => self.names_command(params.first()).await,
            CommandId::Nick => self.nick_command(params.first()).await,
            CommandId::Notice => self.privmsg(&params, client_tags, true).await,
            CommandId::Oper => self.oper(&params[0], &params[1]).await,
            CommandId::Part => self.part(&params[0], params.get(1)).await,
            CommandId::Pass => self.pass_command(&params[0]),
            CommandId::Ping => {
                let server = self.shared.settings.server_name.clone();
                let line = self.server_line("PONG", &[&server, &params[0]]);
                self.emit(line);
            }
            CommandId::Pong => {}
            CommandId::Privmsg => self.privmsg(&params, client_tags, false).await,
            CommandId::Quit => {
                let reason = params.first().map_or("Client quit", String::as_str);
                return Some(reason.to_owned());
            }
            CommandId::Tagmsg => self.tagmsg(&params[0], client_tags).await,
            CommandId::Topic => self.topic(&params).await,
            CommandId::User => self.user_command(&params).await,
        }
        None
    }

    /// Sends the replies gathered for a labeled command as IRCv3 labeled-response specifies:
    /// none as `ACK`, one with the label, several in a `labeled-response` batch.
    fn flush_labeled(&mut self, label: Option<&str>) {
        let Some(replies) = self.pending.take() else {
            return;
        };
        let server = &self.shared.settings.server_name;
        if let Some(id) = self.open_batch.take() {
            for reply in replies {
                self.queue.send(add_tag(&reply, &format!("batch={id}")));
            }
            self.queue.send(format!(":{server} BATCH -{id}\r\n"));
            return;
        }
        let Some(label) = label else {
            replies.into_iter().for_each(|l| self.queue.send(l));
            return;
        };
        let mut escaped = String::new();
        line::escape_tag_value(label, &mut escaped);
        match replies.len() {
            // The echo of the client's own message carries the label instead.
            0 if self.label_in_echo => {}
            0 => self
                .queue
                .send(format!("@label={escaped} :{server} ACK\r\n")),
            1 => {
                let reply = replies.into_iter().next().unwrap_or_default();
                self.queue
                    .send(add_tag(&reply, &format!("label={escaped}")));
            }
            _ if self.caps().has(Capability::Batch) => {
                let id = format!("L{}", self.serial);
                self.queue.send(format!(
                    "@label={escaped} :{server} BATCH +{id} labeled-response\r\n"
                ));
                for reply in replies {
                    self.queue.send(add_tag(&reply, &format!("batch={id}")));
                }
                self.queue.send(format!(":{server} BATCH -{id}\r\n"));
            }
            _ => replies.into_iter().for_each(|l| self.queue.send(l)),
        }
    }

    /// Opens the `labeled-response` batch of the labeled command being handled, when the
    /// client negotiated batch, and returns its id. Used by commands whose replies include
    /// echoes that arrive through the hub (IRCv3 labeled-response with echo-message).
    pub fn open_labeled_batch(&mut self) -> Option<String> {
        let label = self.label.clone()?;
        if !self.caps().has(Capability::Batch) {
            return None;
        }
        let id = format!("L{:x}", rand::random::<u64>());
        let mut escaped = String::new();
        line::escape_tag_value(&label, &mut escaped);
        let server = &self.shared.settings.server_name;
        self.queue.send(format!(
            "@label={escaped} :{server} BATCH +{id} labeled-response\r\n"
        ));
        self.open_batch = Some(id.clone());
        Some(id)
    }

    /// Waits until the echoes of `echo_ids` are queued, for at most [`ECHO_WAIT`], so
    /// they land inside the open batch. Echoes still missing then are sent without the
    /// batch tag.
    pub async fn wait_for_echoes(&mut self, echo_ids: &[String]) {
        let Some(view) = self.view.clone() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + ECHO_WAIT;
        loop {
            let notified = view.echo_sent.notified();
            tokio::pin!(notified);
            // Registered before the check, so an echo sent in between still wakes us.
            notified.as_mut().enable();
            if !echo_ids.iter().any(|id| view.awaits_echo(id)) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        tracing::warn!(peer = %self.peer, "echoes of a labeled message missed their batch");
        for id in echo_ids {
            view.take_echo_label(id);
        }
    }

    /// Returns the capabilities enabled for this client.
    pub fn caps(&self) -> &CapSet {
        self.view.as_ref().map_or(&self.early_caps, |v| &v.caps)
    }

    /// Returns the client's nickname, or `*` before one is known.
    pub fn current_nick(&self) -> String {
        match &self.view {
            Some(view) => view.nick(),
            None => self.nick.clone().unwrap_or_else(|| "*".to_owned()),
        }
    }

    /// Returns the client address for per-address limits.
    pub fn addr(&self) -> ClientAddr {
        ClientAddr(Some(self.peer.ip()))
    }

    /// Builds `:server COMMAND params` as a line.
    pub fn server_line(&self, command: &str, params: &[&str]) -> String {
        let mut out = format!(":{} {command}", self.shared.settings.server_name);
        line::push_params(&mut out, params);
        out.push_str("\r\n");
        out
    }

    /// Queues a line, or keeps it for the labeled response being built.
    pub fn emit(&mut self, line: String) {
        match &mut self.pending {
            Some(pending) => pending.push(line),
            None => self.queue.send(line),
        }
    }

    /// Queues a numeric reply addressed to the client's nickname.
    pub fn numeric(&mut self, code: &str, params: &[&str]) {
        let nick = self.current_nick();
        let mut all: Vec<&str> = Vec::with_capacity(params.len() + 1);
        all.push(&nick);
        all.extend_from_slice(params);
        let line = self.server_line(code, &all);
        self.emit(line);
    }

    /// Returns the sentence shown for a service error, and logs server faults once.
    pub fn error_text(&self, err: &ChatError) -> &'static str {
        if err.is_server_fault() {
            tracing::warn!(cause = %err, peer = %self.peer, "IRC command failed");
        }
        i18n::error_message(err.code(), Lang::En)
    }
}

/// Adds a tag to a line that may already have a tag section.
pub(super) fn add_tag(line: &str, tag: &str) -> String {
    match line.strip_prefix('@') {
        Some(rest) => format!("@{tag};{rest}"),
        None => format!("@{tag} {line}"),
    }
}
