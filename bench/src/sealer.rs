//! Sealing for the scenarios that write the log directly: the content of what they seed is
//! sealed as the service seals it, under keys in a temporary key file.

use events::{ConversationId, MessageId, Millis, Text, UserId};
use std::sync::Arc;

pub struct Sealer {
    pub keyring: Arc<keys::Keyring>,
    _dir: tempfile::TempDir,
}

impl Sealer {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = keys::KeyStores::File(keys::FileKeys::open(dir.path())?);
        let keyring =
            keys::Keyring::new(store, keys::MasterKey::generate(), keys::DEFAULT_PERIOD_MS);
        Ok(Self {
            keyring: Arc::new(keyring),
            _dir: dir,
        })
    }

    /// `MessageSent` content.
    pub async fn message(
        &self,
        conv: &ConversationId,
        message: &MessageId,
        sender: &UserId,
        at: Millis,
        text: &str,
    ) -> anyhow::Result<Text> {
        self.message_as(conv, message, sender, at, text, "MessageSent")
            .await
    }

    /// The content of `event` (`MessageSent` or `MessageEdited`) about `message`, sealed in
    /// the period of `at` (an edit: its message's send).
    pub async fn message_as(
        &self,
        conv: &ConversationId,
        message: &MessageId,
        author: &UserId,
        at: Millis,
        text: &str,
        event: &str,
    ) -> anyhow::Result<Text> {
        let sealed = self
            .keyring
            .seal_message(conv, event, message, author, at, text)
            .await?;
        Ok(Text::Sealed(sealed))
    }

    /// A profile with this name.
    pub async fn profile(&self, user: &UserId, name: &str) -> anyhow::Result<events::Profile> {
        let sealed = command::service::seal_profile(&self.keyring, user, name, None).await?;
        Ok(events::Profile::Sealed(sealed))
    }
}
