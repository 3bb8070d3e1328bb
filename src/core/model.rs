//! Records as the service hands them to gateways. Field names are the wire names.

use super::ids::{MessageId, RoomId, Seq, UserId};
use super::role::Role;
use super::time::Millis;
use serde::{Deserialize, Serialize};

/// Whether an account registered or is a guest who picked a nickname.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Registered,
    Guest,
}

/// A user as other people see them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Login name; `None` for guests.
    pub username: Option<String>,
    pub display_name: String,
    pub kind: AccountKind,
    /// URL path of the avatar image (uploaded or generated).
    pub avatar_url: String,
    pub created_at: Millis,
}

impl User {
    /// Reports whether this account is a guest.
    pub fn is_guest(&self) -> bool {
        self.kind == AccountKind::Guest
    }
}

/// Visibility of a room: who may see and join it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed; anyone, guests included, may join.
    Public,
    /// Unlisted; members join by invitation.
    Private,
    /// A conversation between exactly two registered users.
    Direct,
}

impl Visibility {
    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            _ => None,
        }
    }
}

/// A room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub topic: String,
    pub visibility: Visibility,
    pub owner_id: Option<UserId>,
    /// `seq` of the newest stored message or event, 0 when empty.
    pub last_seq: Seq,
    /// Revision of the room's newest change: every new, edited or deleted message takes
    /// the next one. Catch-up by revision finds edits and deletions too.
    pub last_rev: i64,
    pub created_at: Millis,
    pub member_count: i64,
}

/// A room as listed for one user, with that user's role.
#[derive(Clone, Debug, Serialize)]
pub struct RoomEntry {
    #[serde(flatten)]
    pub room: Room,
    /// The caller's role, `None` when the caller is not a member of this public room.
    pub role: Option<Role>,
    /// Members of the room connected now.
    pub online_count: usize,
    /// For direct rooms, the other participant.
    pub peer: Option<User>,
}

/// A room member.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: Millis,
    pub online: bool,
}

/// Kind of a stored room entry: a user's text or a system event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Join,
    Leave,
    Kick,
    Topic,
    Invite,
}

impl MessageKind {
    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Join => "join",
            MessageKind::Leave => "leave",
            MessageKind::Kick => "kick",
            MessageKind::Topic => "topic",
            MessageKind::Invite => "invite",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<MessageKind> {
        match s {
            "text" => Some(MessageKind::Text),
            "join" => Some(MessageKind::Join),
            "leave" => Some(MessageKind::Leave),
            "kick" => Some(MessageKind::Kick),
            "topic" => Some(MessageKind::Topic),
            "invite" => Some(MessageKind::Invite),
            _ => None,
        }
    }
}

/// A stored message or system event, as sent to clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub room_id: RoomId,
    pub seq: Seq,
    /// The room revision of this message's latest change (creation, edit or deletion).
    pub rev: i64,
    pub kind: MessageKind,
    pub author_id: Option<UserId>,
    /// Author's display name when the message was sent.
    pub author_name: String,
    /// Text for `text`; the new topic for `topic`; empty for other events, and after deletion.
    pub body: String,
    /// For `kick` and `invite`: the user acted upon.
    pub target_id: Option<UserId>,
    pub target_name: Option<String>,
    pub client_msg_id: Option<String>,
    pub created_at: Millis,
    pub edited_at: Option<Millis>,
    pub deleted_at: Option<Millis>,
    pub deleted_by: Option<UserId>,
    /// Author's account name on live events, set by the service when it publishes the
    /// event; `None` for guests and for messages read back from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_account: Option<String>,
    /// IRCv3 client-only tags (`+name=value`, escaped, `;`-separated) sent with the
    /// message. They travel with the live event only and are never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tags: Option<String>,
}

impl Message {
    /// Reports whether the message has been deleted (shown as a tombstone).
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// Acknowledgement the sender receives once the message is committed.
#[derive(Clone, Debug, Serialize)]
pub struct SendAck {
    pub id: MessageId,
    pub room_id: RoomId,
    pub seq: Seq,
    pub created_at: Millis,
    pub client_msg_id: Option<String>,
    /// True when this was a resend of an already-stored `client_msg_id`.
    pub duplicate: bool,
}

/// One page of a room's history, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryPage {
    pub room_id: RoomId,
    pub messages: Vec<Message>,
    /// True when more messages exist beyond this page in the requested direction.
    pub has_more: bool,
    /// True in a catch-up reply for a room the caller can no longer read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
    /// The room's `last_rev`, read before the messages: catching up from it later with
    /// `since_rev` misses no change made after this page was read.
    pub last_rev: i64,
}
