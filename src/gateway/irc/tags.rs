//! IRCv3 client-only tags (`+name=value`): read from a client's line, and relayed live
//! with `TAGMSG` or on PRIVMSG and NOTICE. They are never stored.

use super::conn::Connection;
use super::line::{self, Message};
use super::numerics::*;

/// Returns the client-only tags of a line, escaped and `;`-separated, or `None` when it
/// has none. Tags without a value keep their bare form.
pub fn client_tags(message: &Message) -> Option<String> {
    let mut out = String::new();
    for (key, value) in message.tags.iter().filter(|(k, _)| k.starts_with('+')) {
        if key.len() < 2 {
            continue;
        }
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(key);
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            out.push('=');
            line::escape_tag_value(value, &mut out);
        }
    }
    (!out.is_empty()).then_some(out)
}

impl Connection {
    /// Handles `TAGMSG target[,target]` (IRCv3 message-tags): relays the line's
    /// client-only tags to channels and nicknames through the service. A line without
    /// client-only tags has nothing to relay and is dropped, as are tags to a target
    /// this client cannot send to, with the errors PRIVMSG gives.
    pub(super) async fn tagmsg(&mut self, targets: &str, client_tags: Option<String>) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let Some(tags) = client_tags else {
            return;
        };
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let room = if target.starts_with('#') {
                view.room_of(target)
            } else {
                self.open_direct_by_nick(target, false).await
            };
            let Some(room) = room else {
                if target.starts_with('#') {
                    self.numeric(
                        ERR_CANNOTSENDTOCHAN,
                        &[target, "Cannot send to channel: join it first"],
                    );
                }
                continue;
            };
            let sent = self
                .shared
                .service
                .send_tag_message(&session, room, &tags)
                .await;
            if let Err(err) = sent {
                let text = format!("Cannot send to channel: {}", self.error_text(&err));
                self.numeric(ERR_CANNOTSENDTOCHAN, &[target, &text]);
            }
        }
    }
}
