//! The JWT secret: from `VAULTBASE_JWT_SECRET`, or generated once into `<data>/.secret` (0600).
//!
//! Only the process that holds the data-dir lock (the supervisor, or `serve`) may generate it,
//! before any worker starts; workers only read. The TypeScript original let N workers race to
//! write N different secrets on first boot, so tokens failed on sibling workers.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Bytes of randomness in a generated secret (hex-encoded in the file).
pub const GENERATED_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the JWT secret from {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("writing a new JWT secret to {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the JWT secret file {path} is empty or shorter than 32 characters; delete it to generate a new one")]
    TooShort { path: String },
    #[error("gathering randomness for the JWT secret: {0}")]
    Random(getrandom::Error),
}

/// A loaded secret. Debug output hides it.
#[derive(Clone)]
pub struct JwtSecret(String);

impl JwtSecret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(<hidden>)")
    }
}

/// Returns the configured secret, or the one in `path`, creating it if missing.
pub fn load_or_create(configured: Option<&str>, path: &Path) -> Result<JwtSecret, SecretError> {
    if let Some(s) = configured {
        return Ok(JwtSecret(s.to_owned()));
    }
    if path.exists() {
        return read(path);
    }
    let mut raw = [0u8; GENERATED_SECRET_BYTES];
    getrandom::getrandom(&mut raw).map_err(SecretError::Random)?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let p = path.display().to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| SecretError::Write { path: p.clone(), source })?;
    file.write_all(hex.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|source| SecretError::Write { path: p, source })?;
    Ok(JwtSecret(hex))
}

/// Returns the configured secret, or reads the existing file (workers never create it).
pub fn load(configured: Option<&str>, path: &Path) -> Result<JwtSecret, SecretError> {
    match configured {
        Some(s) => Ok(JwtSecret(s.to_owned())),
        None => read(path),
    }
}

fn read(path: &Path) -> Result<JwtSecret, SecretError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read { path: p.clone(), source })?;
    let text = text.trim();
    if text.chars().count() < crate::shared::config::MIN_JWT_SECRET_CHARS {
        return Err(SecretError::TooShort { path: p });
    }
    Ok(JwtSecret(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_mode_0600_and_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".secret");
        let first = load_or_create(None, &path).expect("created");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_or_create(None, &path).expect("read");
        assert_eq!(first.as_bytes(), second.as_bytes());
        assert_eq!(load(None, &path).expect("worker read").as_bytes(), first.as_bytes());
    }

    #[test]
    fn configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".secret");
        let s = load_or_create(Some("x".repeat(40).as_str()), &path).expect("configured");
        assert_eq!(s.as_bytes(), "x".repeat(40).as_bytes());
        assert!(!path.exists());
    }

    #[test]
    fn worker_without_a_secret_file_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(None, &dir.path().join(".secret")).is_err());
    }
}
