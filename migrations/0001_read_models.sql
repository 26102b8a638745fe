-- Read models built by the projector from the event log. Times are milliseconds since the
-- Unix epoch (UTC), as in the events; the query side formats them as ISO 8601.

CREATE TABLE projection_checkpoints (
    projection    TEXT PRIMARY KEY,
    last_position BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    avatar_url    TEXT,
    status        TEXT NOT NULL DEFAULT 'active',
    last_seen_ms  BIGINT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL
);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    title           TEXT,
    created_by      TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    last_message_ms BIGINT,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    position        BIGINT NOT NULL
);

CREATE TABLE participants (
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    role            TEXT NOT NULL,
    active          BOOLEAN NOT NULL,
    joined_ms       BIGINT NOT NULL,
    left_ms         BIGINT,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_by_user ON participants (user_id) WHERE active;

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    sender_id       TEXT NOT NULL,
    content         TEXT,
    temp_id         TEXT,
    created_ms      BIGINT NOT NULL,
    edited_ms       BIGINT,
    deleted_ms      BIGINT,
    log_offset      BIGINT NOT NULL,
    position        BIGINT NOT NULL,
    UNIQUE (conversation_id, seq)
);
