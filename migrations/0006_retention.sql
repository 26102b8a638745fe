-- Retention (contract 4.2): a conversation's period (NULL: keep forever), for its details and
-- for the sweeper, which visits only conversations that have one.
ALTER TABLE conversations ADD COLUMN retention_seconds BIGINT;
CREATE INDEX conversations_with_retention ON conversations (retention_seconds);
