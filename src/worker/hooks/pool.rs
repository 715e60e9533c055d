//! [`Pool`]: the elastic set of JS threads of one loaded hook set. `core` threads are started
//! (and their runtimes built) up front; when every thread is busy another is started, up to
//! `max`; a thread beyond `core` exits after [`IDLE_EXIT`] without work. Jobs wait in a
//! bounded queue; when it is full the caller gets [`Saturated`] (the HTTP edge answers 503).
//!
//! Threads are plain std threads with their own stack, never tokio's: JS blocks (host calls
//! wait on the database or the network). Dropping the pool closes the queue; each thread
//! finishes the job it has and exits, dropping its runtime on its own thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::engine::{Engine, Env};

/// A thread beyond the core count exits after this long without a job.
pub const IDLE_EXIT: Duration = Duration::from_secs(60);
/// Jobs waiting for a thread; past this the request is refused (503).
pub const QUEUE_CAPACITY: usize = 1024;
/// The native stack of a JS thread: QuickJS's own limit is far below it.
pub const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// A unit of work on a JS thread. It answers its caller through the returned [`Reply`],
/// which the thread calls only after marking itself idle again: a caller that sends its next
/// job as soon as it has the answer finds this thread free instead of starting another.
pub type Job = Box<dyn FnOnce(&mut Engine) -> Reply + Send>;
/// Delivers a job's result.
pub type Reply = Box<dyn FnOnce() + Send>;

/// The queue is full.
#[derive(Debug)]
pub struct Saturated;

struct Shared {
    rx: Receiver<Job>,
    env: Arc<Env>,
    live: AtomicUsize,
    idle: AtomicUsize,
    core: usize,
    max: usize,
    next_id: AtomicUsize,
}

pub struct Pool {
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

impl Pool {
    /// Starts `core` threads (at least one), each with a ready runtime. Fails if a runtime
    /// cannot be built (then nothing could ever run).
    pub fn start(env: Arc<Env>, core: usize, max: usize) -> Result<Pool, String> {
        Pool::with_queue(env, core, max, QUEUE_CAPACITY)
    }

    fn with_queue(env: Arc<Env>, core: usize, max: usize, queue: usize) -> Result<Pool, String> {
        let core = core.max(1);
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let shared = Arc::new(Shared {
            rx,
            env,
            live: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            core,
            max: max.max(core),
            next_id: AtomicUsize::new(0),
        });
        let pool = Pool { tx, shared };
        // The core threads are ready (runtime built, waiting for work) before the pool is
        // handed out; a runtime that cannot be built is a start-up error.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for _ in 0..core {
            pool.spawn_thread(Some(ready_tx.clone()))?;
        }
        drop(ready_tx);
        for _ in 0..core {
            ready_rx.recv().map_err(|_| "a JS thread exited while starting".to_owned())??;
        }
        Ok(pool)
    }

    /// Queues `job`; starts another thread when none is idle and the pool may grow.
    pub fn submit(&self, job: Job) -> Result<(), Saturated> {
        // Read before the job is sent: an idle thread that takes it at once stops counting as
        // idle before a look after the send, which then started a thread nobody needed.
        let none_idle = self.shared.idle.load(Ordering::Acquire) == 0;
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return Err(Saturated),
        }
        if none_idle && self.shared.live.load(Ordering::Acquire) < self.shared.max {
            if let Err(e) = self.spawn_thread(None) {
                tracing::warn!(error = %e, "starting another JS thread failed; the job waits for a busy one");
            }
        }
        Ok(())
    }

    /// Threads currently alive (for tests and logs).
    pub fn threads(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    fn spawn_thread(&self, ready: Option<std::sync::mpsc::Sender<Result<(), String>>>) -> Result<(), String> {
        let shared = self.shared.clone();
        shared.live.fetch_add(1, Ordering::AcqRel);
        let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("vb-js-{n}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || thread_main(shared, ready));
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => {
                self.shared.live.fetch_sub(1, Ordering::AcqRel);
                Err(e.to_string())
            }
        }
    }
}

fn thread_main(shared: Arc<Shared>, ready: Option<std::sync::mpsc::Sender<Result<(), String>>>) {
    // Built up front (the prewarm), and again only when a job needs it after a recycle, so
    // a rebuild never makes this thread look busy to the next caller.
    let mut engine = match Engine::new(shared.env.clone()) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(error = %e, "building a JS runtime failed; this JS thread exits");
            if let Some(r) = ready {
                let _ = r.send(Err(e));
            }
            shared.live.fetch_sub(1, Ordering::AcqRel);
            return;
        }
    };
    shared.idle.fetch_add(1, Ordering::AcqRel);
    if let Some(r) = ready {
        let _ = r.send(Ok(()));
    }
    loop {
        let extra = shared.live.load(Ordering::Acquire) > shared.core;
        let next = if extra { shared.rx.recv_timeout(IDLE_EXIT) } else { shared.rx.recv().map_err(|_| RecvTimeoutError::Disconnected) };
        match next {
            Ok(job) => {
                shared.idle.fetch_sub(1, Ordering::AcqRel);
                if engine.is_none() {
                    engine = build(&shared);
                }
                // Without a runtime the job is dropped: its caller sees the answer channel
                // close and answers 500.
                let reply = engine.as_mut().map(job);
                if engine.as_ref().is_some_and(|e| e.poisoned()) {
                    // Dropped here, on its own thread; the next job builds a fresh one.
                    engine = None;
                }
                shared.idle.fetch_add(1, Ordering::AcqRel);
                if let Some(reply) = reply {
                    reply();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Leave only while above the core count (another thread may have left first).
                let live = shared.live.load(Ordering::Acquire);
                if live > shared.core && shared.live.compare_exchange(live, live - 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    shared.idle.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                shared.idle.fetch_sub(1, Ordering::AcqRel);
                shared.live.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }
}

fn build(shared: &Shared) -> Option<Engine> {
    match Engine::new(shared.env.clone()) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(error = %e, "building a JS runtime failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::worker::hooks::engine::Limits;
    use crate::worker::hooks::registry::Registry;

    fn env() -> Arc<Env> {
        Arc::new(Env {
            state: None,
            handle: None,
            registry: Arc::new(Registry::empty(std::env::temp_dir())),
            dir: std::env::temp_dir(),
            limits: Limits { timeout: Duration::from_secs(5), cron_timeout: Duration::from_secs(5), memory_bytes: 16 << 20 },
            allow_exec: false,
            store: Arc::default(),
        })
    }

    /// A job that says it started, then waits until released.
    fn blocking(started: mpsc::Sender<()>, release: mpsc::Receiver<()>) -> Job {
        Box::new(move |_e: &mut Engine| {
            let _ = started.send(());
            let _ = release.recv();
            Box::new(|| {})
        })
    }

    #[test]
    fn grows_when_busy_and_refuses_past_the_queue() {
        let pool = Pool::with_queue(env(), 1, 2, 1).expect("pool");
        let (started, on_start) = mpsc::channel();
        let (release_a, a) = mpsc::channel();
        pool.submit(blocking(started.clone(), a)).expect("first");
        on_start.recv().expect("first started");
        // The only thread is busy: a second job starts a second thread.
        let (release_b, b) = mpsc::channel();
        pool.submit(blocking(started.clone(), b)).expect("second");
        on_start.recv().expect("second started");
        assert_eq!(pool.threads(), 2);
        // At the maximum, one job may wait in the queue; the next is refused.
        let (_release_c, c) = mpsc::channel();
        pool.submit(blocking(started.clone(), c)).expect("queued");
        let (_release_d, d) = mpsc::channel();
        assert!(pool.submit(blocking(started, d)).is_err(), "saturated");
        release_a.send(()).expect("release");
        release_b.send(()).expect("release");
    }
}
