//! The database side of the account flows: spent single-purpose tokens, OTP and MFA rows,
//! known login origins, external-auth links, and the direct updates the flows make to an auth
//! record (verified, password, email, tokenKey).
//!
//! It owns the SQL of the `_otps`, `_mfas`, `_authOrigins`, `_externalAuths` and
//! `_vb_used_tokens` tables. Every function here runs inside a transaction the caller opened
//! through the executor; nothing here sends mail, hashes passwords or knows HTTP — the
//! handlers do those before or after, never inside the transaction.
//!
//! `_otps` and `_mfas` come in two layouts: vaultbase's, with an `expires` column (unix
//! seconds), and PocketBase's (a data dir PocketBase made), with none — an entry there expires
//! `otp.duration`/`mfa.duration` seconds of its collection after `created`, as PocketBase
//! decides it. Each function asks which layout the table has and never alters it.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use crate::worker::records::changes::{Action, Changes};
use crate::worker::records::schema::{quote_ident, Collection};
use crate::worker::records::values::datetime::{format_datetime, now_millis};

/// Most login origins remembered per record (PocketBase keeps 5).
pub const MAX_AUTH_ORIGINS: i64 = 5;

/// Lower-case hex SHA-256: how spent tokens and login fingerprints are stored.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Marks `token` spent until `expires` (unix s); false when it already was. Expired entries
/// are dropped on the way (they can no longer verify anyway).
pub fn spend_token(tx: &Transaction<'_>, token: &str, expires: i64, now: i64) -> rusqlite::Result<bool> {
    tx.prepare_cached("DELETE FROM _vb_used_tokens WHERE expires <= ?1")?.execute([now])?;
    let inserted = tx
        .prepare_cached("INSERT OR IGNORE INTO _vb_used_tokens (hash, expires) VALUES (?1, ?2)")?
        .execute(params![sha256_hex(token), expires])?;
    Ok(inserted == 1)
}

/// A column value for [`update_record`].
pub enum Set {
    Text(String),
    Bool(bool),
}

/// Updates `sets` of auth record `id`, and its `updated` autodate, but only while its tokenKey
/// is still `expected_token_key` — the key the caller verified a token or password against —
/// so a concurrent password or email change makes this a no-op. Returns whether it applied;
/// an applied change is added to `changes` (realtime update events, and realtime clients
/// holding this record refresh or lose their auth).
pub fn update_record(
    tx: &Transaction<'_>,
    c: &Collection,
    id: &str,
    expected_token_key: &str,
    sets: &[(&str, Set)],
    changes: &mut Changes,
) -> rusqlite::Result<bool> {
    let mut assignments = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    for (name, value) in sets {
        values.push(match value {
            Set::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Set::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
        });
        assignments.push(format!("{} = ?{}", quote_ident(name), values.len()));
    }
    if c.field("updated").is_some() {
        values.push(rusqlite::types::Value::Text(format_datetime(now_millis())));
        assignments.push(format!("\"updated\" = ?{}", values.len()));
    }
    values.push(rusqlite::types::Value::Text(id.to_owned()));
    values.push(rusqlite::types::Value::Text(expected_token_key.to_owned()));
    let sql = format!(
        "UPDATE {} SET {} WHERE \"id\" = ?{} AND \"tokenKey\" = ?{}",
        quote_ident(&c.name),
        assignments.join(", "),
        values.len() - 1,
        values.len()
    );
    let before = changes.before(tx, c, id)?;
    let applied = tx.execute(&sql, rusqlite::params_from_iter(values))? == 1;
    if applied {
        crate::worker::records::changes::record_after(tx, c, id, Action::Update, before, changes)?;
    }
    Ok(applied)
}

/// Whether auth record `id` is verified, if it still has tokenKey `token_key` (None: gone, or
/// its key changed since the caller checked a token against it).
pub fn verified_under_key(conn: &Connection, c: &Collection, id: &str, token_key: &str) -> rusqlite::Result<Option<bool>> {
    let sql = format!("SELECT \"verified\" FROM {} WHERE \"id\" = ?1 AND \"tokenKey\" = ?2", quote_ident(&c.name));
    conn.prepare_cached(&sql)?.query_row([id, token_key], |r| r.get(0)).optional()
}

/// The id of the record of `c` with `email` (case-insensitive), if any.
pub fn id_by_email(conn: &Connection, c: &Collection, email: &str) -> rusqlite::Result<Option<String>> {
    let sql = format!("SELECT \"id\" FROM {} WHERE \"email\" = ?1 COLLATE NOCASE LIMIT 1", quote_ident(&c.name));
    conn.prepare_cached(&sql)?.query_row([email], |r| r.get(0)).optional()
}

/// Whether another record of `c` than `except_id` uses `email`.
pub fn email_taken(conn: &Connection, c: &Collection, email: &str, except_id: &str) -> rusqlite::Result<bool> {
    let sql = format!(
        "SELECT EXISTS(SELECT 1 FROM {} WHERE \"email\" = ?1 COLLATE NOCASE AND \"id\" != ?2)",
        quote_ident(&c.name)
    );
    conn.prepare_cached(&sql)?.query_row([email, except_id], |r| r.get(0))
}

/// A stored OTP.
pub struct OtpRow {
    pub record_id: String,
    pub hash: String,
    pub sent_to: String,
    pub expires: i64,
}

/// True when `table` (`_otps` or `_mfas`) has PocketBase's layout (no `expires` column).
fn pocketbase_layout(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT NOT EXISTS(SELECT 1 FROM pragma_table_info(?1) WHERE name = 'expires')")?.query_row([table], |r| r.get(0))
}

/// The unix seconds at which an entry made at `created` (PocketBase's datetime text) expires
/// after `duration_secs`, in SQL over PocketBase's layout.
const PB_EXPIRES_SQL: &str = "CAST(strftime('%s', created) AS INTEGER)";

/// PocketBase's `created` text for `now` (unix seconds) minus `secs`.
fn datetime_before(now: i64, secs: i64) -> String {
    format_datetime(now.saturating_sub(secs).saturating_mul(1000))
}

/// Stores OTP `id` (`row.hash` is its password hash) and drops OTPs that expired before `now`.
pub fn insert_otp(tx: &Transaction<'_>, id: &str, c: &Collection, row: &OtpRow, now: i64) -> rusqlite::Result<()> {
    if pocketbase_layout(tx, "_otps")? {
        let cutoff = datetime_before(now, row.expires.saturating_sub(now));
        tx.prepare_cached("DELETE FROM _otps WHERE collectionRef = ?1 AND created <= ?2")?.execute([&c.id, &cutoff])?;
        let created = format_datetime(now_millis());
        tx.prepare_cached(
            "INSERT INTO _otps (id, collectionRef, recordRef, password, sentTo, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?
        .execute(params![id, c.id, row.record_id, row.hash, row.sent_to, created])?;
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM _otps WHERE expires <= ?1")?.execute([now])?;
    tx.prepare_cached("INSERT INTO _otps (id, collectionRef, recordRef, password, sentTo, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![id, c.id, row.record_id, row.hash, row.sent_to, row.expires])?;
    Ok(())
}

/// Deletes the rows of `table` expired by `now`, in PocketBase's layout: each collection's
/// `options.<kind>.duration` after `created` (`default_secs` when unset).
fn delete_expired_pocketbase(tx: &Transaction<'_>, table: &str, kind: &str, default_secs: u64, now: i64) -> rusqlite::Result<usize> {
    let sql = format!(
        "DELETE FROM {table} WHERE {PB_EXPIRES_SQL} + COALESCE((SELECT json_extract(c.options, '$.{kind}.duration') FROM _collections c WHERE c.id = {table}.collectionRef), {default_secs}) <= ?1"
    );
    tx.prepare_cached(&sql)?.execute([now])
}

/// Drops every OTP that expired by `now` (unix seconds); the hourly `__pbOTPCleanup__` job.
pub fn delete_expired_otps(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<usize> {
    if pocketbase_layout(tx, "_otps")? {
        return delete_expired_pocketbase(tx, "_otps", "otp", crate::worker::records::schema::collection::Otp::default().duration, now);
    }
    tx.prepare_cached("DELETE FROM _otps WHERE expires <= ?1")?.execute([now])
}

/// Drops every MFA session that expired by `now` (unix seconds); the hourly `__pbMFACleanup__` job.
pub fn delete_expired_mfas(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<usize> {
    if pocketbase_layout(tx, "_mfas")? {
        return delete_expired_pocketbase(tx, "_mfas", "mfa", crate::worker::records::schema::collection::Mfa::default().duration, now);
    }
    tx.prepare_cached("DELETE FROM _mfas WHERE expires <= ?1")?.execute([now])
}

/// The OTP `id` of `c`; in PocketBase's layout `expires` is computed from the collection's
/// current `otp.duration`, as PocketBase does.
pub fn load_otp(conn: &Connection, c: &Collection, id: &str) -> rusqlite::Result<Option<OtpRow>> {
    if pocketbase_layout(conn, "_otps")? {
        let duration = i64::try_from(c.auth.as_ref().map(|a| a.otp.duration).unwrap_or(0)).unwrap_or(i64::MAX);
        let sql = format!("SELECT recordRef, password, sentTo, {PB_EXPIRES_SQL} FROM _otps WHERE id = ?1 AND collectionRef = ?2");
        return conn
            .prepare_cached(&sql)?
            .query_row([id, &c.id], |r| {
                let created: i64 = r.get(3)?;
                Ok(OtpRow { record_id: r.get(0)?, hash: r.get(1)?, sent_to: r.get(2)?, expires: created.saturating_add(duration) })
            })
            .optional();
    }
    conn.prepare_cached("SELECT recordRef, password, sentTo, expires FROM _otps WHERE id = ?1 AND collectionRef = ?2")?
        .query_row([id, &c.id], |r| Ok(OtpRow { record_id: r.get(0)?, hash: r.get(1)?, sent_to: r.get(2)?, expires: r.get(3)? }))
        .optional()
}

/// Deletes OTP `id`; false when it was already gone (used by a concurrent request).
pub fn delete_otp(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<bool> {
    Ok(tx.prepare_cached("DELETE FROM _otps WHERE id = ?1")?.execute([id])? == 1)
}

/// An MFA session after a first factor.
pub struct MfaRow {
    pub record_id: String,
    pub method: String,
    pub expires: i64,
}

pub fn insert_mfa(tx: &Transaction<'_>, id: &str, c: &Collection, record_id: &str, method: &str, expires: i64, now: i64) -> rusqlite::Result<()> {
    if pocketbase_layout(tx, "_mfas")? {
        let cutoff = datetime_before(now, expires.saturating_sub(now));
        tx.prepare_cached("DELETE FROM _mfas WHERE collectionRef = ?1 AND created <= ?2")?.execute([&c.id, &cutoff])?;
        let created = format_datetime(now_millis());
        tx.prepare_cached("INSERT INTO _mfas (id, collectionRef, recordRef, method, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)")?
            .execute(params![id, c.id, record_id, method, created])?;
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM _mfas WHERE expires <= ?1")?.execute([now])?;
    tx.prepare_cached("INSERT INTO _mfas (id, collectionRef, recordRef, method, expires) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![id, c.id, record_id, method, expires])?;
    Ok(())
}

pub fn load_mfa(conn: &Connection, c: &Collection, id: &str) -> rusqlite::Result<Option<MfaRow>> {
    if pocketbase_layout(conn, "_mfas")? {
        let duration = i64::try_from(c.auth.as_ref().map(|a| a.mfa.duration).unwrap_or(0)).unwrap_or(i64::MAX);
        let sql = format!("SELECT recordRef, method, {PB_EXPIRES_SQL} FROM _mfas WHERE id = ?1 AND collectionRef = ?2");
        return conn
            .prepare_cached(&sql)?
            .query_row([id, &c.id], |r| {
                let created: i64 = r.get(2)?;
                Ok(MfaRow { record_id: r.get(0)?, method: r.get(1)?, expires: created.saturating_add(duration) })
            })
            .optional();
    }
    conn.prepare_cached("SELECT recordRef, method, expires FROM _mfas WHERE id = ?1 AND collectionRef = ?2")?
        .query_row([id, &c.id], |r| Ok(MfaRow { record_id: r.get(0)?, method: r.get(1)?, expires: r.get(2)? }))
        .optional()
}

pub fn delete_mfa(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<bool> {
    Ok(tx.prepare_cached("DELETE FROM _mfas WHERE id = ?1")?.execute([id])? == 1)
}

/// Records a login from `fingerprint`; true when it is new for a record that had logged in
/// before (the first login ever is not "new", as in PocketBase). Keeps the newest few.
pub fn note_origin(tx: &Transaction<'_>, id: &str, c: &Collection, record_id: &str, fingerprint: &str) -> rusqlite::Result<bool> {
    let now = format_datetime(now_millis());
    let touched = tx
        .prepare_cached("UPDATE _authOrigins SET updated = ?1 WHERE collectionRef = ?2 AND recordRef = ?3 AND fingerprint = ?4")?
        .execute(params![now, c.id, record_id, fingerprint])?;
    if touched > 0 {
        return Ok(false);
    }
    let known: i64 = tx
        .prepare_cached("SELECT count(*) FROM _authOrigins WHERE collectionRef = ?1 AND recordRef = ?2")?
        .query_row([&c.id, record_id], |r| r.get(0))?;
    tx.prepare_cached("INSERT INTO _authOrigins (id, collectionRef, recordRef, fingerprint, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)")?
        .execute(params![id, c.id, record_id, fingerprint, now])?;
    tx.prepare_cached(
        "DELETE FROM _authOrigins WHERE collectionRef = ?1 AND recordRef = ?2 AND id NOT IN
           (SELECT id FROM _authOrigins WHERE collectionRef = ?1 AND recordRef = ?2 ORDER BY updated DESC, rowid DESC LIMIT ?3)",
    )?
    .execute(params![c.id, record_id, MAX_AUTH_ORIGINS])?;
    Ok(known > 0)
}

/// The account-flow tables whose rows belong to one auth record (`collectionRef`,
/// `recordRef`): none of them may outlive it, or a later record with the same id (ids can be
/// chosen on create, and collection ids are derived from the name) would inherit its provider
/// links, pending OTPs and MFA sessions.
const PER_RECORD_TABLES: [&str; 4] = ["_externalAuths", "_otps", "_mfas", "_authOrigins"];

/// Deletes every account-flow row of auth record `record_id` of collection `collection_id`;
/// run in the transaction that deletes the record.
pub fn forget_record(tx: &Transaction<'_>, collection_id: &str, record_id: &str) -> rusqlite::Result<()> {
    for table in PER_RECORD_TABLES {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE collectionRef = ?1 AND recordRef = ?2"))?.execute([collection_id, record_id])?;
    }
    Ok(())
}

/// Deletes every account-flow row of collection `collection_id` (deleted or truncated); run
/// in the same transaction.
pub fn forget_collection(tx: &Transaction<'_>, collection_id: &str) -> rusqlite::Result<()> {
    for table in PER_RECORD_TABLES {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE collectionRef = ?1"))?.execute([collection_id])?;
    }
    Ok(())
}

/// Removes a provider link whose record no longer exists (left by a version that did not
/// delete links with their records); true when it did.
pub fn drop_dangling_link(tx: &Transaction<'_>, c: &Collection, provider: &str, provider_id: &str) -> rusqlite::Result<bool> {
    let sql = format!(
        "DELETE FROM _externalAuths WHERE collectionRef = ?1 AND provider = ?2 AND providerId = ?3
           AND NOT EXISTS (SELECT 1 FROM {} WHERE \"id\" = _externalAuths.recordRef)",
        quote_ident(&c.name)
    );
    Ok(tx.execute(&sql, [&c.id, provider, provider_id])? > 0)
}

/// The record linked to `provider`/`provider_id` in `c`, if any.
pub fn linked_record(conn: &Connection, c: &Collection, provider: &str, provider_id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT recordRef FROM _externalAuths WHERE collectionRef = ?1 AND provider = ?2 AND providerId = ?3")?
        .query_row([&c.id, provider, provider_id], |r| r.get(0))
        .optional()
}

/// Links `record_id` to `provider`/`provider_id` (replacing an older link of that record to
/// the same provider).
pub fn link(tx: &Transaction<'_>, id: &str, c: &Collection, record_id: &str, provider: &str, provider_id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM _externalAuths WHERE collectionRef = ?1 AND recordRef = ?2 AND provider = ?3")?
        .execute([&c.id, record_id, provider])?;
    // Times set here, not by column defaults: PocketBase's table defaults them to ''.
    let now = format_datetime(now_millis());
    tx.prepare_cached(
        "INSERT INTO _externalAuths (id, collectionRef, recordRef, provider, providerId, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![id, c.id, record_id, provider, provider_id, now])?;
    Ok(())
}

/// Takes over record `record_id` for the provider identity that proved its email, when the
/// record is still unverified: whoever registered that address before (and never proved it)
/// loses the account — it becomes verified, gets `password_hash` (of a random password nobody
/// knows) and `token_key` (logging out every session), and loses its other provider links.
/// A verified record is left as it is. Returns whether the record was taken over.
pub fn claim_unverified(tx: &Transaction<'_>, c: &Collection, record_id: &str, password_hash: &str, token_key: &str) -> rusqlite::Result<bool> {
    let mut sql = format!("UPDATE {} SET \"verified\" = 1, \"password\" = ?1, \"tokenKey\" = ?2", quote_ident(&c.name));
    let mut values = vec![password_hash.to_owned(), token_key.to_owned(), record_id.to_owned()];
    if c.field("updated").is_some() {
        sql.push_str(", \"updated\" = ?4");
        values.push(format_datetime(now_millis()));
    }
    sql.push_str(" WHERE \"id\" = ?3 AND NOT \"verified\"");
    let changed = tx.execute(&sql, rusqlite::params_from_iter(values))?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM _externalAuths WHERE collectionRef = ?1 AND recordRef = ?2")?.execute([&c.id, record_id])?;
    Ok(true)
}

/// Marks record `record_id` verified when its email is `email` (a new OAuth2 account whose
/// address is the one the provider verified). Returns whether it did.
pub fn verify_if_email(tx: &Transaction<'_>, c: &Collection, record_id: &str, email: &str) -> rusqlite::Result<bool> {
    let sql = format!("UPDATE {} SET \"verified\" = 1 WHERE \"id\" = ?1 AND \"email\" = ?2 COLLATE NOCASE AND \"email\" != ''", quote_ident(&c.name));
    Ok(tx.execute(&sql, [record_id, email])? == 1)
}

/// `(id, provider, providerId, created, updated)` of the links of one record.
pub fn links_of(conn: &Connection, c: &Collection, record_id: &str) -> rusqlite::Result<Vec<[String; 5]>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, provider, providerId, created, updated FROM _externalAuths WHERE collectionRef = ?1 AND recordRef = ?2 ORDER BY created",
    )?;
    let rows = stmt.query_map([&c.id, record_id], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))?;
    rows.collect()
}
