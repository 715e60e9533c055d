//! PocketBase's encrypted settings: with `--encryptionEnv NAME` PocketBase stores the
//! `settings` row of `_params` as base64(nonce ‖ AES-256-GCM ciphertext) under the 32-byte key
//! held in the environment variable NAME. vaultbase accepts the same flag and variable, reads
//! such a row, and writes it back the same way, so PocketBase can still read it.
//!
//! It owns that format and the process-wide key (installed once at start, like
//! `encryption::install`). It must not be used for vaultbase's own sealed values (those are
//! `shared::encryption`'s format).

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

/// AES-256 key length, in bytes: PocketBase takes the variable's value as the raw key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

static KEY: OnceLock<Option<[u8; KEY_BYTES]>> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("the settings row is encrypted (PocketBase --encryptionEnv) and no key is configured; start with --encryptionEnv NAME")]
    NoKey,
    #[error("the settings row cannot be decrypted with the configured --encryptionEnv key")]
    Decrypt,
    #[error("encrypting the settings row failed")]
    Encrypt,
}

/// Installs the key held in the environment variable `var` (None: settings are plain JSON).
/// The configuration checked the variable already; the first call wins.
pub fn install_from_env(var: Option<&str>) {
    let key = var.and_then(|v| std::env::var(v).ok()).and_then(|k| <[u8; KEY_BYTES]>::try_from(k.as_bytes()).ok());
    install(key);
}

/// Sets the key for this process (None: settings are plain JSON). The first call wins.
pub fn install(key: Option<[u8; KEY_BYTES]>) {
    let _ = KEY.set(key);
}

fn key() -> Option<&'static [u8; KEY_BYTES]> {
    KEY.get().and_then(Option::as_ref)
}

/// The JSON text of a stored settings row: as it is when plain JSON, decrypted otherwise.
pub fn open(stored: &str) -> Result<String, ParamsError> {
    if stored.trim_start().starts_with('{') {
        return Ok(stored.to_owned());
    }
    let key = key().ok_or(ParamsError::NoKey)?;
    open_with(key, stored)
}

fn open_with(key: &[u8; KEY_BYTES], stored: &str) -> Result<String, ParamsError> {
    let raw = base64::engine::general_purpose::STANDARD.decode(stored.trim()).map_err(|_| ParamsError::Decrypt)?;
    if raw.len() < NONCE_BYTES {
        return Err(ParamsError::Decrypt);
    }
    let (nonce, sealed) = raw.split_at(NONCE_BYTES);
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| ParamsError::Decrypt)?;
    let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| ParamsError::Decrypt)?;
    let plain = cipher.decrypt(&Nonce::from(nonce), sealed).map_err(|_| ParamsError::Decrypt)?;
    String::from_utf8(plain).map_err(|_| ParamsError::Decrypt)
}

/// At start-up: fails when the stored settings row is encrypted and cannot be opened with the
/// installed key (none, or another), so the server refuses to start instead of failing every
/// request that needs a setting.
pub fn check(conn: &rusqlite::Connection) -> Result<(), ParamsError> {
    use rusqlite::OptionalExtension;
    let stored: Option<String> = conn
        .query_row("SELECT CAST(value AS TEXT) FROM _params WHERE id = 'settings'", [], |r| r.get(0))
        .optional()
        .ok()
        .flatten();
    match stored {
        Some(text) => open(&text).map(|_| ()),
        None => Ok(()),
    }
}

/// The text to store for settings JSON `json`: encrypted when a key is configured.
pub fn seal(json: &str) -> Result<String, ParamsError> {
    match key() {
        None => Ok(json.to_owned()),
        Some(key) => seal_with(key, json),
    }
}

fn seal_with(key: &[u8; KEY_BYTES], json: &str) -> Result<String, ParamsError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::getrandom(&mut nonce).map_err(|_| ParamsError::Encrypt)?;
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| ParamsError::Encrypt)?;
    let sealed = cipher.encrypt(&Nonce::from(nonce), json.as_bytes()).map_err(|_| ParamsError::Encrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn reads_what_pocketbase_wrote_and_round_trips() {
        // The format PocketBase writes (tests/pocketbase_dir.rs reads a row the real one wrote).
        let sealed = seal_with(KEY, r#"{"meta":{"appName":"x"}}"#).expect("seal");
        assert_eq!(open_with(KEY, &sealed).expect("open"), r#"{"meta":{"appName":"x"}}"#);
        assert!(open_with(b"fedcba9876543210fedcba9876543210", &sealed).is_err(), "another key fails");
        assert!(open_with(KEY, "not base64 !").is_err());
    }
}
