-- The `search` projection (contract 4.3) on SQLite: every findable message (`search_messages`)
-- and its text in an FTS5 table (`search_text`, rowid = `search_messages.row`) with the Porter
-- stemmer. Deleted, erased and expired messages have no row; `secure-delete` makes FTS5
-- remove a deleted text's terms from the index at once, not at its next merge.
-- Participation is checked at query time, against `participants`.
CREATE TABLE search_messages (
    row             INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL
);
CREATE INDEX search_messages_by_conversation ON search_messages (conversation_id, seq);
CREATE INDEX search_messages_by_sender ON search_messages (sender_id);
CREATE VIRTUAL TABLE search_text USING fts5(content, tokenize = 'porter unicode61');
INSERT INTO search_text (search_text, rank) VALUES ('secure-delete', 1);
