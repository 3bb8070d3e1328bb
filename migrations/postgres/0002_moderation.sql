-- Room moderation, PostgreSQL flavour: per-room bans, moderated rooms and the topic lock.
-- It matches migrations/sqlite/0002_moderation.sql column for column.

-- 1 while only owners and admins may post.
ALTER TABLE rooms ADD COLUMN moderated BIGINT NOT NULL DEFAULT 0 CHECK (moderated IN (0, 1));
-- 1 while only owners and admins may set the topic, as before this migration.
ALTER TABLE rooms ADD COLUMN topic_locked BIGINT NOT NULL DEFAULT 1 CHECK (topic_locked IN (0, 1));

CREATE TABLE bans (
    room_id     BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    banned_by   BIGINT REFERENCES users(id) ON DELETE SET NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
