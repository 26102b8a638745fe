-- As-of reads (contract 4.3) read a page's messages from the log, by commit position: where
-- each was sent (`messages.position`, found by position through the index below) and the
-- commits that changed it since (edits, deletion, reactions). Owned by the chat projection.
CREATE TABLE message_changes (
    message_id TEXT NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (message_id, position)
);
CREATE INDEX messages_by_position ON messages (conversation_id, position);
