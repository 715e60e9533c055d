//! Collection schemas in PocketBase's shape: [`Collection`] with its [`Field`]s, their JSON
//! form (as stored in `_collections` and returned by `/api/collections`), definition-time
//! validation, and the SQL column and table definitions they map to.
//!
//! Pure data and functions: no database access and no HTTP here. Storing collections,
//! migrating tables and caching schemas across workers build on top of this module.

pub mod collection;
pub mod field;
pub mod names;
pub mod sql_lex;
pub mod view;

pub use collection::{Collection, CollectionType};
pub use field::{Field, FieldKind};

use std::collections::BTreeMap;

/// One definition error: PocketBase's `{code, message}` pair for one key of `data`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Invalid {
        Invalid { code, message: message.into() }
    }
}

/// Validation errors keyed like PocketBase's `data` map: `name`, `fields.3.name`, … are
/// nested objects on the wire; here the path is kept as a dotted key and nested on output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaErrors(pub BTreeMap<String, Invalid>);

impl SchemaErrors {
    pub fn add(&mut self, path: impl Into<String>, err: Invalid) {
        self.0.entry(path.into()).or_insert(err);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nested JSON object PocketBase puts under `data`.
    pub fn to_data(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut root = serde_json::Map::new();
        for (path, err) in &self.0 {
            let mut node = &mut root;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    node.insert(part.to_owned(), serde_json::json!({"code": err.code, "message": err.message}));
                    break;
                }
                let entry = node
                    .entry(part.to_owned())
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
                if !entry.is_object() {
                    *entry = serde_json::Value::Object(serde_json::Map::new());
                }
                match entry.as_object_mut() {
                    Some(next) => node = next,
                    None => break,
                }
            }
        }
        root
    }
}

/// Quotes an identifier for SQLite. Names are validated to `^\w+$` before they get here; the
/// doubling of `"` is defence in depth, not the primary guard.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_nest_like_pocketbase() {
        let mut e = SchemaErrors::default();
        e.add("name", Invalid::new("validation_required", "Cannot be blank."));
        e.add("fields.2.name", Invalid::new("validation_not_unique", "Duplicated or invalid field name."));
        let data = serde_json::Value::Object(e.to_data());
        assert_eq!(data["name"]["code"], "validation_required");
        assert_eq!(data["fields"]["2"]["name"]["code"], "validation_not_unique");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("posts"), "\"posts\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
