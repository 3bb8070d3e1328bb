//! Real-time events that the hub fans out. Each gateway encodes an event once per
//! fan-out, using the wire name and payload defined here.

use super::ids::{MessageId, RoomId, Seq, UserId};
use super::model::{Message, Room};
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
        }
    }

    /// Reports whether losing this event would leave a client with wrong state. Typing
    /// and presence hints are not worth disconnecting a slow client for, and neither is
    /// a new public room, which `rooms:list` also returns.
    pub fn is_essential(&self) -> bool {
        !matches!(self, Event::Typing(_) | Event::RoomCreated(_))
    }
}
