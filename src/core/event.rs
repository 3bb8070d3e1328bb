//! Real-time events that the hub fans out. Each gateway encodes an event once per
//! fan-out, using the wire name and payload defined here.

use super::ids::{MessageId, RoomId, Seq, UserId};
use super::model::{Message, Room, User};
use super::time::Millis;
use serde::{Deserialize, Serialize};

/// Payload of `message:deleted`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub room_id: RoomId,
    pub id: MessageId,
    pub seq: Seq,
    /// The room revision of the deletion.
    pub rev: i64,
    pub deleted_by: UserId,
    pub deleted_at: Millis,
}

/// Payload of `typing`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Typing {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub display_name: String,
    /// Set when the hint came from an IRC `TAGMSG`, whose [`TagMessage`] event already
    /// carries it to IRC clients, so the IRC gateway skips this copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_tag_message: bool,
}

/// Payload of `tag:message`: IRCv3 client-only tags sent to a room without a message
/// (IRC `TAGMSG`). It is relayed live and never stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagMessage {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub display_name: String,
    /// Sender's account name; `None` for guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Client-only tags, escaped and `;`-separated, as on an IRC line.
    pub tags: String,
    /// Random id sent as the IRC `msgid` tag; tag messages are not stored, so they have
    /// no room sequence number.
    pub id: String,
    pub sent_at: Millis,
}

/// Payload of `away`: a user set or cleared an away message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AwayChange {
    /// A room the user belongs to; the event goes to each such room once.
    pub room_id: RoomId,
    pub user_id: UserId,
    pub display_name: String,
    /// The away message, or `None` when the user is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Identifies one change across its per-room copies, so a client sharing several
    /// rooms with the user shows it once.
    pub change_id: u64,
}

/// Payload of `user:updated`: a user changed their display name or avatar.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserUpdated {
    /// A room the user belongs to; the event goes to each such room once.
    pub room_id: RoomId,
    /// The account as it is after the change.
    pub user: User,
    /// The display name before the change. The IRC gateway derives the old nickname
    /// from it, as the source of the NICK line.
    pub previous_display_name: String,
    /// Identifies one change across its per-room copies, so a client sharing several
    /// rooms with the user applies it once.
    pub change_id: u64,
}

/// Payload of `presence`: a member came online or went offline in a room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Presence {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub online: bool,
    /// Members of the room online after this change.
    pub online_count: usize,
    /// Reason the user's last connection closed (an IRC QUIT reason or a timeout), when the
    /// gateway that closed it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when the user went offline because their last connection on the node closed,
    /// rather than because they left the room or were removed from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disconnected: bool,
}

/// Payload of `room:removed`, sent to a user who left or was removed from a room.
#[derive(Clone, Debug, Serialize)]
pub struct RoomRemoved {
    pub room_id: RoomId,
    /// `left`, `kicked`, `banned`.
    pub reason: &'static str,
}

/// An event delivered to the connections subscribed to a room or owned by a user.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// A new message or system event was stored.
    MessageNew(Message),
    /// A message's body was edited.
    MessageEdited(Message),
    /// A message was deleted and is now a tombstone.
    MessageDeleted(MessageDeleted),
    /// A room's topic or other details changed.
    RoomUpdated(Room),
    /// The user was added to a room (joined, invited in, or opened a direct conversation).
    RoomAdded(Room),
    /// The user is no longer in a room.
    RoomRemoved(RoomRemoved),
    /// Someone created a public room. It goes to every connection, so room lists need no
    /// polling to show it.
    RoomCreated(Room),
    /// Someone is typing.
    Typing(Typing),
    /// Someone came online or went offline.
    Presence(Presence),
    /// Someone sent client-only tags without a message (IRC `TAGMSG`).
    TagMessage(TagMessage),
    /// Someone set or cleared an away message.
    Away(AwayChange),
    /// Someone changed their display name or avatar.
    UserUpdated(UserUpdated),
}

impl Event {
    /// Returns the event name used on the wire (the Socket.IO event name).
    pub fn name(&self) -> &'static str {
        match self {
            Event::MessageNew(_) => "message:new",
            Event::MessageEdited(_) => "message:edited",
            Event::MessageDeleted(_) => "message:deleted",
            Event::RoomUpdated(_) => "room:updated",
            Event::RoomAdded(_) => "room:added",
            Event::RoomRemoved(_) => "room:removed",
            Event::RoomCreated(_) => "room:created",
            Event::Typing(_) => "typing",
            Event::Presence(_) => "presence",
            Event::TagMessage(_) => "tag:message",
            Event::Away(_) => "away",
            Event::UserUpdated(_) => "user:updated",
        }
    }

    /// Reports whether losing this event would leave a client with wrong state. Typing
    /// hints and client-only tags are not worth disconnecting a slow client for, and
    /// neither is a new public room, which `rooms:list` also returns.
    pub fn is_essential(&self) -> bool {
        !matches!(
            self,
            Event::Typing(_) | Event::RoomCreated(_) | Event::TagMessage(_)
        )
    }
}
