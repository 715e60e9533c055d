//! The database steps a migration's JS may take, each run on the thread that holds the
//! migration's write transaction: collection lookups and saves through the same store
//! functions (and so the same validation) as `/api/collections`, settings through the same
//! patch as `PATCH /api/settings`, and raw SQL with `{:name}` parameters.
//!
//! Must not touch files, the network or any cache: the owner of the data dir runs this before
//! a worker exists, and the version rows bumped here are what make every later cache fresh.

use rusqlite::types::Value as SqlValue;
use rusqlite::Transaction;
use serde_json::{Map, Value};

use crate::worker::records::schema::{Collection, CollectionType, SchemaErrors};
use crate::worker::records::store::{self, StoreError};
use crate::worker::settings::{self, SettingsError};

/// Why a step failed; the message is what the JS `Error` carries.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Runs step `op` with its JSON `payload`; the answer is JSON for the prelude.
pub fn dispatch(tx: &Transaction<'_>, file: &str, op: &str, payload: Value) -> Result<Value, OpError> {
    match op {
        "findCollection" => {
            let key = payload.as_str().unwrap_or_default();
            Ok(store::find(tx, key)?.map(|c| to_json(&c)).unwrap_or(Value::Null))
        }
        "allCollections" => {
            let types: Vec<String> = serde_json::from_value(payload).unwrap_or_default();
            let (_, all) = store::read_all(tx)?;
            Ok(Value::Array(all.iter().filter(|c| types.is_empty() || types.iter().any(|t| t == c.kind.as_str())).map(to_json).collect()))
        }
        "saveCollection" => save_collection(tx, object(payload)?).map(|c| to_json(&c)),
        "deleteCollection" => {
            let key = payload.as_str().unwrap_or_default();
            let c = store::find(tx, key)?.ok_or_else(|| OpError::Invalid(format!("no collection {key:?} to delete")))?;
            store::delete(tx, &c)?;
            Ok(Value::Null)
        }
        "importCollections" => {
            import(tx, payload)?;
            Ok(Value::Null)
        }
        "settings" => current_settings(tx),
        "saveSettings" => {
            let saved = settings::patch(tx, object(payload)?)?;
            Ok(serde_json::to_value(saved).unwrap_or(Value::Null))
        }
        "exec" => {
            let (sql, params) = bind(&payload)?;
            let mut stmt = tx.prepare(&sql)?;
            let changed = stmt.execute(rusqlite::params_from_iter(params))?;
            Ok(Value::from(changed))
        }
        "query" => {
            let (sql, params) = bind(&payload)?;
            query(tx, &sql, params)
        }
        "log" => {
            let level = payload.get("level").and_then(Value::as_str).unwrap_or("info");
            let msg = payload.get("msg").and_then(Value::as_str).unwrap_or_default();
            let kv = payload.get("kv").cloned().unwrap_or(Value::Null);
            match level {
                "error" => tracing::error!(migration = file, data = %kv, "{msg}"),
                "warn" => tracing::warn!(migration = file, data = %kv, "{msg}"),
                "debug" => tracing::debug!(migration = file, data = %kv, "{msg}"),
                _ => tracing::info!(migration = file, data = %kv, "{msg}"),
            }
            Ok(Value::Null)
        }
        "saveRecord" => records::save(tx, &payload),
        "findRecord" => records::find(tx, &payload),
        "deleteRecord" => records::delete(tx, &payload),
        other => Err(OpError::Invalid(format!("unknown migration operation {other:?}"))),
    }
}

/// The settings as stored, read inside the migration's transaction (`settings::load` opens
/// its own read transaction, which SQLite refuses inside this one).
fn current_settings(tx: &Transaction<'_>) -> Result<Value, OpError> {
    use rusqlite::OptionalExtension;
    let stored: Option<String> = tx.query_row("SELECT value FROM _params WHERE id = 'settings'", [], |r| r.get(0)).optional()?;
    let parsed: settings::Settings = match stored {
        Some(text) => serde_json::from_str(&text).map_err(SettingsError::from)?,
        None => settings::Settings::default(),
    };
    Ok(serde_json::to_value(parsed).unwrap_or(Value::Null))
}

fn to_json(c: &Collection) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn object(v: Value) -> Result<Map<String, Value>, OpError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(OpError::Invalid("expected an object".into())),
    }
}

/// `app.save(collection)`: an update when a collection with its id (or, without an id, its
/// name) exists, otherwise a create that keeps the given id, as PocketBase's save does.
fn save_collection(tx: &Transaction<'_>, body: Map<String, Value>) -> Result<Collection, OpError> {
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let existing = if id.is_empty() { None } else { store::find(tx, &id)?.filter(|c| c.id == id) };
    if let Some(old) = existing {
        let new = store::merged(&old, body)?;
        return Ok(store::update(tx, &old, new)?);
    }
    let kind: CollectionType = match body.get("type") {
        None | Some(Value::Null) => CollectionType::Base,
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| OpError::Invalid(format!("type {v}: expected base, auth or view")))?,
    };
    let mut c = store::merged(&Collection::scaffold(kind, &name), body)?;
    if id.is_empty() {
        c.id.clear();
    }
    Ok(store::create(tx, c)?)
}

/// `app.importCollections(list, deleteMissing)`. System collections in the list (a
/// PocketBase snapshot holds `_superusers`, `_otps`, `_mfas`, …) are skipped: vaultbase owns
/// its system tables, and several of PocketBase's are plain tables here.
fn import(tx: &Transaction<'_>, payload: Value) -> Result<(), OpError> {
    let delete_missing = payload.get("deleteMissing").and_then(Value::as_bool).unwrap_or(false);
    let list = match payload.get("collections") {
        Some(Value::Array(items)) => items.clone(),
        _ => return Err(OpError::Invalid("importCollections expects an array of collections".into())),
    };
    let mut incoming = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        if item.get("system").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let c: Collection = serde_json::from_value(item).map_err(|e| OpError::Invalid(format!("collections.{i}: invalid collection: {e}")))?;
        incoming.push(c);
    }
    Ok(store::import(tx, incoming, delete_missing)?)
}

/// Rewrites PocketBase's `{:name}` placeholders to positional ones, with their values.
fn bind(payload: &Value) -> Result<(String, Vec<SqlValue>), OpError> {
    let sql = payload.get("sql").and_then(Value::as_str).ok_or_else(|| OpError::Invalid("newQuery needs an SQL string".into()))?;
    let params = payload.get("params").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut rest = sql;
    while let Some(start) = rest.find("{:") {
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start + 2..start + len];
        let value = params.get(name).ok_or_else(|| OpError::Invalid(format!("no value bound for {{:{name}}}")))?;
        out.push_str(&rest[..start]);
        values.push(sql_value(value));
        out.push_str(&format!("?{}", values.len()));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok((out, values))
}

fn sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn query(tx: &Transaction<'_>, sql: &str, params: Vec<SqlValue>) -> Result<Value, OpError> {
    let mut stmt = tx.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get::<_, SqlValue>(i)? {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(n) => Value::from(n),
                SqlValue::Real(f) => Value::from(f),
                SqlValue::Text(s) => Value::String(s),
                SqlValue::Blob(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(Value::Array(out))
}

/// Records in migrations (seed data): written as a superuser through the same validation and
/// insert as the API's, inside the migration's transaction. Nothing is published: no worker
/// runs yet, and a migration's writes are schema-time data, not events.
mod records {
    use rusqlite::Transaction;
    use serde_json::{Map, Value};

    use super::OpError;
    use crate::worker::records::cache::Snapshot;
    use crate::worker::records::changes::Changes;
    use crate::worker::records::crud::{self, CrudError, Requester, Shape};
    use crate::worker::records::expand::ExpandTree;
    use crate::worker::records::fields::Projection;
    use crate::worker::records::query::RequestContext;
    use crate::worker::records::store;
    use crate::worker::records::values::Access;
    use crate::worker::records::write::{self, Passwords, Uploaded};

    fn collection(tx: &Transaction<'_>, payload: &Value) -> Result<(Snapshot, std::sync::Arc<crate::worker::records::schema::Collection>), OpError> {
        let key = payload.get("collection").and_then(Value::as_str).unwrap_or_default();
        let (version, all) = store::read_all(tx)?;
        let snap = Snapshot::new(version, all);
        let c = snap.get(key).cloned().ok_or_else(|| OpError::Invalid(format!("no collection {key:?}")))?;
        Ok((snap, c))
    }

    fn crud_error(e: CrudError) -> OpError {
        match e {
            CrudError::Invalid { message, errors } => {
                let parts: Vec<String> = errors.0.iter().map(|(path, e)| format!("{path}: {}", e.message)).collect();
                OpError::Invalid(format!("{message} {}", parts.join("; ")))
            }
            CrudError::NotFound => OpError::Invalid("sql: no rows in result set".into()),
            other => OpError::Invalid(other.to_string()),
        }
    }

    fn superuser() -> Requester {
        Requester { ctx: RequestContext::new(std::time::SystemTime::now()), superuser: true }
    }

    pub fn find(tx: &Transaction<'_>, payload: &Value) -> Result<Value, OpError> {
        let (_, c) = collection(tx, payload)?;
        let id = payload.get("id").and_then(Value::as_str).unwrap_or_default();
        Ok(crud::existing(tx, &c, id).map_err(crud_error)?.map(Value::Object).unwrap_or(Value::Null))
    }

    pub fn save(tx: &Transaction<'_>, payload: &Value) -> Result<Value, OpError> {
        let (snap, c) = collection(tx, payload)?;
        let mut body: Map<String, Value> = payload.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
        // `record.setPassword(pw)` is a model-level set in PocketBase: no confirmation asked.
        if let (Some(pw), false) = (body.get("password").cloned(), body.contains_key("passwordConfirm")) {
            body.insert("passwordConfirm".into(), pw);
        }
        let mut hashes = Passwords::new();
        for plain in write::plain_passwords(&c, &body) {
            if hashes.needs_hash(&plain) {
                let hash = crate::worker::auth::password::hash_blocking(plain.as_bytes()).map_err(|e| OpError::Invalid(e.to_string()))?;
                hashes.insert(plain, hash);
            }
        }
        let shape = Shape { expand: ExpandTree::parse(""), fields: Projection::All };
        let mut changes = Changes::new();
        let mut req = superuser();
        let uploaded = Uploaded { names: &[], id: None };
        let id = body.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let exists = !id.is_empty() && crud::existing(tx, &c, &id).map_err(crud_error)?.is_some();
        let bytes = if exists {
            let mut body = body;
            body.remove("id");
            write::update(tx, &snap, &c, &mut req, &id, body, Access::Superuser, &hashes, &shape, &mut changes, uploaded)
        } else {
            write::create(tx, &snap, &c, &mut req, body, Access::Superuser, &hashes, &shape, &mut changes, uploaded)
        }
        .map_err(crud_error)?;
        serde_json::from_slice(&bytes).map_err(|e| OpError::Invalid(e.to_string()))
    }

    pub fn delete(tx: &Transaction<'_>, payload: &Value) -> Result<Value, OpError> {
        let (snap, c) = collection(tx, payload)?;
        let id = payload.get("id").and_then(Value::as_str).unwrap_or_default();
        let mut changes = Changes::new();
        crud::delete(tx, &snap, &c, &superuser(), id, &mut changes).map_err(crud_error)?;
        Ok(Value::Null)
    }
}

/// A store validation error as one readable line, `path: message` per problem.
pub fn describe(e: &OpError) -> String {
    match e {
        OpError::Store(StoreError::Invalid(errors)) => invalid_text(errors),
        OpError::Settings(SettingsError::Invalid(data)) => format!("invalid settings: {}", Value::Object(data.clone())),
        other => other.to_string(),
    }
}

fn invalid_text(errors: &SchemaErrors) -> String {
    let parts: Vec<String> = errors.0.iter().map(|(path, e)| format!("{path}: {}", e.message)).collect();
    format!("invalid collection: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_positional_parameters() {
        let (sql, values) = bind(&serde_json::json!({"sql": "SELECT {:a}, {:b}, {:a}", "params": {"a": 1, "b": "x"}})).expect("bind");
        assert_eq!(sql, "SELECT ?1, ?2, ?3");
        assert_eq!(values, vec![SqlValue::Integer(1), SqlValue::Text("x".into()), SqlValue::Integer(1)]);
        assert!(bind(&serde_json::json!({"sql": "SELECT {:missing}"})).is_err());
    }
}
