-- Threads, mentions and pins (contract 4.4). Owned by the chat projection.
-- A reply names its parent; a parent holds its thread's summary as the latest reply left it
-- (`thread_participants`: a JSON array of user ids, in the order of their first reply).
ALTER TABLE messages ADD COLUMN parent_id TEXT;
ALTER TABLE messages ADD COLUMN reply_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_reply_ms BIGINT;
ALTER TABLE messages ADD COLUMN thread_participants TEXT;
CREATE INDEX messages_by_parent ON messages (parent_id, seq);

-- Who each message mentions. Whether a mention is read is whether its message is in
-- `message_reads` for that user; listing checks participation and deletion at query time.
CREATE TABLE mentions (
    user_id         TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    position        BIGINT NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX mentions_by_user ON mentions (user_id, position);
CREATE INDEX mentions_by_conversation ON mentions (conversation_id, user_id);

-- Pinned messages; a deleted message's pin is dropped.
CREATE TABLE pins (
    message_id      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    pinned_by       TEXT NOT NULL,
    pinned_ms       BIGINT NOT NULL,
    position        BIGINT NOT NULL
);
CREATE INDEX pins_by_conversation ON pins (conversation_id, position);
