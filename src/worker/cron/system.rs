//! PocketBase's system jobs, registered on every worker at start (same ids, expressions and
//! order as PocketBase 0.40.6 lists them on a fresh server), and the test-only probe job.
//!
//! Not here: `__pbRateLimitersCleanup__` — PocketBase's limiter keeps buckets in process memory
//! and sweeps them; vaultbase's counters live in a fixed-size shared-memory table whose slots
//! are reused in place (`worker/ratelimit`), so there is nothing to sweep. `__pbAutoBackup__`
//! belongs to the backups feature, which registers it while `backups.cron` is set.

use std::io::Write;

use super::{job_fn, CronError, Crons};
use crate::shared::config::Config;
use crate::shared::db::{CheckpointMode, DbError};
use crate::worker::state::AppState;

pub const DB_OPTIMIZE: &str = "__pbDBOptimize__";
pub const MFA_CLEANUP: &str = "__pbMFACleanup__";
pub const OTP_CLEANUP: &str = "__pbOTPCleanup__";
pub const LOGS_CLEANUP: &str = "__pbLogsCleanup__";
/// Test-only (`VAULTBASE_TEST_ROUTES=1`): every slot, appends `<slot> <worker> <pid>` to
/// [`PROBE_FILE`] in the data dir, so a cluster test can count the runs of each slot.
pub const TEST_PROBE: &str = "__vbTestProbe__";
pub const PROBE_FILE: &str = "cron-probe.log";

/// Registers the system jobs (and, with test routes on, the probe).
pub fn register(crons: &Crons, config: &Config) -> Result<(), CronError> {
    crons.add(DB_OPTIMIZE, "0 0 * * *", job_fn(optimize))?;
    crons.add(MFA_CLEANUP, "0 * * * *", job_fn(mfa_cleanup))?;
    crons.add(OTP_CLEANUP, "0 * * * *", job_fn(otp_cleanup))?;
    // Registered so the listing matches PocketBase; it does nothing yet. The request-log
    // store (`worker::logs`) provides `cleanup(state)` and this job is wired to it when that
    // lands.
    crons.add(LOGS_CLEANUP, "0 */6 * * *", job_fn(|_| async { Ok(()) }))?;
    if config.test_routes {
        crons.add(TEST_PROBE, "* * * * *", job_fn(probe))?;
    }
    Ok(())
}

/// `__pbDBOptimize__`: empty the WAL and let SQLite refresh its planner statistics.
async fn optimize(state: AppState) -> Result<(), String> {
    state.db.optimize(CheckpointMode::Truncate).await.map_err(|e| e.to_string())
}

async fn mfa_cleanup(state: AppState) -> Result<(), String> {
    let now = crate::worker::auth::jwt::unix_now();
    let n = state
        .db
        .write(move |tx| -> Result<usize, DbError> { Ok(crate::worker::accounts::delete_expired_mfas(tx, now)?) })
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(deleted = n, "expired MFA sessions removed");
    Ok(())
}

async fn otp_cleanup(state: AppState) -> Result<(), String> {
    let now = crate::worker::auth::jwt::unix_now();
    let n = state
        .db
        .write(move |tx| -> Result<usize, DbError> { Ok(crate::worker::accounts::delete_expired_otps(tx, now)?) })
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(deleted = n, "expired OTPs removed");
    Ok(())
}

async fn probe(state: AppState) -> Result<(), String> {
    let slot = super::scheduler::current_slot().map_or_else(|| "manual".to_owned(), |s| s.to_string());
    let line = format!("{slot} {} {}\n", state.worker_id, state.pid);
    let path = state.config.data_dir.join(PROBE_FILE);
    // One write(2) on an O_APPEND descriptor: lines from several workers never interleave.
    let append = move || std::fs::OpenOptions::new().create(true).append(true).open(&path)?.write_all(line.as_bytes());
    tokio::task::spawn_blocking(append).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}
