//! The `_webhooks` system collection: the webhook definitions, managed through the records API
//! like any collection (superusers only: every rule is null). This module owns what the
//! generic record layer does differently for it, and nothing else:
//!
//! - `secret` is write-only: never read for output (lists, views, realtime, expand, the
//!   delivery bodies), not even for superusers, unlike PocketBase's hidden fields. The one
//!   exception is the answer to the create that set it (see [`reveal_secret`]), because a
//!   generated secret would otherwise never be known. An update sending an empty secret keeps
//!   the stored one.
//! - `failures` and `pausedReason` (the pause after repeated failed deliveries) are written by
//!   the delivery handler only: a body's values for them are ignored; setting `active` to true
//!   clears them (that is how a paused webhook resumes). A create without `active` makes an
//!   active webhook.
//! - `url` must be http(s), `events` a list of `collection.action` patterns, `headers` an
//!   object of strings: checked with the other field checks, errors by field in PocketBase's
//!   envelope.
//!
//! It must not know about delivery or the job queue (`worker::jobs::webhooks` reads the table).

use serde_json::{Map, Value};

use super::schema::{Collection, Field, Invalid, SchemaErrors};
use super::sql_value::SqlValue;

/// The collection's name.
pub const NAME: &str = "_webhooks";
/// Its id (PocketBase's default id for a base collection of that name, fixed by the migration).
pub const ID: &str = "pbc_3546803237";
/// The write-only field.
pub const SECRET_FIELD: &str = "secret";
/// Fields only the delivery handler writes.
pub const READ_ONLY_FIELDS: [&str; 2] = ["failures", "pausedReason"];
/// Shortest secret a client may set.
pub const SECRET_MIN_CHARS: i64 = 16;
/// The actions an event pattern may name.
pub const ACTIONS: [&str; 5] = ["create", "update", "delete", "auth", "*"];

/// Whether `c` is the webhooks system collection.
pub fn is_webhooks(c: &Collection) -> bool {
    c.system && c.id == ID
}

/// Whether `field` of `c` is never shown in a record.
pub fn write_only(c: &Collection, field: &Field) -> bool {
    field.name == SECRET_FIELD && is_webhooks(c)
}

/// Whether `pattern` is a valid event pattern: `*`, or `collection.action` where either part
/// may be `*` and the action is create, update, delete or auth.
pub fn valid_event(pattern: &str) -> bool {
    pattern == "*" || pattern.split_once('.').is_some_and(|(c, a)| !c.is_empty() && !c.contains('.') && ACTIONS.contains(&a))
}

/// The checks and column rules of a write to `_webhooks`, run after the field checks: adds
/// field errors (`validate` only) and settles the pause-state columns.
pub fn check_write(input: &Map<String, Value>, is_new: bool, validate: bool, errors: &mut SchemaErrors, columns: &mut Vec<(String, SqlValue)>) {
    if validate {
        if let Some(Value::String(url)) = input.get("url") {
            let scheme_ok = url.split_once("://").is_some_and(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
            if !url.is_empty() && !scheme_ok && !errors.0.contains_key("url") {
                errors.add("url", Invalid::new("validation_invalid_url", "Must be an http or https URL."));
            }
        }
        if let Some(events) = input.get("events").and_then(parsed) {
            let ok = matches!(&events, Value::Null) || events.as_array().is_some_and(|a| a.iter().all(|p| p.as_str().is_some_and(valid_event)));
            if !ok && !errors.0.contains_key("events") {
                errors.add(
                    "events",
                    Invalid::new("validation_invalid_value", "Must be a list of \"collection.create|update|delete|auth\" patterns (either part may be *)."),
                );
            }
        }
        if let Some(headers) = input.get("headers").and_then(parsed) {
            let ok = matches!(&headers, Value::Null) || headers.as_object().is_some_and(|m| m.values().all(Value::is_string));
            if !ok && !errors.0.contains_key("headers") {
                errors.add("headers", Invalid::new("validation_invalid_value", "Must be an object of string values."));
            }
        }
    }
    // An update's empty secret keeps the stored one (as an empty password does): a form that
    // cannot show the secret sends it back empty.
    if !is_new && input.get(SECRET_FIELD).is_some_and(|v| v.as_str() == Some("")) {
        errors.0.remove(SECRET_FIELD);
        columns.retain(|(name, _)| name != SECRET_FIELD);
    }
    columns.retain(|(name, _)| !READ_ONLY_FIELDS.contains(&name.as_str()));
    let resumed = input.get("active").is_some_and(|a| a == &Value::Bool(true) || a.as_str().is_some_and(|s| s == "true" || s == "1"));
    // A new webhook is active unless the create says otherwise (a bool field would start false).
    if is_new && !input.contains_key("active") {
        columns.retain(|(name, _)| name != "active");
        columns.push(("active".into(), SqlValue::Integer(1)));
    }
    if is_new || resumed {
        columns.push(("failures".into(), SqlValue::Integer(0)));
        columns.push(("pausedReason".into(), SqlValue::Text(String::new())));
    }
}

/// A JSON field's input as a value: multipart sends JSON as text.
fn parsed(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => Some(serde_json::from_str(s).unwrap_or(Value::Bool(false))),
        other => Some(other.clone()),
    }
}

/// The answer to a create of a webhook: the record JSON `bytes` with the secret the create
/// stored (`columns`) put back in, the one time it is ever shown. Other collections' answers
/// pass through.
pub fn reveal_secret(c: &Collection, columns: &[(String, SqlValue)], bytes: Vec<u8>) -> Vec<u8> {
    if !is_webhooks(c) {
        return bytes;
    }
    let Some(secret) = columns.iter().find(|(n, _)| n == SECRET_FIELD).map(|(_, v)| v.to_text()) else { return bytes };
    match serde_json::from_slice::<Map<String, Value>>(&bytes) {
        Ok(mut m) => {
            m.insert(SECRET_FIELD.into(), Value::String(secret));
            serde_json::to_vec(&m).unwrap_or(bytes)
        }
        Err(_) => bytes,
    }
}

/// The collection as the migration creates it (the test in `store` checks the migration's JSON
/// and DDL against this).
pub fn definition() -> Collection {
    use super::schema::field::{BoolOptions, DomainOptions, FieldKind, JsonOptions, NumberOptions, TextOptions};
    use super::schema::CollectionType;
    let mut c = Collection::scaffold(CollectionType::Base, NAME);
    c.system = true;
    c.fields.push(Field::new("name", FieldKind::Text(TextOptions { max: 255, ..Default::default() })));
    c.fields.push(Field::new("url", FieldKind::Url(DomainOptions { required: true, ..Default::default() })));
    c.fields.push(Field::new("events", FieldKind::Json(JsonOptions::default())));
    let mut secret = Field::new(
        SECRET_FIELD,
        FieldKind::Text(TextOptions { required: true, min: SECRET_MIN_CHARS, max: 255, autogenerate_pattern: "whsec_[a-f0-9]{48}".into(), ..Default::default() }),
    );
    secret.hidden = true;
    c.fields.push(secret);
    c.fields.push(Field::new("headers", FieldKind::Json(JsonOptions::default())));
    c.fields.push(Field::new("active", FieldKind::Bool(BoolOptions::default())));
    c.fields.push(Field::new("failures", FieldKind::Number(NumberOptions { only_int: true, min: Some(0.0), ..Default::default() })));
    c.fields.push(Field::new("pausedReason", FieldKind::Text(TextOptions::default())));
    let mut c = c.with_timestamps();
    for f in &mut c.fields {
        f.system = true;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_patterns_are_collection_dot_action() {
        for good in ["*", "posts.create", "posts.*", "*.delete", "users.auth", "*.*"] {
            assert!(valid_event(good), "{good}");
        }
        for bad in ["posts", "posts.nope", ".create", "a.b.create", ""] {
            assert!(!valid_event(bad), "{bad}");
        }
    }

    #[test]
    fn the_pause_state_is_not_written_from_a_body_and_resuming_clears_it() {
        let body = |v: Value| v.as_object().cloned().expect("object");
        let mut errors = SchemaErrors::default();
        let mut columns = vec![("failures".into(), SqlValue::Integer(7)), ("url".into(), SqlValue::Text("http://x".into()))];
        check_write(&body(serde_json::json!({"failures": 7})), false, true, &mut errors, &mut columns);
        assert_eq!(columns.len(), 1, "the body's failures are dropped: {columns:?}");
        let mut columns = Vec::new();
        check_write(&body(serde_json::json!({"active": true})), false, true, &mut errors, &mut columns);
        assert!(columns.contains(&("failures".into(), SqlValue::Integer(0))), "resuming clears the count");
        assert!(errors.is_empty());
        let mut kept = vec![("secret".into(), SqlValue::Text(String::new()))];
        errors.add("secret", Invalid::new("validation_required", "Cannot be blank."));
        check_write(&body(serde_json::json!({"secret": ""})), false, true, &mut errors, &mut kept);
        assert!(errors.is_empty() && kept.is_empty(), "an update's empty secret keeps the stored one: {errors:?} {kept:?}");
        check_write(&body(serde_json::json!({"url": "ftp://x", "events": ["posts.nope"], "headers": {"a": 1}})), true, true, &mut errors, &mut Vec::new());
        for field in ["url", "events", "headers"] {
            assert!(errors.0.contains_key(field), "{field}: {errors:?}");
        }
    }
}
