//! A synchronous facade over record data for server-side JavaScript: lookups, saves and
//! deletes through the write pipeline's own transaction stage, raw SQL with `{:name}`
//! parameters, and transactions that several of those run in. It is what `$app` is made of.
//!
//! It is called from plain std threads (the JS pool), never from the async runtime: every
//! call blocks that thread on the worker's tokio runtime through a [`Handle`]. Writes run as
//! closures on the writer thread, exactly like batch items (`records::write`), so validation,
//! cascades, version stamps, realtime and the after-commit observers are the pipeline's.
//! Inside [`Data::transaction`] the writer thread serves only that transaction's operations
//! until it commits or rolls back ([`Session`]); nothing JavaScript ever runs on the writer
//! thread — the JS thread sends closures and waits.
//!
//! It must not decide anything about hooks (which hooks fire is the caller's business) and
//! knows no HTTP: errors are [`DataError`], mapped to PocketBase's answers by the caller.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction};
use serde_json::{Map, Value};
use tokio::runtime::Handle;

use super::observe::Source;
use crate::shared::db::DbError;
use crate::worker::records::cache::Snapshot;
use crate::worker::records::changes::Changes;
use crate::worker::records::crud::{self, CrudError, Requester, Shape};
use crate::worker::records::filter;
use crate::worker::records::query::{QueryBuilder, RequestContext};
use crate::worker::records::rows;
use crate::worker::records::schema::{quote_ident, Collection, CollectionType, SchemaErrors};
use crate::worker::records::sql_value::SqlValue;
use crate::worker::records::values::{select_columns, Access};
use crate::worker::records::write::{self, plain_passwords, Passwords, Uploaded};
use crate::worker::state::AppState;

/// How long a transaction may wait for its JavaScript side's next operation before it is
/// rolled back: the writer is held meanwhile, and a stuck hook must not hold it for ever.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a data operation failed, with what PocketBase answers for it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// PocketBase's `sql: no rows in result set`: answered 404.
    #[error("sql: no rows in result set")]
    NotFound,
    /// Validation failed: 400 with the field errors.
    #[error("{message}")]
    Invalid { message: String, errors: SchemaErrors },
    /// A bad filter, sort, SQL statement or argument: 400 with this message in logs.
    #[error("{0}")]
    Bad(String),
    /// Something the caller cannot fix (the database is closed, the writer failed).
    #[error("{0}")]
    Internal(String),
}

impl From<CrudError> for DataError {
    fn from(e: CrudError) -> Self {
        match e {
            CrudError::NotFound => DataError::NotFound,
            CrudError::Invalid { message, errors } => DataError::Invalid { message: message.to_owned(), errors },
            CrudError::BadQuery(m) => DataError::Bad(m),
            CrudError::Refused(m) => DataError::Bad(m.to_owned()),
            CrudError::SuperusersOnly => DataError::Bad("Only superusers can perform this action.".into()),
            CrudError::Sqlite(e) => DataError::Bad(e.to_string()),
            other => DataError::Internal(other.to_string()),
        }
    }
}

impl From<DbError> for DataError {
    fn from(e: DbError) -> Self {
        DataError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for DataError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DataError::NotFound,
            other => DataError::Bad(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, DataError>;

/// One operation a transaction's writer-thread side runs for its JavaScript side.
type Op = Box<dyn FnOnce(&Transaction<'_>, &Snapshot, &mut Changes) + Send>;

/// The JavaScript side of an open transaction: operations go to the writer thread, which
/// runs them in order inside one transaction.
struct Session {
    ops: mpsc::SyncSender<SessionMsg>,
    snap: Arc<Snapshot>,
    /// `$jobs.enqueue` ran in it: the runners are woken once it committed.
    enqueued: std::sync::atomic::AtomicBool,
}

enum SessionMsg {
    Run(Op),
    Commit,
    Rollback,
}

/// A record as JavaScript holds it: its collection and every field by name (API values:
/// dates as text, json as values, multi-values as arrays), secrets included for auth records.
#[derive(Debug, Clone)]
pub struct RecordData {
    pub collection: Arc<Collection>,
    pub fields: Map<String, Value>,
}

/// The facade: the worker's state, the runtime to block on, and the open transaction if this
/// is a transaction-scoped app (`txApp`).
#[derive(Clone)]
pub struct Data {
    state: AppState,
    rt: Handle,
    session: Option<Arc<Session>>,
}

/// A superuser with no request: the requester of every `$app` call (rules do not apply).
fn superuser() -> Requester {
    Requester { ctx: RequestContext::new(std::time::SystemTime::now()), superuser: true }
}

/// Puts `{:name}` parameters into a filter as literals (PocketBase binds them; the filter
/// language has no placeholders, so the values are written as quoted text or numbers).
pub fn bind_filter(filter: &str, params: &Map<String, Value>) -> String {
    if params.is_empty() || !filter.contains("{:") {
        return filter.to_owned();
    }
    let mut out = String::with_capacity(filter.len() + 16);
    let mut rest = filter;
    while let Some(start) = rest.find("{:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if params.contains_key(&after[..end]) => {
                out.push_str(&filter_literal(&params[&after[..end]]));
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("{:");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn filter_literal(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote_text(s),
        other => quote_text(&other.to_string()),
    }
}

/// A filter text literal: the quote that needs no escaping if there is one, else `"` with
/// each `"` escaped (the lexer's only escape).
fn quote_text(s: &str) -> String {
    if !s.contains('"') && !s.ends_with('\\') {
        format!("\"{s}\"")
    } else if !s.contains('\'') && !s.ends_with('\\') {
        format!("'{s}'")
    } else {
        let escaped = s.replace('"', "\\\"");
        // A trailing backslash would escape the closing quote: a space keeps it literal.
        if escaped.ends_with('\\') {
            format!("\"{escaped} \"")
        } else {
            format!("\"{escaped}\"")
        }
    }
}

/// A JSON value as a bound SQL parameter (bools as 0/1, objects and arrays as JSON text).
pub fn sql_param(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => n.as_i64().map(SqlValue::Integer).unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn column_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
    }
}

/// `{:name}` placeholders as SQLite's `:name` (PocketBase's dbx syntax over rusqlite's).
fn named_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("{:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if after[..end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && end > 0 => {
                out.push(':');
                out.push_str(&after[..end]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("{:");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn bind_named(stmt: &mut rusqlite::Statement<'_>, params: &Map<String, Value>) -> Result<()> {
    for (name, v) in params {
        if let Some(i) = stmt.parameter_index(&format!(":{name}"))? {
            stmt.raw_bind_parameter(i, sql_param(v))?;
        }
    }
    Ok(())
}

/// Runs a raw statement and reads every row as a map of column name → value.
fn query_rows(conn: &Connection, sql: &str, params: &Map<String, Value>) -> Result<Vec<Map<String, Value>>> {
    let mut stmt = conn.prepare(&named_sql(sql))?;
    bind_named(&mut stmt, params)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut m = Map::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            m.insert(n.clone(), column_value(row.get_ref(i)?));
        }
        out.push(m);
    }
    Ok(out)
}

fn execute_sql(conn: &Connection, sql: &str, params: &Map<String, Value>) -> Result<usize> {
    let mut stmt = conn.prepare(&named_sql(sql))?;
    bind_named(&mut stmt, params)?;
    Ok(stmt.raw_execute()?)
}

/// A filtered, sorted page of `c`'s records as full maps (no rule: the app is a superuser).
/// `extra` is a raw SQL condition with its `{:name}` parameters (from `$dbx` expressions).
#[allow(clippy::too_many_arguments)] // the pieces of one query
fn select_records(
    conn: &Connection,
    snap: &Snapshot,
    c: &Collection,
    filter_text: &str,
    sort: &str,
    limit: i64,
    offset: i64,
    extra: Option<(&str, &Map<String, Value>)>,
) -> Result<Vec<Map<String, Value>>> {
    let req = superuser();
    let mut qb = QueryBuilder::new(c, snap, &req.ctx, &c.name).map_err(CrudError::from)?;
    if !filter_text.trim().is_empty() {
        let expr = filter::parse(filter_text).map_err(|e| DataError::Bad(e.to_string()))?;
        qb = qb.filter(&expr, true).map_err(CrudError::from)?;
    }
    if !sort.trim().is_empty() {
        qb = qb.sort(sort, true).map_err(CrudError::from)?;
    }
    let compiled = qb.finish();
    let table = quote_ident(&c.name);
    let mut where_sql = compiled.standalone_where();
    // Raw `$dbx` conditions use named parameters, which SQLite numbers after the positional
    // ones; both kinds bind in one statement.
    if let Some((raw, _)) = extra.filter(|(raw, _)| !raw.trim().is_empty()) {
        where_sql = format!("({where_sql}) AND ({})", named_sql(raw));
    }
    let order = if compiled.order_by.is_empty() { String::new() } else { format!(" ORDER BY {}", compiled.order_by) };
    let sql = format!("SELECT {} FROM {table} AS {table} WHERE {where_sql}{order} LIMIT {limit} OFFSET {offset}", select_columns(c));
    let mut stmt = conn.prepare(&sql)?;
    for (i, p) in compiled.params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, p)?;
    }
    if let Some((_, params)) = extra {
        bind_named(&mut stmt, params)?;
    }
    let ids = {
        let id_col = crate::worker::records::values::column_index(c, "id").unwrap_or(0);
        let mut rows = stmt.raw_query();
        let mut ids = Vec::new();
        while let Some(row) = rows.next()? {
            let id: String = row.get(id_col)?;
            ids.push(id);
        }
        ids
    };
    // Each record again through `rows::load`, which adds an auth record's secrets.
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(m) = rows::load(conn, c, &id)? {
            out.push(m);
        }
    }
    Ok(out)
}

fn count_records(conn: &Connection, snap: &Snapshot, c: &Collection, filter_text: &str, extra: Option<(&str, &Map<String, Value>)>) -> Result<i64> {
    let req = superuser();
    let mut qb = QueryBuilder::new(c, snap, &req.ctx, &c.name).map_err(CrudError::from)?;
    if !filter_text.trim().is_empty() {
        let expr = filter::parse(filter_text).map_err(|e| DataError::Bad(e.to_string()))?;
        qb = qb.filter(&expr, true).map_err(CrudError::from)?;
    }
    let compiled = qb.finish();
    let table = quote_ident(&c.name);
    let mut where_sql = compiled.standalone_where();
    if let Some((raw, _)) = extra.filter(|(raw, _)| !raw.trim().is_empty()) {
        where_sql = format!("({where_sql}) AND ({})", named_sql(raw));
    }
    let mut stmt = conn.prepare(&format!("SELECT COUNT(*) FROM {table} AS {table} WHERE {where_sql}"))?;
    for (i, p) in compiled.params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, p)?;
    }
    if let Some((_, params)) = extra {
        bind_named(&mut stmt, params)?;
    }
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(row) => Ok(row.get(0)?),
        None => Ok(0),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// The body a save sends to the write path: `fields` without what it must not resend (an
/// auth record's stored hash and token key, and autodate values, which the write sets).
pub fn save_body(c: &Collection, fields: &Map<String, Value>, original: Option<&Map<String, Value>>) -> Map<String, Value> {
    use crate::worker::records::schema::FieldKind;
    let mut body = Map::new();
    for f in &c.fields {
        let Some(v) = fields.get(&f.name) else { continue };
        if matches!(f.kind, FieldKind::Autodate(_)) {
            continue;
        }
        if matches!(f.kind, FieldKind::Password(_)) || f.name == "tokenKey" {
            // Only a new plain password (set through setPassword) is written; the stored hash
            // the record was loaded with never is.
            if original.and_then(|o| o.get(&f.name)) == Some(v) || v.as_str().is_none_or(str::is_empty) {
                continue;
            }
        }
        match original {
            // An update sends what changed since the record was loaded.
            Some(o) if o.get(&f.name) == Some(v) && f.name != "id" => continue,
            // A create leaves out zero values, as if not submitted: defaults, autogenerated
            // ids and the uploads of a file field then apply as for a plain request.
            None if is_zero(v) => continue,
            _ => {}
        }
        body.insert(f.name.clone(), v.clone());
    }
    if c.kind == CollectionType::Auth {
        if let Some(Value::String(p)) = fields.get("passwordConfirm") {
            body.insert("passwordConfirm".into(), Value::String(p.clone()));
        }
    }
    body
}

impl Data {
    pub fn new(state: AppState, rt: Handle) -> Data {
        Data { state, rt, session: None }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Whether this app is transaction-scoped (`txApp`).
    pub fn in_transaction(&self) -> bool {
        self.session.is_some()
    }

    fn snapshot(&self) -> Result<Arc<Snapshot>> {
        if let Some(s) = &self.session {
            return Ok(s.snap.clone());
        }
        self.rt.block_on(self.state.schema.fresh(&self.state.db)).map_err(|e| DataError::Internal(e.to_string()))
    }

    /// Blocks this (non-async) thread on `f`.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Runs `op` where this app reads: in its transaction, or on a reader connection.
    pub fn read_with<T: Send + 'static>(&self, op: impl FnOnce(&Connection, &Snapshot) -> Result<T> + Send + 'static) -> Result<T> {
        self.read(op)
    }

    fn read<T: Send + 'static>(&self, op: impl FnOnce(&Connection, &Snapshot) -> Result<T> + Send + 'static) -> Result<T> {
        match &self.session {
            Some(s) => s.run(move |tx, snap, _| op(tx, snap)),
            None => {
                let snap = self.snapshot()?;
                self.rt.block_on(self.state.db.read(move |conn| op(conn, &snap)))
            }
        }
    }

    /// Runs `op` in this app's transaction, or in a write transaction of its own that the
    /// pipeline commits (realtime, observers) before this returns.
    fn write<T: Send + 'static>(&self, op: impl FnOnce(&Transaction<'_>, &Snapshot, &mut Changes) -> Result<T> + Send + 'static) -> Result<T> {
        match &self.session {
            Some(s) => s.run(op),
            None => {
                let snap = self.snapshot()?;
                let writes = self.state.writes();
                self.rt.block_on(writes.commit(Source::Hook, move |tx, changes| op(tx, &snap, changes)))
            }
        }
    }

    /// Runs `op` in this app's transaction (or in one of its own), as its saves do: for a
    /// caller that writes through the pipeline's transaction stage itself (batch items).
    pub fn write_op<T: Send + 'static>(&self, op: impl FnOnce(&Transaction<'_>, &Snapshot, &mut Changes) -> Result<T> + Send + 'static) -> Result<T> {
        self.write(op)
    }

    /// `findCollectionByNameOrId`: 404 when there is none.
    pub fn collection(&self, name_or_id: &str) -> Result<Arc<Collection>> {
        self.snapshot()?.get(name_or_id).cloned().ok_or(DataError::NotFound)
    }

    /// `findAllCollections(...types)`: every collection, or those of the given types.
    pub fn collections(&self, types: &[String]) -> Result<Vec<Arc<Collection>>> {
        let snap = self.snapshot()?;
        Ok(snap.all().iter().filter(|c| types.is_empty() || types.iter().any(|t| t == c.kind.as_str())).cloned().collect())
    }

    fn record_data(c: &Arc<Collection>, fields: Map<String, Value>) -> RecordData {
        RecordData { collection: c.clone(), fields }
    }

    /// `findRecordById`: 404 when there is none.
    pub fn find_by_id(&self, collection: &str, id: &str) -> Result<RecordData> {
        let c = self.collection(collection)?;
        let (lc, id) = (c.clone(), id.to_owned());
        let found = self.read(move |conn, _| Ok(rows::load(conn, &lc, &id)?))?;
        found.map(|m| Self::record_data(&c, m)).ok_or(DataError::NotFound)
    }

    /// `findRecordsByIds`: those that exist, in the store's order.
    pub fn find_by_ids(&self, collection: &str, ids: &[String]) -> Result<Vec<RecordData>> {
        let c = self.collection(collection)?;
        let (lc, ids) = (c.clone(), ids.to_vec());
        let found = self.read(move |conn, _| {
            let mut out = Vec::new();
            for id in &ids {
                if let Some(m) = rows::load(conn, &lc, id)? {
                    out.push(m);
                }
            }
            Ok(out)
        })?;
        Ok(found.into_iter().map(|m| Self::record_data(&c, m)).collect())
    }

    /// `findRecordsByFilter(col, filter, sort, limit, offset, params)` (limit 0: no limit), and
    /// with `raw` the `$dbx` expression of `findAllRecords`.
    #[allow(clippy::too_many_arguments)]
    pub fn find_by_filter(
        &self,
        collection: &str,
        filter_text: &str,
        sort: &str,
        limit: i64,
        offset: i64,
        params: &Map<String, Value>,
        raw: Option<(String, Map<String, Value>)>,
    ) -> Result<Vec<RecordData>> {
        let c = self.collection(collection)?;
        let (lc, f, s) = (c.clone(), bind_filter(filter_text, params), sort.to_owned());
        let limit = if limit <= 0 { -1 } else { limit };
        let offset = offset.max(0);
        let found = self.read(move |conn, snap| select_records(conn, snap, &lc, &f, &s, limit, offset, raw.as_ref().map(|(r, p)| (r.as_str(), p))))?;
        Ok(found.into_iter().map(|m| Self::record_data(&c, m)).collect())
    }

    /// `findFirstRecordByFilter`: 404 when none matches.
    pub fn first_by_filter(&self, collection: &str, filter_text: &str, params: &Map<String, Value>) -> Result<RecordData> {
        self.find_by_filter(collection, filter_text, "", 1, 0, params, None)?.into_iter().next().ok_or(DataError::NotFound)
    }

    /// `countRecords(col, filter?)` with an optional raw `$dbx` expression.
    pub fn count(&self, collection: &str, filter_text: &str, params: &Map<String, Value>, raw: Option<(String, Map<String, Value>)>) -> Result<i64> {
        let c = self.collection(collection)?;
        let f = bind_filter(filter_text, params);
        self.read(move |conn, snap| count_records(conn, snap, &c, &f, raw.as_ref().map(|(r, p)| (r.as_str(), p))))
    }

    /// `findAuthRecordByEmail`: 404 when there is none (or the collection is not auth).
    pub fn find_auth_by_email(&self, collection: &str, email: &str) -> Result<RecordData> {
        let c = self.collection(collection)?;
        if c.kind != CollectionType::Auth {
            return Err(DataError::NotFound);
        }
        let mut params = Map::new();
        params.insert("email".into(), Value::String(email.to_owned()));
        self.first_by_filter(collection, "email = {:email}", &params)
    }

    /// Hashes the plain passwords `body` sets, off the writer thread.
    fn hashes_for(&self, c: &Collection, body: &Map<String, Value>) -> Result<Passwords> {
        let mut hashes = Passwords::new();
        for plain in plain_passwords(c, body) {
            if hashes.needs_hash(&plain) {
                let hash = self.rt.block_on(self.state.passwords.hash(&plain)).map_err(|e| DataError::Bad(e.to_string()))?;
                hashes.insert(plain, hash);
            }
        }
        Ok(hashes)
    }

    /// `save`: creates the record if `is_new`, else updates it (by its id) with the fields that
    /// differ from `original` (the record as it was loaded). Validated as a superuser's write
    /// (rules do not apply); answers the record as stored.
    pub fn save(&self, record: &RecordData, is_new: bool, original: Option<&Map<String, Value>>) -> Result<RecordData> {
        self.save_as(write::Check::Validate, record, is_new, original)
    }

    /// [`Data::save`], validating or not (`saveNoValidate` stores the fields as coerced).
    pub fn save_as(&self, check: write::Check, record: &RecordData, is_new: bool, original: Option<&Map<String, Value>>) -> Result<RecordData> {
        let c = record.collection.clone();
        let mut body = save_body(&c, &record.fields, if is_new { None } else { original });
        // `passwordConfirm` belongs to the API's form: a save from code sets the password alone.
        if let (CollectionType::Auth, Some(Value::String(p))) = (c.kind, body.get("password")) {
            if !body.contains_key("passwordConfirm") {
                let p = p.clone();
                body.insert("passwordConfirm".into(), Value::String(p));
            }
        }
        let hashes = self.hashes_for(&c, &body)?;
        let id = (!is_new).then(|| record.fields.get("id").and_then(Value::as_str).unwrap_or_default().to_owned());
        let wc = c.clone();
        let saved = self.write(move |tx, snap, changes| {
            // The snapshot's own copy: a record built from an older collection still saves
            // against the current schema.
            let current = snap.get(&wc.id).cloned().ok_or(DataError::NotFound)?;
            let mut req = superuser();
            let shape = Shape::default();
            let bytes = match &id {
                None => write::create_as(check, tx, snap, &current, &mut req, body, Access::Superuser, &hashes, &shape, changes, Uploaded::default())?,
                Some(id) => write::update_as(check, tx, snap, &current, &mut req, id, body, Access::Superuser, &hashes, &shape, changes, Uploaded::default())?,
            };
            let saved_id = match &id {
                Some(id) => id.clone(),
                None => serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned)).unwrap_or_default(),
            };
            Ok(rows::load(tx, &current, &saved_id)?.unwrap_or_default())
        })?;
        Ok(Self::record_data(&c, saved))
    }

    /// `delete`: the record and what its relations cascade to.
    pub fn delete(&self, collection: &Collection, id: &str) -> Result<()> {
        let (cid, id) = (collection.id.clone(), id.to_owned());
        self.write(move |tx, snap, changes| {
            let c = snap.get(&cid).cloned().ok_or(DataError::NotFound)?;
            crud::delete(tx, snap, &c, &superuser(), &id, changes)?;
            Ok(())
        })
    }

    /// `db().newQuery(sql).bind(params).all()`: every row as a map.
    pub fn query(&self, sql: &str, params: &Map<String, Value>) -> Result<Vec<Map<String, Value>>> {
        let (sql, params) = (sql.to_owned(), params.clone());
        if self.session.is_some() {
            return self.read(move |conn, _| query_rows(conn, &sql, &params));
        }
        // A statement that writes must reach the writer: decide by asking SQLite.
        let readonly = {
            let (s, p) = (sql.clone(), params.clone());
            self.rt.block_on(self.state.db.read(move |conn| -> Result<Option<Vec<Map<String, Value>>>> {
                let stmt = conn.prepare(&named_sql(&s))?;
                if stmt.readonly() {
                    drop(stmt);
                    Ok(Some(query_rows(conn, &s, &p)?))
                } else {
                    Ok(None)
                }
            }))?
        };
        match readonly {
            Some(rows) => Ok(rows),
            None => self.write(move |tx, _, _| query_rows(tx, &sql, &params)),
        }
    }

    /// `db().newQuery(sql).bind(params).execute()`: the number of rows changed.
    pub fn execute(&self, sql: &str, params: &Map<String, Value>) -> Result<usize> {
        let (sql, params) = (sql.to_owned(), params.clone());
        self.write(move |tx, _, _| execute_sql(tx, &sql, &params))
    }

    /// `runInTransaction(fn)`: runs `f` with a transaction-scoped app; commits if it returns
    /// `Ok`, rolls everything back if it returns `Err` (given back unchanged). Inside a
    /// transaction, `f` runs in the same transaction (as PocketBase nests them).
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Data) -> std::result::Result<T, E>) -> std::result::Result<T, E>
    where
        E: From<DataError>,
    {
        if self.session.is_some() {
            return f(self);
        }
        let snap = self.snapshot()?;
        let (ops_tx, ops_rx) = mpsc::sync_channel::<SessionMsg>(1);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<()>>();
        let writes_state = self.state.clone();
        let job_snap = snap.clone();
        // The writer side: serves this transaction's operations until told to commit.
        self.rt.spawn(async move {
            let writes = writes_state.writes();
            let out = writes
                .commit(Source::Hook, move |tx, changes| -> Result<()> {
                    loop {
                        match ops_rx.recv_timeout(SESSION_IDLE_TIMEOUT) {
                            Ok(SessionMsg::Run(op)) => op(tx, &job_snap, changes),
                            Ok(SessionMsg::Commit) => return Ok(()),
                            Ok(SessionMsg::Rollback) => return Err(DataError::Bad("rolled back".into())),
                            Err(_) => return Err(DataError::Internal("the transaction was abandoned".into())),
                        }
                    }
                })
                .await;
            let _ = done_tx.send(out);
        });
        let session = Arc::new(Session { ops: ops_tx, snap, enqueued: Default::default() });
        let tx_app = Data { state: self.state.clone(), rt: self.rt.clone(), session: Some(session.clone()) };
        let out = f(&tx_app);
        drop(tx_app);
        let end = if out.is_ok() { SessionMsg::Commit } else { SessionMsg::Rollback };
        let _ = session.ops.send(end);
        let committed = done_rx.recv().unwrap_or_else(|_| Err(DataError::Internal("the transaction task ended".into())));
        if committed.is_ok() && session.enqueued.load(std::sync::atomic::Ordering::Relaxed) {
            self.state.jobs.wake();
        }
        match (out, committed) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(e.into()),
            (Err(e), _) => Err(e),
        }
    }

    /// `$jobs.enqueue`: in this app's transaction (the job then exists only if it commits),
    /// or in a write of its own. Answers the job's id (the existing job's for a taken key).
    pub fn enqueue_job(&self, name: &str, payload: Value, opts: crate::worker::jobs::EnqueueOptions) -> Result<String> {
        use crate::worker::jobs::{self, EnqueueFailure};
        let failed = |e: EnqueueFailure| match e {
            EnqueueFailure::Invalid(e) => DataError::Bad(e.to_string()),
            EnqueueFailure::Db(e) => DataError::Internal(e.to_string()),
        };
        let name = name.to_owned();
        match &self.session {
            Some(s) => {
                let id = s.run(move |tx, _, _| jobs::enqueue(tx, &name, &payload, &opts, jobs::now_ms()).map_err(failed))?;
                s.enqueued.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(id)
            }
            None => self.rt.block_on(jobs::enqueue_now(&self.state, &name, payload, opts)).map_err(failed),
        }
    }

    /// Whether `password` is the one behind the stored hash of auth record `record`.
    pub fn verify_password(&self, hash: &str, password: &str) -> bool {
        if hash.is_empty() {
            return false;
        }
        self.rt.block_on(self.state.passwords.verify(hash.to_owned(), password)).unwrap_or(false)
    }
}

impl Session {
    /// Runs `op` on the writer thread inside this transaction and waits for its answer.
    fn run<T: Send + 'static>(&self, op: impl FnOnce(&Transaction<'_>, &Snapshot, &mut Changes) -> Result<T> + Send + 'static) -> Result<T> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Op = Box::new(move |tx, snap, changes| {
            // A failed statement inside the transaction must not poison what came before it
            // (PocketBase's caller decides whether to go on): each op runs in a savepoint.
            let out = match tx.execute_batch("SAVEPOINT vb_op") {
                Ok(()) => {
                    let r = op(tx, snap, changes);
                    let end = if r.is_ok() { "RELEASE vb_op" } else { "ROLLBACK TO vb_op; RELEASE vb_op" };
                    match (r, tx.execute_batch(end)) {
                        (Ok(_), Err(e)) => Err(DataError::from(e)),
                        (r, _) => r,
                    }
                }
                Err(e) => Err(DataError::from(e)),
            };
            let _ = reply_tx.send(out);
        });
        self.ops.send(SessionMsg::Run(job)).map_err(|_| DataError::Internal("the transaction is closed".into()))?;
        reply_rx.recv().map_err(|_| DataError::Internal("the transaction is closed".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_params_become_literals() {
        let mut p = Map::new();
        p.insert("a".into(), Value::from("x\"y"));
        p.insert("n".into(), Value::from(3));
        assert_eq!(bind_filter("t = {:a} && n > {:n} && z = {:missing}", &p), "t = 'x\"y' && n > 3 && z = {:missing}");
        p.insert("b".into(), Value::from("it's \"q\""));
        assert_eq!(bind_filter("t = {:b}", &p), "t = \"it's \\\"q\\\"\"");
    }

    #[test]
    fn dbx_placeholders_become_named_parameters() {
        assert_eq!(named_sql("SELECT * FROM t WHERE a = {:a} AND b = {:b_2}"), "SELECT * FROM t WHERE a = :a AND b = :b_2");
        assert_eq!(named_sql("SELECT '{:x y}'"), "SELECT '{:x y}'");
    }
}
