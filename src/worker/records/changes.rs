//! [`Change`]: a record as one committed write left it (or, for a delete, as it was just
//! before), captured inside the write transaction for the after-commit effects — realtime
//! events first. It owns the capture and the value form only; it must not decide who may see
//! a change or deliver it (that is `worker::realtime`), and capturing must never fail a write
//! that would otherwise succeed for any reason but SQLite itself failing.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::schema::{quote_ident, Collection};
use super::sql_value::SqlValue;

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One committed record change, with every stored column (secrets included: rules may read
/// them, the output writer never prints them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub collection_id: String,
    pub record_id: String,
    /// (column, value) for every field of the collection as the writer knew it.
    #[serde(with = "columns_json")]
    pub columns: Vec<(String, SqlValue)>,
    /// An update's record as it was before it, for the after-commit observers of the worker
    /// that made the write. Not sent on the bus: realtime judges only the record as it is.
    #[serde(skip)]
    pub before: Option<Vec<(String, SqlValue)>>,
}

/// The changes one write job produced, in the order it made them, and whether updated records
/// are captured as they were before the update too: only after-commit observers read that, so
/// without them an update costs no extra read.
#[derive(Debug, Default)]
pub struct Changes {
    list: Vec<Change>,
    keep_before: bool,
}

impl Changes {
    /// Changes without the records as they were before an update.
    pub fn new() -> Changes {
        Changes::default()
    }

    /// Changes that keep each updated record as it was before (for observers).
    pub fn keeping_before() -> Changes {
        Changes { list: Vec::new(), keep_before: true }
    }

    /// Record `id` of `c` as it is now, if this job keeps records as they were before an
    /// update (call it just before the update); None otherwise.
    pub fn before(&self, conn: &Connection, c: &Collection, id: &str) -> rusqlite::Result<Option<Vec<(String, SqlValue)>>> {
        if self.keep_before {
            capture(conn, c, id)
        } else {
            Ok(None)
        }
    }
}

impl std::ops::Deref for Changes {
    type Target = Vec<Change>;

    fn deref(&self) -> &Vec<Change> {
        &self.list
    }
}

impl std::ops::DerefMut for Changes {
    fn deref_mut(&mut self) -> &mut Vec<Change> {
        &mut self.list
    }
}

/// The `_vb_versions` row holding the cluster-wide change sequence.
pub const SEQUENCE_ROW: &str = "realtime";

/// One committed write job's changes with their place in the cluster-wide commit order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// 0 when there are no changes (nothing was stamped).
    pub seq: u64,
    pub changes: Vec<Change>,
}

/// Gives `changes` the next sequence number, inside the write transaction that made them:
/// SQLite's write lock serialises the bump with the commit, so sequence order is commit
/// order across every process on the database. No changes, no bump.
pub fn stamp(conn: &Connection, changes: Changes) -> rusqlite::Result<Stamped> {
    let changes = changes.list;
    if changes.is_empty() {
        return Ok(Stamped::default());
    }
    let seq: i64 = conn
        .prepare_cached("UPDATE _vb_versions SET version = version + 1 WHERE name = ?1 RETURNING version")?
        .query_row([SEQUENCE_ROW], |r| r.get(0))?;
    Ok(Stamped { seq: u64::try_from(seq).unwrap_or(0), changes })
}

/// The last sequence number committed so far.
pub fn current_sequence(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: Option<i64> =
        conn.prepare_cached("SELECT version FROM _vb_versions WHERE name = ?1")?.query_row([SEQUENCE_ROW], |r| r.get(0)).optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// Reads record `id` of `c` as it is now in this transaction; `None` if it does not exist.
pub fn capture(conn: &Connection, c: &Collection, id: &str) -> rusqlite::Result<Option<Vec<(String, SqlValue)>>> {
    let table = quote_ident(&c.name);
    let cols: Vec<String> = c.fields.iter().map(|f| format!("{table}.{}", quote_ident(&f.name))).collect();
    let sql = format!("SELECT {} FROM {table} WHERE {table}.\"id\" = ?1", cols.join(", "));
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([id], |row| {
        let mut out = Vec::with_capacity(c.fields.len());
        for (i, f) in c.fields.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(n) => SqlValue::Integer(n),
                ValueRef::Real(x) => SqlValue::Real(x),
                // vaultbase never writes BLOBs; one written by another tool reads as text.
                ValueRef::Text(t) | ValueRef::Blob(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            };
            out.push((f.name.clone(), v));
        }
        Ok(out)
    })
    .optional()
}

/// Captures record `id` after a create or update and records it in `changes`, with `before`
/// (the record as [`capture`] read it before an update; None for a create).
pub fn record_after(
    conn: &Connection,
    c: &Collection,
    id: &str,
    action: Action,
    before: Option<Vec<(String, SqlValue)>>,
    changes: &mut Changes,
) -> rusqlite::Result<()> {
    if let Some(columns) = capture(conn, c, id)? {
        changes.push(Change { action, collection_id: c.id.clone(), record_id: id.to_owned(), columns, before });
    }
    Ok(())
}

/// Records the deletion of record `id`, captured as it is now (call it just before the
/// DELETE); nothing if it does not exist.
pub fn record_delete(conn: &Connection, c: &Collection, id: &str, changes: &mut Changes) -> rusqlite::Result<()> {
    if let Some(columns) = capture(conn, c, id)? {
        changes.push(Change { action: Action::Delete, collection_id: c.id.clone(), record_id: id.to_owned(), columns, before: None });
    }
    Ok(())
}

/// Column values travel on the bus as a JSON object: integers as JSON integers, reals as
/// JSON floats (always written with a fraction or exponent, so they read back as reals),
/// text as strings.
mod columns_json {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    use super::SqlValue;

    pub fn serialize<S: Serializer>(cols: &[(String, SqlValue)], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(cols.len()))?;
        for (k, v) in cols {
            match v {
                SqlValue::Null => m.serialize_entry(k, &())?,
                SqlValue::Integer(i) => m.serialize_entry(k, i)?,
                SqlValue::Real(f) => m.serialize_entry(k, f)?,
                SqlValue::Text(t) => m.serialize_entry(k, t)?,
            }
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, SqlValue)>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<(String, SqlValue)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    let value = match v {
                        serde_json::Value::Null => SqlValue::Null,
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) if !n.is_f64() => SqlValue::Integer(i),
                            _ => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
                        },
                        serde_json::Value::String(s) => SqlValue::Text(s),
                        other => SqlValue::Text(other.to_string()),
                    };
                    out.push((k, value));
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_through_json_with_their_types() {
        let change = Change {
            action: Action::Update,
            collection_id: "pbc_1".into(),
            record_id: "r1".into(),
            columns: vec![
                ("id".into(), SqlValue::Text("r1".into())),
                ("n".into(), SqlValue::Integer(3)),
                ("x".into(), SqlValue::Real(2.0)),
                ("y".into(), SqlValue::Real(0.5)),
                ("z".into(), SqlValue::Null),
            ],
            before: None,
        };
        let text = serde_json::to_string(&change).expect("encode");
        let back: Change = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, change);
    }
}
