//! Swapping a staged backup in under a running server, without split brain: no connection
//! to the old files may survive the swap, in this worker or any other.
//!
//! `serve`: pause this worker's database (jobs wait), swap, reopen. A cluster: the worker that
//! took the request asks the supervisor (see `shared::backup::protocol`), which pauses every
//! worker, waits until each has closed its connections, swaps, and resumes them all before it
//! answers. While paused, requests wait for the reopen (or get 503 with `Retry-After` after
//! `PAUSED_WAIT`); none runs against a closed or replaced file. After the reopen the caches
//! are dropped, and the swap moved every cache counter forward, so nothing stale survives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::shared::backup::archive::Staged;
use crate::shared::backup::protocol::{self, Payload};
use crate::shared::backup::swap;
use crate::shared::bus::{Bus, BusMsg, SUPERVISOR_ID};
use crate::worker::state::AppState;

/// How long the requesting worker waits for the supervisor to finish a restore: pausing
/// waits for in-flight queries, which run at most the read deadline.
pub const CLUSTER_RESTORE_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts at reopening the database after a swap before the worker gives up (and exits,
/// so the supervisor starts a fresh one on the new file).
const REOPEN_ATTEMPTS: u32 = 5;
const REOPEN_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("restore failed: {0}")]
    Failed(String),
    #[error("the supervisor did not finish the restore in time")]
    Timeout,
}

/// Restores waiting for the supervisor's answer, by operation id.
#[derive(Default)]
pub struct Restores {
    pending: Mutex<HashMap<String, oneshot::Sender<Option<String>>>>,
}

impl Restores {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Option<String>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Swaps `staged` in, on every worker; returns once every worker serves the restored files.
pub async fn run(state: &AppState, staged: Staged) -> Result<(), RestoreError> {
    match &state.bus {
        Bus::Local(_) => local(state, staged).await,
        Bus::Unix(_) => clustered(state, staged).await,
    }
}

async fn local(state: &AppState, staged: Staged) -> Result<(), RestoreError> {
    let db = state.db.clone();
    let logs_db = state.logs.opened();
    let root = state.config.data_dir.clone();
    let swapped = tokio::task::spawn_blocking(move || {
        db.pause();
        pause_logs(logs_db.as_ref());
        let swapped = swap::swap(&root, &staged);
        if swapped.is_err() {
            staged.discard();
        }
        swapped
    })
    .await
    .map_err(|e| RestoreError::Failed(e.to_string()))?;
    reopen(state).await;
    match swapped {
        Ok(kept) => {
            tracing::info!(worker_id = state.worker_id, kept = %kept.display(), "backup restored; the previous data is kept");
            Ok(())
        }
        Err(e) => Err(RestoreError::Failed(e.to_string())),
    }
}

async fn clustered(state: &AppState, staged: Staged) -> Result<(), RestoreError> {
    let op = format!("{}-{}", state.worker_id, crate::shared::backup::stamp());
    let (tx, rx) = oneshot::channel();
    state.restores.pending().insert(op.clone(), tx);
    // By its name in the data dir: the supervisor may spell the data dir's path differently.
    let name = staged.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let payload = Payload { op: op.clone(), staged: Some(name), error: None };
    state.bus.send(&BusMsg::Direct { to: SUPERVISOR_ID, from: state.worker_id, topic: protocol::REQUEST.into(), payload: payload.to_value() });
    let answer = tokio::time::timeout(CLUSTER_RESTORE_TIMEOUT, rx).await;
    state.restores.pending().remove(&op);
    match answer {
        Ok(Ok(None)) => Ok(()),
        Ok(Ok(Some(error))) => Err(RestoreError::Failed(error)),
        Ok(Err(_)) | Err(_) => Err(RestoreError::Timeout),
    }
}

/// Closes both connections to `auxiliary.db` (the log writer's, the logs API's) so the swap can
/// move it with its `-wal`/`-shm`; blocking.
fn pause_logs(logs_db: Option<&crate::shared::db::Db>) {
    crate::worker::ops::logs::pause();
    if let Some(db) = logs_db {
        db.pause();
    }
}

/// Reopens the database after a pause and drops every cache read from the old file.
async fn reopen(state: &AppState) {
    for attempt in 1..=REOPEN_ATTEMPTS {
        let db = state.db.clone();
        match tokio::task::spawn_blocking(move || db.resume()).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) if attempt < REOPEN_ATTEMPTS => {
                tracing::warn!(worker_id = state.worker_id, error = %e, attempt, "reopening the database after a restore failed; retrying");
                tokio::time::sleep(REOPEN_PAUSE).await;
            }
            outcome => {
                // A worker that cannot open the database serves nothing useful; the
                // supervisor (or systemd, for `serve`) starts a fresh process.
                tracing::error!(worker_id = state.worker_id, ?outcome, "cannot reopen the database after a restore; exiting");
                crate::shared::telemetry::flush();
                std::process::exit(1);
            }
        }
    }
    let logs_db = state.logs.opened();
    let reopened = tokio::task::spawn_blocking(move || {
        crate::worker::ops::logs::resume();
        logs_db.map(|db| db.resume())
    })
    .await;
    if let Ok(Some(Err(e))) = reopened {
        // The logs API fails until the next start; request logs still reach the archive.
        tracing::error!(worker_id = state.worker_id, error = %e, "reopening auxiliary.db after a restore failed");
    }
    state.schema.invalidate();
    state.settings.invalidate();
    if let Some(limiter) = &state.rate_limiter {
        limiter.settings_changed();
    }
}

/// A restore message from the supervisor.
pub fn on_direct(state: &AppState, topic: &str, payload: serde_json::Value) {
    let Some(payload) = Payload::from_value(payload) else {
        tracing::warn!(worker_id = state.worker_id, topic, "undecodable restore message; ignored");
        return;
    };
    match topic {
        protocol::PAUSE => {
            let state = state.clone();
            tokio::spawn(async move {
                let db = state.db.clone();
                let logs_db = state.logs.opened();
                let _ = tokio::task::spawn_blocking(move || {
                    db.pause();
                    pause_logs(logs_db.as_ref());
                })
                .await;
                tracing::info!(worker_id = state.worker_id, op = payload.op, "paused for a restore");
                answer(&state, protocol::PAUSED, &payload.op);
            });
        }
        protocol::RESUME => {
            let state = state.clone();
            tokio::spawn(async move {
                reopen(&state).await;
                tracing::info!(worker_id = state.worker_id, op = payload.op, "reopened after a restore");
                answer(&state, protocol::RESUMED, &payload.op);
            });
        }
        protocol::DONE => {
            if let Some(waiting) = state.restores.pending().remove(&payload.op) {
                let _ = waiting.send(payload.error);
            }
        }
        other => tracing::debug!(worker_id = state.worker_id, topic = other, "restore message not for workers; ignored"),
    }
}

fn answer(state: &AppState, topic: &str, op: &str) {
    let payload = Payload { op: op.to_owned(), ..Payload::default() };
    state.bus.send(&BusMsg::Direct { to: SUPERVISOR_ID, from: state.worker_id, topic: topic.into(), payload: payload.to_value() });
}
