//! `MODE`: user modes, and the channel modes that mirror room settings. Channel modes
//! are `b` (ban list), `i` (private room, read only), `m` (moderated), `t` (topic
//! lock) and `o` (admin role). Every change goes through the service, which stores it
//! as a room event, so IRC peers see the `MODE` line through their sinks.

use super::conn::Connection;
use super::names::{channel_key, nick_from_display_name};
use super::numerics::*;
use super::sink::user_source;
use crate::core::error::ErrorCode;
use crate::core::ids::{RoomId, UserId};
use crate::core::model::{Room, Visibility};
use crate::core::role::Role;
use crate::service::RoomSettings;

/// Returns the ban mask shown for a user: the nickname for people to read, the user
/// part `u<id>` that [`parse_ban_mask`] resolves exactly even after a rename.
pub fn ban_mask(display_name: &str, user: UserId) -> String {
    format!("{}!u{user}@*", nick_from_display_name(display_name))
}

/// Returns the `+…` mode string of a room, as in RPL_CHANNELMODEIS (324).
pub fn channel_modes(room: &Room) -> String {
    let mut modes = String::from("+");
    if room.visibility != Visibility::Public {
        modes.push('i');
    }
    if room.moderated {
        modes.push('m');
    }
    if room.topic_locked {
        modes.push('t');
    }
    modes
}

/// Whom a ban mask names.
#[derive(Debug, PartialEq, Eq)]
pub enum BanTarget {
    /// The user with this id, from a user part `u<id>`.
    Id(UserId),
    /// The user with this nickname.
    Nick(String),
}

/// Parses a ban mask into the one user it names: `nick`, `nick!*@*`, or
/// `<nick or *>!u<id>@<host or *>`. Confab bans users, not address patterns, so other
/// wildcard masks return `None`.
pub fn parse_ban_mask(mask: &str) -> Option<BanTarget> {
    let Some((nick, rest)) = mask.split_once('!') else {
        return (!mask.is_empty() && !mask.contains(['*', '?', '@']))
            .then(|| BanTarget::Nick(mask.to_owned()));
    };
    let (user, _host) = rest.split_once('@')?;
    if let Some(id) = user.strip_prefix('u').and_then(|id| id.parse::<i64>().ok()) {
        return Some(BanTarget::Id(UserId(id)));
    }
    let plain_nick = !nick.is_empty() && !nick.contains(['*', '?']);
    (plain_nick && rest == "*@*").then(|| BanTarget::Nick(nick.to_owned()))
}

/// One requested mode change: `+x`, `-x`, with its parameter when the mode takes one.
#[derive(Debug, PartialEq, Eq)]
struct ModeChange {
    adding: bool,
    letter: char,
    param: Option<String>,
}

/// Splits a mode string and its parameters into changes. `b` and `o` take a parameter
/// (a `b` without one lists the bans); the flag modes take none.
fn parse_mode_changes(modestring: &str, params: &[String]) -> Vec<ModeChange> {
    let mut params = params.iter();
    let mut adding = true;
    let mut changes = Vec::new();
    for letter in modestring.chars() {
        match letter {
            '+' => adding = true,
            '-' => adding = false,
            'b' | 'o' => changes.push(ModeChange {
                adding,
                letter,
                param: params.next().cloned(),
            }),
            _ => changes.push(ModeChange {
                adding,
                letter,
                param: None,
            }),
        }
    }
    changes
}

impl Connection {
    /// Handles `MODE`: channel modes here, user modes in [`Connection::user_mode`].
    pub(super) async fn mode(&mut self, params: &[String]) {
        let Some(view) = self.view.clone() else {
            return;
        };
        let target = params[0].as_str();
        if !target.starts_with('#') {
            self.user_mode(&view, params);
            return;
        }
        let Some(room_id) = view.room_of(target) else {
            self.numeric(ERR_NOTONCHANNEL, &[target, "You're not on that channel"]);
            return;
        };
        match params.get(1) {
            None => self.show_channel_modes(room_id, target).await,
            Some(modestring) => {
                let changes = parse_mode_changes(modestring, &params[2..]);
                self.change_channel_modes(room_id, target, changes).await;
            }
        }
    }

    /// Replies RPL_CHANNELMODEIS (324) with the room's current modes.
    async fn show_channel_modes(&mut self, room_id: RoomId, channel: &str) {
        let Some(session) = self.session.clone() else {
            return;
        };
        match self.shared.service.room(&session, room_id).await {
            Ok(entry) => {
                let modes = channel_modes(&entry.room);
                self.numeric(RPL_CHANNELMODEIS, &[channel, &modes]);
            }
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, text]);
            }
        }
    }

    /// Applies mode changes in order. The flag modes `m` and `t` are collected into one
    /// settings change, applied after the others.
    async fn change_channel_modes(
        &mut self,
        room_id: RoomId,
        channel: &str,
        changes: Vec<ModeChange>,
    ) {
        let mut settings = RoomSettings::default();
        for change in changes {
            match (change.letter, change.param) {
                ('m', _) => settings.moderated = Some(change.adding),
                ('t', _) => settings.topic_locked = Some(change.adding),
                ('b', None) => self.send_ban_list(room_id, channel).await,
                ('b', Some(mask)) => {
                    self.change_ban(room_id, channel, change.adding, &mask)
                        .await
                }
                ('o', None) => self.numeric(ERR_NEEDMOREPARAMS, &["MODE", "Not enough parameters"]),
                ('o', Some(nick)) => {
                    self.change_operator(room_id, channel, change.adding, &nick)
                        .await
                }
                ('i', _) => self.numeric(
                    ERR_UNKNOWNMODE,
                    &["i", "is set by the room's visibility and cannot be changed"],
                ),
                (letter, _) => self.numeric(
                    ERR_UNKNOWNMODE,
                    &[&letter.to_string(), "is unknown mode char to me"],
                ),
            }
        }
        if settings.moderated.is_none() && settings.topic_locked.is_none() {
            return;
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        let service = self.shared.service.clone();
        // On success the stored `settings` event reaches every IRC member, this client
        // included, as a MODE line.
        if let Err(err) = service
            .update_room_settings(&session, room_id, settings)
            .await
        {
            self.mode_error(channel, &err);
        }
    }

    /// Replies to a rejected mode change: 482 when the caller lacks the rights, 403 for
    /// other errors.
    fn mode_error(&mut self, channel: &str, err: &crate::core::error::ChatError) {
        let text = self.error_text(err);
        let code = match err.code() {
            ErrorCode::Forbidden | ErrorCode::NotMember => ERR_CHANOPRIVSNEEDED,
            _ => ERR_NOSUCHCHANNEL,
        };
        self.numeric(code, &[channel, text]);
    }

    /// Sends RPL_BANLIST (367) for each ban, then RPL_ENDOFBANLIST (368); members who are
    /// not moderators get only the 368.
    async fn send_ban_list(&mut self, room_id: RoomId, channel: &str) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let bans = match self.shared.service.bans(&session, room_id).await {
            Ok(bans) => bans,
            // Only moderators may read the ban list. Clients such as irssi ask for it on
            // every JOIN and wait for 368, so a member gets an empty list, not 482.
            Err(err) if err.code() == ErrorCode::Forbidden => Vec::new(),
            Err(err) => {
                self.mode_error(channel, &err);
                return;
            }
        };
        for ban in bans {
            let mask = ban_mask(&ban.user.display_name, ban.user.id);
            let setter = ban
                .banned_by_name
                .as_deref()
                .map(nick_from_display_name)
                .unwrap_or_else(|| "*".to_owned());
            let set_at = (ban.created_at / 1000).to_string();
            self.numeric(RPL_BANLIST, &[channel, &mask, &setter, &set_at]);
        }
        self.numeric(RPL_ENDOFBANLIST, &[channel, "End of channel ban list"]);
    }

    /// Handles `+b mask` and `-b mask`. The stored `ban` or `unban` event reaches every
    /// IRC member as the MODE line.
    async fn change_ban(&mut self, room_id: RoomId, channel: &str, adding: bool, mask: &str) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let user_id = match parse_ban_mask(mask) {
            Some(BanTarget::Id(id)) => id,
            Some(BanTarget::Nick(nick)) => match self.user_by_nick(&nick).await {
                Some(user) => user.id,
                None => {
                    self.numeric(ERR_NOSUCHNICK, &[&nick, "No such nick/channel"]);
                    return;
                }
            },
            None => {
                let sign = if adding { "+b" } else { "-b" };
                self.numeric(
                    ERR_INVALIDMODEPARAM,
                    &[
                        channel,
                        sign,
                        mask,
                        "Ban masks name one user: nick, nick!*@* or *!u<id>@*",
                    ],
                );
                return;
            }
        };
        let service = self.shared.service.clone();
        let result = if adding {
            service.ban(&session, room_id, user_id, None).await
        } else {
            service.unban(&session, room_id, user_id).await
        };
        match result {
            Ok(()) => {}
            // Removing a ban that does not exist changes nothing and gets no reply.
            Err(err) if err.code() == ErrorCode::NotBanned => {}
            Err(err) if err.code() == ErrorCode::UserNotFound => {
                self.numeric(ERR_NOSUCHNICK, &[mask, "No such nick/channel"]);
            }
            Err(err) => self.mode_error(channel, &err),
        }
    }

    /// Handles `+o nick` and `-o nick`: makes a member an admin or a plain member.
    async fn change_operator(&mut self, room_id: RoomId, channel: &str, adding: bool, nick: &str) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let service = self.shared.service.clone();
        let members = match service.members(&session, room_id).await {
            Ok(members) => members,
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_NOSUCHCHANNEL, &[channel, text]);
                return;
            }
        };
        let key = channel_key(nick);
        let Some(member) = members
            .iter()
            .find(|m| channel_key(&nick_from_display_name(&m.user.display_name)) == key)
        else {
            self.numeric(
                ERR_USERNOTINCHANNEL,
                &[nick, channel, "They aren't on that channel"],
            );
            return;
        };
        let role = if adding { Role::Admin } else { Role::Member };
        match service
            .set_role(&session, room_id, member.user.id, role)
            .await
        {
            Ok(()) => {
                let source = user_source(&view.nick(), view.user_id);
                let change = if adding { "+o" } else { "-o" };
                self.emit(format!(":{source} MODE {channel} {change} {nick}\r\n"));
            }
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_CHANOPRIVSNEEDED, &[channel, text]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_masks_resolve_to_one_user() {
        let cases = [
            ("alice", Some(BanTarget::Nick("alice".into()))),
            ("alice!*@*", Some(BanTarget::Nick("alice".into()))),
            ("*!u42@*", Some(BanTarget::Id(UserId(42)))),
            ("alice!u42@confab", Some(BanTarget::Id(UserId(42)))),
            ("*!*@*", None),
            ("ali*", None),
            ("alice!bob@*", None),
            ("*!*@example.com", None),
            ("", None),
        ];
        for (mask, expected) in cases {
            assert_eq!(parse_ban_mask(mask), expected, "mask {mask:?}");
        }
    }

    #[test]
    fn ban_mask_round_trips() {
        let mask = ban_mask("Ann Lee", UserId(7));
        assert_eq!(mask, "Ann_Lee!u7@*");
        assert_eq!(parse_ban_mask(&mask), Some(BanTarget::Id(UserId(7))));
    }

    #[test]
    fn mode_string_pairs_parameters() {
        let params = vec!["a!*@*".to_owned(), "bob".to_owned()];
        let changes = parse_mode_changes("+mb-to", &params);
        let letters: Vec<_> = changes.iter().map(|c| (c.adding, c.letter)).collect();
        assert_eq!(
            letters,
            [(true, 'm'), (true, 'b'), (false, 't'), (false, 'o')]
        );
        assert_eq!(changes[1].param.as_deref(), Some("a!*@*"));
        assert_eq!(changes[3].param.as_deref(), Some("bob"));
        let listing = parse_mode_changes("b", &[]);
        assert_eq!(listing[0].param, None);
    }
}
