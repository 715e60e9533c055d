//! [`SqlValue`]: one value bound as a SQLite parameter — the common currency between the
//! domain code that produces values (record validation, the filter compiler) and the executor
//! that binds them. It owns nothing else: no conversion rules, no schema knowledge. Values always
//! travel as bound parameters, never spliced into SQL text.

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

/// A SQLite value to bind: the four storage classes vaultbase writes (no BLOBs).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        // Borrowed: binding never copies the text.
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

impl SqlValue {
    /// The value as PocketBase's `cast.ToString` would print it (LIKE patterns, record ids):
    /// NULL is empty, floats print without an exponent and without a trailing `.0`.
    pub fn to_text(&self) -> String {
        match self {
            SqlValue::Null => String::new(),
            SqlValue::Integer(i) => i.to_string(),
            SqlValue::Real(f) => f.to_string(),
            SqlValue::Text(s) => s.clone(),
        }
    }

    /// NULL or empty text: the values PocketBase's `=`/`!=` normalisation treats as "empty".
    pub fn is_empty(&self) -> bool {
        matches!(self, SqlValue::Null) || matches!(self, SqlValue::Text(s) if s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_every_variant() {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        let values = [SqlValue::Null, SqlValue::Integer(7), SqlValue::Real(1.5), SqlValue::Text("x".into())];
        let types: Vec<String> = values
            .iter()
            .map(|v| conn.query_row("SELECT typeof(?1)", [v], |r| r.get(0)).expect("query"))
            .collect();
        assert_eq!(types, ["null", "integer", "real", "text"]);
    }
}
