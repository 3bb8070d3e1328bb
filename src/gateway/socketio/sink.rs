//! The hub's view of one Socket.IO connection.

use crate::core::event::Event;
use crate::core::i18n::{self, Lang, Notice};
use crate::core::ids::RoomId;
use crate::core::model::MessageKind;
use crate::hub::{Encoding, Outbound, Sink, SinkError};
use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The frames a connection receives lobby text as, per the compatibility mode in
/// docs/protocol.md.
///
/// A plain client (a guest created by its own handshake that has sent nothing but
/// `message`) gets each lobby text as a `message` string only, one frame per delivery
/// as simple Socket.IO chat servers send. A connection that uses the rest of the protocol
/// gets `message:new`, followed by the `message` string once it is in compatibility mode.
pub(crate) struct LobbyText(AtomicU8);

const FULL: u8 = 0;
const PLAIN: u8 = 1;
const BOTH: u8 = 2;

impl LobbyText {
    /// Starts in plain mode when the handshake created a guest account, else in full mode.
    pub fn new(new_guest: bool) -> Self {
        Self(AtomicU8::new(if new_guest { PLAIN } else { FULL }))
    }

    /// Records that the client sent a `message` event: a full connection also gets the
    /// `message` strings from now on.
    pub fn sent_plain_message(&self) {
        let _ = self
            .0
            .compare_exchange(FULL, BOTH, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Records that the client sent another event: a plain connection also gets
    /// `message:new` from now on, and keeps its `message` strings.
    pub fn sent_protocol_event(&self) {
        let _ = self
            .0
            .compare_exchange(PLAIN, BOTH, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Returns whether lobby text goes out as `message:new` and whether as `message`.
    fn frames(&self) -> (bool, bool) {
        match self.0.load(Ordering::Relaxed) {
            PLAIN => (false, true),
            BOTH => (true, true),
            _ => (true, false),
        }
    }
}

/// Queues hub events into socketioxide's bounded per-socket channel.
///
/// The connection subscribes to its rooms before it sends the `session` event, so that
/// nothing published in between is lost; events that arrive before `session` is sent are
/// held here and follow it, which keeps `session` the first event a client receives.
pub(super) struct SocketSink {
    socket: SocketRef,
    /// The frames lobby text goes out as.
    lobby_text: Arc<LobbyText>,
    /// Set by `close`; shared with the connection, which then refuses further events.
    closing: Arc<OnceLock<Notice>>,
    lobby: RoomId,
    lang: Lang,
    /// Set once `session` has been sent; read without the lock on every event.
    welcomed: AtomicBool,
    /// Events published before `session` was sent, oldest first.
    held: Mutex<Vec<Arc<Outbound>>>,
    /// Most events held before `session`; more count as a full queue.
    held_max: usize,
}

impl SocketSink {
    pub fn new(
        socket: SocketRef,
        lobby_text: Arc<LobbyText>,
        closing: Arc<OnceLock<Notice>>,
        lobby: RoomId,
        lang: Lang,
        held_max: usize,
    ) -> Self {
        Self {
            socket,
            lobby_text,
            closing,
            lobby,
            lang,
            welcomed: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            held_max,
        }
    }

    /// Sends the `session` event, then the events held until now.
    pub fn welcome<T: Serialize>(&self, payload: &T) -> Result<(), SendError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let sent = self.socket.emit("session", payload);
        for event in held.drain(..) {
            if self.emit(&event) == Err(SinkError::Full) {
                self.close(Notice::SlowConsumer);
                break;
            }
        }
        self.welcomed.store(true, Ordering::Release);
        sent
    }

    fn emit(&self, event: &Arc<Outbound>) -> Result<(), SinkError> {
        if let Event::MessageNew(m) = &event.event
            && m.room_id == self.lobby
            && m.kind == MessageKind::Text
        {
            let (message_new, message) = self.lobby_text.frames();
            if message_new {
                self.emit_event(event)?;
            }
            if message {
                let body = event.encoded(Encoding::SocketIoPlainText, |_| {
                    serde_json::value::to_raw_value(&m.body)
                        .expect("a string serialises without failure")
                });
                let sent = match body {
                    Some(body) => self.socket.emit("message", body),
                    // Only this sink fills the slot, so this arm does not run; it keeps
                    // the delivery if that ever changes.
                    None => self.socket.emit("message", &m.body),
                };
                sent.map_err(map_send_error)?;
            }
            return Ok(());
        }
        self.emit_event(event)
    }

    fn emit_event(&self, event: &Outbound) -> Result<(), SinkError> {
        self.socket
            .emit(event.event.name(), event.json())
            .map_err(map_send_error)
    }
}

fn map_send_error(err: SendError) -> SinkError {
    match err {
        SendError::Socket(SocketError::InternalChannelFull) => SinkError::Full,
        _ => SinkError::Closed,
    }
}

impl Sink for SocketSink {
    fn send(&self, event: &Arc<Outbound>) -> Result<(), SinkError> {
        // IRC client-only tags and away messages have no Socket.IO event; the typing
        // hint inside a TAGMSG reaches web clients as its own `typing` event.
        if matches!(event.event, Event::TagMessage(_) | Event::Away(_)) {
            return Ok(());
        }
        if !self.welcomed.load(Ordering::Acquire) {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock: `welcome` sets the flag while holding it.
            if !self.welcomed.load(Ordering::Acquire) {
                if held.len() >= self.held_max {
                    return Err(SinkError::Full);
                }
                held.push(event.clone());
                return Ok(());
            }
        }
        self.emit(event)
    }

    fn close(&self, notice: Notice) {
        if self.closing.set(notice).is_err() {
            return;
        }
        send_notice(&self.socket, notice, self.lang);
        disconnect_when_possible(self.socket.clone(), notice);
    }
}

/// Disconnects a socket the server is closing. When its queue is full, the disconnect
/// packet does not fit yet: the connection already refuses events and gets nothing from
/// the hub, so the disconnect is retried until the client drains its queue or the
/// heartbeat closes the transport.
pub(super) fn disconnect_when_possible<A: Adapter>(socket: SocketRef<A>, notice: Notice) {
    if socket.clone().disconnect().is_ok() {
        return;
    }
    tracing::info!(sid = %socket.id, ?notice, "queue full, retrying the disconnect");
    tokio::spawn(async move {
        for _ in 0..DISCONNECT_RETRIES {
            tokio::time::sleep(DISCONNECT_RETRY_INTERVAL).await;
            if !socket.connected() || socket.clone().disconnect().is_ok() {
                return;
            }
        }
        tracing::warn!(sid = %socket.id, "disconnect still failed after retries; the heartbeat will close the connection");
    });
}

/// Attempts to queue the disconnect packet of a closing connection, and their spacing:
/// two minutes in all, longer than the default heartbeat takes to notice a dead client.
const DISCONNECT_RETRIES: u32 = 240;
const DISCONNECT_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Payload of `server:notice`.
#[derive(serde::Serialize)]
struct NoticePayload {
    code: &'static str,
    message: &'static str,
}

/// Sends a `server:notice` event if the connection's queue has room.
pub(super) fn send_notice(socket: &SocketRef, notice: Notice, lang: Lang) {
    let code = match notice {
        Notice::ServerShuttingDown => "server_shutting_down",
        Notice::SessionEnded => "session_ended",
        Notice::SlowConsumer => "slow_consumer",
        Notice::TooManyEvents => "too_many_events",
    };
    let payload = NoticePayload {
        code,
        message: i18n::notice(notice, lang),
    };
    let _ = socket.emit("server:notice", &payload);
}
