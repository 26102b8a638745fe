//! Personal data in the log is sealed (contract 4.2, ADR 14): message content and profile
//! fields are written only as AEAD ciphertext, under data keys that live beside the log,
//! wrapped by the master key. Forgetting is destroying keys (crypto-shredding); the log is
//! never rewritten and its hash chain covers the ciphertext.
//!
//! - [`crypto`]: the primitives (RustCrypto), pure.
//! - [`store`]: where wrapped keys are kept (JetStream key-value bucket, or a file).
//! - [`keyring`]: naming, creating, caching, sealing and opening.
//!
//! Must not decide who may erase or read: the command and query sides do.

pub mod crypto;
pub mod keyring;
pub mod store;

pub use crypto::{Key, MasterKey};
pub use keyring::{DEFAULT_PERIOD_MS, Expiry, KeySet, Keyring};
pub use store::{Entry, FileKeys, JetStreamKeys, KeyStore, KeyStores};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the master key must be 32 bytes, as 64 hex digits or base64")]
    BadMasterKey,
    #[error("key {0} is damaged or was wrapped by another master key")]
    Damaged(String),
    #[error("key {0} was destroyed")]
    Destroyed(String),
    #[error("sealed field does not open here")]
    WrongPlace,
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

impl KeyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadMasterKey => "BAD_MASTER_KEY",
            Self::Damaged(_) => "KEY_DAMAGED",
            Self::Destroyed(_) => "KEY_DESTROYED",
            Self::WrongPlace => "WRONG_PLACE",
            Self::Unavailable(_) => "UNAVAILABLE",
        }
    }
}
