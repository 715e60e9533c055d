//! The per-worker runner: finds due jobs, claims as many as its handlers have room for, runs
//! each attempt under a renewed lease and a timeout, and records how it ended.
//!
//! Wake-ups: an enqueue wakes it at once ([`super::Jobs::wake`]; from another worker of a
//! cluster through a bus hint); otherwise it sleeps until the earliest due time or lease end
//! it knows of, and at most [`POLL_INTERVAL`] (a lost hint, new handlers). Looking is a
//! read; only a pass that found something due takes the write lock to claim.
//!
//! Drain: on stop it claims nothing more, lets running attempts finish within the drain
//! budget, then stops the rest and releases their jobs back to the queue (the attempt does
//! not count), so a draining worker never loses a job and never leaves one running twice.
//! It must not touch a job it no longer holds: every step is conditional on the lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::store::{self, Claimant, Outcome};
use super::{jitter, millis, now_ms, retry_delay_ms, Job, Registered};
use crate::shared::db::DbError;
use crate::worker::state::AppState;

/// The longest the runner sleeps without looking for due jobs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Released jobs are handed back this long before the drain deadline, so the release is
/// written before the supervisor's SIGKILL.
const RELEASE_MARGIN: Duration = Duration::from_secs(1);
/// How often a worker removes finished jobs older than [`RETENTION`] (any worker may; the
/// delete is idempotent).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Done and cancelled jobs, their attempts and the webhook delivery log are kept this long.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// After a failed look or claim (database busy, closed), wait this long before the next.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

type Running = Arc<Mutex<HashMap<String, usize>>>;

/// Decrements its job name's running count when the attempt ends, however it ends.
struct Slot {
    running: Running,
    name: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = r.get_mut(&self.name) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The lease owner string of this process: worker id, pid and a random part, so a restarted
/// worker with a reused pid is never taken for its predecessor.
fn owner_of(worker: u32, pid: u32) -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::getrandom(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("w{worker}-p{pid}-{hex}")
}

/// Runs until `stop` turns true, then drains (see the module docs).
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let who = Claimant { owner: owner_of(state.worker_id, state.pid), worker: state.worker_id, pid: state.pid };
    let running: Running = Arc::default();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let (release_tx, release_rx) = watch::channel(false);
    let lease_ms = millis(state.config.jobs_lease);
    let mut pruned = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = tokio::time::Instant::now();
            let before = now_ms() - millis(RETENTION);
            if let Err(e) = state.db.write(move |tx| -> Result<_, DbError> { Ok(store::prune(tx, before)?) }).await {
                tracing::warn!(worker_id = state.worker_id, error = %e, "pruning finished jobs failed");
            }
        }
        while tasks.try_join_next().is_some() {}
        let wait = match pass(&state, &who, &running, &mut tasks, &release_rx, lease_ms).await {
            Ok(wait) => wait,
            Err(e) => {
                if !matches!(e, DbError::Closed) {
                    tracing::warn!(worker_id = state.worker_id, error = %e, "the job runner could not look for due jobs");
                }
                ERROR_PAUSE
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = state.jobs.woken() => {}
            _ = stop.changed() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if tasks.is_empty() {
        return;
    }
    let budget = state.config.drain_timeout.saturating_sub(RELEASE_MARGIN);
    tracing::info!(worker_id = state.worker_id, running = tasks.len(), budget_s = budget.as_secs_f64(), "draining running jobs");
    let all_done = async {
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(budget, all_done).await.is_err() {
        let _ = release_tx.send(true);
        while tasks.join_next().await.is_some() {}
        tracing::warn!(worker_id = state.worker_id, "jobs still running at the drain budget were released for retry");
    }
}

/// One look: claims what is due and has room, spawns the attempts, and answers how long to
/// sleep before the next look (zero: look again at once, more may be due).
async fn pass(state: &AppState, who: &Claimant, running: &Running, tasks: &mut JoinSet<()>, release: &watch::Receiver<bool>, lease_ms: i64) -> Result<Duration, DbError> {
    let now = now_ms();
    let next = state.db.read(|c| -> Result<_, DbError> { Ok(store::next_due(c)?) }).await?;
    let poll = millis(POLL_INTERVAL);
    if next.is_none_or(|t| t > now) {
        let ms = next.map_or(poll, |t| (t - now).clamp(1, poll));
        return Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(1)));
    }
    let handlers = state.jobs.snapshot();
    let wants: Vec<(String, usize)> = {
        let r = running.lock().unwrap_or_else(|p| p.into_inner());
        handlers
            .iter()
            .filter_map(|(name, reg)| {
                let free = reg.options.concurrency.saturating_sub(r.get(name).copied().unwrap_or(0));
                (free > 0).then(|| (name.clone(), free))
            })
            .collect()
    };
    if wants.is_empty() {
        // Due jobs of names nobody here handles, or no room: look again later.
        return Ok(POLL_INTERVAL);
    }
    let (claimant, asked) = (who.clone(), wants.clone());
    let claimed = state
        .db
        .write(move |tx| -> Result<Vec<Job>, DbError> {
            let now = now_ms();
            store::settle_expired(tx, now)?;
            let mut all = Vec::new();
            for (name, free) in &asked {
                all.extend(store::claim(tx, &claimant, name, *free, lease_ms, now)?);
            }
            Ok(all)
        })
        .await?;
    let mut full = false;
    let got = claimed.len();
    for job in claimed {
        let Some(reg) = handlers.get(&job.name).cloned() else { continue };
        let slot = {
            let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
            let n = r.entry(job.name.clone()).or_insert(0);
            *n += 1;
            full |= *n >= reg.options.concurrency;
            Slot { running: running.clone(), name: job.name.clone() }
        };
        tasks.spawn(attempt(state.clone(), who.clone(), job, reg, release.clone(), lease_ms, slot));
    }
    // Every name got all it had room for: there may be more due, but no room; else look again
    // soon (a claim that filled every free slot may have left due jobs behind).
    Ok(if got == 0 || full { POLL_INTERVAL } else { Duration::from_millis(1) })
}

/// Runs one attempt: the handler under its timeout, the lease renewed beside it, stopped by a
/// lost lease or the drain's release; then records the outcome.
async fn attempt(state: AppState, who: Claimant, job: Job, reg: Registered, mut release: watch::Receiver<bool>, lease_ms: i64, _slot: Slot) {
    let started = now_ms();
    let handler = std::panic::AssertUnwindSafe((reg.run)(state.clone(), job.clone())).catch_unwind();
    let outcome = tokio::select! {
        r = tokio::time::timeout(reg.options.timeout, handler) => match r {
            Ok(Ok(Ok(()))) => Outcome::Ok,
            Ok(Ok(Err(e))) => Outcome::Failed(e),
            Ok(Err(_)) => Outcome::Failed("the handler panicked".into()),
            Err(_) => Outcome::Timeout,
        },
        () = keep_lease(&state, &who, &job, lease_ms) => Outcome::Lost,
        _ = release.wait_for(|v| *v) => Outcome::Released,
    };
    let retry_at = now_ms().saturating_add(retry_delay_ms(job.backoff_ms, job.attempt, jitter()));
    let (w, j, o) = (who.clone(), job.clone(), outcome.clone());
    let ended = state.db.write(move |tx| -> Result<_, DbError> { Ok(store::finish(tx, &w, &j, &o, started, retry_at, now_ms())?) }).await;
    match ended {
        Ok(Some(status)) => {
            if matches!(outcome, Outcome::Failed(_) | Outcome::Timeout) {
                tracing::info!(job = %job.id, name = %job.name, attempt = job.attempt, status, error = ?outcome, "job attempt failed");
            }
        }
        Ok(None) => tracing::info!(job = %job.id, name = %job.name, attempt = job.attempt, "job attempt ended after its lease was lost; result dropped"),
        // The lease will run out and another attempt will be made: at least once holds.
        Err(e) => tracing::warn!(job = %job.id, name = %job.name, error = %e, "recording a job attempt failed"),
    }
}

/// Renews the lease every third of its length; returns when it is no longer held (taken over,
/// cancelled) or could not be renewed before it would run out.
async fn keep_lease(state: &AppState, who: &Claimant, job: &Job, lease_ms: i64) {
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
    let mut held_until = now_ms().saturating_add(lease_ms);
    loop {
        tokio::time::sleep(every).await;
        let (w, j) = (who.clone(), job.clone());
        let now = now_ms();
        match state.db.write(move |tx| -> Result<bool, DbError> { Ok(store::renew(tx, &w, &j, lease_ms, now)?) }).await {
            Ok(true) => held_until = now.saturating_add(lease_ms),
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "renewing a job lease failed");
                // Stop before another worker may take the job over.
                if now_ms().saturating_add(lease_ms / 3) >= held_until {
                    return;
                }
            }
        }
    }
}
