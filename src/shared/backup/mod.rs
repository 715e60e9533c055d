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
}
