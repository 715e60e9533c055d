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
//! milliseconds; beside it, it waits for no one and no one waits for it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::open::{self, Role};
use super::turns::Turns;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;
/// A write job runs inside the group's transaction and hands back whether it succeeded and
/// how to answer its caller once the group's fate is known.
/// It is given `Err(why)` instead of a transaction when the group could not run at all.
type WriteJob = Box<dyn for<'a, 'b> FnOnce(Result<&'a Transaction<'b>, &'a str>) -> Done + Send>;

/// The most writes one transaction carries: enough to amortise a commit under load, few
/// enough that one group's COMMIT never keeps many callers waiting.
pub const MAX_GROUP_JOBS: usize = 64;

/// Told `None` when the group committed, or why the job's work was lost.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

struct Done {
    ok: bool,
    answer: Answer,
}

enum Msg {
    Run(Job),
    Stop,
}

enum WriteMsg {
    Run(WriteJob),
    Stop,
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
    Commit(String),
}

/// The shortest time between two checkpoints while writes keep coming. Each copies only the
/// frames written since the last, so the WAL stays short without a checkpoint per commit.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

enum Checkpoint {
    Nudge,
    Stop,
}

/// A cheap-to-clone handle to the executor threads.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Sender<WriteMsg>,
    readers: Sender<Msg>,
    checkpointer: Sender<Checkpoint>,
    reader_count: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Db {
    /// Opens one writer and `readers` reader connections on `path`, each on its own thread.
    /// Connections are opened here, synchronously, so a bad path fails the caller at once.
    pub fn open(path: &Path, readers: usize) -> Result<Db, DbError> {
        Db::open_with_turns(path, readers, None)
    }

    /// [`Db::open`] for a process that shares the file with other writing processes (cluster
    /// workers): its writer takes turns at the write lock with theirs through the counters
    /// file `turns` (see [`super::turns`]).
    pub fn open_shared(path: &Path, readers: usize, turns: &Path) -> Result<Db, DbError> {
        let turns = Turns::open(turns).map_err(DbError::Turns)?;
        Db::open_with_turns(path, readers, Some(turns))
    }

    fn open_with_turns(path: &Path, readers: usize, turns: Option<Turns>) -> Result<Db, DbError> {
        let readers = readers.max(1);
        let opened = |role| open::open(path, role).map_err(|source| DbError::Open { path: path.to_owned(), source });
        let writer_conn = opened(Role::Writer)?;
        let checkpoint_conn = opened(Role::Writer)?;
        let reader_conns = (0..readers).map(|_| opened(Role::Reader)).collect::<Result<Vec<_>, _>>()?;

        let (writer_tx, writer_rx) = crossbeam_channel::unbounded();
        let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
        // One pending nudge is enough: the checkpointer copies everything there is.
        let (checkpoint_tx, checkpoint_rx) = crossbeam_channel::bounded(1);
        let mut threads = Vec::with_capacity(readers + 2);
        threads.push(spawn_writer(writer_conn, writer_rx, checkpoint_tx.clone(), turns)?);
        threads.push(spawn_checkpointer(checkpoint_conn, checkpoint_rx)?);
        for (i, conn) in reader_conns.into_iter().enumerate() {
            threads.push(spawn_reader(&format!("vb-db-reader-{i}"), conn, reader_rx.clone())?);
        }
        Ok(Db {
            inner: Arc::new(Inner {
                writer: writer_tx,
                readers: reader_tx,
                checkpointer: checkpoint_tx,
                reader_count: readers,
                threads: Mutex::new(threads),
            }),
        })
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
            let _ = tx.send(f(conn));
        });
        self.inner.readers.send(Msg::Run(job)).map_err(|_| E::from(DbError::Closed))?;
        rx.await.map_err(|_| E::from(DbError::Closed))?
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
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |t| {
            let out = match t {
                Ok(t) => f(t),
                Err(why) => Err(E::from(DbError::Commit(why.to_owned()))),
            };
            Done {
                ok: out.is_ok(),
                answer: Box::new(move |lost: Option<&str>| {
                    let reply = match (out, lost) {
                        (Ok(_), Some(why)) => Err(E::from(DbError::Commit(why.to_owned()))),
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
        self.inner.writer.send(WriteMsg::Run(job)).map_err(|_| E::from(DbError::Closed))?;
        rx.await.map_err(|_| E::from(DbError::Closed))?
    }

    /// Stops every thread after the jobs already queued, checkpoints the WAL and closes the
    /// connections. Blocks: call it from a blocking context. Idempotent.
    pub fn close(&self) {
        let _ = self.inner.writer.send(WriteMsg::Stop);
        let _ = self.inner.checkpointer.send(Checkpoint::Stop);
        for _ in 0..self.inner.reader_count {
            let _ = self.inner.readers.send(Msg::Stop);
        }
        let threads = match self.inner.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

fn spawn_reader(name: &str, conn: Connection, rx: Receiver<Msg>) -> Result<JoinHandle<()>, DbError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut conn = conn;
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Run(job) => {
                        // A panicking job must not take the thread (and its connection) with
                        // it; its caller sees the reply channel close and gets an error.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn))).is_err() {
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
) -> Result<JoinHandle<()>, DbError> {
    std::thread::Builder::new()
        .name("vb-db-writer".to_owned())
        .spawn(move || {
            let mut conn = conn;
            let mut group: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP_JOBS);
            'serve: while let Ok(first) = rx.recv() {
                let mut stop = false;
                match first {
                    WriteMsg::Run(job) => group.push(job),
                    WriteMsg::Stop => break,
                }
                // Only what is already queued: waiting for company would add latency to a
                // lone write.
                while group.len() < MAX_GROUP_JOBS {
                    match rx.try_recv() {
                        Ok(WriteMsg::Run(job)) => group.push(job),
                        Ok(WriteMsg::Stop) => {
                            stop = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_group(&mut conn, &mut group, turns.as_ref());
                // Full means a nudge is already pending.
                let _ = checkpoint.try_send(Checkpoint::Nudge);
                if stop {
                    break 'serve;
                }
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

fn spawn_checkpointer(conn: Connection, rx: Receiver<Checkpoint>) -> Result<JoinHandle<()>, DbError> {
    std::thread::Builder::new()
        .name("vb-db-checkpoint".to_owned())
        .spawn(move || {
            // Whether writes happened since the last checkpoint started.
            let mut due = false;
            'serve: loop {
                if !due && !matches!(rx.recv(), Ok(Checkpoint::Nudge)) {
                    break;
                }
                due = false;
                // PASSIVE: copies what it can without waiting for readers or writers (of this
                // or any other process); what is left goes with the next round.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
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

fn close(conn: Connection) {
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing a database connection failed");
    }
}

/// Runs `jobs` (drained) in as few transactions as possible: normally one; a new one only if
/// SQLite itself ended the transaction under a job (e.g. a full disk), whose whole group so far
/// is then reported lost.
fn run_group(conn: &mut Connection, jobs: &mut Vec<WriteJob>, turns: Option<&Turns>) {
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
                let why = format!("starting the transaction: {e}");
                for job in pending.by_ref() {
                    fail_unrun(job, &why);
                }
                return;
            }
        };
        let mut done: Vec<Done> = Vec::new();
        let mut broken = None;
        for job in pending.by_ref() {
            match run_in_savepoint(&tx, job) {
                Ok(d) => done.push(d),
                Err(why) => {
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
            None => tx.commit().err().map(|e| format!("commit: {e}")),
        };
        // The lock is free again: the next process in line may go before the answers below.
        end_turn();
        if let Some(why) = &lost {
            tracing::error!(jobs = done.len(), error = %why, "a write group did not commit");
        }
        for d in done {
            (d.answer)(lost.as_deref());
        }
    }
}

/// One job in its own savepoint. `Err` means the enclosing transaction can no longer be trusted
/// (SQLite rolled it back or the savepoint could not be undone); the job has been answered.
fn run_in_savepoint(tx: &Transaction<'_>, job: WriteJob) -> Result<Done, String> {
    if let Err(e) = tx.execute_batch("SAVEPOINT vb_job") {
        let why = format!("opening a savepoint: {e}");
        fail_unrun(job, &why);
        return Err(why);
    }
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(tx))));
    if tx.is_autocommit() {
        // SQLite abandoned the transaction (an I/O error, a full disk): nothing of the group
        // so far survives, and this job's answer says so.
        let why = "the transaction was rolled back by SQLite".to_owned();
        if let Ok(d) = ran {
            (d.answer)(Some(&why));
        }
        return Err(why);
    }
    let kept = match &ran {
        Ok(d) => d.ok,
        Err(_) => {
            tracing::error!("a database write job panicked");
            false
        }
    };
    let end = if kept { "RELEASE vb_job" } else { "ROLLBACK TO vb_job; RELEASE vb_job" };
    if let Err(e) = tx.execute_batch(end) {
        let why = format!("ending a savepoint: {e}");
        if let Ok(d) = ran {
            (d.answer)(Some(&why));
        }
        return Err(why);
    }
    // A panicked job has no answer to give: its reply channel was dropped in the unwind,
    // which fails its caller.
    Ok(ran.unwrap_or_else(|_| Done { ok: false, answer: Box::new(|_| ()) }))
}

/// Answers a job that could not run with why.
fn fail_unrun(job: WriteJob, why: &str) {
    (job(Err(why)).answer)(Some(why));
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Occupies the writer with a job that waits for the returned sender, so that jobs sent
    /// meanwhile queue up and run as one group. Returns once the holding job is running.
    async fn hold_writer(db: &Db) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<(), DbError>>) {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel::<()>();
        let db = db.clone();
        let gate = tokio::spawn(async move {
            db.write(move |_| -> Result<(), DbError> {
                let _ = started_tx.send(());
                hold.recv().map_err(|_| DbError::Closed)
            })
            .await
        });
        started.await.expect("the holding job runs");
        (release, gate)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_commits_its_successes_and_rolls_back_only_its_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db"), 1).expect("open");
        db.write(|tx| -> Result<(), DbError> { Ok(tx.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")?) }).await.expect("create");
        // Hold the writer until every job below is queued, so they run as one group.
        let (release, gate) = hold_writer(&db).await;
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
        while db.inner.writer.len() < JOBS as usize {
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
        let (release, gate) = hold_writer(&db).await;
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
        while db.inner.writer.len() < 3 {
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
