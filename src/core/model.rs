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
    /// Only owners and admins may post while this is set.
    #[serde(default)]
    pub moderated: bool,
    /// Only owners and admins may set the topic while this is set; otherwise any member
    /// may. New rooms start locked.
    #[serde(default = "locked_by_default")]
    pub topic_locked: bool,
}

fn locked_by_default() -> bool {
    true
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
    /// A moderator banned the target, which also removed them from the room.
    Ban,
    /// A moderator lifted the target's ban.
    Unban,
    /// A moderator changed room settings. The body lists the changes, as
    /// [`SettingsChange`] describes.
    Settings,
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
            MessageKind::Ban => "ban",
            MessageKind::Unban => "unban",
            MessageKind::Settings => "settings",
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
            "ban" => Some(MessageKind::Ban),
            "unban" => Some(MessageKind::Unban),
            "settings" => Some(MessageKind::Settings),
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
    /// The text of a `text` message, the new topic of a `topic` event, the reason (possibly
    /// empty) of a `leave` or `ban` event, or the changed settings of a `settings` event
    /// (see [`SettingsChange`]). Other events, and deleted messages, have an empty body.
    pub body: String,
    /// For `kick`, `invite`, `ban` and `unban`: the user acted upon.
    pub target_id: Option<UserId>,
    pub target_name: Option<String>,
    pub client_msg_id: Option<String>,
    pub created_at: Millis,
    pub edited_at: Option<Millis>,
    pub deleted_at: Option<Millis>,
    pub deleted_by: Option<UserId>,
    /// Author's account name on live events, set by the service when it publishes the
    /// event. It is `None` for guests and for messages read back from the store.
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

/// One room setting turned on or off, as listed in the body of a `settings` event:
/// `+name` or `-name`, separated by spaces, for example `+moderated -topic_locked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsChange {
    pub setting: RoomSetting,
    pub enabled: bool,
}

/// A room setting that moderators switch on and off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomSetting {
    Moderated,
    TopicLocked,
}

impl RoomSetting {
    /// Returns the name used in `settings` event bodies, equal to the room field's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomSetting::Moderated => "moderated",
            RoomSetting::TopicLocked => "topic_locked",
        }
    }
}

impl SettingsChange {
    /// Encodes a list of changes as a `settings` event body.
    pub fn encode(changes: &[SettingsChange]) -> String {
        changes
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    if c.enabled { '+' } else { '-' },
                    c.setting.as_str()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Decodes a `settings` event body, skipping names this version does not know.
    pub fn decode(body: &str) -> Vec<SettingsChange> {
        body.split_whitespace()
            .filter_map(|item| {
                let (enabled, name) = match item.split_at_checked(1)? {
                    ("+", name) => (true, name),
                    ("-", name) => (false, name),
                    _ => return None,
                };
                let setting = match name {
                    "moderated" => RoomSetting::Moderated,
                    "topic_locked" => RoomSetting::TopicLocked,
                    _ => return None,
                };
                Some(SettingsChange { setting, enabled })
            })
            .collect()
    }
}

/// A user banned from a room.
#[derive(Clone, Debug, Serialize)]
pub struct Ban {
    pub room_id: RoomId,
    pub user: User,
    /// The moderator who set the ban; `None` once that account is deleted.
    pub banned_by: Option<UserId>,
    /// The moderator's display name at listing time, when the account still exists.
    pub banned_by_name: Option<String>,
    /// Reason given by the moderator, empty when none was given.
    pub reason: String,
    pub created_at: Millis,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_body_round_trips() {
        let changes = [
            SettingsChange {
                setting: RoomSetting::Moderated,
                enabled: true,
            },
            SettingsChange {
                setting: RoomSetting::TopicLocked,
                enabled: false,
            },
        ];
        let body = SettingsChange::encode(&changes);
        assert_eq!(body, "+moderated -topic_locked");
        assert_eq!(SettingsChange::decode(&body), changes);
    }

    #[test]
    fn settings_body_skips_unknown_items() {
        let decoded = SettingsChange::decode("+slow_mode moderated -moderated +");
        assert_eq!(
            decoded,
            [SettingsChange {
                setting: RoomSetting::Moderated,
                enabled: false,
            }]
        );
    }
}
