//! [`StagedFile`]: an upload written to a private temp file under the data dir while the
//! request body streams in, so the record can be validated before anything reaches storage
//! and no upload is ever held whole in memory.
//!
//! Owns the temp files' lifetime: each is removed when its [`StagedFile`] is dropped, whatever
//! happened to the request. It must not touch the storage backend or decide names.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::sniff::{sniff, SNIFF_BYTES};
use crate::worker::auth::random::{random_string, ID_ALPHABET};

/// Characters of a staged file's random name.
const STAGED_NAME_CHARS: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("staging an upload: {0}")]
    Io(#[from] std::io::Error),
    #[error("naming a staged upload: {0}")]
    Random(#[from] crate::worker::auth::random::RandomError),
}

/// One uploaded file, complete on disk.
#[derive(Debug)]
pub struct StagedFile {
    path: PathBuf,
    /// The multipart key it came under (`docs`, `docs+`, `+docs`).
    pub key: String,
    /// The field it belongs to (`docs`).
    pub field: String,
    /// The client's file name, as sent.
    pub original: String,
    /// The name it will be stored under.
    pub stored: String,
    pub size: u64,
    /// Sniffed from the bytes.
    pub mime: &'static str,
}

impl StagedFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        // Unlinking is file I/O: done on the blocking pool when a runtime is there.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || remove_quietly(&path));
            }
            Err(_) => remove_quietly(&path),
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "removing a staged upload");
        }
    }
}

/// A staged file being written.
pub struct Stager {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    head: Vec<u8>,
    size: u64,
}

impl Stager {
    /// Opens a new temp file in the data dir's uploads directory (inside the 0700 data dir).
    pub async fn create(data_dir: &Path) -> Result<Stager, StageError> {
        let dir = data_dir.join(crate::shared::data_dir::UPLOADS_DIR);
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(random_string(ID_ALPHABET, STAGED_NAME_CHARS)?);
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(Stager { path, file: Some(file), head: Vec::new(), size: 0 })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StageError> {
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(chunk.get(..take).unwrap_or_default());
        }
        self.size += chunk.len() as u64;
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Flushes and closes the temp file; the result owns (and on drop removes) it.
    pub async fn finish(mut self, key: String, field: String, original: String, stored_for: impl FnOnce(&'static str) -> Result<String, StageError>) -> Result<StagedFile, StageError> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
            f.sync_data().await?;
        }
        let mime = sniff(&self.head);
        let path = std::mem::take(&mut self.path);
        let mut staged = StagedFile { path, key, field, original, stored: String::new(), size: self.size, mime };
        // From here the StagedFile owns the temp file, so an error below still removes it.
        staged.stored = stored_for(mime)?;
        Ok(staged)
    }
}

impl Drop for Stager {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        // Abandoned mid-body (an error, a limit, a dropped connection).
        let path = std::mem::take(&mut self.path);
        let file = self.file.take();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || {
                    drop(file);
                    remove_quietly(&path)
                });
            }
            Err(_) => remove_quietly(&path),
        }
    }
}
