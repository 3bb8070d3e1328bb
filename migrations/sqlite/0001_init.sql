-- Confab schema, SQLite flavour. Times are milliseconds since the Unix epoch.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT,                -- NULL for guests
    username_key  TEXT UNIQUE,         -- NFKC + lowercase of username; NULL for guests
    display_name  TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('registered', 'guest')),
    password_hash TEXT,                -- argon2id PHC string; NULL for guests
    avatar        TEXT,                -- content-addressed file name, NULL for the generated one
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,  -- SHA-256 of the bearer token, hex
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    topic       TEXT NOT NULL DEFAULT '',
    visibility  TEXT NOT NULL CHECK (visibility IN ('public', 'private', 'direct')),
    owner_id    BIGINT REFERENCES users(id) ON DELETE SET NULL,
    last_seq    BIGINT NOT NULL DEFAULT 0,
    last_rev    BIGINT NOT NULL DEFAULT 0,   -- bumped by every new, edited or deleted message
    created_at  BIGINT NOT NULL
);

CREATE TABLE memberships (
    room_id    BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'guest')),
    joined_at  BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE invites (
    room_id     BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    invited_by  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    room_id        BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    author_id      BIGINT REFERENCES users(id) ON DELETE SET NULL,
    author_name    TEXT NOT NULL,
    body           TEXT NOT NULL,
    target_id      BIGINT,
    target_name    TEXT,
    client_msg_id  TEXT,
    created_at     BIGINT NOT NULL,
    edited_at      BIGINT,
    deleted_at     BIGINT,
    deleted_by     BIGINT,
    rev            BIGINT NOT NULL,     -- the room's last_rev when this row last changed
    UNIQUE (room_id, seq),
    UNIQUE (room_id, rev),
    UNIQUE (author_id, client_msg_id)
);

-- The default public room.
INSERT INTO rooms (name, name_key, topic, visibility, owner_id, last_seq, created_at)
VALUES ('lobby', 'lobby', '', 'public', NULL, 0, 0);
