//! [`Storage`]: the one interface to where file bytes live — the local filesystem under the
//! data dir (default) or an S3-compatible bucket — built on `object_store`, so both backends
//! answer the same calls (put from a staged file, head, ranged get, stream, delete).
//!
//! Owns only byte movement by key. It must not decide names or keys (see `names`), must not
//! know about records or rules, and must never hold a whole upload or download in memory:
//! puts stream from a staged file in bounded parts and gets return a stream.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::worker::settings::S3;

/// Files up to this size are sent in one PUT; larger ones as a multipart upload in parts of
/// this size (S3 needs parts of at least 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload in flight at once: bounds an upload's memory to about
/// `PART_BYTES × (PARTS_IN_FLIGHT + 1)`.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read from a staged file per read call.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Retries of one S3 request, and the time they may take, so a dead endpoint fails a request
/// (or `POST /api/settings/test/s3`) in seconds rather than minutes.
const S3_MAX_RETRIES: usize = 2;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(15);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A key that `names` would never build (defence in depth: `object_store` refuses it too).
    #[error("invalid storage key {0:?}")]
    BadKey(String),
    #[error("the object does not exist")]
    NotFound,
    #[error("storage backend: {0}")]
    Backend(#[from] object_store::Error),
    #[error("storage i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("S3 storage is misconfigured: {0}")]
    Config(String),
}

/// What a stored object is, for conditional and ranged responses.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub size: u64,
    pub modified: SystemTime,
    /// The backend's entity tag, without quotes.
    pub etag: Option<String>,
}

/// Which backend a [`Storage`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

pub struct Storage {
    store: Arc<dyn ObjectStore>,
    pub backend: Backend,
}

fn path(key: &str) -> Result<Path, StorageError> {
    Path::parse(key).map_err(|_| StorageError::BadKey(key.to_owned()))
}

fn not_found_is_none<T>(r: object_store::Result<T>) -> Result<Option<T>, StorageError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `scheme://host…` → `scheme://bucket.host…` (virtual-hosted-style S3 addressing).
fn virtual_host_endpoint(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) if !rest.starts_with(&format!("{bucket}.")) => format!("{scheme}://{bucket}.{rest}"),
        _ => endpoint.to_owned(),
    }
}

impl Storage {
    /// The local backend rooted at `root` (created if missing). Blocking: run it off the
    /// async threads.
    pub fn local_blocking(root: &FsPath) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(root)?;
        // Empty record directories are removed with their last file, so a deleted record
        // leaves nothing behind.
        let store = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
        Ok(Storage { store: Arc::new(store), backend: Backend::Local })
    }

    /// An S3-compatible backend from PocketBase's `s3` settings and the stored secret.
    pub fn s3(cfg: &S3, secret: &str) -> Result<Storage, StorageError> {
        if cfg.bucket.trim().is_empty() {
            return Err(StorageError::Config("bucket is empty".into()));
        }
        let retry = RetryConfig { max_retries: S3_MAX_RETRIES, retry_timeout: S3_RETRY_TIMEOUT, ..RetryConfig::default() };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(cfg.bucket.trim())
            .with_region(if cfg.region.trim().is_empty() { "us-east-1" } else { cfg.region.trim() })
            .with_access_key_id(cfg.access_key.trim())
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(!cfg.force_path_style)
            .with_retry(retry)
            .with_client_options(ClientOptions::new().with_connect_timeout(S3_CONNECT_TIMEOUT).with_allow_http(true));
        let endpoint = cfg.endpoint.trim();
        if !endpoint.is_empty() {
            let endpoint = if endpoint.contains("://") { endpoint.to_owned() } else { format!("https://{endpoint}") };
            // PocketBase's settings name the service endpoint; object_store wants the bucket's
            // own host when requests are virtual-hosted.
            let endpoint = if cfg.force_path_style { endpoint } else { virtual_host_endpoint(&endpoint, cfg.bucket.trim()) };
            builder = builder.with_endpoint(endpoint).with_allow_http(true);
        }
        let store = builder.build()?;
        Ok(Storage { store: Arc::new(store), backend: Backend::S3 })
    }

    /// Copies the staged file at `source` to `key`, streaming: one PUT for a small file,
    /// bounded multipart parts for a large one.
    pub async fn put_file(&self, key: &str, source: &FsPath) -> Result<(), StorageError> {
        let location = path(key)?;
        let mut file = tokio::fs::File::open(source).await?;
        let size = file.metadata().await?.len();
        if size <= PART_BYTES as u64 {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(PART_BYTES));
            file.read_to_end(&mut buf).await?;
            self.store.put(&location, PutPayload::from(buf)).await?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let n = match file.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(chunk.get(..n).unwrap_or_default());
        }
        writer.finish().await?;
        Ok(())
    }

    /// Stores small bytes (a thumbnail, a probe).
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(&path(key)?, PutPayload::from(bytes)).await?;
        Ok(())
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let meta = not_found_is_none(self.store.head(&path(key)?).await)?;
        Ok(meta.map(|m| ObjectInfo {
            size: m.size,
            modified: SystemTime::from(m.last_modified),
            etag: m.e_tag.map(|t| t.trim_matches('"').to_owned()),
        }))
    }

    /// Every object at the top level (no prefix), with its size and time; objects in
    /// subfolders are not listed.
    pub async fn list_top(&self) -> Result<Vec<(String, ObjectInfo)>, StorageError> {
        let listed = self.store.list_with_delimiter(None).await?;
        Ok(listed
            .objects
            .into_iter()
            .map(|m| {
                let info = ObjectInfo { size: m.size, modified: SystemTime::from(m.last_modified), etag: m.e_tag.map(|t| t.trim_matches('"').to_owned()) };
                (m.location.filename().unwrap_or_default().to_owned(), info)
            })
            .collect())
    }

    /// The bytes in `range` of `key` (small ranges: the sniffing head).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        not_found_is_none(self.store.get_range(&path(key)?, range).await)?.ok_or(StorageError::NotFound)
    }

    /// The whole object (only for sources of thumbnails, whose size the field caps).
    pub async fn get_all(&self, key: &str) -> Result<Bytes, StorageError> {
        let result = not_found_is_none(self.store.get(&path(key)?).await)?.ok_or(StorageError::NotFound)?;
        Ok(result.bytes().await?)
    }

    /// A stream of the object's bytes, the whole object or `range`.
    pub async fn stream(&self, key: &str, range: Option<Range<u64>>) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let opts = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        let result = not_found_is_none(self.store.get_opts(&path(key)?, opts).await)?.ok_or(StorageError::NotFound)?;
        Ok(result.into_stream().map_err(StorageError::from).boxed())
    }

    /// Deletes one object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        not_found_is_none(self.store.delete(&path(key)?).await)?;
        Ok(())
    }

    /// Deletes every object under `prefix` (a record's or an original's thumbnails' folder).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        let prefix = path(prefix)?;
        let locations = self.store.list(Some(&prefix)).map_ok(|m| m.location).boxed();
        let mut deleted = self.store.delete_stream(locations);
        while let Some(r) = deleted.next().await {
            not_found_is_none(r)?;
        }
        Ok(())
    }

    /// Checks the backend answers with a write, a read and a delete of a probe object.
    pub async fn probe(&self, key: &str) -> Result<(), StorageError> {
        self.put_bytes(key, Bytes::from_static(b"vaultbase storage probe")).await?;
        let read = self.get_range(key, 0..4).await;
        let deleted = self.delete(key).await;
        read?;
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        assert_eq!(virtual_host_endpoint("https://s3.eu-west-1.amazonaws.com", "b"), "https://b.s3.eu-west-1.amazonaws.com");
        assert_eq!(virtual_host_endpoint("https://b.r2.example.com", "b"), "https://b.r2.example.com");
        assert_eq!(virtual_host_endpoint("http://127.0.0.1:8333", "vb"), "http://vb.127.0.0.1:8333");
    }

    #[tokio::test]
    async fn local_put_stream_range_and_prefix_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local_blocking(&dir.path().join("storage")).expect("local");
        let src = dir.path().join("src.bin");
        // Bigger than one part, so the multipart path runs.
        let data: Vec<u8> = (0..PART_BYTES + 12345).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).expect("write source");
        storage.put_file("c/r/a.bin", &src).await.expect("put");
        storage.put_bytes("c/r/thumbs_a.bin/1x1_a.bin", Bytes::from_static(b"t")).await.expect("thumb");
        let info = storage.head("c/r/a.bin").await.expect("head").expect("exists");
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(storage.get_range("c/r/a.bin", 10..20).await.expect("range").as_ref(), &data[10..20]);
        let mut streamed = Vec::new();
        let mut s = storage.stream("c/r/a.bin", Some(5..PART_BYTES as u64 + 10)).await.expect("stream");
        while let Some(chunk) = s.next().await {
            streamed.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(streamed, &data[5..PART_BYTES + 10]);
        assert!(matches!(storage.put_bytes("c/../x", Bytes::new()).await, Err(StorageError::BadKey(_))));
        storage.delete_prefix("c/r").await.expect("delete");
        assert!(storage.head("c/r/a.bin").await.expect("head").is_none());
        assert!(!dir.path().join("storage").join("c").join("r").exists(), "empty record dir removed");
        storage.delete("c/r/a.bin").await.expect("a missing object is no error");
    }
}
