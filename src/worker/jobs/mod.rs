//! Background jobs: a durable queue in SQLite (`_vb_jobs`, `_vb_job_attempts`), the registry of
//! handlers by name, and the per-worker runner ([`runner`]) that claims and runs due jobs.
//!
//! Enqueueing is a plain INSERT on the connection of the caller's transaction ([`enqueue`]), so
//! a job enqueued by a write (a webhook delivery, later `$jobs.enqueue` in a hook) exists only
//! if that write commits: the queue is also the transactional outbox. Jobs are claimed with one
//! conditional UPDATE and held under a lease the runner renews (see [`store::claim`]); a
//! worker killed mid-job loses its lease and another worker retries the job, so a job runs at
//! least once and never on two workers at the same moment (a runner that cannot renew its
//! lease stops its handler before the lease runs out).
//!
//! This module owns the queue's shape and the handler registry. It must not run a handler on
//! the writer thread or hold the writer across a handler: handlers are async and run on the
//! runtime, and every SQLite step is one short write.
//!
//! The JS bindings plug in here: `jobsAdd(name, fn, {concurrency, timeout})` becomes a
//! [`Jobs::add_handler`] whose [`Handler`] enters the JS pool with the payload and the attempt
//! number (a thrown error maps to `Err(message)`, i.e. a retry), and `$jobs.enqueue(name,
//! payload, {delay, runAt, maxAttempts, backoff, key})` becomes a call of [`enqueue`] on the
//! transaction the hook runs in (or on a `db.write` of its own outside one) followed by
//! [`Jobs::wake`] once it committed.

pub mod lead;
pub mod runner;
pub mod store;
pub mod testing;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::worker::state::AppState;

/// Attempts a job gets when the enqueue does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The most attempts one job may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// The first retry's delay when the enqueue does not say; each further retry doubles it.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// A retry is never put off longer than this, however many attempts failed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// A handler's time limit when its registration does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How many jobs of one name run at once on one worker when the registration does not say.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Stored error texts are cut to this many bytes.
pub const MAX_ERROR_BYTES: usize = 2000;

/// One claimed job, as its handler receives it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub payload: Value,
    /// 1 for the first attempt.
    pub attempt: u32,
    #[serde(rename = "maxAttempts")]
    pub max_attempts: u32,
    /// The first retry's delay (ms).
    #[serde(skip)]
    pub backoff_ms: i64,
}

/// What runs a job: `Ok` completes it, `Err(why)` makes it retry (or die after its last
/// attempt).
pub type Handler = Arc<dyn Fn(AppState, Job) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Wraps an async function as a [`Handler`].
pub fn handler_fn<F, Fut>(f: F) -> Handler
where
    F: Fn(AppState, Job) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |state, job| Box::pin(f(state, job)))
}

/// How a handler runs.
#[derive(Debug, Clone, Copy)]
pub struct HandlerOptions {
    /// Jobs of this name running at once on this worker.
    pub concurrency: usize,
    /// An attempt still running after this long fails (and is retried).
    pub timeout: Duration,
    /// Only the worker holding the cluster's lead ([`lead`]) claims jobs of this name.
    pub led: bool,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions { concurrency: DEFAULT_CONCURRENCY, timeout: DEFAULT_TIMEOUT, led: false }
    }
}

/// `$jobs.enqueue`'s options; times in milliseconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnqueueOptions {
    /// Due this long after now.
    pub delay: Option<i64>,
    /// Due at this unix time (ms); wins over `delay`.
    pub run_at: Option<i64>,
    pub max_attempts: Option<u32>,
    /// The first retry's delay (ms); doubled for each further one.
    pub backoff: Option<i64>,
    /// An enqueue with a key already queued (in any status) adds nothing and answers that job.
    pub key: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnqueueError {
    #[error("a job name must not be empty")]
    EmptyName,
    #[error("maxAttempts must be from 1 to {MAX_ATTEMPTS_LIMIT}")]
    MaxAttempts,
    #[error("delay, runAt and backoff must not be negative")]
    Negative,
}

/// Due time, attempts and backoff an enqueue resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub run_at_ms: i64,
    pub max_attempts: u32,
    pub backoff_ms: i64,
}

impl EnqueueOptions {
    pub fn plan(&self, now_ms: i64) -> Result<Plan, EnqueueError> {
        if [self.delay, self.run_at, self.backoff].iter().flatten().any(|v| *v < 0) {
            return Err(EnqueueError::Negative);
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(EnqueueError::MaxAttempts);
        }
        let run_at_ms = self.run_at.unwrap_or_else(|| now_ms.saturating_add(self.delay.unwrap_or(0)));
        let backoff_ms = self.backoff.unwrap_or(millis(DEFAULT_BACKOFF));
        Ok(Plan { run_at_ms, max_attempts, backoff_ms })
    }
}

/// Enqueues a job on `conn`, which should be the caller's open transaction: the job then
/// exists only if that transaction commits. Answers the job's id (the existing job's when the
/// key was taken). The caller calls [`Jobs::wake`] after the COMMIT for a prompt start.
pub fn enqueue(conn: &rusqlite::Connection, name: &str, payload: &Value, opts: &EnqueueOptions, now_ms: i64) -> Result<String, EnqueueFailure> {
    if name.trim().is_empty() {
        return Err(EnqueueError::EmptyName.into());
    }
    let plan = opts.plan(now_ms)?;
    Ok(store::insert(conn, name, payload, &plan, opts.key.as_deref(), now_ms)?)
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueFailure {
    #[error(transparent)]
    Invalid(#[from] EnqueueError),
    #[error(transparent)]
    Db(#[from] crate::shared::db::DbError),
}

impl From<rusqlite::Error> for EnqueueFailure {
    fn from(e: rusqlite::Error) -> Self {
        EnqueueFailure::Db(e.into())
    }
}

/// Enqueues a job in a write of its own and wakes this worker's runner once it committed.
pub async fn enqueue_now(state: &AppState, name: &str, payload: Value, opts: EnqueueOptions) -> Result<String, EnqueueFailure> {
    let name = name.to_owned();
    let now = now_ms();
    let id = state.db.write(move |tx| enqueue(tx, &name, &payload, &opts, now)).await?;
    state.jobs.wake();
    Ok(id)
}

/// A job `$jobs.enqueue` planned inside a record hook, before the write it belongs to: it is
/// inserted by that write's transaction (see [`stage`]), so it exists only if the write
/// commits. Its id is chosen when it is planned, so the hook can be answered at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Staged {
    pub id: String,
    pub name: String,
    pub payload: Value,
    pub run_at_ms: i64,
    pub max_attempts: u32,
    pub backoff_ms: i64,
    pub key: Option<String>,
}

thread_local! {
    /// The jobs the next write started from this thread inserts (JS threads only).
    static STAGED: std::cell::RefCell<Vec<Staged>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks an enqueue and plans it as a [`Staged`] job with a fresh id.
pub fn prepare(name: &str, payload: Value, opts: &EnqueueOptions, now_ms: i64) -> Result<Staged, EnqueueError> {
    if name.trim().is_empty() {
        return Err(EnqueueError::EmptyName);
    }
    let plan = opts.plan(now_ms)?;
    let id = new_job_id(now_ms);
    Ok(Staged { id, name: name.to_owned(), payload, run_at_ms: plan.run_at_ms, max_attempts: plan.max_attempts, backoff_ms: plan.backoff_ms, key: opts.key.clone() })
}

/// Hands `jobs` to the next record write this thread starts (replacing what was staged; an
/// empty list clears it). The write pipeline takes them with [`take_staged`] when it opens
/// its transaction; a write that never got that far leaves them here for the caller to clear.
pub fn stage(jobs: Vec<Staged>) {
    STAGED.with(|s| *s.borrow_mut() = jobs);
}

/// The jobs staged on this thread, removed (empty, and free, on every thread but a JS one
/// inside a record hook's write).
pub fn take_staged() -> Vec<Staged> {
    STAGED.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Inserts staged jobs on `conn`, the transaction of the write they were staged for.
pub fn insert_staged(conn: &rusqlite::Connection, jobs: &[Staged], now_ms: i64) -> rusqlite::Result<()> {
    for j in jobs {
        let plan = Plan { run_at_ms: j.run_at_ms, max_attempts: j.max_attempts, backoff_ms: j.backoff_ms };
        store::insert_as(conn, Some(&j.id), &j.name, &j.payload, &plan, j.key.as_deref(), now_ms)?;
    }
    Ok(())
}

/// One registered handler.
#[derive(Clone)]
pub struct Registered {
    pub run: Handler,
    pub options: HandlerOptions,
}

/// The bus topic that tells the other workers of a cluster that jobs were enqueued.
pub const BUS_WAKE_TOPIC: &str = "jobs.wake";
/// The payload of a bus wake-up for led jobs (see [`Jobs::wake_led`]).
pub const BUS_WAKE_LED: &str = "led";
/// At most one wake-up per this many ms goes on the bus: a burst of enqueues wakes the other
/// workers once, and each claims everything due when it looks.
pub const BUS_WAKE_MIN_INTERVAL_MS: i64 = 5;

/// This worker's job handlers by name, and the runner's wake-up signal.
pub struct Jobs {
    handlers: RwLock<HashMap<String, Registered>>,
    /// The active webhooks the write pipeline's outbox matches changes against.
    pub webhooks: webhooks::ActiveCache,
    /// What the runner shares with handlers (its batched recorder).
    pub runner: runner::Shared,
    /// The webhook deliveries' HTTP clients and webhook definitions, kept between deliveries.
    pub delivery: webhooks::Delivery,
    /// Which worker of the cluster claims the led names (webhook deliveries).
    pub lead: lead::Lead,
    wake: tokio::sync::Notify,
    worker_id: u32,
    bus: Option<crate::shared::bus::Bus>,
    last_broadcast_ms: std::sync::atomic::AtomicI64,
}

impl Jobs {
    /// A registry whose wake-ups reach the other workers through `bus` (None: this worker
    /// only, as in unit tests).
    pub fn new(worker_id: u32, bus: Option<crate::shared::bus::Bus>) -> Jobs {
        Jobs { handlers: RwLock::default(), webhooks: webhooks::ActiveCache::default(), runner: runner::Shared::default(), delivery: webhooks::Delivery::default(), lead: lead::Lead::default(), wake: tokio::sync::Notify::new(), worker_id, bus, last_broadcast_ms: std::sync::atomic::AtomicI64::new(0) }
    }

    /// Registers (or replaces) the handler of jobs named `name`. Only workers with a handler
    /// claim jobs of that name; jobs nobody handles wait, visible in the API.
    pub fn add_handler(&self, name: &str, run: Handler, options: HandlerOptions) {
        let options = HandlerOptions { concurrency: options.concurrency.max(1), ..options };
        self.handlers.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), Registered { run, options });
        self.wake_local();
    }

    pub fn remove_handler(&self, name: &str) -> bool {
        self.handlers.write().unwrap_or_else(|p| p.into_inner()).remove(name).is_some()
    }

    pub fn snapshot(&self) -> HashMap<String, Registered> {
        self.handlers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tells the runners that something may be due now (after an enqueue committed): this
    /// worker's at once, the others' through the bus (a hint: a lost one costs a poll
    /// interval). Never waits, so the writer thread may call it.
    pub fn wake(&self) {
        self.wake_local();
        self.broadcast(Value::Null);
    }

    /// [`Jobs::wake`] after enqueues of led jobs only (webhook deliveries): only the lead's
    /// runner claims those, so the others are left asleep — a write on a worker that does not
    /// lead wakes nobody locally and tells the lead through the bus.
    pub fn wake_led(&self) {
        match self.lead.holder(now_ms()) {
            Some(holder) if holder == std::process::id() => self.wake_local(),
            Some(_) => self.broadcast(Value::from(BUS_WAKE_LED)),
            None => self.wake(),
        }
    }

    /// A wake-up heard on the bus: one for led jobs only wakes this worker if it may lead.
    pub fn heard(&self, payload: &Value) {
        if payload.as_str() == Some(BUS_WAKE_LED) && self.lead.holder(now_ms()).is_some_and(|h| h != std::process::id()) {
            return;
        }
        self.wake_local();
    }

    /// Sends a wake-up on the bus, at most one per [`BUS_WAKE_MIN_INTERVAL_MS`].
    fn broadcast(&self, payload: Value) {
        let Some(bus) = &self.bus else { return };
        let now = now_ms();
        let last = self.last_broadcast_ms.load(std::sync::atomic::Ordering::Relaxed);
        if now - last >= BUS_WAKE_MIN_INTERVAL_MS
            && self.last_broadcast_ms.compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed).is_ok()
        {
            bus.send(&crate::shared::bus::BusMsg::Publish { origin: self.worker_id, seq: 0, topic: BUS_WAKE_TOPIC.to_owned(), payload });
        }
    }

    /// Wakes this worker's runner only.
    pub fn wake_local(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }
}

/// Registers the handlers every worker has: webhook deliveries, and the test handler when the
/// test routes are on; maps the webhooks' change counter and the job lead of the data dir.
pub fn register_builtin(jobs: &Jobs, config: &crate::shared::config::Config) {
    webhooks::register(jobs);
    jobs.webhooks.map(&config.data_dir);
    jobs.lead.map(&config.data_dir);
    if config.test_routes {
        testing::register(jobs);
    }
}

/// A fresh job id: `j`, the enqueue time (unix ms, 11 hex digits) and 64 random bits. Ids of
/// jobs enqueued later sort later, so the primary-key index (and the attempts' index by job)
/// grows at its end instead of dirtying a random page per enqueue: the outbox insert of a
/// busy write path then touches the same few pages group after group.
pub fn new_job_id(now_ms: i64) -> String {
    use std::fmt::Write as _;
    let b: [u8; 8] = random_bytes();
    let mut id = String::with_capacity(28);
    let _ = write!(id, "j{:011x}{:016x}", now_ms.max(0), u64::from_le_bytes(b));
    id
}

/// OS random bytes fetched at once per thread for [`random_bytes`].
const RANDOM_POOL_BYTES: usize = 512;

thread_local! {
    static RANDOM_POOL: std::cell::RefCell<([u8; RANDOM_POOL_BYTES], usize)> = const { std::cell::RefCell::new(([0; RANDOM_POOL_BYTES], RANDOM_POOL_BYTES)) };
}

/// `N` bytes of the OS's randomness for ids that must differ, not stay secret (job ids,
/// webhook event ids), served from a per-thread pool: a `getrandom` call per id was two
/// system calls per outbox row, on the writer thread. Should the OS refuse, the pool's old
/// bytes are stirred and reused; the time in a job id keeps ids apart.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    RANDOM_POOL.with(|p| {
        let (pool, at) = &mut *p.borrow_mut();
        for b in out.iter_mut() {
            if *at >= RANDOM_POOL_BYTES {
                if getrandom::getrandom(pool).is_err() {
                    let seed = u8::try_from(now_ms() & 0xff).unwrap_or(0);
                    pool.iter_mut().enumerate().for_each(|(i, x)| *x = x.rotate_left(3) ^ seed ^ u8::try_from(i % 251).unwrap_or(0));
                }
                *at = 0;
            }
            *b = pool.get(*at).copied().unwrap_or(0);
            *at += 1;
        }
    });
    out
}

pub fn now_ms() -> i64 {
    crate::worker::records::values::datetime::now_millis()
}

pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The delay before retry number `failed + 1`: `backoff · 2^(failed-1)`, capped at
/// [`MAX_BACKOFF`], plus up to a quarter more of jitter (`jitter` in 0..1) so retries of many
/// jobs that failed together spread out. Never shorter than the un-jittered delay, so the gaps
/// between attempts grow.
pub fn retry_delay_ms(backoff_ms: i64, failed: u32, jitter: f64) -> i64 {
    let exp = failed.saturating_sub(1).min(40);
    let base = backoff_ms.max(0).saturating_mul(1_i64 << exp).min(millis(MAX_BACKOFF));
    let extra = (base as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64;
    base.saturating_add(extra)
}

/// A uniform number in 0..1 from the OS's randomness (0.5 if that fails).
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_jitter_only_adds() {
        assert_eq!(retry_delay_ms(1000, 1, 0.0), 1000);
        assert_eq!(retry_delay_ms(1000, 2, 0.0), 2000);
        assert_eq!(retry_delay_ms(1000, 3, 1.0), 5000);
        assert!(retry_delay_ms(1000, 2, 0.0) > retry_delay_ms(1000, 1, 1.0), "gaps grow whatever the jitter");
        assert_eq!(retry_delay_ms(1000, 200, 0.0), millis(MAX_BACKOFF));
    }

    #[test]
    fn job_ids_sort_by_enqueue_time_and_differ() {
        let (a, b) = (new_job_id(1_700_000_000_000), new_job_id(1_700_000_000_001));
        assert!(a < b, "{a} < {b}");
        assert_ne!(new_job_id(5), new_job_id(5), "the random part tells ids of one millisecond apart");
        assert_eq!(a.len(), 28);
    }

    #[test]
    fn pooled_random_bytes_differ_across_a_refill() {
        // More draws than one pool holds, so a refill happens in between.
        let draws: Vec<[u8; 12]> = (0..RANDOM_POOL_BYTES / 12 + 8).map(|_| random_bytes()).collect();
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert_eq!(distinct.len(), draws.len(), "no repeated draw");
        assert!(draws.iter().any(|d| d.iter().any(|&b| b != 0)), "not all zero");
    }

    #[test]
    fn enqueue_options_are_checked() {
        let o = EnqueueOptions { delay: Some(500), ..Default::default() };
        assert_eq!(o.plan(1000).expect("plan").run_at_ms, 1500);
        let o = EnqueueOptions { delay: Some(500), run_at: Some(7), ..Default::default() };
        assert_eq!(o.plan(1000).expect("plan").run_at_ms, 7);
        assert_eq!(EnqueueOptions { max_attempts: Some(0), ..Default::default() }.plan(0), Err(EnqueueError::MaxAttempts));
        assert_eq!(EnqueueOptions { delay: Some(-1), ..Default::default() }.plan(0), Err(EnqueueError::Negative));
    }
}
