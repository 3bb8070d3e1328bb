//! Messages: sending, editing, deleting, history, catch-up after a reconnect, typing.

use super::{ChatService, Session};
use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::event::{Event, MessageDeleted, TagMessage, Typing};
use crate::core::ids::{MessageId, RoomId, Seq};
use crate::core::model::{HistoryPage, Message, MessageKind, SendAck};
use crate::core::names;
use crate::core::time::now_millis;
use crate::hub::Outbound;
use crate::store::{NewMessage, Page};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Maximum messages in one history page.
pub const HISTORY_PAGE_MAX: i64 = 100;
/// Page size when the client names none.
pub const HISTORY_PAGE_DEFAULT: i64 = 50;
/// Maximum rooms in one catch-up request.
pub const SYNC_ROOMS_MAX: usize = 500;
/// Maximum messages in one catch-up reply, across all its rooms.
pub const SYNC_MESSAGES_MAX: i64 = 500;
/// Shortest gap between two forwarded typing events of one user in one room.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);
/// Maximum bytes of client-only tags on one message or tag message, as IRCv3 Message
/// Tags limits a client's tag data (4094 bytes without the leading '@' and the space).
pub const CLIENT_TAGS_MAX_BYTES: usize = 4094;

/// Checks a client-only tag section: `;`-separated, each key starting with '+', within
/// [`CLIENT_TAGS_MAX_BYTES`], and free of the bytes that end a tag section or a line.
fn validate_client_tags(tags: &str) -> ChatResult<()> {
    let invalid = |reason: &str| {
        Err(ChatError::new(
            ErrorCode::InvalidPayload,
            format!("invalid client tags: {reason}"),
        ))
    };
    if tags.is_empty() {
        return invalid("empty");
    }
    if tags.len() > CLIENT_TAGS_MAX_BYTES {
        return Err(ChatError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "client tags have {} bytes, more than {CLIENT_TAGS_MAX_BYTES}",
                tags.len()
            ),
        ));
    }
    if tags.contains([' ', '\r', '\n', '\0']) {
        return invalid("space, CR, LF or NUL");
    }
    if tags
        .split(';')
        .any(|tag| !tag.starts_with('+') || tag.len() < 2)
    {
        return invalid("every key must start with '+'");
    }
    Ok(())
}

/// Starting point of a catch-up in one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncFrom {
    /// After the last `seq` seen: new messages only.
    Seq(Seq),
    /// After the last revision seen: new messages, edits and deletions.
    Rev(i64),
}

/// A history request: the newest page, or the page before or after a `seq`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub before: Option<Seq>,
    pub after: Option<Seq>,
    pub limit: Option<i64>,
}

impl ChatService {
    /// Publishes a committed message to the room and counts it.
    pub(super) fn after_commit(&self, started: Instant, message: Message) {
        self.metrics.messages_stored.inc();
        self.throughput.record(1);
        let room = message.room_id;
        self.hub
            .publish(room, Outbound::new(Event::MessageNew(message), started));
    }

    /// Stores a text message and returns the acknowledgement. The acknowledgement is built
    /// from the committed row, so a client that has it may rely on the message being
    /// durable. A resend with the same `client_msg_id` stores nothing and returns the
    /// first acknowledgement again, marked `duplicate`.
    pub async fn send_message(
        &self,
        session: &Session,
        room_id: RoomId,
        body: &str,
        client_msg_id: Option<&str>,
    ) -> ChatResult<SendAck> {
        self.send_tagged_message(session, room_id, body, client_msg_id, None)
            .await
    }

    /// Stores a text message like [`ChatService::send_message`], and attaches IRCv3
    /// client-only tags to its live event. The tags are checked like a tag message's and
    /// are not stored.
    pub async fn send_tagged_message(
        &self,
        session: &Session,
        room_id: RoomId,
        body: &str,
        client_msg_id: Option<&str>,
        client_tags: Option<&str>,
    ) -> ChatResult<SendAck> {
        let started = Instant::now();

        // Cheap checks first, so a flood of bad requests costs no store round trip.
        let body = names::validate_body(body, self.config.max_message_chars)?;
        if let Some(id) = client_msg_id {
            names::validate_client_msg_id(id)?;
        }
        if let Some(tags) = client_tags {
            validate_client_tags(tags)?;
        }
        self.check_send_limit(session.user_id()).await?;

        let access = self.access(session, room_id).await?;
        let role = access.member_role()?;
        Self::check_may_post(&access.room, role)?;

        let _write = self.begin_write()?;
        let appended = self
            .store
            .append_message(NewMessage {
                room_id,
                kind: MessageKind::Text,
                author_id: Some(session.user_id()),
                author_name: self.current_user(session).await?.display_name,
                body,
                target_id: None,
                target_name: None,
                client_msg_id: client_msg_id.map(str::to_owned),
                created_at: now_millis(),
            })
            .await?;
        self.metrics
            .store_write_latency
            .observe(started.elapsed().as_secs_f64());

        let mut message = appended.message;
        message.author_account = session.user.username.clone();
        message.client_tags = client_tags.map(str::to_owned);
        // client_msg_id is unique per author, so an id already stored in another room
        // names a different message: storing nothing and acknowledging would lose this one.
        if appended.duplicate && message.room_id != room_id {
            return Err(ChatError::new(
                ErrorCode::ClientMsgIdReused,
                format!(
                    "client_msg_id of message {} in room {} reused for room {room_id}",
                    message.id, message.room_id
                ),
            ));
        }
        let ack = SendAck {
            id: message.id,
            room_id: message.room_id,
            seq: message.seq,
            created_at: message.created_at,
            client_msg_id: message.client_msg_id.clone(),
            duplicate: appended.duplicate,
        };
        if !appended.duplicate {
            self.after_commit(started, message);
        }
        Ok(ack)
    }

    /// Loads a message the caller may see.
    async fn visible_message(
        &self,
        session: &Session,
        id: MessageId,
    ) -> ChatResult<(Message, Option<crate::core::role::Role>)> {
        let not_found = || ChatError::new(ErrorCode::MessageNotFound, format!("no message {id}"));
        let message = self.store.message_by_id(id).await?.ok_or_else(not_found)?;
        // Messages in rooms the caller cannot read look missing.
        let access = self
            .access(session, message.room_id)
            .await
            .map_err(|_| not_found())?;
        Ok((message, access.role))
    }

    /// Edits the caller's own text message.
    pub async fn edit_message(
        &self,
        session: &Session,
        id: MessageId,
        body: &str,
    ) -> ChatResult<Message> {
        let started = Instant::now();
        session.require_registered()?;
        let body = names::validate_body(body, self.config.max_message_chars)?;
        self.check_send_limit(session.user_id()).await?;
        let (message, role) = self.visible_message(session, id).await?;
        if role.is_none()
            || message.author_id != Some(session.user_id())
            || message.kind != MessageKind::Text
        {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("message {id} is not yours to edit"),
            ));
        }
        if message.is_deleted() {
            return Err(ChatError::new(
                ErrorCode::MessageDeleted,
                format!("message {id} is deleted"),
            ));
        }
        // Editing is posting new text, so a moderated room allows it only to moderators.
        if let (Some(role), Some(room)) = (role, self.store.room_by_id(message.room_id).await?) {
            Self::check_may_post(&room, role)?;
        }
        let _write = self.begin_write()?;
        let edited = self.store.edit_message(id, &body, now_millis()).await?;
        self.hub.publish(
            edited.room_id,
            Outbound::new(Event::MessageEdited(edited.clone()), started),
        );
        Ok(edited)
    }

    /// Deletes a text message, leaving a tombstone: authors delete their own, moderators any.
    pub async fn delete_message(&self, session: &Session, id: MessageId) -> ChatResult<Message> {
        let started = Instant::now();
        session.require_registered()?;
        let (message, role) = self.visible_message(session, id).await?;
        let own = message.author_id == Some(session.user_id());
        let moderator = role.is_some_and(|r| r.is_moderator());
        if role.is_none() || message.kind != MessageKind::Text || !(own || moderator) {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("message {id} is not yours to delete"),
            ));
        }
        if message.is_deleted() {
            return Err(ChatError::new(
                ErrorCode::MessageDeleted,
                format!("message {id} is deleted"),
            ));
        }
        let _write = self.begin_write()?;
        let deleted = self
            .store
            .delete_message(id, session.user_id(), now_millis())
            .await?;
        self.hub.publish(
            deleted.room_id,
            Outbound::new(
                Event::MessageDeleted(MessageDeleted {
                    room_id: deleted.room_id,
                    id: deleted.id,
                    seq: deleted.seq,
                    rev: deleted.rev,
                    deleted_by: session.user_id(),
                    deleted_at: deleted.deleted_at.unwrap_or_else(now_millis),
                }),
                started,
            ),
        );
        Ok(deleted)
    }

    /// Returns one page of a room's history, oldest first. Deleted messages come back as
    /// tombstones so paging never stalls on them; order is by `seq` alone.
    pub async fn history(
        &self,
        session: &Session,
        room_id: RoomId,
        query: HistoryQuery,
    ) -> ChatResult<HistoryPage> {
        self.read_limit.check(&session.user_id())?;
        self.history_page(session, room_id, query).await
    }

    async fn history_page(
        &self,
        session: &Session,
        room_id: RoomId,
        query: HistoryQuery,
    ) -> ChatResult<HistoryPage> {
        self.access(session, room_id).await?;
        let limit = query
            .limit
            .unwrap_or(HISTORY_PAGE_DEFAULT)
            .clamp(1, HISTORY_PAGE_MAX);
        let page = match (query.before, query.after) {
            (Some(_), Some(_)) => {
                return Err(ChatError::new(
                    ErrorCode::InvalidPayload,
                    "history takes before or after, not both",
                ));
            }
            (Some(before), None) => Page::Before(before),
            (None, Some(after)) => Page::After(after),
            (None, None) => Page::Latest,
        };
        // The revision is read first, so it never claims changes the page lacks.
        let last_rev = self.store.room_rev(room_id).await?;
        let (messages, has_more) = self.store.history(room_id, page, limit).await?;
        Ok(HistoryPage {
            room_id,
            messages,
            has_more,
            gone: false,
            last_rev,
        })
    }

    /// Returns the messages of a room created, edited or deleted after revision `after`,
    /// in revision order: at most one page, with `has_more` when there are more.
    pub async fn changes(
        &self,
        session: &Session,
        room_id: RoomId,
        after: i64,
    ) -> ChatResult<HistoryPage> {
        self.read_limit.check(&session.user_id())?;
        self.changes_page(session, room_id, after, HISTORY_PAGE_MAX)
            .await
    }

    async fn changes_page(
        &self,
        session: &Session,
        room_id: RoomId,
        after: i64,
        limit: i64,
    ) -> ChatResult<HistoryPage> {
        self.access(session, room_id).await?;
        let last_rev = self.store.room_rev(room_id).await?;
        let (messages, has_more) = self.store.changes(room_id, after, limit).await?;
        Ok(HistoryPage {
            room_id,
            messages,
            has_more,
            gone: false,
            last_rev,
        })
    }

    /// Returns what a reconnecting client missed, one page per room; `has_more` marks a
    /// room that needs another request. From a `seq`, the page contains the messages
    /// stored after it. From a revision, it contains every message created, edited or
    /// deleted after it. A room the caller can no longer read comes back empty with
    /// `gone` set.
    pub async fn sync(
        &self,
        session: &Session,
        last_seen: &[(RoomId, SyncFrom)],
    ) -> ChatResult<Vec<HistoryPage>> {
        if last_seen.len() > SYNC_ROOMS_MAX {
            return Err(ChatError::new(
                ErrorCode::InvalidPayload,
                format!(
                    "sync names {} rooms, the limit is {SYNC_ROOMS_MAX}",
                    last_seen.len()
                ),
            ));
        }
        let mut rooms = std::collections::HashSet::with_capacity(last_seen.len());
        if let Some((room, _)) = last_seen.iter().find(|(room, _)| !rooms.insert(*room)) {
            return Err(ChatError::new(
                ErrorCode::InvalidPayload,
                format!("sync names room {room} twice"),
            ));
        }
        self.read_limit.check(&session.user_id())?;

        // One reply carries at most SYNC_MESSAGES_MAX messages, shared among its rooms;
        // `has_more` sends the client back for the rest.
        let per_room =
            (SYNC_MESSAGES_MAX / last_seen.len().max(1) as i64).clamp(1, HISTORY_PAGE_MAX);
        let mut pages = Vec::with_capacity(last_seen.len());
        for (room_id, from) in last_seen {
            let page = match from {
                SyncFrom::Seq(seq) => {
                    let query = HistoryQuery {
                        before: None,
                        after: Some(*seq),
                        limit: Some(per_room),
                    };
                    self.history_page(session, *room_id, query).await
                }
                SyncFrom::Rev(rev) => self.changes_page(session, *room_id, *rev, per_room).await,
            };
            match page {
                Ok(page) => pages.push(page),
                // A room the user left or was removed from must not fail the others.
                Err(err) if err.code() == ErrorCode::RoomNotFound => pages.push(HistoryPage {
                    room_id: *room_id,
                    messages: Vec::new(),
                    has_more: false,
                    gone: true,
                    last_rev: 0,
                }),
                Err(err) => return Err(err),
            }
        }
        Ok(pages)
    }

    /// Announces to the room that the caller is typing, throttled to about one event per
    /// interval for each user and room.
    pub async fn typing(&self, session: &Session, room_id: RoomId) -> ChatResult<()> {
        self.publish_typing(session, room_id, false).await
    }

    /// Relays IRCv3 client-only tags to a room without storing anything (IRC `TAGMSG`).
    /// Each tag message counts against the sender's message budget. A `+typing=active`
    /// tag also goes out as a `typing` event, so web clients show the hint.
    pub async fn send_tag_message(
        &self,
        session: &Session,
        room_id: RoomId,
        tags: &str,
    ) -> ChatResult<()> {
        let started = Instant::now();
        validate_client_tags(tags)?;
        self.check_send_limit(session.user_id()).await?;
        let access = self.access(session, room_id).await?;
        access.member_role()?;
        let user = self.current_user(session).await?;
        if tags.split(';').any(|tag| tag == "+typing=active") {
            self.publish_typing(session, room_id, true).await?;
        }
        self.hub.publish(
            room_id,
            Outbound::new(
                Event::TagMessage(TagMessage {
                    room_id,
                    user_id: session.user_id(),
                    display_name: user.display_name,
                    account: user.username,
                    tags: tags.to_owned(),
                    id: format!("t{:016x}", rand::random::<u64>()),
                    sent_at: now_millis(),
                }),
                started,
            ),
        );
        Ok(())
    }

    async fn publish_typing(
        &self,
        session: &Session,
        room_id: RoomId,
        from_tag_message: bool,
    ) -> ChatResult<()> {
        let key = (session.user_id(), room_id);
        {
            let seen = self.typing_seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen
                .get(&key)
                .is_some_and(|at| at.elapsed() < TYPING_INTERVAL)
            {
                return Ok(());
            }
        }
        // Checked before recording, so only rooms the user is in take a map entry.
        let access = self.access(session, room_id).await?;
        access.member_role()?;
        self.typing_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Instant::now());
        let display_name = self.current_user(session).await?.display_name;
        self.hub.publish(
            room_id,
            Outbound::new(
                Event::Typing(Typing {
                    room_id,
                    user_id: session.user_id(),
                    display_name,
                    from_tag_message,
                }),
                Instant::now(),
            ),
        );
        Ok(())
    }
}
