//! PocketBase's backups, as a domain: where backups are kept (the data dir's `backups/`, or
//! the `backups.s3` bucket), their names, making one, and turning one into a staged restore.
//! No HTTP here; `api/backups` parses and authorizes, `ops/restore` swaps.
//!
//! One backup or restore runs at a time in the whole cluster (the data dir's operation lock),
//! as PocketBase refuses a second with "Try again later".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::shared::backup::archive::{self, Staged};
use crate::shared::backup::{self, BackupError, OperationGuard};
use crate::worker::files::storage::{Backend, ObjectInfo, Storage, StorageError};
use crate::worker::settings::{self, SettingsError};
use crate::worker::state::AppState;

/// The longest backup name PocketBase accepts.
pub const MAX_NAME_CHARS: usize = 150;
/// The prefix of the backups the `backups.cron` schedule makes.
pub const AUTO_PREFIX: &str = "@auto_pb_backup_";

#[derive(Debug, thiserror::Error)]
pub enum BackupsError {
    /// Another backup or restore holds the operation lock.
    #[error("another backup or restore is running")]
    Busy,
    #[error("no such backup")]
    NotFound,
    #[error("a backup with this name already exists")]
    Exists,
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("backups storage: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("a backup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Restore(#[from] super::restore::RestoreError),
}

/// One listed backup.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// Whether `name` is a valid name for a new backup (PocketBase's rule).
pub fn valid_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".zip") else { return false };
    name.chars().count() <= MAX_NAME_CHARS
        && !stem.is_empty()
        && stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `key` may name a stored backup at all: one plain file name (uploads keep their
/// original name, which PocketBase does not check against the rule above).
pub fn safe_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && !key.starts_with('.')
        && !key.contains(['/', '\\', '#'])
        && !key.chars().any(char::is_control)
}

/// PocketBase's generated name: `<prefix><app>_<UTC yyyymmddhhmmss>.zip`, the app name in
/// snake case.
pub fn generated_name(prefix: &str, app_name: &str, now: SystemTime) -> String {
    let mut app = String::new();
    for c in app_name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            app.push(c.to_ascii_lowercase());
        } else if !app.ends_with('_') && !app.is_empty() {
            app.push('_');
        }
    }
    let app = app.trim_end_matches('_');
    let stamp = compact_utc(now);
    if app.is_empty() {
        format!("{prefix}{stamp}.zip")
    } else {
        format!("{prefix}{app}_{stamp}.zip")
    }
}

/// `yyyymmddhhmmss` in UTC.
fn compact_utc(t: SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (y, m, d) = crate::worker::records::values::datetime::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The storage backups are kept in, as the settings say now.
pub async fn store(state: &AppState) -> Result<Arc<Storage>, BackupsError> {
    let loaded = state.settings.fresh(&state.db).await?;
    let s3 = &loaded.settings.backups.s3;
    if s3.enabled {
        let secrets = state.db.read(settings::load_secrets).await?;
        return Ok(Arc::new(Storage::s3(s3, &secrets.backups_s3_secret)?));
    }
    let dir = backup::backups_dir(&state.config.data_dir);
    Ok(Arc::new(tokio::task::spawn_blocking(move || Storage::local_blocking(&dir)).await??))
}

/// Every backup, newest first.
pub async fn list(state: &AppState) -> Result<Vec<Listed>, BackupsError> {
    let storage = store(state).await?;
    let mut out: Vec<Listed> = storage
        .list_top()
        .await?
        .into_iter()
        .filter(|(key, _)| safe_key(key))
        .map(|(key, ObjectInfo { size, modified, .. })| Listed { key, size, modified })
        .collect();
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.key.cmp(&b.key)));
    Ok(out)
}

/// Takes the cluster-wide operation lock, or says another operation holds it.
pub async fn begin(state: &AppState) -> Result<OperationGuard, BackupsError> {
    let root = state.config.data_dir.clone();
    tokio::task::spawn_blocking(move || OperationGuard::try_acquire(&root)).await??.ok_or(BackupsError::Busy)
}

/// Makes the backup `name` (already validated) of the whole data dir.
pub async fn create(state: &AppState, name: &str, _guard: &OperationGuard) -> Result<(), BackupsError> {
    let storage = store(state).await?;
    if storage.head(name).await?.is_some() {
        return Err(BackupsError::Exists);
    }
    let root = state.config.data_dir.clone();
    let local = storage.backend == Backend::Local;
    let dest = if local { backup::backups_dir(&root).join(name) } else { root.join(format!(".{name}.{}.upload", backup::stamp())) };
    let (r, d) = (root.clone(), dest.clone());
    tokio::task::spawn_blocking(move || archive::write_zip(&r, &d)).await??;
    if !local {
        let put = storage.put_file(name, &dest).await;
        let _ = tokio::fs::remove_file(&dest).await;
        put?;
    }
    Ok(())
}

/// Stores an uploaded backup (already received into `file`) under `name`.
pub async fn store_upload(state: &AppState, name: &str, file: &Path) -> Result<(), BackupsError> {
    let storage = store(state).await?;
    if storage.head(name).await?.is_some() {
        return Err(BackupsError::Exists);
    }
    storage.put_file(name, file).await?;
    Ok(())
}

/// Deletes the backup `key`.
pub async fn delete(state: &AppState, key: &str) -> Result<(), BackupsError> {
    let storage = store(state).await?;
    if !safe_key(key) || storage.head(key).await?.is_none() {
        return Err(BackupsError::NotFound);
    }
    storage.delete(key).await?;
    Ok(())
}

/// Unpacks and checks the backup `key` into a staging directory (the slow part of a restore,
/// done while everything still serves).
pub async fn stage(state: &AppState, key: &str) -> Result<Staged, BackupsError> {
    let storage = store(state).await?;
    if !safe_key(key) || storage.head(key).await?.is_none() {
        return Err(BackupsError::NotFound);
    }
    let root = state.config.data_dir.clone();
    let zip_path: PathBuf = match storage.backend {
        Backend::Local => backup::backups_dir(&root).join(key),
        Backend::S3 => {
            let tmp = root.join(format!(".{key}.{}.download", backup::stamp()));
            let bytes_to = tmp.clone();
            let mut stream = storage.stream(key, None).await?;
            let mut out = tokio::fs::File::create(&bytes_to).await.map_err(BackupError::io("creating the download file"))?;
            use futures_util::StreamExt;
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?).await.map_err(BackupError::io("writing the download file"))?;
            }
            out.flush().await.map_err(BackupError::io("writing the download file"))?;
            tmp
        }
    };
    let (r, z) = (root.clone(), zip_path.clone());
    let staged = tokio::task::spawn_blocking(move || archive::stage_zip(&r, &z)).await?;
    if storage.backend == Backend::S3 {
        let _ = tokio::fs::remove_file(&zip_path).await;
    }
    Ok(staged?)
}

/// Keeps at most `max_keep` automatic backups (the oldest go first); others are untouched.
pub async fn prune_auto(state: &AppState, max_keep: usize) -> Result<usize, BackupsError> {
    let storage = store(state).await?;
    let listed = list(state).await?;
    let mut removed = 0;
    for old in listed.iter().filter(|b| b.key.starts_with(AUTO_PREFIX)).skip(max_keep) {
        storage.delete(&old.key).await?;
        removed += 1;
    }
    Ok(removed)
}

/// The cron job id of the automatic backups, as PocketBase names it.
pub const AUTO_BACKUP_JOB: &str = "__pbAutoBackup__";
/// How often a worker compares its `__pbAutoBackup__` registration with the settings, besides
/// the moments it knows they changed (its own PATCH, a bus `Invalidate`).
pub const SCHEDULE_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Registers, re-registers or removes `__pbAutoBackup__` so it follows `backups.cron`. Every
/// worker registers it; the scheduler's claim makes each slot run once in the cluster.
pub async fn sync_schedule(state: &AppState) {
    let loaded = match state.settings.fresh(&state.db).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(worker_id = state.worker_id, error = %e, "reading backups.cron failed; schedule unchanged");
            return;
        }
    };
    let wanted = loaded.settings.backups.cron.trim().to_owned();
    let held = state.crons.get(AUTO_BACKUP_JOB).map(|j| j.schedule.expression().to_owned());
    if held.as_deref() == Some(wanted.as_str()) || (held.is_none() && wanted.is_empty()) {
        return;
    }
    if wanted.is_empty() {
        state.crons.remove(AUTO_BACKUP_JOB);
        return;
    }
    if let Err(e) = state.crons.add(AUTO_BACKUP_JOB, &wanted, crate::worker::cron::job_fn(auto_backup)) {
        tracing::warn!(worker_id = state.worker_id, error = %e, "backups.cron is not a valid cron expression; automatic backups are off");
        state.crons.remove(AUTO_BACKUP_JOB);
    }
}

/// Keeps [`sync_schedule`] in step with the settings for the life of the worker.
pub async fn keep_schedule_in_sync(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        sync_schedule(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(SCHEDULE_SYNC_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `__pbAutoBackup__`: a backup named `@auto_pb_backup_<app>_<time>.zip`, then only the
/// newest `backups.cronMaxKeep` automatic backups are kept (0 keeps them all).
async fn auto_backup(state: AppState) -> Result<(), String> {
    let loaded = state.settings.fresh(&state.db).await.map_err(|e| e.to_string())?;
    let name = generated_name(AUTO_PREFIX, &loaded.settings.meta.app_name, SystemTime::now());
    let guard = begin(&state).await.map_err(|e| e.to_string())?;
    create(&state, &name, &guard).await.map_err(|e| e.to_string())?;
    drop(guard);
    let keep = loaded.settings.backups.cron_max_keep as usize;
    if keep > 0 {
        let removed = prune_auto(&state, keep).await.map_err(|e| e.to_string())?;
        tracing::info!(worker_id = state.worker_id, backup = name, removed, "automatic backup made");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pocketbase() {
        assert!(valid_name("good_1.zip"));
        assert!(valid_name("a-b.zip"));
        for bad in ["Bad.zip", "nozip", ".zip", "a b.zip", "a.tar.zip", "../x.zip"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_name(&format!("{}.zip", "a".repeat(147))));
        assert!(valid_name(&format!("{}.zip", "a".repeat(146))));
    }

    #[test]
    fn generated_names_carry_the_app_and_the_time() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_640_177);
        assert_eq!(generated_name("pb_backup_", "Acme", t), "pb_backup_acme_20261207104257.zip");
        assert_eq!(generated_name(AUTO_PREFIX, "My App!", t), "@auto_pb_backup_my_app_20261207104257.zip");
    }

    #[test]
    fn keys_are_plain_names() {
        assert!(safe_key("Bad Name.zip"));
        assert!(!safe_key("../x.zip"));
        assert!(!safe_key(".hidden"));
        assert!(!safe_key("a/b"));
    }
}
