//! Lookup and moderation commands: WHO, WHOIS, LIST, KICK and INVITE (RFC 2812 sections
//! 3.2.6 to 3.2.8 and 3.6). Nicknames resolve to users through the live IRC nicknames
//! first, then through registered usernames.

use super::NickOwner;
use super::conn::Connection;
use super::names::{channel_key, nick_from_display_name, nick_key};
use super::numerics::*;
use crate::core::error::ErrorCode;
use crate::core::ids::RoomId;
use crate::core::model::{Member, User, Visibility};

impl Connection {
    /// Finds the user a nickname names: a live IRC user, or a registered account whose
    /// username it is.
    pub(super) async fn user_by_nick(&self, nick: &str) -> Option<User> {
        let service = &self.shared.service;
        if let Some(NickOwner::User(id)) = self.shared.nicks.owner(nick) {
            return service.user(id).await.ok();
        }
        service.user_by_username(nick).await.ok()
    }

    /// Finds the member of a room whose nickname is `nick`.
    async fn member_by_nick(&mut self, room: RoomId, nick: &str) -> Option<Member> {
        let session = self.session.clone()?;
        let members = self.shared.service.members(&session, room).await.ok()?;
        let key = nick_key(nick);
        members
            .into_iter()
            .find(|m| nick_key(&nick_from_display_name(&m.user.display_name)) == key)
    }

    /// Handles `WHO #channel`: one 352 per member, then 315. Other masks get only 315.
    /// The flags are `H` (here) or `G` (gone: offline or away), `*` for an operator
    /// on this node and `@` for a moderator.
    pub(super) async fn who(&mut self, mask: Option<&String>) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let mask = mask.map_or("*", String::as_str).to_owned();
        let server = self.shared.settings.server_name.clone();
        if let Some(room) = view.room_of(&mask)
            && let Ok(members) = self.shared.service.members(&session, room).await
        {
            for member in members {
                let nick = nick_from_display_name(&member.user.display_name);
                let away = self.shared.service.away_message(member.user.id).is_some();
                let mut flags = String::from(if member.online && !away { "H" } else { "G" });
                if self.shared.operators.contains(member.user.id) {
                    flags.push('*');
                }
                if member.role.is_moderator() {
                    flags.push('@');
                }
                let user = format!("u{}", member.user.id);
                let real = format!("0 {}", member.user.display_name);
                self.numeric(
                    RPL_WHOREPLY,
                    &[&mask, &user, "confab", &server, &nick, &flags, &real],
                );
            }
        }
        self.numeric(RPL_ENDOFWHO, &[&mask, "End of WHO list"]);
    }

    /// Handles `WHOIS nick`: 311, 312, 313 for operators, 301 when away, 330 for
    /// registered accounts, then 318.
    pub(super) async fn whois(&mut self, params: &[String]) {
        // `WHOIS server nick` names the nickname last.
        let nick = params.last().map_or("", String::as_str).to_owned();
        let server = self.shared.settings.server_name.clone();
        match self.user_by_nick(&nick).await {
            Some(user) => {
                let shown = nick_from_display_name(&user.display_name);
                let user_name = format!("u{}", user.id);
                self.numeric(
                    RPL_WHOISUSER,
                    &[&shown, &user_name, "confab", "*", &user.display_name],
                );
                self.numeric(RPL_WHOISSERVER, &[&shown, &server, "Confab"]);
                if self.shared.operators.contains(user.id) {
                    self.numeric(RPL_WHOISOPERATOR, &[&shown, "is an IRC operator"]);
                }
                if let Some(message) = self.shared.service.away_message(user.id) {
                    self.numeric(RPL_AWAY, &[&shown, &message]);
                }
                if let Some(account) = &user.username {
                    self.numeric(RPL_WHOISACCOUNT, &[&shown, account, "is logged in as"]);
                }
            }
            None => self.numeric(ERR_NOSUCHNICK, &[&nick, "No such nick/channel"]),
        }
        self.numeric(RPL_ENDOFWHOIS, &[&nick, "End of /WHOIS list"]);
    }

    /// Handles `LIST`: the rooms the user may see (public rooms and the user's own),
    /// without direct conversations.
    pub(super) async fn list(&mut self) {
        let Some(session) = self.session.clone() else {
            return;
        };
        self.numeric(RPL_LISTSTART, &["Channel", "Users  Name"]);
        match self.shared.service.list_rooms(&session).await {
            Ok(rooms) => {
                for entry in rooms
                    .iter()
                    .filter(|e| e.room.visibility != Visibility::Direct)
                {
                    let channel = format!("#{}", entry.room.name);
                    let count = entry.room.member_count.to_string();
                    self.numeric(RPL_LIST, &[&channel, &count, &entry.room.topic]);
                }
            }
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_UNKNOWNCOMMAND, &["LIST", text]);
            }
        }
        self.numeric(RPL_LISTEND, &["End of /LIST"]);
    }

    /// Handles `KICK #channel nick [:reason]` through the service's kick rule.
    pub(super) async fn kick(&mut self, params: &[String]) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let channel = params[0].as_str();
        let Some(room) = view.room_of(channel) else {
            self.numeric(ERR_NOTONCHANNEL, &[channel, "You're not on that channel"]);
            return;
        };
        for nick in params[1].split(',').filter(|n| !n.is_empty()) {
            let Some(member) = self.member_by_nick(room, nick).await else {
                self.numeric(
                    ERR_USERNOTINCHANNEL,
                    &[nick, channel, "They aren't on that channel"],
                );
                continue;
            };
            if let Err(err) = self
                .shared
                .service
                .kick(&session, room, member.user.id)
                .await
            {
                let text = self.error_text(&err);
                self.numeric(ERR_CHANOPRIVSNEEDED, &[channel, text]);
            }
        }
    }

    /// Handles `INVITE nick #channel` through the service's invitation rule; the
    /// invited user can then join the private room from any client.
    pub(super) async fn invite(&mut self, params: &[String]) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let (nick, channel) = (params[0].as_str(), params[1].as_str());
        let Some(target) = self.user_by_nick(nick).await else {
            self.numeric(ERR_NOSUCHNICK, &[nick, "No such nick/channel"]);
            return;
        };
        let service = self.shared.service.clone();
        let room = match service
            .find_room(&crate::service::RoomRef::Name(
                channel.trim_start_matches('#').to_owned(),
            ))
            .await
        {
            Ok(room) if channel_key(channel) == channel_key(&room.name) => room,
            _ => {
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, "No such channel"]);
                return;
            }
        };
        match service.invite(&session, room.id, target.id).await {
            Ok(()) => self.numeric(RPL_INVITING, &[nick, channel]),
            Err(err) if err.code() == ErrorCode::AlreadyMember => {
                self.numeric(ERR_USERONCHANNEL, &[nick, channel, "is already on channel"]);
            }
            Err(err) if err.code() == ErrorCode::RoomNotFound => {
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, "No such channel"]);
            }
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_CHANOPRIVSNEEDED, &[channel, text]);
            }
        }
    }
}
