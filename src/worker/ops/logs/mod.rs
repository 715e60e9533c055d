//! Request and application logs, in PocketBase's layout: rows of `_logs` in
//! `<data>/auxiliary.db` (`id`, `level`, `message`, `data` JSON, `created`) and, beside them,
//! an archive of the same items as JSON lines, one file per UTC day under `<data>/logs/`.
//!
//! A request never writes a log itself: it appends its [`RequestEntry`], encoded as bytes, to
//! its thread's buffer (see `shards`) and goes on; application logs go to a bounded queue.
//! Neither wakes anyone: one `vb-logs` thread per process sleeps [`BATCH_INTERVAL`] (or until
//! a control message: flush, pause, resume, or a nudge when a buffer is filling up), then takes
//! everything buffered and queued. It owns its own connection to `auxiliary.db` — a separate file, so log
//! writes never contend with data writes — writes the batch in one transaction and appends the
//! same items to the day's archive file (see `writer`). [`flush`] writes out everything queued
//! so far; the worker calls it once its in-flight requests have finished, so a drain loses
//! nothing. In a cluster each worker has its own thread and connection to the same WAL-mode
//! file.
//!
//! What is logged follows `settings.logs` as the requests last read it (see [`Policy`]):
//! `maxDays = 0` turns persisted logs off, `minLevel` drops entries below it, `logIP` and
//! `logAuthId` decide whether those keys are kept. This module must not read HTTP types; the
//! HTTP edge (`worker::http::access`) builds the entries.

pub mod archive;
pub mod layer;
mod shards;
pub mod store;
mod writer;

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Sender, TrySendError};
use serde_json::{Map, Value};

use crate::shared::db::{Db, DbError};
use crate::worker::settings::Logs as LogSettings;

/// slog's levels, as PocketBase stores them.
pub const LEVEL_DEBUG: i32 = -4;
pub const LEVEL_INFO: i32 = 0;
pub const LEVEL_WARN: i32 = 4;
pub const LEVEL_ERROR: i32 = 8;

/// Application log entries the queue holds before new ones are dropped (and counted).
const QUEUE_ENTRIES: usize = 65_536;
/// Queued application entries at which the sender nudges the log thread instead of letting it
/// sleep out its interval (a burst, not the steady state).
const NUDGE_AT_ENTRIES: usize = QUEUE_ENTRIES / 4;
/// Control messages (flush, pause, resume, nudge) waiting at most.
const CONTROL_ENTRIES: usize = 64;
/// How long entries gather before the log thread writes them (bounds how late a row appears).
pub const BATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Most rows written in one transaction. A batch normally goes in whole: each commit rewrites
/// the partly filled last pages of all five B-trees (32 KiB each), so at 40k requests/s
/// transactions of 2,000 rows wrote a third more bytes per row than one per interval. The cap
/// only bounds how long a burst holds `auxiliary.db`'s write lock (about 3 µs a row).
pub const MAX_BATCH_ROWS: usize = 50_000;
/// How long [`flush`] waits for the log thread.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Reader connections on `auxiliary.db` per worker (the logs API is a superuser tool).
const READERS: usize = 1;

/// The file name of the logs database inside the data dir (PocketBase's).
pub const AUX_DB_FILE: &str = "auxiliary.db";
/// The directory of the JSONL archive inside the data dir.
pub const ARCHIVE_DIR: &str = "logs";

pub fn aux_db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(AUX_DB_FILE)
}

pub fn archive_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(ARCHIVE_DIR)
}

/// One finished request, as the HTTP edge saw it. Encoded as bytes on the request thread,
/// formatted as a row on the log thread.
#[derive(Debug, Clone)]
pub struct RequestEntry {
    pub created: SystemTime,
    /// Borrowed for the standard methods, so they cost no allocation.
    pub method: Cow<'static, str>,
    /// The request target, referer and user agent.
    pub text: RequestText,
    pub status: u16,
    pub exec_time: Duration,
    /// The auth collection's name, or empty for a guest.
    pub auth: String,
    /// Set only when `logs.logAuthId` is on and the request was authenticated.
    pub auth_id: Option<String>,
    /// `(userIP, remoteIP)`, formatted on the log thread (`None` inside: no address, logged as
    /// empty); `None` when `logs.logIP` is off.
    pub ips: Option<(Option<IpAddr>, Option<IpAddr>)>,
    /// `(error, details)` of a 4xx/5xx answer.
    pub failure: Option<(String, Value)>,
}

/// The request target as sent (path and query, still percent-encoded), the referer and the
/// user agent, held in one buffer: one allocation per logged request instead of three, and
/// one free on the log thread.
#[derive(Debug, Clone, Default)]
pub struct RequestText {
    buf: String,
    url_end: usize,
    referer_end: usize,
}

impl RequestText {
    pub fn new(url: &str, referer: &str, user_agent: &str) -> RequestText {
        let mut buf = String::with_capacity(url.len() + referer.len() + user_agent.len());
        buf.push_str(url);
        buf.push_str(referer);
        buf.push_str(user_agent);
        RequestText { buf, url_end: url.len(), referer_end: url.len() + referer.len() }
    }

    pub fn url(&self) -> &str {
        self.buf.get(..self.url_end).unwrap_or_default()
    }

    pub fn referer(&self) -> &str {
        self.buf.get(self.url_end..self.referer_end).unwrap_or_default()
    }

    pub fn user_agent(&self) -> &str {
        self.buf.get(self.referer_end..).unwrap_or_default()
    }
}

impl RequestEntry {
    /// PocketBase logs every 4xx and 5xx as an error, anything else as info.
    pub fn level(&self) -> i32 {
        if self.status >= 400 {
            LEVEL_ERROR
        } else {
            LEVEL_INFO
        }
    }
}

/// A finished request as the log thread reads it back: borrowed from the buffer it was
/// encoded into.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub created_ms: i64,
    pub method: &'a str,
    pub url: &'a str,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub status: u16,
    pub exec_time_ns: u64,
    pub auth: &'a str,
    pub auth_id: Option<&'a str>,
    pub ips: Option<(Option<IpAddr>, Option<IpAddr>)>,
    /// `(error, details as JSON text)` of a 4xx/5xx answer.
    pub failure: Option<(&'a str, &'a str)>,
}

impl RequestView<'_> {
    /// As [`RequestEntry::level`].
    pub fn level(&self) -> i32 {
        if self.status >= 400 {
            LEVEL_ERROR
        } else {
            LEVEL_INFO
        }
    }
}

/// An application log line (`$app.logger()`): any level, a message and free data.
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub created: SystemTime,
    pub level: i32,
    pub message: String,
    pub data: Map<String, Value>,
}

/// What wakes the log thread before its interval is up.
enum Control {
    /// Answered once every entry queued before it is written.
    Flush(Sender<()>),
    /// A restore is about to swap `auxiliary.db`: write what is queued, close the connection,
    /// answer, and hold new entries until [`Control::Resume`].
    Pause(Sender<()>),
    /// Reopen `auxiliary.db` (the restored file) and write what was held.
    Resume,
    /// The queue is filling up: write now rather than at the end of the interval.
    Nudge,
}

/// The two queues to the log thread: application entries (never waking it) and control
/// messages. Requests go through `shards`.
struct Queues {
    entries: Sender<Box<AppEntry>>,
    control: Sender<Control>,
}

/// What `settings.logs` asks of the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `maxDays > 0`: PocketBase writes no logs at all with 0.
    pub enabled: bool,
    pub min_level: i32,
    pub log_ip: bool,
    pub log_auth_id: bool,
}

impl Policy {
    pub fn of(settings: &LogSettings) -> Policy {
        Policy { enabled: settings.max_days > 0, min_level: settings.min_level, log_ip: settings.log_ip, log_auth_id: settings.log_auth_id }
    }

    /// Whether an entry at `level` is kept.
    pub fn keeps(&self, level: i32) -> bool {
        self.enabled && level >= self.min_level
    }
}

/// The queue to this process's log thread, once it runs.
static QUEUE: OnceLock<Queues> = OnceLock::new();
/// Entries dropped because the queue was full or the thread could not start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The policy application logs are filtered by: the one the last request read (application
/// logs have no settings at hand), PocketBase's defaults until then.
static APP_ENABLED: AtomicBool = AtomicBool::new(true);
static APP_MIN_LEVEL: AtomicI32 = AtomicI32::new(LEVEL_INFO);

/// Starts this process's log thread (once; later calls do nothing). The thread opens
/// `auxiliary.db` itself, so nothing blocks the caller.
pub fn start(data_dir: &Path, worker_id: u32) {
    if QUEUE.get().is_some() {
        return;
    }
    let (entries, entries_rx) = bounded(QUEUE_ENTRIES);
    let (control, control_rx) = bounded(CONTROL_ENTRIES);
    let db_path = aux_db_path(data_dir);
    let archive = archive_dir(data_dir);
    let spawned = std::thread::Builder::new().name("vb-logs".into()).spawn(move || writer::run(&db_path, archive, worker_id, entries_rx, control_rx));
    match spawned {
        Ok(_) => {
            let _ = QUEUE.set(Queues { entries, control });
        }
        Err(e) => tracing::error!(worker_id, error = %e, "starting the logs thread failed; request logs are not kept"),
    }
}

fn send(entry: Box<AppEntry>) {
    let Some(queue) = QUEUE.get() else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match queue.entries.try_send(entry) {
        Ok(()) => {
            // Exactly at the mark, so one request of a burst sends the nudge, not all of them.
            if queue.entries.len() == NUDGE_AT_ENTRIES {
                let _ = queue.control.try_send(Control::Nudge);
            }
        }
        // Never wait on a request thread: a full queue means the disk is far behind.
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Hands a finished request to the log thread (the caller has applied the [`Policy`]).
pub fn record_request(entry: &RequestEntry) {
    let Some(queue) = QUEUE.get() else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match shards::push(entry) {
        shards::Pushed::Kept => {}
        shards::Pushed::KeptNudge => {
            let _ = queue.control.try_send(Control::Nudge);
        }
        // Never wait on a request thread: a full buffer means the disk is far behind.
        shards::Pushed::Dropped => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Remembers the policy the request path read, for application logs.
pub fn note_policy(policy: Policy) {
    // Stored only when it changed: a store per request would bounce the cache line between
    // the cores serving requests.
    if APP_ENABLED.load(Ordering::Relaxed) != policy.enabled {
        APP_ENABLED.store(policy.enabled, Ordering::Relaxed);
    }
    if APP_MIN_LEVEL.load(Ordering::Relaxed) != policy.min_level {
        APP_MIN_LEVEL.store(policy.min_level, Ordering::Relaxed);
    }
}

/// Queues an application log entry (`$app.logger().info(…)`), PocketBase's shape: no
/// `type`, the message as given, `data` the key/value pairs.
pub fn app_log(level: i32, message: &str, data: Map<String, Value>) {
    if !APP_ENABLED.load(Ordering::Relaxed) || level < APP_MIN_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    send(Box::new(AppEntry { created: SystemTime::now(), level, message: message.to_owned(), data }));
}

/// Writes out every entry queued so far (bounded wait). Call once the requests are done.
pub fn flush() {
    let Some(queue) = QUEUE.get() else { return };
    let (ack, done) = bounded(1);
    if queue.control.send_timeout(Control::Flush(ack), FLUSH_TIMEOUT).is_ok() {
        let _ = done.recv_timeout(FLUSH_TIMEOUT);
    }
}

/// Closes this process's connection to `auxiliary.db` so a restore can swap the file (and its
/// `-wal`/`-shm`) from under it; entries logged meanwhile are held, not lost. Blocking, bounded.
pub fn pause() {
    let Some(queue) = QUEUE.get() else { return };
    let (ack, done) = bounded(1);
    if queue.control.send_timeout(Control::Pause(ack), FLUSH_TIMEOUT).is_ok() {
        let _ = done.recv_timeout(FLUSH_TIMEOUT);
    }
}

/// Reopens `auxiliary.db` after a restore (see [`pause`]).
pub fn resume() {
    if let Some(queue) = QUEUE.get() {
        // Blocking send: a Resume lost to a full queue would keep the logs closed for good.
        let _ = queue.control.send_timeout(Control::Resume, FLUSH_TIMEOUT);
    }
}

/// Entries dropped since start (queue full, thread missing).
pub fn dropped_entries() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Milliseconds since the epoch of `t`.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("opening {path}: {source}")]
    Open { path: String, source: DbError },
    #[error("the logs database could not be opened: {0}")]
    Task(String),
}

/// Read access to `auxiliary.db`, opened on first use (a worker that never serves the logs
/// API keeps no reader thread for it). Reads and deletes run on the executor's threads, never
/// on the async runtime.
pub struct LogStore {
    path: PathBuf,
    db: tokio::sync::OnceCell<Db>,
}

impl LogStore {
    pub fn new(data_dir: &Path) -> LogStore {
        LogStore { path: aux_db_path(data_dir), db: tokio::sync::OnceCell::new() }
    }

    /// The executor on `auxiliary.db`, with `_logs` created if it was not there yet.
    pub async fn db(&self) -> Result<&Db, LogsError> {
        self.db
            .get_or_try_init(|| async {
                let path = self.path.clone();
                let db = tokio::task::spawn_blocking(move || {
                    Db::open(&path, READERS).map_err(|source| LogsError::Open { path: path.display().to_string(), source })
                })
                .await
                .map_err(|e| LogsError::Task(e.to_string()))??;
                db.write(|tx| -> Result<(), LogsError> { Ok(store::create_schema(tx)?) }).await?;
                Ok(db)
            })
            .await
    }

    /// The executor, if it was opened: a restore pauses and resumes it with the data.
    pub fn opened(&self) -> Option<Db> {
        self.db.get().cloned()
    }

    /// Closes the executor if it was opened (drain).
    pub fn close(&self) {
        if let Some(db) = self.db.get() {
            db.close();
        }
    }
}

/// Deletes the entries older than `logs.maxDays` days (PocketBase's retention job; with
/// `maxDays = 0` nothing is being written and everything older than now goes), and, when
/// `VAULTBASE_LOG_ARCHIVE_DAYS` is set, the archive files older than that. Idempotent, so a
/// second run in the same period (another worker) only finds nothing to delete.
pub async fn cleanup(state: &crate::worker::state::AppState) -> Result<usize, LogsError> {
    let settings = state.settings.fresh(&state.db).await.map_err(|e| LogsError::Task(e.to_string()))?;
    let cutoff_ms = epoch_ms(SystemTime::now()) - settings.settings.logs.max_days.max(0).saturating_mul(86_400_000);
    let cutoff = crate::worker::records::values::datetime::format_datetime(cutoff_ms);
    let db = state.logs.db().await?;
    let deleted = db.write(move |tx| -> Result<usize, LogsError> { Ok(store::delete_before(tx, &cutoff)?) }).await?;
    let keep_days = state.config.log_archive_days;
    if keep_days > 0 {
        let dir = archive_dir(&state.config.data_dir);
        let now_ms = epoch_ms(SystemTime::now());
        let pruned = tokio::task::spawn_blocking(move || archive::prune(&dir, keep_days, now_ms)).await.map_err(|e| LogsError::Task(e.to_string()))?;
        match pruned {
            Ok(n) => tracing::debug!(removed = n, keep_days, "old log archive files removed"),
            Err(e) => tracing::warn!(error = %e, "removing old log archive files failed"),
        }
    }
    Ok(deleted)
}
