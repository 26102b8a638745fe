//! The cryptography, all of it from RustCrypto (ADR 14): XChaCha20-Poly1305 for every seal
//! (random 192-bit nonces, so no counter to keep), HKDF-SHA256 to derive one key per sealed
//! field from the data keys it is sealed under. Pure and synchronous; owns no key storage.

use crate::KeyError;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use events::{Millis, Place, SealedV1, UserId};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A 256-bit key, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    pub fn generate() -> Self {
        Self(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// The master key: wraps every data key in the key store (`CHAT_MASTER_KEY`).
#[derive(Clone, Debug)]
pub struct MasterKey(Key);

/// First byte of a wrapped data key.
const WRAPPED_V1: u8 = 1;
const NONCE: usize = 24;

impl MasterKey {
    /// 32 bytes, as 64 hex digits or standard base64.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        use base64::Engine;
        let text = text.trim();
        let bytes = Zeroizing::new(match hex::decode(text) {
            Ok(b) => b,
            Err(_) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| KeyError::BadMasterKey)?,
        });
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadMasterKey)?;
        Ok(Self(Key(key)))
    }

    pub fn generate() -> Self {
        Self(Key::generate())
    }

    /// The key as 64 hex digits (for the embedded mode's key file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.0))
    }

    /// `key` sealed under the master key, bound to its name in the store.
    pub fn wrap(&self, name: &str, key: &Key) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: &key.0,
            aad: name.as_bytes(),
        };
        // Encrypting 32 bytes in memory cannot fail (the limit is 256 GiB).
        let sealed = self.0.cipher().encrypt(&nonce, payload).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
        out.push(WRAPPED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The data key `name` wrapped in `blob`; an error when it was wrapped by another master
    /// key, for another name, or is damaged.
    pub fn unwrap(&self, name: &str, blob: &[u8]) -> Result<Key, KeyError> {
        let bad = || KeyError::Damaged(name.to_owned());
        let (&version, rest) = blob.split_first().ok_or_else(bad)?;
        if version != WRAPPED_V1 || rest.len() < NONCE {
            return Err(bad());
        }
        let (nonce, sealed) = rest.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| bad())?;
        let payload = Payload {
            msg: sealed,
            aad: name.as_bytes(),
        };
        let plain = Zeroizing::new(
            self.0
                .cipher()
                .decrypt(&XNonce::from(nonce), payload)
                .map_err(|_| bad())?,
        );
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| bad())?;
        Ok(Key(key))
    }
}

/// The key of one sealed field: HKDF-SHA256 over the user's data key and, for message
/// content, the conversation key of its period, with the field's place as info. Destroying
/// either input key makes the field unreadable.
fn field_key(user: &Key, period: Option<&Key>, place: &Place) -> Key {
    let mut ikm = Zeroizing::new(Vec::with_capacity(64));
    ikm.extend_from_slice(&user.0);
    if let Some(p) = period {
        ikm.extend_from_slice(&p.0);
    }
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"chat field key v1"), &ikm);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 8160.
    let _ = hk.expand(place.as_bytes(), &mut out);
    let key = Key(out);
    out.zeroize();
    key
}

/// A PRF of `fields` under `user`'s key (HKDF-Expand, whose info is an HMAC input); each field
/// length-prefixed, so that no two lists give the same input.
pub fn fingerprint(user: &Key, fields: &[Option<&str>]) -> [u8; 32] {
    let mut info = b"chat profile fingerprint v1".to_vec();
    for f in fields {
        match f {
            Some(t) => {
                info.push(1);
                info.extend_from_slice(&(t.len() as u64).to_le_bytes());
                info.extend_from_slice(t.as_bytes());
            }
            None => info.push(0),
        }
    }
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, &user.0);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 8160.
    let _ = hk.expand(&info, &mut out);
    out
}

/// `text` sealed for `place` under `owner`'s key `user` (and the conversation key `period`
/// starting at `period_start`).
pub fn seal(
    owner: &UserId,
    user: &Key,
    period: Option<(Millis, &Key)>,
    place: &Place,
    text: &str,
) -> SealedV1 {
    let key = field_key(user, period.map(|(_, k)| k), place);
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let payload = Payload {
        msg: text.as_bytes(),
        aad: place.as_bytes(),
    };
    // Encrypting at most 40 KB of content in memory cannot fail.
    let ciphertext = key.cipher().encrypt(&nonce, payload).unwrap_or_default();
    SealedV1 {
        user: owner.clone(),
        period: period.map(|(start, _)| start),
        nonce: nonce.into(),
        ciphertext,
    }
}

/// The text of `sealed`, which must belong at `place`.
pub fn open(
    user: &Key,
    period: Option<&Key>,
    place: &Place,
    sealed: &SealedV1,
) -> Result<String, KeyError> {
    let key = field_key(user, period, place);
    let payload = Payload {
        msg: &sealed.ciphertext,
        aad: place.as_bytes(),
    };
    let plain = key
        .cipher()
        .decrypt(&XNonce::from(sealed.nonce), payload)
        .map_err(|_| KeyError::WrongPlace)?;
    String::from_utf8(plain).map_err(|_| KeyError::WrongPlace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> UserId {
        UserId::parse("ann").expect("valid")
    }

    fn place(message: &str) -> Place {
        Place::message_content("conv_1", "MessageSent", message)
    }

    #[test]
    fn seal_then_open_gives_the_text_back_and_no_plaintext_in_the_bytes() {
        let (user, period) = (Key::generate(), Key::generate());
        let sealed = seal(
            &ann(),
            &user,
            Some((7, &period)),
            &place("m1"),
            "secret marker",
        );
        assert_eq!(sealed.period, Some(7));
        assert_eq!(sealed.user, ann());
        assert!(
            !sealed
                .ciphertext
                .windows(6)
                .any(|w| w == b"secret" || w == b"marker")
        );
        assert_eq!(
            open(&user, Some(&period), &place("m1"), &sealed).expect("opens"),
            "secret marker"
        );
        let again = seal(
            &ann(),
            &user,
            Some((7, &period)),
            &place("m1"),
            "secret marker",
        );
        assert_ne!(again.nonce, sealed.nonce);
    }

    #[test]
    fn a_wrong_key_or_a_moved_ciphertext_does_not_open() {
        let (user, period) = (Key::generate(), Key::generate());
        let sealed = seal(&ann(), &user, Some((7, &period)), &place("m1"), "hi");
        let other = Key::generate();
        assert_eq!(
            open(&other, Some(&period), &place("m1"), &sealed),
            Err(KeyError::WrongPlace)
        );
        assert_eq!(
            open(&user, Some(&other), &place("m1"), &sealed),
            Err(KeyError::WrongPlace)
        );
        assert_eq!(
            open(&user, None, &place("m1"), &sealed),
            Err(KeyError::WrongPlace)
        );
        assert_eq!(
            open(&user, Some(&period), &place("m2"), &sealed),
            Err(KeyError::WrongPlace)
        );
        let edit = Place::message_content("conv_1", "MessageEdited", "m1");
        assert_eq!(
            open(&user, Some(&period), &edit, &sealed),
            Err(KeyError::WrongPlace)
        );
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(
            open(&user, Some(&period), &place("m1"), &flipped),
            Err(KeyError::WrongPlace)
        );
    }

    #[test]
    fn wrapped_keys_open_only_under_their_master_and_name() {
        let master = MasterKey::generate();
        let key = Key::generate();
        let blob = master.wrap("u.ann", &key);
        assert_eq!(blob.len(), 1 + 24 + 32 + 16);
        assert_eq!(master.unwrap("u.ann", &blob).expect("unwraps").0, key.0);
        assert!(master.unwrap("u.bob", &blob).is_err());
        assert!(MasterKey::generate().unwrap("u.ann", &blob).is_err());
        assert!(master.unwrap("u.ann", &blob[..10]).is_err());
        assert!(master.unwrap("u.ann", &[]).is_err());
    }

    #[test]
    fn master_keys_parse_from_hex_or_base64_of_32_bytes() {
        let hex = "00".repeat(31) + "01";
        let m = MasterKey::parse(&hex).expect("hex");
        assert_eq!(m.to_hex().as_str(), hex);
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=";
        assert_eq!(
            MasterKey::parse(b64).expect("base64").to_hex().as_str(),
            hex
        );
        for bad in ["", "00", "not a key", &"00".repeat(33)] {
            assert_eq!(MasterKey::parse(bad).err(), Some(KeyError::BadMasterKey));
        }
    }
}
