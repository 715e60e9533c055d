//! Reading one record into a typed JSON map, secrets included, for the places that need the
//! record as data rather than as response bytes: the authenticated actor (`@request.auth.*`
//! in rules) and the auth endpoints. Decoding is `values::output`'s; list and view responses
//! use its byte writer directly.

use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::schema::{quote_ident, Collection, CollectionType, FieldKind};
use super::values::{read_record_map, select_columns};

/// Loads record `id` of `collection` as a typed map: every field the output writer reads
/// (hidden ones included), plus — for auth collections — the `password` hash and `tokenKey`,
/// which the writer never reads and authentication needs (and a webhook's write-only secret,
/// which an update's checks need). `None` if there is no such record.
pub fn load(conn: &Connection, collection: &Collection, id: &str) -> rusqlite::Result<Option<Map<String, Value>>> {
    let secrets: Vec<&str> = if collection.kind == CollectionType::Auth {
        collection
            .fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Password(_)) || f.name == "tokenKey")
            .map(|f| f.name.as_str())
            .collect()
    } else if super::webhooks_collection::is_webhooks(collection) {
        vec![super::webhooks_collection::SECRET_FIELD]
    } else {
        Vec::new()
    };
    let table = quote_ident(&collection.name);
    let mut columns = select_columns(collection);
    for name in &secrets {
        columns.push_str(&format!(", {table}.{}", quote_ident(name)));
    }
    let sql = format!("SELECT {columns} FROM {table} WHERE {table}.\"id\" = ?1");
    let public_count = collection.fields.len() - secrets.len();
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([id], |row| {
        let mut map = read_record_map(collection, row)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
        for (i, name) in secrets.iter().enumerate() {
            let v: Option<String> = row.get(public_count + i)?;
            map.insert((*name).to_owned(), Value::String(v.unwrap_or_default()));
        }
        Ok(map)
    })
    .optional()
}

/// The public JSON of an auth record as the auth endpoints return it: `collectionId` and
/// `collectionName` added; `password` and `tokenKey` never; hidden fields only for
/// superusers (`show_hidden`). The email is always shown: it is the record's own response.
pub fn public_auth_record(collection: &Collection, record: &Map<String, Value>, show_hidden: bool) -> Map<String, Value> {
    let mut out = Map::with_capacity(record.len() + 2);
    out.insert("collectionId".into(), Value::String(collection.id.clone()));
    out.insert("collectionName".into(), Value::String(collection.name.clone()));
    for f in &collection.fields {
        if matches!(f.kind, FieldKind::Password(_)) || f.name == "tokenKey" || (f.hidden && !show_hidden) {
            continue;
        }
        if let Some(v) = record.get(&f.name) {
            out.insert(f.name.clone(), v.clone());
        }
    }
    out
}
