//! The keyring: the node's way to seal and open personal data (ADR 14). It names the data
//! keys (`u.<userId>`: a user's key; `c.<conversationId>.<periodStart>`: a conversation's key
//! for one period of time), creates a key the first time it is needed (one store write per
//! user and per conversation-period, never per message), unwraps keys with the master key and
//! caches them, bounded. Readers prepare a [`KeySet`] for what they are about to open, then
//! open synchronously. Retention's watermark of a conversation ([`Expiry`], `x.<id>`) lives
//! beside its keys, so that every reader of the log (node, CLI) withholds expired messages
//! whose period key is not destroyed yet. Must not decide who may read what, or what is due
//! to expire: that is the command and query sides'.

use crate::KeyError;
use crate::crypto::{self, Key, MasterKey};
use crate::store::{Entry, KeyStore, KeyStores};
use events::{ConversationId, Millis, Open, Opened, Place, SealedV1, UserId};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// Default length of a conversation key period: retention destroys a period's key once the
/// whole period is past the conversation's retention.
pub const DEFAULT_PERIOD_MS: Millis = 3_600_000;
/// How many empty periods shredding looks at again before it records its progress anyway.
const PERIODS_PER_RECORD: u32 = 24;
/// Most unwrapped keys a node keeps in memory (about 100 bytes each).
const CACHED_KEYS: usize = 65_536;

/// A key as the keyring knows it: unwrapped, or destroyed.
type Known = Option<Arc<Key>>;

pub struct Keyring {
    store: KeyStores,
    master: MasterKey,
    period_ms: Millis,
    cache: Mutex<lru::LruCache<String, Known>>,
    expiries: Mutex<lru::LruCache<String, Expiry>>,
}

/// What retention did to a conversation: every message sent before `before` (its id's time)
/// reads expired; every period key of a period starting before `shredded` is destroyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expiry {
    pub before: Millis,
    pub shredded: Millis,
}

impl Expiry {
    const VERSION: u8 = 1;

    fn encode(self) -> Vec<u8> {
        let mut b = vec![Self::VERSION];
        b.extend_from_slice(&self.before.to_be_bytes());
        b.extend_from_slice(&self.shredded.to_be_bytes());
        b
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Self, KeyError> {
        let damaged = || KeyError::Damaged(name.to_owned());
        let (&version, rest) = bytes.split_first().ok_or_else(damaged)?;
        if version != Self::VERSION || rest.len() != 16 {
            return Err(damaged());
        }
        let (before, shredded) = rest.split_at(8);
        let millis = |b: &[u8]| {
            b.try_into()
                .map(Millis::from_be_bytes)
                .map_err(|_| damaged())
        };
        Ok(Self {
            before: millis(before)?,
            shredded: millis(shredded)?,
        })
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("period_ms", &self.period_ms)
            .finish_non_exhaustive()
    }
}

pub fn user_key_name(user: &str) -> String {
    format!("u.{user}")
}

pub fn period_key_name(conversation: &str, start: Millis) -> String {
    format!("c.{conversation}.{start}")
}

pub fn expiry_name(conversation: &str) -> String {
    format!("x.{conversation}")
}

impl Keyring {
    pub fn new(store: KeyStores, master: MasterKey, period_ms: Millis) -> Self {
        let cap = NonZeroUsize::new(CACHED_KEYS).unwrap_or(NonZeroUsize::MIN);
        Self {
            store,
            master,
            period_ms: period_ms.max(1),
            cache: Mutex::new(lru::LruCache::new(cap)),
            expiries: Mutex::new(lru::LruCache::new(cap)),
        }
    }

    /// The length of a conversation key period.
    pub fn period_ms(&self) -> Millis {
        self.period_ms
    }

    pub fn store(&self) -> &KeyStores {
        &self.store
    }

    /// The start of the conversation key period that `at` falls in.
    pub fn period_start(&self, at: Millis) -> Millis {
        at.div_euclid(self.period_ms) * self.period_ms
    }

    fn cached(&self, name: &str) -> Option<Known> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn remember(&self, name: &str, known: Known) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(name.to_owned(), known);
    }

    /// Forgets what this node cached of `user`'s key (another node destroyed it).
    pub fn forget_user(&self, user: &UserId) {
        self.forget(&user_key_name(user.as_str()));
    }

    /// Forgets what the node cached of `name` (another node destroyed it).
    pub fn forget(&self, name: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop(name);
    }

    fn unwrap_entry(&self, name: &str, entry: Entry) -> Result<Known, KeyError> {
        match entry {
            Entry::Live(blob) => Ok(Some(Arc::new(self.master.unwrap(name, &blob)?))),
            Entry::Destroyed => Ok(None),
        }
    }

    /// The key `name`: `None` when destroyed, or (for a reader, `create` false) never made.
    async fn key(&self, name: &str, create: bool) -> Result<Known, KeyError> {
        if let Some(known) = self.cached(name) {
            return Ok(known);
        }
        let known = match self.store.get(name).await? {
            Some(entry) => self.unwrap_entry(name, entry)?,
            None if create => {
                let blob = self.master.wrap(name, &Key::generate());
                let entry = self.store.create(name, blob).await?;
                self.unwrap_entry(name, entry)?
            }
            None => return Ok(None),
        };
        self.remember(name, known.clone());
        Ok(known)
    }

    /// The key to seal with; refused when it was destroyed.
    async fn sealing_key(&self, name: &str) -> Result<Arc<Key>, KeyError> {
        self.key(name, true)
            .await?
            .ok_or_else(|| KeyError::Destroyed(name.to_owned()))
    }

    /// Message content, sealed for `event_type` (`MessageSent`, `MessageEdited`) of `message`
    /// by its author, under the conversation key of the period `sent_at` falls in (an edit is
    /// sealed in the period of the message's send, so retention expires both together).
    pub async fn seal_message(
        &self,
        conversation: &ConversationId,
        event_type: &str,
        message: &events::MessageId,
        author: &UserId,
        sent_at: Millis,
        text: &str,
    ) -> Result<SealedV1, KeyError> {
        let start = self.period_start(sent_at);
        let user = self.sealing_key(&user_key_name(author.as_str())).await?;
        let period = self
            .sealing_key(&period_key_name(conversation.as_str(), start))
            .await?;
        let place = Place::message_content(conversation.as_str(), event_type, message.as_str());
        Ok(crypto::seal(
            author,
            &user,
            Some((start, &period)),
            &place,
            text,
        ))
    }

    /// A profile field of `user`, sealed under the user's key.
    pub async fn seal_profile(
        &self,
        user: &UserId,
        field: &str,
        text: &str,
    ) -> Result<SealedV1, KeyError> {
        let key = self.sealing_key(&user_key_name(user.as_str())).await?;
        let place = Place::profile(user.as_str(), field);
        Ok(crypto::seal(user, &key, None, &place, text))
    }

    /// Retention's watermark of `conversation` (cached; the broadcaster raises it as expiry
    /// events pass, [`Keyring::note_expired`]).
    pub async fn expiry(&self, conversation: &str) -> Result<Expiry, KeyError> {
        let cached = self
            .expiries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(conversation)
            .copied();
        if let Some(x) = cached {
            return Ok(x);
        }
        let x = self.stored_expiry(conversation).await?;
        self.expiries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(conversation.to_owned(), x);
        Ok(x)
    }

    async fn stored_expiry(&self, conversation: &str) -> Result<Expiry, KeyError> {
        let name = expiry_name(conversation);
        match self.store.get(&name).await? {
            Some(Entry::Live(bytes)) => Expiry::decode(&name, &bytes),
            Some(Entry::Destroyed) | None => Ok(Expiry::default()),
        }
    }

    /// Raises this node's watermark of `conversation` to `before`: an expiry event of the log,
    /// which may pass before the sweeper has recorded it in the store. (The cache serves
    /// readers only; shredding reads the store.)
    pub fn note_expired(&self, conversation: &str, before: Millis) {
        let mut cache = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get_mut(conversation) {
            Some(x) => x.before = x.before.max(before),
            None => {
                cache.put(
                    conversation.to_owned(),
                    Expiry {
                        before,
                        shredded: 0,
                    },
                );
            }
        }
    }

    async fn store_expiry(&self, conversation: &str, x: Expiry) -> Result<(), KeyError> {
        self.store
            .put(&expiry_name(conversation), x.encode())
            .await?;
        self.expiries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(conversation.to_owned(), x);
        Ok(())
    }

    /// Carries out retention on `conversation`: records the watermark `before` of an expiry
    /// the log holds (so readers withhold what it covers at once), then destroys the key of
    /// every period wholly before `through` (the retention cutoff: every message sent in such
    /// a period is expired), from where the last shredding stopped (or from the period of
    /// `first_sent_at`, the conversation's first message), and records that. Idempotent, and
    /// safe to call again after a crash at any step. The number of keys it destroyed.
    pub async fn shred(
        &self,
        conversation: &ConversationId,
        before: Millis,
        through: Millis,
        first_sent_at: Option<Millis>,
    ) -> Result<usize, KeyError> {
        let id = conversation.as_str();
        let mut x = self.stored_expiry(id).await?;
        if before > x.before {
            x.before = before;
            self.store_expiry(id, x).await?;
        }
        let upto = self.period_start(through);
        if x.shredded >= upto {
            return Ok(0);
        }
        let mut start = match (x.shredded, first_sent_at) {
            (0, Some(first)) => self.period_start(first),
            (0, None) => upto,
            (s, _) => s,
        };
        let (mut destroyed, mut scanned) = (0, 0);
        while start < upto {
            let name = period_key_name(id, start);
            if let Some(Entry::Live(_)) = self.store.get(&name).await? {
                self.store.destroy(&name).await?;
                destroyed += 1;
            }
            self.remember(&name, None);
            start += self.period_ms;
            scanned += 1;
        }
        // Progress over empty periods is recorded now and then, not at every sweep: a store
        // write (a rewrite of the embedded key file) per idle conversation per period is
        // dearer than looking at a few periods again.
        if destroyed > 0 || scanned >= PERIODS_PER_RECORD {
            x.shredded = upto;
            self.store_expiry(id, x).await?;
        }
        Ok(destroyed)
    }

    /// The keys that open `sealed`, fields of aggregate `conversation` (none for a user's).
    pub async fn prepare(
        &self,
        conversation: Option<&str>,
        sealed: &[&SealedV1],
    ) -> Result<KeySet, KeyError> {
        let expired_before = match conversation {
            Some(c) => self.expiry(c).await?.before,
            None => 0,
        };
        let mut set = KeySet {
            conversation: conversation.map(str::to_owned),
            keys: HashMap::new(),
            expired_before,
        };
        for s in sealed.iter().copied() {
            let mut names = vec![user_key_name(s.user.as_str())];
            if let (Some(c), Some(start)) = (conversation, s.period) {
                names.push(period_key_name(c, start));
            }
            for name in names {
                if let std::collections::hash_map::Entry::Vacant(slot) = set.keys.entry(name) {
                    let known = self.key(slot.key(), false).await?;
                    slot.insert(known);
                }
            }
        }
        Ok(set)
    }

    /// The keys that open the sealed fields of `commit` (for audit output and exports).
    pub async fn prepare_commit(&self, commit: &events::Commit) -> Result<KeySet, KeyError> {
        use events::{ConversationEvent, EventKind, UserEvent};
        if commit.aggregate_type == ConversationEvent::AGGREGATE {
            let events = commit
                .decode_events::<ConversationEvent>()
                .unwrap_or_default();
            let sealed: Vec<&SealedV1> = events.iter().filter_map(|r| r.event.sealed()).collect();
            self.prepare(Some(&commit.aggregate_id), &sealed).await
        } else {
            let events = commit.decode_events::<UserEvent>().unwrap_or_default();
            let sealed: Vec<&SealedV1> = events.iter().flat_map(|r| r.event.sealed()).collect();
            self.prepare(None, &sealed).await
        }
    }

    /// A keyed fingerprint of `user`'s profile, so that the user aggregate can tell an
    /// unchanged profile without holding it in the clear: HKDF-SHA256 under the user's key
    /// (a PRF over its info), meaningless once the key is destroyed.
    pub async fn profile_fingerprint(
        &self,
        user: &UserId,
        fields: &[Option<&str>],
    ) -> Result<[u8; 32], KeyError> {
        let key = self.sealing_key(&user_key_name(user.as_str())).await?;
        Ok(crypto::fingerprint(&key, fields))
    }

    /// Destroys `user`'s data key: every field sealed under it stops opening, here at once
    /// and on other nodes once they forget it. Whether a live key was destroyed.
    pub async fn destroy_user(&self, user: &UserId) -> Result<bool, KeyError> {
        let name = user_key_name(user.as_str());
        let live = self.store.destroy(&name).await?;
        self.remember(&name, None);
        Ok(live)
    }

    /// Destroys the conversation key of the period starting at `start`.
    pub async fn destroy_period(
        &self,
        conversation: &ConversationId,
        start: Millis,
    ) -> Result<bool, KeyError> {
        let name = period_key_name(conversation.as_str(), start);
        let live = self.store.destroy(&name).await?;
        self.remember(&name, None);
        Ok(live)
    }
}

/// The keys a reader prepared ([`Keyring::prepare`]); opens what they cover.
#[derive(Debug)]
pub struct KeySet {
    conversation: Option<String>,
    keys: HashMap<String, Known>,
    /// Retention's watermark of the conversation (0: none).
    expired_before: Millis,
}

impl KeySet {
    fn get(&self, name: &str) -> Option<&Known> {
        self.keys.get(name)
    }
}

impl Open for KeySet {
    /// `Erased` when the user's key is gone, `Expired` when the period's is. A field that no
    /// key opens although both are there (moved, damaged, prepared for another aggregate)
    /// reads `Erased`, with a warning: a reader never shows it and never fails on it.
    fn open(&self, place: &Place, sealed: &SealedV1) -> Opened {
        let Some(Some(user)) = self.get(&user_key_name(sealed.user.as_str())) else {
            return Opened::Erased;
        };
        if let Some(expired) = self.withheld(place) {
            return expired;
        }
        let period = match (&self.conversation, sealed.period) {
            (Some(c), Some(start)) => match self.get(&period_key_name(c, start)) {
                Some(Some(k)) => Some(k.as_ref()),
                _ => return Opened::Expired,
            },
            (None, Some(_)) => return Opened::Erased,
            (_, None) => None,
        };
        match crypto::open(user, period, place, sealed) {
            Ok(text) => Opened::Text(text),
            Err(e) => {
                tracing::warn!(error = %e, user = %sealed.user.as_str(), "sealed field does not open");
                Opened::Erased
            }
        }
    }

    /// `Expired` for the content of a message sent before the conversation's watermark.
    fn withheld(&self, place: &Place) -> Option<Opened> {
        let at = place.sent_at()?;
        (at < self.expired_before).then_some(Opened::Expired)
    }
}
