//! The `vb-logs` thread: sleeps [`BATCH_INTERVAL`](super::BATCH_INTERVAL) (or until a control
//! message), then takes every buffered request and queued application entry, serialises the lot into one buffer, inserts the
//! rows into `_logs` in one `BEGIN IMMEDIATE` transaction (several rows per statement) and
//! appends the same items to the day's archive file.
//!
//! A batch that SQLite refuses (the file locked past the busy timeout, a full disk) is dropped
//! from the table and counted, never retried forever: the archive still has it. The archive
//! and the table fail independently.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::{Connection, TransactionBehavior};

use super::archive::Appender;
use super::store::{self, RowRef};
use super::{shards, AppEntry, Control, RequestView, BATCH_INTERVAL, MAX_BATCH_ROWS};

/// WAL written between automatic checkpoints: this connection writes on its own, with no
/// executor checkpointer beside it, so it must checkpoint as it goes or the WAL only grows.
/// Eight times SQLite's default: a page that several batches touch (the last leaf and the
/// interior pages of each B-tree) is copied into the database once per checkpoint, and each
/// checkpoint's fsyncs are paid an eighth as often (under a steady request load the table's
/// bytes reaching the disk fell by about a tenth).
const WAL_AUTOCHECKPOINT_BYTES: i64 = 32 * 1024 * 1024;

fn open(path: &Path) -> rusqlite::Result<Connection> {
    store::create_file(path)?;
    let conn = crate::shared::db::open::open(path, crate::shared::db::open::Role::Writer)?;
    let page_bytes: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA wal_autocheckpoint={};", (WAL_AUTOCHECKPOINT_BYTES / page_bytes.max(512)).max(1)))?;
    store::create_schema(&conn)?;
    Ok(conn)
}

pub(super) fn run(db_path: &Path, archive_dir: PathBuf, worker_id: u32, entries: Receiver<Box<AppEntry>>, control: Receiver<Control>) {
    let mut conn = match open(db_path) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(worker_id, path = %db_path.display(), error = %e, "opening the logs database failed; logs go to the archive only");
            None
        }
    };
    let mut archive = Appender::new(archive_dir);
    let mut batch = Batch::default();
    // Set while a restore swaps `auxiliary.db`: rows are held, nothing touches the file.
    let mut paused = false;
    loop {
        // Entries never wake this thread (a wake per request cost both sides a futex call and
        // a context switch); it looks at the queue once per interval or when told to.
        let woken = control.recv_deadline(Instant::now() + BATCH_INTERVAL);
        let mut controls: Vec<Control> = Vec::new();
        let stop = match woken {
            Ok(c) => {
                controls.push(c);
                controls.extend(control.try_iter());
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        // Everything queued before a flush was asked for is in the queue now: take it all.
        take_queued(&entries, &mut batch);
        if !paused {
            write(&mut conn, &mut archive, &mut batch, worker_id);
        }
        for c in controls {
            match c {
                Control::Flush(ack) => {
                    let _ = ack.send(());
                }
                Control::Nudge => {}
                Control::Pause(ack) => {
                    // Dropping the connection closes it: the restore may now move the files.
                    conn = None;
                    paused = true;
                    let _ = ack.send(());
                }
                Control::Resume => {
                    paused = false;
                    conn = match open(db_path) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::error!(worker_id, path = %db_path.display(), error = %e, "reopening the logs database after a restore failed; logs go to the archive only");
                            None
                        }
                    };
                    take_queued(&entries, &mut batch);
                    write(&mut conn, &mut archive, &mut batch, worker_id);
                }
            }
        }
        if stop {
            break;
        }
    }
    take_queued(&entries, &mut batch);
    write(&mut conn, &mut archive, &mut batch, worker_id);
}

fn take_queued(entries: &Receiver<Box<AppEntry>>, batch: &mut Batch) {
    let mut spare = std::mem::take(&mut batch.spare);
    let broken = shards::drain(&mut spare, |e| batch.push_request(e));
    batch.spare = spare;
    if broken > 0 {
        super::DROPPED.fetch_add(broken, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(entries = broken, "request log entries could not be decoded; dropped");
    }
    for entry in entries.try_iter() {
        batch.push_app(&entry);
    }
}

/// Byte ranges of one row's columns in [`Batch::text`].
struct Spans {
    id: Range<usize>,
    level: i32,
    message: Range<usize>,
    data: Range<usize>,
    created: Range<usize>,
}

/// Rows serialised into one growing buffer (kept between batches): no allocation per row.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    rows: Vec<Spans>,
    ids: Ids,
    /// The `YYYY-MM-DD HH:MM:SS` of the last second formatted, and that second.
    second: Option<(i64, [u8; 19])>,
    /// The empty buffer swapped into the request shards, kept between batches.
    spare: Vec<u8>,
}

impl Batch {
    fn push_request(&mut self, e: &RequestView<'_>) {
        let id = self.push_id();
        let message = self.span(|out| request_message_into(out, e));
        let data = self.span(|out| request_data_into(out, e));
        let created = self.push_created_ms(e.created_ms);
        self.rows.push(Spans { id, level: e.level(), message, data, created });
    }

    fn push_app(&mut self, e: &AppEntry) {
        let id = self.push_id();
        let message = self.span(|out| out.extend_from_slice(e.message.as_bytes()));
        // Serialising a map into a Vec cannot fail.
        let data = self.span(|out| {
            let _ = serde_json::to_writer(out, &e.data);
        });
        let created = self.push_created_ms(super::epoch_ms(e.created));
        self.rows.push(Spans { id, level: e.level, message, data, created });
    }

    fn span(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
        let start = self.text.len();
        fill(&mut self.text);
        start..self.text.len()
    }

    fn push_id(&mut self) -> Range<usize> {
        let start = self.text.len();
        self.ids.next_into(&mut self.text);
        start..self.text.len()
    }

    /// PocketBase's `created` text (`2024-01-02 15:04:05.000Z`); the date and time part is
    /// formatted once per second.
    fn push_created_ms(&mut self, ms: i64) -> Range<usize> {
        let (second, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        let prefix = match self.second {
            Some((s, p)) if s == second => p,
            _ => {
                let mut p = [b'0'; 19];
                let full = crate::worker::records::values::datetime::format_datetime(second * 1000);
                if let Some(head) = full.as_bytes().get(..19) {
                    p.copy_from_slice(head);
                }
                self.second = Some((second, p));
                p
            }
        };
        let start = self.text.len();
        self.text.extend_from_slice(&prefix);
        let milli = u8::try_from(milli / 100).unwrap_or(0);
        let rest = u8::try_from(ms.rem_euclid(100)).unwrap_or(0);
        self.text.extend_from_slice(&[b'.', b'0' + milli, b'0' + rest / 10, b'0' + rest % 10, b'Z']);
        start..self.text.len()
    }

    fn row(&self, s: &Spans) -> RowRef<'_> {
        let at = |r: &Range<usize>| self.text.get(r.clone()).unwrap_or_default();
        RowRef { id: at(&s.id), level: s.level, message: at(&s.message), data: at(&s.data), created: at(&s.created) }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }
}

/// Random bytes drawn per id from this pool: one `getrandom` per block, not per entry.
const ID_POOL_BYTES: usize = 4096;

/// PocketBase-style ids (15 of `[a-z0-9]`), uniform by rejection like `auth::random`.
struct Ids {
    pool: Vec<u8>,
    at: usize,
}

/// Leading characters of a log id that carry its time: the Unix milliseconds in base 36, digits
/// in ASCII order so ids sort by time (36^8 ms lasts until 2059). The rest stays random, and the
/// id keeps PocketBase's 15 characters of `[a-z0-9]`.
const ID_TIME_CHARS: usize = 8;
const TIME_DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl Default for Ids {
    fn default() -> Ids {
        Ids { pool: vec![0; ID_POOL_BYTES], at: ID_POOL_BYTES }
    }
}

impl Ids {
    #[cfg(test)]
    fn new() -> Ids {
        Ids::default()
    }

    #[cfg(test)]
    fn next(&mut self) -> String {
        let mut out = Vec::new();
        self.next_into(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends a new id (15 of `[a-z0-9]`) to `out`.
    fn next_into(&mut self, out: &mut Vec<u8>) {
        use crate::worker::auth::random::{ID_ALPHABET, ID_LENGTH};
        let limit = 256 - (256 % ID_ALPHABET.len());
        // The time first, so new ids land at the end of `_logs`'s primary-key index: random
        // ids scattered each batch's inserts over the whole index, and every touched page went
        // to the WAL again at each commit.
        let mut ms = u64::try_from(super::epoch_ms(std::time::SystemTime::now())).unwrap_or(0);
        let mut time = [b'0'; ID_TIME_CHARS];
        for digit in time.iter_mut().rev() {
            *digit = TIME_DIGITS.get(usize::try_from(ms % 36).unwrap_or(0)).copied().unwrap_or(b'0');
            ms /= 36;
        }
        out.extend_from_slice(&time);
        let mut left = ID_LENGTH - ID_TIME_CHARS;
        while left > 0 {
            if self.at >= self.pool.len() {
                if getrandom::getrandom(&mut self.pool).is_err() {
                    // The OS refusing randomness is not worth losing the entry over: the
                    // bytes already drawn are reused, the time prefix keeps ids apart.
                    self.pool.iter_mut().enumerate().for_each(|(i, b)| *b = b.wrapping_add(u8::try_from(i % 251).unwrap_or(0)));
                }
                self.at = 0;
            }
            let byte = usize::from(self.pool.get(self.at).copied().unwrap_or(0));
            self.at += 1;
            if byte < limit {
                if let Some(&c) = ID_ALPHABET.get(byte % ID_ALPHABET.len()) {
                    out.push(c);
                    left -= 1;
                }
            }
        }
    }
}

/// PocketBase's request `data` as JSON text, its keys in sorted order as Go marshals a map.
/// Written straight into one buffer: this runs once per request, so no map is built.
#[cfg(test)]
pub(super) fn request_data(e: &RequestView<'_>) -> String {
    let mut out = Vec::new();
    request_data_into(&mut out, e);
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
}

/// [`request_data`] appended to `out`.
fn request_data_into(out: &mut Vec<u8>, e: &RequestView<'_>) {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        out.extend_from_slice(if first { b"{\"" } else { b",\"" });
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let text = |out: &mut Vec<u8>, v: &str| {
        // Serialising a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    };
    key(out, "auth");
    text(out, e.auth);
    if let Some(id) = e.auth_id {
        key(out, "authId");
        text(out, id);
    }
    if let Some((error, details)) = e.failure {
        key(out, "details");
        // Serialised by the request thread from a JSON value.
        out.extend_from_slice(details.as_bytes());
        key(out, "error");
        text(out, error);
    }
    key(out, "execTime");
    let _ = serde_json::to_writer(&mut *out, &(e.exec_time_ns as f64 / 1_000_000.0));
    key(out, "method");
    text(out, e.method);
    key(out, "referer");
    text(out, e.referer);
    if let Some((_, remote)) = &e.ips {
        key(out, "remoteIP");
        ip(out, *remote);
    }
    key(out, "status");
    decimal(out, u32::from(e.status));
    key(out, "type");
    out.extend_from_slice(b"\"request\"");
    key(out, "url");
    text(out, e.url);
    key(out, "userAgent");
    text(out, e.user_agent);
    if let Some((user, _)) = &e.ips {
        key(out, "userIP");
        ip(out, *user);
    }
    out.push(b'}');
}

/// An address as a JSON string (empty without one). IPv4 by hand: `core::fmt` cost more than
/// the rest of the row's text.
fn ip(out: &mut Vec<u8>, addr: Option<std::net::IpAddr>) {
    use std::io::Write as _;
    out.push(b'"');
    match addr {
        Some(std::net::IpAddr::V4(v4)) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(out, u32::from(octet));
            }
        }
        Some(a) => {
            // Writing into a Vec cannot fail; an address needs no JSON escaping.
            let _ = write!(out, "{a}");
        }
        None => {}
    }
    out.push(b'"');
}

/// `n` in decimal digits.
fn decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// `METHOD url` with the URL percent-decoded, as PocketBase words the message.
#[cfg(test)]
pub(super) fn request_message(e: &RequestView<'_>) -> String {
    let mut out = Vec::new();
    request_message_into(&mut out, e);
    String::from_utf8(out).unwrap_or_default()
}

/// [`request_message`] appended to `out`; the URL as sent when decoding it is not UTF-8.
fn request_message_into(out: &mut Vec<u8>, e: &RequestView<'_>) {
    out.extend_from_slice(e.method.as_bytes());
    out.push(b' ');
    let url = e.url;
    let start = out.len();
    let bytes = url.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    if url.contains('%') && std::str::from_utf8(out.get(start..).unwrap_or_default()).is_err() {
        out.truncate(start);
        out.extend_from_slice(bytes);
    }
}

fn write(conn: &mut Option<Connection>, archive: &mut Appender, batch: &mut Batch, worker_id: u32) {
    if batch.rows.is_empty() {
        return;
    }
    let rows: Vec<RowRef<'_>> = batch.rows.iter().map(|s| batch.row(s)).collect();
    if let Some(c) = conn.as_mut() {
        for chunk in rows.chunks(MAX_BATCH_ROWS) {
            let stored = c.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
                store::insert_refs(&tx, chunk)?;
                tx.commit()
            });
            if let Err(e) = stored {
                tracing::warn!(worker_id, rows = chunk.len(), error = %e, "writing request logs to auxiliary.db failed; they are in the archive only");
            }
        }
    }
    archive.append_refs(&rows, worker_id);
    drop(rows);
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn ids_are_pocketbase_shaped_and_sort_by_time() {
        let mut ids = Ids::new();
        let first = ids.next();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later: Vec<String> = (0..50).map(|_| ids.next()).collect();
        for id in std::iter::once(&first).chain(&later) {
            assert_eq!(id.len(), 15, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
        }
        assert!(later.iter().all(|id| *id > first), "a later millisecond sorts after: {first} {later:?}");
        let tails: std::collections::HashSet<&str> = later.iter().map(|id| &id[ID_TIME_CHARS..]).collect();
        assert!(tails.len() > 40, "the rest stays random");
    }
    use super::super::RequestEntry;
    use std::time::{Duration, SystemTime};

    /// `e` as the log thread reads it: encoded as the request thread does, then decoded.
    fn view_of<'a>(e: &RequestEntry, buf: &'a mut Vec<u8>) -> RequestView<'a> {
        buf.clear();
        shards::encode(buf, e);
        shards::decode(buf).expect("a whole record").0
    }

    #[test]
    fn request_entries_take_pocketbase_shape() {
        let e = RequestEntry {
            created: SystemTime::UNIX_EPOCH,
            method: "GET".into(),
            text: super::super::RequestText::new("/api/nothere?x=%20y", "", "ua"),
            status: 404,
            exec_time: Duration::from_micros(1500),
            auth: String::new(),
            auth_id: None,
            ips: None,
            failure: Some(("File not found.".into(), Value::Null)),
        };
        let (mut buf, mut buf_all, mut buf_later) = (Vec::new(), Vec::new(), Vec::new());
        let with_all = RequestEntry { auth: "users".into(), auth_id: Some("u1".into()), ips: Some((Some([10, 0, 0, 1].into()), Some([127, 0, 0, 1].into()))), ..e.clone() };
        let all: Value = serde_json::from_str(&request_data(&view_of(&with_all, &mut buf_all))).expect("JSON");
        assert_eq!((all["authId"].as_str(), all["userIP"].as_str(), all["remoteIP"].as_str()), (Some("u1"), Some("10.0.0.1"), Some("127.0.0.1")));
        assert_eq!(all["url"], "/api/nothere?x=%20y");
        let v = view_of(&e, &mut buf);
        assert_eq!(request_message(&v), "GET /api/nothere?x= y");
        let data: Value = serde_json::from_str(&request_data(&v)).expect("JSON");
        let keys: Vec<&str> = data.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["auth", "details", "error", "execTime", "method", "referer", "status", "type", "url", "userAgent"]);
        assert_eq!(data["execTime"], 1.5);
        assert_eq!(data["status"], 404);
        assert_eq!(data["type"], "request");
        assert!(data.get("userIP").is_none() && data.get("authId").is_none(), "{data}");
        assert_eq!(data["details"], Value::Null);
        assert_eq!((e.level(), v.level()), (super::super::LEVEL_ERROR, super::super::LEVEL_ERROR));
        let mut batch = Batch::default();
        batch.push_request(&v);
        let row = batch.row(&batch.rows[0]);
        assert_eq!((row.message, row.created, row.level), (&b"GET /api/nothere?x= y"[..], &b"1970-01-01 00:00:00.000Z"[..], super::super::LEVEL_ERROR));
        assert_eq!(row.data, request_data(&v).as_bytes());
        let later = RequestEntry { created: SystemTime::UNIX_EPOCH + Duration::from_millis(86_400_000 + 3_723_045), ..e.clone() };
        batch.push_request(&view_of(&later, &mut buf_later));
        assert_eq!(batch.row(&batch.rows[1]).created, &b"1970-01-02 01:02:03.045Z"[..]);
        let mut out = Vec::new();
        for (addr, text) in [("0.0.0.0", "\"0.0.0.0\""), ("255.10.0.7", "\"255.10.0.7\""), ("::1", "\"::1\"")] {
            out.clear();
            ip(&mut out, Some(addr.parse().expect("address")));
            assert_eq!(String::from_utf8_lossy(&out), text);
        }
        let mut ids = Ids::new();
        let drawn: std::collections::HashSet<String> = (0..1000).map(|_| ids.next()).collect();
        assert_eq!(drawn.len(), 1000);
        assert!(drawn.iter().all(|id| id.len() == 15 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())));
    }
}
