//! `vaultbase encryption rotate`: re-encrypts every sealed value under the new key, online.
//!
//! The ring holds the current key (`VAULTBASE_ENCRYPTION_KEY`) and the new one
//! (`VAULTBASE_ENCRYPTION_NEW_KEY`). Values move in batches of [`ROTATE_BATCH_ROWS`], each batch
//! one short `BEGIN IMMEDIATE` transaction that reads and rewrites the same rows, so a server
//! writing at the same time only waits for a batch, and no write of its can be lost between
//! the read and the rewrite. Progress is the data itself (values still under another key id),
//! so an interrupted run simply continues when started again.
//!
//! A running server must already hold the new key (started with `VAULTBASE_ENCRYPTION_NEW_KEY`
//! set), or it could not read what this writes; the ids it holds are in `_params`
//! ([`super::startup::KEY_IDS_ROW`]) and are checked first. Rotation rewrites stored text only:
//! the plaintext is unchanged, so there are no realtime events and no cache to invalidate.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use serde_json::Value;

use super::startup::{self, quote, EncryptedField, CANARY_ROW, SETTINGS_SECRETS_ROW};
use super::{key_id_of, Keyring, OpenError, SealError, PREFIX};
use crate::shared::data_dir::DataDir;
use crate::shared::db::open;
use crate::shared::lock::{DirLock, LockError};

/// Rows re-encrypted per write transaction: short enough that a running server's writes
/// wait only briefly for each batch.
pub const ROTATE_BATCH_ROWS: usize = 500;

/// Environment variable naming a marker file for the test-only pause (the test suite only;
/// unset in use): after its first batch commits, a rotation creates `PATH.paused` and waits
/// until `PATH` exists, so a test can look at the data halfway through and write meanwhile.
pub const TEST_ROTATE_PAUSE_VAR: &str = "VAULTBASE_TEST_ROTATE_PAUSE";
/// How long the test pause waits at most, so a test that never releases it fails, not hangs.
const TEST_PAUSE_BOUND: std::time::Duration = std::time::Duration::from_secs(10);
const TEST_PAUSE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// The test-only pause (see [`TEST_ROTATE_PAUSE_VAR`]); nothing when the variable is unset.
fn test_pause() {
    let Some(go) = std::env::var_os(TEST_ROTATE_PAUSE_VAR).map(std::path::PathBuf::from) else { return };
    let mut paused = go.clone().into_os_string();
    paused.push(".paused");
    let _ = std::fs::write(paused, b"");
    let deadline = std::time::Instant::now() + TEST_PAUSE_BOUND;
    while !go.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(TEST_PAUSE_POLL);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("set VAULTBASE_ENCRYPTION_KEY to the current key and VAULTBASE_ENCRYPTION_NEW_KEY to the new one")]
    NoNewKey,
    #[error("the data dir {0} has no database")]
    NoDatabase(String),
    #[error(transparent)]
    Lock(LockError),
    #[error("the running server does not hold the new key {new_id}: restart it with VAULTBASE_ENCRYPTION_NEW_KEY set (it keeps reading with the current key), then run this again")]
    ServerLacksKey { new_id: String },
    #[error("{field} of record {id:?}: {source}")]
    Open { field: String, id: String, source: OpenError },
    #[error("{what}: {source}")]
    OpenSecret { what: String, source: OpenError },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// (field, values re-encrypted), one per encrypted field.
    pub fields: Vec<(String, usize)>,
    /// Settings secrets, OAuth2 client secrets and the key canary re-encrypted.
    pub secrets: usize,
    pub new_key_id: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.fields.iter().map(|(_, n)| n).sum();
        writeln!(f, "re-encrypted {total} field values and {} secrets under key {}", self.secrets, self.new_key_id)?;
        for (field, n) in &self.fields {
            writeln!(f, "  {field}: {n}")?;
        }
        write!(
            f,
            "Every value is now under the new key: set VAULTBASE_ENCRYPTION_KEY to it, unset VAULTBASE_ENCRYPTION_NEW_KEY, and restart."
        )
    }
}

/// Re-encrypts everything in the data dir `root` under the ring's new key.
pub fn run(root: &Path, ring: &Keyring, batch_rows: usize) -> Result<Report, RotateError> {
    if ring.ids().len() < 2 {
        return Err(RotateError::NoNewKey);
    }
    let dir = DataDir::open(root).map_err(|_| RotateError::NoDatabase(root.display().to_string()))?;
    if !dir.db_path().exists() {
        return Err(RotateError::NoDatabase(root.display().to_string()));
    }
    let new_id = ring.primary_id().to_owned();
    // Without a server the lock keeps one from starting halfway through; with one, SQLite's
    // locking orders our batches among its writes.
    let lock = match DirLock::acquire(&dir.lock_path(), dir.root()) {
        Ok(lock) => Some(lock),
        Err(LockError::Held { .. }) => None,
        Err(e) => return Err(RotateError::Lock(e)),
    };
    let mut conn = open::open(&dir.db_path(), open::Role::Writer)?;
    if lock.is_none() {
        let held: Vec<String> = startup::read_param(&conn, startup::KEY_IDS_ROW)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        if !held.contains(&new_id) {
            return Err(RotateError::ServerLacksKey { new_id });
        }
    }
    let mut report = Report { new_key_id: new_id.clone(), ..Report::default() };
    let mut first_batch = true;
    for f in startup::encrypted_fields(&conn)? {
        let n = rotate_field(&mut conn, ring, &f, batch_rows.max(1), &mut first_batch)?;
        report.fields.push((f.to_string(), n));
    }
    report.secrets = rotate_secrets(&mut conn, ring)?;
    drop(lock);
    Ok(report)
}

fn rotate_field(conn: &mut Connection, ring: &Keyring, f: &EncryptedField, batch_rows: usize, first_batch: &mut bool) -> Result<usize, RotateError> {
    let col = quote(&f.field);
    let table = quote(&f.collection);
    let select = format!(
        "SELECT \"id\", {col} FROM {table} WHERE substr({col}, 1, {plen}) = ?1 AND substr({col}, {start}, {len}) != ?2 LIMIT ?3",
        plen = PREFIX.len(),
        start = PREFIX.len() + 1,
        len = super::KEY_ID_CHARS,
    );
    let update = format!("UPDATE {table} SET {col} = ?1 WHERE \"id\" = ?2 AND {col} = ?3");
    let new_id = ring.primary_id().to_owned();
    let mut done = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows: Vec<(String, String)> = {
            let mut stmt = tx.prepare_cached(&select)?;
            let limit = i64::try_from(batch_rows).unwrap_or(i64::MAX);
            let rows = stmt.query_map(rusqlite::params![PREFIX, new_id, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            return Ok(done);
        }
        for (id, stored) in rows {
            let plain = ring.open(stored.as_bytes()).map_err(|source| RotateError::Open { field: f.to_string(), id: id.clone(), source })?;
            let sealed = ring.seal(&plain)?;
            tx.prepare_cached(&update)?.execute([&sealed, &id, &stored])?;
            done += 1;
        }
        tx.commit()?;
        if std::mem::take(first_batch) {
            test_pause();
        }
    }
}

/// Re-seals every sealed string inside `v` that is not under the new key; returns how many.
fn reseal_strings(v: &mut Value, ring: &Keyring, what: &str) -> Result<usize, RotateError> {
    match v {
        Value::String(s) if s.starts_with(PREFIX) && key_id_of(s) != Some(ring.primary_id()) => {
            let plain = ring.open(s.as_bytes()).map_err(|source| RotateError::OpenSecret { what: what.to_owned(), source })?;
            *s = ring.seal(&plain)?;
            Ok(1)
        }
        Value::Array(items) => items.iter_mut().map(|i| reseal_strings(i, ring, what)).sum(),
        Value::Object(map) => map.values_mut().map(|i| reseal_strings(i, ring, what)).sum(),
        _ => Ok(0),
    }
}

/// The settings secrets, the collections' OAuth2 client secrets and the canary: few rows, one
/// transaction.
fn rotate_secrets(conn: &mut Connection, ring: &Keyring) -> Result<usize, RotateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut n = 0;
    for row in [SETTINGS_SECRETS_ROW, CANARY_ROW] {
        let Some(text) = startup::read_param(&tx, row)? else { continue };
        let Ok(mut v) = serde_json::from_str::<Value>(&text) else { continue };
        let changed = reseal_strings(&mut v, ring, &format!("_params row {row}"))?;
        if changed > 0 {
            startup::write_param(&tx, row, &v.to_string())?;
            n += changed;
        }
    }
    let options: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT id, options FROM _collections WHERE instr(options, ?1) > 0")?;
        let rows = stmt.query_map([PREFIX], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, text) in options {
        let Ok(mut v) = serde_json::from_str::<Value>(&text) else { continue };
        let changed = reseal_strings(&mut v, ring, &format!("the options of collection {id}"))?;
        if changed > 0 {
            tx.execute("UPDATE _collections SET options = ?1 WHERE id = ?2", [&v.to_string(), &id])?;
            n += changed;
        }
    }
    tx.commit()?;
    Ok(n)
}
