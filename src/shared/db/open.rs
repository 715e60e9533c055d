//! Opening a connection with the pragmas every connection needs.
//!
//! The busy handler comes first so that even switching to WAL waits for another process's lock
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

/// First pause when another connection holds the lock; each retry waits a little longer, up
/// to [`BUSY_PAUSE_MAX`]. SQLite's own busy handler sleeps up to 100 ms per try, which is what
/// the tail latency of cross-process writes (cluster mode) was made of; a write transaction
/// here lasts well under a millisecond, so short pauses find the lock free sooner.
pub const BUSY_PAUSE_STEP: Duration = Duration::from_micros(100);
/// The longest single pause.
pub const BUSY_PAUSE_MAX: Duration = Duration::from_millis(2);

/// The pause before retry number `attempt` (0-based), or `None` once the pauses so far add up
/// to [`BUSY_TIMEOUT`]: one step more per attempt, then flat at the maximum.
fn busy_pause(attempt: u32) -> Option<Duration> {
    let ramp = BUSY_PAUSE_MAX.as_micros() / BUSY_PAUSE_STEP.as_micros();
    let ramp_total = BUSY_PAUSE_STEP.as_micros() * ramp * (ramp + 1) / 2;
    let flat_attempts = BUSY_TIMEOUT.as_micros().saturating_sub(ramp_total) / BUSY_PAUSE_MAX.as_micros();
    if u128::from(attempt) > ramp + flat_attempts {
        return None;
    }
    Some(BUSY_PAUSE_STEP.saturating_mul(attempt.saturating_add(1)).min(BUSY_PAUSE_MAX))
}

/// SQLite's busy handler: pause and retry, or give up (`false`) after the timeout.
pub(super) fn busy_retry(attempt: i32) -> bool {
    #[cfg(test)]
    tests::note_busy();
    match busy_pause(u32::try_from(attempt).unwrap_or(0)) {
        Some(pause) => {
            std::thread::sleep(pause);
            true
        }
        None => false,
    }
}

/// What the connection is for; readers are `query_only` so a misrouted write fails loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

/// Opens `path` (creating it) and applies the pragmas. `wal_autocheckpoint=0`: no commit
/// checkpoints inline; the executor's checkpointer thread does it beside the writer.
pub fn open(path: &Path, role: Role) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(busy_retry))?;
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
         PRAGMA trusted_schema=OFF;
         PRAGMA wal_autocheckpoint=0;"
    ))?;
    if role == Role::Reader {
        conn.execute_batch("PRAGMA query_only=ON;")?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    // Calls of the busy handler, so a test can tell that a writer really was held up.
    static BUSY_ANYWHERE: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static BUSY_ON_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn note_busy() {
        BUSY_ANYWHERE.fetch_add(1, Ordering::SeqCst);
        BUSY_ON_THIS_THREAD.with(|c| c.set(c.get() + 1));
    }

    #[test]
    fn busy_pauses_start_short_and_add_up_to_the_timeout() {
        assert_eq!(busy_pause(0), Some(BUSY_PAUSE_STEP));
        assert_eq!(busy_pause(1_000), Some(BUSY_PAUSE_MAX));
        let pauses: Vec<Duration> = (0..).map_while(busy_pause).collect();
        let spent: Duration = pauses.iter().sum();
        assert!(spent >= BUSY_TIMEOUT && spent <= BUSY_TIMEOUT + BUSY_PAUSE_MAX * 2, "{spent:?}");
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "never shorter than the previous pause");
    }

    #[test]
    fn a_locked_database_is_waited_for_then_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.db");
        let mut a = open(&path, Role::Writer).expect("a");
        let b = open(&path, Role::Writer).expect("b");
        a.execute_batch("CREATE TABLE t (v)").expect("table");
        let tx = a.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("lock");
        let before = BUSY_ANYWHERE.load(Ordering::SeqCst);
        let writer = std::thread::spawn(move || {
            let result = b.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT;");
            (result, BUSY_ON_THIS_THREAD.with(Cell::get))
        });
        // Hold the lock until a busy handler has run (bounded, so a writer that never waits
        // fails here instead of hanging).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while BUSY_ANYWHERE.load(Ordering::SeqCst) == before {
            assert!(std::time::Instant::now() < deadline, "no writer ever waited for the lock");
            std::thread::sleep(Duration::from_millis(1));
        }
        tx.commit().expect("release");
        let (result, waits) = writer.join().expect("join");
        result.expect("the waiting writer got the lock once it was free");
        assert!(waits > 0, "the second writer was never held up by the first");
        assert_eq!(a.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).expect("count"), 1);
    }
}
