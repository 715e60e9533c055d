//! [`Field`]: one column of a collection, its options per type, its SQL column definition and
//! the checks on its *definition* (not on record values, which the write path validates).
//!
//! The JSON shape matches PocketBase's field JSON exactly: the common keys (`id`, `name`,
//! `type`, `system`, `hidden`, `presentable`) plus the type's option keys, flat in one object.
//! Unknown keys are ignored on input, as PocketBase does.

use serde::{Deserialize, Serialize};

use super::names::{check_field_name, default_field_id};
use super::{Invalid, SchemaErrors};
use crate::worker::auth::password::PASSWORD_MAX_CHARS_LIMIT;
use crate::worker::records::values::autogen::check_text_autogenerate;
use crate::worker::records::values::validate::check_regex_pattern;

/// PocketBase's default limits, applied when an option is 0.
pub const DEFAULT_TEXT_MAX_CHARS: i64 = 5000;
pub const DEFAULT_EDITOR_MAX_BYTES: i64 = 5 * 1024 * 1024;
pub const DEFAULT_FILE_MAX_BYTES: i64 = 5 * 1024 * 1024;
pub const DEFAULT_JSON_MAX_BYTES: i64 = 1024 * 1024;
/// Longest `help` text.
pub const MAX_HELP_CHARS: usize = 300;

/// One field of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub presentable: bool,
    /// Stored sealed (AES-256-GCM, see `shared::encryption`); text, email, url, editor and
    /// json only. Written only when on, so PocketBase's field JSON is unchanged otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    #[serde(flatten)]
    pub kind: FieldKind,
}

/// The field's type with its options; serialised as `"type": "<name>"` plus the option keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FieldKind {
    Text(TextOptions),
    Number(NumberOptions),
    Bool(BoolOptions),
    Email(DomainOptions),
    Url(DomainOptions),
    Editor(EditorOptions),
    Date(DateOptions),
    Autodate(AutodateOptions),
    Select(SelectOptions),
    File(FileOptions),
    Relation(RelationOptions),
    Json(JsonOptions),
    GeoPoint(GeoPointOptions),
    Password(PasswordOptions),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TextOptions {
    pub help: String,
    pub required: bool,
    pub min: i64,
    /// 0 means [`DEFAULT_TEXT_MAX_CHARS`].
    pub max: i64,
    pub pattern: String,
    pub autogenerate_pattern: String,
    pub primary_key: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NumberOptions {
    pub help: String,
    pub required: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub only_int: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BoolOptions {
    pub help: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DomainOptions {
    pub help: String,
    pub required: bool,
    pub except_domains: Vec<String>,
    pub only_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EditorOptions {
    pub help: String,
    pub required: bool,
    /// Bytes; 0 means [`DEFAULT_EDITOR_MAX_BYTES`].
    pub max_size: i64,
    #[serde(rename = "convertURLs")]
    pub convert_urls: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DateOptions {
    pub help: String,
    pub required: bool,
    pub min: String,
    pub max: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AutodateOptions {
    pub help: String,
    pub on_create: bool,
    pub on_update: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SelectOptions {
    pub help: String,
    pub required: bool,
    pub values: Vec<String>,
    /// 0 or 1: single value; more: a JSON array of at most this many.
    pub max_select: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileOptions {
    pub help: String,
    pub required: bool,
    pub max_select: u32,
    /// Bytes per file; 0 means [`DEFAULT_FILE_MAX_BYTES`].
    pub max_size: i64,
    pub mime_types: Vec<String>,
    pub thumbs: Vec<String>,
    pub protected: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RelationOptions {
    pub help: String,
    pub required: bool,
    pub collection_id: String,
    pub cascade_delete: bool,
    pub min_select: u32,
    pub max_select: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JsonOptions {
    pub help: String,
    pub required: bool,
    /// Bytes; 0 means [`DEFAULT_JSON_MAX_BYTES`].
    pub max_size: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GeoPointOptions {
    pub help: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordOptions {
    pub help: String,
    pub required: bool,
    pub min: u32,
    pub max: u32,
    pub pattern: String,
    /// Kept for PocketBase compatibility of stored definitions; vaultbase hashes with argon2id.
    pub cost: u32,
}

impl FieldKind {
    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Text(_) => "text",
            FieldKind::Number(_) => "number",
            FieldKind::Bool(_) => "bool",
            FieldKind::Email(_) => "email",
            FieldKind::Url(_) => "url",
            FieldKind::Editor(_) => "editor",
            FieldKind::Date(_) => "date",
            FieldKind::Autodate(_) => "autodate",
            FieldKind::Select(_) => "select",
            FieldKind::File(_) => "file",
            FieldKind::Relation(_) => "relation",
            FieldKind::Json(_) => "json",
            FieldKind::GeoPoint(_) => "geoPoint",
            FieldKind::Password(_) => "password",
        }
    }
}

impl Field {
    /// A new field with PocketBase's default id.
    pub fn new(name: &str, kind: FieldKind) -> Field {
        Field { id: default_field_id(kind.type_name(), name), name: name.to_owned(), system: false, hidden: false, presentable: false, encrypted: false, kind }
    }

    /// True for select, file and relation fields that hold a JSON array of values.
    pub fn is_multiple(&self) -> bool {
        match &self.kind {
            FieldKind::Select(o) => o.max_select > 1,
            FieldKind::File(o) => o.max_select > 1,
            FieldKind::Relation(o) => o.max_select > 1,
            _ => false,
        }
    }

    /// Whether the type may be `encrypted`: values kept as text and never compared by SQL
    /// for the record's own bookkeeping (no relations, files, numbers or dates).
    pub fn can_be_encrypted(&self) -> bool {
        let primary_key = matches!(&self.kind, FieldKind::Text(o) if o.primary_key);
        !primary_key && matches!(self.kind, FieldKind::Text(_) | FieldKind::Email(_) | FieldKind::Url(_) | FieldKind::Editor(_) | FieldKind::Json(_))
    }

    /// The column definition (without the quoted name) for `CREATE TABLE` / `ADD COLUMN`.
    pub fn column_type(&self) -> &'static str {
        if self.is_multiple() {
            return "JSON DEFAULT '[]' NOT NULL";
        }
        match &self.kind {
            FieldKind::Text(o) if o.primary_key => "TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL",
            FieldKind::Number(_) => "NUMERIC DEFAULT 0 NOT NULL",
            FieldKind::Bool(_) => "BOOLEAN DEFAULT FALSE NOT NULL",
            FieldKind::Json(_) => "JSON DEFAULT NULL",
            FieldKind::GeoPoint(_) => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
            _ => "TEXT DEFAULT '' NOT NULL",
        }
    }

    /// Checks this field's definition; errors go under `fields.<index>.<key>`.
    pub fn validate_definition(&self, index: usize, auth: bool, errors: &mut SchemaErrors) {
        let at = |key: &str| format!("fields.{index}.{key}");
        if let Err(e) = check_field_name(&self.name, auth) {
            errors.add(at("name"), e);
        }
        if self.id.is_empty() {
            errors.add(at("id"), Invalid::new("validation_required", "Cannot be blank."));
        }
        let help = match &self.kind {
            FieldKind::Text(o) => &o.help,
            FieldKind::Number(o) => &o.help,
            FieldKind::Bool(o) => &o.help,
            FieldKind::Email(o) | FieldKind::Url(o) => &o.help,
            FieldKind::Editor(o) => &o.help,
            FieldKind::Date(o) => &o.help,
            FieldKind::Autodate(o) => &o.help,
            FieldKind::Select(o) => &o.help,
            FieldKind::File(o) => &o.help,
            FieldKind::Relation(o) => &o.help,
            FieldKind::Json(o) => &o.help,
            FieldKind::GeoPoint(o) => &o.help,
            FieldKind::Password(o) => &o.help,
        };
        if self.encrypted && !self.can_be_encrypted() {
            errors.add(at("encrypted"), Invalid::new("validation_encryption_unsupported", "Only text, email, url, editor and json fields can be encrypted."));
        }
        if help.chars().count() > MAX_HELP_CHARS {
            errors.add(at("help"), Invalid::new("validation_length_too_long", "The length must be no more than 300."));
        }
        match &self.kind {
            FieldKind::Text(o) => {
                if o.min < 0 {
                    errors.add(at("min"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than 0."));
                }
                if o.max < 0 || (o.max > 0 && o.max < o.min) {
                    errors.add(at("max"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than min."));
                }
                for (key, pattern) in [("pattern", &o.pattern), ("autogeneratePattern", &o.autogenerate_pattern)] {
                    if pattern.len() > 1000 {
                        errors.add(at(key), Invalid::new("validation_length_too_long", "The pattern is too long."));
                    }
                }
                if !o.pattern.is_empty() {
                    if let Err(e) = check_regex_pattern(&o.pattern) {
                        errors.add(at("pattern"), e);
                    }
                }
                // A pattern that cannot generate, or generates values the field itself refuses,
                // would fail every create: refuse it here instead.
                if let Err(e) = check_text_autogenerate(o) {
                    errors.add(at("autogeneratePattern"), e);
                }
            }
            FieldKind::Number(o) => {
                for (key, v) in [("min", o.min), ("max", o.max)] {
                    if v.is_some_and(|v| !v.is_finite()) {
                        errors.add(at(key), Invalid::new("validation_invalid_number", "Must be a finite number."));
                    }
                }
                if let (Some(min), Some(max)) = (o.min, o.max) {
                    if max < min {
                        errors.add(at("max"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than min."));
                    }
                }
            }
            FieldKind::Email(o) | FieldKind::Url(o) if !o.except_domains.is_empty() && !o.only_domains.is_empty() => {
                errors.add(at("onlyDomains"), Invalid::new("validation_conflict", "Either onlyDomains or exceptDomains can be set, not both."));
            }
            FieldKind::Editor(o) if o.max_size < 0 => {
                errors.add(at("maxSize"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than 0."));
            }
            FieldKind::Autodate(o) if !o.on_create && !o.on_update => {
                errors.add(at("onCreate"), Invalid::new("validation_required", "At least one of onCreate or onUpdate must be set."));
            }
            FieldKind::Select(o) => {
                if o.values.is_empty() {
                    errors.add(at("values"), Invalid::new("validation_required", "Cannot be blank."));
                }
                let mut seen = std::collections::HashSet::new();
                if o.values.iter().any(|v| v.is_empty() || !seen.insert(v)) {
                    errors.add(at("values"), Invalid::new("validation_invalid_value", "Values must be unique and not empty."));
                }
                if o.max_select as usize > o.values.len().max(1) {
                    errors.add(at("maxSelect"), Invalid::new("validation_max_less_equal_than_required", "Must be no more than the number of values."));
                }
            }
            FieldKind::File(o) if o.max_size < 0 => {
                errors.add(at("maxSize"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than 0."));
            }
            FieldKind::Relation(o) => {
                if o.collection_id.is_empty() {
                    errors.add(at("collectionId"), Invalid::new("validation_required", "Cannot be blank."));
                }
                if o.max_select > 0 && o.min_select > o.max_select.max(1) {
                    errors.add(at("minSelect"), Invalid::new("validation_max_less_equal_than_required", "Must be no more than maxSelect."));
                }
            }
            FieldKind::Json(o) if o.max_size < 0 => {
                errors.add(at("maxSize"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than 0."));
            }
            FieldKind::Password(o) => {
                if !o.pattern.is_empty() {
                    if let Err(e) = check_regex_pattern(&o.pattern) {
                        errors.add(at("pattern"), e);
                    }
                }
                if o.min < 1 && o.required {
                    errors.add(at("min"), Invalid::new("validation_min_greater_equal_than_required", "Must be no less than 1."));
                }
                if o.max as usize > PASSWORD_MAX_CHARS_LIMIT || (o.max > 0 && o.max < o.min) {
                    errors.add(at("max"), Invalid::new("validation_max_less_equal_than_required", "Must be between min and 71."));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shape_is_flat_like_pocketbase() {
        let f = Field::new("title", FieldKind::Text(TextOptions { required: true, max: 100, ..Default::default() }));
        let v = serde_json::to_value(&f).expect("serialise");
        assert_eq!(v["type"], "text");
        assert_eq!(v["name"], "title");
        assert_eq!(v["required"], true);
        assert_eq!(v["max"], 100);
        assert_eq!(v["autogeneratePattern"], "");
        assert!(v["id"].as_str().is_some_and(|id| id.starts_with("text")));
        let back: Field = serde_json::from_value(v).expect("deserialise");
        assert_eq!(back, f);
    }

    #[test]
    fn every_type_round_trips_and_reads_pocketbase_input() {
        let inputs = [
            json!({"name":"a","type":"text","min":1,"max":5,"pattern":"^x","autogeneratePattern":"","primaryKey":false}),
            json!({"name":"b","type":"number","min":null,"max":10,"onlyInt":true}),
            json!({"name":"c","type":"bool","required":true}),
            json!({"name":"d","type":"email","onlyDomains":["example.com"]}),
            json!({"name":"e","type":"url","exceptDomains":["bad.com"]}),
            json!({"name":"f","type":"editor","maxSize":100,"convertURLs":true}),
            json!({"name":"g","type":"date","min":"2024-01-01 00:00:00.000Z","max":""}),
            json!({"name":"h","type":"autodate","onCreate":true,"onUpdate":true}),
            json!({"name":"i","type":"select","values":["x","y"],"maxSelect":2}),
            json!({"name":"j","type":"file","maxSelect":3,"maxSize":1000,"mimeTypes":["image/png"],"thumbs":["100x100"],"protected":true}),
            json!({"name":"k","type":"relation","collectionId":"pbc_1","cascadeDelete":true,"minSelect":0,"maxSelect":1}),
            json!({"name":"l","type":"json","maxSize":0}),
            json!({"name":"m","type":"geoPoint"}),
            json!({"name":"n","type":"password","min":8,"max":71,"cost":10}),
        ];
        for input in inputs {
            let f: Field = serde_json::from_value(input.clone()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(f.kind.type_name(), input["type"].as_str().expect("type"));
            let out = serde_json::to_value(&f).expect("serialise");
            for (k, v) in input.as_object().expect("object") {
                // serde writes 10.0 where Go writes 10: the same JSON number to any client.
                match (out[k].as_f64(), v.as_f64()) {
                    (Some(a), Some(b)) => assert_eq!(a, b, "{k} in {input}"),
                    _ => assert_eq!(&out[k], v, "{k} in {input}"),
                }
            }
            let again: Field = serde_json::from_value(out).expect("round trip");
            assert_eq!(again, f);
        }
    }

    #[test]
    fn unknown_type_is_an_error_and_unknown_keys_are_ignored() {
        assert!(serde_json::from_value::<Field>(json!({"name":"a","type":"blob"})).is_err());
        assert!(serde_json::from_value::<Field>(json!({"name":"a"})).is_err(), "type is required");
        let f: Field = serde_json::from_value(json!({"name":"a","type":"bool","whatever":1})).expect("ignored");
        assert_eq!(f.kind.type_name(), "bool");
    }

    #[test]
    fn column_types() {
        let single = Field::new("r", FieldKind::Relation(RelationOptions { collection_id: "x".into(), max_select: 1, ..Default::default() }));
        let multi = Field::new("r", FieldKind::Relation(RelationOptions { collection_id: "x".into(), max_select: 5, ..Default::default() }));
        assert_eq!(single.column_type(), "TEXT DEFAULT '' NOT NULL");
        assert_eq!(multi.column_type(), "JSON DEFAULT '[]' NOT NULL");
        assert!(Field::new("n", FieldKind::Number(NumberOptions::default())).column_type().starts_with("NUMERIC"));
        assert!(Field::new("g", FieldKind::GeoPoint(GeoPointOptions::default())).column_type().contains("\"lon\":0"));
    }

    fn errors_of(f: &Field) -> Vec<String> {
        let mut e = SchemaErrors::default();
        f.validate_definition(0, false, &mut e);
        e.0.keys().cloned().collect()
    }

    #[test]
    fn definition_errors_name_the_option() {
        let cases: Vec<(FieldKind, &str)> = vec![
            (FieldKind::Select(SelectOptions::default()), "fields.0.values"),
            (FieldKind::Select(SelectOptions { values: vec!["a".into()], max_select: 3, ..Default::default() }), "fields.0.maxSelect"),
            (FieldKind::Autodate(AutodateOptions::default()), "fields.0.onCreate"),
            (FieldKind::Relation(RelationOptions::default()), "fields.0.collectionId"),
            (FieldKind::Text(TextOptions { min: 10, max: 5, ..Default::default() }), "fields.0.max"),
            (FieldKind::Number(NumberOptions { min: Some(5.0), max: Some(1.0), ..Default::default() }), "fields.0.max"),
            (FieldKind::Email(DomainOptions { only_domains: vec!["a".into()], except_domains: vec!["b".into()], ..Default::default() }), "fields.0.onlyDomains"),
            (FieldKind::Password(PasswordOptions { min: 8, max: 100, ..Default::default() }), "fields.0.max"),
            (FieldKind::Password(PasswordOptions { min: 8, pattern: "([".into(), ..Default::default() }), "fields.0.pattern"),
            (FieldKind::Text(TextOptions { pattern: "([".into(), ..Default::default() }), "fields.0.pattern"),
            (FieldKind::Text(TextOptions { autogenerate_pattern: "[a-z]+".into(), ..Default::default() }), "fields.0.autogeneratePattern"),
            (FieldKind::Text(TextOptions { max: 3, autogenerate_pattern: "[a-z]{5}".into(), ..Default::default() }), "fields.0.autogeneratePattern"),
        ];
        for (kind, key) in cases {
            let f = Field::new("ok", kind);
            assert!(errors_of(&f).contains(&key.to_owned()), "{key}: {:?}", errors_of(&f));
        }
        assert!(errors_of(&Field::new("expand", FieldKind::Bool(BoolOptions::default()))).contains(&"fields.0.name".to_owned()));
        assert!(errors_of(&Field::new("fine", FieldKind::Bool(BoolOptions::default()))).is_empty());
    }
}
