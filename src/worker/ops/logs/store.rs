//! The `_logs` table of `auxiliary.db`: its schema (PocketBase's, so a PocketBase data dir's
//! logs read the same), the batch insert the log thread uses, and the queries behind the logs
//! API — list with PocketBase's `filter`/`sort` language over `id`, `created`, `level`,
//! `message`, `data` and `data.*`, one item, hourly stats, truncate and retention.
//!
//! Filters and sorts are compiled by `records::query` against a stand-in collection whose
//! fields are the table's columns (`data` a JSON field, so `data.status` becomes a
//! `json_extract`); nothing from a request reaches the SQL text. Only plain SQLite here: no
//! HTTP, no threads.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params_from_iter, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::worker::records::filter;
use crate::worker::records::query::{QueryBuilder, QueryError, RequestContext, SqlValue};
use crate::worker::records::schema::{Collection, CollectionType, Field, FieldKind};

/// The table as PocketBase 0.40 creates it (single-quoted defaults, which SQLite reads the same
/// as PocketBase's double-quoted ones).
const TABLE_SQL: &str = "
CREATE TABLE IF NOT EXISTS `_logs` (
    `id`      TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `level`   INTEGER DEFAULT 0 NOT NULL,
    `message` TEXT DEFAULT '' NOT NULL,
    `data`    JSON DEFAULT '{}' NOT NULL,
    `created` TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
);";

/// The indexes of a `_logs` that vaultbase creates: PocketBase's on `level`, and
/// [`HOUR_INDEX`] for the hourly stats. PocketBase's other two are left out, because every
/// logged request pays for them and little reads them: `idx_logs_message` serves no filter
/// the logs API compiles (`message ~ 'x'` is a `LIKE '%x%'`), and `idx_logs_created_hour`
/// evaluates `strftime` on each insert — together ≈ 45 % of the log thread's time per row.
/// `substr` gives the same hour for the stored `created` text at a fraction of the cost.
const VB_INDEXES_SQL: &str = "
CREATE INDEX IF NOT EXISTS idx_logs_level on `_logs` (`level`);
CREATE INDEX IF NOT EXISTS idx_logs_hour on `_logs` (substr(`created`, 1, 13));";

/// The hour index of a `_logs` vaultbase created; a file PocketBase (or a vaultbase before it)
/// created has PocketBase's `idx_logs_created_hour` instead, and [`stats`] groups by whichever
/// expression the file has an index for.
const HOUR_INDEX: &str = "idx_logs_hour";

/// The table name, also the alias the compiled filter uses.
const TABLE: &str = "_logs";

/// One stored item, in PocketBase's key order.
#[derive(Debug, Clone, Serialize)]
pub struct LogItem {
    pub id: String,
    pub created: String,
    pub data: Box<RawValue>,
    pub message: String,
    pub level: i64,
}

/// A row to insert: the log thread's serialised entry.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub level: i32,
    pub message: String,
    /// The `data` object as JSON text.
    pub data: String,
    pub created: String,
}

/// Why a list, view or stats query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// A bad `filter` or `sort`: the client's to fix (400).
    #[error("bad filter or sort: {0}")]
    Bad(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored log data is not JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<QueryError> for QueryFailure {
    fn from(e: QueryError) -> Self {
        QueryFailure::Bad(e.to_string())
    }
}

/// Creates `_logs` with [`VB_INDEXES_SQL`] when the file has no `_logs` yet. An existing table
/// keeps the indexes it has (a PocketBase file keeps PocketBase's four). Idempotent: two
/// processes that both find no table run the same `IF NOT EXISTS` statements.
pub fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    let exists: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_logs')", [], |r| r.get(0))?;
    if exists {
        return Ok(());
    }
    conn.execute_batch(TABLE_SQL)?;
    conn.execute_batch(VB_INDEXES_SQL)
}

/// The SQL of the hour a row falls in, written exactly as the file's hour index is (so the
/// stats query walks that index instead of sorting every row), and what completes its value
/// into PocketBase's `YYYY-MM-DD HH:00:00.000Z`.
fn hour_sql(conn: &Connection) -> rusqlite::Result<(String, &'static str)> {
    let ours: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)", [HOUR_INDEX], |r| r.get(0))?;
    Ok(if ours {
        (format!("substr({TABLE}.`created`, 1, 13)"), ":00:00.000Z")
    } else {
        (format!("strftime('%Y-%m-%d %H:00:00', {TABLE}.`created`)"), ".000Z")
    })
}

/// The page size of an `auxiliary.db` created here. Log rows are appended hundreds at a time
/// to five B-trees (the table and PocketBase's four indexes); with 32 KiB pages instead of
/// SQLite's 4 KiB the writer splits, fetches, journals and checksums an eighth as many pages
/// per row (≈ 1 µs less per logged request). The size lives in the file's header, so
/// PocketBase and every other SQLite reader open it as it is; a file created elsewhere keeps
/// its own size.
pub const PAGE_SIZE_BYTES: u32 = 32 * 1024;

/// Creates `auxiliary.db` at `path` with [`PAGE_SIZE_BYTES`] pages and `_logs`, or makes sure
/// an existing file has `_logs`. Runs before any connection switches the file to WAL: that
/// switch writes the header, which fixes the page size at SQLite's default.
pub fn create_file(path: &std::path::Path) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(crate::shared::db::open::BUSY_TIMEOUT)?;
    // Ignored by SQLite once the file has content.
    conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE_BYTES};"))?;
    create_schema(&conn)
}

/// A row to insert, borrowed from the log thread's batch buffer (text as UTF-8 bytes).
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub id: &'a [u8],
    pub level: i32,
    pub message: &'a [u8],
    pub data: &'a [u8],
    pub created: &'a [u8],
}

impl Row {
    pub fn as_ref(&self) -> RowRef<'_> {
        RowRef { id: self.id.as_bytes(), level: self.level, message: self.message.as_bytes(), data: self.data.as_bytes(), created: self.created.as_bytes() }
    }
}

/// Rows per multi-row `INSERT`, largest first: a batch goes in as statements of these sizes,
/// each prepared once per connection (SQLite steps one statement per 64 rows instead of one
/// per row; 64 × 5 parameters stays far under SQLite's parameter limit).
const INSERT_CHUNK_ROWS: [usize; 4] = [64, 16, 4, 1];

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO `_logs` (`id`, `level`, `message`, `data`, `created`) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?,?,?,?,?)" } else { ",(?,?,?,?,?)" });
    }
    sql
}

/// Inserts `rows` inside the caller's transaction.
pub fn insert(tx: &Transaction<'_>, rows: &[Row]) -> rusqlite::Result<()> {
    let refs: Vec<RowRef<'_>> = rows.iter().map(Row::as_ref).collect();
    insert_refs(tx, &refs)
}

/// Inserts `rows` inside the caller's transaction, several per statement.
pub fn insert_refs(conn: &Connection, rows: &[RowRef<'_>]) -> rusqlite::Result<()> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    let mut rest = rows;
    for size in INSERT_CHUNK_ROWS {
        if rest.len() < size {
            continue;
        }
        let mut stmt = conn.prepare_cached(&insert_sql(size))?;
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            for (i, r) in chunk.iter().enumerate() {
                let at = i * 5;
                // Text bound as bytes: the log thread built it as UTF-8, so no check again.
                stmt.raw_bind_parameter(at + 1, ToSqlOutput::Borrowed(ValueRef::Text(r.id)))?;
                stmt.raw_bind_parameter(at + 2, r.level)?;
                stmt.raw_bind_parameter(at + 3, ToSqlOutput::Borrowed(ValueRef::Text(r.message)))?;
                stmt.raw_bind_parameter(at + 4, ToSqlOutput::Borrowed(ValueRef::Text(r.data)))?;
                stmt.raw_bind_parameter(at + 5, ToSqlOutput::Borrowed(ValueRef::Text(r.created)))?;
            }
            stmt.raw_execute()?;
            rest = tail;
        }
    }
    Ok(())
}

/// The columns as a collection, for the filter compiler.
fn columns() -> Collection {
    let mut c = Collection::scaffold(CollectionType::Base, TABLE);
    c.fields = vec![
        Field::new("id", FieldKind::Text(Default::default())),
        Field::new("created", FieldKind::Text(Default::default())),
        Field::new("level", FieldKind::Number(Default::default())),
        Field::new("message", FieldKind::Text(Default::default())),
        Field::new("data", FieldKind::Json(Default::default())),
    ];
    c
}

/// A compiled `WHERE` body and `ORDER BY` body with their parameters.
struct Compiled {
    where_sql: String,
    order_by: String,
    params: Vec<SqlValue>,
}

fn compile(filter_text: &str, sort: &str) -> Result<Compiled, QueryFailure> {
    // PocketBase's logs resolver knows only the table's columns: no `@request`, no
    // `@collection` (the empty schema refuses the latter).
    if filter_text.contains("@request.") || sort.contains("@request.") {
        return Err(QueryFailure::Bad("@request fields are not available in log filters".into()));
    }
    let base = columns();
    let schema: Vec<Collection> = Vec::new();
    let ctx = RequestContext::new(SystemTime::now());
    let mut qb = QueryBuilder::new(&base, &schema, &ctx, TABLE)?;
    if !filter_text.trim().is_empty() {
        let expr = filter::parse(filter_text).map_err(|e| QueryFailure::Bad(e.to_string()))?;
        qb = qb.filter(&expr, true)?;
    }
    if !sort.trim().is_empty() {
        qb = qb.sort(sort, true)?;
    }
    let c = qb.finish();
    Ok(Compiled { where_sql: c.standalone_where(), order_by: c.order_by, params: c.params })
}

/// Only the `WHERE` body of `filter_text` (for the archive search, which loads lines into a
/// table of the same shape).
pub fn compile_filter(filter_text: &str) -> Result<(String, Vec<SqlValue>), QueryFailure> {
    let c = compile(filter_text, "")?;
    Ok((c.where_sql, c.params))
}

fn item(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn to_item((id, created, data, message, level): (String, String, String, String, i64)) -> Result<LogItem, QueryFailure> {
    let data = RawValue::from_string(data).or_else(|_| RawValue::from_string("{}".to_owned()))?;
    Ok(LogItem { id, created, data, message, level })
}

/// One page: the items and, unless skipped, the total count.
pub fn list(conn: &Connection, filter_text: &str, sort: &str, per_page: u32, offset: u64, count: bool) -> Result<(Vec<LogItem>, Option<u64>), QueryFailure> {
    let c = compile(filter_text, sort)?;
    // No sort: insertion order, as PocketBase answers.
    let order = if c.order_by.is_empty() { format!("{TABLE}.rowid") } else { c.order_by.clone() };
    let n = c.params.len();
    let sql = format!(
        "SELECT {TABLE}.id, {TABLE}.created, {TABLE}.data, {TABLE}.message, {TABLE}.level FROM `_logs` AS {TABLE} WHERE {} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
        c.where_sql,
        n + 1,
        n + 2
    );
    let mut params = c.params.clone();
    params.push(SqlValue::Integer(i64::from(per_page)));
    params.push(SqlValue::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params.iter()), item)?;
    let mut items = Vec::new();
    for r in rows {
        items.push(to_item(r?)?);
    }
    let total = if count {
        let sql = format!("SELECT COUNT(*) FROM `_logs` AS {TABLE} WHERE {}", c.where_sql);
        let n: i64 = conn.prepare_cached(&sql)?.query_row(params_from_iter(c.params.iter()), |r| r.get(0))?;
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    Ok((items, total))
}

pub fn view(conn: &Connection, id: &str) -> Result<Option<LogItem>, QueryFailure> {
    let found = conn
        .prepare_cached("SELECT id, created, data, message, level FROM `_logs` WHERE id = ?1")?
        .query_row([id], item)
        .optional()?;
    found.map(to_item).transpose()
}

/// One hour's count, PocketBase's stats item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourTotal {
    pub date: String,
    pub total: i64,
}

/// Counts per hour of `created` (oldest first), over the entries `filter_text` matches.
pub fn stats(conn: &Connection, filter_text: &str) -> Result<Vec<HourTotal>, QueryFailure> {
    let c = compile(filter_text, "")?;
    let (hour, suffix) = hour_sql(conn)?;
    let sql = format!("SELECT {hour} AS hour, COUNT({TABLE}.id) FROM `_logs` AS {TABLE} WHERE {} GROUP BY hour ORDER BY hour", c.where_sql);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(c.params.iter()), |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (hour, total) = r?;
        // Rows whose `created` is no datetime have no hour (PocketBase's strftime gives NULL).
        let Some(hour) = hour.filter(|h| h.len() >= 13) else { continue };
        out.push(HourTotal { date: format!("{hour}{suffix}"), total });
    }
    Ok(out)
}

/// Empties the table (`DELETE /api/logs`); the number of entries removed.
pub fn delete_all(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM `_logs`", [])
}

/// Deletes the entries created before `cutoff` (a stored datetime).
pub fn delete_before(tx: &Transaction<'_>, cutoff: &str) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM `_logs` WHERE created < ?1", [cutoff])
}

/// The stored form of `t` (`2024-01-02 15:04:05.123Z`).
pub fn datetime(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0);
    crate::worker::records::values::datetime::format_datetime(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::shared::db::open::open(&dir.path().join("aux.db"), crate::shared::db::open::Role::Writer).expect("open");
        create_schema(&conn).expect("schema");
        (dir, conn)
    }

    #[test]
    fn a_new_file_gets_large_pages_that_survive_the_switch_to_wal_and_an_old_file_keeps_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let page_size = |c: &Connection| c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)).expect("page_size");
        let fresh = dir.path().join("fresh.db");
        create_file(&fresh).expect("create");
        let conn = crate::shared::db::open::open(&fresh, crate::shared::db::open::Role::Writer).expect("open");
        assert_eq!(page_size(&conn), i64::from(PAGE_SIZE_BYTES));
        create_file(&fresh).expect("again: nothing to do");
        insert(&conn.unchecked_transaction().expect("tx"), &[row("a", 0, 200, "2024-01-01 10:00:00.000Z")]).expect("insert");
        assert_eq!(page_size(&conn), i64::from(PAGE_SIZE_BYTES));
        // The positive control: a file made with SQLite's default pages keeps them.
        let old = dir.path().join("old.db");
        Connection::open(&old).expect("old").execute_batch("CREATE TABLE t (a);").expect("table");
        create_file(&old).expect("schema on the old file");
        assert_eq!(page_size(&Connection::open(&old).expect("reopen")), 4096);
    }

    fn indexes(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '_logs' AND sql IS NOT NULL ORDER BY name").expect("prepare");
        let names = stmt.query_map([], |r| r.get(0)).expect("query").collect::<Result<Vec<String>, _>>().expect("names");
        names
    }

    /// PocketBase 0.40.6's `_logs` DDL, as its `1640988000_aux_init.go` leaves a file.
    const POCKETBASE_SCHEMA: &str = "
        CREATE TABLE `_logs` (`id` TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL, `level` INTEGER DEFAULT 0 NOT NULL, `message` TEXT DEFAULT '' NOT NULL, `data` JSON DEFAULT '{}' NOT NULL, `created` TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL);
        CREATE INDEX idx_logs_level on `_logs` (`level`);
        CREATE INDEX idx_logs_message on `_logs` (`message`);
        CREATE INDEX idx_logs_created_hour on `_logs` (strftime('%Y-%m-%d %H:00:00', `created`));";

    #[test]
    fn a_new_table_gets_the_cheap_indexes_a_pocketbase_table_keeps_its_own_and_stats_agree_and_use_them() {
        let (_d, ours) = db();
        assert_eq!(indexes(&ours), ["idx_logs_hour", "idx_logs_level"]);
        create_schema(&ours).expect("again: nothing to do");
        assert_eq!(indexes(&ours), ["idx_logs_hour", "idx_logs_level"]);
        let pb = Connection::open_in_memory().expect("memory");
        pb.execute_batch(POCKETBASE_SCHEMA).expect("PocketBase's schema");
        create_schema(&pb).expect("schema on PocketBase's table");
        assert_eq!(indexes(&pb), ["idx_logs_created_hour", "idx_logs_level", "idx_logs_message"], "left as PocketBase made it");
        let rows = [
            row("a", 0, 200, "2024-01-01 10:00:00.000Z"),
            row("b", 8, 404, "2024-01-01 10:59:59.999Z"),
            row("c", 8, 500, "2024-01-01 11:00:00.000Z"),
            row("d", 0, 200, "2024-01-02 00:30:00.000Z"),
            row("e", 0, 200, "not a date"),
        ];
        for conn in [&ours, &pb] {
            let tx = conn.unchecked_transaction().expect("tx");
            insert(&tx, &rows).expect("insert");
            tx.commit().expect("commit");
        }
        let hours = |conn: &Connection, filter: &str| stats(conn, filter).expect("stats").into_iter().map(|h| (h.date, h.total)).collect::<Vec<_>>();
        let want = vec![("2024-01-01 10:00:00.000Z".to_string(), 2), ("2024-01-01 11:00:00.000Z".into(), 1), ("2024-01-02 00:00:00.000Z".into(), 1)];
        assert_eq!(hours(&pb, ""), want, "PocketBase's expression");
        assert_eq!(hours(&ours, ""), want, "vaultbase's expression, the same hours");
        assert_eq!(hours(&ours, "level = 8"), want[..2].iter().map(|(d, _)| (d.clone(), 1)).collect::<Vec<_>>());
        // Each file's stats query walks its own hour index rather than sorting the rows.
        for (conn, index) in [(&ours, HOUR_INDEX), (&pb, "idx_logs_created_hour")] {
            let (hour, _) = hour_sql(conn).expect("hour");
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN SELECT {hour} AS hour, COUNT({TABLE}.id) FROM `_logs` AS {TABLE} WHERE 1 GROUP BY hour ORDER BY hour"))
                .expect("plan")
                .query_map([], |r| r.get(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            assert!(plan.iter().any(|p| p.contains(index)), "{index}: {plan:?}");
            assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{index}: {plan:?}");
        }
    }

    fn row(id: &str, level: i32, status: u16, created: &str) -> Row {
        Row {
            id: id.into(),
            level,
            message: format!("GET /x/{id}"),
            data: serde_json::json!({"type": "request", "status": status, "auth": if status == 200 { "users" } else { "" }}).to_string(),
            created: created.into(),
        }
    }

    #[test]
    fn filters_sorts_pages_and_counts_over_columns_and_data_paths() {
        let (_d, mut conn) = db();
        let tx = conn.transaction().expect("tx");
        insert(
            &tx,
            &[
                row("a", 0, 200, "2024-01-01 10:00:00.000Z"),
                row("b", 8, 404, "2024-01-01 10:30:00.000Z"),
                row("c", 8, 500, "2024-01-01 11:00:00.000Z"),
            ],
        )
        .expect("insert");
        tx.commit().expect("commit");
        let ids = |items: Vec<LogItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
        let (items, total) = list(&conn, "", "", 30, 0, true).expect("all");
        assert_eq!((ids(items), total), (vec!["a".to_string(), "b".into(), "c".into()], Some(3)));
        let (items, total) = list(&conn, "data.status >= 400", "-created", 1, 0, true).expect("filtered");
        assert_eq!((ids(items), total), (vec!["c".to_string()], Some(2)));
        let (items, _) = list(&conn, "data.auth = 'users' && level = 0", "", 30, 0, false).expect("auth");
        assert_eq!(ids(items), vec!["a".to_string()]);
        let (items, _) = list(&conn, "message ~ 'x/b'", "", 30, 0, false).expect("like");
        assert_eq!(ids(items), vec!["b".to_string()]);
        let (items, _) = list(&conn, "", "-data.status", 30, 0, false).expect("sort by data");
        assert_eq!(ids(items), vec!["c".to_string(), "b".into(), "a".into()]);
        assert!(matches!(list(&conn, "nope = 1", "", 30, 0, true), Err(QueryFailure::Bad(_))));
        assert!(matches!(list(&conn, "@request.auth.id != ''", "", 30, 0, true), Err(QueryFailure::Bad(_))));
        assert!(matches!(list(&conn, "bad((", "", 30, 0, true), Err(QueryFailure::Bad(_))));
        let stats = stats(&conn, "level = 8").expect("stats");
        assert_eq!(
            stats,
            vec![HourTotal { date: "2024-01-01 10:00:00.000Z".into(), total: 1 }, HourTotal { date: "2024-01-01 11:00:00.000Z".into(), total: 1 }]
        );
        let one = view(&conn, "b").expect("view").expect("found");
        assert_eq!(serde_json::to_value(&one).expect("json")["data"]["status"], 404);
        assert!(view(&conn, "zz").expect("view").is_none());
    }
}
