//! Resolving a request body against the stored record: PocketBase's field modifiers
//! (`number+`/`number-`, `+list`/`list+`/`list-` for select, relation and file,
//! `text:autogenerate`) and the rules on which keys a writer may set at all.
//!
//! The result is the body as PocketBase's `@request.body` sees it after `ReplaceModifiers`:
//! modifier keys are gone and their field holds the resolved value. Keys that name no field
//! stay (rules may read them; validation ignores them). This module never fails: values it
//! cannot combine (`"total+": "abc"`) are passed on as they are for validation to reject.

use serde_json::{Map, Value};

use super::{autogen, number_value, to_number, to_string_list, Access};
use crate::worker::records::schema::{Collection, CollectionType, Field, FieldKind};

/// Body keys PocketBase ignores on every write: they name parts of the record JSON that are
/// not stored fields.
const IGNORED_KEYS: &[&str] = &["expand", "collectionId", "collectionName"];
/// Request-only keys of auth collections (not fields): kept for the form-level checks.
pub const AUTH_FORM_KEYS: &[&str] = &["passwordConfirm", "oldPassword"];
/// The suffix of the text modifier that appends a generated value.
const AUTOGENERATE_SUFFIX: &str = ":autogenerate";

/// What a body key does to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    /// `f+`: numbers add, lists append.
    Append,
    /// `+f`: lists prepend.
    Prepend,
    /// `f-`: numbers subtract, lists remove.
    Subtract,
    /// `f:autogenerate`: text gets the submitted prefix plus a generated value.
    Autogenerate,
}

fn is_list(kind: &FieldKind) -> bool {
    matches!(kind, FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_))
}

/// The field and operation a key addresses, if any.
fn target<'c>(collection: &'c Collection, key: &str) -> Option<(&'c Field, Op)> {
    if let Some(f) = collection.field(key) {
        return Some((f, Op::Set));
    }
    if let Some(name) = key.strip_suffix('+') {
        return collection.field(name).filter(|f| is_list(&f.kind) || matches!(f.kind, FieldKind::Number(_))).map(|f| (f, Op::Append));
    }
    if let Some(name) = key.strip_prefix('+') {
        return collection.field(name).filter(|f| is_list(&f.kind)).map(|f| (f, Op::Prepend));
    }
    if let Some(name) = key.strip_suffix('-') {
        return collection.field(name).filter(|f| is_list(&f.kind) || matches!(f.kind, FieldKind::Number(_))).map(|f| (f, Op::Subtract));
    }
    if let Some(name) = key.strip_suffix(AUTOGENERATE_SUFFIX) {
        return collection.field(name).filter(|f| matches!(f.kind, FieldKind::Text(_))).map(|f| (f, Op::Autogenerate));
    }
    None
}

/// A list field's value in its canonical shape: the last element (or `""`) for a single field,
/// the de-duplicated array for a multiple one.
fn list_value(field: &Field, list: Vec<String>) -> Value {
    if field.is_multiple() {
        Value::Array(list.into_iter().map(Value::String).collect())
    } else {
        Value::String(list.into_iter().last().unwrap_or_default())
    }
}

/// Resolves `input` against `existing` (the stored record in its JSON shape, `None` on
/// create) for a writer with `access`. Keys are applied shortest first, as PocketBase does, so
/// `total` is set before `total+` adds to it; equal lengths go in key order.
///
/// Dropped: `expand`, `collectionId`, `collectionName`; every key of an `autodate` field
/// (server-set); `tokenKey` of auth collections (server-generated); and, unless `access` is
/// [`Access::Superuser`], every key of a hidden field except an auth collection's `password`.
pub fn resolve_input(collection: &Collection, existing: Option<&Map<String, Value>>, input: Map<String, Value>, access: Access) -> Map<String, Value> {
    let auth = collection.kind == CollectionType::Auth;
    let mut keys: Vec<String> = input.keys().cloned().collect();
    keys.sort_by_key(|k| k.len()); // stable: ties keep the map's (sorted) order

    let mut out = Map::new();
    // The working value of every field touched so far, starting from the stored one.
    let mut current: Map<String, Value> = Map::new();
    for key in keys {
        let Some(raw) = input.get(&key) else { continue };
        if IGNORED_KEYS.contains(&key.as_str()) {
            continue;
        }
        let Some((field, op)) = target(collection, &key) else {
            out.insert(key, raw.clone());
            continue;
        };
        let name = field.name.as_str();
        if matches!(field.kind, FieldKind::Autodate(_)) || (auth && name == "tokenKey") {
            continue;
        }
        if field.hidden && access != Access::Superuser && !(auth && name == "password") {
            continue;
        }
        let base = current.get(name).or_else(|| existing.and_then(|e| e.get(name))).cloned().unwrap_or(Value::Null);
        let value = apply(field, op, base, raw);
        current.insert(name.to_owned(), value.clone());
        out.insert(name.to_owned(), value);
    }
    out
}

fn apply(field: &Field, op: Op, base: Value, raw: &Value) -> Value {
    match (&field.kind, op) {
        (FieldKind::Number(_), Op::Set) => to_number(raw).map(number_value).unwrap_or_else(|| raw.clone()),
        (FieldKind::Number(_), Op::Append | Op::Subtract) => {
            let (Some(a), Some(b)) = (to_number(&base), to_number(raw)) else {
                // Not combinable: hand the operand on so validation names the field.
                return raw.clone();
            };
            number_value(if op == Op::Append { a + b } else { a - b })
        }
        (kind, Op::Set) if is_list(kind) => list_value(field, to_string_list(raw)),
        (kind, _) if is_list(kind) => {
            let current = to_string_list(&base);
            let operand = to_string_list(raw);
            let list = match op {
                Op::Append => current.into_iter().chain(operand).collect(),
                Op::Prepend => operand.into_iter().chain(current).collect(),
                _ => current.into_iter().filter(|v| !operand.contains(v)).collect(),
            };
            list_value(field, super::unique_non_empty(list))
        }
        (FieldKind::Text(o), Op::Autogenerate) => {
            let Some(mut prefix) = super::scalar_to_string(raw) else { return raw.clone() };
            if !o.autogenerate_pattern.is_empty() {
                // A pattern that cannot generate was refused at definition time; if one slips
                // through, the prefix alone is kept, as PocketBase ignores the error.
                if let Ok(generated) = autogen::generate(&o.autogenerate_pattern) {
                    prefix.push_str(&generated);
                }
            }
            Value::String(prefix)
        }
        _ => raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::records::schema::field::{
        AutodateOptions, FileOptions, NumberOptions, RelationOptions, SelectOptions, TextOptions,
    };
    use serde_json::json;

    fn collection() -> Collection {
        let mut c = Collection::scaffold(CollectionType::Base, "posts");
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        c.fields.push(Field::new("total", FieldKind::Number(NumberOptions::default())));
        c.fields.push(Field::new("tags", FieldKind::Select(SelectOptions { values: values(&["a", "b", "c", "d"]), max_select: 4, ..Default::default() })));
        c.fields.push(Field::new("kind", FieldKind::Select(SelectOptions { values: values(&["x", "y"]), max_select: 1, ..Default::default() })));
        c.fields.push(Field::new("refs", FieldKind::Relation(RelationOptions { collection_id: "pbc_1".into(), max_select: 9, ..Default::default() })));
        c.fields.push(Field::new("owner", FieldKind::Relation(RelationOptions { collection_id: "pbc_1".into(), max_select: 1, ..Default::default() })));
        c.fields.push(Field::new("docs", FieldKind::File(FileOptions { max_select: 5, ..Default::default() })));
        c.fields.push(Field::new("slug", FieldKind::Text(TextOptions { autogenerate_pattern: "[a-z]{4}".into(), ..Default::default() })));
        c.fields.push(Field::new("title", FieldKind::Text(TextOptions::default())));
        let mut secret = Field::new("secret", FieldKind::Number(NumberOptions::default()));
        secret.hidden = true;
        c.fields.push(secret);
        c.fields.push(Field::new("created", FieldKind::Autodate(AutodateOptions { on_create: true, ..Default::default() })));
        c
    }

    fn existing() -> Map<String, Value> {
        let v = json!({"id": "abc", "total": 10, "tags": ["a", "b"], "kind": "x", "refs": ["r1", "r2"], "owner": "u1", "docs": ["f1.png", "f2.png"], "secret": 5});
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn modifiers_table() {
        let cases: Vec<(Value, Value)> = vec![
            (json!({"total+": 5}), json!({"total": 15})),
            (json!({"total-": 2.5}), json!({"total": 7.5})),
            (json!({"total": 1, "total+": 2, "total-": 10}), json!({"total": -7})),
            (json!({"total+": "3"}), json!({"total": 13})),
            (json!({"total+": "abc"}), json!({"total": "abc"})),
            (json!({"total": "12"}), json!({"total": 12})),
            (json!({"total": "x"}), json!({"total": "x"})),
            (json!({"total+": 1e308, "total": 1e308}), json!({"total": "inf"})),
            (json!({"tags+": "c"}), json!({"tags": ["a", "b", "c"]})),
            (json!({"+tags": ["d", "a"]}), json!({"tags": ["d", "a", "b"]})),
            (json!({"tags-": "a"}), json!({"tags": ["b"]})),
            (json!({"tags-": ["a", "b"]}), json!({"tags": []})),
            (json!({"tags": ["c", "c", ""], "tags+": "d"}), json!({"tags": ["c", "d"]})),
            (json!({"tags": "[\"b\",\"c\"]"}), json!({"tags": ["b", "c"]})),
            (json!({"kind": ["x", "y"]}), json!({"kind": "y"})),
            (json!({"kind-": "x"}), json!({"kind": ""})),
            (json!({"kind+": "y"}), json!({"kind": "y"})),
            (json!({"refs+": ["r3", "r1"]}), json!({"refs": ["r1", "r2", "r3"]})),
            (json!({"refs-": "r1"}), json!({"refs": ["r2"]})),
            (json!({"owner": ""}), json!({"owner": ""})),
            (json!({"owner": 12345}), json!({"owner": "12345"})),
            (json!({"docs-": ["f1.png"]}), json!({"docs": ["f2.png"]})),
            (json!({"+docs": "f2.png"}), json!({"docs": ["f2.png", "f1.png"]})),
            (json!({"title+": "x"}), json!({"title+": "x"})),
            (json!({"+total": 1}), json!({"+total": 1})),
            (json!({"unknown": 1, "expand": "x", "collectionId": "c", "collectionName": "n"}), json!({"unknown": 1})),
            (json!({"created": "2020-01-01 00:00:00.000Z"}), json!({})),
            (json!({"secret": 1, "secret+": 1}), json!({})),
            (json!({"title": ["not", "text"]}), json!({"title": ["not", "text"]})),
        ];
        let c = collection();
        let stored = existing();
        for (input, want) in cases {
            let body = input.as_object().cloned().unwrap_or_default();
            let got = resolve_input(&c, Some(&stored), body, Access::Default);
            assert_eq!(Value::Object(got), want, "{input}");
        }
    }

    #[test]
    fn create_starts_from_zero_values() {
        let c = collection();
        let body = json!({"total+": 2, "tags+": ["a"], "kind-": "x"}).as_object().cloned().unwrap_or_default();
        let got = resolve_input(&c, None, body, Access::Default);
        assert_eq!(Value::Object(got), json!({"total": 2, "tags": ["a"], "kind": ""}));
    }

    #[test]
    fn autogenerate_modifier_appends_to_the_prefix() {
        let c = collection();
        let body = json!({"slug:autogenerate": "post-", "title:autogenerate": "t"}).as_object().cloned().unwrap_or_default();
        let got = resolve_input(&c, None, body, Access::Default);
        let slug = got.get("slug").and_then(Value::as_str).unwrap_or_default();
        assert!(slug.starts_with("post-") && slug.len() == 9, "{slug}");
        assert_eq!(got.get("title"), Some(&json!("t")), "no pattern: the prefix alone");
    }

    #[test]
    fn hidden_and_system_keys_follow_the_access_level() {
        let c = collection();
        let body = || json!({"secret+": 1}).as_object().cloned().unwrap_or_default();
        assert_eq!(Value::Object(resolve_input(&c, Some(&existing()), body(), Access::Superuser)), json!({"secret": 6}));
        assert_eq!(Value::Object(resolve_input(&c, Some(&existing()), body(), Access::Manager)), json!({}));

        let users = Collection::scaffold(CollectionType::Auth, "users");
        let body = json!({"password": "secret123", "passwordConfirm": "secret123", "oldPassword": "x", "tokenKey": "mine", "email": "a@b.c"});
        let got = resolve_input(&users, None, body.as_object().cloned().unwrap_or_default(), Access::Default);
        assert_eq!(
            Value::Object(got),
            json!({"password": "secret123", "passwordConfirm": "secret123", "oldPassword": "x", "email": "a@b.c"}),
            "password passes though hidden; tokenKey never"
        );
        let got = resolve_input(&users, None, json!({"tokenKey": "mine"}).as_object().cloned().unwrap_or_default(), Access::Superuser);
        assert!(got.is_empty(), "not even for superusers");
    }
}
