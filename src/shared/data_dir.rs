//! [`DataDir`]: the one place that knows the names of files under the data directory. Nothing
//! else joins paths onto it, so a rename happens here or nowhere.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The local storage backend's directory of record files (PocketBase's name). The worker's
/// file storage joins it onto the configured data dir, so it is a name, not a method only.
pub const STORAGE_DIR: &str = "storage";
/// Uploads being received, staged as temp files; emptied at start-up.
pub const UPLOADS_DIR: &str = ".uploads";

/// The data directory, as an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (mode 0700, parents as needed) if it is missing.
    pub fn create(path: &Path) -> io::Result<DataDir> {
        if !path.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
            // DirBuilder's mode is filtered through the umask; make it exactly 0700.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
        DataDir::open(path)
    }

    /// Opens an existing directory without creating it (workers: the supervisor created it).
    pub fn open(path: &Path) -> io::Result<DataDir> {
        let root = std::fs::canonicalize(path)?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a directory", root.display())));
        }
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The main database (WAL mode; `-wal` and `-shm` beside it).
    pub fn db_path(&self) -> PathBuf {
        self.root.join("data.db")
    }

    /// The generated JWT secret (mode 0600).
    pub fn secret_path(&self) -> PathBuf {
        self.root.join(".secret")
    }

    /// The file the exclusive data-dir lock is taken on; it holds the owner's pid.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// The supervisor's bus socket (mode 0600).
    /// The cluster writers' turn counters (see `db::turns`).
    pub fn write_turns_path(&self) -> PathBuf {
        self.root.join(".write-turns")
    }

    /// The cluster's rate-limit counters (see `db::rate_table`).
    pub fn rate_limits_path(&self) -> PathBuf {
        rate_limits_path(&self.root)
    }

    pub fn bus_socket_path(&self) -> PathBuf {
        self.root.join(".bus.sock")
    }

    /// Uploads in flight ([`UPLOADS_DIR`]).
    pub fn uploads_path(&self) -> PathBuf {
        self.root.join(UPLOADS_DIR)
    }
}

/// [`DataDir::rate_limits_path`] for a data dir given as a path.
pub fn rate_limits_path(root: &Path) -> PathBuf {
    root.join(".rate-limits")
}
