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
//!
//! Lines are not written by the thread that logs them: a request thread only hands its line to
//! the `vb-log` thread (a bounded queue), which writes whatever has queued up with one
//! `write(2)` of whole lines — at most `PIPE_BUF` bytes when stderr is a pipe (so a pipe takes
//! the batch whole), more for a regular file (where `O_APPEND` writes never interleave). A
//! `write(2)` to a file can block for milliseconds (journal commits, writeback): on an async
//! worker thread that stalled every connection it served, and a syscall per request cost
//! about a fifth of the view throughput. Should the queue ever be full, the line is written
//! where it was logged, never dropped for that. [`flush`] writes out what is queued; every
//! role calls it before it exits.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use tracing_subscriber::fmt::MakeWriter;

use super::config::LogLevel;

/// Lines dropped because stderr could not take them, since the process started.
static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);
/// Set when the last line was cut short: the next one starts with a newline.
static CUT_SHORT: AtomicBool = AtomicBool::new(false);

/// Lines the log thread may have waiting before loggers write their own.
const QUEUE_LINES: usize = 65_536;
/// A batch for a pipe: a write of up to `PIPE_BUF` bytes is never split by the kernel.
const PIPE_BATCH_BYTES: usize = 4096;
/// A batch for a regular file.
const FILE_BATCH_BYTES: usize = 64 * 1024;
/// After writing a batch the log thread waits this long before taking the next, so under
/// load lines gather into batches and loggers almost never have to wake it (a wake-up per
/// line costs a context switch per request on a busy machine). Bounds how late a line is.
const BATCH_INTERVAL: Duration = Duration::from_millis(1);
/// How long [`flush`] waits for the log thread.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

enum Msg {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written.
    Flush(Sender<()>),
}

/// The queue to the log thread, once it runs.
static QUEUE: OnceLock<Sender<Msg>> = OnceLock::new();

/// Writes out every line logged so far (bounded wait). Call before the process exits.
pub fn flush() {
    let Some(queue) = QUEUE.get() else { return };
    let (ack, done) = bounded(1);
    if queue.send_timeout(Msg::Flush(ack), FLUSH_TIMEOUT).is_ok() {
        let _ = done.recv_timeout(FLUSH_TIMEOUT);
    }
}

fn start_log_thread() {
    if QUEUE.get().is_some() {
        return;
    }
    let (tx, rx) = bounded(QUEUE_LINES);
    let started = std::thread::Builder::new().name("vb-log".into()).spawn(move || write_queued(std::io::stderr(), rx));
    // Without the thread every line is written where it is logged, as it always could be.
    if started.is_ok() {
        let _ = QUEUE.set(tx);
    }
}

fn is_regular(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::sys::stat::{fstat, SFlag};
    fstat(fd.as_raw_fd()).is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
}

/// The log thread: batches what has queued up into whole-line writes.
fn write_queued<F: AsFd>(out: F, rx: Receiver<Msg>) {
    let fd = out.as_fd();
    let max = if is_regular(fd) { FILE_BATCH_BYTES } else { PIPE_BATCH_BYTES };
    let mut batch: Vec<u8> = Vec::with_capacity(max);
    let mut lines = 0u64;
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    if !batch.is_empty() && batch.len() + line.len() > max {
                        write_batch(fd, &mut batch, lines);
                        lines = 0;
                    }
                    batch.extend_from_slice(&line);
                    lines += 1;
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            write_batch(fd, &mut batch, lines);
            lines = 0;
        }
        let flushed = !acks.is_empty();
        for ack in acks {
            let _ = ack.send(());
        }
        if !flushed {
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
}

/// Writes and empties `batch` (`lines` whole lines) with [`write_lines`]'s guarantees (the newline that ends a line cut short before it included).
fn write_batch(fd: std::os::fd::BorrowedFd<'_>, batch: &mut Vec<u8>, lines: u64) {
    if CUT_SHORT.load(Ordering::Relaxed) {
        batch.insert(0, b'\n');
    }
    write_lines(fd, batch, lines);
    batch.clear();
}

/// How many log lines could not be written, since start.
pub fn dropped_lines() -> u64 {
    DROPPED_LINES.load(Ordering::Relaxed)
}

/// Installs the global subscriber. Call once, first thing in every role.
pub fn init(level: LogLevel) {
    init_with(level, None);
}

/// A layer beside the stderr formatter, filtered on its own (a worker's application-log
/// capture): the formatter's level applies to the formatter only.
pub type ExtraLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// [`init`] with `extra` installed beside the formatter.
pub fn init_with(level: LogLevel, extra: Option<ExtraLayer>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let max = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let stderr = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .log_internal_errors(false)
        .with_writer(Stderr)
        .with_filter(tracing_subscriber::filter::LevelFilter::from_level(max));
    let _ = tracing_subscriber::registry().with(extra).with(stderr).try_init();
    start_log_thread();
}

/// Hands the formatter a [`Queued`] line per event.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Queued;

    fn make_writer(&'a self) -> Self::Writer {
        Queued { buf: Vec::with_capacity(256) }
    }
}

/// One event's bytes, handed to the log thread when dropped (or written here if it cannot
/// take them).
pub struct Queued {
    buf: Vec<u8>,
}

impl Write for Queued {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        let line = match QUEUE.get() {
            Some(queue) => match queue.try_send(Msg::Line(line)) {
                Ok(()) => return,
                Err(TrySendError::Full(Msg::Line(l)) | TrySendError::Disconnected(Msg::Line(l))) => l,
                Err(_) => return,
            },
            None => line,
        };
        let mut line = line;
        write_batch(std::io::stderr().as_fd(), &mut line, 1);
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
        write_batch(self.fd.as_fd(), &mut line, 1);
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

/// One `write(2)` of `count` whole lines; on failure they are dropped, never finished in
/// pieces.
fn write_lines(fd: std::os::fd::BorrowedFd<'_>, line: &[u8], count: u64) {
    if !reserve(fd, line.len()) {
        DROPPED_LINES.fetch_add(count, Ordering::Relaxed);
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
                DROPPED_LINES.fetch_add(count, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                DROPPED_LINES.fetch_add(count, Ordering::Relaxed);
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
    fn queued_lines_are_written_whole_in_order_and_flushed() {
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        let (tx, rx) = bounded(16);
        let thread = std::thread::spawn(move || write_queued(writer, rx));
        for i in 0..10 {
            tx.send(Msg::Line(format!("{{\"n\":{i}}}\n").into_bytes())).expect("queued");
        }
        let (ack, done) = bounded(1);
        tx.send(Msg::Flush(ack)).expect("flush queued");
        done.recv_timeout(Duration::from_secs(5)).expect("flushed");
        drop(tx);
        thread.join().expect("log thread");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(reader), &mut out).expect("read");
        let want: String = (0..10).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        assert_eq!(out, want);
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
