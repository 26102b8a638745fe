-- Legal holds in force (contract 4.2), for `GET /api/holds` and for erasure, which refuses a
-- user with messages in a held conversation.
CREATE TABLE holds (
    kind      TEXT NOT NULL,
    target_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    since_ms  BIGINT NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (kind, target_id)
);
