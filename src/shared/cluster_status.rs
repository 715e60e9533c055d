//! The cluster's status files, for the dashboard's cluster page: small JSON files in
//! `<data dir>/.cluster/`. The supervisor writes `supervisor.json` (each slot's pid and restart
//! count) whenever a slot changes; each worker rewrites `worker-<id>.json` (its counters) every
//! [`PUBLISH_INTERVAL`]. Any worker answers for all of them by reading the files, so the answer
//! does not depend on which worker the kernel picked.
//!
//! Files are replaced atomically (write a temporary file, rename). A file that is missing, torn
//! or from an older process is not an error here: readers get `None` and say "unknown".
//! Nothing here may be needed for serving requests; it is reporting only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often a worker publishes its counters.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
const DIR_NAME: &str = ".cluster";
const SUPERVISOR_FILE: &str = "supervisor.json";

/// One worker slot as the supervisor sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SlotStatus {
    pub id: u32,
    /// None while the slot waits for its respawn.
    pub pid: Option<u32>,
    /// Times this slot's worker was started again after the first start.
    pub restarts: u64,
    /// `starting`, `ready`, `backoff` or `exited`.
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorStatus {
    pub pid: u32,
    pub slots: Vec<SlotStatus>,
}

/// One worker's counters since it started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub id: u32,
    pub pid: u32,
    /// Unix seconds at the worker's start.
    pub started_at_s: u64,
    pub requests: u64,
    /// Bus messages dropped because this worker's queue to the hub was full.
    pub bus_drops: u64,
    /// Writes that had to wait for another process's turn at SQLite's write lock.
    pub write_lock_waits: u64,
    /// Unix milliseconds of this publication.
    pub updated_at_ms: u64,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR_NAME)
}

fn worker_path(data_dir: &Path, id: u32) -> PathBuf {
    dir(data_dir).join(format!("worker-{id}.json"))
}

/// Unix time now, in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn replace(path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, &path).await
}

async fn read<T: for<'de> Deserialize<'de>>(path: PathBuf) -> Option<T> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub async fn write_supervisor(data_dir: &Path, status: &SupervisorStatus) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(status).map_err(std::io::Error::other)?;
    replace(dir(data_dir).join(SUPERVISOR_FILE), bytes).await
}

pub async fn read_supervisor(data_dir: &Path) -> Option<SupervisorStatus> {
    read(dir(data_dir).join(SUPERVISOR_FILE)).await
}

pub async fn write_worker(data_dir: &Path, status: &WorkerStatus) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(status).map_err(std::io::Error::other)?;
    replace(worker_path(data_dir, status.id), bytes).await
}

pub async fn read_worker(data_dir: &Path, id: u32) -> Option<WorkerStatus> {
    read(worker_path(data_dir, id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_round_trip_and_a_torn_file_reads_as_unknown() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sup = SupervisorStatus { pid: 7, slots: vec![SlotStatus { id: 0, pid: Some(8), restarts: 2, state: "ready".into() }] };
        write_supervisor(tmp.path(), &sup).await.expect("write");
        assert_eq!(read_supervisor(tmp.path()).await, Some(sup));
        let w = WorkerStatus { id: 1, pid: 9, started_at_s: 1, requests: 3, bus_drops: 0, write_lock_waits: 4, updated_at_ms: 5 };
        write_worker(tmp.path(), &w).await.expect("write");
        assert_eq!(read_worker(tmp.path(), 1).await, Some(w));
        std::fs::write(worker_path(tmp.path(), 2), b"{\"id\":").expect("torn");
        assert_eq!(read_worker(tmp.path(), 2).await, None);
    }
}
