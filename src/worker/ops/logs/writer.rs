//! The `vb-logs` thread: takes queued entries, serialises them, and every
//! [`BATCH_INTERVAL`](super::BATCH_INTERVAL) (or at [`MAX_BATCH_ROWS`](super::MAX_BATCH_ROWS),
//! or at a flush) inserts them into `_logs` in one `BEGIN IMMEDIATE` transaction and appends
//! them to the day's archive file.
//!
//! A batch that SQLite refuses (the file locked past the busy timeout, a full disk) is dropped
//! from the table and counted, never retried forever: the archive still has it. The archive
//! and the table fail independently.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, TransactionBehavior};
use serde_json::Value;

use super::archive::Appender;
use super::store::{self, Row};
use super::{AppEntry, Msg, RequestEntry, BATCH_INTERVAL, MAX_BATCH_ROWS};

/// SQLite's default automatic checkpoint, in pages: this connection writes on its own, with no
/// executor checkpointer beside it, so it must checkpoint as it goes or the WAL only grows.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 1000;

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = crate::shared::db::open::open(path, crate::shared::db::open::Role::Writer)?;
    conn.execute_batch(&format!("PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES};"))?;
    store::create_schema(&conn)?;
    Ok(conn)
}

pub(super) fn run(db_path: &Path, archive_dir: PathBuf, worker_id: u32, rx: Receiver<Msg>) {
    let mut conn = match open(db_path) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(worker_id, path = %db_path.display(), error = %e, "opening the logs database failed; logs go to the archive only");
            None
        }
    };
    let mut archive = Appender::new(archive_dir);
    let mut rows: Vec<Row> = Vec::new();
    let mut acks: Vec<Sender<()>> = Vec::new();
    let mut ids = Ids::new();
    // Set while a restore swaps `auxiliary.db`: rows are held, nothing touches the file.
    let mut paused = false;
    while let Ok(first) = rx.recv() {
        let mut control = Vec::new();
        take(first, &mut ids, &mut rows, &mut acks, &mut control);
        let deadline = Instant::now() + BATCH_INTERVAL;
        while acks.is_empty() && control.is_empty() && rows.len() < MAX_BATCH_ROWS {
            match rx.recv_deadline(deadline) {
                Ok(msg) => take(msg, &mut ids, &mut rows, &mut acks, &mut control),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        if !paused {
            write(&mut conn, &mut archive, &mut rows, worker_id);
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        for c in control {
            match c {
                Control::Pause(ack) => {
                    if !paused {
                        write(&mut conn, &mut archive, &mut rows, worker_id);
                    }
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
                    write(&mut conn, &mut archive, &mut rows, worker_id);
                }
            }
        }
    }
    write(&mut conn, &mut archive, &mut rows, worker_id);
}

/// A pause or resume around a restore, handled after the batch it arrived in.
enum Control {
    Pause(Sender<()>),
    Resume,
}

fn take(msg: Msg, ids: &mut Ids, rows: &mut Vec<Row>, acks: &mut Vec<Sender<()>>, control: &mut Vec<Control>) {
    match msg {
        Msg::Request(e) => rows.push(request_row(&e, ids.next())),
        Msg::App(e) => rows.push(app_row(&e, ids.next())),
        Msg::Flush(ack) => acks.push(ack),
        Msg::Pause(ack) => control.push(Control::Pause(ack)),
        Msg::Resume => control.push(Control::Resume),
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

impl Ids {
    fn new() -> Ids {
        Ids { pool: vec![0; ID_POOL_BYTES], at: ID_POOL_BYTES }
    }

    fn next(&mut self) -> String {
        use crate::worker::auth::random::{ID_ALPHABET, ID_LENGTH};
        let limit = 256 - (256 % ID_ALPHABET.len());
        let mut out = String::with_capacity(ID_LENGTH);
        // The time first, so new ids land at the end of `_logs`'s primary-key index: random
        // ids scattered each batch's inserts over the whole index, and every touched page went
        // to the WAL again at each commit.
        let mut ms = u64::try_from(super::epoch_ms(std::time::SystemTime::now())).unwrap_or(0);
        let mut time = [b'0'; ID_TIME_CHARS];
        for digit in time.iter_mut().rev() {
            *digit = TIME_DIGITS.get(usize::try_from(ms % 36).unwrap_or(0)).copied().unwrap_or(b'0');
            ms /= 36;
        }
        out.extend(time.iter().map(|&b| char::from(b)));
        while out.len() < ID_LENGTH {
            if self.at >= self.pool.len() {
                if getrandom::getrandom(&mut self.pool).is_err() {
                    // The OS refusing randomness is not worth losing the entry over.
                    return crate::worker::auth::random::new_id().unwrap_or_else(|_| format!("{:015x}", super::epoch_ms(std::time::SystemTime::now())));
                }
                self.at = 0;
            }
            let byte = usize::from(self.pool.get(self.at).copied().unwrap_or(0));
            self.at += 1;
            if byte < limit {
                if let Some(&c) = ID_ALPHABET.get(byte % ID_ALPHABET.len()) {
                    out.push(char::from(c));
                }
            }
        }
        out
    }
}

/// PocketBase's request `data` as JSON text, its keys in sorted order as Go marshals a map.
/// Written straight into one buffer: this runs once per request, so no map is built.
pub(super) fn request_data(e: &RequestEntry) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(256 + e.url.len() + e.user_agent.len() + e.referer.len());
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
    key(&mut out, "auth");
    text(&mut out, &e.auth);
    if let Some(id) = &e.auth_id {
        key(&mut out, "authId");
        text(&mut out, id);
    }
    if let Some((error, details)) = &e.failure {
        key(&mut out, "details");
        let _ = serde_json::to_writer(&mut out, details);
        key(&mut out, "error");
        text(&mut out, error);
    }
    key(&mut out, "execTime");
    let _ = serde_json::to_writer(&mut out, &(e.exec_time.as_secs_f64() * 1000.0));
    key(&mut out, "method");
    text(&mut out, &e.method);
    key(&mut out, "referer");
    text(&mut out, &e.referer);
    if let Some((_, remote)) = &e.ips {
        key(&mut out, "remoteIP");
        text(&mut out, remote);
    }
    key(&mut out, "status");
    out.extend_from_slice(e.status.to_string().as_bytes());
    key(&mut out, "type");
    out.extend_from_slice(b"\"request\"");
    key(&mut out, "url");
    text(&mut out, &e.url);
    key(&mut out, "userAgent");
    text(&mut out, &e.user_agent);
    if let Some((user, _)) = &e.ips {
        key(&mut out, "userIP");
        text(&mut out, user);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
}

/// `METHOD url` with the URL percent-decoded, as PocketBase words the message.
pub(super) fn request_message(e: &RequestEntry) -> String {
    let decoded = percent_decode(&e.url);
    format!("{} {decoded}", e.method)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
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
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

fn request_row(e: &RequestEntry, id: String) -> Row {
    Row {
        id,
        level: e.level(),
        message: request_message(e),
        data: request_data(e),
        created: store::datetime(e.created),
    }
}

fn app_row(e: &AppEntry, id: String) -> Row {
    Row { id, level: e.level, message: e.message.clone(), data: Value::Object(e.data.clone()).to_string(), created: store::datetime(e.created) }
}

fn write(conn: &mut Option<Connection>, archive: &mut Appender, rows: &mut Vec<Row>, worker_id: u32) {
    if rows.is_empty() {
        return;
    }
    if let Some(c) = conn.as_mut() {
        let stored = c.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
            store::insert(&tx, rows)?;
            tx.commit()
        });
        if let Err(e) = stored {
            tracing::warn!(worker_id, rows = rows.len(), error = %e, "writing request logs to auxiliary.db failed; they are in the archive only");
        }
    }
    archive.append(rows, worker_id);
    rows.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

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
    use std::time::{Duration, SystemTime};

    #[test]
    fn request_entries_take_pocketbase_shape() {
        let e = RequestEntry {
            created: SystemTime::UNIX_EPOCH,
            method: "GET".into(),
            url: "/api/nothere?x=%20y".into(),
            status: 404,
            exec_time: Duration::from_micros(1500),
            auth: String::new(),
            auth_id: None,
            ips: None,
            referer: String::new(),
            user_agent: "ua".into(),
            failure: Some(("File not found.".into(), Value::Null)),
        };
        let with_all = RequestEntry { auth: "users".into(), auth_id: Some("u1".into()), ips: Some(("10.0.0.1".into(), "127.0.0.1".into())), ..e.clone() };
        let all: Value = serde_json::from_str(&request_data(&with_all)).expect("JSON");
        assert_eq!((all["authId"].as_str(), all["userIP"].as_str(), all["remoteIP"].as_str()), (Some("u1"), Some("10.0.0.1"), Some("127.0.0.1")));
        assert_eq!(all["url"], "/api/nothere?x=%20y");
        assert_eq!(request_message(&e), "GET /api/nothere?x= y");
        let data: Value = serde_json::from_str(&request_data(&e)).expect("JSON");
        let keys: Vec<&str> = data.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["auth", "details", "error", "execTime", "method", "referer", "status", "type", "url", "userAgent"]);
        assert_eq!(data["execTime"], 1.5);
        assert_eq!(data["type"], "request");
        assert!(data.get("userIP").is_none() && data.get("authId").is_none(), "{data}");
        assert_eq!(data["details"], Value::Null);
        assert_eq!(request_row(&e, "x".into()).level, super::super::LEVEL_ERROR);
        let mut ids = Ids::new();
        let drawn: std::collections::HashSet<String> = (0..1000).map(|_| ids.next()).collect();
        assert_eq!(drawn.len(), 1000);
        assert!(drawn.iter().all(|id| id.len() == 15 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())));
    }
}
