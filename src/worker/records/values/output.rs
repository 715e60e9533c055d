//! Record rows to PocketBase's record JSON, written straight into a byte buffer.
//!
//! The shape (§2.1 of the API reference): `collectionId`, `collectionName`, then every visible
//! field in definition order with its JSON type. Hidden fields appear only when asked for;
//! `password` and `tokenKey` never; an auth record's `email` only when `emailVisibility` is
//! true or the caller may see it. No `serde_json::Value` is built on this path (measured 3×
//! slower); stored JSON text is checked and copied as it is.
//!
//! A response's `fields` projection is applied here, key by key, through a [`RecordPlan`]
//! resolved once per response; [`write_record_open`] leaves the object open so that the
//! caller can append the record's `expand` object (built elsewhere) before the closing brace.
//! Only a value under a modifier or a path into it is decoded, and only that value.
//!
//! Encrypted fields are opened here (`records::encrypted`), the one place every read path —
//! lists, views, expand, realtime, auth responses, the write path's returned record — turns a
//! stored row into output; a value that cannot be opened fails the read instead of showing.
//!
//! Reading never fails on odd stored data (text in a number column, broken JSON, invalid
//! UTF-8 from an import): each column falls back to its field's zero value or a string, so one
//! bad row cannot break a list response. Only SQLite errors are returned.

use rusqlite::types::ValueRef;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::worker::records::encrypted::{needs_opening, open_value};
use crate::worker::records::fields::{KeyPick, Projection};
use crate::worker::records::schema::{quote_ident, Collection, CollectionType, Field, FieldKind};
use crate::worker::records::webhooks_collection;

/// What a reader may see of a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// Include fields marked `hidden` (superusers).
    pub show_hidden: bool,
    /// Include an auth record's `email` even when `emailVisibility` is false (the record itself,
    /// superusers, managers, auth responses).
    pub show_email: bool,
}

/// Why a row could not be read into a map.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("record JSON did not parse back: {0}")]
    Json(#[from] serde_json::Error),
}

/// Fields that are ever read for output: never a password hash, never an auth token key,
/// never a webhook's secret.
fn selected(collection: &Collection) -> impl Iterator<Item = &Field> {
    let auth = collection.kind == CollectionType::Auth;
    collection.fields.iter().filter(move |f| {
        !(matches!(f.kind, FieldKind::Password(_)) || (auth && f.name == "tokenKey") || webhooks_collection::write_only(collection, f))
    })
}

/// The column list [`write_record_json`] reads, in its order: `"table"."field", …`, quoted and
/// qualified so it stays unambiguous in joins.
pub fn select_columns(collection: &Collection) -> String {
    let table = quote_ident(&collection.name);
    let cols: Vec<String> = selected(collection).map(|f| format!("{table}.{}", quote_ident(&f.name))).collect();
    cols.join(", ")
}

/// Writes one record object for `row`, which must come from a query selecting
/// [`select_columns`] first (in that order; further columns after them are ignored).
pub fn write_record_json(out: &mut Vec<u8>, collection: &Collection, row: &rusqlite::Row<'_>, opts: &OutputOptions) -> rusqlite::Result<()> {
    write_record_open(out, collection, row, opts, None)?;
    out.push(b'}');
    Ok(())
}

/// Which keys of one collection's records a response shows, and how: the `fields`
/// projection resolved against the collection once per response, so that writing a row costs
/// one lookup per key and nothing is re-parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPlan {
    collection_id: KeyPick,
    collection_name: KeyPick,
    /// One per [`selected`] field, in that order.
    fields: Vec<KeyPick>,
    expand: KeyPick,
}

impl RecordPlan {
    pub fn new(collection: &Collection, projection: &Projection) -> RecordPlan {
        RecordPlan {
            collection_id: projection.key("collectionId"),
            collection_name: projection.key("collectionName"),
            fields: selected(collection).map(|f| projection.key(&f.name)).collect(),
            expand: projection.key("expand"),
        }
    }

    /// How the record's `expand` key is shown.
    pub fn expand(&self) -> &KeyPick {
        &self.expand
    }
}

const KEEP: KeyPick = KeyPick::Keep(None);

/// Writes `{` and the record's keys (all of them, or those `plan` shows) and leaves the object
/// open, so that the caller can add `expand` before the closing `}`. Returns whether a key was
/// written (a further key then needs a comma).
pub fn write_record_open(
    out: &mut Vec<u8>,
    collection: &Collection,
    row: &rusqlite::Row<'_>,
    opts: &OutputOptions,
    plan: Option<&RecordPlan>,
) -> rusqlite::Result<bool> {
    let auth = collection.kind == CollectionType::Auth;
    let email_visible = if auth && !opts.show_email {
        match selected(collection).position(|f| f.name == "emailVisibility") {
            Some(i) => truthy(row.get_ref(i)?),
            None => false,
        }
    } else {
        true
    };
    out.push(b'{');
    let mut wrote = false;
    let mut scratch = Vec::new();
    let id_pick = plan.map_or(&KEEP, |p| &p.collection_id);
    write_key(out, &mut wrote, &mut scratch, "collectionId", id_pick, |o| write_str(o, &collection.id));
    let name_pick = plan.map_or(&KEEP, |p| &p.collection_name);
    write_key(out, &mut wrote, &mut scratch, "collectionName", name_pick, |o| write_str(o, &collection.name));
    for (i, field) in selected(collection).enumerate() {
        if field.hidden && !opts.show_hidden {
            continue;
        }
        if auth && field.name == "email" && !email_visible {
            continue;
        }
        let pick = match plan {
            None => &KEEP,
            Some(p) => p.fields.get(i).unwrap_or(&KeyPick::Drop),
        };
        if pick.is_drop() {
            continue;
        }
        let value = row.get_ref(i)?;
        if needs_opening(collection, field) {
            // Opened here, where every read path turns a row into output: a value that does
            // not open fails the request rather than being shown as ciphertext.
            let opened = open_value(field, value)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))?;
            if let Some(plain) = opened {
                write_key(out, &mut wrote, &mut scratch, &field.name, pick, |o| write_field(o, field, ValueRef::Text(&plain)));
                continue;
            }
        }
        write_key(out, &mut wrote, &mut scratch, &field.name, pick, |o| write_field(o, field, value));
    }
    Ok(wrote)
}

/// Writes `"name":value` (with a leading comma unless it is the first key) as `pick` says.
/// A modifier or a nested projection goes through `scratch`: the value is written there first,
/// then transformed (the only places a value is decoded on the output path).
fn write_key(out: &mut Vec<u8>, wrote: &mut bool, scratch: &mut Vec<u8>, name: &str, pick: &KeyPick, value: impl FnOnce(&mut Vec<u8>)) {
    if pick.is_drop() {
        return;
    }
    if *wrote {
        out.push(b',');
    }
    *wrote = true;
    write_str(out, name);
    out.push(b':');
    match pick {
        KeyPick::Drop | KeyPick::Keep(None) => value(out),
        KeyPick::Keep(Some(excerpt)) => {
            scratch.clear();
            value(scratch);
            match scratch.first() {
                Some(b'"') => match serde_json::from_slice::<String>(scratch) {
                    Ok(s) => write_str(out, &excerpt.apply(&s)),
                    Err(_) => out.extend_from_slice(scratch),
                },
                // Not a string: PocketBase leaves it as it is.
                _ => out.extend_from_slice(scratch),
            }
        }
        KeyPick::Nested(fields) => {
            scratch.clear();
            value(scratch);
            match scratch.first() {
                Some(b'{' | b'[') => match serde_json::from_slice::<Value>(scratch) {
                    Ok(mut v) => {
                        fields.pick_value(&mut v);
                        write_json_value(out, &v);
                    }
                    Err(_) => out.extend_from_slice(scratch),
                },
                _ => out.extend_from_slice(scratch),
            }
        }
    }
}

/// A decoded JSON value, written with the same string escaping and number format as the rest
/// of the record.
pub fn write_json_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.extend_from_slice(i.to_string().as_bytes()),
            (_, Some(u), _) => out.extend_from_slice(u.to_string().as_bytes()),
            (_, _, Some(f)) => write_float(out, f),
            _ => out.push(b'0'),
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_json_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// The ids a relation column holds, in order and without repeats or empty ids (PocketBase's
/// `GetStringSlice`): a JSON array's strings (also a single field's value left from when it
/// was multiple), otherwise the text itself as one id.
pub fn relation_ids(v: ValueRef<'_>) -> Vec<String> {
    let text = match v {
        ValueRef::Text(t) => t,
        _ => return Vec::new(),
    };
    let mut ids: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let parsed = if text.contains(&b'[') { serde_json::from_slice::<Vec<Value>>(text).ok() } else { None };
    let candidates: Vec<String> = match parsed {
        Some(values) => values.into_iter().filter_map(|v| if let Value::String(s) = v { Some(s) } else { None }).collect(),
        None => vec![String::from_utf8_lossy(text).into_owned()],
    };
    for id in candidates {
        if !id.is_empty() && seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    ids
}

/// The index of `name` among the columns [`select_columns`] lists, if it is read for output.
pub fn column_index(collection: &Collection, name: &str) -> Option<usize> {
    selected(collection).position(|f| f.name == name)
}

/// How many columns [`select_columns`] lists: the first column a caller adds after them.
pub fn column_count(collection: &Collection) -> usize {
    selected(collection).count()
}

/// The full record (hidden fields and email included, secrets not) as a JSON map: the shape
/// the write path takes as the existing record. Not for output: it builds a `Value` tree.
pub fn read_record_map(collection: &Collection, row: &rusqlite::Row<'_>) -> Result<Map<String, Value>, OutputError> {
    let mut buf = Vec::new();
    write_record_json(&mut buf, collection, row, &OutputOptions { show_hidden: true, show_email: true })?;
    let mut map: Map<String, Value> = serde_json::from_slice(&buf)?;
    map.remove("collectionId");
    map.remove("collectionName");
    Ok(map)
}

fn write_field(out: &mut Vec<u8>, field: &Field, v: ValueRef<'_>) {
    match &field.kind {
        FieldKind::Number(_) => write_number(out, v),
        FieldKind::Bool(_) => out.extend_from_slice(if truthy(v) { b"true" } else { b"false" }),
        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_) if field.is_multiple() => write_list(out, v),
        FieldKind::Json(_) => write_json(out, v),
        FieldKind::GeoPoint(_) => write_geo(out, v),
        _ => write_text(out, v),
    }
}

/// 0/1 as SQLite stores booleans; text `true`/`1` from imports too.
fn truthy(v: ValueRef<'_>) -> bool {
    match v {
        ValueRef::Integer(i) => i != 0,
        ValueRef::Real(f) => f != 0.0,
        ValueRef::Text(t) => matches!(t, b"1" | b"true" | b"TRUE" | b"t"),
        ValueRef::Null | ValueRef::Blob(_) => false,
    }
}

fn write_text(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => write_str(out, &String::from_utf8_lossy(t)),
        ValueRef::Null => out.extend_from_slice(b"\"\""),
        ValueRef::Integer(i) => write_str(out, &i.to_string()),
        ValueRef::Real(f) => write_str(out, &super::format_float(f)),
    }
}

fn write_number(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => write_float(out, f),
        ValueRef::Text(t) => {
            let f = std::str::from_utf8(t).ok().and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(0.0);
            write_float(out, f);
        }
        ValueRef::Null | ValueRef::Blob(_) => out.push(b'0'),
    }
}

/// A float as Go's `encoding/json` writes it: shortest digits, plain notation for magnitudes in
/// [1e-6, 1e21), exponent notation (`1e+21`, `1e-7`) outside; integral values without `.0`.
/// Non-finite values, which JSON cannot carry, are written as 0.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.push(b'0');
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                out.extend_from_slice(mantissa.as_bytes());
                out.extend_from_slice(b"e+");
                out.extend_from_slice(exp.as_bytes());
            }
            _ => out.extend_from_slice(s.as_bytes()),
        }
    } else {
        // -0 prints as "-0" in Go too; both are the JSON number zero.
        out.extend_from_slice(super::format_float(f).as_bytes());
    }
}

/// Stored JSON text if it is valid JSON (copied as it is), else `None`.
fn valid_json(t: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(t).ok()?;
    serde_json::from_str::<&RawValue>(s).ok().map(RawValue::get)
}

fn write_list(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Text(t) => match valid_json(t) {
            Some(raw) if raw.starts_with('[') => out.extend_from_slice(raw.as_bytes()),
            // A single value left from before the field became multiple.
            _ if !t.is_empty() => {
                out.push(b'[');
                write_str(out, &String::from_utf8_lossy(t));
                out.push(b']');
            }
            _ => out.extend_from_slice(b"[]"),
        },
        _ => out.extend_from_slice(b"[]"),
    }
}

fn write_json(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.extend_from_slice(b"null"),
        // The JSON column has NUMERIC affinity: a stored `123` comes back as an integer.
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => write_float(out, f),
        ValueRef::Text(t) | ValueRef::Blob(t) => match valid_json(t) {
            Some(raw) => out.extend_from_slice(raw.as_bytes()),
            None => write_str(out, &String::from_utf8_lossy(t)),
        },
    }
}

fn write_geo(out: &mut Vec<u8>, v: ValueRef<'_>) {
    if let ValueRef::Text(t) = v {
        if let Some(raw) = valid_json(t).filter(|raw| raw.starts_with('{')) {
            out.extend_from_slice(raw.as_bytes());
            return;
        }
    }
    out.extend_from_slice(b"{\"lon\":0,\"lat\":0}");
}

/// A JSON string literal. Escapes what JSON requires plus U+2028/U+2029 (as Go does, so the
/// output is also safe inside a `<script>`), copying unescaped runs in one go.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f => Some(b""),
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => Some(b""),
            _ => None,
        };
        let Some(esc) = escape else {
            i += 1;
            continue;
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if !esc.is_empty() {
            out.extend_from_slice(esc);
            i += 1;
        } else if b == 0xE2 {
            let last = bytes.get(i + 2).copied().unwrap_or(0xA8);
            out.extend_from_slice(if last == 0xA8 { b"\\u2028" } else { b"\\u2029" });
            i += 3;
        } else {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
