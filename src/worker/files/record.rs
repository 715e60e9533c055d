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
    Ok(written)
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
