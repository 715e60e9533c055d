//! Files of records: where their bytes live ([`storage`]: local disk under the data dir or an
//! S3-compatible bucket, chosen by the `s3` settings), how uploads are named ([`names`]),
//! staged ([`staged`]) and sniffed ([`sniff`]), thumbnails ([`thumbs`]), and the record-level
//! steps of the write path ([`record`]: which uploads a write keeps, which stored files it
//! removes, storing before the commit and cleaning up after it).
//!
//! It owns no HTTP: the handlers in `api/files.rs` and `api/uploads.rs` call it. It must never
//! put a file into storage that no committed record names for longer than the failed write
//! that put it there, and must never delete a file before the write that stopped naming it
//! has committed.

pub mod names;
pub mod record;
pub mod sniff;
pub mod staged;
pub mod storage;
pub mod thumbs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use storage::{Storage, StorageError};

use crate::shared::db::Db;
use crate::worker::settings::{self, Secrets, SettingsCache, S3};

/// Per-worker file state: the storage backend for the current settings, and the bookkeeping
/// that makes each thumbnail generated once.
pub struct Files {
    data_dir: PathBuf,
    /// The backend built for a settings version; rebuilt when the settings change.
    current: Mutex<Option<(i64, Arc<Storage>)>>,
    pub thumbs: thumbs::ThumbGate,
}

impl Files {
    pub fn new(data_dir: &Path) -> Files {
        Files { data_dir: data_dir.to_owned(), current: Mutex::new(None), thumbs: thumbs::ThumbGate::sized_to_cpus() }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn cached(&self, version: i64) -> Option<Arc<Storage>> {
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|(v, _)| *v == version).map(|(_, s)| s.clone())
    }

    fn remember(&self, version: i64, storage: Arc<Storage>) {
        let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some((version, storage));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("reading settings: {0}")]
    Settings(#[from] settings::SettingsError),
    #[error("building the local storage: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Builds the backend a settings section describes.
pub async fn build(data_dir: &Path, s3: &S3, secret: &str) -> Result<Storage, FilesError> {
    if s3.enabled {
        return Ok(Storage::s3(s3, secret)?);
    }
    let root = data_dir.join(crate::shared::data_dir::STORAGE_DIR);
    Ok(tokio::task::spawn_blocking(move || Storage::local_blocking(&root)).await??)
}

/// What finding the storage backend needs: the per-worker file state, the settings that
/// choose the backend, and the database they are read from.
#[derive(Clone, Copy)]
pub struct StorageSource<'a> {
    pub files: &'a Files,
    pub settings: &'a SettingsCache,
    pub db: &'a Db,
}

/// The storage backend the current settings select (cached per settings version, so a
/// change through any worker applies here on the next request).
pub async fn storage(src: StorageSource<'_>) -> Result<Arc<Storage>, FilesError> {
    let loaded = src.settings.fresh(src.db).await?;
    if let Some(s) = src.files.cached(loaded.version) {
        return Ok(s);
    }
    let secrets: Secrets = if loaded.settings.s3.enabled {
        src.db.read(settings::load_secrets).await?
    } else {
        Secrets::default()
    };
    let built = Arc::new(build(&src.files.data_dir, &loaded.settings.s3, &secrets.s3_secret).await?);
    src.files.remember(loaded.version, built.clone());
    Ok(built)
}

/// After a collection was deleted or truncated (committed): removes every file stored under
/// it. Never fails the request; problems are logged.
pub async fn delete_collection_files(src: StorageSource<'_>, collection_id: &str) {
    if !names::safe_segment(collection_id) {
        return;
    }
    match storage(src).await {
        Ok(s) => {
            if let Err(e) = s.delete_prefix(collection_id).await {
                tracing::warn!(collection_id, error = %e, "deleting the files of a deleted or truncated collection");
            }
        }
        Err(e) => tracing::warn!(error = %e, "no storage to delete a collection's files"),
    }
}

/// Thumbnail de-duplication state, re-exported for the state constructor.
pub use thumbs::ThumbGate;

/// Per-key async locks: one holder per key at a time; entries vanish with their last user.
#[derive(Default)]
pub struct KeyLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    pub fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets `key` if nobody but the caller (holding `lock`) still uses it.
    pub fn release(&self, key: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // One reference in the map, one held by the caller.
        if Arc::strong_count(&lock) <= 2 {
            map.remove(key);
        }
    }
}
