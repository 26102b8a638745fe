-- Erasure and retention (contract 4.2): a message whose author was erased, or that is past its
-- conversation's retention, reads `content: null` with `erased` or `expired`; erasure finds
-- an author's messages by sender.
ALTER TABLE messages ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN expired BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX messages_by_sender ON messages (sender_id);
