//! The exclusive data-dir lock: one vaultbase (a `serve` or a whole cluster) per data dir.
//!
//! SO_REUSEPORT would let a second cluster under the same user silently join the port group and
//! write the same database, so the supervisor (or `serve`) takes a `flock` before anything else.
//! The lock file holds the owner's pid so the loser can say who holds it. The descriptor is
//! close-on-exec: workers do not inherit it, and the lock dies with its owner, even on SIGKILL.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data dir {dir} is in use by another vaultbase process (pid {pid}); stop it or choose another --dir")]
    Held { dir: String, pid: String },
    #[error("opening lock file {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("locking {path}: {source}")]
    Lock { path: String, source: nix::Error },
    #[error("recording our pid in {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Held for the life of the process; dropping it releases the lock.
pub struct DirLock {
    _file: Flock<File>,
}

impl DirLock {
    /// Takes the lock without waiting.
    pub fn acquire(lock_path: &Path, dir: &Path) -> Result<DirLock, LockError> {
        let path = lock_path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
            .map_err(|source| LockError::Open { path: path.clone(), source })?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    dir: dir.display().to_string(),
                    pid: if pid.is_empty() { "unknown".into() } else { pid.to_owned() },
                });
            }
            Err((_, source)) => return Err(LockError::Lock { path, source }),
        };
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()
        };
        write(&mut locked).map_err(|source| LockError::Write { path, source })?;
        Ok(DirLock { _file: locked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".lock");
        let first = DirLock::acquire(&path, dir.path()).expect("first lock");
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just like another process would.
        match DirLock::acquire(&path, dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("second lock must fail"),
        }
        drop(first);
        DirLock::acquire(&path, dir.path()).expect("lock is free again");
    }
}
