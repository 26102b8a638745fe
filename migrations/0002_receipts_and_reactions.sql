-- Deliveries, read receipts and reactions.

CREATE TABLE message_deliveries (
    message_id   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    delivered_ms BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);

CREATE TABLE message_reads (
    message_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    read_ms    BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);

CREATE TABLE reactions (
    id              TEXT PRIMARY KEY,
    message_id      TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    emoji           TEXT NOT NULL,
    created_ms      BIGINT NOT NULL
);
CREATE INDEX reactions_by_message ON reactions (message_id);
