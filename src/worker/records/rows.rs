//! Reading one record into a typed JSON map, for the places that need the record as data
//! rather than as response bytes: the authenticated actor (`@request.auth.*` in rules) and
//! the auth endpoints' responses. List and view responses use the byte writer instead.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::schema::{quote_ident, Collection, FieldKind};

/// Converts one stored column to its JSON value according to the field's type.
pub fn column_value(kind: &FieldKind, multiple: bool, raw: ValueRef<'_>) -> Value {
    let text = || match raw {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        _ => String::new(),
    };
    let parsed_json = |fallback: Value| match raw {
        ValueRef::Text(t) => serde_json::from_slice(t).unwrap_or(fallback),
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(fallback),
        _ => fallback,
    };
    if multiple {
        return match parsed_json(Value::Array(Vec::new())) {
            Value::Array(a) => Value::Array(a),
            _ => Value::Array(Vec::new()),
        };
    }
    match kind {
        FieldKind::Bool(_) => Value::Bool(match raw {
            ValueRef::Integer(i) => i != 0,
            ValueRef::Real(f) => f != 0.0,
            ValueRef::Text(t) => t == b"1" || t.eq_ignore_ascii_case(b"true"),
            _ => false,
        }),
        FieldKind::Number(_) => match raw {
            ValueRef::Integer(i) => Value::from(i),
            // Integral floats print as integers, like Go.
            ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            ValueRef::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::from(0)),
            ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| s.parse::<f64>().ok()).and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::from(0)),
            _ => Value::from(0),
        },
        FieldKind::Json(_) => parsed_json(Value::Null),
        FieldKind::GeoPoint(_) => parsed_json(serde_json::json!({"lon": 0, "lat": 0})),
        _ => Value::String(text()),
    }
}

/// Loads record `id` of `collection` with every stored field (hidden ones included; callers
/// decide what to show). `None` if there is no such record.
pub fn load(conn: &Connection, collection: &Collection, id: &str) -> rusqlite::Result<Option<Map<String, Value>>> {
    let columns: Vec<String> = collection.fields.iter().map(|f| quote_ident(&f.name)).collect();
    let sql = format!("SELECT {} FROM {} WHERE id = ?1", columns.join(", "), quote_ident(&collection.name));
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([id], |row| {
        let mut map = Map::with_capacity(collection.fields.len());
        for (i, f) in collection.fields.iter().enumerate() {
            map.insert(f.name.clone(), column_value(&f.kind, f.is_multiple(), row.get_ref(i)?));
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
