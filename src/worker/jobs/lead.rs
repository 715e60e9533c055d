//! Which worker of a cluster claims the jobs of "led" names (webhook deliveries): one at a
//! time, under a lead term it renews while it runs, taken over by another worker once the
//! term ran out (its holder died or stalled).
//!
//! Why: every runner write (claim, outcome, delivery log) takes SQLite's write lock and makes
//! the other processes re-read the pages it changed; two runners draining one backlog doubled
//! that cross-process traffic and split it into twice as many small writes. With one leader
//! the deliveries are claimed and recorded by one process, in fewer and larger writes.
//!
//! The lead is advisory, like the writers' turns (`shared::db::turns`): it decides who asks,
//! not who gets. Exactly one holder per job still rests on the job's conditional claim
//! (`store::claim`), so two workers that both believe they lead for a moment (a term that ran
//! out while its holder was paused) claim disjoint jobs, as before there was a lead. It lives
//! in one 64-bit word of a small file in the data dir that every worker maps (holder pid in
//! the high half, the term's end in deciseconds of unix time, wrapping, in the low half), so
//! taking or renewing it is a compare-and-swap, not a database write.
//!
//! It must not be used for anything that needs mutual exclusion.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shared::db::shm::SharedMap;

/// The data-dir file holding the lead word.
pub const LEAD_FILE: &str = ".jobs.lead";
/// How long a lead lasts without renewal; past it another worker takes it.
pub const LEAD_TERM: Duration = Duration::from_secs(3);
/// The holder renews once less than this is left of its term (the runner looks at least
/// every `runner::POLL_INTERVAL`, so a live holder renews long before the term ends).
const RENEW_WHEN_LEFT: Duration = Duration::from_secs(2);
/// The unit of the stored term end.
const TICK_MS: i64 = 100;

/// This worker's view of the lead word.
#[derive(Default)]
pub struct Lead {
    word: std::sync::OnceLock<SharedMap>,
}

fn ticks(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / TICK_MS as u128).unwrap_or(u32::MAX)
}

/// Whether term end `until` (ticks, wrapping) is still ahead of `now`.
fn ahead(until: u32, now: u32, by: u32) -> bool {
    (until.wrapping_sub(now) as i32) > by as i32
}

impl Lead {
    /// Maps the data dir's lead word; until this succeeds (unit tests, a failed mapping) every
    /// worker leads, which is how the runners behaved before there was a lead.
    pub fn map(&self, data_dir: &std::path::Path) {
        match SharedMap::open(&data_dir.join(LEAD_FILE), 8) {
            Ok(m) => {
                let _ = self.word.set(m);
            }
            Err(e) => tracing::error!(error = %e, "mapping the job lead file failed; every worker claims webhook deliveries"),
        }
    }

    /// Whether process `pid` leads at unix time `now_ms`: it holds a live term (renewed when
    /// little of it is left), or nobody does and it takes the lead now.
    pub fn hold(&self, pid: u32, now_ms: i64) -> bool {
        let Some(map) = self.word.get() else { return true };
        let word = map.u64_at(0);
        let now = (now_ms / TICK_MS) as u32;
        loop {
            let cur = word.load(Ordering::Acquire);
            let (holder, until) = ((cur >> 32) as u32, cur as u32);
            let live = cur != 0 && ahead(until, now, 0);
            if live && holder != pid {
                return false;
            }
            if live && ahead(until, now, ticks(RENEW_WHEN_LEFT)) {
                return true;
            }
            let next = (u64::from(pid) << 32) | u64::from(now.wrapping_add(ticks(LEAD_TERM)));
            if word.compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                if holder != pid || !live {
                    tracing::info!(pid, "this worker now claims the cluster's webhook deliveries");
                }
                return true;
            }
        }
    }

    /// The pid holding a live lead at unix time `now_ms`, if any (None as well while the word
    /// is not mapped: then every worker leads).
    pub fn holder(&self, now_ms: i64) -> Option<u32> {
        let cur = self.word.get()?.u64_at(0).load(Ordering::Acquire);
        let now = (now_ms / TICK_MS) as u32;
        (cur != 0 && ahead(cur as u32, now, 0)).then_some((cur >> 32) as u32)
    }

    /// Gives the lead up if `pid` holds it (a draining worker), so another takes it at once.
    pub fn release(&self, pid: u32) {
        let Some(map) = self.word.get() else { return };
        let word = map.u64_at(0);
        let cur = word.load(Ordering::Acquire);
        if cur != 0 && (cur >> 32) as u32 == pid {
            let _ = word.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_leads_until_its_term_runs_out_or_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (Lead::default(), Lead::default());
        a.map(dir.path());
        b.map(dir.path());
        let t0 = 1_700_000_000_000;
        assert_eq!(a.holder(t0), None, "nobody leads yet");
        assert!(a.hold(11, t0), "positive control: a free lead is taken");
        assert_eq!(b.holder(t0 + 10), Some(11), "every mapping sees the holder");
        assert!(!b.hold(22, t0 + 10), "held by another process");
        assert!(a.hold(11, t0 + 1500), "the holder renews it");
        assert!(!b.hold(22, t0 + 1500 + 2900), "renewed at +1.5 s, so still held at +4.4 s");
        assert!(b.hold(22, t0 + 1500 + 3100), "a term that ran out is taken over");
        assert!(!a.hold(11, t0 + 1500 + 3200), "the old holder lost it");
        b.release(22);
        assert!(a.hold(11, t0 + 1500 + 3300), "a released lead is free at once");
        b.release(22);
        assert!(!b.hold(22, t0 + 1500 + 3400), "releasing a lead one does not hold changes nothing");
    }

    #[test]
    fn without_a_mapped_word_every_worker_leads() {
        let l = Lead::default();
        assert!(l.hold(1, 0) && l.hold(2, 0));
        assert_eq!(l.holder(0), None);
    }
}
