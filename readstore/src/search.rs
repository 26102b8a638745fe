//! Full-text search, the one place its two engines differ (contract 4.3): PostgreSQL's
//! `tsvector` with English stemming under a GIN index (`migrations/postgres/0100_search.sql`),
//! SQLite's FTS5 with the Porter stemmer (`migrations/sqlite/0100_search.sql`). The `search`
//! projection writes through [`insert`], [`update`] and [`remove`]; the query side reads
//! through [`find`]. Both engines get the same normalised [`words`], every one required.
//!
//! Must not decide what is findable: the projection and the query side do.

use crate::Backend;
use sqlx::{AnyConnection, AnyPool, Row};

/// What marks a matched word in a highlight.
pub const MARK_START: &str = "<mark>";
pub const MARK_END: &str = "</mark>";

/// One findable message.
#[derive(Debug, Clone)]
pub struct Doc {
    pub message_id: String,
    pub conversation_id: String,
    pub sender_id: String,
    pub seq: i64,
    pub content: String,
}

/// Which documents leave the index.
#[derive(Debug, Clone, Copy)]
pub enum Remove<'a> {
    Message(&'a str),
    /// Every message of an author (erasure).
    Sender(&'a str),
    /// A conversation's messages up to `seq` (expiry).
    UpTo {
        conversation: &'a str,
        seq: i64,
    },
}

/// Rows per multi-row insert: 5 parameters each.
const ROWS_PER_STATEMENT: usize = 500;

/// Adds documents: new messages, none in the index yet (message ids are unique in the log, as
/// the chat projection's `messages` also takes for granted). A duplicate fails the batch.
pub async fn insert(tx: &mut AnyConnection, docs: &[Doc]) -> Result<(), sqlx::Error> {
    let backend = Backend::of_connection(tx);
    for chunk in docs.chunks(ROWS_PER_STATEMENT) {
        match backend {
            Backend::Postgres => {
                let sql = format!(
                    "INSERT INTO search_messages (message_id, conversation_id, sender_id, seq, content)
                     VALUES {}",
                    crate::values(1, chunk.len(), 5)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for d in chunk {
                    query = query
                        .bind(d.message_id.as_str())
                        .bind(d.conversation_id.as_str())
                        .bind(d.sender_id.as_str())
                        .bind(d.seq)
                        .bind(d.content.as_str());
                }
                query.execute(&mut *tx).await?;
            }
            Backend::Sqlite => {
                let sql = format!(
                    "INSERT INTO search_messages (message_id, conversation_id, sender_id, seq)
                     VALUES {} RETURNING row, message_id",
                    crate::values(1, chunk.len(), 4)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for d in chunk {
                    query = query
                        .bind(d.message_id.as_str())
                        .bind(d.conversation_id.as_str())
                        .bind(d.sender_id.as_str())
                        .bind(d.seq);
                }
                let rows = query.fetch_all(&mut *tx).await?;
                if rows.is_empty() {
                    continue;
                }
                let text: std::collections::HashMap<&str, &str> = chunk
                    .iter()
                    .map(|d| (d.message_id.as_str(), d.content.as_str()))
                    .collect();
                let sql = format!(
                    "INSERT INTO search_text (rowid, content) VALUES {}",
                    crate::values(1, rows.len(), 2)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in &rows {
                    let id: String = r.get("message_id");
                    query = query.bind(r.get::<i64, _>("row")).bind(
                        text.get(id.as_str())
                            .copied()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                query.execute(&mut *tx).await?;
            }
        }
    }
    Ok(())
}

/// Replaces an indexed message's text (an edit); a message not in the index stays out.
pub async fn update(
    tx: &mut AnyConnection,
    message_id: &str,
    content: &str,
) -> Result<(), sqlx::Error> {
    let sql = match Backend::of_connection(tx) {
        Backend::Postgres => "UPDATE search_messages SET content = $2 WHERE message_id = $1",
        Backend::Sqlite => {
            "UPDATE search_text SET content = $2
             WHERE rowid = (SELECT row FROM search_messages WHERE message_id = $1)"
        }
    };
    sqlx::query(sql)
        .bind(message_id)
        .bind(content)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Takes documents out of the index.
pub async fn remove(tx: &mut AnyConnection, which: Remove<'_>) -> Result<(), sqlx::Error> {
    let (filter, a, b) = match which {
        Remove::Message(id) => ("message_id = $1", id, None),
        Remove::Sender(id) => ("sender_id = $1", id, None),
        Remove::UpTo { conversation, seq } => (
            "conversation_id = $1 AND seq <= $2",
            conversation,
            Some(seq),
        ),
    };
    let statements = match Backend::of_connection(tx) {
        Backend::Postgres => vec![format!("DELETE FROM search_messages WHERE {filter}")],
        Backend::Sqlite => vec![
            format!(
                "DELETE FROM search_text WHERE rowid IN (SELECT row FROM search_messages WHERE {filter})"
            ),
            format!("DELETE FROM search_messages WHERE {filter}"),
        ],
    };
    for sql in statements {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(a);
        if let Some(b) = b {
            query = query.bind(b);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// The words of a query as both engines search them: runs of letters and digits, lowercased.
pub fn words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A search: every word required, in the conversations `user` takes part in now (or in
/// `conversation` alone), never a deleted, erased or expired message.
#[derive(Debug)]
pub struct Query<'a> {
    pub words: &'a [String],
    pub user: &'a str,
    pub conversation: Option<&'a str>,
    pub limit: i64,
}

/// A found message: its id and its text with each matched word between [`MARK_START`] and
/// [`MARK_END`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub message_id: String,
    pub highlight: String,
}

/// How many of the newest matches are ranked: a query's cost is bounded by this, not by how
/// many messages hold its words. A rarer query is ranked over every match.
pub const RANKED: i64 = 1000;

/// The best `limit` of the newest [`RANKED`] matches, best first (ties: newest first).
///
/// Each engine picks the candidates from its index alone (the participation filter is a list
/// of ids, not a join), ranks them, then checks the read model's message rows of the best
/// only until `limit` are kept.
pub async fn find(
    pool: &AnyPool,
    backend: Backend,
    q: &Query<'_>,
) -> Result<Vec<Hit>, sqlx::Error> {
    if q.words.is_empty() {
        return Ok(vec![]);
    }
    let in_conversation = if q.conversation.is_some() {
        "AND s.conversation_id = $4"
    } else {
        ""
    };
    let mine = "(SELECT conversation_id FROM participants WHERE user_id = $2 AND active)";
    let findable = "m.deleted_ms IS NULL AND NOT m.erased AND NOT m.expired";
    let (sql, text) = match backend {
        Backend::Postgres => (
            format!(
                "SELECT r.message_id, ts_headline('english', r.content, plainto_tsquery('english', $1),
                        'HighlightAll=true, StartSel={MARK_START}, StopSel={MARK_END}') AS highlight
                 FROM (SELECT c.message_id, c.content, ts_rank(c.doc, plainto_tsquery('english', $1)) AS rank
                       FROM (SELECT s.message_id, s.content, s.doc
                             FROM search_messages s
                             WHERE s.doc @@ plainto_tsquery('english', $1)
                               AND s.conversation_id = ANY (ARRAY{mine}) {in_conversation}
                             ORDER BY s.message_id DESC
                             LIMIT {RANKED}) c
                       ORDER BY rank DESC, c.message_id DESC
                       OFFSET 0) r
                 JOIN messages m ON m.id = r.message_id
                 WHERE {findable}
                 ORDER BY r.rank DESC, r.message_id DESC
                 LIMIT $3"
            ),
            q.words.join(" "),
        ),
        Backend::Sqlite => (
            format!(
                "SELECT r.message_id, r.highlight
                 FROM (SELECT s.message_id, search_text.rank AS rank,
                              highlight(search_text, 0, '{MARK_START}', '{MARK_END}') AS highlight
                       FROM search_text
                       JOIN search_messages s ON s.row = search_text.rowid
                       WHERE search_text MATCH $1 AND s.conversation_id IN {mine} {in_conversation}
                       ORDER BY search_text.rowid DESC
                       LIMIT {RANKED}) r
                 JOIN messages m ON m.id = r.message_id
                 WHERE {findable}
                 ORDER BY r.rank, r.message_id DESC
                 LIMIT $3"
            ),
            // Quoted, each word is a term, never an FTS5 operator.
            q.words
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    };
    // Not prepared once and kept: PostgreSQL would then switch to one plan for every word, and
    // the best plan for a rare word (the index, then sort) is the worst for a common one (newest
    // first until enough match). Planned per call, each gets its own.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(text)
        .bind(q.user)
        .bind(q.limit);
    if let Some(c) = q.conversation {
        query = query.bind(c);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| Hit {
            message_id: r.get("message_id"),
            highlight: r.get("highlight"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letters_and_digits_lowercased() {
        assert_eq!(
            words("  Hello, WORLD! it's 2026 "),
            ["hello", "world", "it", "s", "2026"]
        );
        assert_eq!(words("\"OR\" NEAR(a) *"), ["or", "near", "a"]);
        assert!(words(" ,.;!? ").is_empty());
        assert_eq!(words("Grüße café"), ["grüße", "café"]);
    }
}
