//! Logging: one JSON object per line on stderr, so a supervisor and its workers (which inherit
//! its stderr) produce one stream that journald or a file can take as is. Each line is
//! formatted whole and written with one `write(2)`, so lines from different processes never
//! interleave mid-line.

use super::config::LogLevel;

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
        .with_writer(std::io::stderr)
        .try_init();
}
