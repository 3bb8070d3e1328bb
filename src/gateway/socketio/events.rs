//! Client-to-server events: one dispatch table, one decoding path, one reply path.
//!
//! Every event may carry an acknowledgement callback. Replies are
//! `{"ok": true, "data": …}` or `{"ok": false, "error": {code, message, retry_after_ms}}`;
//! a failed event sent without a callback gets a `server:error` event instead, so an
//! error never passes silently.

use super::{Connection, ErrorPayload};
use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::i18n::Notice;
use crate::core::ids::{MessageId, RoomId, Seq, UserId};
use crate::core::model::Visibility;
use crate::service::{ChatService, RoomRef, RoomSettings, SyncFrom};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// One client event: its name and whether guests may send it.
struct EventSpec {
    name: &'static str,
    guests: bool,
}

/// Every event a client may send. Guests may read and post in public rooms, nothing more.
const EVENTS: &[EventSpec] = &[
    EventSpec {
        name: "message",
        guests: true,
    },
    EventSpec {
        name: "message:send",
        guests: true,
    },
    EventSpec {
        name: "message:edit",
        guests: false,
    },
    EventSpec {
        name: "message:delete",
        guests: false,
    },
    EventSpec {
        name: "room:join",
        guests: true,
    },
    EventSpec {
        name: "room:leave",
        guests: true,
    },
    EventSpec {
        name: "room:create",
        guests: false,
    },
    EventSpec {
        name: "room:history",
        guests: true,
    },
    EventSpec {
        name: "room:members",
        guests: true,
    },
    EventSpec {
        name: "room:topic",
        guests: false,
    },
    EventSpec {
        name: "room:invite",
        guests: false,
    },
    EventSpec {
        name: "room:kick",
        guests: false,
    },
    EventSpec {
        name: "room:role",
        guests: false,
    },
    EventSpec {
        name: "room:ban",
        guests: false,
    },
    EventSpec {
        name: "room:unban",
        guests: false,
    },
    EventSpec {
        name: "room:bans",
        guests: false,
    },
    EventSpec {
        name: "room:settings",
        guests: false,
    },
    EventSpec {
        name: "rooms:list",
        guests: true,
    },
    EventSpec {
        name: "dm:open",
        guests: false,
    },
    EventSpec {
        name: "typing",
        guests: true,
    },
    EventSpec {
        name: "sync",
        guests: true,
    },
];

/// An event's place in its connection's arrival order, and whether the client attached
/// an acknowledgement callback. socketioxide extracts arguments synchronously as packets
/// arrive and only then spawns the handler task, so tickets follow arrival order even
/// though the tasks may start in any order.
struct Arrival {
    ticket: u64,
    wants_ack: bool,
}

impl<A: Adapter> FromMessageParts<A> for Arrival {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let Some(conn) = s.extensions.get::<Arc<Connection>>() else {
            return Ok(Arrival {
                ticket: 0,
                wants_ack: ack_id.is_some(),
            });
        };
        let ticket = conn.next_ticket.fetch_add(1, Ordering::Relaxed);
        // Each waiting event keeps a task and its payload in memory. A client that keeps this many
        // waiting is sending faster than it can be served, so it is closed.
        let waiting = ticket.saturating_sub(*conn.turn.borrow());
        if waiting > EVENTS_WAITING_MAX && conn.closing.set(Notice::TooManyEvents).is_ok() {
            tracing::warn!(sid = %s.id, waiting, "too many events waiting, closing the connection");
            super::sink::disconnect_when_possible(
                SocketRef::from(s.clone()),
                Notice::TooManyEvents,
            );
        }
        Ok(Arrival {
            ticket,
            wants_ack: ack_id.is_some(),
        })
    }
}

/// Holds a connection's turn; passes it to the next ticket when dropped, also when the
/// handler fails early.
struct Turn<'a>(&'a Connection);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.turn.send_modify(|t| *t += 1);
    }
}

/// Waits until it is this ticket's turn on the connection.
async fn take_turn(conn: &Connection, ticket: u64) -> Turn<'_> {
    let mut turn = conn.turn.subscribe();
    // The sender lives in `conn`, which outlives this wait, so the channel cannot close.
    let _ = turn.wait_for(|t| *t == ticket).await;
    Turn(conn)
}

/// Most events of one connection waiting for their turn before it is closed.
const EVENTS_WAITING_MAX: u64 = 1024;

/// Returns the error for an event on a connection the server is closing.
fn closing_error(conn: &Connection) -> ChatError {
    match conn.closing.get() {
        Some(Notice::SessionEnded) => ChatError::new(
            ErrorCode::Unauthenticated,
            "the session of this connection ended",
        ),
        Some(Notice::TooManyEvents) => ChatError::new(
            ErrorCode::RateLimited,
            "this connection had too many events waiting and is being closed",
        ),
        reason => ChatError::new(
            ErrorCode::ShuttingDown,
            format!("the server is closing this connection: {reason:?}"),
        ),
    }
}

/// Registers one handler for every client event on a socket; it looks the event up in
/// [`EVENTS`]. One handler rather than one per event keeps each idle connection's
/// handler table, which socketioxide allocates per socket, to a single entry.
pub(super) fn register(s: &socketioxide::extract::SocketRef) {
    s.on_fallback(
        async |s: SocketRef,
               State(service): State<Arc<ChatService>>,
               ack: AckSender,
               arrival: Arrival,
               Event(event): Event,
               TryData(data): TryData<Value>| {
            let Some(conn) = s.extensions.get::<Arc<Connection>>() else {
                return;
            };
            let _turn = take_turn(&conn, arrival.ticket).await;
            let wants_ack = arrival.wants_ack;
            let Some(spec) = EVENTS.iter().find(|spec| spec.name == event) else {
                let err = ChatError::new(ErrorCode::UnknownEvent, "unknown event");
                reply(&s, &conn, "?", ack, wants_ack, Err(err));
                return;
            };
            let name = spec.name;
            if name != "message" {
                conn.lobby_text.sent_protocol_event();
            }
            // An event sent with no argument at all decodes as an error; for events
            // that take no payload that is as good as `null`.
            let data = if name == "rooms:list" {
                Ok(data.unwrap_or(Value::Null))
            } else {
                data
            };
            let result = match data {
                _ if conn.closing.get().is_some() => Err(closing_error(&conn)),
                Err(err) => Err(ChatError::new(
                    ErrorCode::InvalidPayload,
                    format!("{name}: undecodable payload: {err}"),
                )),
                Ok(_) if !spec.guests && conn.session.user.is_guest() => Err(ChatError::new(
                    ErrorCode::GuestNotAllowed,
                    format!("guest sent {name}"),
                )),
                Ok(payload) => dispatch(&service, &conn, name, payload).await,
            };
            reply(&s, &conn, name, ack, wants_ack, result);
        },
    );
}

fn reply(
    s: &SocketRef,
    conn: &Connection,
    name: &str,
    ack: AckSender,
    wants_ack: bool,
    result: ChatResult<Value>,
) {
    let body = match &result {
        Ok(data) => json!({ "ok": true, "data": data }),
        Err(err) => {
            if err.is_server_fault() {
                tracing::error!(sid = %s.id, event = name, cause = %err, "event failed");
            } else {
                tracing::debug!(sid = %s.id, event = name, cause = %err, "event rejected");
            }
            json!({ "ok": false, "error": ErrorPayload::new(err, conn.lang) })
        }
    };
    let sent = if wants_ack {
        ack.send(&body)
    } else if let Err(err) = &result {
        let mut payload =
            serde_json::to_value(ErrorPayload::new(err, conn.lang)).unwrap_or_default();
        payload["event"] = Value::from(name);
        s.emit("server:error", &payload)
    } else {
        Ok(())
    };
    match sent {
        Ok(()) => {}
        // A client that sends events without reading their replies has filled its own
        // queue. It is closed like any other slow consumer, because leaving it open
        // would drop its replies silently.
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            if conn.closing.set(Notice::SlowConsumer).is_ok() {
                tracing::warn!(sid = %s.id, event = name, "reply queue full, closing the connection");
                super::sink::disconnect_when_possible(s.clone(), Notice::SlowConsumer);
            }
        }
        Err(err) => {
            tracing::debug!(sid = %s.id, event = name, cause = %err, "reply not queued");
        }
    }
}

fn decode<T: DeserializeOwned>(name: &str, payload: Value) -> ChatResult<T> {
    serde_json::from_value(payload)
        .map_err(|err| ChatError::new(ErrorCode::InvalidPayload, format!("{name}: {err}")))
}

fn to_value<T: serde::Serialize>(value: T) -> ChatResult<Value> {
    serde_json::to_value(value).map_err(|e| ChatError::Internal(e.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendPayload {
    room_id: RoomId,
    body: String,
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditPayload {
    message_id: MessageId,
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageRef {
    message_id: MessageId,
}

#[derive(Deserialize)]
struct RoomOnly {
    room_id: RoomId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinPayload {
    room_id: Option<RoomId>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePayload {
    name: String,
    topic: Option<String>,
    visibility: Visibility,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryPayload {
    room_id: RoomId,
    before: Option<Seq>,
    after: Option<Seq>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicPayload {
    room_id: RoomId,
    topic: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPayload {
    room_id: RoomId,
    user_id: UserId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanPayload {
    room_id: RoomId,
    user_id: UserId,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPayload {
    room_id: RoomId,
    moderated: Option<bool>,
    topic_locked: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolePayload {
    room_id: RoomId,
    user_id: UserId,
    role: crate::core::role::Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectPayload {
    user_id: Option<UserId>,
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncPayload {
    /// Last `seq` seen per room id: catch up on new messages.
    #[serde(default)]
    rooms: BTreeMap<String, Seq>,
    /// Last revision seen per room id: catch up on new, edited and deleted messages.
    #[serde(default)]
    revs: BTreeMap<String, i64>,
}

fn sync_room_id(key: &str) -> ChatResult<RoomId> {
    key.parse()
        .map(RoomId)
        .map_err(|_| ChatError::new(ErrorCode::InvalidPayload, format!("sync: room id {key:?}")))
}

/// Runs one client event against the service.
async fn dispatch(
    service: &ChatService,
    conn: &Connection,
    name: &str,
    payload: Value,
) -> ChatResult<Value> {
    let session = &conn.session;
    match name {
        "message" => {
            // The plain chat event: a string, posted to the lobby.
            let Value::String(body) = payload else {
                return Err(ChatError::new(
                    ErrorCode::InvalidPayload,
                    "message: expected a string",
                ));
            };
            conn.lobby_text.sent_plain_message();
            let ack = service
                .send_message(session, service.lobby(), &body, None)
                .await?;
            to_value(ack)
        }
        "message:send" => {
            let p: SendPayload = decode(name, payload)?;
            let ack = service
                .send_message(session, p.room_id, &p.body, p.client_msg_id.as_deref())
                .await?;
            to_value(ack)
        }
        "message:edit" => {
            let p: EditPayload = decode(name, payload)?;
            to_value(service.edit_message(session, p.message_id, &p.body).await?)
        }
        "message:delete" => {
            let p: MessageRef = decode(name, payload)?;
            to_value(service.delete_message(session, p.message_id).await?)
        }
        "room:join" => {
            let p: JoinPayload = decode(name, payload)?;
            let room_ref = match (p.room_id, p.name) {
                (Some(id), None) => RoomRef::Id(id),
                (None, Some(name)) => RoomRef::Name(name),
                _ => {
                    return Err(ChatError::new(
                        ErrorCode::InvalidPayload,
                        "room:join takes room_id or name",
                    ));
                }
            };
            let room = service.find_room(&room_ref).await?;
            let room = service.join_room(session, room.id).await?;
            // The reply is a RoomEntry, so the client gets the online count at once. The
            // `presence` sent while joining arrives before the client has the room.
            to_value(service.room(session, room.id).await?)
        }
        "room:leave" => {
            let p: RoomOnly = decode(name, payload)?;
            service.leave_room(session, p.room_id).await?;
            Ok(Value::Null)
        }
        "room:create" => {
            let p: CreatePayload = decode(name, payload)?;
            let room = service
                .create_room(
                    session,
                    &p.name,
                    p.topic.as_deref().unwrap_or(""),
                    p.visibility,
                )
                .await?;
            // A RoomEntry, with the online count, for the same reason as `room:join`.
            to_value(service.room(session, room.id).await?)
        }
        "room:history" => {
            let p: HistoryPayload = decode(name, payload)?;
            let query = crate::service::HistoryQuery {
                before: p.before,
                after: p.after,
                limit: p.limit,
            };
            to_value(service.history(session, p.room_id, query).await?)
        }
        "room:members" => {
            let p: RoomOnly = decode(name, payload)?;
            to_value(service.members(session, p.room_id).await?)
        }
        "room:topic" => {
            let p: TopicPayload = decode(name, payload)?;
            to_value(service.set_topic(session, p.room_id, &p.topic).await?)
        }
        "room:invite" => {
            let p: MemberPayload = decode(name, payload)?;
            service.invite(session, p.room_id, p.user_id).await?;
            Ok(Value::Null)
        }
        "room:kick" => {
            let p: MemberPayload = decode(name, payload)?;
            service.kick(session, p.room_id, p.user_id).await?;
            Ok(Value::Null)
        }
        "room:role" => {
            let p: RolePayload = decode(name, payload)?;
            service
                .set_role(session, p.room_id, p.user_id, p.role)
                .await?;
            Ok(Value::Null)
        }
        "room:ban" => {
            let p: BanPayload = decode(name, payload)?;
            service
                .ban(session, p.room_id, p.user_id, p.reason.as_deref())
                .await?;
            Ok(Value::Null)
        }
        "room:unban" => {
            let p: MemberPayload = decode(name, payload)?;
            service.unban(session, p.room_id, p.user_id).await?;
            Ok(Value::Null)
        }
        "room:bans" => {
            let p: RoomOnly = decode(name, payload)?;
            to_value(service.bans(session, p.room_id).await?)
        }
        "room:settings" => {
            let p: SettingsPayload = decode(name, payload)?;
            let settings = RoomSettings {
                moderated: p.moderated,
                topic_locked: p.topic_locked,
            };
            to_value(
                service
                    .update_room_settings(session, p.room_id, settings)
                    .await?,
            )
        }
        "rooms:list" => to_value(service.list_rooms(session).await?),
        "dm:open" => {
            let p: DirectPayload = decode(name, payload)?;
            let peer = match (p.user_id, p.username) {
                (Some(id), None) => id,
                (None, Some(username)) => service.user_by_username(&username).await?.id,
                _ => {
                    return Err(ChatError::new(
                        ErrorCode::InvalidPayload,
                        "dm:open takes user_id or username",
                    ));
                }
            };
            to_value(service.open_direct(session, peer).await?)
        }
        "typing" => {
            let p: RoomOnly = decode(name, payload)?;
            service.typing(session, p.room_id).await?;
            Ok(Value::Null)
        }
        "sync" => {
            let p: SyncPayload = decode(name, payload)?;
            let mut from = Vec::with_capacity(p.rooms.len() + p.revs.len());
            for (room, seq) in p.rooms {
                if p.revs.contains_key(&room) {
                    return Err(ChatError::new(
                        ErrorCode::InvalidPayload,
                        format!("sync: room {room} is in both rooms and revs"),
                    ));
                }
                from.push((sync_room_id(&room)?, SyncFrom::Seq(seq)));
            }
            for (room, rev) in p.revs {
                from.push((sync_room_id(&room)?, SyncFrom::Rev(rev)));
            }
            to_value(service.sync(session, &from).await?)
        }
        _ => Err(ChatError::new(
            ErrorCode::UnknownEvent,
            format!("no handler for {name}"),
        )),
    }
}
