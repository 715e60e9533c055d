//! The start-up check of encrypted data, run once by the owner of the data dir (`serve`, or
//! the supervisor before it spawns workers) right after migrations: a server must never serve
//! ciphertext as if it were data, nor write plaintext where ciphertext belongs, so a missing or
//! wrong key stops start-up with a message naming the encrypted fields.
//!
//! A wrong key is recognised even with no record stored: a canary value sealed under the key
//! in use is kept in `_params` ([`CANARY_ROW`]). The ids of the keys the server holds are kept
//! there too ([`KEY_IDS_ROW`]), so `vaultbase encryption rotate` can tell whether a running
//! server can already read values under the new key. This module reads collection definitions
//! as plain JSON: it must not depend on the worker's schema types.

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::{key_id_of, Keyring, SealError, PREFIX};

/// `_params` row holding a value sealed under the key the data was last written with.
pub const CANARY_ROW: &str = "encryption_check";
/// `_params` row listing the key ids the running server holds (ids only, never keys).
pub const KEY_IDS_ROW: &str = "encryption_key_ids";
/// `_params` row holding the settings secrets (the settings module's, sealed when a key is set).
pub const SETTINGS_SECRETS_ROW: &str = "settings_secrets";
const CANARY_TEXT: &str = "vaultbase encryption check";
/// The auth collection options holding a token-signing `secret` (PocketBase's keys).
const TOKEN_OPTION_KEYS: [&str; 5] = ["authToken", "passwordResetToken", "emailChangeToken", "verificationToken", "fileToken"];

#[derive(Debug, thiserror::Error)]
pub enum StartupCheckError {
    #[error("VAULTBASE_ENCRYPTION_KEY is not set, but these fields are encrypted: {fields}; start with the key they were written with")]
    NoKey { fields: String },
    #[error("VAULTBASE_ENCRYPTION_KEY is not set, but the stored settings, token or OAuth2 secrets are encrypted; start with the key they were written with")]
    NoKeyForSecrets,
    #[error("VAULTBASE_ENCRYPTION_KEY (key id {configured}) is not the key this data was encrypted with (key id {stored}); encrypted fields: {fields}")]
    WrongKey { configured: String, stored: String, fields: String },
    #[error("a stored value of {field} (key id {stored}) does not decrypt with VAULTBASE_ENCRYPTION_KEY: a different key with the same id, or damaged data")]
    Undecryptable { field: String, stored: String },
    #[error("checking encrypted data: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// One encrypted field: its collection (the table) and its name (the column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedField {
    pub collection: String,
    pub field: String,
}

impl std::fmt::Display for EncryptedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.collection, self.field)
    }
}

/// A table or column name as a quoted SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every field marked `encrypted` in a stored (non-view) collection definition.
pub fn encrypted_fields(conn: &Connection) -> rusqlite::Result<Vec<EncryptedField>> {
    let mut stmt = conn.prepare("SELECT name, fields FROM _collections WHERE type != 'view' ORDER BY rowid")?;
    let rows: Vec<(String, String)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (collection, fields) in rows {
        let Ok(Value::Array(fields)) = serde_json::from_str::<Value>(&fields) else { continue };
        for f in fields {
            if f.get("encrypted").and_then(Value::as_bool) == Some(true) {
                if let Some(name) = f.get("name").and_then(Value::as_str) {
                    out.push(EncryptedField { collection: collection.clone(), field: name.to_owned() });
                }
            }
        }
    }
    Ok(out)
}

fn describe(fields: &[EncryptedField]) -> String {
    if fields.is_empty() {
        return "(none)".to_owned();
    }
    fields.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A `_params` row's value, if the row exists.
pub(super) fn read_param(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM _params WHERE id = ?1", [id], |r| r.get::<_, Option<String>>(0)).optional().map(Option::flatten)
}

pub(super) fn write_param(conn: &Connection, id: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO _params (id, value) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = strftime('%Y-%m-%d %H:%M:%fZ')",
        [id, value],
    )?;
    Ok(())
}

/// The distinct key ids under which `field`'s stored values are sealed.
pub(super) fn stored_key_ids(conn: &Connection, f: &EncryptedField) -> rusqlite::Result<Vec<String>> {
    let col = quote(&f.field);
    let sql = format!(
        "SELECT DISTINCT substr({col}, {start}, {len}) FROM {table} WHERE substr({col}, 1, {plen}) = ?1",
        start = PREFIX.len() + 1,
        len = super::KEY_ID_CHARS,
        plen = PREFIX.len(),
        table = quote(&f.collection)
    );
    let mut stmt = conn.prepare(&sql)?;
    let ids = stmt.query_map([PREFIX], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(ids)
}

/// One sealed value of `field`, if any is stored.
fn sample_value(conn: &Connection, f: &EncryptedField) -> rusqlite::Result<Option<String>> {
    let col = quote(&f.field);
    let sql = format!("SELECT {col} FROM {} WHERE substr({col}, 1, {}) = ?1 LIMIT 1", quote(&f.collection), PREFIX.len());
    conn.query_row(&sql, [PREFIX], |r| r.get(0)).optional()
}

/// Whether any settings or collection option secret is stored sealed.
fn secrets_sealed(conn: &Connection) -> rusqlite::Result<bool> {
    let settings = read_param(conn, SETTINGS_SECRETS_ROW)?.is_some_and(|v| v.contains(PREFIX));
    let options: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM _collections WHERE instr(options, ?1) > 0)", [PREFIX], |r| r.get(0))?;
    Ok(settings || options)
}

/// Checks the data dir against the configured key ring (see the module docs) and records the
/// canary and the ring's key ids. `conn` must be a writable connection.
pub fn check(conn: &Connection, ring: Option<&Keyring>) -> Result<(), StartupCheckError> {
    let fields = encrypted_fields(conn)?;
    let Some(ring) = ring else {
        if !fields.is_empty() {
            return Err(StartupCheckError::NoKey { fields: describe(&fields) });
        }
        if secrets_sealed(conn)? {
            return Err(StartupCheckError::NoKeyForSecrets);
        }
        write_param(conn, KEY_IDS_ROW, "[]")?;
        return Ok(());
    };
    let wrong = |stored: &str| StartupCheckError::WrongKey {
        configured: ring.ids().join(", "),
        stored: stored.to_owned(),
        fields: describe(&fields),
    };
    let canary = read_param(conn, CANARY_ROW)?.and_then(|v| serde_json::from_str::<String>(&v).ok());
    if let Some(canary) = &canary {
        if ring.open(canary.as_bytes()).is_err() {
            return Err(wrong(key_id_of(canary).unwrap_or("unknown")));
        }
    }
    for f in &fields {
        if let Some(unknown) = stored_key_ids(conn, f)?.into_iter().find(|id| !ring.knows(id)) {
            return Err(wrong(&unknown));
        }
        // Key ids are short: one value per field must also really open (a colliding id).
        if let Some(sample) = sample_value(conn, f)? {
            if ring.open(sample.as_bytes()).is_err() {
                return Err(StartupCheckError::Undecryptable { field: f.to_string(), stored: key_id_of(&sample).unwrap_or("unknown").to_owned() });
            }
        }
    }
    seal_plain_secrets(conn, ring)?;
    if canary.is_none() {
        let sealed = ring.seal(CANARY_TEXT.as_bytes())?;
        write_param(conn, CANARY_ROW, &Value::String(sealed).to_string())?;
    }
    write_param(conn, KEY_IDS_ROW, &Value::from(ring.ids()).to_string())?;
    Ok(())
}

/// Seals secrets stored while no key was set: the settings secrets row (as one sealed JSON
/// string, the settings module's format) and the auth collections' token secrets and OAuth2
/// client secrets (the collection store's format: each string sealed in place).
fn seal_plain_secrets(conn: &Connection, ring: &Keyring) -> Result<(), StartupCheckError> {
    if let Some(text) = read_param(conn, SETTINGS_SECRETS_ROW)? {
        if !matches!(serde_json::from_str::<Value>(&text), Ok(Value::String(_))) {
            write_param(conn, SETTINGS_SECRETS_ROW, &Value::String(ring.seal(text.as_bytes())?).to_string())?;
        }
    }
    let rows: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT id, options FROM _collections WHERE type = 'auth'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, text) in rows {
        let Ok(mut options) = serde_json::from_str::<Value>(&text) else { continue };
        let mut secrets: Vec<&mut Value> = Vec::new();
        if let Value::Object(o) = &mut options {
            for (key, v) in o.iter_mut() {
                let Value::Object(inner) = v else { continue };
                if TOKEN_OPTION_KEYS.contains(&key.as_str()) {
                    secrets.extend(inner.get_mut("secret"));
                } else if key == "oauth2" {
                    if let Some(Value::Array(providers)) = inner.get_mut("providers") {
                        secrets.extend(providers.iter_mut().filter_map(|p| p.get_mut("clientSecret")));
                    }
                }
            }
        }
        let mut changed = false;
        for secret in secrets {
            if let Value::String(s) = secret {
                if !s.is_empty() && !s.starts_with(PREFIX) {
                    *s = ring.seal(s.as_bytes())?;
                    changed = true;
                }
            }
        }
        if changed {
            conn.execute("UPDATE _collections SET options = ?1 WHERE id = ?2", [&options.to_string(), &id])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Key;
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("data.db"), crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut conn).expect("migrate");
        (dir, conn)
    }

    fn ring(c: char) -> Keyring {
        Keyring::new(Key::parse(&c.to_string().repeat(32)), None).expect("ring")
    }

    #[test]
    fn a_wrong_key_is_caught_by_the_canary_with_no_record_stored() {
        let (_dir, conn) = db();
        check(&conn, Some(&ring('a'))).expect("first start writes the canary");
        check(&conn, Some(&ring('a'))).expect("same key");
        assert!(matches!(check(&conn, Some(&ring('b'))), Err(StartupCheckError::WrongKey { .. })));
        // A fresh dir has PocketBase's collections, whose token secrets the first start with a
        // key sealed: starting without the key is now refused rather than leaving them unreadable.
        assert!(matches!(check(&conn, None), Err(StartupCheckError::NoKeyForSecrets)));
    }

    #[test]
    fn secrets_stored_before_a_key_was_set_are_sealed_at_the_first_start_with_one() {
        let (_dir, conn) = db();
        write_param(&conn, SETTINGS_SECRETS_ROW, r#"{"smtp_password":"hunter2"}"#).expect("secrets");
        let options = r#"{"oauth2":{"providers":[{"name":"github","clientSecret":"gh"}]},"authToken":{"secret":"","duration":1}}"#;
        conn.execute("UPDATE _collections SET options = ?1 WHERE name = 'users'", [options]).expect("options");
        check(&conn, None).expect("nothing sealed yet: no key needed");
        let ring = ring('a');
        check(&conn, Some(&ring)).expect("check");
        let row = read_param(&conn, SETTINGS_SECRETS_ROW).expect("read").expect("row");
        let sealed: String = serde_json::from_str(&row).expect("a JSON string");
        assert_eq!(ring.open_text(&sealed).expect("open"), r#"{"smtp_password":"hunter2"}"#);
        let stored: String = conn.query_row("SELECT options FROM _collections WHERE name = 'users'", [], |r| r.get(0)).expect("options");
        let v: Value = serde_json::from_str(&stored).expect("json");
        let secret = v["oauth2"]["providers"][0]["clientSecret"].as_str().expect("secret");
        assert_eq!(ring.open_text(secret).expect("open"), "gh");
        assert_eq!(v["authToken"]["secret"], "", "an empty secret stays empty");
        assert!(matches!(check(&conn, None), Err(StartupCheckError::NoKeyForSecrets)));
    }

    #[test]
    fn encrypted_fields_need_the_key_they_were_written_with() {
        let (_dir, conn) = db();
        let fields = r#"[{"name":"id","type":"text"},{"name":"secret","type":"text","encrypted":true}]"#;
        conn.execute("INSERT INTO _collections (id, type, name, fields, indexes, options) VALUES ('c1', 'base', 'notes', ?1, '[]', '{}')", [fields])
            .expect("collection");
        conn.execute_batch("CREATE TABLE notes (id TEXT PRIMARY KEY, secret TEXT DEFAULT '' NOT NULL)").expect("table");
        let sealed = ring('a').seal(b"x").expect("seal");
        conn.execute("INSERT INTO notes (id, secret) VALUES ('r1', ?1)", [&sealed]).expect("row");
        match check(&conn, None) {
            Err(e @ StartupCheckError::NoKey { .. }) => assert!(e.to_string().contains("notes.secret"), "{e}"),
            other => panic!("{other:?}"),
        }
        // No canary yet (written before this check existed): the stored value itself tells.
        match check(&conn, Some(&ring('b'))) {
            Err(e @ StartupCheckError::WrongKey { .. }) => assert!(e.to_string().contains("notes.secret"), "{e}"),
            other => panic!("{other:?}"),
        }
        check(&conn, Some(&ring('a'))).expect("the right key");

        // Same key id, but the value does not open: damaged (or a colliding key).
        let mut damaged = sealed.clone();
        let last = damaged.pop().expect("non-empty");
        damaged.push(if last == 'A' { 'B' } else { 'A' });
        conn.execute("UPDATE notes SET secret = ?1", [&damaged]).expect("damage");
        match check(&conn, Some(&ring('a'))) {
            Err(e @ StartupCheckError::Undecryptable { .. }) => assert!(e.to_string().contains("notes.secret"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
