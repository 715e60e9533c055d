//! The restart policy for one worker slot: respawn after [`RESPAWN_BACKOFF`], and when a slot
//! dies [`CRASH_LOOP_DEATHS`] times within [`CRASH_LOOP_WINDOW`], back off exponentially up to
//! [`MAX_RESPAWN_BACKOFF`] and say so. Pure: time is passed in, so tests need no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Delay before a dead worker is started again.
pub const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);
/// Deaths within [`CRASH_LOOP_WINDOW`] that make a crash loop.
pub const CRASH_LOOP_DEATHS: usize = 5;
/// The window in which deaths are counted.
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(30);
/// The longest delay between respawns of a crash-looping slot.
pub const MAX_RESPAWN_BACKOFF: Duration = Duration::from_secs(30);

/// When to respawn, and whether the slot is crash-looping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respawn {
    pub after: Duration,
    pub crash_loop: bool,
}

/// Recent deaths of one slot.
#[derive(Debug, Default)]
pub struct RestartPolicy {
    deaths: VecDeque<Instant>,
}

impl RestartPolicy {
    /// Records a death at `now` and returns when to respawn.
    pub fn on_death(&mut self, now: Instant) -> Respawn {
        self.deaths.push_back(now);
        while let Some(&first) = self.deaths.front() {
            if now.duration_since(first) > CRASH_LOOP_WINDOW {
                self.deaths.pop_front();
            } else {
                break;
            }
        }
        let recent = self.deaths.len();
        if recent < CRASH_LOOP_DEATHS {
            return Respawn { after: RESPAWN_BACKOFF, crash_loop: false };
        }
        // 5 deaths → 2 s, 6 → 4 s, 7 → 8 s, … capped.
        let exponent = (recent - CRASH_LOOP_DEATHS + 1).min(16) as u32;
        let after = RESPAWN_BACKOFF.saturating_mul(1 << exponent).min(MAX_RESPAWN_BACKOFF);
        Respawn { after, crash_loop: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_death_respawns_after_one_second() {
        let mut p = RestartPolicy::default();
        assert_eq!(p.on_death(Instant::now()), Respawn { after: RESPAWN_BACKOFF, crash_loop: false });
    }

    #[test]
    fn a_crash_loop_backs_off_exponentially_with_a_cap() {
        let mut p = RestartPolicy::default();
        let t0 = Instant::now();
        let delays: Vec<Respawn> = (0..10).map(|i| p.on_death(t0 + Duration::from_millis(100 * i))).collect();
        assert!(delays[..4].iter().all(|r| !r.crash_loop && r.after == RESPAWN_BACKOFF));
        let secs: Vec<u64> = delays[4..].iter().map(|r| r.after.as_secs()).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 30, 30]);
        assert!(delays[4..].iter().all(|r| r.crash_loop));
    }

    #[test]
    fn deaths_outside_the_window_are_forgotten() {
        let mut p = RestartPolicy::default();
        let t0 = Instant::now();
        for i in 0..4 {
            p.on_death(t0 + Duration::from_secs(i));
        }
        // The fifth death comes long after the first four: no crash loop.
        let r = p.on_death(t0 + CRASH_LOOP_WINDOW + Duration::from_secs(10));
        assert_eq!(r, Respawn { after: RESPAWN_BACKOFF, crash_loop: false });
    }
}
