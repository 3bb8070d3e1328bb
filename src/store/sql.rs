//! SQL text shared by the backends. It uses `$N` placeholders, `RETURNING` and
//! `ON CONFLICT`, which SQLite and PostgreSQL both accept, so only the schema
//! migrations differ per backend. Every value is a bound parameter.

macro_rules! room_select {
    () => {
        "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.last_seq, r.last_rev, \
         r.created_at, r.moderated, r.topic_locked, \
         (SELECT COUNT(*) FROM memberships mc WHERE mc.room_id = r.id) AS member_count \
         FROM rooms r "
    };
}

macro_rules! message_columns {
    () => {
        "id, room_id, seq, rev, kind, author_id, author_name, body, target_id, target_name, \
         client_msg_id, created_at, edited_at, deleted_at, deleted_by"
    };
}

macro_rules! message_select {
    () => {
        concat!("SELECT ", message_columns!(), " FROM messages ")
    };
}

pub const INSERT_USER: &str = "INSERT INTO users \
     (username, username_key, display_name, kind, password_hash, avatar, created_at) \
     VALUES ($1, $2, $3, $4, $5, NULL, $6) \
     RETURNING id, username, display_name, kind, password_hash, avatar, created_at";
pub const USER_BY_ID: &str = "SELECT id, username, display_name, kind, password_hash, avatar, created_at \
     FROM users WHERE id = $1";
pub const USER_BY_KEY: &str = "SELECT id, username, display_name, kind, password_hash, avatar, created_at \
     FROM users WHERE username_key = $1";
pub const SET_DISPLAY_NAME: &str = "UPDATE users SET display_name = $2 WHERE id = $1";
pub const SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
/// Guests without a live session can never sign in again, because no client has a
/// valid token for them. Their
/// messages stay, keeping `author_name`, with `author_id` set to NULL by the foreign key.
pub const DELETE_ORPHAN_GUESTS: &str = "DELETE FROM users WHERE kind = 'guest' \
     AND created_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = users.id)";
pub const AVATAR_IN_USE: &str = "SELECT 1 FROM users WHERE avatar = $1 LIMIT 1";
pub const SET_AVATAR: &str = "UPDATE users SET avatar = $2 WHERE id = $1";

pub const INSERT_SESSION: &str = "INSERT INTO sessions \
     (user_id, token_hash, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
     RETURNING id";
/// The session's columns carry a `session_` prefix where they share a name with the
/// user's, so that the user's columns read like `USER_BY_ID`'s.
pub const SESSION_AND_USER_BY_HASH: &str = "SELECT s.id AS session_id, s.csrf_token, \
     s.created_at AS session_created_at, s.expires_at, \
     u.id, u.username, u.display_name, u.kind, u.password_hash, u.avatar, u.created_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND s.expires_at > $2";
pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id = $1";
pub const DELETE_USER_SESSIONS: &str =
    "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id";
pub const DELETE_EXPIRED_SESSIONS: &str =
    "DELETE FROM sessions WHERE expires_at <= $1 RETURNING id";

pub const INSERT_ROOM: &str = "INSERT INTO rooms \
     (name, name_key, topic, visibility, owner_id, last_seq, created_at) \
     VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id";
pub const ROOM_BY_ID: &str = concat!(room_select!(), "WHERE r.id = $1");
pub const ROOM_BY_KEY: &str = concat!(room_select!(), "WHERE r.name_key = $1");
pub const PUBLIC_ROOMS: &str = concat!(
    room_select!(),
    "WHERE r.visibility = 'public' ORDER BY r.name_key LIMIT $1"
);
pub const USER_ROOMS: &str = "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, \
     r.last_seq, r.last_rev, r.created_at, r.moderated, r.topic_locked, \
     (SELECT COUNT(*) FROM memberships m2 WHERE m2.room_id = r.id) AS member_count, \
     m.role FROM rooms r JOIN memberships m ON m.room_id = r.id \
     WHERE m.user_id = $1 ORDER BY r.name_key";
pub const ROLE_OF: &str = "SELECT role FROM memberships WHERE room_id = $1 AND user_id = $2";
pub const INSERT_MEMBER: &str = "INSERT INTO memberships (room_id, user_id, role, joined_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO NOTHING";
pub const DELETE_MEMBER: &str = "DELETE FROM memberships WHERE room_id = $1 AND user_id = $2";
pub const DELETE_INVITE: &str = "DELETE FROM invites WHERE room_id = $1 AND user_id = $2";
pub const SET_ROLE: &str = "UPDATE memberships SET role = $3 WHERE room_id = $1 AND user_id = $2";
pub const SET_TOPIC: &str = "UPDATE rooms SET topic = $2 WHERE id = $1";
pub const SET_ROOM_SETTINGS: &str =
    "UPDATE rooms SET moderated = $2, topic_locked = $3 WHERE id = $1";
pub const INSERT_BAN: &str = "INSERT INTO bans (room_id, user_id, banned_by, reason, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id) DO NOTHING";
pub const DELETE_BAN: &str = "DELETE FROM bans WHERE room_id = $1 AND user_id = $2";
pub const IS_BANNED: &str = "SELECT 1 FROM bans WHERE room_id = $1 AND user_id = $2";
pub const BANS: &str = "SELECT u.id, u.username, u.display_name, u.kind, u.password_hash, \
     u.avatar, u.created_at, b.room_id, b.banned_by, b.reason, b.created_at AS banned_at, \
     by_user.display_name AS banned_by_name \
     FROM bans b JOIN users u ON u.id = b.user_id \
     LEFT JOIN users by_user ON by_user.id = b.banned_by \
     WHERE b.room_id = $1 ORDER BY b.created_at, u.id";
pub const MEMBERS: &str = "SELECT u.id, u.username, u.display_name, u.kind, u.password_hash, \
     u.avatar, u.created_at, m.role, m.joined_at \
     FROM memberships m JOIN users u ON u.id = m.user_id \
     WHERE m.room_id = $1 ORDER BY m.joined_at, u.id";
pub const INSERT_INVITE: &str = "INSERT INTO invites (room_id, user_id, invited_by, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO NOTHING";
pub const HAS_INVITE: &str = "SELECT 1 FROM invites WHERE room_id = $1 AND user_id = $2";

/// Takes the room's next `seq` and `rev`. The row lock it holds until commit serialises
/// writers of one room, so neither has gaps even with several writers.
pub const NEXT_SEQ: &str = "UPDATE rooms SET last_seq = last_seq + 1, last_rev = last_rev + 1 \
     WHERE id = $1 RETURNING last_seq, last_rev";
/// Takes the next `rev` of the room holding a message, for an edit or deletion.
pub const NEXT_REV_FOR_MESSAGE: &str = "UPDATE rooms SET last_rev = last_rev + 1 \
     WHERE id = (SELECT room_id FROM messages WHERE id = $1 AND deleted_at IS NULL) \
     RETURNING last_rev";
pub const INSERT_MESSAGE: &str = "INSERT INTO messages \
     (room_id, seq, rev, kind, author_id, author_name, body, target_id, target_name, \
      client_msg_id, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";
pub const MESSAGE_BY_ID: &str = concat!(message_select!(), "WHERE id = $1");
pub const MESSAGE_BY_CLIENT_ID: &str = concat!(
    message_select!(),
    "WHERE author_id = $1 AND client_msg_id = $2"
);
/// Both updates skip tombstones, so they return no row for a deleted or missing message.
pub const EDIT_MESSAGE: &str = concat!(
    "UPDATE messages SET body = $2, edited_at = $3, rev = $4 \
     WHERE id = $1 AND deleted_at IS NULL RETURNING ",
    message_columns!()
);
pub const DELETE_MESSAGE: &str = concat!(
    "UPDATE messages SET body = '', deleted_at = $3, deleted_by = $2, rev = $4 \
     WHERE id = $1 AND deleted_at IS NULL RETURNING ",
    message_columns!()
);
pub const HISTORY_LATEST: &str = concat!(
    message_select!(),
    "WHERE room_id = $1 ORDER BY seq DESC LIMIT $2"
);
pub const HISTORY_BEFORE: &str = concat!(
    message_select!(),
    "WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
);
pub const HISTORY_AFTER: &str = concat!(
    message_select!(),
    "WHERE room_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
);
pub const CHANGES_AFTER: &str = concat!(
    message_select!(),
    "WHERE room_id = $1 AND rev > $2 ORDER BY rev ASC LIMIT $3"
);
pub const ROOM_LAST_REV: &str = "SELECT last_rev FROM rooms WHERE id = $1";
pub const MESSAGE_COUNT: &str = "SELECT COUNT(*) FROM messages";
