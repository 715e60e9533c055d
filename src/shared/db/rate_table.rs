//! The rate-limit counters every process of a cluster shares: a fixed table of buckets in a
//! small mapped file (`.rate-limits` in the data dir), updated with atomic operations only, so
//! a limit of N requests lets exactly N through whichever worker the kernel hands each
//! connection to. A check costs a hash, a few atomic loads and one compare-and-swap: no lock,
//! no system call (the clock is read through the vDSO), no SQLite.
//!
//! It owns the counting (PocketBase's fixed window) and nothing about rules, labels or
//! clients: callers hash those into a [`BucketKey`]. The file is zeroed by whoever owns the
//! data dir before any worker starts (`bootstrap::prepare`); counters never outlive a restart.
//!
//! # Layout and safety
//! [`SLOTS`] slots of two `u64` words: the key (0 = never used; the top bit set = being
//! claimed) and the state (`expires_at` seconds in the high half, requests counted in the low
//! half), and after them one word counting settings saves (see [`RateTable::settings_epoch`]).
//! Every access, in every process, goes through `AtomicU64` references into the shared
//! mapping: the mapping is page-aligned and `FILE_BYTES` long, every word is 8-byte
//! aligned and in bounds, the mapping lives as long as the [`RateTable`], and no code ever
//! takes a plain `&`/`&mut u64` into it, so there is no data race in Rust's sense.
//!
//! # Exactness
//! A bucket's count changes only by compare-and-swap on its state word, so concurrent checks
//! of one bucket (from threads or processes) count exactly. A bucket is (re)claimed under the
//! claim bit and its first request is counted in the same step, and reclaiming an expired slot
//! is itself a compare-and-swap on the old state, so a request counted on the old bucket at that
//! moment wins and the claim backs off. The one inexact case left: two *first* requests of one
//! bucket racing while an earlier slot in the probe window expires can claim two slots (the
//! client gets one extra request, once).
//!
//! # A full table
//! When all [`PROBE_SLOTS`] slots a key may live in hold live buckets of other keys, the
//! request is let through (fail open) and [`Hit::TableFull`] tells the caller to log it:
//! failing closed would let a flood of distinct addresses lock everyone else out.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shm::{SharedMap, ShmError};

/// Buckets in the table (a power of two): 65 536 × 16 bytes = 1 MiB of shared memory.
pub const SLOTS: usize = 1 << 16;
/// Slots a key may occupy, starting at its hash (linear probing).
pub const PROBE_SLOTS: usize = 32;
const WORDS_PER_SLOT: usize = 2;
/// The slots, then one more word: the settings epoch.
const FILE_BYTES: usize = (SLOTS * WORDS_PER_SLOT + 1) * 8;
/// Set in a key word while its slot is being claimed.
const CLAIM_BIT: u64 = 1 << 63;
/// Looks at a slot being claimed before giving up on it (a claim is three stores; only a
/// process killed between them leaves the bit set).
const CLAIM_SPINS: u32 = 10_000;

/// Opening or mapping the table's file failed.
pub type RateTableError = ShmError;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Counted; within the limit.
    Allowed,
    /// The limit is used up for this window; not counted.
    Limited,
    /// No slot free for this key: let through uncounted.
    TableFull,
}

/// A bucket's identity: a hash of whatever the caller keys on (never 0, top bit clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketKey(u64);

impl BucketKey {
    /// Hashes `parts`. All processes run the same binary, so the hash agrees between them.
    pub fn of(parts: &[&[u8]]) -> BucketKey {
        #[allow(deprecated)] // SipHasher with fixed keys: stable within one binary, cheap.
        let mut h = std::hash::SipHasher::new_with_keys(0x7661_756c_7462_6173, 0x7261_7465_6c69_6d69);
        for p in parts {
            p.hash(&mut h);
        }
        let v = h.finish() & !CLAIM_BIT;
        BucketKey(if v == 0 { 1 } else { v })
    }
}

/// The shared table of one data dir, mapped into this process.
pub struct RateTable {
    map: SharedMap,
}

fn pack(expires_at: u32, count: u32) -> u64 {
    (u64::from(expires_at) << 32) | u64::from(count)
}

fn unpack(state: u64) -> (u32, u32) {
    ((state >> 32) as u32, state as u32)
}

/// Seconds on the system-wide monotonic clock (the same in every process; immune to wall
/// clock changes).
pub fn now_secs() -> u32 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => u32::try_from(t.tv_sec()).unwrap_or(u32::MAX),
        Err(_) => 0,
    }
}

impl RateTable {
    /// Maps (creating it if needed) the table at `path`. Every process of a cluster must use
    /// the same path.
    pub fn open(path: &Path) -> Result<RateTable, RateTableError> {
        // A fresh file is zero-filled: every slot unused.
        Ok(RateTable { map: SharedMap::open(path, FILE_BYTES)? })
    }

    fn word(&self, slot: usize, which: usize) -> &AtomicU64 {
        self.map.u64_at((slot % SLOTS) * WORDS_PER_SLOT + which)
    }

    /// The word right after the slots, the last of the mapping.
    fn epoch_word(&self) -> &AtomicU64 {
        self.map.u64_at(SLOTS * WORDS_PER_SLOT)
    }

    /// A counter every process bumps after saving settings, so the others can keep using
    /// their cached rate-limit settings with one atomic load per request until it moves.
    pub fn settings_epoch(&self) -> u64 {
        self.epoch_word().load(Ordering::Acquire)
    }

    /// Marks the settings changed (call after the change committed).
    pub fn bump_settings_epoch(&self) {
        self.epoch_word().fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one request on bucket `key`, allowing at most `max` per window of
    /// `window_secs` (PocketBase's fixed window: a window restarts once `window_secs` have
    /// passed since the last *allowed* request; refused requests do not count).
    pub fn hit(&self, key: BucketKey, max: u32, window_secs: u32, now: u32) -> Hit {
        if max == 0 {
            return Hit::Limited;
        }
        let window = window_secs.max(1);
        // A retry follows a slot seen mid-claim or a claim another request won: rare, short.
        for _ in 0..CLAIM_SPINS {
            match self.hit_once(key, max, window, now) {
                Some(hit) => return hit,
                None => std::hint::spin_loop(),
            }
        }
        // Only a claimer killed between its stores leaves a slot claimed for good.
        Hit::TableFull
    }

    /// One look along the key's probe window; None when it must be retried.
    fn hit_once(&self, key: BucketKey, max: u32, window: u32, now: u32) -> Option<Hit> {
        let start = key.0 as usize;
        let mut candidate = None;
        for i in 0..PROBE_SLOTS {
            let slot = start.wrapping_add(i);
            let k = self.word(slot, 0).load(Ordering::Acquire);
            if k == key.0 {
                return self.count(slot, key, max, window, now);
            }
            if k & CLAIM_BIT != 0 {
                return None;
            }
            if k == 0 {
                // Slots fill in probe order and are never emptied: the bucket is not further on.
                candidate.get_or_insert(slot);
                break;
            }
            if candidate.is_none() && unpack(self.word(slot, 1).load(Ordering::Acquire)).0 <= now {
                candidate = Some(slot);
            }
        }
        match candidate {
            Some(slot) => self.claim(slot, key, window, now).then_some(Hit::Allowed),
            None => Some(Hit::TableFull),
        }
    }

    /// Counts on `slot`, which held `key` a moment ago; None if it no longer does.
    fn count(&self, slot: usize, key: BucketKey, max: u32, window: u32, now: u32) -> Option<Hit> {
        let state = self.word(slot, 1);
        let mut seen = state.load(Ordering::Acquire);
        loop {
            if self.word(slot, 0).load(Ordering::Acquire) != key.0 {
                return None;
            }
            let (expires_at, count) = unpack(seen);
            let count = if expires_at <= now { 0 } else { count };
            if count >= max {
                return Some(Hit::Limited);
            }
            let next = pack(now.saturating_add(window), count + 1);
            match state.compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Hit::Allowed),
                Err(now_seen) => seen = now_seen,
            }
        }
    }

    /// Takes `slot` (empty, or holding an expired bucket) for `key`, counting its first
    /// request. False if another request got there first.
    fn claim(&self, slot: usize, key: BucketKey, window: u32, now: u32) -> bool {
        let key_word = self.word(slot, 0);
        let old = key_word.load(Ordering::Acquire);
        if old & CLAIM_BIT != 0 || key_word.compare_exchange(old, old | CLAIM_BIT, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        let state = self.word(slot, 1);
        let seen = state.load(Ordering::Acquire);
        // An old bucket counted again since it was looked at is alive: give it back.
        let expired = old == 0 || unpack(seen).0 <= now;
        if !expired || state.compare_exchange(seen, pack(now.saturating_add(window), 1), Ordering::AcqRel, Ordering::Acquire).is_err() {
            key_word.store(old, Ordering::Release);
            return false;
        }
        key_word.store(key.0, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn table() -> (tempfile::TempDir, RateTable) {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = RateTable::open(&dir.path().join("rl")).expect("open");
        (dir, t)
    }

    #[test]
    fn a_window_allows_max_then_refuses_until_it_expires() {
        let (_d, t) = table();
        let k = BucketKey::of(&[b"rule", b"1.2.3.4"]);
        let other = BucketKey::of(&[b"rule", b"5.6.7.8"]);
        for _ in 0..3 {
            assert_eq!(t.hit(k, 3, 10, 100), Hit::Allowed);
        }
        assert_eq!(t.hit(k, 3, 10, 105), Hit::Limited);
        assert_eq!(t.hit(other, 3, 10, 105), Hit::Allowed, "another client has its own bucket");
        assert_eq!(t.hit(k, 3, 10, 109), Hit::Limited, "refused requests do not move the window");
        assert_eq!(t.hit(k, 3, 10, 110), Hit::Allowed, "10 s after the last allowed one");
    }

    #[test]
    fn expired_buckets_are_reused_and_a_full_window_fails_open() {
        let (_d, t) = table();
        // Keys that all start at the same slot fill its probe window.
        let keys: Vec<BucketKey> = (0..PROBE_SLOTS as u64).map(|i| BucketKey(((i + 1) << 16) | 7)).collect();
        for k in &keys {
            assert_eq!(t.hit(*k, 1, 10, 100), Hit::Allowed);
        }
        let late = BucketKey((999 << 16) | 7);
        assert_eq!(t.hit(late, 1, 10, 105), Hit::TableFull, "every slot live");
        assert_eq!(t.hit(late, 1, 10, 110), Hit::Allowed, "an expired slot is taken over");
        assert_eq!(t.hit(late, 1, 10, 111), Hit::Limited, "and counts from there");
    }

    #[test]
    fn concurrent_hits_from_threads_and_mappings_count_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rl");
        let tables: Vec<Arc<RateTable>> = (0..4).map(|_| Arc::new(RateTable::open(&path).expect("open"))).collect();
        let key = BucketKey::of(&[b"exact"]);
        let max = 1000;
        // All threads start together so their compare-and-swaps overlap.
        let start = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let t = tables[i % 4].clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    (0..500).filter(|_| t.hit(key, max, 60, 100) == Hit::Allowed).count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().expect("join")).sum();
        assert_eq!(allowed, 1000, "8 × 500 hits on one bucket of 1000");
    }

    #[test]
    fn cost_per_hit() {
        // A measurement for the report, not an assertion.
        let (_d, t) = table();
        let keys: Vec<BucketKey> = (0..1000u32).map(|i| BucketKey::of(&[b"rule", &i.to_le_bytes()])).collect();
        let rounds = 200;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            for k in &keys {
                std::hint::black_box(t.hit(*k, u32::MAX, 60, 100));
            }
        }
        let per = started.elapsed().as_nanos() / (rounds * keys.len()) as u128;
        println!("rate table: {per} ns per hit (incl. nothing else)");
    }
}
