//! Logging: one JSON object per line on stderr, so a supervisor and its workers (which inherit
//! its stderr) produce one stream that journald or a file can take as is. Each line is
//! formatted whole and written with one `write(2)`, so lines from different processes never
//! interleave mid-line.
//!
//! Logging must never take a request or a database thread down with it, nor corrupt the log:
//! a line that cannot be written (a full disk under a log file, a closed pipe) is dropped
//! whole and counted, never retried in pieces and never turned into a panic (the formatter's
//! own fallback, `eprintln!`, panics when stderr fails, which killed whichever thread was
//! logging). When stderr is a regular file, the room for a line is reserved first
//! (`fallocate` past the end, size kept), so a filesystem that fills up refuses the whole line
//! instead of storing its first part; should a line still be cut short (another process took
//! the room in between), the next line starts with a newline, so every later line parses.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing_subscriber::fmt::MakeWriter;

use super::config::LogLevel;

/// Lines dropped because stderr could not take them, since the process started.
static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);
/// Set when the last line was cut short: the next one starts with a newline.
static CUT_SHORT: AtomicBool = AtomicBool::new(false);

/// How many log lines could not be written, since start.
pub fn dropped_lines() -> u64 {
    DROPPED_LINES.load(Ordering::Relaxed)
}

/// Installs the global subscriber. Call once, first thing in every role.
pub fn init(level: LogLevel) {
    let max = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_max_level(max)
        .log_internal_errors(false)
        .with_writer(Stderr)
        .try_init();
}

/// Hands the formatter a [`Line`] per event.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Line::new(std::io::stderr())
    }
}

/// Collects one event's bytes and writes them with one `write(2)` when dropped.
pub struct Line<F: AsFd> {
    fd: F,
    buf: Vec<u8>,
}

impl<F: AsFd> Line<F> {
    pub fn new(fd: F) -> Line<F> {
        Line { fd, buf: Vec::with_capacity(256) }
    }
}

impl<F: AsFd> Write for Line<F> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: AsFd> Drop for Line<F> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut line = std::mem::take(&mut self.buf);
        if CUT_SHORT.load(Ordering::Relaxed) {
            line.insert(0, b'\n');
        }
        write_line(self.fd.as_fd(), &line);
    }
}

/// Reserves room for `len` more bytes at the end of `fd` if it is a regular file. `false`
/// means there is no room: the line must not be written at all.
fn reserve(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> bool {
    use nix::fcntl::{fallocate, FallocateFlags};
    use nix::sys::stat::{fstat, SFlag};
    let Ok(st) = fstat(fd.as_raw_fd()) else { return true };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return true;
    }
    let Ok(len) = i64::try_from(len) else { return false };
    match fallocate(fd.as_raw_fd(), FallocateFlags::FALLOC_FL_KEEP_SIZE, st.st_size, len) {
        Ok(()) => true,
        Err(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT) => false,
        // Not supported by this filesystem: write and hope, as before.
        Err(_) => true,
    }
}

/// One `write(2)` of a whole line; on failure the line is dropped, never finished in pieces.
fn write_line(fd: std::os::fd::BorrowedFd<'_>, line: &[u8]) {
    if !reserve(fd, line.len()) {
        DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
        return;
    }
    loop {
        match nix::unistd::write(fd, line) {
            // Interrupted before anything was written: the same single write, again.
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(n) if n == line.len() => {
                CUT_SHORT.store(false, Ordering::Relaxed);
                return;
            }
            Ok(n) => {
                // Part of the line is in the file already; end it with the next line's start.
                CUT_SHORT.store(n > 0 || CUT_SHORT.load(Ordering::Relaxed), Ordering::Relaxed);
                DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_cannot_be_written_is_dropped_without_a_panic() {
        // A pipe whose reader is gone: every write fails (EPIPE; Rust ignores SIGPIPE).
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        drop(reader);
        let before = dropped_lines();
        let mut line = Line::new(writer);
        line.write_all(b"{\"message\":\"lost\"}\n").expect("buffered");
        drop(line);
        assert!(dropped_lines() > before, "the line was counted as dropped");
    }

    #[test]
    fn a_line_is_written_whole_with_one_write() {
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        {
            let mut line = Line::new(&writer);
            // The formatter may hand the line over in several pieces; it leaves in one.
            line.write_all(b"{\"message\":").expect("buffered");
            line.write_all(b"\"whole\"}\n").expect("buffered");
        }
        drop(writer);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(reader), &mut out).expect("read");
        assert!(out.ends_with("{\"message\":\"whole\"}\n"), "{out:?}");
    }
}
