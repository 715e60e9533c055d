//! The one-time setup link printed on a start with no superuser: a random token whose SHA-256
//! is kept in `_params`, good for creating exactly one superuser while none exists.
//!
//! It owns minting (at start-up, by the process that owns the data dir) and redeeming (inside
//! the write transaction that inserts the superuser, so two browsers racing on the same link
//! cannot both win). It must not create the superuser itself: the caller validates and
//! hashes. Only the hash is stored, so reading the database does not yield a usable link.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// How long a printed link stays good; restarting the server prints a fresh one.
pub const SETUP_LINK_TTL: Duration = Duration::from_secs(60 * 60);
/// Random bytes in a token (hex-encoded in the link).
const TOKEN_BYTES: usize = 32;
const PARAMS_ID: &str = "setup_link";

#[derive(Debug, thiserror::Error)]
pub enum SetupLinkError {
    #[error("generating the setup token: {0}")]
    Random(getrandom::Error),
    #[error("storing the setup token: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

fn digest_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether the data dir still has no superuser.
pub fn no_superuser(conn: &Connection) -> rusqlite::Result<bool> {
    let n: i64 = conn.query_row("SELECT count(*) FROM _superusers", [], |r| r.get(0))?;
    Ok(n == 0)
}

/// Mints a token, replacing any earlier one, and returns it.
pub fn mint(conn: &Connection) -> Result<String, SetupLinkError> {
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut raw).map_err(SetupLinkError::Random)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let exp = unix_now().saturating_add(i64::try_from(SETUP_LINK_TTL.as_secs()).unwrap_or(i64::MAX));
    let value = serde_json::json!({ "sha256": digest_hex(&token), "exp": exp }).to_string();
    conn.execute(
        "INSERT INTO _params (id, value) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = strftime('%Y-%m-%d %H:%M:%fZ')",
        [PARAMS_ID, &value],
    )?;
    Ok(token)
}

/// Inside the caller's write transaction: whether `token` is the current, unexpired link and
/// no superuser exists yet. A good token is consumed (deleted), so it works once.
pub fn redeem(conn: &Connection, token: &str) -> rusqlite::Result<bool> {
    let stored: Option<String> =
        conn.query_row("SELECT value FROM _params WHERE id = ?1", [PARAMS_ID], |r| r.get(0)).optional()?;
    let Some(stored) = stored else { return Ok(false) };
    let parsed: serde_json::Value = serde_json::from_str(&stored).unwrap_or(serde_json::Value::Null);
    let (Some(want), Some(exp)) = (parsed.get("sha256").and_then(|v| v.as_str()), parsed.get("exp").and_then(|v| v.as_i64())) else {
        return Ok(false);
    };
    // Both sides are digests of equal length, so comparing them leaks nothing about the token.
    let got = digest_hex(token);
    let same = got.len() == want.len() && got.bytes().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same || exp < unix_now() || !no_superuser(conn)? {
        return Ok(false);
    }
    conn.execute("DELETE FROM _params WHERE id = ?1", [PARAMS_ID])?;
    Ok(true)
}

/// Forgets any outstanding link (a superuser now exists some other way).
pub fn revoke(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM _params WHERE id = ?1", [PARAMS_ID]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::db::{migrate, open};

    fn fresh() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open::open(&dir.path().join("d.db"), open::Role::Writer).expect("open");
        migrate::run(&mut conn).expect("migrate");
        (dir, conn)
    }

    #[test]
    fn a_token_works_once_and_only_the_newest_works() {
        let (_d, conn) = fresh();
        let old = mint(&conn).expect("mint");
        let new = mint(&conn).expect("mint again");
        assert!(!redeem(&conn, &old).expect("redeem"), "a replaced token is void");
        assert!(!redeem(&conn, "not-the-token").expect("redeem"));
        assert!(redeem(&conn, &new).expect("redeem"));
        assert!(!redeem(&conn, &new).expect("redeem"), "used once");
    }

    #[test]
    fn a_token_is_void_once_a_superuser_exists() {
        let (_d, conn) = fresh();
        let token = mint(&conn).expect("mint");
        conn.execute("INSERT INTO _superusers (id, email) VALUES ('s1', 'a@example.com')", []).expect("insert");
        assert!(!redeem(&conn, &token).expect("redeem"));
    }

    #[test]
    fn an_expired_token_is_void() {
        let (_d, conn) = fresh();
        let token = mint(&conn).expect("mint");
        let value = serde_json::json!({ "sha256": digest_hex(&token), "exp": unix_now() - 1 }).to_string();
        conn.execute("UPDATE _params SET value = ?1 WHERE id = ?2", [&value, PARAMS_ID]).expect("age");
        assert!(!redeem(&conn, &token).expect("redeem"));
    }
}
