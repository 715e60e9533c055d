//! The SQL console (`POST /api/sql`): runs a superuser's query and collects what it answers in
//! PocketBase's shape (`{execTime, affectedRows, columns, rows}`).
//!
//! Read or write is SQLite's judgement (`sqlite3_stmt_readonly`), not a guess from the query
//! text: a query whose statements all only read runs on a reader inside one read transaction
//! (under the executor's read deadline); one that writes runs on the writer in a transaction of
//! its own ([`Db::write_alone`]) under a deadline of its own, and bumps the collections and
//! settings versions in that transaction, so no worker keeps a stale cache of either.
//!
//! An authorizer is installed while the query is prepared: transaction control, savepoints,
//! ATTACH/DETACH, temporary tables/views/triggers and pragmas that set something are refused,
//! since they would change the shared connection (or end the executor's transaction) rather
//! than the data.
//! This module must not know about HTTP, and must not run SQLite on an async thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection, ErrorCode};
use serde::Serialize;
use serde_json::Value;

use crate::shared::db::{Db, DbError};
use crate::worker::records::store::COLLECTIONS_VERSION_KEY;
use crate::worker::settings::SETTINGS_VERSION_KEY;
use crate::worker::versioned::bump_version;

/// The most rows one answer carries (PocketBase's cap); the rest are not read.
pub const MAX_ROWS: usize = 1000;
/// The longest query accepted, in characters (PocketBase's limit).
pub const MAX_QUERY_CHARS: usize = 5000;
/// SQLite virtual-machine steps between two deadline checks of a console write.
const WRITE_PROGRESS_CHECK_OPS: i32 = 1000;

/// Pragmas that only report, even when given an argument (`PRAGMA table_info(t)`).
const REPORTING_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    /// The declared type of the column the value comes from; empty for an expression.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `true`, as PocketBase reports it.
    pub nullable: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqlResult {
    /// Milliseconds spent running the query.
    pub exec_time: u64,
    pub affected_rows: u64,
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<Vec<Value>>,
    /// Whether the query wrote (it ran on the writer and bumped the cache versions).
    #[serde(skip)]
    pub wrote: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// SQLite refused or failed the query; the text is the user's to see (it is their SQL).
    #[error("{0}")]
    Query(String),
    /// The query ran past its deadline.
    #[error("the query ran past its deadline")]
    Timeout,
    /// The query would write and the console is read-only.
    #[error("the SQL console is read-only")]
    ReadOnly,
    /// A statement that writes met on a reader: the query goes to the writer instead.
    #[error("the query writes")]
    Writes,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> SqlError {
        if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) {
            return SqlError::Timeout;
        }
        SqlError::Query(e.to_string())
    }
}

/// Runs `query`: on a reader when every statement only reads, else — unless `read_only` — on
/// the writer in one transaction cut off after `write_deadline`.
pub async fn run(db: &Db, query: String, read_only: bool, write_deadline: Duration) -> Result<SqlResult, SqlError> {
    let query = Arc::new(query);
    let q = query.clone();
    match db.read(move |conn| read(conn, &q)).await {
        Err(SqlError::Writes) if read_only => Err(SqlError::ReadOnly),
        Err(SqlError::Writes) => db.write_alone(move |tx| write(tx, &query, write_deadline)).await,
        other => other,
    }
}

fn read(conn: &Connection, query: &str) -> Result<SqlResult, SqlError> {
    let started = Instant::now();
    // One snapshot for every statement. The authorizer comes after BEGIN and goes before the
    // ROLLBACK (declared later, dropped first): it refuses transaction control.
    let tx = conn.unchecked_transaction()?;
    let guard = Authorizer::install(&tx);
    let mut out = run_batch(&tx, query, false)?;
    drop(guard);
    drop(tx);
    out.exec_time = elapsed_millis(started);
    Ok(out)
}

fn write(tx: &rusqlite::Transaction<'_>, query: &str, deadline: Duration) -> Result<SqlResult, SqlError> {
    let started = Instant::now();
    let _guard = Authorizer::install(tx);
    let stop_at = started + deadline;
    let passed = Arc::new(AtomicBool::new(false));
    let flag = passed.clone();
    // An interrupt rolls back the whole transaction; it holds this job alone (write_alone).
    tx.progress_handler(
        WRITE_PROGRESS_CHECK_OPS,
        Some(move || {
            let over = Instant::now() >= stop_at;
            if over {
                flag.store(true, Ordering::Relaxed);
            }
            over
        }),
    );
    let ran = run_batch(tx, query, true);
    tx.progress_handler(WRITE_PROGRESS_CHECK_OPS, None::<fn() -> bool>);
    let mut out = match ran {
        Err(_) if passed.load(Ordering::Relaxed) => return Err(SqlError::Timeout),
        other => other?,
    };
    // Whatever the query touched, every worker rereads collections and settings.
    bump_version(tx, COLLECTIONS_VERSION_KEY)?;
    bump_version(tx, SETTINGS_VERSION_KEY)?;
    out.wrote = true;
    out.exec_time = elapsed_millis(started);
    Ok(out)
}

/// Runs every statement of `query` in turn; the answer is the last statement's columns, rows
/// and changes (as PocketBase answers a multi-statement query). Without `may_write`, a statement that writes stops
/// the run with [`SqlError::Writes`] before it executes (the ones before it only read).
fn run_batch(conn: &Connection, query: &str, may_write: bool) -> Result<SqlResult, SqlError> {
    let mut batch = Batch::new(conn, query);
    let mut last: Option<(Vec<ColumnInfo>, Vec<Vec<Value>>, u64)> = None;
    while let Some(mut stmt) = batch.next()? {
        let writes = !stmt.readonly();
        if writes && !may_write {
            return Err(SqlError::Writes);
        }
        let columns: Vec<ColumnInfo> = stmt
            .columns()
            .iter()
            .map(|c| ColumnInfo { name: c.name().to_owned(), kind: c.decl_type().unwrap_or("").to_owned(), nullable: true })
            .collect();
        let width = columns.len();
        // A delta of the running total: `changes()` keeps a stale count across DDL.
        let changes_before = conn.total_changes();
        let mut rows = Vec::new();
        let mut cursor = stmt.raw_query();
        while let Some(row) = cursor.next()? {
            if rows.len() < MAX_ROWS {
                rows.push((0..width).map(|i| row.get_ref(i).map(render)).collect::<Result<Vec<_>, _>>()?);
            } else if !writes {
                // A read past the cap is not worth finishing; a write is (its changes).
                break;
            }
        }
        drop(cursor);
        last = Some((columns, rows, conn.total_changes().saturating_sub(changes_before)));
    }
    let Some((columns, rows, affected_rows)) = last else {
        return Err(SqlError::Query("empty query".to_owned()));
    };
    Ok(SqlResult { exec_time: 0, affected_rows, columns, rows, wrote: false })
}

/// A value as PocketBase's console shows it: every non-null value as text.
fn render(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::String(i.to_string()),
        ValueRef::Real(f) => Value::String(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
    }
}

fn elapsed_millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The console's authorizer, removed again when dropped (the connection is shared).
struct Authorizer<'c>(&'c Connection);

impl<'c> Authorizer<'c> {
    fn install(conn: &'c Connection) -> Authorizer<'c> {
        conn.authorizer(Some(authorize));
        Authorizer(conn)
    }
}

impl Drop for Authorizer<'_> {
    fn drop(&mut self) {
        self.0.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } | AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        // Temporary objects outlive the query on the shared connection: a temp trigger or a
        // temp table shadowing a system table would act on every later job there.
        AuthAction::CreateTempTable { .. } | AuthAction::CreateTempIndex { .. } | AuthAction::CreateTempTrigger { .. } | AuthAction::CreateTempView { .. } => {
            Authorization::Deny
        }
        AuthAction::Pragma { pragma_name, pragma_value: Some(_) } if !REPORTING_PRAGMAS.iter().any(|p| p.eq_ignore_ascii_case(pragma_name)) => Authorization::Deny,
        _ => Authorization::Allow,
    }
}
