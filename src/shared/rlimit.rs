//! Raising the open-file limit at start: each connection costs a descriptor, and the common
//! default soft limit (1024) is far below what one worker can serve. The soft limit is raised
//! to the hard limit (as Go's runtime does for PocketBase); the hard limit is the operator's
//! (`LimitNOFILE=` in the systemd unit). What remains is logged, and accept errors at the
//! limit are backed off, never fatal.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}
