//! SQLite access for every role: connection set-up ([`open`]), the thread-owning executor
//! ([`Db`]) and the embedded system migrations ([`migrate`]).
//!
//! Rules this module enforces so callers cannot get them wrong: rusqlite never runs on an async
//! runtime thread; every write is one `BEGIN IMMEDIATE` transaction on the single writer
//! thread; pragmas are applied on every connection with `busy_timeout` first; every read
//! runs under a deadline and every queue is bounded ([`Refusal`] says which limit refused).

mod executor;
pub mod migrate;
pub mod open;
pub mod rate_table;
pub mod shm;
pub mod turns;

pub use executor::{refusal_in, CheckpointMode, Db, DbError, DbOptions, Refusal, DEFAULT_READ_DEADLINE, MAX_QUEUED_READS, MAX_QUEUED_WRITES};

/// Runs `f` inside one read transaction on `conn`, so several statements see one state of the
/// database (another process may commit between them otherwise). The transaction always ends:
/// committed on success, rolled back otherwise, and rolled back if the commit itself fails —
/// a connection left inside a transaction would fail every later `BEGIN` on its thread.
pub fn read_tx<T, E: From<rusqlite::Error>>(conn: &rusqlite::Connection, f: impl FnOnce(&rusqlite::Connection) -> Result<T, E>) -> Result<T, E> {
    conn.execute_batch("BEGIN")?;
    let out = f(conn);
    let ended = if out.is_ok() { conn.execute_batch("COMMIT") } else { conn.execute_batch("ROLLBACK") };
    if ended.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let value = out?;
    ended?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_tx_always_ends_its_transaction() {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        let ok: Result<i64, rusqlite::Error> = read_tx(&conn, |c| c.query_row("SELECT 1", [], |r| r.get(0)));
        assert_eq!(ok.expect("ok"), 1);
        assert!(conn.is_autocommit());
        let failed: Result<i64, rusqlite::Error> = read_tx(&conn, |c| c.query_row("SELECT nope", [], |r| r.get(0)));
        assert!(failed.is_err());
        assert!(conn.is_autocommit(), "a failed job does not leave the connection inside a transaction");
    }
}
