//! Taking over a database made by PocketBase (restored from one of its backups), so that
//! the system migrations find what they expect and the workers can open it.
//!
//! PocketBase already has `_params`, `_collections`, `_superusers` and the auth side tables in
//! the same layout; what vaultbase adds is its cache counters (`_vb_versions`), its abuse
//! counters, and an expiry column on the OTP and MFA tables (PocketBase derives expiry from
//! `created` and the collection's options), and `_params` values stored as text rather than
//! PocketBase's JSON blobs (which PocketBase reads either way). This must only add: a
//! PocketBase database stays a PocketBase database plus a few tables it ignores.

use rusqlite::{Connection, OptionalExtension};

use super::migrate::MIGRATIONS;

/// The last migration whose tables PocketBase already has (or this module makes): adoption
/// records it and the ones before as applied. Later migrations only add vaultbase's own
/// tables (cron claims, jobs, …), so the migrator runs them on the adopted database as usual.
const ADOPTED_THROUGH: &str = "1763769606_default_users";

/// Adopts `conn`'s database if PocketBase made it (its `_migrations` ledger knows none of
/// vaultbase's migrations); does nothing otherwise. Returns whether it adopted.
pub fn adopt_pocketbase(conn: &mut Connection) -> rusqlite::Result<bool> {
    let has_ledger: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations')", [], |r| r.get(0))?;
    if !has_ledger {
        return Ok(false);
    }
    let Some(first) = MIGRATIONS.first() else { return Ok(false) };
    let ours: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM _migrations WHERE file = ?1)", [first.name], |r| r.get(0))?;
    let pocketbase: Option<String> = conn
        .query_row("SELECT file FROM _migrations WHERE file LIKE '%.go' OR file LIKE '%.js' LIMIT 1", [], |r| r.get(0))
        .optional()?;
    if ours || pocketbase.is_none() {
        return Ok(false);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS _vb_versions (name TEXT PRIMARY KEY NOT NULL, version INTEGER DEFAULT 0 NOT NULL);
         INSERT OR IGNORE INTO _vb_versions (name, version) VALUES ('collections', 1), ('settings', 1), ('realtime', 0);
         CREATE TABLE IF NOT EXISTS _vb_limits (key TEXT PRIMARY KEY NOT NULL, window_end INTEGER NOT NULL, hits INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS _vb_used_tokens (hash TEXT PRIMARY KEY NOT NULL, expires INTEGER NOT NULL);",
    )?;
    // PocketBase writes `_params.value` as a BLOB of JSON; vaultbase reads it as text.
    tx.execute_batch("UPDATE _params SET value = CAST(value AS TEXT) WHERE typeof(value) = 'blob'")?;
    for table in ["_otps", "_mfas"] {
        let exists: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)", [table], |r| r.get(0))?;
        let has_expires: bool =
            tx.query_row(&format!("SELECT EXISTS(SELECT 1 FROM pragma_table_info('{table}') WHERE name = 'expires')"), [], |r| r.get(0))?;
        if exists && !has_expires {
            // Rows PocketBase left behind count as expired: a restore is a fresh start for them.
            tx.execute_batch(&format!("ALTER TABLE \"{table}\" ADD COLUMN expires INTEGER DEFAULT 0 NOT NULL"))?;
        }
    }
    // Every table those migrations would create now exists in PocketBase's form (or was made
    // above); the default `users` collection is PocketBase's own.
    for m in MIGRATIONS.iter().filter(|m| m.name <= ADOPTED_THROUGH) {
        tx.execute(
            "INSERT OR IGNORE INTO _migrations (file, applied) VALUES (?1, CAST(strftime('%s','now') AS INTEGER) * 1000000)",
            [m.name],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vaultbase_database_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut conn).expect("migrate");
        assert!(!adopt_pocketbase(&mut conn).expect("adopt"));
    }

    #[test]
    fn a_pocketbase_ledger_is_adopted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        conn.execute_batch(
            "CREATE TABLE _migrations (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL);
             INSERT INTO _migrations VALUES ('1640988000_init.go', 1);
             CREATE TABLE _params (id TEXT PRIMARY KEY, value JSON);
             INSERT INTO _params VALUES ('settings', CAST('{}' AS BLOB));
             CREATE TABLE _otps (id TEXT PRIMARY KEY, collectionRef TEXT, recordRef TEXT, password TEXT, sentTo TEXT, created TEXT, updated TEXT);",
        )
        .expect("pocketbase-like");
        assert!(adopt_pocketbase(&mut conn).expect("adopt"));
        // Only vaultbase's own later additions are left, and they apply on the adopted file.
        let pending = crate::shared::db::migrate::pending(&conn).expect("pending");
        assert!(!pending.is_empty() && pending.iter().all(|m| *m > ADOPTED_THROUGH), "{pending:?}");
        crate::shared::db::migrate::run(&mut conn).expect("the later migrations apply");
        conn.execute("INSERT INTO _vb_cron_claims (job, slot, worker, pid, claimed) VALUES ('j', 1, 1, 1, 1)", []).expect("a table of a later migration exists");
        let v: i64 = conn.query_row("SELECT version FROM _vb_versions WHERE name = 'collections'", [], |r| r.get(0)).expect("version");
        assert_eq!(v, 1);
        conn.execute("INSERT INTO _otps (id, expires) VALUES ('x', 5)", []).expect("the expiry column exists");
        let kind: String = conn.query_row("SELECT typeof(value) FROM _params", [], |r| r.get(0)).expect("kind");
        assert_eq!(kind, "text", "settings are readable as text");
        assert!(!adopt_pocketbase(&mut conn).expect("again"), "adopted databases are vaultbase's now");
    }
}
