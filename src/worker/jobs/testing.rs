//! The test-only job handler (registered when `VAULTBASE_TEST_ROUTES=1`): `test.record`
//! appends a `start` and an `end` line per attempt to a file in the data dir, so a test sees
//! the attempts of every worker of a cluster in one place (`GET /_/test/jobs`). Each line is
//! one `write(2)` on an `O_APPEND` descriptor, so workers never interleave. The payload steers
//! it: `noop` (do nothing, for the bench), `failTimes` (attempts before that number fail),
//! `sleepMs` (how long an attempt runs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::{handler_fn, now_ms, HandlerOptions, Job, Jobs};
use crate::worker::state::AppState;

/// The test handler's job name.
pub const TEST_JOB: &str = "test.record";
/// Its file, in the data dir.
pub const TEST_JOBS_FILE: &str = ".test-jobs.jsonl";

pub fn register(jobs: &Jobs) {
    jobs.add_handler(TEST_JOB, handler_fn(run), HandlerOptions { concurrency: 16, timeout: Duration::from_secs(60), led: false });
}

fn file(state: &AppState) -> PathBuf {
    state.config.data_dir.join(TEST_JOBS_FILE)
}

async fn run(state: AppState, job: Job) -> Result<(), String> {
    // The bench's no-op jobs (bench/jobs.sh): nothing recorded.
    if job.payload.get("noop").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let path = file(&state);
    let line = |stage: &str| json!({ "stage": stage, "id": job.id, "attempt": job.attempt, "worker": state.worker_id, "pid": state.pid, "at": now_ms(), "payload": job.payload });
    push(&path, &line("start"));
    if let Some(ms) = job.payload.get("sleepMs").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let fail_times = job.payload.get("failTimes").and_then(Value::as_u64).unwrap_or(0);
    if u64::from(job.attempt) <= fail_times {
        push(&path, &line("fail"));
        return Err(format!("failing on purpose (attempt {})", job.attempt));
    }
    push(&path, &line("end"));
    Ok(())
}

fn push(path: &Path, v: &Value) {
    use std::io::Write;
    let mut line = v.to_string();
    line.push('\n');
    let written = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "the test job handler could not record an attempt");
    }
}

/// Every line the test handler wrote, on every worker of the data dir, oldest first.
pub fn lines(data_dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data_dir.join(TEST_JOBS_FILE)).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}
