//! [`SharedMap`]: a small file in the data dir mapped `MAP_SHARED` into every process of a
//! cluster, read and written only through atomics — the one place that opens, sizes, maps and
//! unmaps such a file. The write turns (`turns`) and the rate-limit table (`rate_table`) are
//! built on it. It owns the mapping's lifetime and the bounds of every access; it must not
//! give out anything but atomics, since other processes change the memory at any time.

use std::fs::OpenOptions;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("opening {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("mapping {path}: {source}")]
    Map { path: String, source: nix::Error },
}

/// A shared mapping of a whole file of `len` bytes.
pub struct SharedMap {
    base: NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is only accessed through atomics (the accessors below), which are safe
// to share between threads and processes; the pointer itself is never mutated.
unsafe impl Send for SharedMap {}
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Maps the file at `path`, creating it (zero-filled by the kernel) or growing it to `len`
    /// bytes first. Every process of a cluster must use the same path and length.
    pub fn open(path: &Path, len: usize) -> Result<SharedMap, ShmError> {
        let shown = || path.display().to_string();
        let open_error = |source| ShmError::Open { path: shown(), source };
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(open_error)?;
        let want = u64::try_from(len).unwrap_or(u64::MAX);
        if file.metadata().map_err(open_error)?.len() < want {
            file.set_len(want).map_err(open_error)?;
        }
        let size = NonZeroUsize::new(len).ok_or(ShmError::Map { path: shown(), source: nix::Error::EINVAL })?;
        // SAFETY: a fresh shared mapping of a file we hold open; it is unmapped exactly once,
        // in Drop, and no reference into it outlives `self` (the accessors borrow `self`).
        let base = unsafe { mmap(None, size, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED, file.as_fd(), 0) }
            .map_err(|source| ShmError::Map { path: shown(), source })?;
        Ok(SharedMap { base, len })
    }

    /// The `index`-th 32-bit word. Out of bounds is a bug in the caller: it wraps into the
    /// mapping rather than leave it.
    pub fn u32_at(&self, index: usize) -> &AtomicU32 {
        let words = (self.len / 4).max(1);
        debug_assert!(index < words, "u32 word {index} outside a {}-byte map", self.len);
        // SAFETY: the index is reduced into the mapping, which is page-aligned (so every
        // 4-byte word is aligned) and lives as long as `self`; all access is atomic.
        unsafe { &*(self.base.as_ptr().cast::<AtomicU32>().add(index % words)) }
    }

    /// The `index`-th 64-bit word (see [`SharedMap::u32_at`]).
    pub fn u64_at(&self, index: usize) -> &AtomicU64 {
        let words = (self.len / 8).max(1);
        debug_assert!(index < words, "u64 word {index} outside a {}-byte map", self.len);
        // SAFETY: as in `u32_at`, with 8-byte words.
        unsafe { &*(self.base.as_ptr().cast::<AtomicU64>().add(index % words)) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `base` came from mmap with `len` bytes and no reference into it outlives self.
        if let Err(e) = unsafe { munmap(self.base, self.len) } {
            tracing::warn!(error = %e, "unmapping a shared file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_file_see_each_others_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shm");
        let (a, b) = (SharedMap::open(&path, 16).expect("a"), SharedMap::open(&path, 16).expect("b"));
        a.u64_at(1).store(7, Ordering::Release);
        a.u32_at(0).fetch_add(3, Ordering::AcqRel);
        assert_eq!(b.u64_at(1).load(Ordering::Acquire), 7);
        assert_eq!(b.u32_at(0).load(Ordering::Acquire), 3);
    }
}
