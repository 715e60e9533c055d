//! The ticker: once per UTC minute (at :00) each worker looks for due jobs, claims their slot
//! in SQLite and runs the ones it won; and the runner that executes a job and logs the run.
//!
//! Exactly once per slot cluster-wide rests on one thing: the claim is an
//! `INSERT … ON CONFLICT DO NOTHING` on the primary key (job, slot), committed before the job
//! starts, and only the worker whose insert made a row runs the job. Every worker tries, so a
//! dead or stalled worker costs nothing as long as one is alive. A worker killed between its
//! claim and the job's end loses that run: the slot is not retried (at most once, never twice;
//! PocketBase does not retry either), and the next slot is claimed as usual. Such a slot shows
//! as a claim without a run in the log.
//!
//! A worker whose timer fires late still runs the slots it missed, up to
//! [`MAX_CATCH_UP_SLOTS`] back, so a short stall of one worker is covered by the claim table
//! rather than lost. A freshly started worker begins with the next slot, never the current one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{store, Job};
use crate::shared::db::DbError;
use crate::worker::state::AppState;

/// A worker that wakes up late goes back at most this many slots.
pub const MAX_CATCH_UP_SLOTS: i64 = 5;
/// Woken this long after a slot boundary, so a timer that fires a hair early never reads the
/// clock as still in the previous slot.
const TICK_LATENESS: Duration = Duration::from_millis(5);

tokio::task_local! {
    /// The slot a scheduled run was claimed for (None for a manual run), for jobs that record it.
    static CURRENT_SLOT: Option<i64>;
}

/// The slot the running job was claimed for: minutes since the Unix epoch (UTC), or seconds
/// in the test mode with second ticks; None for a manual run or outside a job.
pub fn current_slot() -> Option<i64> {
    CURRENT_SLOT.try_with(|s| *s).ok().flatten()
}

/// How long a slot lasts: a minute, or a second in the test mode that makes cluster tests quick.
pub fn slot_length(state: &AppState) -> Duration {
    if state.config.test_cron_second_ticks { Duration::from_secs(1) } else { Duration::from_secs(60) }
}

/// The slot `now` falls in, for slots of `length`.
pub fn slot_of(now: SystemTime, length: Duration) -> i64 {
    let ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    i64::try_from(ms / length.as_millis().max(1)).unwrap_or(i64::MAX)
}

/// How long from `now` until the next slot starts.
pub fn until_next_slot(now: SystemTime, length: Duration) -> Duration {
    let ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let len = length.as_millis().max(1);
    let rest = len - ms % len;
    Duration::from_millis(u64::try_from(rest).unwrap_or(u64::MAX))
}

/// The UTC time a slot starts, which its jobs' expressions are matched against (seconds
/// ignored). In the second-tick test mode every second of a minute matches as that minute, so
/// `* * * * *` is due every second.
pub fn slot_start(slot: i64, length: Duration) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(length.as_secs()).ok()?;
    DateTime::from_timestamp(slot.checked_mul(secs)?, 0)
}

/// Runs the ticker until `stop` turns true (the drain): a draining worker claims nothing more.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let length = slot_length(&state);
    let mut last = slot_of(SystemTime::now(), length);
    loop {
        let wait = until_next_slot(SystemTime::now(), length) + TICK_LATENESS;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let current = slot_of(SystemTime::now(), length);
        if current <= last {
            continue; // woke early, or the clock went back: wait for a new slot
        }
        let from = (last + 1).max(current - MAX_CATCH_UP_SLOTS + 1);
        if from > last + 1 {
            tracing::warn!(worker_id = state.worker_id, skipped = from - last - 1, "cron ticker fell behind; oldest slots left to other workers");
        }
        for slot in from..=current {
            tick(&state, slot, length).await;
        }
        last = current;
    }
}

/// Claims every job due at `slot` and starts the ones this worker won.
async fn tick(state: &AppState, slot: i64, length: Duration) {
    let Some(minute) = slot_start(slot, length) else { return };
    let due: Vec<Job> = state.crons.snapshot().into_iter().filter(|j| j.schedule.matches(&minute)).collect();
    if due.is_empty() {
        return;
    }
    let ids: Vec<String> = due.iter().map(|j| j.id.clone()).collect();
    let (worker, pid) = (state.worker_id, state.pid);
    let now_ms = unix_ms(SystemTime::now());
    let prune = slot % 60 == 0;
    let claimed = state
        .db
        .write(move |tx| -> Result<Vec<bool>, DbError> {
            let won = store::claim(tx, &ids, slot, worker, pid, now_ms)?;
            if prune {
                store::prune_claims(tx, slot)?;
            }
            Ok(won)
        })
        .await;
    match claimed {
        Ok(won) => {
            for (job, won) in due.into_iter().zip(won) {
                if won {
                    spawn_run(state.clone(), job, Some(slot));
                }
            }
        }
        // Another worker will have claimed it; if all failed, this slot is lost like any other.
        Err(e) => tracing::warn!(worker_id = worker, slot, error = %e, "claiming cron slots failed; not running them here"),
    }
}

/// Runs `job` in its own task and records the run; `slot` is None for a manual run. Errors and
/// panics of the job are logged and recorded, never propagated.
pub fn spawn_run(state: AppState, job: Job, slot: Option<i64>) {
    tokio::spawn(async move {
        let started_at = SystemTime::now();
        let t0 = Instant::now();
        let fut = (job.run)(state.clone());
        // Its own task, so a panicking job is contained and reported as a failed run.
        let outcome = match tokio::spawn(CURRENT_SLOT.scope(slot, fut)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err("the job panicked".to_owned()),
            Err(_) => Err("the job was cancelled".to_owned()),
        };
        let duration_ms = i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX);
        match &outcome {
            Ok(()) => tracing::debug!(worker_id = state.worker_id, job = %job.id, slot, duration_ms, "cron job done"),
            Err(e) => tracing::error!(worker_id = state.worker_id, job = %job.id, slot, duration_ms, error = %e, "cron job failed"),
        }
        let run = store::Run {
            job: job.id.clone(),
            slot,
            worker: state.worker_id,
            pid: state.pid,
            started: format_datetime(started_at),
            duration_ms,
            error: outcome.err(),
        };
        if let Err(e) = state.db.write(move |tx| -> Result<(), DbError> { Ok(store::record_run(tx, &run)?) }).await {
            tracing::warn!(worker_id = state.worker_id, job = %job.id, error = %e, "recording a cron run failed");
        }
    });
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// PocketBase's datetime text: `YYYY-MM-DD HH:MM:SS.sssZ`, UTC.
fn format_datetime(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    }

    #[test]
    fn slots_are_utc_minutes_aligned_to_second_zero() {
        // 2026-12-07 10:42:00 UTC = 1796640120
        let base = 1_796_640_120;
        assert_eq!(slot_of(at(base, 0), MINUTE), base as i64 / 60);
        assert_eq!(slot_of(at(base + 59, 999), MINUTE), base as i64 / 60, "the last millisecond is the same slot");
        assert_eq!(slot_of(at(base + 60, 0), MINUTE), base as i64 / 60 + 1, "the next minute at :00 is the next slot");
        assert_eq!(slot_start(slot_of(at(base + 17, 0), MINUTE), MINUTE).expect("minute").to_rfc3339(), "2026-12-07T10:42:00+00:00");
        let second = Duration::from_secs(1);
        assert_eq!(slot_start(slot_of(at(base + 17, 400), second), second).expect("second").to_rfc3339(), "2026-12-07T10:42:17+00:00");
    }

    #[test]
    fn the_next_tick_is_at_the_next_minute_start() {
        let base = 1_796_640_120;
        assert_eq!(until_next_slot(at(base, 0), MINUTE), MINUTE);
        assert_eq!(until_next_slot(at(base + 59, 500), MINUTE), Duration::from_millis(500));
        assert_eq!(until_next_slot(at(base + 12, 250), Duration::from_secs(1)), Duration::from_millis(750));
    }

    #[test]
    fn datetimes_are_written_as_pocketbase_does() {
        assert_eq!(format_datetime(at(1_796_640_120, 7)), "2026-12-07 10:42:00.007Z");
    }
}
