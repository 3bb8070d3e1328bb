//! The outbound side of one IRC connection: a byte-bounded send queue, and the hub's
//! [`Sink`] that turns chat events into IRC lines.
//!
//! Slow-client policy: every line, reply or event, counts against the connection's SendQ
//! budget in bytes. A line that would exceed it closes the connection with
//! `ERROR :SendQ exceeded`, which the log records too. Dropping lines instead would leave
//! the client with a hole it cannot see.

use super::caps::{CapSet, Capability};
use super::conn::add_tag;
use super::line::{self, server_time};
use super::modes::ban_mask;
use super::names::nick_from_display_name;
use crate::core::event::{AwayChange, Event, Presence, TagMessage, Typing, UserUpdated};
use crate::core::i18n::{self, Lang, Notice};
use crate::core::ids::{RoomId, UserId};
use crate::core::model::{Message, MessageKind, RoomSetting, SettingsChange, Visibility};
use crate::hub::{Encoding, Outbound, Sink, SinkError};
use crate::service::ChatService;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Reason sent with `ERROR` when the send queue overflows, as other IRC servers word it.
pub const SENDQ_EXCEEDED: &str = "SendQ exceeded";

/// A connection's queue of encoded lines waiting for the socket writer.
pub struct SendQueue {
    tx: mpsc::UnboundedSender<String>,
    /// Bytes queued and not yet written to the socket.
    queued: AtomicUsize,
    /// Maximum of `queued`, in bytes.
    max_bytes: usize,
    /// Cancelled when the connection starts closing; the reader and writer stop on it.
    pub closing: CancellationToken,
    /// The reason sent in the final `ERROR` line, set once.
    close_reason: OnceLock<String>,
}

impl SendQueue {
    /// Creates a queue and the receiver its writer task drains.
    pub fn new(max_bytes: usize) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            tx,
            queued: AtomicUsize::new(0),
            max_bytes,
            closing: CancellationToken::new(),
            close_reason: OnceLock::new(),
        });
        (queue, rx)
    }

    /// Queues one line (ending in CR LF) within the byte budget.
    pub fn push(&self, line: String) -> Result<(), SinkError> {
        // The close reason is set first thing when closing starts, and reading it is one
        // atomic load, where `CancellationToken::is_cancelled` locks a mutex. This runs
        // once per member of a channel for every message.
        if self.close_reason.get().is_some() {
            return Err(SinkError::Closed);
        }
        let bytes = line.len();
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.max_bytes {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return Err(SinkError::Full);
        }
        self.tx.send(line).map_err(|_| SinkError::Closed)
    }

    /// Queues a line, and closes the connection with "SendQ exceeded" if it does not fit.
    pub fn send(&self, line: String) {
        if self.push(line) == Err(SinkError::Full) {
            self.close(SENDQ_EXCEEDED);
        }
    }

    /// Records that the writer wrote `bytes` bytes to the socket.
    pub fn written(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Queues `ERROR :reason` outside the budget and starts closing. Later calls do nothing.
    pub fn close(&self, reason: &str) {
        if self.close_reason.set(reason.to_owned()).is_err() {
            return;
        }
        tracing::info!(reason, "closing IRC connection");
        let mut error = String::from("ERROR");
        line::push_params(&mut error, &[reason]);
        error.push_str("\r\n");
        let _ = self.tx.send(error);
        self.closing.cancel();
    }

    /// Returns the reason the connection is closing, if it is.
    pub fn close_reason(&self) -> Option<&str> {
        self.close_reason.get().map(String::as_str)
    }
}

/// What the connection and its sink share: who the client is, what it negotiated and
/// which rooms it shows as channels.
pub struct ClientView {
    pub user_id: UserId,
    /// Account name; `None` for guests. Fixed for the connection's life, because Confab
    /// has no SASL after registration and accounts cannot be renamed.
    pub account: Option<String>,
    /// The name shown as real name in extended JOIN lines: the display name at sign-in.
    pub real_name: String,
    pub nick: RwLock<String>,
    pub caps: CapSet,
    /// Rooms shown to this client as joined channels, with the channel name (with '#').
    pub channels: Mutex<HashMap<RoomId, String>>,
    /// Tags of this connection's own messages awaiting their echo, by `client_msg_id`.
    pub echo_labels: Mutex<HashMap<String, EchoTag>>,
    /// Woken each time an awaited echo is sent, for a labeled batch that waits for its
    /// echoes.
    pub echo_sent: tokio::sync::Notify,
    /// Direct rooms shown as private messages, with the other user's nickname once known.
    pub directs: Mutex<HashMap<RoomId, Option<String>>>,
    /// Reasons of this connection's PART commands, shown on its own PART line.
    pub part_reasons: Mutex<HashMap<RoomId, String>>,
    /// Users shown as gone by a QUIT line since they were last online. A user who goes
    /// offline sends one presence event per room, and IRC has one QUIT per user.
    pub quit_users: Mutex<HashSet<UserId>>,
    /// Last away change shown per user. A change reaches this client once per shared
    /// room, and IRC shows it once.
    pub away_seen: Mutex<HashMap<UserId, u64>>,
    /// Last display name change shown per user, for the same reason as `away_seen`.
    pub renames_seen: Mutex<HashMap<UserId, u64>>,
}

/// Tag carried by the echo of one of the client's own messages (IRCv3 labeled-response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EchoTag {
    /// The echo is the only reply to a labeled command and carries its label.
    Label(String),
    /// The echo belongs to the open `labeled-response` batch with this id.
    Batch(String),
}

impl ClientView {
    /// Returns the current nickname.
    pub fn nick(&self) -> String {
        self.nick.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Returns the channel name of a room this client shows as joined.
    pub fn channel(&self, room: RoomId) -> Option<String> {
        self.lock_channels().get(&room).cloned()
    }

    /// Finds the joined room for a channel name, compared by the advertised casemapping.
    pub fn room_of(&self, channel: &str) -> Option<RoomId> {
        let key = super::names::channel_key(channel);
        self.lock_channels()
            .iter()
            .find(|(_, name)| super::names::channel_key(name) == key)
            .map(|(id, _)| *id)
    }

    pub fn lock_channels(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, String>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a direct room and the nickname of the other user in it.
    pub fn set_direct_peer(&self, room: RoomId, nick: String) {
        self.lock_directs().insert(room, Some(nick));
    }

    /// Stores the reason of a PART this connection sent, for its own PART line.
    pub fn set_part_reason(&self, room: RoomId, reason: Option<String>) {
        let mut reasons = self.part_reasons.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(reason) => reasons.insert(room, reason),
            None => reasons.remove(&room),
        };
    }

    fn take_part_reason(&self, room: RoomId) -> Option<String> {
        self.part_reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&room)
    }

    /// Returns the nickname of the other user in a direct room, when known.
    pub fn direct_peer(&self, room: RoomId) -> Option<String> {
        self.lock_directs().get(&room).cloned().flatten()
    }

    /// Returns whether `room` is a direct room shown as private messages.
    pub fn is_direct(&self, room: RoomId) -> bool {
        self.lock_directs().contains_key(&room)
    }

    /// Records a direct room whose other user's nickname is not known yet.
    pub fn add_direct(&self, room: RoomId) {
        self.lock_directs().entry(room).or_insert(None);
    }

    fn lock_directs(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Option<String>>> {
        self.directs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the tag that the echo of the message with `client_msg_id` will carry.
    pub fn expect_echo(&self, client_msg_id: &str, tag: EchoTag) {
        self.lock_echo_labels()
            .insert(client_msg_id.to_owned(), tag);
    }

    /// Removes and returns the tag waiting for the echo of `client_msg_id`.
    pub fn take_echo_label(&self, client_msg_id: &str) -> Option<EchoTag> {
        self.lock_echo_labels().remove(client_msg_id)
    }

    /// Reports whether the echo of `client_msg_id` is still awaited.
    pub fn awaits_echo(&self, client_msg_id: &str) -> bool {
        self.lock_echo_labels().contains_key(client_msg_id)
    }

    /// Returns the JOIN line for `source` joining `channel`: with extended-join, it adds
    /// the account (`*` for guests) and the real name (IRCv3 extended-join).
    pub fn join_line(
        &self,
        source: &str,
        channel: &str,
        account: Option<&str>,
        real_name: &str,
    ) -> String {
        let mut out = format!(":{source} JOIN {channel}");
        if self.caps.has(Capability::ExtendedJoin) {
            line::push_params(&mut out, &[account.unwrap_or("*"), real_name]);
        }
        out.push_str("\r\n");
        out
    }

    fn lock_echo_labels(&self) -> std::sync::MutexGuard<'_, HashMap<String, EchoTag>> {
        self.echo_labels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Returns the IRC message id of a stored message: `<room id>-<seq>`, unique on the
/// server and enough to find the message's place in its room's history.
pub fn msgid_of(message: &Message) -> String {
    format!("{}-{}", message.room_id, message.seq)
}

/// Turns the body of a `settings` event into a MODE change string such as `+m-t`.
fn settings_mode_string(body: &str) -> String {
    let mut out = String::new();
    let mut sign = None;
    for change in SettingsChange::decode(body) {
        if sign != Some(change.enabled) {
            out.push(if change.enabled { '+' } else { '-' });
            sign = Some(change.enabled);
        }
        out.push(match change.setting {
            RoomSetting::Moderated => 'm',
            RoomSetting::TopicLocked => 't',
        });
    }
    out
}

/// Returns the source (`nick!user@host`) shown for a user.
pub fn user_source(nick: &str, user: UserId) -> String {
    format!("{nick}!u{user}@confab")
}

/// The IRC form of a text message, encoded once per fan-out and shared by recipients.
pub struct TextLines {
    /// `time=…;msgid=…`, sent to clients with server-time or message-tags.
    time: String,
    msgid: String,
    /// The author's account, for clients with account-tag.
    account: Option<String>,
    /// Client-only tags, for clients with message-tags.
    client_tags: Option<String>,
    /// Complete lines without tags, each ending in CR LF.
    lines: Vec<String>,
}

/// Bytes of a line body, CR LF included, that a split message may fill.
const LINE_BUDGET: usize = line::MAX_BODY_BYTES - 2;

/// Encodes a text message to `channel` as PRIVMSG lines. Each line of the body becomes
/// at least one PRIVMSG, and a line too long for one IRC line is split between grapheme
/// clusters so the pieces rejoin to the original; blank lines are left out.
pub fn encode_text(message: &Message, channel: &str) -> TextLines {
    let nick = nick_from_display_name(&message.author_name);
    let source = user_source(&nick, message.author_id.unwrap_or(UserId(0)));
    let head = format!(":{source} PRIVMSG {channel} :");
    let budget = LINE_BUDGET.saturating_sub(head.len());
    let mut lines = Vec::new();
    // A one-line `/me` body goes out as a CTCP ACTION when it fits in one line.
    let action = super::channels::encode_body(&message.body);
    if matches!(action, std::borrow::Cow::Owned(_))
        && !action.contains('\n')
        && action.len() <= budget
    {
        lines.push(format!("{head}{action}\r\n"));
        return TextLines {
            time: server_time(message.created_at),
            msgid: msgid_of(message),
            account: message.author_account.clone(),
            client_tags: message.client_tags.clone(),
            lines,
        };
    }
    for body_line in message.body.split('\n') {
        if body_line.trim().is_empty() {
            continue;
        }
        for piece in line::split_graphemes(body_line, budget) {
            lines.push(format!("{head}{piece}\r\n"));
        }
    }
    TextLines {
        time: server_time(message.created_at),
        msgid: msgid_of(message),
        account: message.author_account.clone(),
        client_tags: message.client_tags.clone(),
        lines,
    }
}

impl TextLines {
    /// Returns the tag prefix (with '@' and trailing space) for a client's caps.
    pub fn tags_for(&self, caps: &CapSet, label: Option<&str>) -> String {
        let context = TagContext {
            time: &self.time,
            msgid: Some(&self.msgid),
            account: self.account.as_deref(),
            client_tags: self.client_tags.as_deref(),
        };
        tag_prefix(caps, &context, label)
    }

    /// Returns the encoded lines without tags.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

/// The tags a line about one message or event may carry; each client gets the ones its
/// capabilities ask for.
pub struct TagContext<'a> {
    /// Server time, formatted for the `time` tag.
    pub time: &'a str,
    pub msgid: Option<&'a str>,
    /// Account of the user the line is from (IRCv3 account-tag).
    pub account: Option<&'a str>,
    /// Client-only tags, already escaped (IRCv3 message-tags).
    pub client_tags: Option<&'a str>,
}

/// Builds the tag section for one line sent to a client with `caps`.
pub fn tag_prefix(caps: &CapSet, context: &TagContext<'_>, label: Option<&str>) -> String {
    let mut tags: Vec<String> = Vec::new();
    if let Some(label) = label.filter(|_| caps.has(Capability::LabeledResponse)) {
        let mut value = String::new();
        line::escape_tag_value(label, &mut value);
        tags.push(format!("label={value}"));
    }
    if caps.has(Capability::ServerTime) || caps.has(Capability::MessageTags) {
        tags.push(format!("time={}", context.time));
    }
    if caps.has(Capability::MessageTags)
        && let Some(msgid) = context.msgid
    {
        tags.push(format!("msgid={msgid}"));
    }
    if caps.has(Capability::AccountTag)
        && let Some(account) = context.account
    {
        let mut value = String::new();
        line::escape_tag_value(account, &mut value);
        tags.push(format!("account={value}"));
    }
    if caps.has(Capability::MessageTags)
        && let Some(client_tags) = context.client_tags
    {
        tags.push(client_tags.to_owned());
    }
    if tags.is_empty() {
        String::new()
    } else {
        format!("@{} ", tags.join(";"))
    }
}

/// The hub's view of one IRC connection.
pub struct IrcSink {
    pub queue: Arc<SendQueue>,
    pub view: Arc<ClientView>,
    /// Source of the `BATCH` lines around a multi-line labeled echo.
    pub server_name: String,
    /// Looks up the nickname of a user who quit.
    pub service: Arc<ChatService>,
    /// The node's nickname table, where a rename made elsewhere moves this connection's
    /// claim.
    pub shared: Arc<super::Shared>,
}

impl IrcSink {
    /// Sends a QUIT line when a user sharing a channel with this client went offline,
    /// that is, when the user's last connection on any protocol closed.
    fn presence(&self, presence: &Presence) {
        let user = presence.user_id;
        if user == self.view.user_id || self.view.channel(presence.room_id).is_none() {
            return;
        }
        let mut quit_users = self
            .view
            .quit_users
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if presence.online {
            quit_users.remove(&user);
            return;
        }
        // A user who left or was removed from the room is shown by PART or KICK; QUIT
        // would drop them from every channel the client shares with them.
        if !presence.disconnected {
            return;
        }
        if !quit_users.insert(user) {
            return;
        }
        drop(quit_users);
        let reason = presence
            .reason
            .clone()
            .unwrap_or_else(|| "Connection closed".to_owned());
        let service = self.service.clone();
        let queue = self.queue.clone();
        // The event has no display name, so the nickname comes from the store. A failed
        // lookup only loses the QUIT line, which is a hint like presence itself.
        // NOTE: the lookup runs in its own task, so the QUIT line can land after lines
        // queued behind it; carrying the display name in the event would remove that.
        tokio::spawn(async move {
            match service.user(user).await {
                Ok(found) => {
                    let source = user_source(&nick_from_display_name(&found.display_name), user);
                    let mut out = format!(":{source} QUIT");
                    line::push_params(&mut out, &[reason.as_str()]);
                    out.push_str("\r\n");
                    let _ = queue.push(out);
                }
                Err(error) => {
                    tracing::warn!(%user, %error, "no QUIT line: user lookup failed");
                }
            }
        });
    }

    /// Sends `AWAY` to a client with away-notify that shares a channel with the user
    /// (IRCv3 away-notify), once per change.
    fn away(&self, change: &AwayChange) -> Result<(), SinkError> {
        if change.user_id == self.view.user_id
            || !self.view.caps.has(Capability::AwayNotify)
            || self.view.channel(change.room_id).is_none()
        {
            return Ok(());
        }
        {
            let mut seen = self
                .view
                .away_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.insert(change.user_id, change.change_id) == Some(change.change_id) {
                return Ok(());
            }
        }
        let source = user_source(
            &nick_from_display_name(&change.display_name),
            change.user_id,
        );
        let mut out = format!(":{source} AWAY");
        if let Some(message) = &change.message {
            line::push_params(&mut out, &[message.as_str()]);
        }
        out.push_str("\r\n");
        self.queue.push(out)
    }

    /// Sends a `NICK` line when a user who shares a channel or a private conversation with
    /// this client changed display name, once per change. When the user is this client's
    /// own, as after a rename on the web, the connection's nickname follows.
    fn user_updated(&self, update: &UserUpdated) -> Result<(), SinkError> {
        let user = update.user.id;
        let old = nick_from_display_name(&update.previous_display_name);
        let new = nick_from_display_name(&update.user.display_name);
        if old == new {
            return Ok(());
        }
        if user == self.view.user_id {
            if !self.first_copy(user, update.change_id) {
                return Ok(());
            }
            return self.rename_self(new);
        }
        let direct = self.view.is_direct(update.room_id);
        if !direct && self.view.channel(update.room_id).is_none() {
            return Ok(());
        }
        if direct {
            self.view.set_direct_peer(update.room_id, new.clone());
        }
        if !self.first_copy(user, update.change_id) {
            return Ok(());
        }
        self.queue
            .push(format!(":{} NICK {new}\r\n", user_source(&old, user)))
    }

    /// Records a rename of `user` and reports whether this is the first of its per-room
    /// copies to reach this client.
    fn first_copy(&self, user: UserId, change_id: u64) -> bool {
        let mut seen = self
            .view
            .renames_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        seen.insert(user, change_id) != Some(change_id)
    }

    /// Renames this connection after its user's display name changed, moving the claim
    /// in the nickname table. As at registration, a nickname another user holds on this
    /// node gets the user id appended.
    fn rename_self(&self, new: String) -> Result<(), SinkError> {
        let user = self.view.user_id;
        let owner = super::NickOwner::User(user);
        // The connection that sent NICK compares and sets under the same lock, so the line
        // goes out once, from whichever of the two gets here first.
        let mut nick = self.view.nick.write().unwrap_or_else(|e| e.into_inner());
        if *nick == new {
            return Ok(());
        }
        let nicks = &self.shared.nicks;
        let new = if nicks.claim(&new, owner) {
            new
        } else {
            let unique = format!("{new}-{user}");
            nicks.claim(&unique, owner);
            unique
        };
        nicks.release(&nick, owner);
        let line = format!(":{} NICK {new}\r\n", user_source(&nick, user));
        *nick = new;
        drop(nick);
        self.queue.push(line)
    }

    /// Returns the target of a `TAGMSG` about `room`: the channel name, or for a direct
    /// room this client's nickname (the other user's nickname for the user's own tags).
    fn tag_target(&self, room: RoomId, own: bool) -> Option<String> {
        if let Some(channel) = self.view.channel(room) {
            return Some(channel);
        }
        if !self.view.is_direct(room) {
            return None;
        }
        if own {
            self.view.direct_peer(room)
        } else {
            Some(self.view.nick())
        }
    }

    /// Sends a `TAGMSG` to a client with message-tags (IRCv3 message-tags), and echoes
    /// the client's own with echo-message.
    fn tag_message(&self, tag_message: &TagMessage) -> Result<(), SinkError> {
        let caps = &self.view.caps;
        let own = tag_message.user_id == self.view.user_id;
        if !caps.has(Capability::MessageTags) || (own && !caps.has(Capability::EchoMessage)) {
            return Ok(());
        }
        let Some(target) = self.tag_target(tag_message.room_id, own) else {
            return Ok(());
        };
        if !own && self.view.is_direct(tag_message.room_id) {
            self.view.set_direct_peer(
                tag_message.room_id,
                nick_from_display_name(&tag_message.display_name),
            );
        }
        let time = server_time(tag_message.sent_at);
        let context = TagContext {
            time: &time,
            msgid: Some(&tag_message.id),
            account: tag_message.account.as_deref(),
            client_tags: Some(&tag_message.tags),
        };
        let tags = tag_prefix(caps, &context, None);
        let source = user_source(
            &nick_from_display_name(&tag_message.display_name),
            tag_message.user_id,
        );
        self.queue
            .push(format!("{tags}:{source} TAGMSG {target}\r\n"))
    }

    /// Sends a typing hint from another protocol as `TAGMSG` with `+typing=active` to a
    /// client with message-tags (IRCv3 typing client tag).
    fn typing(&self, typing: &Typing) -> Result<(), SinkError> {
        if typing.user_id == self.view.user_id || !self.view.caps.has(Capability::MessageTags) {
            return Ok(());
        }
        let Some(target) = self.tag_target(typing.room_id, false) else {
            return Ok(());
        };
        let source = user_source(
            &nick_from_display_name(&typing.display_name),
            typing.user_id,
        );
        self.queue
            .push(format!("@+typing=active :{source} TAGMSG {target}\r\n"))
    }

    fn push_all(&self, lines: impl IntoIterator<Item = String>) -> Result<(), SinkError> {
        for line in lines {
            self.queue.push(line)?;
        }
        Ok(())
    }

    /// Sends the echo of the client's own labeled message: one line with the label, or
    /// several lines in a `labeled-response` batch (IRCv3 labeled-response). An echo
    /// that belongs to the command's open batch carries that batch's tag instead.
    fn push_labeled_echo(&self, text: &TextLines, tag: &EchoTag) -> Result<(), SinkError> {
        let result = match tag {
            EchoTag::Label(label) => self.push_echo_with_label(text, label),
            EchoTag::Batch(id) => {
                let tags = text.tags_for(&self.view.caps, None);
                let batch_tag = format!("batch={id}");
                self.push_all(
                    text.lines()
                        .iter()
                        .map(|l| add_tag(&format!("{tags}{l}"), &batch_tag)),
                )
            }
        };
        self.view.echo_sent.notify_waiters();
        result
    }

    fn push_echo_with_label(&self, text: &TextLines, label: &str) -> Result<(), SinkError> {
        let lines = text.lines();
        if lines.len() == 1 || !self.view.caps.has(Capability::Batch) {
            let first = text.tags_for(&self.view.caps, Some(label));
            let rest = text.tags_for(&self.view.caps, None);
            return self.push_all(lines.iter().enumerate().map(|(i, l)| {
                let tags = if i == 0 { &first } else { &rest };
                format!("{tags}{l}")
            }));
        }
        let mut escaped = String::new();
        line::escape_tag_value(label, &mut escaped);
        let id = format!("E{:x}", rand::random::<u64>());
        let server = &self.server_name;
        self.queue.push(format!(
            "@label={escaped} :{server} BATCH +{id} labeled-response\r\n"
        ))?;
        let tags = text.tags_for(&self.view.caps, None);
        let batch_tag = format!("batch={id}");
        for l in lines {
            self.queue
                .push(add_tag(&format!("{tags}{l}"), &batch_tag))?;
        }
        self.queue.push(format!(":{server} BATCH -{id}\r\n"))
    }

    /// Sends a text message of a direct room as a PRIVMSG between nicknames: to this
    /// client's nickname from the other user, or, for the user's own messages, to the
    /// other user's nickname.
    fn direct_message(&self, m: &Message) -> Result<(), SinkError> {
        if m.kind != MessageKind::Text {
            return Ok(());
        }
        let own = m.author_id == Some(self.view.user_id);
        let target = if own {
            if !self.view.caps.has(Capability::EchoMessage) {
                return Ok(());
            }
            // NOTE: the user's own message from another protocol, in a direct room this
            // connection has not yet seen the peer speak in or sent to, is not shown,
            // because the sink cannot look up the peer's nickname.
            let Some(peer) = self.view.direct_peer(m.room_id) else {
                return Ok(());
            };
            peer
        } else {
            let author = nick_from_display_name(&m.author_name);
            self.view.set_direct_peer(m.room_id, author);
            self.view.nick()
        };
        // Encoded for this recipient only: the target differs between the two users, so
        // the shared encoding of the fan-out cannot be used.
        let text = encode_text(m, &target);
        let label = m
            .client_msg_id
            .as_deref()
            .filter(|_| own)
            .and_then(|id| self.view.take_echo_label(id));
        match label {
            Some(label) => self.push_labeled_echo(&text, &label),
            None => {
                let tags = text.tags_for(&self.view.caps, None);
                self.push_all(text.lines().iter().map(|l| format!("{tags}{l}")))
            }
        }
    }

    fn message_new(&self, event: &Arc<Outbound>, m: &Message) -> Result<(), SinkError> {
        if m.kind == MessageKind::Text {
            return self.channel_text(event, m);
        }
        let Some(channel) = self.view.channel(m.room_id) else {
            // A room this client does not show; a JOIN for it arrives as `room:added`.
            // Direct rooms show text messages only.
            return Ok(());
        };
        let own = m.author_id == Some(self.view.user_id);
        let author = nick_from_display_name(&m.author_name);
        let source = user_source(&author, m.author_id.unwrap_or(UserId(0)));
        let time = server_time(m.created_at);
        let msgid = msgid_of(m);
        let context = TagContext {
            time: &time,
            msgid: Some(&msgid),
            account: m.author_account.as_deref(),
            client_tags: None,
        };
        let tags = tag_prefix(&self.view.caps, &context, None);
        match m.kind {
            // This client's own joins and parts arrive as `room:added` and `room:removed`.
            MessageKind::Join if !own => {
                let join = self.view.join_line(
                    &source,
                    &channel,
                    m.author_account.as_deref(),
                    &m.author_name,
                );
                self.queue.push(format!("{tags}{join}"))?;
                // IRCv3 away-notify: a user who joins while away is announced as away.
                let away = m
                    .author_id
                    .filter(|_| self.view.caps.has(Capability::AwayNotify))
                    .and_then(|author| self.service.away_message(author));
                match away {
                    Some(message) => {
                        let mut out = format!(":{source} AWAY");
                        line::push_params(&mut out, &[message.as_str()]);
                        out.push_str("\r\n");
                        self.queue.push(out)
                    }
                    None => Ok(()),
                }
            }
            MessageKind::Leave if !own => {
                let mut out = format!("{tags}:{source} PART {channel}");
                if !m.body.is_empty() {
                    line::push_params(&mut out, &[m.body.as_str()]);
                }
                out.push_str("\r\n");
                self.queue.push(out)
            }
            MessageKind::Kick => {
                let target = nick_from_display_name(m.target_name.as_deref().unwrap_or("*"));
                if m.target_id == Some(self.view.user_id) {
                    self.view.lock_channels().remove(&m.room_id);
                }
                self.queue
                    .push(format!("{tags}:{source} KICK {channel} {target}\r\n"))
            }
            MessageKind::Topic => {
                let mut out = format!("{tags}:{source} TOPIC {channel}");
                line::push_params(&mut out, &[m.body.as_str()]);
                out.push_str("\r\n");
                self.queue.push(out)
            }
            MessageKind::Ban => {
                let target_name = m.target_name.as_deref().unwrap_or("*");
                let target_id = m.target_id.unwrap_or(UserId(0));
                let mask = ban_mask(target_name, target_id);
                self.queue
                    .push(format!("{tags}:{source} MODE {channel} +b {mask}\r\n"))?;
                // NOTE: the event does not record whether the user was in the room, so
                // a ban of a non-member shows a KICK for a nickname not in the channel.
                if m.target_id == Some(self.view.user_id) {
                    self.view.lock_channels().remove(&m.room_id);
                }
                let target = nick_from_display_name(target_name);
                let mut out = format!("{tags}:{source} KICK {channel} {target}");
                if !m.body.is_empty() {
                    line::push_params(&mut out, &[m.body.as_str()]);
                }
                out.push_str("\r\n");
                self.queue.push(out)
            }
            MessageKind::Unban => {
                let target_name = m.target_name.as_deref().unwrap_or("*");
                let mask = ban_mask(target_name, m.target_id.unwrap_or(UserId(0)));
                self.queue
                    .push(format!("{tags}:{source} MODE {channel} -b {mask}\r\n"))
            }
            MessageKind::Settings => {
                let modes = settings_mode_string(&m.body);
                if modes.is_empty() {
                    return Ok(());
                }
                self.queue
                    .push(format!("{tags}:{source} MODE {channel} {modes}\r\n"))
            }
            _ => Ok(()),
        }
    }

    /// Sends a text message as PRIVMSG lines. The lines are encoded once per fan-out,
    /// so a recipient adds only its tags.
    fn channel_text(&self, event: &Arc<Outbound>, m: &Message) -> Result<(), SinkError> {
        let own = m.author_id == Some(self.view.user_id);
        let text = {
            let channels = self.view.lock_channels();
            let Some(channel) = channels.get(&m.room_id) else {
                drop(channels);
                if self.view.is_direct(m.room_id) {
                    return self.direct_message(m);
                }
                // A room this client does not show; a JOIN for it arrives as `room:added`.
                return Ok(());
            };
            if own && !self.view.caps.has(Capability::EchoMessage) {
                return Ok(());
            }
            // The first recipient encodes the lines under its channel lock, so the
            // channel name is not copied. Every client shows the room as `#` and its
            // name, so the first recipient's channel name is right for all.
            event.encoded(Encoding::IrcChannelText, |_| encode_text(m, channel))
        };
        let Some(text) = text else {
            return Ok(());
        };
        let label = m
            .client_msg_id
            .as_deref()
            .filter(|_| own)
            .and_then(|id| self.view.take_echo_label(id));
        match label {
            Some(label) => self.push_labeled_echo(text, &label),
            None => {
                let tags = text.tags_for(&self.view.caps, None);
                self.push_all(text.lines().iter().map(|l| format!("{tags}{l}")))
            }
        }
    }
}

impl Sink for IrcSink {
    fn send(&self, event: &Arc<Outbound>) -> Result<(), SinkError> {
        match &event.event {
            Event::MessageNew(m) => self.message_new(event, m),
            Event::RoomAdded(room) if room.visibility == Visibility::Direct => {
                // A direct room is a private conversation, not a channel to join.
                self.view.add_direct(room.id);
                Ok(())
            }
            Event::RoomAdded(room) => {
                let channel = format!("#{}", room.name);
                let source = user_source(&self.view.nick(), self.view.user_id);
                let mut channels = self.view.lock_channels();
                if channels.insert(room.id, channel.clone()).is_some() {
                    return Ok(());
                }
                // Queued under the lock, so a JOIN sent by the command handler cannot
                // be queued twice.
                let view = &self.view;
                self.queue.push(view.join_line(
                    &source,
                    &channel,
                    view.account.as_deref(),
                    &view.real_name,
                ))
            }
            Event::RoomRemoved(removed) => {
                let source = user_source(&self.view.nick(), self.view.user_id);
                let mut channels = self.view.lock_channels();
                let reason = self.view.take_part_reason(removed.room_id);
                match channels.remove(&removed.room_id) {
                    Some(channel) => {
                        let mut out = format!(":{source} PART {channel}");
                        if let Some(reason) = reason {
                            line::push_params(&mut out, &[reason.as_str()]);
                        }
                        out.push_str("\r\n");
                        self.queue.push(out)
                    }
                    None => Ok(()),
                }
            }
            Event::Presence(presence) => {
                self.presence(presence);
                Ok(())
            }
            Event::Away(change) => self.away(change),
            Event::UserUpdated(update) => self.user_updated(update),
            Event::TagMessage(tag_message) => self.tag_message(tag_message),
            Event::Typing(typing) if !typing.from_tag_message => self.typing(typing),
            // NOTE: IRC has no edits or deletions, so edited and deleted messages are not
            // shown to IRC clients.
            _ => Ok(()),
        }
    }

    fn close(&self, notice: Notice) {
        let reason = match notice {
            Notice::SlowConsumer => SENDQ_EXCEEDED,
            other => i18n::notice(other, Lang::En),
        };
        self.queue.close(reason);
    }
}
