//! `AWAY` and the replies that show an away message (RFC 2812 sections 4.1 and 3.3.1,
//! IRCv3 away-notify). The message itself is kept by the service, so every IRC
//! connection of the user on this node shares it.

use super::conn::Connection;
use super::numerics::*;

impl Connection {
    /// Handles `AWAY [:message]`: sets or clears the user's away message through the
    /// service, which announces it to peers with away-notify.
    pub(super) async fn away_command(&mut self, message: Option<&String>) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let message = message.map(String::as_str).filter(|m| !m.is_empty());
        match self.shared.service.set_away(&session, message).await {
            Ok(Some(_)) => self.numeric(RPL_NOWAWAY, &["You have been marked as being away"]),
            Ok(None) => self.numeric(RPL_UNAWAY, &["You are no longer marked as being away"]),
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_UNKNOWNCOMMAND, &["AWAY", text]);
            }
        }
    }

    /// Sends 301 RPL_AWAY about `nick` when that user is away.
    pub(super) async fn reply_if_away(&mut self, nick: &str) {
        let Some(user) = self.user_by_nick(nick).await else {
            return;
        };
        if let Some(message) = self.shared.service.away_message(user.id) {
            let shown = super::names::nick_from_display_name(&user.display_name);
            self.numeric(RPL_AWAY, &[&shown, &message]);
        }
    }
}
