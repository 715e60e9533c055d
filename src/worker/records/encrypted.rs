//! Encrypted fields on the record paths: sealing values where a record's columns are bound
//! for INSERT/UPDATE ([`seal_columns`], called by `crud::create`/`crud::update`, the only
//! statements that write field values), opening them where a stored row becomes output
//! ([`open_value`], called by the output writer every read path goes through), and the
//! collection-save checks and data migration when a field's `encrypted` option changes.
//!
//! Sealed values are never compared by SQL: filters, sorts and rules naming an encrypted field
//! are refused by the query compiler, and unique indexes on one are refused here, because
//! ciphertext with a random nonce matches nothing (the TypeScript original compared plaintext
//! with ciphertext and silently found nothing). Empty values stay empty (there is nothing to
//! hide but the emptiness, and `required` keeps working on stored rows). The key ring is the
//! process-wide one (`shared::encryption`); this module must not read the environment.

use std::borrow::Cow;

use rusqlite::types::ValueRef;
use rusqlite::Transaction;

use super::schema::{quote_ident, Collection, CollectionType, Field, FieldKind, Invalid, SchemaErrors};
use super::sql_value::SqlValue;
use crate::shared::encryption::{self, is_sealed, Keyring, OpenError};

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum FieldCryptoError {
    #[error("field {0:?} is encrypted but no VAULTBASE_ENCRYPTION_KEY is configured")]
    NoKey(String),
    #[error("field {field:?}: {source}")]
    Open { field: String, source: OpenError },
    #[error(transparent)]
    Seal(#[from] encryption::SealError),
}

/// Whether any field of `c` is encrypted: the one check the write path makes per record.
pub fn has_encrypted(c: &Collection) -> bool {
    c.fields.iter().any(|f| f.encrypted)
}

fn ring_for(field: &str) -> Result<&'static Keyring, FieldCryptoError> {
    encryption::keyring().ok_or_else(|| FieldCryptoError::NoKey(field.to_owned()))
}

/// `columns` with every non-empty value of an encrypted field sealed; borrowed unchanged for
/// collections without encrypted fields.
pub fn seal_columns<'a>(c: &Collection, columns: &'a [(String, SqlValue)]) -> Result<Cow<'a, [(String, SqlValue)]>, FieldCryptoError> {
    if !has_encrypted(c) {
        return Ok(Cow::Borrowed(columns));
    }
    let mut out = columns.to_vec();
    for (name, value) in out.iter_mut() {
        if !c.field(name).is_some_and(|f| f.encrypted) {
            continue;
        }
        let plain = match &*value {
            SqlValue::Null => continue,
            SqlValue::Text(t) if t.is_empty() => continue,
            other => other.to_text(),
        };
        *value = SqlValue::Text(ring_for(name)?.seal(plain.as_bytes())?);
    }
    Ok(Cow::Owned(out))
}

/// Whether the output writer must look at `field`'s stored value before writing it: an
/// encrypted field, or any text-like column of a view (a view may select an encrypted column
/// under another name, and must not show its ciphertext).
pub fn needs_opening(collection: &Collection, field: &Field) -> bool {
    field.encrypted || (collection.kind == CollectionType::View && matches!(field.kind, FieldKind::Text(_) | FieldKind::Json(_)))
}

/// A stored value as the output writer must see it: sealed text opened, anything else as it
/// is (empty values, rows written before the field was encrypted). A value that cannot be
/// opened is an error, never shown.
pub fn open_value(field: &Field, v: ValueRef<'_>) -> Result<Option<Vec<u8>>, FieldCryptoError> {
    match v {
        ValueRef::Text(t) if is_sealed(t) => {
            let plain = ring_for(&field.name)?.open(t).map_err(|source| FieldCryptoError::Open { field: field.name.clone(), source })?;
            Ok(Some(plain))
        }
        _ => Ok(None),
    }
}

/// The collection-save checks: a key must be configured, and no unique index may cover an
/// encrypted field (it would compare ciphertext). Errors name the field under `fields.N` or
/// `indexes.N`, as PocketBase reports definition errors. Call with the final indexes.
pub fn check_definition(c: &Collection, errors: &mut SchemaErrors) {
    if !has_encrypted(c) {
        return;
    }
    if encryption::keyring().is_none() {
        for (i, f) in c.fields.iter().enumerate().filter(|(_, f)| f.encrypted) {
            errors.add(
                format!("fields.{i}.encrypted"),
                Invalid::new("validation_encryption_key_missing", format!("Field \"{}\" cannot be encrypted: the server has no VAULTBASE_ENCRYPTION_KEY.", f.name)),
            );
        }
    }
    for (i, sql) in c.indexes.iter().enumerate() {
        if !is_unique_index(sql) {
            continue;
        }
        let columns = index_columns(sql);
        if let Some(f) = c.fields.iter().find(|f| f.encrypted && columns.iter().any(|col| col.eq_ignore_ascii_case(&f.name))) {
            errors.add(
                format!("indexes.{i}"),
                Invalid::new(
                    "validation_encrypted_unique_index",
                    format!("Field \"{}\" is encrypted: a unique index cannot include it (encrypted values never compare equal).", f.name),
                ),
            );
        }
    }
}

/// In a PATCH's `fields` JSON, marks `encrypted` on every stored encrypted field (matched by
/// id) that the body sends without the key: a client that does not know the option (an admin
/// UI built for PocketBase) must not decrypt a field's data by leaving it out. Turning it off
/// takes an explicit `"encrypted": false`.
pub fn keep_encrypted_flags(base: &Collection, fields: &mut serde_json::Value) {
    let Some(items) = fields.as_array_mut() else { return };
    for item in items {
        let Some(obj) = item.as_object_mut() else { continue };
        let id = obj.get("id").and_then(serde_json::Value::as_str).unwrap_or_default();
        if !obj.contains_key("encrypted") && base.fields.iter().any(|f| f.encrypted && !id.is_empty() && f.id == id) {
            obj.insert("encrypted".into(), serde_json::Value::Bool(true));
        }
    }
}

fn is_unique_index(sql: &str) -> bool {
    let upper = sql.trim_start().to_ascii_uppercase();
    upper.strip_prefix("CREATE").is_some_and(|rest| rest.trim_start().starts_with("UNIQUE"))
}

/// The identifiers inside an index statement's column list (after `ON table`), unquoted.
fn index_columns(sql: &str) -> Vec<String> {
    let upper = sql.to_ascii_uppercase();
    let Some(on) = upper.find(" ON ") else { return Vec::new() };
    let Some(open) = sql.get(on..).and_then(|s| s.find('(')).map(|p| p + on) else { return Vec::new() };
    let list = sql.get(open..).unwrap_or_default();
    list.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Seals or opens the stored values of field `name` of table `table` after its `encrypted`
/// option changed, inside the collection save's transaction, so the data always matches its
/// definition.
pub fn migrate_column(tx: &Transaction<'_>, table: &str, name: &str, encrypt: bool) -> Result<usize, MigrateError> {
    let ring = ring_for(name)?;
    let col = quote_ident(name);
    let table = quote_ident(table);
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare(&format!("SELECT \"id\", CAST({col} AS TEXT) FROM {table} WHERE {col} IS NOT NULL AND CAST({col} AS TEXT) != ''"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update = tx.prepare(&format!("UPDATE {table} SET {col} = ?1 WHERE \"id\" = ?2"))?;
    let mut changed = 0;
    for (id, stored) in rows {
        let sealed = is_sealed(stored.as_bytes());
        let next = if encrypt && !sealed {
            ring.seal(stored.as_bytes())?
        } else if !encrypt && sealed {
            ring.open_text(&stored).map_err(|source| FieldCryptoError::Open { field: name.to_owned(), source })?
        } else {
            continue;
        };
        update.execute([&next, &id])?;
        changed += 1;
    }
    Ok(changed)
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Crypto(#[from] FieldCryptoError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl From<encryption::SealError> for MigrateError {
    fn from(e: encryption::SealError) -> Self {
        MigrateError::Crypto(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_indexes_are_recognised_with_their_columns() {
        assert!(is_unique_index("CREATE UNIQUE INDEX idx ON t (a)"));
        assert!(is_unique_index("create  unique index `x` on t (a)"));
        assert!(!is_unique_index("CREATE INDEX idx_unique ON t (a)"));
        assert_eq!(index_columns("CREATE UNIQUE INDEX i ON \"t\" (\"secret\", `b` COLLATE NOCASE)"), ["secret", "b", "COLLATE", "NOCASE"]);
    }
}
