//! Fair turns at SQLite's write lock between the writer threads of a cluster's processes.
//!
//! SQLite hands its write lock to whoever asks first once it is free, and a waiting process
//! only asks again when its busy handler wakes. The process that just committed, with more
//! writes queued, asks again within microseconds and wins; the other can lose for many rounds,
//! which is where the tail latency of cluster writes came from. Here each writer draws a
//! ticket from a counter in a small shared file and waits until the counter being served
//! reaches it, so writers take turns in arrival order.
//!
//! This is advisory and never needed for correctness: `BEGIN IMMEDIATE` still takes SQLite's
//! lock. So anything odd degrades to plain SQLite locking instead of a hang: a turn that
//! stays current longer than [`STALLED_TURN`] (its holder died, or runs a long migration) is
//! skipped by the next waiter, and a writer whose turn was skipped goes ahead at once. It must
//! not be used for anything that needs mutual exclusion.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::shm::{SharedMap, ShmError};

/// How long one turn may stay current before a waiter skips it.
pub const STALLED_TURN: Duration = Duration::from_millis(50);
/// Sleep between looks at the counter once spinning has not found the turn; a turn lasts
/// about a transaction (well under a millisecond under load).
const POLL_PAUSE: Duration = Duration::from_micros(20);
/// Looks at the counter with only a yield between them, before sleeping.
const SPINS: u32 = 50;
/// The shared file: two counters (next ticket, ticket being served).
const FILE_BYTES: usize = 8;

/// Opening or mapping the turns file failed.
pub type TurnsError = ShmError;

/// Turns this process had to wait for (another writer was current when it drew its ticket);
/// reported on the dashboard's cluster page.
static WAITS: AtomicU64 = AtomicU64::new(0);

/// [`WAITS`] so far.
pub fn waits() -> u64 {
    WAITS.load(Ordering::Relaxed)
}

/// The shared counters of one data dir, mapped into this process.
pub struct Turns {
    map: SharedMap,
}

/// A writer's place in line; give it back with [`Turns::done`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u32);

impl Turns {
    /// Maps (creating it if needed) the counters file at `path`. Every process of a cluster
    /// must use the same path.
    pub fn open(path: &Path) -> Result<Turns, TurnsError> {
        // A fresh file is zero-filled: both counters start at 0, in step.
        Ok(Turns { map: SharedMap::open(path, FILE_BYTES)? })
    }

    fn counter(&self, index: usize) -> &AtomicU32 {
        self.map.u32_at(index)
    }

    fn next(&self) -> &AtomicU32 {
        self.counter(0)
    }

    fn serving(&self) -> &AtomicU32 {
        self.counter(1)
    }

    /// Draws a ticket and waits for its turn (or until the turn was skipped). Blocks: call it
    /// on the writer thread only.
    pub fn wait(&self) -> Ticket {
        let mine = self.next().fetch_add(1, Ordering::AcqRel);
        let mut current = self.serving().load(Ordering::Acquire);
        let mut current_since = Instant::now();
        let mut looks = 0u32;
        if (mine.wrapping_sub(current) as i32) > 0 {
            WAITS.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            // Wrapping distance: positive when `current` has not reached `mine` yet.
            let ahead = mine.wrapping_sub(current) as i32;
            if ahead <= 0 {
                return Ticket(mine);
            }
            if current_since.elapsed() >= STALLED_TURN {
                // The current turn is stuck; move past it (once, whoever gets there first).
                let _ = self.serving().compare_exchange(current, current.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire);
            }
            if looks < SPINS {
                looks += 1;
                std::thread::yield_now();
            } else {
                std::thread::sleep(POLL_PAUSE);
            }
            let seen = self.serving().load(Ordering::Acquire);
            if seen != current {
                current = seen;
                current_since = Instant::now();
            }
        }
    }

    /// Ends `ticket`'s turn, unless it was already skipped (then ending it would skip someone
    /// else's).
    pub fn done(&self, ticket: Ticket) {
        let _ = self.serving().compare_exchange(ticket.0, ticket.0.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn turns_are_taken_in_ticket_order_across_mappings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("turns");
        let a = Arc::new(Turns::open(&path).expect("a"));
        let b = Turns::open(&path).expect("b");
        let first = a.wait();
        // b's ticket comes after a's: it must not get its turn until a is done.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let t = b.wait();
            tx.send(()).expect("send");
            b.done(t);
        });
        while a.next().load(Ordering::Acquire) < 2 {
            std::thread::yield_now();
        }
        assert!(rx.try_recv().is_err(), "b went ahead while a held the turn");
        a.done(first);
        rx.recv().expect("b got its turn once a was done");
        waiter.join().expect("join");
        assert_eq!(a.serving().load(Ordering::Acquire), 2);
    }

    #[test]
    fn a_stuck_turn_is_skipped_and_its_late_end_skips_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        let turns = Turns::open(&dir.path().join("turns")).expect("open");
        let stuck = turns.wait(); // never ended in time: a writer that died holding its turn
        let next = turns.wait(); // returns once the stuck turn is skipped
        assert_eq!(turns.serving().load(Ordering::Acquire), 1);
        turns.done(stuck); // a late end must not advance past `next`
        assert_eq!(turns.serving().load(Ordering::Acquire), 1);
        turns.done(next);
        assert_eq!(turns.serving().load(Ordering::Acquire), 2);
    }
}
