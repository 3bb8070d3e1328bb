//! `CHATHISTORY` (IRCv3 draft/chathistory) over the service's history pages, so a
//! reconnecting client can fetch what it missed. Message ids are `<room id>-<seq>`, so a
//! `msgid=` reference maps to a room position without a lookup.

use super::caps::Capability;
use super::conn::Connection;
use super::line;
use super::sink::{encode_text, msgid_of};
use crate::core::ids::{RoomId, Seq};
use crate::core::model::{Message, MessageKind};
use crate::service::{HISTORY_PAGE_MAX, HistoryQuery, RoomRef};

/// A message reference in a CHATHISTORY command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reference {
    /// `*`: no bound.
    Unbounded,
    /// `msgid=<room>-<seq>`.
    Seq(i64),
}

fn parse_reference(text: &str, room: RoomId) -> Option<Reference> {
    if text == "*" {
        return Some(Reference::Unbounded);
    }
    let id = text.strip_prefix("msgid=")?;
    let (room_text, seq_text) = id.split_once('-')?;
    if room_text.parse::<i64>().ok()? != room.0 {
        return None;
    }
    seq_text.parse().ok().map(Reference::Seq)
}

impl Connection {
    /// Handles `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN <target> ...`.
    pub(super) async fn chathistory(&mut self, params: &[String]) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let sub = params[0].to_ascii_uppercase();
        let target = params[1].as_str();
        // FAIL CHATHISTORY <code> <subcommand> <target> :<description>
        let fail = |code: &str, text: &str| -> Vec<String> {
            vec![
                code.to_owned(),
                sub.clone(),
                target.to_owned(),
                text.to_owned(),
            ]
        };
        let service = self.shared.service.clone();
        let room = match target.strip_prefix('#') {
            Some(name) => service.find_room(&RoomRef::Name(name.to_owned())).await,
            None => {
                let params = fail("INVALID_TARGET", "Only channels have history here");
                self.fail_reply(&params);
                return;
            }
        };
        let Ok(room) = room else {
            let params = fail("INVALID_TARGET", "No such channel");
            self.fail_reply(&params);
            return;
        };

        // Parse the references and the limit for the subcommand.
        let (first, second, limit_text) = match (sub.as_str(), params.len()) {
            ("BETWEEN", 5) => (&params[2], Some(&params[3]), &params[4]),
            ("LATEST" | "BEFORE" | "AFTER" | "AROUND", 4) => (&params[2], None, &params[3]),
            _ => {
                let params = fail("INVALID_PARAMS", "Unknown subcommand or wrong parameters");
                self.fail_reply(&params);
                return;
            }
        };
        let limit = match limit_text.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(HISTORY_PAGE_MAX),
            _ => {
                let params = fail("INVALID_PARAMS", "Invalid limit");
                self.fail_reply(&params);
                return;
            }
        };
        let refs = (
            parse_reference(first, room.id),
            second.map(|s| parse_reference(s, room.id)),
        );
        let (Some(first), second) = refs else {
            let params = fail(
                "INVALID_MSGREFTYPE",
                "Only * and msgid= references are supported",
            );
            self.fail_reply(&params);
            return;
        };
        let second = match second {
            None => None,
            Some(Some(r)) => Some(r),
            Some(None) => {
                let params = fail(
                    "INVALID_MSGREFTYPE",
                    "Only * and msgid= references are supported",
                );
                self.fail_reply(&params);
                return;
            }
        };

        // Fetch the pages the subcommand needs; each is oldest first.
        let page = |before: Option<i64>, after: Option<i64>, limit: i64| HistoryQuery {
            before: before.map(Seq),
            after: after.map(Seq),
            limit: Some(limit),
        };
        let mut messages: Vec<Message> = Vec::new();
        let result: crate::core::error::ChatResult<()> = async {
            match (sub.as_str(), first, second) {
                ("LATEST", Reference::Unbounded, _) => {
                    messages = service
                        .history(&session, room.id, page(None, None, limit))
                        .await?
                        .messages;
                }
                ("LATEST", Reference::Seq(after), _) => {
                    messages = service
                        .history(&session, room.id, page(None, None, limit))
                        .await?
                        .messages;
                    messages.retain(|m| m.seq.0 > after);
                }
                ("BEFORE", Reference::Seq(before), _) => {
                    messages = service
                        .history(&session, room.id, page(Some(before), None, limit))
                        .await?
                        .messages;
                }
                ("AFTER", Reference::Seq(after), _) => {
                    messages = service
                        .history(&session, room.id, page(None, Some(after), limit))
                        .await?
                        .messages;
                }
                ("AROUND", Reference::Seq(center), _) => {
                    let older = (limit + 1) / 2;
                    let newer = limit - older;
                    messages = service
                        .history(&session, room.id, page(Some(center + 1), None, older))
                        .await?
                        .messages;
                    if newer > 0 {
                        let later = service
                            .history(&session, room.id, page(None, Some(center), newer))
                            .await?;
                        messages.extend(later.messages);
                    }
                }
                ("BETWEEN", Reference::Seq(a), Some(Reference::Seq(b))) if a < b => {
                    messages = service
                        .history(&session, room.id, page(None, Some(a), limit))
                        .await?
                        .messages;
                    messages.retain(|m| m.seq.0 < b);
                }
                ("BETWEEN", Reference::Seq(a), Some(Reference::Seq(b))) => {
                    messages = service
                        .history(&session, room.id, page(Some(a), None, limit))
                        .await?
                        .messages;
                    messages.retain(|m| m.seq.0 > b);
                }
                _ => {
                    return Err(crate::core::error::ChatError::new(
                        crate::core::error::ErrorCode::InvalidPayload,
                        "unbounded reference where a message is needed",
                    ));
                }
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            let text = self.error_text(&err);
            let params = fail("MESSAGE_ERROR", text);
            self.fail_reply(&params);
            return;
        }

        // Send the text messages in a chathistory batch, oldest first.
        let channel = format!("#{}", room.name);
        let batch = self.caps().has(Capability::Batch);
        let id = format!("H{}", self.serial);
        if batch {
            let line = self.server_line("BATCH", &[&format!("+{id}"), "chathistory", &channel]);
            self.emit(line);
        }
        for message in messages
            .iter()
            .filter(|m| m.kind == MessageKind::Text && !m.is_deleted())
        {
            let text = encode_text(message, &channel);
            let mut tags = vec![format!("time={}", line::server_time(message.created_at))];
            if self.caps().has(Capability::MessageTags) {
                tags.push(format!("msgid={}", msgid_of(message)));
            }
            if batch {
                tags.insert(0, format!("batch={id}"));
            }
            let prefix = format!("@{} ", tags.join(";"));
            for piece in text.lines() {
                self.emit(format!("{prefix}{piece}"));
            }
        }
        if batch {
            let line = self.server_line("BATCH", &[&format!("-{id}")]);
            self.emit(line);
        }
    }

    /// Sends `FAIL CHATHISTORY <params>` (IRCv3 standard replies).
    fn fail_reply(&mut self, params: &[String]) {
        let mut all: Vec<&str> = vec!["CHATHISTORY"];
        all.extend(params.iter().map(String::as_str));
        let line = self.server_line("FAIL", &all);
        self.emit(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_for_their_room_only() {
        let room = RoomId(4);
        assert_eq!(parse_reference("*", room), Some(Reference::Unbounded));
        assert_eq!(
            parse_reference("msgid=4-17", room),
            Some(Reference::Seq(17))
        );
        assert_eq!(parse_reference("msgid=5-17", room), None);
        assert_eq!(
            parse_reference("timestamp=2026-01-01T00:00:00.000Z", room),
            None
        );
        assert_eq!(parse_reference("msgid=4-x", room), None);
    }
}
