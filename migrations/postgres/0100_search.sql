-- The `search` projection (contract 4.3) on PostgreSQL: the text of every findable message
-- with its English `tsvector` under a GIN index. Deleted, erased and expired messages have no
-- row. Participation is checked at query time, against `participants`.
CREATE TABLE search_messages (
    message_id      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    content         TEXT NOT NULL,
    doc             tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX search_messages_doc ON search_messages USING GIN (doc);
CREATE INDEX search_messages_by_conversation ON search_messages (conversation_id, seq);
CREATE INDEX search_messages_by_sender ON search_messages (sender_id);
