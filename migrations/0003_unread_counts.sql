-- The `unread` projection: unread messages per participant. Owned by projector/src/unread.rs;
-- it keeps what it needs (message senders and seqs, reads, join points) in its own tables so
-- it can be rebuilt alone.

CREATE TABLE unread_counts (
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    unread          BIGINT NOT NULL,
    joined_seq      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);

CREATE TABLE unread_conversations (
    id       TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

CREATE TABLE unread_message_meta (
    message_id      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL
);

CREATE TABLE unread_reads (
    message_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
