//! Change sets too large for one bus frame ([`codec::MAX_FRAME_BYTES`]): the sending worker
//! cuts the set's JSON text into [`Part`]s, each its own `Publish` frame on
//! [`BUS_PART_TOPIC`], and every receiving worker's [`Assembler`] puts them back together
//! before the set joins the others in commit order. The hub forwards the parts like any other
//! `Publish` (in order, per receiver), so a receiver sees one origin's parts in sequence; a
//! part missing (a full bus queue dropped it) loses that one set, which the caller logs, and
//! so does a set not whole within [`ASSEMBLY_TIMEOUT`] (its origin died half-way).
//!
//! Pure bookkeeping: it must not touch the bus or the dispatcher itself.
//!
//! [`codec::MAX_FRAME_BYTES`]: crate::shared::bus::codec::MAX_FRAME_BYTES

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The bus `Publish` topic of one part of a split change set.
pub const BUS_PART_TOPIC: &str = "realtime.part";
/// Bytes of the set's JSON text per part. Inside the frame's JSON the text is escaped once
/// more, which at most doubles it (only `"` and `\` gain a backslash: JSON text holds no raw
/// control characters), so a part stays well below the 4 MiB frame limit.
pub const PART_TEXT_BYTES: usize = 1024 * 1024;
/// Most parts one change set may have (1 GiB of JSON): what a receiver may hold per origin.
pub const MAX_PARTS: usize = 1024;
/// How long a set may take to arrive whole once its first part came. Until then the
/// dispatcher keeps later sets waiting for it (past the usual gap timeout); after it, the set
/// is given up on (its origin died half-way) and its memory freed.
pub const ASSEMBLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One piece of a split change set; the set's `seq` travels in the `Publish` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub part: usize,
    pub parts: usize,
    pub text: String,
}

/// Cuts `text` into pieces of at most [`PART_TEXT_BYTES`], on character boundaries.
pub fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(PART_TEXT_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        out.push(head);
        rest = tail;
    }
    out
}

/// Why a split set could not be put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error("part {got} of set {seq} arrived where part {expected} was due (a part was dropped)")]
    OutOfOrder { seq: u64, expected: usize, got: usize },
    #[error("set {seq} claims {parts} parts, more than the {MAX_PARTS} allowed")]
    TooManyParts { seq: u64, parts: usize },
    #[error("set {seq} was left incomplete ({have} of {parts} parts) when the next one began")]
    Abandoned { seq: u64, have: usize, parts: usize },
    #[error("set {seq} did not arrive whole ({have} of {parts} parts) within {ASSEMBLY_TIMEOUT:?}")]
    TimedOut { seq: u64, have: usize, parts: usize },
}

/// What one part did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// The whole JSON text, once its last part arrived.
    pub done: Option<String>,
    /// A set given up on.
    pub lost: Option<PartError>,
}

struct Open {
    started: Instant,
    seq: u64,
    parts: usize,
    have: usize,
    text: String,
}

/// The sets being received, one at most per origin worker.
#[derive(Default)]
pub struct Assembler {
    open: HashMap<u32, Open>,
}

impl Assembler {
    /// Whether a set numbered within `gap` is arriving, begun less than [`ASSEMBLY_TIMEOUT`]
    /// ago. Sets older than that are dropped here and returned, to be reported lost.
    pub fn arriving(&mut self, gap: Range<u64>, now: Instant) -> (bool, Vec<PartError>) {
        let mut lost = Vec::new();
        self.open.retain(|_, o| {
            let fresh = now.saturating_duration_since(o.started) < ASSEMBLY_TIMEOUT;
            if !fresh {
                lost.push(PartError::TimedOut { seq: o.seq, have: o.have, parts: o.parts });
            }
            fresh
        });
        (self.open.values().any(|o| gap.contains(&o.seq)), lost)
    }

    pub fn push(&mut self, origin: u32, seq: u64, part: Part, now: Instant) -> Pushed {
        let mut out = Pushed::default();
        if part.part == 0 {
            if let Some(old) = self.open.remove(&origin) {
                out.lost = Some(PartError::Abandoned { seq: old.seq, have: old.have, parts: old.parts });
            }
            if part.parts == 0 || part.parts > MAX_PARTS {
                out.lost = Some(PartError::TooManyParts { seq, parts: part.parts });
                return out;
            }
            self.open.insert(origin, Open { started: now, seq, parts: part.parts, have: 0, text: String::with_capacity(part.parts.saturating_mul(PART_TEXT_BYTES)) });
        }
        let Some(open) = self.open.get_mut(&origin) else {
            out.lost = Some(PartError::OutOfOrder { seq, expected: 0, got: part.part });
            return out;
        };
        if open.seq != seq || open.have != part.part || open.parts != part.parts {
            let expected = open.have;
            self.open.remove(&origin);
            out.lost = Some(PartError::OutOfOrder { seq, expected, got: part.part });
            return out;
        }
        open.text.push_str(&part.text);
        open.have += 1;
        if open.have == open.parts {
            out.done = self.open.remove(&origin).map(|o| o.text);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of(text: &str) -> Vec<Part> {
        let pieces = split(text);
        let n = pieces.len();
        pieces.into_iter().enumerate().map(|(i, t)| Part { part: i, parts: n, text: t.to_owned() }).collect()
    }

    #[test]
    fn split_text_comes_back_whole_even_across_multibyte_characters() {
        let text = format!("{}{}", "é".repeat(PART_TEXT_BYTES), "x".repeat(10));
        let parts = parts_of(&text);
        assert!(parts.len() > 2);
        assert!(parts.iter().all(|p| p.text.len() <= PART_TEXT_BYTES));
        let mut a = Assembler::default();
        let mut whole = None;
        for p in parts {
            let pushed = a.push(3, 9, p, Instant::now());
            assert_eq!(pushed.lost, None);
            whole = pushed.done.or(whole);
        }
        assert_eq!(whole.as_deref(), Some(text.as_str()));
    }

    #[test]
    fn a_missing_part_loses_its_set_only() {
        let text = "y".repeat(PART_TEXT_BYTES * 3);
        let mut parts = parts_of(&text);
        parts.remove(1);
        let mut a = Assembler::default();
        assert_eq!(a.push(1, 5, parts[0].clone(), Instant::now()), Pushed::default());
        assert!(matches!(a.push(1, 5, parts[1].clone(), Instant::now()).lost, Some(PartError::OutOfOrder { expected: 1, got: 2, .. })));
        // The next set from the same origin goes through.
        let next = parts_of("z");
        assert_eq!(a.push(1, 6, next[0].clone(), Instant::now()).done.as_deref(), Some("z"));
        // A set begun and never finished is reported when the next begins.
        let big = parts_of(&text);
        a.push(1, 7, big[0].clone(), Instant::now());
        assert!(matches!(a.push(1, 8, next[0].clone(), Instant::now()).lost, Some(PartError::Abandoned { seq: 7, have: 1, parts: 3 })));
    }

    #[test]
    fn a_set_arriving_holds_its_gap_open_until_it_times_out() {
        let t0 = Instant::now();
        let text = "w".repeat(PART_TEXT_BYTES * 2);
        let parts = parts_of(&text);
        let mut a = Assembler::default();
        a.push(2, 7, parts[0].clone(), t0);
        assert_eq!(a.arriving(5..8, t0), (true, vec![]));
        assert_eq!(a.arriving(8..9, t0), (false, vec![]));
        let (arriving, lost) = a.arriving(5..8, t0 + ASSEMBLY_TIMEOUT);
        assert!(!arriving);
        assert_eq!(lost, vec![PartError::TimedOut { seq: 7, have: 1, parts: 2 }]);
        // Its remaining part finds nothing open: reported, not delivered.
        assert!(a.push(2, 7, parts[1].clone(), t0 + ASSEMBLY_TIMEOUT).lost.is_some());
    }
}
