//! Durable state behind traits split by capability. The service uses only these traits,
//! so a second backend (PostgreSQL) plugs in without touching it.
//!
//! Every write that must happen together (a message and its room's `seq`; a membership
//! change and its system event) is one call here, and so one transaction.

pub mod migrate;
pub mod postgres;
mod sql;
pub mod sqlite;

use crate::core::error::ChatResult;
use crate::core::ids::{MessageId, RoomId, Seq, SessionId, UserId};
use crate::core::model::{AccountKind, Message, MessageKind, Room, Visibility};
use crate::core::role::Role;
use crate::core::time::Millis;
use async_trait::async_trait;

pub use postgres::{PgSettings, PgStore};
pub use sqlite::SqliteStore;

/// A user as stored, including the secret fields the service needs.
#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: UserId,
    pub username: Option<String>,
    pub display_name: String,
    pub kind: AccountKind,
    pub password_hash: Option<String>,
    /// File name of an uploaded avatar under the avatar directory.
    pub avatar: Option<String>,
    pub created_at: Millis,
}

/// Fields of a new account.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    pub username: Option<&'a str>,
    pub username_key: Option<&'a str>,
    pub display_name: &'a str,
    pub kind: AccountKind,
    pub password_hash: Option<&'a str>,
    pub created_at: Millis,
}

/// Fields of a new room.
#[derive(Clone, Debug)]
pub struct NewRoom<'a> {
    pub name: &'a str,
    pub name_key: &'a str,
    pub topic: &'a str,
    pub visibility: Visibility,
    pub owner_id: Option<UserId>,
    /// Members added in the same transaction, with their roles.
    pub members: &'a [(UserId, Role)],
    pub created_at: Millis,
}

/// A live login session.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// A message or system event to append to a room.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub room_id: RoomId,
    pub kind: MessageKind,
    pub author_id: Option<UserId>,
    pub author_name: String,
    pub body: String,
    pub target_id: Option<UserId>,
    pub target_name: Option<String>,
    pub client_msg_id: Option<String>,
    pub created_at: Millis,
}

/// Result of appending a message.
#[derive(Clone, Debug)]
pub struct Appended {
    pub message: Message,
    /// True when `client_msg_id` matched an earlier message, which is returned unchanged.
    pub duplicate: bool,
}

/// A room membership with the member's account.
#[derive(Clone, Debug)]
pub struct MemberRow {
    pub user: UserRow,
    pub role: Role,
    pub joined_at: Millis,
}

/// A ban as stored, with the banned account.
#[derive(Clone, Debug)]
pub struct BanRow {
    pub room_id: RoomId,
    pub user: UserRow,
    pub banned_by: Option<UserId>,
    pub banned_by_name: Option<String>,
    pub reason: String,
    pub created_at: Millis,
}

/// Fields of a new ban.
#[derive(Clone, Debug)]
pub struct NewBan<'a> {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub banned_by: UserId,
    pub reason: &'a str,
    pub created_at: Millis,
}

/// Direction of a history page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The newest messages.
    Latest,
    /// Messages with `seq` below the given one, newest first in the query.
    Before(Seq),
    /// Messages with `seq` above the given one, oldest first.
    After(Seq),
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts an account; a taken `username_key` is `UsernameTaken`.
    async fn create_user(&self, user: NewUser<'_>) -> ChatResult<UserRow>;
    async fn user_by_id(&self, id: UserId) -> ChatResult<Option<UserRow>>;
    async fn user_by_username_key(&self, key: &str) -> ChatResult<Option<UserRow>>;
    async fn set_display_name(&self, id: UserId, name: &str) -> ChatResult<()>;
    async fn set_password_hash(&self, id: UserId, hash: &str) -> ChatResult<()>;
    async fn set_avatar(&self, id: UserId, avatar: Option<&str>) -> ChatResult<()>;
    /// Reports whether any account uses an avatar file.
    async fn avatar_in_use(&self, file: &str) -> ChatResult<bool>;
    /// Deletes guest accounts created before `before` that have no session left,
    /// returning how many.
    async fn delete_orphan_guests(&self, before: Millis) -> ChatResult<u64>;
}

/// Login sessions; only a hash of each token is stored.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(
        &self,
        user_id: UserId,
        token_hash: &str,
        csrf_token: &str,
        now: Millis,
        expires_at: Millis,
    ) -> ChatResult<SessionRow>;
    /// Returns the session for a token hash, unless it has expired at `now`, with its
    /// user. One query reads both, because every connection handshake and API call
    /// needs the two together.
    async fn session_and_user_by_token_hash(
        &self,
        hash: &str,
        now: Millis,
    ) -> ChatResult<Option<(SessionRow, UserRow)>>;
    async fn delete_session(&self, id: SessionId) -> ChatResult<()>;
    /// Deletes every session of a user except `keep`, returning the ids deleted.
    async fn delete_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
    ) -> ChatResult<Vec<SessionId>>;
    /// Deletes sessions that expired before `now`, returning their ids.
    async fn delete_expired_sessions(&self, now: Millis) -> ChatResult<Vec<SessionId>>;
}

/// Rooms, memberships and invitations.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room and its first members in one transaction; a taken name is
    /// `RoomNameTaken`.
    async fn create_room(&self, room: NewRoom<'_>) -> ChatResult<Room>;
    async fn room_by_id(&self, id: RoomId) -> ChatResult<Option<Room>>;
    async fn room_by_name_key(&self, key: &str) -> ChatResult<Option<Room>>;
    /// Lists public rooms by name, at most `limit`.
    async fn public_rooms(&self, limit: i64) -> ChatResult<Vec<Room>>;
    /// Lists the rooms a user belongs to, with the user's role.
    async fn user_rooms(&self, user_id: UserId) -> ChatResult<Vec<(Room, Role)>>;
    async fn role_of(&self, room_id: RoomId, user_id: UserId) -> ChatResult<Option<Role>>;
    /// Adds a member and appends `event` in one transaction. Returns `None`, and appends
    /// nothing, when the user already was a member.
    async fn add_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: Role,
        event: NewMessage,
    ) -> ChatResult<Option<Message>>;
    /// Removes a member (and any invitation) and appends `event` in one transaction.
    /// Returns `None` when the user was not a member.
    async fn remove_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        event: NewMessage,
    ) -> ChatResult<Option<Message>>;
    async fn set_role(&self, room_id: RoomId, user_id: UserId, role: Role) -> ChatResult<()>;
    /// Sets the topic and appends the `topic` event in one transaction.
    async fn set_topic(
        &self,
        room_id: RoomId,
        topic: &str,
        event: NewMessage,
    ) -> ChatResult<Message>;
    async fn members(&self, room_id: RoomId) -> ChatResult<Vec<MemberRow>>;
    /// Records an invitation; returns false when it already existed.
    async fn add_invite(
        &self,
        room_id: RoomId,
        user_id: UserId,
        by: UserId,
        now: Millis,
    ) -> ChatResult<bool>;
    async fn has_invite(&self, room_id: RoomId, user_id: UserId) -> ChatResult<bool>;
    /// Records a ban, removes the user's membership and invitation, and appends the `ban`
    /// event, in one transaction. Returns `None`, changing nothing, when the user was
    /// already banned.
    async fn add_ban(&self, ban: NewBan<'_>, event: NewMessage) -> ChatResult<Option<Message>>;
    /// Deletes a ban and appends the `unban` event in one transaction. Returns `None`,
    /// changing nothing, when the user was not banned.
    async fn remove_ban(
        &self,
        room_id: RoomId,
        user_id: UserId,
        event: NewMessage,
    ) -> ChatResult<Option<Message>>;
    async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> ChatResult<bool>;
    /// Lists a room's bans, oldest first.
    async fn bans(&self, room_id: RoomId) -> ChatResult<Vec<BanRow>>;
    /// Sets the room's `moderated` and `topic_locked` flags and appends the `settings`
    /// event in one transaction.
    async fn set_room_settings(
        &self,
        room_id: RoomId,
        moderated: bool,
        topic_locked: bool,
        event: NewMessage,
    ) -> ChatResult<Message>;
}

/// Messages and history.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message under the room's next `seq`, in one transaction. A repeated
    /// `(author_id, client_msg_id)` stores nothing and returns the earlier message.
    async fn append_message(&self, message: NewMessage) -> ChatResult<Appended>;
    async fn message_by_id(&self, id: MessageId) -> ChatResult<Option<Message>>;
    /// Replaces a message's body under the room's next revision.
    async fn edit_message(&self, id: MessageId, body: &str, now: Millis) -> ChatResult<Message>;
    /// Turns a message into a tombstone under the room's next revision: the body is
    /// cleared, `deleted_at` set.
    async fn delete_message(&self, id: MessageId, by: UserId, now: Millis) -> ChatResult<Message>;
    /// Returns up to `limit` messages in `seq` order, and whether more exist beyond them.
    async fn history(
        &self,
        room_id: RoomId,
        page: Page,
        limit: i64,
    ) -> ChatResult<(Vec<Message>, bool)>;
    /// Returns up to `limit` messages of a room changed after revision `after` (created,
    /// edited or deleted), in revision order, and whether more exist.
    async fn changes(
        &self,
        room_id: RoomId,
        after: i64,
        limit: i64,
    ) -> ChatResult<(Vec<Message>, bool)>;
    /// Returns a room's current revision.
    async fn room_rev(&self, room_id: RoomId) -> ChatResult<i64>;
    /// Counts stored messages of every kind, for metrics.
    async fn message_count(&self) -> ChatResult<i64>;
}

/// The whole store: every capability plus its life cycle.
#[async_trait]
pub trait Store: UserStore + SessionStore + RoomStore + MessageStore {
    /// Checks that the store responds, for readiness probes.
    async fn ping(&self) -> ChatResult<()>;
    /// Flushes and closes the store; later calls fail.
    async fn close(&self);
}
