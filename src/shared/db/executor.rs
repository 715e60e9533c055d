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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::open::{self, Role};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Msg {
    Run(Job),
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
}

/// A cheap-to-clone handle to the executor threads.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Sender<Msg>,
    readers: Sender<Msg>,
    reader_count: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Db {
    /// Opens one writer and `readers` reader connections on `path`, each on its own thread.
    /// Connections are opened here, synchronously, so a bad path fails the caller at once.
    pub fn open(path: &Path, readers: usize) -> Result<Db, DbError> {
        let readers = readers.max(1);
        let opened = |role| open::open(path, role).map_err(|source| DbError::Open { path: path.to_owned(), source });
        let writer_conn = opened(Role::Writer)?;
        let reader_conns = (0..readers).map(|_| opened(Role::Reader)).collect::<Result<Vec<_>, _>>()?;

        let (writer_tx, writer_rx) = crossbeam_channel::unbounded();
        let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
        let mut threads = Vec::with_capacity(readers + 1);
        threads.push(spawn("vb-db-writer", writer_conn, writer_rx, true)?);
        for (i, conn) in reader_conns.into_iter().enumerate() {
            threads.push(spawn(&format!("vb-db-reader-{i}"), conn, reader_rx.clone(), false)?);
        }
        Ok(Db {
            inner: Arc::new(Inner {
                writer: writer_tx,
                readers: reader_tx,
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

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction on the writer; commits if it returns
    /// `Ok`, rolls back otherwise — and the caller's error comes back intact.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(in_immediate_tx(conn, f));
        });
        self.inner.writer.send(Msg::Run(job)).map_err(|_| E::from(DbError::Closed))?;
        rx.await.map_err(|_| E::from(DbError::Closed))?
    }

    /// Stops every thread after the jobs already queued, checkpoints the WAL and closes the
    /// connections. Blocks: call it from a blocking context. Idempotent.
    pub fn close(&self) {
        let _ = self.inner.writer.send(Msg::Stop);
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

fn in_immediate_tx<T, E: From<DbError>>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let sqlite = |e| E::from(DbError::Sqlite(e));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite)?;
    let out = f(&tx)?;
    tx.commit().map_err(sqlite)?;
    Ok(out)
}

fn spawn(name: &str, mut conn: Connection, rx: Receiver<Msg>, is_writer: bool) -> Result<JoinHandle<()>, DbError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Run(job) => {
                        // A panicking job must not take the thread (and its connection) with
                        // it; its caller sees the reply channel close and gets an error.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn))).is_err() {
                            tracing::error!(thread = ?std::thread::current().name(), "a database job panicked");
                            if is_writer && !conn.is_autocommit() {
                                let _ = conn.execute_batch("ROLLBACK");
                            }
                        }
                    }
                    Msg::Stop => break,
                }
            }
            if is_writer {
                // PASSIVE never waits on other processes' readers; the last process out of a
                // cluster still leaves a short WAL, and SQLite checkpoints it on the next open.
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE); PRAGMA optimize;") {
                    tracing::warn!(error = %e, "checkpoint on close failed");
                }
            }
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing a database connection failed");
            }
        })
        .map_err(DbError::Thread)
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
