//! [`Db`]: one writer thread and a few reader threads, each owning its connection, behind an
//! async API.
//!
//! Handlers hand a closure to [`Db::read`] or [`Db::write`] and await a oneshot reply, so a
//! query never blocks a runtime thread (a blocked worker still gets its share of new
//! connections from SO_REUSEPORT). Writes are serialised in-process by the single writer and
//! across processes by SQLite's lock; each is one `BEGIN IMMEDIATE` transaction, because a
//! deferred transaction that upgrades to a write fails at once under another process's lock,
//! ignoring the busy timeout. Threads, not `spawn_blocking`: these loops live as long as the
//! process and blocking tasks cannot be aborted.
//!
//! Group commit: the writer takes every write already queued (up to [`MAX_GROUP_JOBS`]) into
//! one transaction, each job inside its own savepoint, and answers the callers only after the
//! one COMMIT. A job that fails rolls back to its savepoint and fails alone; a COMMIT that
//! fails fails every job that had succeeded. Under load this pays the lock, the WAL append and
//! the commit once per group instead of once per write; with one writer waiting nothing is
//! delayed, because the writer never waits for a group to fill.
//!
//! Checkpoints: connections never checkpoint on commit (`wal_autocheckpoint=0`); a
//! checkpointer thread with its own connection copies the WAL back into the database
//! (PASSIVE, at most every [`CHECKPOINT_INTERVAL`]) after the writer nudges it. A checkpoint
//! run inside a commit stalled the writer — and every write queued behind it — for
//! milliseconds; beside it, it waits for no one and no one waits for it. With
//! [`DbOptions::app_checkpoints`] off (Litestream on) it does none: Litestream checkpoints.
//! PASSIVE alone never moves the WAL's write position back to its start: SQLite restarts the
//! log only when a write begins while no reader holds a snapshot in it, which under steady
//! reads and writes (a cluster under load, a delivery backlog) almost never happens — the WAL
//! then grows without bound and every page lookup walks more of its index. Past
//! [`WAL_RESTART_FRAMES`] the checkpointer therefore asks for a RESTART, which waits for the
//! readers of the moment (holding writers off) for at most [`WAL_RESTART_WAIT`].
//!
//! Limits, so one bad request or a full disk cannot take the process with it:
//! - Every read job runs under a deadline ([`DbOptions::read_deadline`]) enforced by SQLite's
//!   progress handler: past it the running statement fails with `SQLITE_INTERRUPT`, the job
//!   gets [`Refusal::Timeout`] in its error chain and the reader thread serves the next job.
//!   Writes have no deadline on purpose: an interrupted write statement makes SQLite roll back
//!   the whole transaction, and with it every other write of the group. A write that must be
//!   cut off (the SQL console's) goes through [`Db::write_alone`]: its own transaction, never
//!   grouped, so its interrupt loses nothing else.
//! - Both queues are bounded ([`MAX_QUEUED_READS`], [`MAX_QUEUED_WRITES`]); a full queue
//!   refuses the job at once with [`Refusal::Busy`] instead of growing memory without limit.
//! - A job whose caller stopped waiting (its reply receiver was dropped: the client left) is
//!   skipped, not run; a read already running for it is interrupted like one past its deadline.
//! - A group lost to a full disk (`SQLITE_FULL`) marks writes as failing ([`Db::write_failure`])
//!   until a later group commits; the writer keeps serving and retries with every new write.
//!
//! Pause and reopen (a restore swaps the file underneath): [`Db::pause`] stops taking jobs,
//! finishes those already queued and closes every connection; [`Db::resume`] opens the file
//! at the same path again. Every clone of the handle follows, because they share one slot. A
//! job submitted while paused waits for the reopen (at most [`PAUSED_WAIT`]) and is then
//! refused with [`Refusal::Restoring`], never run against a closed or replaced file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::open::{self, Role};
use super::turns::Turns;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;
/// A write job runs inside the group's transaction and hands back whether it succeeded and
/// how to answer its caller once the group's fate is known.
/// It is given `Err(why)` instead of a transaction when the group could not run at all.
type WriteJob = Box<dyn for<'a, 'b> FnOnce(Result<&'a Transaction<'b>, &'a Lost>) -> Done + Send>;

/// The most writes one transaction carries: enough to amortise a commit under load, few
/// enough that one group's COMMIT never keeps many callers waiting.
pub const MAX_GROUP_JOBS: usize = 64;
/// Read jobs waiting for a reader thread, at most; beyond it a read is refused (503). Far
/// more than the readers can start in the time a client waits for an answer.
pub const MAX_QUEUED_READS: usize = 4096;
/// Write jobs waiting for the writer, at most; beyond it a write is refused (503).
pub const MAX_QUEUED_WRITES: usize = 4096;
/// The default deadline of one read job: generous to any legitimate query.
pub const DEFAULT_READ_DEADLINE: Duration = Duration::from_secs(30);
/// SQLite virtual-machine steps between two deadline checks: a check costs a clock read, so
/// often enough to stop within a millisecond or so, rarely enough to cost nothing measurable.
pub const PROGRESS_CHECK_OPS: i32 = 1000;

/// Told `None` when the group committed, or why the job's work was lost.
type Answer = Box<dyn FnOnce(Option<&Lost>) + Send>;

/// Why the work of a write group was lost: the text for the log and, when it is one a client
/// can be told about, the [`Refusal`].
#[derive(Debug, Clone)]
struct Lost {
    text: String,
    refusal: Option<Refusal>,
}

impl Lost {
    fn new(text: String, cause: Option<&rusqlite::Error>) -> Lost {
        Lost { refusal: cause.and_then(refusal_of_sqlite), text }
    }
}

struct Done {
    ok: bool,
    answer: Answer,
}

enum Msg {
    /// A job, and the flag its caller raises when it stops waiting.
    Run(Job, Arc<AtomicBool>),
    Stop,
}

enum WriteMsg {
    Run(WriteJob),
    /// A job that runs in a transaction of its own, never grouped with others: it may be
    /// interrupted, and an interrupted write takes its whole transaction with it.
    RunAlone(WriteJob),
    Stop,
}

/// A database failure the HTTP edge answers with its own status instead of a generic 500.
/// It is found anywhere in an error's `source()` chain (see [`refusal_in`]), so it survives
/// any wrapping between the executor and the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `SQLITE_FULL`: the filesystem (or the database's size limit) has no room.
    #[error("the database's disk is full")]
    DiskFull,
    /// The query ran past its deadline and was interrupted.
    #[error("the query ran past its deadline")]
    Timeout,
    /// The job queue is full: the process is overloaded.
    #[error("the database queue is full")]
    Busy,
    /// The database stayed paused for a restore longer than a job may wait.
    #[error("the database is being restored")]
    Restoring,
}

/// The [`Refusal`] an SQLite error stands for, if any. `SQLITE_INTERRUPT` only ever comes
/// from the deadline's progress handler: nothing here calls `sqlite3_interrupt`.
fn refusal_of_sqlite(e: &rusqlite::Error) -> Option<Refusal> {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Some(Refusal::DiskFull),
        Some(ErrorCode::OperationInterrupted) => Some(Refusal::Timeout),
        _ => None,
    }
}

/// The first [`Refusal`] in `e`'s chain: a [`Refusal`] itself, or an SQLite error that stands
/// for one.
pub fn refusal_in(e: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(*r);
        }
        if let Some(r) = e.downcast_ref::<rusqlite::Error>().and_then(refusal_of_sqlite) {
            return Some(r);
        }
        if let Some(DbError::Refused(r) | DbError::Commit(_, Some(r))) = e.downcast_ref::<DbError>() {
            return Some(*r);
        }
        next = e.source();
    }
    None
}

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("opening {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("starting database thread: {0}")]
    Thread(std::io::Error),
    #[error("the database is closed")]
    Closed,
    #[error(transparent)]
    Turns(#[from] super::turns::TurnsError),
    /// The group transaction this write ran in did not commit; its work was rolled back.
    #[error("committing the write: {0}")]
    Commit(String, #[source] Option<Refusal>),
    /// The job was refused or cut short (queue full, deadline passed).
    #[error("{0}")]
    Refused(#[source] Refusal),
}

/// Tunables of a [`Db`].
#[derive(Debug, Clone, Copy)]
pub struct DbOptions {
    /// How long one read job may run before its statement is interrupted.
    pub read_deadline: Duration,
    /// Whether the checkpointer thread checkpoints after writes. Off while Litestream
    /// replicates the file: it must see every WAL frame before the WAL is reused, and does the
    /// checkpoints itself (its documented advice for applications beside it).
    pub app_checkpoints: bool,
    /// WAL length in frames past which a checkpoint restarts the log ([`WAL_RESTART_FRAMES`];
    /// `i64::MAX` never restarts, for tests that need the unbounded growth).
    pub wal_restart_frames: i64,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions { read_deadline: DEFAULT_READ_DEADLINE, app_checkpoints: true, wal_restart_frames: WAL_RESTART_FRAMES }
    }
}

/// The shortest time between two checkpoints while writes keep coming. Each copies only the
/// frames written since the last, so the WAL stays short without a checkpoint per commit.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// WAL length, in frames (pages), past which a checkpoint also restarts the log (about
/// 32 MiB with 4 KiB pages).
pub const WAL_RESTART_FRAMES: i64 = 8192;
/// The longest a restarting checkpoint waits for readers; writers wait behind it meanwhile,
/// so it stays well below a write's latency budget. Busy past it: the next round tries again.
pub const WAL_RESTART_WAIT: Duration = Duration::from_millis(20);
/// The pause between two looks for readers while a restart waits.
const WAL_RESTART_PAUSE: Duration = Duration::from_millis(1);

/// How [`Db::optimize`] checkpoints before optimizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Wait for readers and empty the WAL file (PocketBase's daily job).
    Truncate,
    /// Copy what can be copied without waiting or resetting the WAL (when something else,
    /// like Litestream, must see every WAL frame before it is overwritten).
    Passive,
}

enum Checkpoint {
    Nudge,
    Stop,
}

/// How long a job submitted while the database is paused waits for it to reopen before it
/// is refused with [`Refusal::Restoring`]: a restore swaps files in well under a second.
pub const PAUSED_WAIT: Duration = Duration::from_secs(10);

/// A cheap-to-clone handle to the executor threads.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Slot>,
}

/// What every clone of one [`Db`] shares: the running threads (or why there are none) and
/// how to open them again.
struct Slot {
    state: std::sync::RwLock<State>,
    /// `true` while threads run; waiters of a paused database watch it.
    open: tokio::sync::watch::Sender<bool>,
    path: PathBuf,
    readers: usize,
    turns: Option<PathBuf>,
    options: DbOptions,
    writes: Arc<WriteHealth>,
    /// Held by work on a connection of its own (`optimize`), which a pause waits for.
    side: Mutex<()>,
    /// Foreground writes submitted and not yet answered (see [`Db::writes_pending`]).
    pending_writes: AtomicUsize,
    /// When the last foreground write was submitted, in µs after `opened` (0: none yet).
    last_write_us: AtomicU64,
    opened: Instant,
}

/// Counts one write as pending while it lives (dropped when the write is answered or its
/// caller stops waiting).
struct PendingWrite<'a>(&'a AtomicUsize);

impl<'a> PendingWrite<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        PendingWrite(n)
    }
}

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

enum State {
    Open(Arc<Inner>),
    Paused,
    Closed,
}

struct Inner {
    writer: Sender<WriteMsg>,
    readers: Sender<Msg>,
    checkpointer: Sender<Checkpoint>,
    reader_count: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Whether writes are failing, as the writer last saw it: set when a group is lost to a full
/// disk, cleared by the next group that commits.
#[derive(Default)]
struct WriteHealth {
    failing: Mutex<Option<String>>,
}

impl WriteHealth {
    fn set(&self, why: Option<String>) {
        let mut slot = match self.failing.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = why;
    }

    fn get(&self) -> Option<String> {
        match self.failing.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Db {
    /// Opens one writer and `readers` reader connections on `path`, each on its own thread.
    /// Connections are opened here, synchronously, so a bad path fails the caller at once.
    pub fn open(path: &Path, readers: usize) -> Result<Db, DbError> {
        Db::open_with(path, readers, None, DbOptions::default())
    }

    /// [`Db::open`] for a process that shares the file with other writing processes (cluster
    /// workers): its writer takes turns at the write lock with theirs through the counters
    /// file `turns` (see [`super::turns`]).
    pub fn open_shared(path: &Path, readers: usize, turns: &Path) -> Result<Db, DbError> {
        Db::open_with(path, readers, Some(turns), DbOptions::default())
    }

    /// [`Db::open`] or, with `turns`, [`Db::open_shared`], with explicit options.
    pub fn open_with(path: &Path, readers: usize, turns: Option<&Path>, options: DbOptions) -> Result<Db, DbError> {
        let writes = Arc::new(WriteHealth::default());
        let readers = readers.max(1);
        let inner = Inner::start(path, readers, turns, options, writes.clone())?;
        let (open, _) = tokio::sync::watch::channel(true);
        Ok(Db {
            inner: Arc::new(Slot {
                state: std::sync::RwLock::new(State::Open(Arc::new(inner))),
                open,
                path: path.to_owned(),
                readers,
                turns: turns.map(Path::to_owned),
                options,
                writes,
                side: Mutex::new(()),
                pending_writes: AtomicUsize::new(0),
                last_write_us: AtomicU64::new(0),
                opened: Instant::now(),
            }),
        })
    }

    /// The file this handle opens.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `msg` on the running threads' queue `pick` chooses; while paused, waits for the
    /// reopen. The read lock is held while queueing, so a pause (which takes the write lock)
    /// either sees the job in the queue it drains or the job sees the pause: never a job
    /// queued on threads already told to stop.
    async fn submit<M>(&self, pick: fn(&Inner) -> &Sender<M>, msg: M) -> Result<(), DbError> {
        let deadline = tokio::time::Instant::now() + PAUSED_WAIT;
        let mut msg = Some(msg);
        loop {
            let mut reopened = self.inner.open.subscribe();
            {
                let state = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
                match &*state {
                    State::Open(inner) => {
                        let Some(msg) = msg.take() else { return Err(DbError::Closed) };
                        return enqueue(pick(inner), msg);
                    }
                    State::Closed => return Err(DbError::Closed),
                    State::Paused => {}
                }
            }
            let waited = tokio::time::timeout_at(deadline, async { reopened.wait_for(|open| *open).await.map(|_| ()) }).await;
            if !matches!(waited, Ok(Ok(()))) {
                return Err(DbError::Refused(Refusal::Restoring));
            }
        }
    }

    /// Stops taking jobs, runs those already queued, and closes every connection, so the
    /// file can be replaced; jobs submitted meanwhile wait for [`Db::resume`]. Blocks: call it
    /// from a blocking context. Pausing a paused or closed database does nothing.
    pub fn pause(&self) {
        let running = {
            let mut state = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
            match std::mem::replace(&mut *state, State::Paused) {
                State::Open(inner) => {
                    self.inner.open.send_replace(false);
                    Some(inner)
                }
                other => {
                    *state = other;
                    None
                }
            }
        };
        if let Some(inner) = running {
            inner.close();
        }
        // Any connection of its own (`optimize`) is closed too before the file may be replaced.
        drop(self.inner.side.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Opens the file again after [`Db::pause`] (it may be another file by now) and releases
    /// the waiting jobs. Blocks. On failure the database stays paused.
    pub fn resume(&self) -> Result<(), DbError> {
        if !matches!(*self.inner.state.read().unwrap_or_else(|p| p.into_inner()), State::Paused) {
            return Ok(());
        }
        let s = &self.inner;
        let inner = Inner::start(&s.path, s.readers, s.turns.as_deref(), s.options, s.writes.clone())?;
        let mut state = s.state.write().unwrap_or_else(|p| p.into_inner());
        match &*state {
            State::Paused => {
                *state = State::Open(Arc::new(inner));
                s.open.send_replace(true);
            }
            // Closed (drained) meanwhile: the new threads are not wanted.
            _ => {
                drop(state);
                inner.close();
            }
        }
        Ok(())
    }

    #[cfg(test)]
    fn threads(&self) -> Arc<Inner> {
        match &*self.inner.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Open(inner) => inner.clone(),
            _ => panic!("the database is not open"),
        }
    }

    /// Runs `f` on a reader connection (`query_only`). The caller picks the error type; it
    /// only has to absorb [`DbError`] (e.g. when the database is closed).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller stopped waiting (the client left): nobody would read the answer.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f(conn));
        });
        let gone = Arc::new(AtomicBool::new(false));
        // Dropped with this future: a query still running for a caller who left is interrupted.
        let _raise_when_gone = RaiseOnDrop(gone.clone());
        self.submit(|i| &i.readers, Msg::Run(job, gone)).await.map_err(E::from)?;
        rx.await.map_err(|_| E::from(DbError::Closed))?
    }

    /// Foreground writes of this process (all but [`Db::write_background`]'s) submitted and
    /// not yet answered: how busy the writer is. Background work (the job runner) defers its
    /// own writes while foreground writes are waiting or arriving.
    pub fn writes_pending(&self) -> usize {
        self.inner.pending_writes.load(Ordering::Relaxed)
    }

    /// How long ago this process last submitted a foreground write (None: never). With
    /// [`Db::writes_pending`] it tells a writer kept busy apart from an idle one: under a
    /// saturating load the writer empties its queue between groups, so a look at the waiting
    /// count alone often finds none.
    pub fn since_last_write(&self) -> Option<Duration> {
        let at = self.inner.last_write_us.load(Ordering::Relaxed);
        (at > 0).then(|| self.inner.opened.elapsed().saturating_sub(Duration::from_micros(at)))
    }

    /// Why writes are failing right now (the last group was lost to a full disk), or `None`
    /// when the last group committed.
    pub fn write_failure(&self) -> Option<String> {
        self.inner.writes.get()
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction on the writer (shared with other writes
    /// queued at the same moment, each in its own savepoint); answers once that transaction
    /// committed, so `Ok` means durable. If `f` fails its own changes are rolled back and the
    /// caller's error comes back intact.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        self.write_then(f, |_: &mut T| ()).await
    }

    /// [`Db::write`] with an after-commit step: `after` runs on the writer thread right after
    /// the COMMIT that made `f`'s work durable, before the caller is answered, and never if
    /// the work was rolled back. The writer runs the `after` steps of a group in the group's
    /// order, and groups in commit order, so effects released here (realtime events) come out
    /// in commit order. `after` must be quick and must not block: it holds up the writer.
    pub async fn write_then<T, E, F, A>(&self, f: F, after: A) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        A: FnOnce(&mut T) + Send + 'static,
    {
        self.submit_write(f, after, false, false).await
    }

    /// [`Db::write`] in a transaction of its own, never shared with other writes: `f` may
    /// interrupt its own statements (e.g. with a progress handler for a deadline), which makes
    /// SQLite roll back the whole transaction — in a group that would lose the other writes.
    pub async fn write_alone<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        self.submit_write(f, |_: &mut T| (), true, false).await
    }

    /// [`Db::write`] for background work (the job runner): not counted by
    /// [`Db::writes_pending`] or [`Db::since_last_write`], which tell background work whether
    /// foreground writes are arriving.
    pub async fn write_background<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        self.submit_write(f, |_: &mut T| (), false, true).await
    }

    async fn submit_write<T, E, F, A>(&self, f: F, after: A, alone: bool, background: bool) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        A: FnOnce(&mut T) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |t| {
            // The caller stopped waiting (the client left): its write is not made at all.
            if tx.is_closed() {
                return Done { ok: false, answer: Box::new(|_| ()) };
            }
            let out = match t {
                Ok(t) => f(t),
                Err(why) => Err(E::from(DbError::Commit(why.text.clone(), why.refusal))),
            };
            Done {
                ok: out.is_ok(),
                answer: Box::new(move |lost: Option<&Lost>| {
                    let reply = match (out, lost) {
                        (Ok(_), Some(why)) => Err(E::from(DbError::Commit(why.text.clone(), why.refusal))),
                        (Ok(mut value), None) => {
                            // This runs outside the job's unwind guard: a panic here would take
                            // the writer thread down, so it is contained and logged.
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| after(&mut value))).is_err() {
                                tracing::error!("an after-commit step panicked; its effects are lost");
                            }
                            Ok(value)
                        }
                        (out, _) => out,
                    };
                    let _ = tx.send(reply);
                }),
            }
        });
        let msg = if alone { WriteMsg::RunAlone(job) } else { WriteMsg::Run(job) };
        let _pending = (!background).then(|| {
            let at = u64::try_from(self.inner.opened.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            self.inner.last_write_us.store(at, Ordering::Relaxed);
            PendingWrite::new(&self.inner.pending_writes)
        });
        self.submit(|i| &i.writer, msg).await.map_err(E::from)?;
        rx.await.map_err(|_| E::from(DbError::Closed))?
    }

    /// Daily maintenance (PocketBase's `__pbDBOptimize__`): a checkpoint of the given mode,
    /// then `PRAGMA optimize`, on a connection of its own on a blocking thread, so neither the
    /// writer nor the checkpointer waits behind it. A TRUNCATE checkpoint waits (busy
    /// timeout) for readers of every process to move past the WAL and then empties it.
    pub async fn optimize(&self, checkpoint: CheckpointMode) -> Result<(), DbError> {
        let slot = self.inner.clone();
        let sql = match checkpoint {
            CheckpointMode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
            CheckpointMode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        };
        let run = move || -> rusqlite::Result<()> {
            // Its connection is outside the threads a pause closes: a pause waits for it, and
            // it does not start on a paused database (whose file may be being replaced).
            let _side = slot.side.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*slot.state.read().unwrap_or_else(|p| p.into_inner()), State::Open(_)) {
                return Ok(());
            }
            let conn = open::open(&slot.path, Role::Writer)?;
            conn.query_row(sql, [], |_| Ok(()))?;
            conn.execute_batch("PRAGMA optimize;")?;
            conn.close().map_err(|(_, e)| e)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(done) => done.map_err(DbError::Sqlite),
            Err(_) => Err(DbError::Closed),
        }
    }

    /// Stops every thread after the jobs already queued, checkpoints the WAL and closes the
    /// connections. Blocks: call it from a blocking context. Idempotent; final (a paused
    /// database is not reopened after it).
    pub fn close(&self) {
        let running = {
            let mut state = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
            match std::mem::replace(&mut *state, State::Closed) {
                State::Open(inner) => Some(inner),
                State::Paused | State::Closed => None,
            }
        };
        // Waiters of a paused database learn it is gone instead of waiting out their time.
        self.inner.open.send_replace(true);
        if let Some(inner) = running {
            inner.close();
        }
    }
}

impl Inner {
    /// Opens one writer and `readers` reader connections on `path`, each on its own thread.
    fn start(path: &Path, readers: usize, turns: Option<&Path>, options: DbOptions, writes: Arc<WriteHealth>) -> Result<Inner, DbError> {
        let turns = turns.map(Turns::open).transpose().map_err(DbError::Turns)?;
        let opened = |role| open::open(path, role).map_err(|source| DbError::Open { path: path.to_owned(), source });
        let writer_conn = opened(Role::Writer)?;
        let checkpoint_conn = opened(Role::Writer)?;
        let reader_conns = (0..readers).map(|_| opened(Role::Reader)).collect::<Result<Vec<_>, _>>()?;

        let (writer_tx, writer_rx) = crossbeam_channel::bounded(MAX_QUEUED_WRITES);
        let (reader_tx, reader_rx) = crossbeam_channel::bounded(MAX_QUEUED_READS);
        // One pending nudge is enough: the checkpointer copies everything there is.
        let (checkpoint_tx, checkpoint_rx) = crossbeam_channel::bounded(1);
        let mut threads = Vec::with_capacity(readers + 2);
        threads.push(spawn_writer(writer_conn, writer_rx, checkpoint_tx.clone(), turns, writes)?);
        threads.push(spawn_checkpointer(checkpoint_conn, checkpoint_rx, options.app_checkpoints, options.wal_restart_frames)?);
        for (i, conn) in reader_conns.into_iter().enumerate() {
            threads.push(spawn_reader(&format!("vb-db-reader-{i}"), conn, reader_rx.clone(), options.read_deadline)?);
        }
        Ok(Inner { writer: writer_tx, readers: reader_tx, checkpointer: checkpoint_tx, reader_count: readers, threads: Mutex::new(threads) })
    }

    fn close(&self) {
        let _ = self.writer.send(WriteMsg::Stop);
        let _ = self.checkpointer.send(Checkpoint::Stop);
        for _ in 0..self.reader_count {
            let _ = self.readers.send(Msg::Stop);
        }
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Queues `msg` without waiting: a full queue is a refusal, not back-pressure on the runtime.
fn enqueue<M>(queue: &Sender<M>, msg: M) -> Result<(), DbError> {
    queue.try_send(msg).map_err(|e| match e {
        TrySendError::Full(_) => DbError::Refused(Refusal::Busy),
        TrySendError::Disconnected(_) => DbError::Closed,
    })
}

/// Raises its flag when dropped.
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The deadline of the job running on one connection, read by its progress handler: the
/// nanoseconds since `base` after which its statement is interrupted ([`NO_DEADLINE`] between
/// jobs), and the flag raised when the job's caller stops waiting.
struct Deadline {
    base: Instant,
    at_nanos: AtomicU64,
    gone: Mutex<Option<Arc<AtomicBool>>>,
}

const NO_DEADLINE: u64 = u64::MAX;

impl Deadline {
    fn new() -> Arc<Deadline> {
        Arc::new(Deadline { base: Instant::now(), at_nanos: AtomicU64::new(NO_DEADLINE), gone: Mutex::new(None) })
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(NO_DEADLINE - 1)
    }

    fn start(&self, budget: Duration, gone: Arc<AtomicBool>) {
        self.set_gone(Some(gone));
        let at = self.now_nanos().saturating_add(u64::try_from(budget.as_nanos()).unwrap_or(NO_DEADLINE));
        self.at_nanos.store(at.min(NO_DEADLINE - 1), Ordering::Relaxed);
    }

    fn clear(&self) {
        self.at_nanos.store(NO_DEADLINE, Ordering::Relaxed);
        self.set_gone(None);
    }

    fn set_gone(&self, flag: Option<Arc<AtomicBool>>) {
        match self.gone.lock() {
            Ok(mut g) => *g = flag,
            Err(poisoned) => *poisoned.into_inner() = flag,
        }
    }

    /// Whether the running statement should stop: past the deadline, or nobody waits for it.
    fn passed(&self) -> bool {
        let at = self.at_nanos.load(Ordering::Relaxed);
        if at == NO_DEADLINE {
            return false;
        }
        let gone = match self.gone.lock() {
            Ok(g) => g.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)),
            Err(_) => false,
        };
        gone || self.now_nanos() >= at
    }
}

fn spawn_reader(name: &str, conn: Connection, rx: Receiver<Msg>, budget: Duration) -> Result<JoinHandle<()>, DbError> {
    let deadline = Deadline::new();
    let check = deadline.clone();
    conn.progress_handler(PROGRESS_CHECK_OPS, Some(move || check.passed()));
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut conn = conn;
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Run(job, gone) => {
                        deadline.start(budget, gone);
                        // A panicking job must not take the thread (and its connection) with
                        // it; its caller sees the reply channel close and gets an error.
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                        deadline.clear();
                        if ran.is_err() {
                            tracing::error!(thread = ?std::thread::current().name(), "a database job panicked");
                            if !conn.is_autocommit() {
                                let _ = conn.execute_batch("ROLLBACK");
                            }
                        }
                    }
                    Msg::Stop => break,
                }
            }
            close(conn);
        })
        .map_err(DbError::Thread)
}

fn spawn_writer(
    conn: Connection,
    rx: Receiver<WriteMsg>,
    checkpoint: Sender<Checkpoint>,
    turns: Option<Turns>,
    health: Arc<WriteHealth>,
) -> Result<JoinHandle<()>, DbError> {
    std::thread::Builder::new()
        .name("vb-db-writer".to_owned())
        .spawn(move || {
            let mut conn = conn;
            let mut group: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP_JOBS);
            // A job met while gathering that must run alone: it opens the next group.
            let mut held: Option<WriteJob> = None;
            let mut stopping = false;
            loop {
                let mut stop = stopping;
                let mut gather = true;
                if let Some(job) = held.take() {
                    group.push(job);
                    gather = false;
                } else if stopping {
                    break;
                } else {
                    match rx.recv() {
                        Ok(WriteMsg::Run(job)) => group.push(job),
                        Ok(WriteMsg::RunAlone(job)) => {
                            group.push(job);
                            gather = false;
                        }
                        Ok(WriteMsg::Stop) | Err(_) => break,
                    }
                }
                // Only what is already queued: waiting for company would add latency to a
                // lone write.
                while gather && group.len() < MAX_GROUP_JOBS {
                    match rx.try_recv() {
                        Ok(WriteMsg::Run(job)) => group.push(job),
                        Ok(WriteMsg::RunAlone(job)) => {
                            held = Some(job);
                            break;
                        }
                        Ok(WriteMsg::Stop) => {
                            stop = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // The writer must outlive any bug in a group's bookkeeping: without it every
                // later write would answer "the database is closed".
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_group(&mut conn, &mut group, turns.as_ref(), &health)));
                match ran {
                    Ok(()) => {}
                    Err(_) => {
                        tracing::error!("the write group panicked; its callers were failed");
                        group.clear();
                        if !conn.is_autocommit() {
                            let _ = conn.execute_batch("ROLLBACK");
                        }
                    }
                }
                // Full means a nudge is already pending.
                let _ = checkpoint.try_send(Checkpoint::Nudge);
                // A job held back from a stopping group still runs: it was queued before the stop.
                if stop && held.is_none() {
                    break;
                }
                stopping |= stop;
            }
            // PASSIVE never waits on other processes' readers; the last process out of a
            // cluster still leaves a short WAL, and SQLite checkpoints it on the next open.
            if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE); PRAGMA optimize;") {
                tracing::warn!(error = %e, "checkpoint on close failed");
            }
            close(conn);
        })
        .map_err(DbError::Thread)
}

fn spawn_checkpointer(conn: Connection, rx: Receiver<Checkpoint>, enabled: bool, restart_frames: i64) -> Result<JoinHandle<()>, DbError> {
    std::thread::Builder::new()
        .name("vb-db-checkpoint".to_owned())
        .spawn(move || {
            if !enabled {
                // Another process owns checkpoints (Litestream): nudges are dropped until Stop.
                while let Ok(Checkpoint::Nudge) = rx.recv() {}
                close(conn);
                return;
            }
            // Whether writes happened since the last checkpoint started.
            let mut due = false;
            'serve: loop {
                if !due && !matches!(rx.recv(), Ok(Checkpoint::Nudge)) {
                    break;
                }
                due = false;
                // PASSIVE: copies what it can without waiting for readers or writers (of this
                // or any other process); what is left goes with the next round.
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) if frames >= restart_frames => restart_wal(&conn),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
                // Rest for the interval, remembering writes and still answering a stop at once.
                let until = std::time::Instant::now() + CHECKPOINT_INTERVAL;
                loop {
                    match rx.recv_deadline(until) {
                        Ok(Checkpoint::Nudge) => due = true,
                        Ok(Checkpoint::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break 'serve,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                    }
                }
            }
            close(conn);
        })
        .map_err(DbError::Thread)
}

/// A RESTART checkpoint bounded by [`WAL_RESTART_WAIT`]: the connection's usual busy handler
/// (seconds) is swapped for a short one while it runs.
fn restart_wal(conn: &Connection) {
    fn brief_retry(attempt: i32) -> bool {
        let tries = WAL_RESTART_WAIT.as_micros() / WAL_RESTART_PAUSE.as_micros();
        if u128::try_from(attempt).unwrap_or(u128::MAX) >= tries {
            return false;
        }
        std::thread::sleep(WAL_RESTART_PAUSE);
        true
    }
    if let Err(e) = conn.busy_handler(Some(brief_retry)) {
        tracing::warn!(error = %e, "WAL restart: setting the busy handler failed");
        return;
    }
    match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
        Ok(0) => tracing::debug!("WAL restarted"),
        Ok(_) => tracing::debug!("WAL restart deferred: readers or a writer stayed past the wait"),
        Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
    }
    if let Err(e) = conn.busy_handler(Some(super::open::busy_retry)) {
        tracing::warn!(error = %e, "WAL restart: restoring the busy handler failed");
    }
}

fn close(conn: Connection) {
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing a database connection failed");
    }
}

/// What became of a transaction, for [`WriteHealth`].
enum Outcome {
    /// It committed work.
    Committed,
    /// Nothing was written (every job failed alone or was skipped): says nothing new.
    Nothing,
    /// Work was lost, or a job met a full disk; why.
    Lost(Lost),
}

fn note_outcome(health: &WriteHealth, outcome: Outcome) {
    match outcome {
        Outcome::Committed => {
            if health.get().is_some() {
                tracing::info!("writes succeed again");
            }
            health.set(None);
        }
        Outcome::Lost(Lost { refusal: Some(Refusal::DiskFull), text }) => health.set(Some(format!("disk full: {text}"))),
        Outcome::Lost(_) | Outcome::Nothing => {}
    }
}

/// Runs `jobs` (drained) in as few transactions as possible: normally one; a new one only if
/// SQLite itself ended the transaction under a job (e.g. a full disk), whose whole group so far
/// is then reported lost. `health` is updated before any caller is answered, so a caller that
/// saw its write fail (or succeed) also sees health say so.
fn run_group(conn: &mut Connection, jobs: &mut Vec<WriteJob>, turns: Option<&Turns>, health: &WriteHealth) {
    let mut pending = jobs.drain(..);
    while pending.len() > 0 {
        let ticket = turns.map(|t| (t, t.wait()));
        let end_turn = || {
            if let Some((t, ticket)) = ticket {
                t.done(ticket);
            }
        };
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                end_turn();
                let why = Lost::new(format!("starting the transaction: {e}"), Some(&e));
                note_outcome(health, Outcome::Lost(why.clone()));
                for job in pending.by_ref() {
                    fail_unrun(job, &why);
                }
                return;
            }
        };
        let mut done: Vec<Done> = Vec::new();
        let mut broken = None;
        let mut met_full = false;
        for job in pending.by_ref() {
            match run_in_savepoint(&tx, job) {
                Ok((d, full)) => {
                    if full {
                        met_full = true;
                    }
                    done.push(d);
                }
                Err((why, unanswered)) => {
                    // Answered below with the rest, once health says what happened.
                    done.extend(unanswered);
                    broken = Some(why);
                    break;
                }
            }
        }
        let lost = match broken {
            Some(why) => {
                drop(tx);
                Some(why)
            }
            None => tx.commit().err().map(|e| Lost::new(format!("commit: {e}"), Some(&e))),
        };
        // The lock is free again: the next process in line may go before the answers below.
        end_turn();
        let outcome = match &lost {
            Some(why) => {
                tracing::error!(jobs = done.len(), error = %why.text, "a write group did not commit");
                Outcome::Lost(why.clone())
            }
            None if met_full => Outcome::Lost(Lost { text: "a write met a full disk".to_owned(), refusal: Some(Refusal::DiskFull) }),
            None if done.iter().any(|d| d.ok) => Outcome::Committed,
            None => Outcome::Nothing,
        };
        note_outcome(health, outcome);
        for d in done {
            (d.answer)(lost.as_ref());
        }
    }
}

/// One job in its own savepoint. `Err` means the enclosing transaction can no longer be trusted
/// (SQLite rolled it back or the savepoint could not be undone), with the job's answer still
/// to give. `Ok` carries whether the job failed on a full disk.
fn run_in_savepoint(tx: &Transaction<'_>, job: WriteJob) -> Result<(Done, bool), (Lost, Option<Done>)> {
    // Cached statements: parsing these two per write cost more than running them.
    if let Err(e) = tx.prepare_cached("SAVEPOINT vb_job").and_then(|mut s| s.execute([])) {
        let why = Lost::new(format!("opening a savepoint: {e}"), Some(&e));
        let unrun = job(Err(&why));
        return Err((why, Some(unrun)));
    }
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(tx))));
    if tx.is_autocommit() {
        // SQLite abandoned the transaction (an I/O error, a full disk): nothing of the group
        // so far survives, and this job's answer says so. The job's own error said why; a
        // full disk is the one cause that ends a transaction which a job can meet here.
        let full = probe_full(tx);
        let why = Lost { text: "the transaction was rolled back by SQLite".to_owned(), refusal: full.then_some(Refusal::DiskFull) };
        return Err((why, ran.ok()));
    }
    let kept = match &ran {
        Ok(d) => d.ok,
        Err(_) => {
            tracing::error!("a database write job panicked");
            false
        }
    };
    // A statement that met a full disk may have been undone alone, leaving the transaction
    // open; the disk is still full, and health should say so.
    let full = !kept && probe_full(tx);
    let ended = if kept { tx.prepare_cached("RELEASE vb_job").and_then(|mut s| s.execute([])).map(|_| ()) } else { tx.execute_batch("ROLLBACK TO vb_job; RELEASE vb_job") };
    if let Err(e) = ended {
        let why = Lost::new(format!("ending a savepoint: {e}"), Some(&e));
        return Err((why, ran.ok()));
    }
    // A panicked job has no answer to give: its reply channel was dropped in the unwind,
    // which fails its caller.
    Ok((ran.unwrap_or_else(|_| Done { ok: false, answer: Box::new(|_| ()) }), full))
}

/// Whether the connection's last error was `SQLITE_FULL` (what a job's statement met before
/// SQLite ended the transaction; the job's own error type is opaque here).
fn probe_full(tx: &Transaction<'_>) -> bool {
    // SAFETY: the handle is valid for as long as `tx` borrows the connection, and
    // `sqlite3_errcode` only reads the connection's last result code.
    let code = unsafe { rusqlite::ffi::sqlite3_errcode(tx.handle()) };
    code & 0xff == rusqlite::ffi::SQLITE_FULL
}

/// Answers a job that could not run with why.
fn fail_unrun(job: WriteJob, why: &Lost) {
    (job(Err(why)).answer)(Some(why));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_submitted_while_paused_waits_and_runs_on_the_reopened_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let db = Db::open(&path, 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v TEXT)")?) }).await.expect("create");
        let paused = db.clone();
        tokio::task::spawn_blocking(move || paused.pause()).await.expect("pause");
        // The replacement holds a different row: what the waiting job reads tells which file it ran on.
        let other = dir.path().join("other.db");
        let c = rusqlite::Connection::open(&other).expect("other");
        c.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('restored');").expect("fill");
        drop(c);
        let waiting = {
            let db = db.clone();
            tokio::spawn(async move {
                db.read(|c| -> Result<String, DbError> { Ok(c.query_row("SELECT v FROM t", [], |r| r.get(0))?) }).await
            })
        };
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "a job does not run while the database is paused");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        std::fs::rename(&other, &path).expect("swap");
        let resumed = db.clone();
        tokio::task::spawn_blocking(move || resumed.resume()).await.expect("join").expect("resume");
        assert_eq!(waiting.await.expect("join").expect("read"), "restored");
    }

    #[tokio::test]
    async fn background_writes_are_not_counted_as_foreground_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write_background(|tx| -> Result<(), DbError> {
            tx.execute_batch("CREATE TABLE t (v INTEGER)")?;
            Ok(())
        })
        .await
        .expect("background write");
        // It committed, and left no trace in the load figures.
        let n: i64 = db.read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 't'", [], |r| r.get(0))?) }).await.expect("read");
        assert_eq!(n, 1);
        assert_eq!(db.since_last_write(), None, "no foreground write yet");
        assert_eq!(db.writes_pending(), 0);
        // A foreground write is seen (positive control).
        db.write(|tx| -> Result<(), DbError> {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        })
        .await
        .expect("foreground write");
        assert!(db.since_last_write().is_some(), "the foreground write is counted");
        assert_eq!(db.writes_pending(), 0, "answered writes are not pending");
    }

    #[tokio::test]
    async fn writes_commit_and_failed_writes_roll_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 2).expect("open");
        db.write(|tx| -> Result<(), DbError> {
            tx.execute_batch("CREATE TABLE t (v INTEGER)")?;
            Ok(())
        })
        .await
        .expect("create");
        db.write(|tx| -> Result<(), DbError> {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        })
        .await
        .expect("insert");
        let failed: Result<(), DbError> = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES (2)", [])?;
                Err(DbError::Closed)
            })
            .await;
        assert!(failed.is_err());
        let n: i64 = db
            .read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?) })
            .await
            .expect("count");
        assert_eq!(n, 1, "the failed write rolled back");
    }

    /// Occupies the writer (`on_writer`) or the only reader with a job that waits for the
    /// returned sender (sent to or dropped), so that jobs sent meanwhile queue up behind it.
    /// Returns once the holding job is running.
    async fn hold(db: &Db, on_writer: bool) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<(), DbError>>) {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel::<()>();
        let wait = move || -> Result<(), DbError> {
            let _ = started_tx.send(());
            hold.recv().map_err(|_| DbError::Closed)
        };
        let db = db.clone();
        let gate = tokio::spawn(async move {
            if on_writer {
                db.write(move |_| wait()).await
            } else {
                db.read(move |_| wait()).await
            }
        });
        started.await.expect("the holding job runs");
        (release, gate)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_alone_that_interrupts_itself_loses_no_other_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v INTEGER)")?) }).await.expect("create");
        // Hold the writer so the three jobs below queue up together, in this order.
        let (release, gate) = hold(&db, true).await;
        let insert = |v: i64| {
            let db = db.clone();
            tokio::spawn(async move { db.write(move |tx| -> Result<(), DbError> { Ok(tx.execute("INSERT INTO t VALUES (?1)", [v]).map(|_| ())?) }).await })
        };
        let before = insert(1);
        while db.threads().writer.is_empty() {
            tokio::task::yield_now().await;
        }
        let alone = {
            let db = db.clone();
            tokio::spawn(async move {
                db.write_alone(|tx| -> Result<(), DbError> {
                    tx.execute("INSERT INTO t VALUES (100)", [])?;
                    // Interrupted at once: SQLite rolls back the whole transaction.
                    tx.progress_handler(1, Some(|| true));
                    let r = tx.execute("INSERT INTO t SELECT v + 1 FROM t", []);
                    tx.progress_handler(1, None::<fn() -> bool>);
                    r?;
                    Ok(())
                })
                .await
            })
        };
        while db.threads().writer.len() < 2 {
            tokio::task::yield_now().await;
        }
        let after = insert(2);
        while db.threads().writer.len() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        gate.await.expect("join").expect("gate");
        before.await.expect("join").expect("the write queued before it committed");
        assert!(alone.await.expect("join").is_err(), "the interrupted job fails");
        after.await.expect("join").expect("the write queued after it committed");
        let stored: Vec<i64> = db
            .read(|c| -> Result<Vec<i64>, DbError> {
                let mut st = c.prepare("SELECT v FROM t ORDER BY v")?;
                let rows = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
                Ok(rows)
            })
            .await
            .expect("read");
        assert_eq!(stored, vec![1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_commits_its_successes_and_rolls_back_only_its_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")?) }).await.expect("create");
        // Hold the writer until every job below is queued, so they run as one group.
        let (release, gate) = hold(&db, true).await;
        const JOBS: i64 = 60;
        let mut calls = Vec::new();
        for i in 0..JOBS {
            let db = db.clone();
            calls.push(tokio::spawn(async move {
                db.write(move |tx| -> Result<i64, DbError> {
                    match i % 3 {
                        // Fails after writing: its row must not survive.
                        0 => {
                            tx.execute("INSERT INTO t VALUES (?1)", [1000 + i])?;
                            Err(DbError::Closed)
                        }
                        // Violates UNIQUE on its second row: the first must not survive.
                        1 => {
                            tx.execute("INSERT INTO t VALUES (?1)", [2000 + i])?;
                            tx.execute("INSERT INTO t VALUES (?1)", [2000 + i])?;
                            Ok(i)
                        }
                        _ => {
                            tx.execute("INSERT INTO t VALUES (?1)", [i])?;
                            Ok(i)
                        }
                    }
                })
                .await
            }));
        }
        while db.threads().writer.len() < JOBS as usize {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        gate.await.expect("join").expect("gate");
        let mut ok = Vec::new();
        for (i, c) in calls.into_iter().enumerate() {
            match c.await.expect("join") {
                Ok(v) => ok.push(v),
                Err(_) => assert_ne!(i % 3, 2, "job {i} should have succeeded"),
            }
        }
        let expected: Vec<i64> = (0..JOBS).filter(|i| i % 3 == 2).collect();
        assert_eq!(ok, expected);
        let stored: Vec<i64> = db
            .read(|c| -> Result<Vec<i64>, DbError> {
                let mut st = c.prepare("SELECT v FROM t ORDER BY v")?;
                let rows = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
                Ok(rows)
            })
            .await
            .expect("read");
        assert_eq!(stored, expected, "exactly the successful jobs' rows");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v INTEGER)")?) }).await.expect("create");
        let (release, gate) = hold(&db, true).await;
        let spawn_write = |v: i64, panics: bool| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |tx| -> Result<(), DbError> {
                    tx.execute("INSERT INTO t VALUES (?1)", [v])?;
                    if panics {
                        panic!("job bug");
                    }
                    Ok(())
                })
                .await
            })
        };
        let calls = vec![spawn_write(1, false), spawn_write(2, true), spawn_write(3, false)];
        while db.threads().writer.len() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        gate.await.expect("join").expect("gate");
        let results: Vec<bool> = futures_util::future::join_all(calls).await.into_iter().map(|r| r.expect("join").is_ok()).collect();
        assert_eq!(results, vec![true, false, true]);
        let sum: i64 = db.read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT total(v) FROM t", [], |r| r.get::<_, f64>(0))? as i64) }).await.expect("sum");
        assert_eq!(sum, 4, "rows 1 and 3 committed, the panicking job's row 2 did not");
    }

    #[tokio::test]
    async fn after_commit_steps_run_only_for_committed_writes_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v INTEGER)")?) }).await.expect("create");
        let (seen_tx, seen_rx) = std::sync::mpsc::channel::<i64>();
        for v in 1..=3i64 {
            let seen = seen_tx.clone();
            let r: Result<i64, DbError> = db
                .write_then(
                    move |tx| {
                        tx.execute("INSERT INTO t VALUES (?1)", [v])?;
                        if v == 2 {
                            return Err(DbError::Closed);
                        }
                        Ok(v)
                    },
                    move |v: &mut i64| {
                        let _ = seen.send(*v);
                    },
                )
                .await;
            assert_eq!(r.is_ok(), v != 2);
        }
        drop(seen_tx);
        let seen: Vec<i64> = seen_rx.iter().collect();
        assert_eq!(seen, vec![1, 3], "the rolled-back write released nothing");
    }

    #[tokio::test]
    async fn the_checkpointer_copies_committed_writes_into_the_database_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let db = Db::open(&path, 1).expect("open");
        let before = std::fs::metadata(&path).expect("db file").len();
        db.write(|tx| -> Result<(), DbError> {
            tx.execute_batch("CREATE TABLE t (v BLOB)")?;
            tx.execute("INSERT INTO t VALUES (zeroblob(2000000))", [])?;
            Ok(())
        })
        .await
        .expect("write");
        // Commits no longer checkpoint; only the checkpointer thread moves pages out of the WAL.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).expect("db file").len() < before + 2_000_000 {
            assert!(std::time::Instant::now() < deadline, "the WAL was never checkpointed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_and_the_thread_lives_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        let r: Result<(), DbError> = db.write(|_| panic!("job bug")).await;
        assert!(r.is_err());
        let r: Result<(), DbError> = db.read(|_| panic!("job bug")).await;
        assert!(r.is_err());
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v)")?) }).await.expect("writer still serves");
        let n: i64 = db.read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT 1", [], |r| r.get(0))?) }).await.expect("reader still serves");
        assert_eq!(n, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_left_is_not_run() {
        use futures_util::FutureExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        let ran = Arc::new(AtomicU64::new(0));
        let counting_read = |db: &Db, ran: &Arc<AtomicU64>| {
            let (db, ran) = (db.clone(), ran.clone());
            async move {
                db.read(move |_| -> Result<(), DbError> {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }
        };
        let counting_write = |db: &Db, ran: &Arc<AtomicU64>| {
            let (db, ran) = (db.clone(), ran.clone());
            async move {
                db.write(move |_| -> Result<(), DbError> {
                    ran.fetch_add(100, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }
        };

        // Reads: queued behind a busy reader, then abandoned (the future is dropped after
        // its first poll sent the job, as when a client disconnects).
        let (release, gate) = hold(&db, false).await;
        assert!(counting_read(&db, &ran).now_or_never().is_none(), "queued, not run yet");
        let kept = tokio::spawn(counting_read(&db, &ran));
        while db.threads().readers.len() < 2 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        gate.await.expect("join").expect("gate");
        kept.await.expect("join").expect("the awaited read ran");
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only the read someone waited for ran");

        // Writes: the same, behind a busy writer.
        let (release, gate) = hold(&db, true).await;
        assert!(counting_write(&db, &ran).now_or_never().is_none(), "queued, not run yet");
        let kept = tokio::spawn(counting_write(&db, &ran));
        while db.threads().writer.len() < 2 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        gate.await.expect("join").expect("gate");
        kept.await.expect("join").expect("the awaited write ran");
        assert_eq!(ran.load(Ordering::SeqCst), 101, "only the write someone waited for ran");
    }

    /// Frames in the WAL after `writes` small writes while another connection reads without
    /// pause, with the given restart threshold.
    async fn wal_frames_after_steady_load(restart_frames: i64, writes: usize) -> i64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let options = DbOptions { wal_restart_frames: restart_frames, ..DbOptions::default() };
        let db = Db::open_with(&path, 1, None, options).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v BLOB)")?) }).await.expect("create");
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (stop, path) = (stop.clone(), path.clone());
            std::thread::spawn(move || {
                let c = open::open(&path, Role::Reader).expect("reader");
                while !stop.load(Ordering::Relaxed) {
                    let _: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("read");
                }
            })
        };
        for _ in 0..writes {
            db.write(|tx| -> Result<(), DbError> { Ok(tx.execute("INSERT INTO t VALUES (zeroblob(3000))", []).map(|_| ())?) }).await.expect("write");
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().expect("reader thread");
        let c = open::open(&path, Role::Writer).expect("look");
        // -1: the executor's own checkpointer held the checkpoint lock at that moment (SQLite
        // answers busy rather than waiting); it lets go within one of its passes.
        for _ in 0..1000 {
            let frames: i64 = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).expect("frames");
            if frames >= 0 {
                return frames;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the WAL could not be looked at: a checkpoint stayed busy for 5 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_steady_reads_and_writes_the_wal_restarts_instead_of_growing() {
        const WRITES: usize = 6000;
        // The positive control: with PASSIVE alone the log keeps every frame of the run.
        let unbounded = wal_frames_after_steady_load(i64::MAX, WRITES).await;
        assert!(unbounded >= WRITES as i64, "without restarts the WAL holds the whole run: {unbounded} frames");
        let bounded = wal_frames_after_steady_load(256, WRITES).await;
        assert!(bounded < unbounded / 2, "with restarts the WAL starts over: {bounded} frames vs {unbounded}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_query_whose_caller_left_is_interrupted() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A deadline far beyond the test's patience: only the caller leaving can stop it.
        let options = DbOptions { read_deadline: Duration::from_secs(3600), ..DbOptions::default() };
        let db = Db::open_with(&dir.path().join("t.db"), 1, None, options).expect("open");
        let (started_tx, started) = oneshot::channel::<()>();
        let (ended_tx, ended) = oneshot::channel::<bool>();
        let endless = {
            let db = db.clone();
            tokio::spawn(async move {
                db.read(move |c| -> Result<i64, DbError> {
                    let _ = started_tx.send(());
                    let r = c.query_row("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", [], |r| r.get(0));
                    let _ = ended_tx.send(r.as_ref().err().and_then(refusal_of_sqlite) == Some(Refusal::Timeout));
                    Ok(r?)
                })
                .await
            })
        };
        started.await.expect("the query runs");
        endless.abort();
        // Bounded only so a regression fails instead of hanging; it ends within milliseconds.
        let ended = tokio::time::timeout(Duration::from_secs(60), ended).await.expect("the query was interrupted, not left running");
        assert!(ended.expect("the query ended"), "interrupted, as SQLITE_INTERRUPT");
        let n: i64 = db.read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT 7", [], |r| r.get(0))?) }).await.expect("the reader serves on");
        assert_eq!(n, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once() {
        use futures_util::FutureExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        let (release, gate) = hold(&db, false).await;
        // Kept alive (polled once, not dropped) so their jobs stay queued and count.
        let mut queued = Vec::new();
        for _ in 0..MAX_QUEUED_READS {
            let mut f = Box::pin(db.read(|_| Ok::<(), DbError>(())));
            assert!((&mut f).now_or_never().is_none());
            queued.push(f);
        }
        let refused = db.read(|_| Ok::<(), DbError>(())).await;
        assert!(matches!(refused, Err(DbError::Refused(Refusal::Busy))), "{refused:?}");
        release.send(()).expect("release");
        gate.await.expect("join").expect("gate");
        for f in queued {
            f.await.expect("each queued read still runs");
        }
        db.read(|_| Ok::<(), DbError>(())).await.expect("room again");
    }

    #[tokio::test]
    async fn a_read_past_its_deadline_is_interrupted_and_the_reader_serves_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DbOptions { read_deadline: Duration::from_millis(100), ..DbOptions::default() };
        let db = Db::open_with(&dir.path().join("t.db"), 1, None, options).expect("open");
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
        let r = db.read(move |c| -> Result<i64, DbError> { Ok(c.query_row(endless, [], |r| r.get(0))?) }).await;
        let e = r.expect_err("interrupted");
        assert_eq!(refusal_in(&e), Some(Refusal::Timeout), "{e}");
        let n: i64 = db.read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT 7", [], |r| r.get(0))?) }).await.expect("next read");
        assert_eq!(n, 7);
    }

    #[tokio::test]
    async fn a_full_database_fails_writes_with_disk_full_until_there_is_room_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v BLOB)")?) }).await.expect("create");
        assert_eq!(db.write_failure(), None);
        // The writer connection may not grow the file past its current size: SQLITE_FULL.
        db.write(|tx| -> Result<(), DbError> {
            let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            tx.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .expect("limit");
        let r = db.write(|tx| -> Result<(), DbError> { Ok(tx.execute("INSERT INTO t VALUES (zeroblob(100000))", []).map(|_| ())?) }).await;
        let e = r.expect_err("no room");
        assert_eq!(refusal_in(&e), Some(Refusal::DiskFull), "{e}");
        assert!(db.write_failure().is_some_and(|w| w.contains("disk full")), "{:?}", db.write_failure());
        db.read(|c| -> Result<i64, DbError> { Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?) }).await.expect("reads still work");
        db.write(|tx| -> Result<(), DbError> {
            tx.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))?;
            tx.execute("INSERT INTO t VALUES (zeroblob(100000))", [])?;
            Ok(())
        })
        .await
        .expect("room again");
        assert_eq!(db.write_failure(), None, "a committed write clears the failure");
    }

    #[tokio::test]
    async fn readers_refuse_writes_and_close_is_final() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        let err = db.read(|c| -> Result<(), DbError> { Ok(c.execute_batch("CREATE TABLE x (v)")?) }).await;
        assert!(err.is_err(), "reader connections are query_only");
        let closer = db.clone();
        tokio::task::spawn_blocking(move || closer.close()).await.expect("join");
        assert!(matches!(db.read(|_| Ok::<(), DbError>(())).await, Err(DbError::Closed)));
    }
}
