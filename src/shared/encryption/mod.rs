//! Encryption at rest: the key ring built from `VAULTBASE_ENCRYPTION_KEY` (and, during a
//! rotation, `VAULTBASE_ENCRYPTION_NEW_KEY`), AES-256-GCM sealing and opening of single values,
//! and the stored format. It owns no knowledge of collections or settings: callers decide what
//! to seal ([`startup`] checks a data dir before anything serves it, [`rotate`] re-encrypts one).
//!
//! Stored format, one self-describing string per value:
//! `vbenc:v1:<key id>:<base64(12-byte nonce ‖ ciphertext ‖ 16-byte tag)>`, where the key id is
//! the first 8 hex digits of SHA-256 of the 32-byte key. The id says which key of the ring
//! opens a value, so values under an old and a new key can be read side by side while a
//! rotation runs. A fresh random nonce is drawn for every value.
//!
//! The ring is process-wide and fixed at start ([`install`]): the record output writer reads
//! it at the one place stored values become response bytes, so no read path can skip it.

pub mod rotate;
pub mod startup;

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Every sealed value starts with this.
pub const PREFIX: &str = "vbenc:v1:";
/// Bytes of an AES-256 key.
pub const KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;
/// Hex digits of a key id.
pub const KEY_ID_CHARS: usize = 8;
/// What the key variables accept, for configuration errors.
pub const KEY_FORMATS: &str = "base64 or 64 hex digits decoding to 32 bytes, or exactly 32 characters";

/// One key with its id. Debug output hides the key.
#[derive(Clone)]
pub struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, <hidden>)", self.id)
    }
}

impl Key {
    /// Decodes a key as the TypeScript original did, first match wins: base64 decoding to 32
    /// bytes, 64 hex digits, then the text itself when it is exactly 32 bytes.
    pub fn parse(text: &str) -> Option<Key> {
        let t = text.trim();
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = engine
            .decode(t)
            .ok()
            .filter(|b| b.len() == KEY_BYTES)
            .or_else(|| decode_hex(t).filter(|b| b.len() == KEY_BYTES))
            .or_else(|| Some(t.as_bytes().to_vec()).filter(|b| b.len() == KEY_BYTES))?;
        Key::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Key> {
        let digest = Sha256::digest(bytes);
        let id: String = digest.iter().take(KEY_ID_CHARS / 2).map(|b| format!("{b:02x}")).collect();
        let cipher = Aes256Gcm::new_from_slice(bytes).ok()?;
        Some(Key { id, cipher })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

fn decode_hex(t: &str) -> Option<Vec<u8>> {
    if !t.len().is_multiple_of(2) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..t.len()).step_by(2).map(|i| t.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the value is not in the vbenc:v1 format")]
    Malformed,
    #[error("the value was encrypted with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the value does not decrypt with key {0} (wrong key or damaged data)")]
    Damaged(String),
}

/// The keys this process holds: the first seals, all of them open.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// `current` is `VAULTBASE_ENCRYPTION_KEY`; `next`, when set, is
    /// `VAULTBASE_ENCRYPTION_NEW_KEY`: it then seals, and `current` still opens. `None` when
    /// no key is configured.
    pub fn new(current: Option<Key>, next: Option<Key>) -> Option<Keyring> {
        let keys: Vec<Key> = next.into_iter().chain(current).collect();
        if keys.is_empty() {
            None
        } else {
            Some(Keyring { keys })
        }
    }

    fn primary(&self) -> Option<&Key> {
        self.keys.first()
    }

    /// The id of the key that seals.
    pub fn primary_id(&self) -> &str {
        self.primary().map_or("", |k| k.id.as_str())
    }

    /// Every key id the ring opens.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    pub fn knows(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Seals `plain` under the primary key with a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Result<String, SealError> {
        let key = self.primary().ok_or(SealError)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::getrandom(&mut nonce).map_err(|_| SealError)?;
        let sealed = key.cipher.encrypt(&Nonce::from(nonce), plain).map_err(|_| SealError)?;
        let mut blob = Vec::with_capacity(NONCE_BYTES + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        let engine = base64::engine::general_purpose::STANDARD;
        Ok(format!("{PREFIX}{}:{}", key.id, engine.encode(blob)))
    }

    /// Opens a sealed value with whichever key its id names.
    pub fn open(&self, stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        let rest = stored.strip_prefix(PREFIX.as_bytes()).ok_or(OpenError::Malformed)?;
        let id = rest.get(..KEY_ID_CHARS).and_then(|id| std::str::from_utf8(id).ok()).ok_or(OpenError::Malformed)?;
        if rest.get(KEY_ID_CHARS) != Some(&b':') {
            return Err(OpenError::Malformed);
        }
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let engine = base64::engine::general_purpose::STANDARD;
        let blob = engine.decode(rest.get(KEY_ID_CHARS + 1..).unwrap_or_default()).map_err(|_| OpenError::Malformed)?;
        if blob.len() < NONCE_BYTES {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
        key.cipher.decrypt(&Nonce::from(nonce), sealed).map_err(|_| OpenError::Damaged(id.to_owned()))
    }

    /// [`Keyring::open`] for text values.
    pub fn open_text(&self, stored: &str) -> Result<String, OpenError> {
        let plain = self.open(stored.as_bytes())?;
        String::from_utf8(plain).map_err(|_| OpenError::Damaged(key_id_of(stored).unwrap_or_default().to_owned()))
    }
}

/// Sealing failed (no randomness); nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("encrypting a value failed")]
pub struct SealError;

/// Whether `stored` is a sealed value.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX.as_bytes())
}

/// The key id a sealed value names.
pub fn key_id_of(stored: &str) -> Option<&str> {
    stored.strip_prefix(PREFIX)?.get(..KEY_ID_CHARS)
}

static KEYRING: OnceLock<Option<Keyring>> = OnceLock::new();

/// Fixes this process's key ring; later calls change nothing (the key is set once per process).
pub fn install(ring: Option<Keyring>) {
    let _ = KEYRING.set(ring);
}

/// The process's key ring, `None` when no key is configured.
pub fn keyring() -> Option<&'static Keyring> {
    KEYRING.get().and_then(Option::as_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        Key::parse(text).expect("key")
    }

    #[test]
    fn keys_parse_in_the_three_formats_and_nothing_else() {
        let raw = "0123456789abcdef0123456789abcdef";
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
        let hex: String = raw.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key(raw).id(), key(&b64).id());
        assert_eq!(key(raw).id(), key(&hex).id());
        assert_eq!(key(raw).id().len(), KEY_ID_CHARS);
        for bad in ["", "short", &"x".repeat(33), &"ab".repeat(31)] {
            assert!(Key::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let old = key(&"a".repeat(32));
        let new = key(&"b".repeat(32));
        let ring = Keyring::new(Some(old.clone()), None).expect("ring");
        let a = ring.seal(b"secret").expect("seal");
        let b = ring.seal(b"secret").expect("seal");
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(a.starts_with(&format!("{PREFIX}{}:", old.id())));
        assert!(!a.contains("secret"));
        assert_eq!(ring.open_text(&a).expect("open"), "secret");

        let rotating = Keyring::new(Some(old.clone()), Some(new.clone())).expect("ring");
        let c = rotating.seal(b"other").expect("seal");
        assert_eq!(key_id_of(&c), Some(new.id()));
        assert_eq!(rotating.open_text(&a).expect("old still opens"), "secret");
        assert_eq!(ring.open_text(&c), Err(OpenError::UnknownKey(new.id().to_owned())));

        let mut tampered = a.clone();
        tampered.pop();
        tampered.push(if a.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open(tampered.as_bytes()).is_err());
        assert_eq!(ring.open(b"plain"), Err(OpenError::Malformed));
    }
}
