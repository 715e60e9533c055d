//! Backups and restores of a data dir, for every role: consistent snapshots ([`archive`]),
//! PocketBase's zip layout, staging a backup for restore, and the swap of the files
//! ([`swap`]) — which the process owning the data dir (`serve`, the cluster's supervisor, or
//! the offline `vaultbase restore`) runs only while no connection to the old files is open.
//!
//! What it must not do: open the live database for writing (snapshots are read-only
//! `VACUUM INTO`, so writers are never blocked), or swap files while a worker may still hold
//! them — closing them is the caller's job (the executor's pause, or the data-dir lock).
//! It knows nothing of HTTP or of the bus beyond the message names in [`protocol`].

pub mod archive;
pub mod command;
pub mod protocol;
pub mod swap;

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where backups live, as PocketBase keeps them: `<data>/backups/`.
pub const BACKUPS_DIR: &str = "backups";
/// The snapshot of the main database inside a backup zip.
pub const DATA_DB: &str = "data.db";
/// PocketBase's second database (logs); included when it exists.
pub const AUXILIARY_DB: &str = "auxiliary.db";
/// The lock file that lets one backup or restore run at a time across a cluster's workers.
const OPERATION_LOCK_FILE: &str = ".backups.lock";

/// Why a backup or restore step failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Sqlite { what: String, source: rusqlite::Error },
    #[error("reading the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// The file given to restore is not a backup this server can use.
    #[error("{0}")]
    Invalid(String),
}

impl BackupError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let what = what.into();
        move |source| BackupError::Io { what, source }
    }

    pub fn sqlite(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
        let what = what.into();
        move |source| BackupError::Sqlite { what, source }
    }
}

/// `<data>/backups`.
pub fn backups_dir(root: &Path) -> PathBuf {
    root.join(BACKUPS_DIR)
}

/// Held while a backup or a restore runs; at most one exists per data dir at a time, across
/// processes (an advisory `flock`, released when dropped or when its process dies).
pub struct OperationGuard {
    _file: Flock<File>,
}

impl OperationGuard {
    /// Takes the guard without waiting; `Ok(None)` if another operation holds it.
    pub fn try_acquire(root: &Path) -> Result<Option<OperationGuard>, BackupError> {
        let path = root.join(OPERATION_LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(BackupError::io(format!("opening {}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => Ok(Some(OperationGuard { _file: f })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(BackupError::Io { what: format!("locking {}", path.display()), source: e.into() }),
        }
    }
}

/// Removes what a backup or restore killed half-way left in the data dir (staging
/// directories, received uploads, snapshot scratch, half-written zips). Only for the data
/// dir's owner at start-up, before any worker runs; `vaultbase backup`'s own temporary file
/// (`.vaultbase-snap-*`) is left alone, as that command may be running beside the server.
pub fn remove_leftovers(root: &Path) {
    let remove = |path: &Path| {
        let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
        match removed {
            Ok(()) => tracing::info!(path = %path.display(), "removed what an interrupted backup or restore left"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "removing what an interrupted backup or restore left failed"),
        }
    };
    let entries = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect::<Vec<_>>();
    for path in entries(root) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if [".restore-", ".upload-", ".backup-"].iter().any(|p| name.starts_with(p)) || name.ends_with(".download") || name.ends_with(".upload") {
            remove(&path);
        }
    }
    for path in entries(&backups_dir(root)) {
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.') && n.ends_with(".partial")) {
            remove(&path);
        }
    }
}

/// A unique name part for temporary and kept files: UTC time to the millisecond and the pid.
pub fn stamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}{:03}-{}", now.as_secs(), now.subsec_millis(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_operation_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = OperationGuard::try_acquire(dir.path()).expect("lock");
        assert!(first.is_some());
        assert!(OperationGuard::try_acquire(dir.path()).expect("lock").is_none(), "a second operation is refused");
        drop(first);
        assert!(OperationGuard::try_acquire(dir.path()).expect("lock").is_some(), "free again once the first ends");
    }

    #[test]
    fn leftovers_of_an_interrupted_operation_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join(".restore-1-2/storage")).expect("stage");
        std::fs::write(root.join(".upload-3-4"), "x").expect("upload");
        std::fs::create_dir_all(backups_dir(root)).expect("backups");
        std::fs::write(backups_dir(root).join(".a.zip.5.partial"), "x").expect("partial");
        std::fs::write(backups_dir(root).join("kept.zip"), "x").expect("backup");
        std::fs::write(root.join(".vaultbase-snap-6.db"), "x").expect("cli snapshot");
        std::fs::create_dir_all(root.join(".pre-restore-7")).expect("kept data");
        remove_leftovers(root);
        assert!(!root.join(".restore-1-2").exists() && !root.join(".upload-3-4").exists());
        assert!(!backups_dir(root).join(".a.zip.5.partial").exists());
        assert!(backups_dir(root).join("kept.zip").exists(), "backups stay");
        assert!(root.join(".vaultbase-snap-6.db").exists(), "a running `vaultbase backup`'s file stays");
        assert!(root.join(".pre-restore-7").exists(), "the data a restore replaced stays");
    }
}
