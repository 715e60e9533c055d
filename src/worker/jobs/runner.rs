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
//!
//! Lead: jobs of a led name (webhook deliveries) are claimed only by the worker holding the
//! cluster's lead ([`super::lead`]), renewed on every pass; the others claim only the rest.
//!
//! Background, not foreground: the runner and its handlers run on a runtime of their own
//! whose threads have a lower OS scheduling priority ([`BACKGROUND_NICE`]), so under a
//! saturated CPU request handling goes first and jobs (webhook deliveries) catch up when the
//! load drops. Its writes are batched — one claim per pass for every name, the ends of all
//! attempts that finished meanwhile (and the handlers' own bookkeeping, e.g. the webhook
//! delivery log) in one write — and while other writes of the process are waiting or
//! arriving it takes the writer at most once per [`BUSY_WRITE_GAP`] ([`Gate`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
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
/// The nice value of the runner's threads (0 is the default, 19 the lowest priority): under
/// a saturated CPU they get a small share beside request handling instead of an equal one.
pub const BACKGROUND_NICE: i32 = 10;
/// Threads of the runner's runtime: jobs mostly wait (on the database, on receivers).
const BACKGROUND_THREADS: usize = 1;
/// While other writes of this process are arriving, the runner writes (claims, records
/// outcomes) at most once per this; with none arriving, at once.
pub const BUSY_WRITE_GAP: Duration = Duration::from_millis(250);
/// Other writes count as arriving while one is waiting or one was submitted within this
/// long. A look at the waiting count alone let the runner through ~35 times a second under
/// a saturating load (the writer empties its queue between groups), and each claim re-read
/// cold pages inside the write lock (another worker's commit empties the page cache): over a
/// third of a writer's time went to claims.
pub const QUIET_AFTER_WRITES: Duration = Duration::from_millis(10);
/// How often a deferred runner write looks again whether the writer is free.
const GATE_POLL: Duration = Duration::from_millis(2);
/// Ends of attempts (and handlers' bookkeeping) recorded in one write, at most.
const MAX_RECORD_BATCH: usize = 512;

/// Starts the runner on its own low-priority runtime (see the module docs) and answers its
/// handle, awaitable from any runtime. Where that runtime cannot be built (thread limits), it
/// runs on the caller's runtime instead.
pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BACKGROUND_THREADS)
            .thread_name("vb-jobs")
            .enable_all()
            .on_thread_start(lower_priority)
            .build();
        match built {
            Ok(rt) => Some(rt),
            Err(e) => {
                tracing::warn!(error = %e, "starting the job runner's runtime failed; jobs run beside requests");
                None
            }
        }
    });
    match rt {
        Some(rt) => rt.spawn(run(state, stop)),
        None => tokio::spawn(run(state, stop)),
    }
}

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICE`] (Linux: a nice
/// value is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = nix::unistd::gettid().as_raw();
        // SAFETY: setpriority only reads its integer arguments and changes this thread's nice value.
        let r = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, BACKGROUND_NICE) };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "lowering the job runner's priority failed");
        }
    }
}

/// What the runner shares with its handlers through [`super::Jobs`]: the batched recorder and
/// when the runner last took the writer (for the [`Gate`]).
#[derive(Default)]
pub struct Shared {
    recorder: OnceLock<mpsc::UnboundedSender<Record>>,
    /// When the runner last took the writer.
    last_write: Mutex<Option<Instant>>,
}

impl Shared {
    /// Queues `step` (a handler's bookkeeping, e.g. a delivery log row) for the runner's next
    /// batched write, which also records the end of the attempt it belongs to; `step` runs in
    /// a savepoint of that write. Answers the step back when there is no runner to take it.
    pub fn record(&self, step: Step) -> Result<(), Step> {
        let Some(tx) = self.recorder.get() else { return Err(step) };
        match tx.send(Record::Step(step)) {
            Err(mpsc::error::SendError(Record::Step(step))) => Err(step),
            _ => Ok(()),
        }
    }
}

/// A write a handler hands the recorder.
pub type Step = Box<dyn FnOnce(&rusqlite::Connection) -> rusqlite::Result<()> + Send>;

/// How recording an attempt's end went: the job's new status (None: the attempt no longer
/// held it), or why it could not be recorded.
type Ended = Result<Option<&'static str>, String>;
type Reply = oneshot::Sender<Ended>;

struct Finish {
    who: Claimant,
    job: Job,
    outcome: Outcome,
    started: i64,
    retry_at: i64,
    reply: Reply,
}

enum Record {
    Step(Step),
    Finish(Finish),
}

/// Holds the runner's writes back while the process's other writes are arriving (see
/// [`BUSY_WRITE_GAP`], [`QUIET_AFTER_WRITES`]).
struct Gate;

impl Gate {
    async fn pass(state: &AppState) {
        loop {
            let shared = &state.jobs.runner;
            let busy = state.db.writes_pending() > 0 || state.db.since_last_write().is_some_and(|d| d < QUIET_AFTER_WRITES);
            let wait = {
                let mut last = shared.last_write.lock().unwrap_or_else(|p| p.into_inner());
                let since = last.map_or(BUSY_WRITE_GAP, |t| t.elapsed());
                if !busy || since >= BUSY_WRITE_GAP {
                    *last = Some(Instant::now());
                    None
                } else {
                    Some((BUSY_WRITE_GAP - since).min(GATE_POLL))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }
}

/// A write of the runner's own: through the [`Gate`], and submitted as background work (not
/// counted as load by the gate).
async fn own_write<T, F>(state: &AppState, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, DbError> + Send + 'static,
{
    Gate::pass(state).await;
    state.db.write_background(f).await
}

/// Records what the attempts and handlers hand it, a batch per write: every record queued
/// when the last write ended goes into the next, each in a savepoint of its own.
async fn record(state: AppState, mut rx: mpsc::UnboundedReceiver<Record>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_RECORD_BATCH).await > 0 {
        let records = std::mem::take(&mut batch);
        let written = own_write(&state, move |tx| -> Result<Vec<(Reply, Ended)>, DbError> {
            let mut replies = Vec::new();
            for r in records {
                tx.execute_batch("SAVEPOINT vb_job_record")?;
                let (reply, done) = match r {
                    Record::Step(step) => (None, step(tx).map(|()| None)),
                    Record::Finish(f) => (Some(f.reply), store::finish(tx, &f.who, &f.job, &f.outcome, f.started, f.retry_at, now_ms())),
                };
                match done {
                    Ok(status) => {
                        tx.execute_batch("RELEASE vb_job_record")?;
                        if let Some(reply) = reply {
                            replies.push((reply, Ok(status)));
                        }
                    }
                    Err(e) => {
                        tx.execute_batch("ROLLBACK TO vb_job_record; RELEASE vb_job_record")?;
                        match reply {
                            Some(reply) => replies.push((reply, Err(e.to_string()))),
                            None => tracing::warn!(error = %e, "recording a job handler's bookkeeping failed"),
                        }
                    }
                }
            }
            Ok(replies)
        })
        .await;
        match written {
            Ok(replies) => {
                for (reply, r) in replies {
                    let _ = reply.send(r);
                }
            }
            // The replies were dropped with the write: their attempts hear an error.
            Err(e) => tracing::warn!(worker_id = state.worker_id, error = %e, "recording a batch of job attempts failed"),
        }
    }
}

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
    let (record_tx, record_rx) = mpsc::unbounded_channel();
    if state.jobs.runner.recorder.set(record_tx).is_ok() {
        tokio::spawn(record(state.clone(), record_rx));
    }
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
            if let Err(e) = own_write(&state, move |tx| -> Result<_, DbError> { Ok(store::prune(tx, before)?) }).await {
                tracing::warn!(worker_id = state.worker_id, error = %e, "pruning finished jobs failed");
            }
        }
        while tasks.try_join_next().is_some() {}
        let (wait, full) = match pass(&state, &who, &running, &mut tasks, &release_rx, lease_ms).await {
            Ok(Looked::Wait(wait)) => (wait, false),
            Ok(Looked::Full) => (POLL_INTERVAL, true),
            Err(e) => {
                if !matches!(e, DbError::Closed) {
                    tracing::warn!(worker_id = state.worker_id, error = %e, "the job runner could not look for due jobs");
                }
                (ERROR_PAUSE, false)
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            // With no room for any name, an enqueue changes nothing (under a write load the
            // hints came once per write, each a wasted pass); an attempt ending makes room.
            _ = state.jobs.woken(), if !full => {}
            _ = stop.changed() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Another worker takes the deliveries over at once instead of after the lead's term.
    state.jobs.lead.release(state.pid);
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

/// What a look found.
enum Looked {
    /// Sleep this long before the next look (zero: look again at once, more may be due).
    Wait(Duration),
    /// No name this worker may claim has room (or it claims none: another worker leads them):
    /// an enqueue changes nothing; an attempt ending or the poll makes the next look worth it.
    Full,
}

/// One look: claims what is due and has room, spawns the attempts, and answers when to look
/// again.
async fn pass(state: &AppState, who: &Claimant, running: &Running, tasks: &mut JoinSet<()>, release: &watch::Receiver<bool>, lease_ms: i64) -> Result<Looked, DbError> {
    let handlers = state.jobs.snapshot();
    // Led names (webhook deliveries) are claimed by the cluster's lead only (see `lead`).
    let leads = !handlers.values().any(|reg| reg.options.led) || state.jobs.lead.hold(state.pid, now_ms());
    // (name, free slots, led).
    let wants: Vec<(String, usize, bool)> = {
        let r = running.lock().unwrap_or_else(|p| p.into_inner());
        handlers
            .iter()
            .filter(|(_, reg)| leads || !reg.options.led)
            .filter_map(|(name, reg)| {
                let busy = r.get(name).copied().unwrap_or(0);
                let free = reg.options.concurrency.saturating_sub(busy);
                // A name with attempts running claims when a quarter of its room is free, not
                // after every attempt: one claim (a write) per few deliveries, not per one.
                (free > 0 && (busy == 0 || free >= reg.options.concurrency.div_ceil(4))).then(|| (name.clone(), free, reg.options.led))
            })
            .collect()
    };
    if wants.is_empty() {
        return Ok(Looked::Full);
    }
    let now = now_ms();
    // Only the names this worker would claim now: a backlog of a name it does not claim (led
    // elsewhere, or with no room) must not keep it looking.
    let names: Vec<(String, bool)> = wants.iter().map(|(n, _, led)| (n.clone(), *led)).collect();
    let next = state
        .db
        .read(move |c| -> Result<_, DbError> {
            let mut first: Option<i64> = None;
            for (name, led) in &names {
                // Only led names are ever in the outbox (see `store`).
                let outbox = if *led { store::outbox_head(c, name)? } else { None };
                for t in [store::next_due(c, name)?, outbox].into_iter().flatten() {
                    first = Some(first.map_or(t, |f| f.min(t)));
                }
            }
            Ok(first)
        })
        .await?;
    let poll = millis(POLL_INTERVAL);
    if next.is_none_or(|t| t > now) {
        let ms = next.map_or(poll, |t| (t - now).clamp(1, poll));
        return Ok(Looked::Wait(Duration::from_millis(u64::try_from(ms).unwrap_or(1))));
    }
    let (claimant, asked) = (who.clone(), wants.clone());
    let claimed = own_write(state, move |tx| -> Result<Vec<Job>, DbError> {
        let now = now_ms();
        store::settle_expired(tx, now)?;
        let mut all = Vec::new();
        for (name, free, led) in &asked {
            // As many as this claim can take come out of the outbox first; the rest stay
            // there, one append each, until a later claim has room for them.
            if *led {
                store::promote(tx, name, *free)?;
            }
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
    Ok(Looked::Wait(if got == 0 || full { POLL_INTERVAL } else { Duration::from_millis(1) }))
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
    let ended = finish(&state, &who, &job, &outcome, started, retry_at).await;
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

/// Records the end of an attempt with the recorder's next batch (or in a write of its own
/// when there is no recorder); answers the job's new status.
async fn finish(state: &AppState, who: &Claimant, job: &Job, outcome: &Outcome, started: i64, retry_at: i64) -> Ended {
    let (w, j, o) = (who.clone(), job.clone(), outcome.clone());
    if let Some(tx) = state.jobs.runner.recorder.get() {
        let (reply, answer) = oneshot::channel();
        if tx.send(Record::Finish(Finish { who: w, job: j, outcome: o, started, retry_at, reply })).is_ok() {
            return answer.await.map_err(|_| "the batch recording it was not written".to_owned())?;
        }
        return Err("the recorder stopped".to_owned());
    }
    own_write(state, move |tx| -> Result<_, DbError> { Ok(store::finish(tx, &w, &j, &o, started, retry_at, now_ms())?) }).await.map_err(|e| e.to_string())
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
        match own_write(state, move |tx| -> Result<bool, DbError> { Ok(store::renew(tx, &w, &j, lease_ms, now)?) }).await {
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
