//! The file steps of a record write, in the order the write path runs them: uploads named in
//! the body ([`merge_uploads`]), the uploads the resolved value keeps ([`kept`]) and the stored
//! files it drops ([`removed`]), storing the kept ones before the commit ([`store`]) and undoing
//! that if the write does not commit ([`discard`]), deleting dropped files and deleted records'
//! files after the commit ([`delete_names`], [`delete_records`]).
//!
//! Cleanup after a commit never fails the request: the record is already written, so a
//! storage error there is logged, not returned.

use serde_json::{Map, Value};

use super::names;
use super::staged::StagedFile;
use super::storage::{Storage, StorageError};
use crate::worker::records::schema::{Collection, FieldKind};
use crate::worker::records::values::to_string_list;

/// Puts each upload's stored name into `body` under the key it came with: a plain `field`
/// key keeps the plain names sent under it in front of its uploads (PocketBase), `field+` and
/// `+field` get the names to append or prepend.
pub fn merge_uploads(body: &mut Map<String, Value>, uploads: &[StagedFile]) {
    let mut keys: Vec<&str> = Vec::new();
    for u in uploads {
        if !keys.contains(&u.key.as_str()) {
            keys.push(&u.key);
        }
    }
    for key in keys {
        let mut list = body.get(key).map(to_string_list).unwrap_or_default();
        list.extend(uploads.iter().filter(|u| u.key == key).map(|u| u.stored.clone()));
        body.insert(key.to_owned(), Value::Array(list.into_iter().map(Value::String).collect()));
    }
}

/// The stored names of all uploads (the names validation accepts as new).
pub fn upload_names(uploads: &[StagedFile]) -> Vec<String> {
    uploads.iter().map(|u| u.stored.clone()).collect()
}

/// The uploads the resolved input still names (a single field keeps only its last upload; a
/// `field-` may drop one just added).
pub fn kept<'a>(input: &Map<String, Value>, uploads: &'a [StagedFile]) -> Vec<&'a StagedFile> {
    uploads.iter().filter(|u| input.get(&u.field).map(to_string_list).is_some_and(|l| l.contains(&u.stored))).collect()
}

/// The stored names an update drops: for every file field the input sets, the old names the
/// new value no longer holds.
pub fn removed(c: &Collection, existing: &Map<String, Value>, input: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for f in c.fields.iter().filter(|f| matches!(f.kind, FieldKind::File(_))) {
        let Some(new) = input.get(&f.name) else { continue };
        let new = to_string_list(new);
        let old = existing.get(&f.name).map(to_string_list).unwrap_or_default();
        out.extend(old.into_iter().filter(|n| !new.contains(n)));
    }
    out
}

/// Stores the kept uploads of record `record_id`; returns the keys written. On a failure the
/// keys already written are removed again before the error is returned.
pub async fn store(storage: &Storage, collection_id: &str, record_id: &str, uploads: &[&StagedFile]) -> Result<Vec<String>, StorageError> {
    let mut written = Vec::with_capacity(uploads.len());
    for u in uploads {
        let Some(key) = names::original_key(collection_id, record_id, &u.stored) else {
            discard(storage, &written).await;
            return Err(StorageError::BadKey(format!("{collection_id}/{record_id}/{}", u.stored)));
        };
        if let Err(e) = storage.put_file(&key, u.path()).await {
            // A failed multipart put may have left nothing or a partial object: remove both.
            written.push(key);
            discard(storage, &written).await;
            return Err(e);
        }
        written.push(key);
    }
    if !written.is_empty() {
        test_pause_after_store().await;
    }
    Ok(written)
}

/// Environment variable naming a marker file for [`test_pause_after_store`] (the test suite
/// only; unset in use).
pub const TEST_STORE_PAUSE_VAR: &str = "VAULTBASE_TEST_PAUSE_AFTER_STORE";
/// How long a test pause holds a write at most, so a test whose other request never comes
/// fails instead of hanging.
const TEST_PAUSE_BOUND: std::time::Duration = std::time::Duration::from_secs(10);
const TEST_PAUSE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Test-only: with [`TEST_STORE_PAUSE_VAR`]`=PATH`, a write that has just stored uploads
/// creates `PATH.paused` and waits (before its commit) until `PATH` exists, so a test can run
/// another write on the same record inside that window. `PATH.timeout` says the wait ran out.
async fn test_pause_after_store() {
    static MARKER: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(go) = MARKER.get_or_init(|| std::env::var_os(TEST_STORE_PAUSE_VAR).map(Into::into)) else { return };
    let with_suffix = |suffix: &str| {
        let mut p = go.clone().into_os_string();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    let _ = tokio::fs::write(with_suffix(".paused"), b"").await;
    let deadline = tokio::time::Instant::now() + TEST_PAUSE_BOUND;
    while !tokio::fs::try_exists(go).await.unwrap_or(false) {
        if tokio::time::Instant::now() >= deadline {
            let _ = tokio::fs::write(with_suffix(".timeout"), b"").await;
            return;
        }
        tokio::time::sleep(TEST_PAUSE_POLL).await;
    }
}

/// Removes objects a write stored before it failed to commit.
pub async fn discard(storage: &Storage, keys: &[String]) {
    for key in keys {
        if let Err(e) = storage.delete(key).await {
            tracing::warn!(key, error = %e, "removing a file of a write that did not commit");
        }
    }
}

/// Deletes stored files of one record (and their thumbnails) after the commit that dropped
/// them.
pub async fn delete_names(storage: &Storage, collection_id: &str, record_id: &str, stored: &[String]) {
    for name in stored {
        let (Some(key), Some(thumbs)) = (names::original_key(collection_id, record_id, name), names::thumbs_prefix(collection_id, record_id, name)) else {
            continue;
        };
        if let Err(e) = storage.delete(&key).await {
            tracing::warn!(key, error = %e, "deleting a replaced or removed file");
        }
        if let Err(e) = storage.delete_prefix(&thumbs).await {
            tracing::warn!(prefix = thumbs, error = %e, "deleting the thumbnails of a removed file");
        }
    }
}

/// Deletes every file of each deleted record (cascades included) after the delete committed.
pub async fn delete_records(storage: &Storage, records: &[(String, String)]) {
    for (collection_id, record_id) in records {
        let Some(prefix) = names::record_prefix(collection_id, record_id) else { continue };
        if let Err(e) = storage.delete_prefix(&prefix).await {
            tracing::warn!(prefix, error = %e, "deleting the files of a deleted record");
        }
    }
}
