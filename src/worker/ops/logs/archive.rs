//! The JSONL archive: every log item (the same object the API answers) as one line of
//! `<data>/logs/YYYY-MM-DD.jsonl`, the UTC day of its `created`. Files are never rotated or
//! deleted here; an operator removes them.
//!
//! Several workers append to the same file. Each file is opened with `O_APPEND`, and lines
//! leave in `write(2)` calls of whole lines only (a batch's lines, a new call started once one
//! holds [`MAX_WRITE_BYTES`]): with `O_APPEND` the kernel moves to the end and writes as one step,
//! so on a local filesystem two processes' writes never interleave inside a line. A write cut
//! short (a full disk) is not finished in pieces; the next write starts with a newline so
//! every later line still parses.
//!
//! [`search`] reads the archive back for `vaultbase logs`: lines go into an in-memory table of
//! `_logs`' shape, so `--filter` means exactly what it means to `GET /api/logs`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{params_from_iter, Connection};

#[cfg(test)]
use super::store::Row;
use super::store::{self, RowRef};
use crate::worker::records::query::SqlValue;

/// A write of several lines goes out once it holds this much (a batch's lines usually leave
/// in one or a few `write(2)` calls; a longer line is written whole).
pub const MAX_WRITE_BYTES: usize = 1024 * 1024;
/// Archive files are readable by the owner's group, not by everyone (they hold IPs).
const FILE_MODE: u32 = 0o640;
/// Lines loaded into the search table at a time.
const SEARCH_CHUNK_LINES: usize = 10_000;

/// The open file of the current day.
pub(super) struct Appender {
    dir: PathBuf,
    current: Option<(String, File)>,
    /// The last write was cut short: start the next one with a newline.
    cut_short: bool,
    /// The lines of the batch being written, reused from batch to batch.
    buffer: Vec<u8>,
}

/// Appends one archive line (the item as the API answers it) to `out`.
fn line_into(out: &mut Vec<u8>, r: &RowRef<'_>) {
    use std::io::Write as _;
    // The id and the time are `[a-z0-9]` and digits and punctuation: no escaping to do.
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(r.id);
    out.extend_from_slice(b"\",\"created\":\"");
    out.extend_from_slice(r.created);
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(r.data);
    out.extend_from_slice(b",\"message\":");
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(r.message));
    let _ = writeln!(out, ",\"level\":{}}}", r.level);
}

impl Appender {
    pub(super) fn new(dir: PathBuf) -> Appender {
        Appender { dir, current: None, cut_short: false, buffer: Vec::new() }
    }

    fn file(&mut self, day: &str) -> std::io::Result<&File> {
        // Reopened when the day changes, or when an operator removed the file.
        let reuse = matches!(&self.current, Some((d, _)) if d == day) && self.dir.join(format!("{day}.jsonl")).exists();
        if !reuse {
            std::fs::create_dir_all(&self.dir)?;
            let f = OpenOptions::new().create(true).append(true).mode(FILE_MODE).open(self.dir.join(format!("{day}.jsonl")))?;
            self.current = Some((day.to_owned(), f));
        }
        match &self.current {
            Some((_, f)) => Ok(f),
            None => Err(std::io::Error::other("no archive file")),
        }
    }

    /// Appends `rows` (in order) to their days' files.
    #[cfg(test)]
    pub(super) fn append(&mut self, rows: &[Row], worker_id: u32) {
        let refs: Vec<RowRef<'_>> = rows.iter().map(Row::as_ref).collect();
        self.append_refs(&refs, worker_id);
    }

    /// Appends `rows` (in order) to their days' files: one `write(2)` per day and per
    /// [`MAX_WRITE_BYTES`], the buffer kept for the next batch.
    pub(super) fn append_refs(&mut self, rows: &[RowRef<'_>], worker_id: u32) {
        let mut batch = std::mem::take(&mut self.buffer);
        let mut batch_day: &[u8] = b"";
        for r in rows {
            let day = r.created.get(..10).unwrap_or(b"unknown");
            let before = batch.len();
            if !batch.is_empty() && (day != batch_day || before >= MAX_WRITE_BYTES) {
                self.write(&String::from_utf8_lossy(batch_day), &batch, worker_id);
                batch.clear();
            }
            batch_day = day;
            line_into(&mut batch, r);
        }
        if !batch.is_empty() {
            self.write(&String::from_utf8_lossy(batch_day), &batch, worker_id);
        }
        batch.clear();
        // A burst's buffer is not kept for good.
        if batch.capacity() <= MAX_WRITE_BYTES * 2 {
            self.buffer = batch;
        }
    }

    fn write(&mut self, day: &str, lines: &[u8], worker_id: u32) {
        let prefixed;
        let bytes: &[u8] = if self.cut_short {
            prefixed = [&b"\n"[..], lines].concat();
            &prefixed
        } else {
            lines
        };
        let file = match self.file(day) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(worker_id, error = %e, "opening the log archive failed; these lines are not archived");
                return;
            }
        };
        loop {
            match nix::unistd::write(file.as_fd(), bytes) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(n) if n == bytes.len() => {
                    self.cut_short = false;
                    return;
                }
                Ok(n) => {
                    self.cut_short = self.cut_short || n > 0;
                    tracing::warn!(worker_id, written = n, len = bytes.len(), "a log archive write was cut short");
                    return;
                }
                Err(e) => {
                    tracing::warn!(worker_id, error = %e, "writing the log archive failed");
                    return;
                }
            }
        }
    }
}

/// Removes the day files of `dir` older than `keep_days` days before `now_ms` (a file whose
/// whole day lies before the cutoff); other files are left alone. Answers how many went.
pub fn prune(dir: &Path, keep_days: u32, now_ms: i64) -> std::io::Result<usize> {
    let cutoff_ms = now_ms.saturating_sub(i64::from(keep_days).saturating_mul(86_400_000));
    let cutoff = crate::worker::records::values::datetime::format_datetime(cutoff_ms);
    let cutoff_day = cutoff.get(..10).unwrap_or_default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(day) = name.strip_suffix(".jsonl") else { continue };
        let is_day = day.len() == 10 && day.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if is_day && day < cutoff_day {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The filter does not parse or names an unknown field (exit code 2).
    #[error("invalid filter: {0}")]
    BadFilter(String),
    #[error("invalid {flag} {value:?}: expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS[.sss]Z")]
    BadTime { flag: &'static str, value: String },
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// `--since`/`--until` as a stored datetime prefix; `until` of a bare date means its whole day.
fn bound(flag: &'static str, value: &str, end_of_day: bool) -> Result<String, SearchError> {
    let v = value.trim().replacen('T', " ", 1);
    let digits_at = |i: usize| v.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
    let date_ok = v.len() >= 10 && [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| digits_at(i)) && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    if !date_ok {
        return Err(SearchError::BadTime { flag, value: value.to_owned() });
    }
    if v.len() == 10 && end_of_day {
        return Ok(format!("{v} 23:59:59.999Z"));
    }
    Ok(v)
}

/// Calls `out` with every archived line under `dir` (oldest file first, lines in file order)
/// whose `created` is within `since..=until` and that `filter` matches. Returns how many
/// matched.
pub fn search(dir: &Path, since: Option<&str>, until: Option<&str>, filter: &str, mut out: impl FnMut(&str)) -> Result<u64, SearchError> {
    let since = since.map(|s| bound("--since", s, false)).transpose()?;
    let until = until.map(|u| bound("--until", u, true)).transpose()?;
    let (where_sql, params) = store::compile_filter(filter).map_err(|e| match e {
        store::QueryFailure::Bad(why) => SearchError::BadFilter(why),
        store::QueryFailure::Sqlite(e) => SearchError::Sqlite(e),
        store::QueryFailure::Corrupt(e) => SearchError::BadFilter(e.to_string()),
    })?;
    let conn = Connection::open_in_memory()?;
    conn.execute_batch("CREATE TABLE `_logs` (`id` TEXT, `level` INTEGER, `message` TEXT, `data` JSON, `created` TEXT, `line` TEXT);")?;
    let n = params.len();
    let select = format!(
        "SELECT line FROM `_logs` AS _logs WHERE ({where_sql}) AND (?{} IS NULL OR created >= ?{}) AND (?{} IS NULL OR created <= ?{}) ORDER BY rowid",
        n + 1,
        n + 1,
        n + 2,
        n + 2
    );
    let mut params = params;
    params.push(since.clone().map_or(SqlValue::Null, SqlValue::Text));
    params.push(until.clone().map_or(SqlValue::Null, SqlValue::Text));
    let mut files: Vec<(String, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let day = name.strip_suffix(".jsonl")?.to_owned();
                Some((day, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(SearchError::Io { path: dir.display().to_string(), source }),
    };
    files.sort();
    let mut matched = 0u64;
    for (day, path) in files {
        if since.as_deref().is_some_and(|s| day.as_str() < s.get(..10).unwrap_or(s)) || until.as_deref().is_some_and(|u| day.as_str() > u.get(..10).unwrap_or(u)) {
            continue;
        }
        let file = File::open(&path).map_err(|source| SearchError::Io { path: path.display().to_string(), source })?;
        let mut lines = BufReader::new(file).lines();
        loop {
            let mut chunk = Vec::with_capacity(SEARCH_CHUNK_LINES);
            for l in lines.by_ref().take(SEARCH_CHUNK_LINES) {
                chunk.push(l.map_err(|source| SearchError::Io { path: path.display().to_string(), source })?);
            }
            if chunk.is_empty() {
                break;
            }
            matched += search_chunk(&conn, &select, &params, &chunk, &mut out)?;
        }
    }
    Ok(matched)
}

fn search_chunk(conn: &Connection, select: &str, params: &[SqlValue], chunk: &[String], out: &mut impl FnMut(&str)) -> Result<u64, SearchError> {
    conn.execute("DELETE FROM `_logs`", [])?;
    {
        let mut insert = conn.prepare_cached("INSERT INTO `_logs` (id, level, message, data, created, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for l in chunk {
            // A line cut short by a full disk (or an empty one) is skipped, not fatal.
            let Ok(serde_json::Value::Object(item)) = serde_json::from_str::<serde_json::Value>(l) else { continue };
            let text = |k: &str| item.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let level = item.get("level").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let data = item.get("data").map(|d| d.to_string()).unwrap_or_else(|| "{}".into());
            insert.execute(rusqlite::params![text("id"), level, text("message"), data, text("created"), l])?;
        }
    }
    let mut stmt = conn.prepare_cached(select)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        out(&line);
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: u16, created: &str) -> Row {
        Row { id: id.into(), level: if status >= 400 { 8 } else { 0 }, message: "GET /".into(), data: format!("{{\"status\":{status}}}"), created: created.into() }
    }

    #[test]
    fn lines_go_to_their_day_and_are_found_by_filter_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Appender::new(dir.path().to_owned());
        a.append(&[row("a", 200, "2024-01-01 10:00:00.000Z"), row("b", 500, "2024-01-01 23:00:00.000Z"), row("c", 503, "2024-01-02 01:00:00.000Z")], 0);
        let day1 = std::fs::read_to_string(dir.path().join("2024-01-01.jsonl")).expect("day 1");
        assert_eq!(day1.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(day1.lines().next().unwrap_or_default()).expect("json line");
        assert_eq!(first["data"]["status"], 200);
        let found = |since: Option<&str>, until: Option<&str>, filter: &str| {
            let mut ids = Vec::new();
            search(dir.path(), since, until, filter, |l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("line");
                ids.push(v["id"].as_str().unwrap_or_default().to_owned());
            })
            .expect("search");
            ids
        };
        assert_eq!(found(None, None, "data.status >= 500"), vec!["b", "c"]);
        assert_eq!(found(None, Some("2024-01-01"), "data.status >= 500"), vec!["b"]);
        assert_eq!(found(Some("2024-01-02"), None, ""), vec!["c"]);
        assert!(matches!(search(dir.path(), None, None, "bad((", |_| {}), Err(SearchError::BadFilter(_))));
        assert!(matches!(search(dir.path(), Some("yesterday"), None, "", |_| {}), Err(SearchError::BadTime { .. })));

        std::fs::write(dir.path().join("notes.txt"), "kept").expect("other file");
        // 2024-01-03 12:00 with 1 day kept: the cutoff is 2024-01-02 12:00, so only the
        // whole day 2024-01-01 goes.
        let now_ms = 1_704_283_200_000;
        assert_eq!(prune(dir.path(), 1, now_ms).expect("prune"), 1);
        assert!(!dir.path().join("2024-01-01.jsonl").exists());
        assert!(dir.path().join("2024-01-02.jsonl").exists() && dir.path().join("notes.txt").exists());
    }
}
