//! Opening a connection with the pragmas every connection needs.
//!
//! `busy_timeout` comes first so that even switching to WAL waits for another process's lock
//! instead of failing. Pragmas are per connection (only `journal_mode=WAL` persists in the
//! file), so this runs for every connection, never once per file.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long a connection waits for another connection's (or process's) lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection; enough for every query the API issues.
pub const STATEMENT_CACHE_CAPACITY: usize = 256;
/// Page cache per connection, in KiB (negative pragma value = KiB).
pub const CACHE_SIZE_KIB: i64 = 32_000;
/// WAL file size kept after a checkpoint, in bytes.
pub const JOURNAL_SIZE_LIMIT_BYTES: i64 = 200_000_000;

/// What the connection is for; readers are `query_only` so a misrouted write fails loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

/// Opens `path` (creating it) and applies the pragmas.
pub fn open(path: &Path, role: Role) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, not wal (is the data dir on a network filesystem?)"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous=NORMAL;
         PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-{CACHE_SIZE_KIB};
         PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES};
         PRAGMA trusted_schema=OFF;"
    ))?;
    if role == Role::Reader {
        conn.execute_batch("PRAGMA query_only=ON;")?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(conn)
}
