//! Channel and message commands: JOIN, PART, PRIVMSG and NOTICE (to channels and
//! nicknames), TOPIC and NAMES, and the informational LUSERS and MOTD (MODE is in
//! modes.rs, AWAY in away.rs). Rooms
//! appear as `#room-name`; every rule is the service's.

use super::caps::Capability;
use super::conn::Connection;
use super::names::nick_from_display_name;
use super::numerics::*;
use super::sink::{EchoTag, user_source};
use crate::core::error::ErrorCode;
use crate::core::ids::RoomId;
use crate::core::model::Visibility;
use crate::service::RoomRef;

/// Bytes of a 353 line that the names may fill, leaving room for the line's head.
const NAMES_LINE_BUDGET: usize = 400;

/// One PRIVMSG or NOTICE on its way to one target.
struct Outgoing<'a> {
    body: &'a str,
    /// Client-only tags from the client's line, escaped.
    client_tags: Option<&'a str>,
    /// Tag for the echo of a labeled command.
    echo: Option<EchoTag>,
}

impl Connection {
    /// Handles `JOIN #a,#b`. A missing channel is created, as IRC servers create channels
    /// on first join, if the service lets this user create rooms; otherwise, and for a
    /// private room the user is not invited to, the reply is 403, so a private room's
    /// existence does not leak.
    pub(super) async fn join(&mut self, targets: &str) {
        for channel in targets.split(',').filter(|c| !c.is_empty()) {
            self.join_one(channel).await;
        }
    }

    async fn join_one(&mut self, channel: &str) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let service = self.shared.service.clone();
        let Some(name) = channel.strip_prefix('#') else {
            self.numeric(ERR_NOSUCHCHANNEL, &[channel, "No such channel"]);
            return;
        };
        let room = match service.find_room(&RoomRef::Name(name.to_owned())).await {
            Ok(room) => service.join_room(&session, room.id).await,
            Err(err) if err.code() == ErrorCode::RoomNotFound => {
                service
                    .create_room(&session, name, "", Visibility::Public)
                    .await
            }
            Err(err) => Err(err),
        };
        let room = match room {
            Ok(room) => room,
            Err(err)
                if matches!(
                    err.code(),
                    ErrorCode::RoomNotFound
                        | ErrorCode::InvalidRoomName
                        | ErrorCode::GuestNotAllowed
                ) =>
            {
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, "No such channel"]);
                return;
            }
            Err(err) if err.code() == ErrorCode::Banned => {
                self.numeric(ERR_BANNEDFROMCHAN, &[channel, "Cannot join channel (+b)"]);
                return;
            }
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric("477", &[channel, text]);
                return;
            }
        };

        // Already a member (the service sent no `room:added`): show the JOIN here.
        let channel = format!("#{}", room.name);
        if let Some(conn_id) = self.conn_id {
            service.hub().subscribe(conn_id, room.id);
        }
        {
            let mut channels = view.lock_channels();
            if let std::collections::hash_map::Entry::Vacant(entry) = channels.entry(room.id) {
                entry.insert(channel.clone());
                let source = user_source(&view.nick(), view.user_id);
                let join =
                    view.join_line(&source, &channel, view.account.as_deref(), &view.real_name);
                self.emit(join);
            }
        }
        if !room.topic.is_empty() {
            self.numeric(RPL_TOPIC, &[&channel, &room.topic]);
        }
        self.send_names(room.id, &channel).await;
    }

    /// Handles `PART #a,#b`: the user leaves the room on every protocol.
    pub(super) async fn part(&mut self, targets: &str, reason: Option<&String>) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        for channel in targets.split(',').filter(|c| !c.is_empty()) {
            let Some(room) = view.room_of(channel) else {
                self.numeric(ERR_NOTONCHANNEL, &[channel, "You're not on that channel"]);
                continue;
            };
            let reason = reason.map(String::as_str).filter(|r| !r.is_empty());
            // Stored before leaving, because the sink may send the PART line before
            // leave_room_with_reason returns.
            view.set_part_reason(room, reason.map(crate::core::names::normalize_leave_reason));
            let left = self
                .shared
                .service
                .leave_room_with_reason(&session, room, reason)
                .await;
            if let Err(err) = left {
                view.set_part_reason(room, None);
                let text = self.error_text(&err);
                self.numeric(ERR_NOTONCHANNEL, &[channel, text]);
            }
        }
    }

    /// Handles `PRIVMSG` and `NOTICE` to channels and nicknames. A nickname target is a
    /// direct room with that user, opened through the service. NOTICE gets no error
    /// replies (RFC 2812 section 3.3.2).
    pub(super) async fn privmsg(
        &mut self,
        params: &[String],
        client_tags: Option<String>,
        notice: bool,
    ) {
        let Some(view) = self.view.clone() else {
            return;
        };
        let Some(targets) = params.first().filter(|t| !t.is_empty()) else {
            if !notice {
                self.numeric(ERR_NORECIPIENT, &["No recipient given (PRIVMSG)"]);
            }
            return;
        };
        let Some(text) = params.get(1).filter(|t| !t.is_empty()) else {
            if !notice {
                self.numeric(ERR_NOTEXTTOSEND, &["No text to send"]);
            }
            return;
        };
        let body = decode_body(text);
        let single_target = !targets.contains(',');
        let batch = (!single_target && view.caps.has(Capability::EchoMessage))
            .then(|| self.open_labeled_batch())
            .flatten();
        let mut echo_ids = Vec::new();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let room = if target.starts_with('#') {
                view.room_of(target)
            } else {
                // 301 comes first, even when the message itself is then rejected.
                if !notice {
                    self.reply_if_away(target).await;
                }
                self.open_direct_by_nick(target, notice).await
            };
            let Some(room) = room else {
                if !notice && target.starts_with('#') {
                    self.numeric(
                        ERR_CANNOTSENDTOCHAN,
                        &[target, "Cannot send to channel: join it first"],
                    );
                }
                continue;
            };
            let echo = match &batch {
                Some(id) => Some(EchoTag::Batch(id.clone())),
                None => self
                    .label
                    .clone()
                    .filter(|_| single_target)
                    .map(EchoTag::Label),
            };
            let outgoing = Outgoing {
                body: &body,
                client_tags: client_tags.as_deref(),
                echo,
            };
            if let Some(id) = self.send_to_room(room, target, outgoing, notice).await {
                echo_ids.push(id);
            }
        }
        if batch.is_some() {
            self.wait_for_echoes(&echo_ids).await;
        }
    }

    /// Opens (or finds) the direct room with the user named `nick` and subscribes this
    /// connection to it. Replies 401 when no user has that nickname, and 404 when the
    /// service rejects the direct room (guests and messages to oneself).
    pub(super) async fn open_direct_by_nick(&mut self, nick: &str, notice: bool) -> Option<RoomId> {
        let (view, session) = (self.view.clone()?, self.session.clone()?);
        let Some(peer) = self.user_by_nick(nick).await else {
            if !notice {
                self.numeric(ERR_NOSUCHNICK, &[nick, "No such nick/channel"]);
            }
            return None;
        };
        let service = self.shared.service.clone();
        match service.open_direct(&session, peer.id).await {
            Ok(room) => {
                view.set_direct_peer(room.id, nick_from_display_name(&peer.display_name));
                if let Some(conn_id) = self.conn_id {
                    service.hub().subscribe(conn_id, room.id);
                }
                Some(room.id)
            }
            Err(err) => {
                if !notice {
                    let text = format!("Cannot send to nick: {}", self.error_text(&err));
                    self.numeric(ERR_CANNOTSENDTOCHAN, &[nick, &text]);
                }
                None
            }
        }
    }

    /// Sends one PRIVMSG or NOTICE body into a room, replying 404 when the service
    /// rejects it. Returns the `client_msg_id` whose echo the command awaits in its
    /// labeled batch, if any.
    async fn send_to_room(
        &mut self,
        room: RoomId,
        target: &str,
        outgoing: Outgoing<'_>,
        notice: bool,
    ) -> Option<String> {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return None;
        };
        // With echo-message, the echo of a labeled message carries the label or its batch
        // tag (IRCv3 labeled-response). The echo is matched by a fresh client_msg_id,
        // stored before sending because the echo may arrive before the send returns.
        let batched = matches!(outgoing.echo, Some(EchoTag::Batch(_)));
        let echo_id = outgoing
            .echo
            .filter(|_| view.caps.has(Capability::EchoMessage))
            .map(|tag| {
                let id = format!("irc-{:016x}", rand::random::<u64>());
                view.expect_echo(&id, tag);
                id
            });
        let sent = self
            .shared
            .service
            .send_tagged_message(
                &session,
                room,
                outgoing.body,
                echo_id.as_deref(),
                outgoing.client_tags,
            )
            .await;
        let mut echoed = false;
        match sent {
            Ok(ack) if echo_id.is_some() && !ack.duplicate => echoed = true,
            Ok(_) => {}
            Err(err) => {
                if !notice {
                    let text = format!("Cannot send to channel: {}", self.error_text(&err));
                    self.numeric(ERR_CANNOTSENDTOCHAN, &[target, &text]);
                }
            }
        }
        let id = echo_id?;
        if !echoed {
            view.take_echo_label(&id);
            return None;
        }
        if batched {
            Some(id)
        } else {
            self.label_in_echo = true;
            None
        }
    }

    /// Handles `TOPIC #chan` (query) and `TOPIC #chan :text` (set; moderators only while
    /// the channel has mode `t`).
    pub(super) async fn topic(&mut self, params: &[String]) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let channel = params[0].as_str();
        let Some(room_id) = view.room_of(channel) else {
            self.numeric(ERR_NOTONCHANNEL, &[channel, "You're not on that channel"]);
            return;
        };
        let service = self.shared.service.clone();
        if let Some(topic) = params.get(1) {
            if let Err(err) = service.set_topic(&session, room_id, topic).await {
                let text = self.error_text(&err);
                let code = if err.code() == ErrorCode::Forbidden {
                    ERR_CHANOPRIVSNEEDED
                } else {
                    ERR_NEEDMOREPARAMS
                };
                self.numeric(code, &[channel, text]);
            }
            return;
        }
        match service.room(&session, room_id).await {
            Ok(entry) if entry.room.topic.is_empty() => {
                self.numeric(RPL_NOTOPIC, &[channel, "No topic is set"]);
            }
            Ok(entry) => self.numeric(RPL_TOPIC, &[channel, &entry.room.topic]),
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, text]);
            }
        }
    }

    /// Handles `NAMES #chan`; without a channel, replies with only 366 for `*`.
    pub(super) async fn names_command(&mut self, target: Option<&String>) {
        let Some(view) = self.view.clone() else {
            return;
        };
        let Some(channel) = target.filter(|t| !t.is_empty()) else {
            self.numeric(RPL_ENDOFNAMES, &["*", "End of /NAMES list"]);
            return;
        };
        match view.room_of(channel) {
            Some(room) => self.send_names(room, channel).await,
            None => self.numeric(RPL_ENDOFNAMES, &[channel, "End of /NAMES list"]),
        }
    }

    /// Sends 353 lines listing a room's members, moderators prefixed with '@', then 366.
    /// Members are the room's members, online or not.
    async fn send_names(&mut self, room: RoomId, channel: &str) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let members = match self.shared.service.members(&session, room).await {
            Ok(members) => members,
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, text]);
                return;
            }
        };
        let mut line = String::new();
        for member in &members {
            let prefix = if member.role.is_moderator() { "@" } else { "" };
            let name = format!(
                "{prefix}{}",
                nick_from_display_name(&member.user.display_name)
            );
            if !line.is_empty() && line.len() + name.len() + 1 > NAMES_LINE_BUDGET {
                let full = std::mem::take(&mut line);
                self.numeric(RPL_NAMREPLY, &["=", channel, &full]);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&name);
        }
        if !line.is_empty() {
            self.numeric(RPL_NAMREPLY, &["=", channel, &line]);
        }
        self.numeric(RPL_ENDOFNAMES, &[channel, "End of /NAMES list"]);
    }

    /// Sends the LUSERS replies from the hub's live counts on this node.
    pub(super) fn lusers(&mut self) {
        let stats = self.shared.service.stats();
        self.numeric(
            RPL_LUSERCLIENT,
            &[&format!(
                "There are {} users and 0 invisible on 1 servers",
                stats.online_users
            )],
        );
        self.numeric(
            RPL_LUSERME,
            &[&format!(
                "I have {} clients and 0 servers",
                stats.connections
            )],
        );
    }

    /// Sends the MOTD reply: Confab has no message of the day, so 422.
    pub(super) fn motd(&mut self) {
        self.numeric(ERR_NOMOTD, &["MOTD File is missing"]);
    }
}

/// Turns an IRC message text into a Confab body: a CTCP ACTION becomes `/me text`, and
/// mIRC formatting codes (bold, colour, italics, underline, reverse, reset), which are
/// control characters that bodies may not contain, are removed.
pub fn decode_body(text: &str) -> String {
    let text = match text
        .strip_prefix("\u{1}ACTION ")
        .map(|rest| rest.strip_suffix('\u{1}').unwrap_or(rest))
    {
        Some(action) => format!("/me {action}"),
        None => text.to_owned(),
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            '\u{3}' => {
                // Colour: up to two digits, then optionally a comma and up to two digits.
                skip_digits(&mut chars);
                let mut lookahead = chars.clone();
                if lookahead.next() == Some(',')
                    && lookahead.peek().is_some_and(|d| d.is_ascii_digit())
                {
                    chars.next();
                    skip_digits(&mut chars);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn skip_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for _ in 0..2 {
        if chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            chars.next();
        }
    }
}

/// Turns a Confab body back into IRC text: `/me text` becomes a CTCP ACTION.
pub fn encode_body(body: &str) -> std::borrow::Cow<'_, str> {
    match body.strip_prefix("/me ") {
        Some(action) => format!("\u{1}ACTION {action}\u{1}").into(),
        None => body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_and_formatting_decode() {
        assert_eq!(decode_body("\u{1}ACTION waves\u{1}"), "/me waves");
        assert_eq!(
            decode_body("\u{2}bold\u{2} \u{3}04,12red\u{3} plain"),
            "bold red plain"
        );
        assert_eq!(decode_body("\u{3}5,x"), ",x");
        assert_eq!(decode_body("你好 👋"), "你好 👋");
    }

    #[test]
    fn action_encodes_back() {
        assert_eq!(encode_body("/me waves"), "\u{1}ACTION waves\u{1}");
        assert_eq!(encode_body("hi"), "hi");
    }
}
