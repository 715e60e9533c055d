//! [`Reorder`]: puts stamped change sets back into the cluster-wide commit order before they
//! are delivered. This worker's own sets arrive in order; another worker's arrive over the bus
//! and may overtake or trail them by a little. A set is released once every earlier sequence
//! number has been released; a gap (a set that never comes: its writer was killed between
//! COMMIT and the bus, or a full bus queue dropped it) is skipped after [`GAP_TIMEOUT`], so
//! one lost message costs a short stall, never a stuck stream — unless a set in the gap is
//! known to be arriving in parts ([`super::parts`]), which the dispatcher waits for (up to
//! the parts' own timeout) by [`Reorder::postpone`]. Duplicates and sets older
//! than what was released are dropped, so no event is delivered twice.
//!
//! Pure bookkeeping: no I/O, no clock of its own (the caller passes `now`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::worker::records::changes::Stamped;

/// How long a gap in the sequence may hold back later changes before it is given up on.
pub const GAP_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Reorder {
    /// The next sequence number to release; `None` until known.
    next: Option<u64>,
    held: BTreeMap<u64, Arc<Stamped>>,
    /// When the current gap was first seen.
    gap_since: Option<Instant>,
    /// Sequence numbers given up on, since start.
    pub skipped: u64,
}

impl Reorder {
    /// Starts after `last`, the last sequence number committed before this worker could hear
    /// of new ones (read from the database at start).
    pub fn starting_after(last: u64) -> Reorder {
        Reorder { next: Some(last + 1), ..Reorder::default() }
    }

    /// Takes one stamped set; returns what is now releasable, in order.
    pub fn push(&mut self, set: Arc<Stamped>, now: Instant) -> Vec<Arc<Stamped>> {
        let next = *self.next.get_or_insert(set.seq);
        if set.seq >= next {
            self.held.entry(set.seq).or_insert(set);
        }
        self.release(now)
    }

    /// When the caller should call [`Reorder::expire`], if a gap is holding sets back.
    pub fn deadline(&self) -> Option<Instant> {
        self.gap_since.map(|t| t + GAP_TIMEOUT)
    }

    /// The missing sequence numbers holding sets back now, as `next..first_held`.
    pub fn gap(&self) -> Option<std::ops::Range<u64>> {
        let first = *self.held.keys().next()?;
        let next = self.next?;
        (self.gap_since.is_some() && next < first).then_some(next..first)
    }

    /// Waits another [`GAP_TIMEOUT`] for the gap: a set in it is known to be on its way (its
    /// parts are arriving).
    pub fn postpone(&mut self, now: Instant) {
        if self.gap_since.is_some() {
            self.gap_since = Some(now);
        }
    }

    /// Gives up on the gap if it is older than [`GAP_TIMEOUT`]; returns what that releases.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<Stamped>> {
        match (self.gap_since, self.held.keys().next().copied(), self.next) {
            (Some(since), Some(first), Some(next)) if now >= since + GAP_TIMEOUT => {
                self.skipped += first.saturating_sub(next);
                self.next = Some(first);
                self.gap_since = None;
                self.release(now)
            }
            _ => Vec::new(),
        }
    }

    fn release(&mut self, now: Instant) -> Vec<Arc<Stamped>> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else { return out };
        while let Some(set) = self.held.remove(&next) {
            out.push(set);
            next += 1;
        }
        self.next = Some(next);
        if self.held.is_empty() {
            self.gap_since = None;
        } else if self.gap_since.is_none() || !out.is_empty() {
            // A new gap (or the old one closed and another opened behind it).
            self.gap_since = Some(now);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(seq: u64) -> Arc<Stamped> {
        Arc::new(Stamped { seq, changes: Vec::new() })
    }

    fn seqs(v: &[Arc<Stamped>]) -> Vec<u64> {
        v.iter().map(|s| s.seq).collect()
    }

    #[test]
    fn out_of_order_sets_come_out_in_order_and_duplicates_are_dropped() {
        let now = Instant::now();
        let mut r = Reorder::starting_after(10);
        assert_eq!(seqs(&r.push(set(12), now)), Vec::<u64>::new());
        assert!(r.deadline().is_some());
        assert_eq!(seqs(&r.push(set(11), now)), vec![11, 12]);
        assert!(r.deadline().is_none());
        assert_eq!(seqs(&r.push(set(12), now)), Vec::<u64>::new(), "a duplicate");
        assert_eq!(seqs(&r.push(set(5), now)), Vec::<u64>::new(), "older than the start");
        assert_eq!(seqs(&r.push(set(13), now)), vec![13]);
    }

    #[test]
    fn a_gap_is_skipped_after_the_timeout_only() {
        let t0 = Instant::now();
        let mut r = Reorder::starting_after(0);
        assert!(r.push(set(2), t0).is_empty());
        assert!(r.push(set(3), t0).is_empty());
        assert!(r.expire(t0 + GAP_TIMEOUT / 2).is_empty());
        assert_eq!(seqs(&r.expire(t0 + GAP_TIMEOUT)), vec![2, 3]);
        assert_eq!(r.skipped, 1);
        // The lost set turning up late is not delivered out of order.
        assert!(r.push(set(1), t0 + GAP_TIMEOUT).is_empty());
    }

    #[test]
    fn a_postponed_gap_waits_another_timeout() {
        let t0 = Instant::now();
        let mut r = Reorder::starting_after(0);
        assert!(r.push(set(3), t0).is_empty());
        assert_eq!(r.gap(), Some(1..3));
        r.postpone(t0 + GAP_TIMEOUT);
        assert!(r.expire(t0 + GAP_TIMEOUT).is_empty());
        assert_eq!(seqs(&r.push(set(1), t0 + GAP_TIMEOUT)), vec![1]);
        assert_eq!(seqs(&r.push(set(2), t0 + GAP_TIMEOUT)), vec![2, 3]);
        assert_eq!(r.skipped, 0);
        assert_eq!(r.gap(), None);
    }
}
