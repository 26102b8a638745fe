//! The log layout: one stream, one subject per aggregate (`<prefix>.conv.<id>`,
//! `<prefix>.user.<id>`). The prefix is `chat` in production; tests use their own prefix and
//! stream name so that they never see each other's events.

use crate::ids::{ConversationId, UserId};

/// Stream name and subject prefix of one deployment (or one test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    pub stream: String,
    pub prefix: String,
}

/// Which aggregate a subject belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKind {
    User(String),
    Conversation(String),
}

impl Default for Subjects {
    fn default() -> Self {
        Self {
            stream: "CHAT_EVENTS".to_owned(),
            prefix: "chat".to_owned(),
        }
    }
}

impl Subjects {
    pub fn all(&self) -> String {
        format!("{}.>", self.prefix)
    }
    pub fn conversations(&self) -> String {
        format!("{}.conv.>", self.prefix)
    }
    pub fn conversation(&self, id: &ConversationId) -> String {
        format!("{}.conv.{id}", self.prefix)
    }
    pub fn user(&self, id: &UserId) -> String {
        format!("{}.user.{id}", self.prefix)
    }

    /// The aggregate of a subject of this deployment, if it is one.
    pub fn classify(&self, subject: &str) -> Option<SubjectKind> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        if let Some(id) = rest.strip_prefix("conv.") {
            return Some(SubjectKind::Conversation(id.to_owned()));
        }
        rest.strip_prefix("user.")
            .map(|id| SubjectKind::User(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let s = Subjects::default();
        let c = ConversationId::parse("conv_1").expect("valid");
        assert_eq!(s.conversation(&c), "chat.conv.conv_1");
        assert_eq!(
            s.classify("chat.conv.conv_1"),
            Some(SubjectKind::Conversation("conv_1".into()))
        );
        assert_eq!(
            s.classify("chat.user.alice"),
            Some(SubjectKind::User("alice".into()))
        );
        assert_eq!(s.classify("other.user.alice"), None);
        assert_eq!(s.all(), "chat.>");
    }
}
