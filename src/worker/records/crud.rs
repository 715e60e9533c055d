//! Record reads and writes under PocketBase's API rules: the SQL side of list, view, create,
//! update and delete, run on the database threads.
//!
//! Rules and client filters compile (via [`super::query`]) into the same statement that reads
//! or writes, so a rule is never checked against a different state than the one served: the
//! view rule is part of the SELECT; the create rule is checked on the inserted row inside the
//! write transaction (a failure rolls the insert back); update and delete rules are checked on
//! the stored row inside the transaction that changes it. Each job first compares the schema
//! snapshot it was planned with ([`Snapshot::check`]); a stale plan is retried by the caller.
//!
//! Every read answer is written with the request's [`Shape`]: the `fields` projection applied
//! while the rows are written, and `expand` run in batches over all of a response's rows
//! ([`super::expand::run`]) before each record's closing brace is written.
//!
//! Synchronous and HTTP-free: no awaits (password hashing happens before, in the caller), no
//! side effects outside SQLite.

use std::collections::HashSet;

use rusqlite::{params_from_iter, Connection, ErrorCode, OptionalExtension, Transaction};
use serde_json::{Map, Value};

use super::cache::{CheckError, Snapshot, Stale};
use super::changes::{self, Action, Changes};
use super::expand::run::{Expander, Level, EXPAND_TOO_LARGE_MESSAGE};
use super::expand::ExpandTree;
use super::fields::Projection;
use super::filter::{self, Limits};
use super::query::{self, QueryBuilder, QueryError, RequestContext, SchemaLookup};
use super::schema::{quote_ident, Collection, CollectionType, Field, FieldKind, Invalid, SchemaErrors};
use super::sql_value::SqlValue;
use super::encrypted::{seal_columns, FieldCryptoError};
use super::values::{column_count, select_columns, write_record_open, OutputOptions, RecordPlan, RelationRefs};

/// Relation hops a cascading delete may follow before refusing (a cycle guard).
pub const MAX_CASCADE_DEPTH: usize = 16;

/// Why a record operation failed, mapped to PocketBase's answers by the API layer.
#[derive(Debug, thiserror::Error)]
pub enum CrudError {
    /// 404: no such record, or a view/update/delete rule excludes it.
    #[error("not found")]
    NotFound,
    /// 403: the rule is null and the requester is not a superuser.
    #[error("only superusers can perform this action")]
    SuperusersOnly,
    /// 400 with the default message: a bad filter, sort or rule.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// 400 with a validation map.
    #[error("{message}")]
    Invalid { message: &'static str, errors: SchemaErrors },
    /// 400 with a message and empty data.
    #[error("{0}")]
    Refused(&'static str),
    /// The schema changed since the plan was made: reload and retry.
    #[error(transparent)]
    Stale(Stale),
    /// 400 naming the field: an encrypted field in a filter, sort or rule.
    #[error("field {0:?} is encrypted and cannot be used to filter or sort")]
    EncryptedField(String),
    /// A value of an encrypted field could not be sealed (500).
    #[error(transparent)]
    Encryption(FieldCryptoError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Db(#[from] crate::shared::db::DbError),
}

impl CrudError {
    /// Whether this is the refusal of an expansion past its bounds (see
    /// [`super::expand::run::MAX_EXPANDED_RECORDS`]): the requester's own choice of `expand`,
    /// worth a warning where it cannot be answered (realtime).
    pub fn is_expand_too_large(&self) -> bool {
        matches!(self, CrudError::Refused(m) if *m == EXPAND_TOO_LARGE_MESSAGE)
    }
}

impl From<CheckError> for CrudError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Stale(s) => CrudError::Stale(s),
            CheckError::Sqlite(s) => CrudError::Sqlite(s),
        }
    }
}

impl From<QueryError> for CrudError {
    fn from(e: QueryError) -> Self {
        if let QueryError::EncryptedField(name) = e {
            return CrudError::EncryptedField(name);
        }
        CrudError::BadQuery(e.to_string())
    }
}

/// Who asks, for rules and output.
#[derive(Debug, Clone)]
pub struct Requester {
    pub ctx: RequestContext,
    pub superuser: bool,
}

impl Requester {
    /// The auth record `record` of `c` proving itself (a sign-in's authRule or MFA rule, an
    /// OAuth2 sign-in): the record is `@request.auth`, method POST, `@request.context` is
    /// `context`.
    pub fn signing_in(c: &Collection, record: &Map<String, Value>, context: &str) -> Requester {
        let mut ctx = RequestContext::new(std::time::SystemTime::now());
        ctx.auth = Some(query::AuthContext::of_record(&c.id, &c.name, record));
        ctx.method = "POST".into();
        ctx.context = context.into();
        Requester { ctx, superuser: false }
    }

    fn auth_id(&self) -> Option<&str> {
        self.ctx.auth.as_ref().map(|a| a.id()).filter(|id| !id.is_empty())
    }

    fn auth_collection(&self) -> Option<&str> {
        self.ctx.auth.as_ref().map(|a| a.collection_id.as_str())
    }
}

/// What a response shows of each record: `?expand=` and `?fields=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    pub expand: ExpandTree,
    pub fields: Projection,
}

/// A page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
    pub skip_total: bool,
}

impl SchemaLookup for Snapshot {
    fn collection_by_name_or_id(&self, name_or_id: &str) -> Option<&Collection> {
        self.get(name_or_id).map(|c| c.as_ref())
    }
}

/// Parses a stored rule (no client-filter length cap, PocketBase's comparison cap).
pub(super) fn parse_rule(rule: &str) -> Result<filter::Expr, CrudError> {
    let limits = Limits { max_len_bytes: query::MAX_RULE_LEN_BYTES, ..Limits::CLIENT_FILTER };
    filter::parse_with_limits(rule, limits).map_err(|e| CrudError::BadQuery(e.to_string()))
}

/// The rule the requester is held to: `None` means no check (superuser or an empty rule).
fn effective_rule<'r>(rule: &'r Option<String>, req: &Requester) -> Result<Option<&'r str>, CrudError> {
    if req.superuser {
        return Ok(None);
    }
    match rule.as_deref() {
        None => Err(CrudError::SuperusersOnly),
        Some(r) if r.trim().is_empty() => Ok(None),
        Some(r) => Ok(Some(r)),
    }
}

fn alias(c: &Collection) -> &str {
    // select_columns qualifies columns with the table name, so the table is its own alias.
    &c.name
}

/// Output flags for one row: hidden fields for superusers; the email of an auth record for
/// superusers and for the record itself (its visibility flag decides for everyone else).
pub(super) fn output_for(c: &Collection, req: &Requester, row_id: &str) -> OutputOptions {
    let own = c.kind == CollectionType::Auth && req.auth_collection() == Some(c.id.as_str()) && req.auth_id() == Some(row_id);
    OutputOptions { show_hidden: req.superuser, show_email: req.superuser || own }
}

/// Writes the records `rows` selects ([`select_columns`] then the id) with `shape` applied:
/// a JSON array when `array`, else only the first row as an object. Returns how many records
/// were written.
///
/// Without `expand` each record is written and closed in place. With it, the records are
/// written open into one buffer while the relation ids are gathered, the expansion runs once
/// for all of them, and the final output is put together with each record's `expand` object
/// before its closing brace.
#[allow(clippy::too_many_arguments)] // the read context (connection, schema, requester) plus what to write
fn write_records(
    conn: &Connection,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    rows: &mut rusqlite::Rows<'_>,
    shape: &Shape,
    out: &mut Vec<u8>,
    array: bool,
) -> Result<usize, CrudError> {
    let id_index = column_count(c);
    let plan = match &shape.fields {
        Projection::All => None,
        projection => Some(RecordPlan::new(c, projection)),
    };
    let expand_shown = plan.as_ref().is_none_or(|p| !p.expand().is_drop());
    if array {
        out.push(b'[');
    }
    if shape.expand.is_empty() || !expand_shown {
        // Nothing to expand, or the projection hides `expand` altogether.
        let mut count = 0;
        while let Some(row) = rows.next()? {
            if count > 0 {
                out.push(b',');
            }
            let id: String = row.get(id_index)?;
            write_record_open(out, c, row, &output_for(c, req, &id), plan.as_ref())?;
            out.push(b'}');
            count += 1;
            if !array {
                break;
            }
        }
        if array {
            out.push(b']');
        }
        return Ok(count);
    }

    let plan = plan.unwrap_or_else(|| RecordPlan::new(c, &Projection::All));
    let mut level = Level::new(snap, c, &shape.expand.roots, req.superuser);
    let mut body = Vec::with_capacity(256);
    // (start, end, wrote a key) of each open record in `body`.
    let mut spans: Vec<(usize, usize, bool)> = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(id_index)?;
        let start = body.len();
        let wrote = write_record_open(&mut body, c, row, &output_for(c, req, &id), Some(&plan))?;
        spans.push((start, body.len(), wrote));
        level.push(row, id)?;
        if !array {
            break;
        }
    }
    let objects = Expander::new(conn, snap, req)
        .expand(&shape.expand.roots, &level, plan.expand())
        .map_err(|_| CrudError::Refused(EXPAND_TOO_LARGE_MESSAGE))?;
    out.reserve(body.len() + objects.as_ref().map_or(0, |o| o.iter().map(Vec::len).sum::<usize>()) + spans.len() * 12);
    for (i, &(start, end, wrote)) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(body.get(start..end).unwrap_or_default());
        if let Some(object) = objects.as_ref().and_then(|o| o.get(i)) {
            if wrote {
                out.push(b',');
            }
            out.extend_from_slice(b"\"expand\":");
            out.extend_from_slice(object);
        }
        out.push(b'}');
    }
    if array {
        out.push(b']');
    }
    Ok(spans.len())
}

/// Runs `f` inside one read transaction, so a job's version check and its queries see the
/// same state of the database (another process may commit between two statements otherwise).
pub fn read_snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T, CrudError>) -> Result<T, CrudError> {
    crate::shared::db::read_tx(conn, f)
}

/// One page of records as a JSON array, and the total unless skipped.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the one query; a struct would only rename them
pub fn list(
    conn: &Connection,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    page: &Page,
    filter_text: &str,
    sort: &str,
    shape: &Shape,
) -> Result<(Vec<u8>, Option<u64>), CrudError> {
    snap.check(conn)?;
    let rule = effective_rule(&c.list_rule, req)?;
    let mut qb = QueryBuilder::new(c, snap, &req.ctx, alias(c))?;
    if let Some(rule) = rule {
        qb = qb.filter(&parse_rule(rule)?, true)?;
    }
    if !filter_text.trim().is_empty() {
        let expr = filter::parse(filter_text).map_err(|e| CrudError::BadQuery(e.to_string()))?;
        qb = qb.filter(&expr, req.superuser)?;
    }
    if !sort.trim().is_empty() {
        qb = qb.sort(sort, req.superuser)?;
    }
    let compiled = qb.finish();
    let table = quote_ident(&c.name);
    let where_sql = compiled.standalone_where();
    let order = if !compiled.order_by.is_empty() {
        format!(" ORDER BY {}", compiled.order_by)
    } else if c.kind == CollectionType::View {
        String::new()
    } else {
        format!(" ORDER BY {table}.rowid")
    };
    let n = compiled.params.len();
    let sql = format!(
        "SELECT {}, {table}.\"id\" FROM {table} AS {table} WHERE {where_sql}{order} LIMIT ?{} OFFSET ?{}",
        select_columns(c),
        n + 1,
        n + 2
    );
    let mut params = compiled.params.clone();
    params.push(SqlValue::Integer(i64::from(page.per_page)));
    params.push(SqlValue::Integer(i64::from(page.page.saturating_sub(1)).saturating_mul(i64::from(page.per_page))));
    let mut out = Vec::with_capacity(256 * page.per_page.min(100) as usize);
    {
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        write_records(conn, snap, c, req, &mut rows, shape, &mut out, true)?;
    }
    let total = if page.skip_total {
        None
    } else {
        let count_sql = format!("SELECT COUNT(*) FROM {table} AS {table} WHERE {where_sql}");
        let count: i64 = conn.prepare_cached(&count_sql)?.query_row(params_from_iter(compiled.params.iter()), |r| r.get(0))?;
        Some(u64::try_from(count).unwrap_or(0))
    };
    Ok((out, total))
}

/// Compiles `rule` (if any) as a standalone WHERE over `c` and returns (sql, params), with
/// the record id bound after the rule's parameters.
fn id_and_rule(c: &Collection, snap: &Snapshot, req: &Requester, rule: Option<&str>) -> Result<(String, Vec<SqlValue>), CrudError> {
    let table = quote_ident(&c.name);
    let mut qb = QueryBuilder::new(c, snap, &req.ctx, alias(c))?;
    if let Some(rule) = rule {
        qb = qb.filter(&parse_rule(rule)?, true)?;
    }
    let compiled = qb.finish();
    let n = compiled.params.len();
    Ok((format!("{table}.\"id\" = ?{} AND ({})", n + 1, compiled.standalone_where()), compiled.params))
}

/// One record's JSON, under the view rule.
pub fn view(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, id: &str, shape: &Shape) -> Result<Vec<u8>, CrudError> {
    snap.check(conn)?;
    let rule = effective_rule(&c.view_rule, req)?;
    read_one(conn, snap, c, req, id, rule, shape)?.ok_or(CrudError::NotFound)
}

fn read_one(
    conn: &Connection,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    id: &str,
    rule: Option<&str>,
    shape: &Shape,
) -> Result<Option<Vec<u8>>, CrudError> {
    let (where_sql, mut params) = id_and_rule(c, snap, req, rule)?;
    params.push(SqlValue::Text(id.to_owned()));
    let table = quote_ident(&c.name);
    let sql = format!("SELECT {}, {table}.\"id\" FROM {table} AS {table} WHERE {where_sql}", select_columns(c));
    render_one(conn, snap, c, req, &sql, &params, shape)
}

/// True if record `id` exists and passes `rule` (no rule: exists).
pub fn passes(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, id: &str, rule: Option<&str>) -> Result<bool, CrudError> {
    let (where_sql, mut params) = id_and_rule(c, snap, req, rule)?;
    params.push(SqlValue::Text(id.to_owned()));
    let table = quote_ident(&c.name);
    let sql = format!("SELECT 1 FROM {table} AS {table} WHERE {where_sql}");
    Ok(conn.prepare_cached(&sql)?.query_row(params_from_iter(params.iter()), |_| Ok(())).optional()?.is_some())
}

/// `validation_missing_rel_records` for relation fields whose ids do not all exist.
fn check_relations(tx: &Transaction<'_>, snap: &Snapshot, refs: &[RelationRefs]) -> Result<(), CrudError> {
    let errors = missing_relations(tx, snap, refs)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CrudError::Invalid { message: "Failed to validate the submitted data.", errors })
    }
}

/// The `validation_missing_rel_records` errors of `refs`, keyed by field (empty: all exist).
pub fn missing_relations(conn: &Connection, snap: &Snapshot, refs: &[RelationRefs]) -> Result<SchemaErrors, CrudError> {
    let mut errors = SchemaErrors::default();
    for r in refs {
        let Some(target) = snap.get(&r.collection_id) else {
            errors.add(r.field.clone(), Invalid::new("validation_missing_rel_records", "Failed to find all relation records with the provided ids."));
            continue;
        };
        let unique: HashSet<&String> = r.ids.iter().collect();
        let placeholders: Vec<String> = (1..=unique.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("SELECT COUNT(*) FROM {} WHERE \"id\" IN ({})", quote_ident(&target.name), placeholders.join(", "));
        let found: i64 = conn.query_row(&sql, params_from_iter(unique.iter()), |row| row.get(0))?;
        if usize::try_from(found).unwrap_or(0) != unique.len() {
            errors.add(r.field.clone(), Invalid::new("validation_missing_rel_records", "Failed to find all relation records with the provided ids."));
        }
    }
    Ok(errors)
}

/// Maps a UNIQUE violation (`UNIQUE constraint failed: posts.email`) onto its field.
fn unique_violation(e: rusqlite::Error, c: &Collection, message: &'static str) -> CrudError {
    if let rusqlite::Error::SqliteFailure(f, Some(text)) = &e {
        if matches!(f.code, ErrorCode::ConstraintViolation) {
            let mut errors = SchemaErrors::default();
            let prefix = format!("{}.", c.name);
            for col in text.rsplit(": ").next().unwrap_or_default().split(", ") {
                let field = col.trim().strip_prefix(&prefix).unwrap_or(col.trim());
                if c.field(field).is_some() {
                    errors.add(field.to_owned(), Invalid::new("validation_not_unique", "Value must be unique."));
                }
            }
            if !errors.is_empty() {
                return CrudError::Invalid { message, errors };
            }
        }
    }
    CrudError::Sqlite(e)
}

/// Inserts a validated record and checks the create rule on it; returns the record's JSON.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the one write; a struct would only rename them
pub fn create(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    columns: &[(String, SqlValue)],
    relations: &[RelationRefs],
    shape: &Shape,
    changes: &mut Changes,
) -> Result<Vec<u8>, CrudError> {
    snap.check(tx)?;
    if c.kind == CollectionType::View {
        return Err(CrudError::Refused("Unsupported collection type."));
    }
    let rule = effective_rule(&c.create_rule, req)?;
    let columns = &*seal_columns(c, columns).map_err(CrudError::Encryption)?;
    let names: Vec<String> = columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", quote_ident(&c.name), names.join(", "), marks.join(", "));
    tx.prepare_cached(&sql)?
        .execute(params_from_iter(columns.iter().map(|(_, v)| v)))
        .map_err(|e| unique_violation(e, c, "Failed to create record."))?;
    let id = columns
        .iter()
        .find(|(n, _)| n == "id")
        .map(|(_, v)| v.to_text())
        .ok_or(CrudError::Refused("Failed to create record."))?;
    // No rule (superuser or public): the row just inserted exists, nothing to check.
    if rule.is_some() && !passes(tx, snap, c, req, &id, rule)? {
        return Err(CrudError::Refused("Failed to create record."));
    }
    // Only once the rule admits the row (relation columns are plain text: nothing refuses an
    // unknown id on insert), so a refused client never learns which related ids exist. An
    // error rolls the insert back.
    check_relations(tx, snap, relations)?;
    changes::record_after(tx, c, &id, Action::Create, None, changes)?;
    read_one(tx, snap, c, req, &id, None, shape)?.ok_or(CrudError::NotFound)
}

/// Whether the create rule admits a record with these column values, checked as PocketBase
/// does before it validates anything: against a one-row CTE that stands in for the table
/// (under the table's own name, so the rule's SQL reads it unchanged), so nothing is written
/// and no unique index can answer first. A field without a value (it failed validation)
/// counts as its zero value.
pub fn create_rule_admits(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, columns: &[(String, SqlValue)]) -> Result<bool, CrudError> {
    snap.check(conn)?;
    let Some(rule) = effective_rule(&c.create_rule, req)? else { return Ok(true) };
    let compiled = QueryBuilder::new(c, snap, &req.ctx, alias(c))?.filter(&parse_rule(rule)?, true)?.finish();
    let where_sql = compiled.standalone_where();
    let mut params = compiled.params;
    let cte = one_row_cte(c, columns, &mut params);
    let table = quote_ident(&c.name);
    let sql = format!("{cte} SELECT EXISTS(SELECT 1 FROM {ONE_ROW_CTE} AS {table} WHERE {where_sql})");
    Ok(conn.query_row(&sql, params_from_iter(params.iter()), |r| r.get(0))?)
}

/// The name of the one-row CTE that stands in for a collection's table when a rule is checked
/// against a record that is not (or no longer) stored. It must differ from every table a rule
/// can join: a CTE named like the table would shadow it, and `@collection.<same>`, a
/// back-relation from the same collection or a self-relation would then see only this one
/// row. Non-system collection names cannot start with `_`, and no system collection or
/// internal table is called this.
const ONE_ROW_CTE: &str = "\"_vb_one_row\"";

/// `WITH "_vb_one_row" AS (SELECT ?N AS "field", …)` holding `columns` (a field missing from
/// them gets its column default), its values appended to `params`. The caller selects
/// `FROM "_vb_one_row" AS "<collection>"`, so the compiled rule's references to the base alias
/// (the collection's own name, see [`alias`]) read this row while its joins by table name
/// still read the stored tables.
fn one_row_cte(c: &Collection, columns: &[(String, SqlValue)], params: &mut Vec<SqlValue>) -> String {
    let mut selects = Vec::with_capacity(c.fields.len());
    for f in &c.fields {
        let value = columns.iter().find(|(n, _)| *n == f.name).map_or_else(|| zero_value(f), |(_, v)| v.clone());
        params.push(value);
        selects.push(format!("?{} AS {}", params.len(), quote_ident(&f.name)));
    }
    format!("WITH {ONE_ROW_CTE} AS (SELECT {})", selects.join(", "))
}

/// The value a field's column holds when nothing was set (its column default).
fn zero_value(f: &Field) -> SqlValue {
    if f.is_multiple() {
        return SqlValue::Text("[]".to_owned());
    }
    match &f.kind {
        FieldKind::Number(_) | FieldKind::Bool(_) => SqlValue::Integer(0),
        FieldKind::Json(_) => SqlValue::Null,
        FieldKind::GeoPoint(_) => SqlValue::Text(r#"{"lon":0,"lat":0}"#.to_owned()),
        _ => SqlValue::Text(String::new()),
    }
}

/// Whether `id` may be updated by `req` (exists and passes the update rule).
pub fn can_update(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, id: &str) -> Result<bool, CrudError> {
    snap.check(conn)?;
    if c.kind == CollectionType::View {
        return Err(CrudError::Refused("Unsupported collection type."));
    }
    let rule = effective_rule(&c.update_rule, req)?;
    passes(conn, snap, c, req, id, rule)
}

/// Applies a validated change to record `id`, re-checking the update rule on the stored row
/// inside the transaction; returns the updated record's JSON.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the one write; a struct would only rename them
pub fn update(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    id: &str,
    columns: &[(String, SqlValue)],
    relations: &[RelationRefs],
    shape: &Shape,
    changes: &mut Changes,
) -> Result<Vec<u8>, CrudError> {
    if !can_update(tx, snap, c, req, id)? {
        return Err(CrudError::NotFound);
    }
    check_relations(tx, snap, relations)?;
    let before = changes.before(tx, c, id)?;
    if !columns.is_empty() {
        let columns = &*seal_columns(c, columns).map_err(CrudError::Encryption)?;
        let sets: Vec<String> = columns.iter().enumerate().map(|(i, (n, _))| format!("{} = ?{}", quote_ident(n), i + 1)).collect();
        let sql = format!("UPDATE {} SET {} WHERE \"id\" = ?{}", quote_ident(&c.name), sets.join(", "), columns.len() + 1);
        let mut values: Vec<SqlValue> = columns.iter().map(|(_, v)| v.clone()).collect();
        values.push(SqlValue::Text(id.to_owned()));
        tx.prepare_cached(&sql)?
            .execute(params_from_iter(values.iter()))
            .map_err(|e| unique_violation(e, c, "Failed to update record."))?;
    }
    let new_id = columns.iter().find(|(n, _)| n == "id").map(|(_, v)| v.to_text()).unwrap_or_else(|| id.to_owned());
    changes::record_after(tx, c, &new_id, Action::Update, before, changes)?;
    read_one(tx, snap, c, req, &new_id, None, shape)?.ok_or(CrudError::NotFound)
}

/// Deletes record `id` under the delete rule, with PocketBase's relation side effects: the id
/// is removed from every relation that holds it; a referencing record left with no ids is
/// deleted too if the relation cascades, refuses the whole delete if the relation is required,
/// and is saved with the trimmed value otherwise. Returns every deleted record as
/// `(collection id, record id)`, cascades included (their files go after the commit). Every
/// deleted record is added to `changes` as it was just before its deletion, and every record
/// a trimmed relation changed as it is after.
pub fn delete(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    id: &str,
    changes: &mut Changes,
) -> Result<Vec<(String, String)>, CrudError> {
    snap.check(tx)?;
    if c.kind == CollectionType::View {
        return Err(CrudError::Refused("Unsupported collection type."));
    }
    let rule = effective_rule(&c.delete_rule, req)?;
    if !passes(tx, snap, c, req, id, rule)? {
        return Err(CrudError::NotFound);
    }
    let mut visited = HashSet::new();
    delete_cascading(tx, snap, c, id, 0, &mut visited, changes)?;
    Ok(visited.into_iter().collect())
}

fn delete_cascading(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    id: &str,
    depth: usize,
    visited: &mut HashSet<(String, String)>,
    changes: &mut Changes,
) -> Result<(), CrudError> {
    if depth > MAX_CASCADE_DEPTH {
        return Err(CrudError::Refused("Failed to delete record: the relation cascade is too deep."));
    }
    // A cycle of cascades reaches a record already being deleted: nothing more to do there.
    if !visited.insert((c.id.clone(), id.to_owned())) {
        return Ok(());
    }
    // The record as it was, for the delete event (rules are checked against it later).
    changes::record_delete(tx, c, id, changes)?;
    tx.execute(&format!("DELETE FROM {} WHERE \"id\" = ?1", quote_ident(&c.name)), [id])?;
    if c.kind == CollectionType::Auth {
        crate::worker::accounts::forget_record(tx, &c.id, id)?;
    }
    for other in snap.all() {
        if other.kind == CollectionType::View {
            continue;
        }
        for f in &other.fields {
            let FieldKind::Relation(opts) = &f.kind else { continue };
            if opts.collection_id != c.id {
                continue;
            }
            let table = quote_ident(&other.name);
            let col = quote_ident(&f.name);
            let multiple = f.is_multiple();
            let select = if multiple {
                format!(
                    "SELECT \"id\", (SELECT COUNT(*) FROM json_each({col}) WHERE value != ?1) FROM {table}
                     WHERE json_valid({col}) AND EXISTS (SELECT 1 FROM json_each({col}) WHERE value = ?1)"
                )
            } else {
                format!("SELECT \"id\", 0 FROM {table} WHERE {col} = ?1")
            };
            let referencing: Vec<(String, i64)> =
                tx.prepare(&select)?.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            for (ref_id, left) in referencing {
                if left == 0 && opts.cascade_delete {
                    delete_cascading(tx, snap, other, &ref_id, depth + 1, visited, changes)?;
                } else if left == 0 && opts.required {
                    return Err(CrudError::Refused(
                        "Failed to delete record. Make sure that the record is not part of a required relation reference.",
                    ));
                } else if multiple {
                    let before = changes.before(tx, other, &ref_id)?;
                    tx.execute(
                        &format!("UPDATE {table} SET {col} = (SELECT json_group_array(value) FROM json_each({col}) WHERE value != ?1) WHERE \"id\" = ?2"),
                        [id, ref_id.as_str()],
                    )?;
                    changes::record_after(tx, other, &ref_id, Action::Update, before, changes)?;
                } else {
                    let before = changes.before(tx, other, &ref_id)?;
                    tx.execute(&format!("UPDATE {table} SET {col} = '' WHERE \"id\" = ?1"), [&ref_id])?;
                    changes::record_after(tx, other, &ref_id, Action::Update, before, changes)?;
                }
            }
        }
    }
    Ok(())
}

/// The stored record as a map (for the write path's `existing`), without any rule.
pub fn existing(conn: &Connection, c: &Collection, id: &str) -> Result<Option<Map<String, Value>>, CrudError> {
    Ok(super::rows::load(conn, c, id)?)
}

/// Whether the record that just proved its password may authenticate: `authRule` null
/// disables authentication for the collection, empty allows everyone, anything else is
/// evaluated against the record with the record itself as `@request.auth`.
pub fn auth_rule_allows(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, id: &str) -> Result<bool, CrudError> {
    snap.check(conn)?;
    match c.auth.as_ref().and_then(|a| a.auth_rule.as_deref()) {
        None => Ok(false),
        Some(rule) if rule.trim().is_empty() => Ok(true),
        Some(rule) => passes(conn, snap, c, req, id, Some(rule)),
    }
}

/// Whether `req` manages auth record `id`: it passes the collection's `manageRule` (null: no
/// one but superusers; empty: everyone), which lets it set `email`, `verified` and `password`
/// directly. Always false outside auth collections.
pub fn manages(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, id: &str) -> Result<bool, CrudError> {
    if c.kind != CollectionType::Auth {
        return Ok(false);
    }
    if req.superuser {
        return Ok(true);
    }
    match c.auth.as_ref().and_then(|a| a.manage_rule.as_deref()) {
        None => Ok(false),
        Some(rule) if rule.trim().is_empty() => Ok(true),
        Some(rule) => passes(conn, snap, c, req, id, Some(rule)),
    }
}

/// Which collection rule a realtime subscription is held to: `listRule` for collection-wide
/// topics, `viewRule` for one record's topic (PocketBase's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    List,
    View,
}

/// A committed change as `req` may see it: the record's JSON (with `shape` applied) if the
/// collection's `kind` rule and the client `filter` both admit the record *as captured* —
/// the row as it was, for a delete — or `None` if either refuses (a null rule refuses every
/// non-superuser). The rule and filter are compiled as for a list and run against a one-row
/// CTE aliased as the table ([`one_row_cte`]), as [`create_rule_admits`] does, so the stored
/// table need not hold the row any more (a delete is judged on the row as it was); relations,
/// back-relations and `@collection` — the collection's own table included — still read the
/// live database.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the one check; a struct would only rename them
pub fn view_change(
    conn: &Connection,
    snap: &Snapshot,
    c: &Collection,
    req: &Requester,
    columns: &[(String, SqlValue)],
    deleted: bool,
    kind: RuleKind,
    filter_expr: Option<&filter::Expr>,
    shape: &Shape,
) -> Result<Option<Vec<u8>>, CrudError> {
    let rule = match effective_rule(if kind == RuleKind::List { &c.list_rule } else { &c.view_rule }, req) {
        Ok(rule) => rule,
        Err(CrudError::SuperusersOnly) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut qb = QueryBuilder::new(c, snap, &req.ctx, alias(c))?;
    if let Some(rule) = rule {
        qb = qb.filter(&parse_rule(rule)?, true)?;
    }
    if let Some(expr) = filter_expr {
        qb = qb.filter(expr, req.superuser)?;
    }
    let compiled = qb.finish();
    let where_sql = compiled.standalone_where();
    let mut params = compiled.params;
    let cte = one_row_cte(c, columns, &mut params);
    let table = quote_ident(&c.name);
    // PocketBase judges a delete before the row goes. The row itself is the captured one; if
    // the rule also joins the collection's own table (its joins are all `LEFT JOIN "<table>"
    // <alias>`), that table is shadowed by one that still holds the row: `main."<table>"` names
    // the stored table past the CTE. Only then, as the union cannot use the table's indexes.
    let cte = if deleted && where_sql.contains(&format!("JOIN {table} ")) {
        let cols: Vec<String> = c.fields.iter().map(|f| quote_ident(&f.name)).collect();
        let cols = cols.join(", ");
        format!("{cte}, {table} AS (SELECT {cols} FROM main.{table} WHERE \"id\" NOT IN (SELECT \"id\" FROM {ONE_ROW_CTE}) UNION ALL SELECT {cols} FROM {ONE_ROW_CTE})")
    } else {
        cte
    };
    let sql = format!("{cte} SELECT {}, {table}.\"id\" FROM {ONE_ROW_CTE} AS {table} WHERE {where_sql}", select_columns(c));
    render_one(conn, snap, c, req, &sql, &params, shape)
}

/// Runs `sql` (which selects one record's output columns) and renders the record it finds,
/// or None when the query finds nothing (missing, or refused by the rule in its WHERE).
fn render_one(conn: &Connection, snap: &Snapshot, c: &Collection, req: &Requester, sql: &str, params: &[SqlValue], shape: &Shape) -> Result<Option<Vec<u8>>, CrudError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut out = Vec::with_capacity(256);
    match write_records(conn, snap, c, req, &mut rows, shape, &mut out, false)? {
        0 => Ok(None),
        _ => Ok(Some(out)),
    }
}
