//! Embedded, versioned system migrations, recorded in `_migrations` as PocketBase does.
//!
//! They run once, in the process holding the data-dir lock (supervisor or `serve`), before any
//! worker starts. A worker only checks that nothing is pending and refuses to start otherwise,
//! so two binaries of different versions can never migrate one file concurrently.

use rusqlite::Connection;

/// One migration: a unique, ordered name and the SQL that applies it.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every system migration, oldest first. Append only; never edit a released entry.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "1763769600_init_params",
    // `_params` holds settings as JSON, in PocketBase's layout.
    sql: "CREATE TABLE IF NOT EXISTS _params (
            id      TEXT PRIMARY KEY NOT NULL,
            value   JSON DEFAULT NULL,
            created TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
            updated TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
          );",
}];

const CREATE_LEDGER: &str =
    "CREATE TABLE IF NOT EXISTS _migrations (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)";

/// Applies every pending migration, each in its own `BEGIN IMMEDIATE` transaction. Returns the
/// names applied.
pub fn run(conn: &mut Connection) -> rusqlite::Result<Vec<&'static str>> {
    conn.execute_batch(CREATE_LEDGER)?;
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM _migrations WHERE file = ?1)", [m.name], |r| r.get(0))?;
        if !done {
            tx.execute_batch(m.sql)?;
            tx.execute(
                "INSERT INTO _migrations (file, applied) VALUES (?1, CAST(strftime('%s','now') AS INTEGER) * 1000000)",
                [m.name],
            )?;
            applied.push(m.name);
        }
        tx.commit()?;
    }
    Ok(applied)
}

/// The migrations not yet applied to this database.
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<&'static str>> {
    let has_ledger: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !has_ledger {
        return Ok(MIGRATIONS.iter().map(|m| m.name).collect());
    }
    let mut stmt = conn.prepare("SELECT EXISTS(SELECT 1 FROM _migrations WHERE file = ?1)")?;
    let mut out = Vec::new();
    for m in MIGRATIONS {
        if !stmt.query_row([m.name], |r| r.get::<_, bool>(0))? {
            out.push(m.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_once_and_then_nothing_is_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer)
            .expect("open");
        assert_eq!(pending(&conn).expect("pending").len(), MIGRATIONS.len());
        assert_eq!(run(&mut conn).expect("run").len(), MIGRATIONS.len());
        assert!(pending(&conn).expect("pending").is_empty());
        assert!(run(&mut conn).expect("rerun").is_empty(), "a second run applies nothing");
    }
}
