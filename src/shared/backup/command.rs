//! `vaultbase backup` and `vaultbase restore`: the one-shot commands.
//!
//! `backup` is safe while a server runs: it only reads, through a `VACUUM INTO` snapshot
//! (writers never wait for it), and writes one self-contained `.db` — to a path, or to
//! `s3://bucket/key` / `r2://bucket/key` with the AWS variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, or `R2_ENDPOINT` for R2).
//! `restore` is offline only: it takes the data-dir lock, so it is refused while a server
//! owns the directory (a running server restores through its API instead).

use std::path::{Path, PathBuf};

use super::{archive, swap, BackupError};
use crate::shared::config::Config;
use crate::shared::data_dir::DataDir;
use crate::shared::lock::DirLock;

/// Why a backup or restore command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Lock(#[from] crate::shared::lock::LockError),
    #[error("uploading: {0}")]
    Upload(String),
}

/// Where `--to` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local(PathBuf),
    /// `s3://` or `r2://` (`r2` true): bucket and key.
    Bucket { r2: bool, bucket: String, key: String },
}

/// Parses `--to`: a path, `file:///path`, `s3://bucket/key` or `r2://bucket/key`.
pub fn parse_target(to: &str) -> Result<Target, String> {
    for (scheme, r2) in [("s3://", false), ("r2://", true)] {
        if let Some(rest) = to.strip_prefix(scheme) {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                    Ok(Target::Bucket { r2, bucket: bucket.to_owned(), key: key.to_owned() })
                }
                _ => Err(format!("--to {to:?}: expected {scheme}BUCKET/KEY")),
            };
        }
    }
    let path = to.strip_prefix("file://").unwrap_or(to);
    if path.is_empty() || to.contains("://") && !to.starts_with("file://") {
        return Err(format!("--to {to:?}: expected a path, file:///path, s3://BUCKET/KEY or r2://BUCKET/KEY"));
    }
    Ok(Target::Local(PathBuf::from(path)))
}

fn with_gz(name: &str, gzip: bool) -> String {
    if gzip && !name.ends_with(".gz") {
        format!("{name}.gz")
    } else {
        name.to_owned()
    }
}

/// Runs `vaultbase backup`; returns what to print.
pub fn backup(cfg: &Config, to: &str, gzip: bool) -> Result<String, CommandError> {
    let target = parse_target(to).map_err(CommandError::Usage)?;
    let dir = DataDir::open(&cfg.data_dir).map_err(BackupError::io(format!("opening data dir {}", cfg.data_dir.display())))?;
    let db = dir.db_path();
    if !db.exists() {
        return Err(CommandError::Usage(format!("{} has no database to back up", dir.root().display())));
    }
    let snap = dir.root().join(format!(".vaultbase-snap-{}.db", super::stamp()));
    let packed = dir.root().join(format!(".vaultbase-snap-{}.db.gz", super::stamp()));
    let result = (|| {
        archive::snapshot_db(&db, &snap)?;
        let file = if gzip {
            archive::gzip_file(&snap, &packed)?;
            &packed
        } else {
            &snap
        };
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let shown = match &target {
            Target::Local(path) => {
                let dest = PathBuf::from(with_gz(&path.to_string_lossy(), gzip));
                copy_into_place(file, &dest)?;
                dest.display().to_string()
            }
            Target::Bucket { r2, bucket, key } => {
                let key = with_gz(key, gzip);
                upload(*r2, bucket, &key, file)?;
                format!("{}://{bucket}/{key}", if *r2 { "r2" } else { "s3" })
            }
        };
        Ok(format!("backup written to {shown} ({size} bytes)"))
    })();
    let _ = std::fs::remove_file(&snap);
    let _ = std::fs::remove_file(&packed);
    result
}

/// Copies `src` to `dest` through a temporary name beside it, so `dest` is never half written.
fn copy_into_place(src: &Path, dest: &Path) -> Result<(), BackupError> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("backup");
    let tmp = dest.with_file_name(format!(".{name}.{}.partial", super::stamp()));
    std::fs::copy(src, &tmp).map_err(BackupError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        BackupError::Io { what: format!("writing {}", dest.display()), source: e }
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn upload(r2: bool, bucket: &str, key: &str, file: &Path) -> Result<(), CommandError> {
    use object_store::aws::AmazonS3Builder;
    use object_store::ObjectStore;
    let access = env("AWS_ACCESS_KEY_ID").ok_or_else(|| CommandError::Usage("AWS_ACCESS_KEY_ID is required for s3:// and r2:// targets".into()))?;
    let secret = env("AWS_SECRET_ACCESS_KEY").ok_or_else(|| CommandError::Usage("AWS_SECRET_ACCESS_KEY is required for s3:// and r2:// targets".into()))?;
    let endpoint = if r2 { env("R2_ENDPOINT").or_else(|| env("AWS_ENDPOINT_URL")) } else { env("AWS_ENDPOINT_URL") };
    if r2 && endpoint.is_none() {
        return Err(CommandError::Usage("R2_ENDPOINT is required for r2:// targets".into()));
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(env("AWS_REGION").unwrap_or_else(|| "auto".into()))
        .with_access_key_id(access)
        .with_secret_access_key(secret);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint).with_allow_http(true).with_virtual_hosted_style_request(false);
    }
    let store = builder.build().map_err(|e| CommandError::Upload(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| CommandError::Upload(e.to_string()))?;
    let location = object_store::path::Path::parse(key).map_err(|e| CommandError::Upload(e.to_string()))?;
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut writer = object_store::buffered::BufWriter::new(std::sync::Arc::new(store) as std::sync::Arc<dyn ObjectStore>, location);
        let mut input = tokio::fs::File::open(file).await.map_err(|e| CommandError::Upload(e.to_string()))?;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = input.read(&mut buf).await.map_err(|e| CommandError::Upload(e.to_string()))?;
            if n == 0 {
                break;
            }
            writer.write_all(&buf[..n]).await.map_err(|e| CommandError::Upload(e.to_string()))?;
        }
        writer.shutdown().await.map_err(|e| CommandError::Upload(e.to_string()))
    })
}

/// Runs `vaultbase restore FILE` (a backup zip, or a `.db` / `.db.gz` from `vaultbase
/// backup`); returns what to print. Refused while a server owns the data dir.
pub fn restore(cfg: &Config, file: &str) -> Result<String, CommandError> {
    let source = PathBuf::from(file);
    if !source.is_file() {
        return Err(CommandError::Usage(format!("{file}: no such file")));
    }
    let dir = DataDir::create(&cfg.data_dir).map_err(BackupError::io(format!("opening data dir {}", cfg.data_dir.display())))?;
    let _lock = DirLock::acquire(&dir.lock_path(), dir.root())?;
    let mut head = [0u8; 4];
    let is_zip = std::fs::File::open(&source).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok() && head == *b"PK\x03\x04";
    let staged = if is_zip { archive::stage_zip(dir.root(), &source)? } else { archive::stage_db(dir.root(), &source)? };
    let kept = swap::swap(dir.root(), &staged).inspect_err(|_| staged.discard())?;
    Ok(format!("restored {file} into {}; the previous data is kept in {}", dir.root().display(), kept.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("/tmp/x.db"), Ok(Target::Local("/tmp/x.db".into())));
        assert_eq!(parse_target("file:///tmp/x.db"), Ok(Target::Local("/tmp/x.db".into())));
        assert_eq!(parse_target("s3://b/k/x.db"), Ok(Target::Bucket { r2: false, bucket: "b".into(), key: "k/x.db".into() }));
        assert_eq!(parse_target("r2://b/x.db"), Ok(Target::Bucket { r2: true, bucket: "b".into(), key: "x.db".into() }));
        assert!(parse_target("s3://b").is_err());
        assert!(parse_target("s3:///x").is_err());
        assert!(parse_target("b2://b/x").is_err());
        assert!(parse_target("").is_err());
    }
}
