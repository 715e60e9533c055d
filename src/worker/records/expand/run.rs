//! Running an [`super::ExpandTree`] for a set of records, batched: one SQL query per tree node
//! (per relation hop and level), whatever the number of records — `WHERE id IN (ids of every
//! parent)` for a relation field, one windowed query for a back-relation — with the target
//! collection's view rule ANDed in for the requester (`@request.context = "expand"`;
//! superusers bypass it, a null rule drops the path for everyone else).
//!
//! Output stays bytes: each fetched record is written once by the record writer (with the
//! `fields` projection that reaches it), completed with its own nested `expand`, and then
//! copied into every parent object that points at it. The caller gets one `expand` object per
//! parent record, to put before that record's closing brace.
//!
//! PocketBase's outcomes are kept: a path fails as a whole (unknown segment, locked or broken
//! view rule, or a failing deeper hop) and is then left out without an error — and, unlike
//! PocketBase, a relation field marked hidden is not walked for non-superusers, in either
//! direction, so expand cannot reveal what the hidden field holds; a level with no
//! records makes every path below it succeed vacuously; records of a level get an `expand` key
//! (possibly `{}`) as soon as one path through that level succeeds; a relation with
//! `maxSelect` 1 (or a back-relation through a single-column unique index) gives an object,
//! anything else an array in relation order with missing and forbidden ids skipped; a
//! back-relation takes at most [`MAX_BACK_RELATION_IDS`] records per parent, counted before the
//! view rule as PocketBase does.
//!
//! One response's expansion is bounded: at most [`MAX_EXPANDED_RECORDS`] related rows and
//! [`MAX_EXPAND_BYTES`] of expanded JSON (every copy counted, across all hops and levels), or
//! the whole expansion fails with [`ExpandTooLarge`] — never a silently cut answer. Nested
//! back-relations multiply (6 levels of 1,000 children under 1,000 records), and without a
//! bound one guest request could fill a worker's memory. The bound is checked as rows are read
//! and objects are built, so the work stops at the bound, not after.
//!
//! SQL text comes only from the schema (quoted identifiers) and fixed shapes; ids travel as one
//! bound JSON array. Synchronous, on the caller's connection (inside its transaction for
//! create and update), no HTTP.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use rusqlite::{params_from_iter, Connection, Row};

use super::{back_relation, Node};
use crate::worker::records::cache::Snapshot;
use crate::worker::records::crud::{output_for, parse_rule, CrudError, Requester};
use crate::worker::records::fields::{KeyPick, Projection};
use crate::worker::records::query::{has_single_column_unique_index, QueryBuilder, QueryError, RequestContext};
use crate::worker::records::schema::{quote_ident, Collection, CollectionType, Field, FieldKind};
use crate::worker::records::sql_value::SqlValue;
use crate::worker::records::values::output::write_str;
use crate::worker::records::values::{column_count, column_index, relation_ids, select_columns, write_record_open, RecordPlan};

/// PocketBase's cap on the records one back-relation expands per parent record.
pub const MAX_BACK_RELATION_IDS: i64 = 1000;
/// `@request.context` while view rules are checked for an expansion.
pub const EXPAND_CONTEXT: &str = "expand";
/// Most related rows one response (or one realtime event) may expand, all hops and levels
/// together. Far above what a page of records with a few expanded relations needs.
pub const MAX_EXPANDED_RECORDS: usize = 10_000;
/// Most bytes of expanded JSON one response may build, every copy of a record counted (a
/// record shared by many parents is written into each of them).
pub const MAX_EXPAND_BYTES: usize = 16 * 1024 * 1024;
/// The 400 message when an expansion passes either bound.
pub const EXPAND_TOO_LARGE_MESSAGE: &str =
    "The requested expand is too large (more than 10000 related records or 16 MiB): expand fewer relations or request fewer records.";

/// The expansion passed [`MAX_EXPANDED_RECORDS`] or [`MAX_EXPAND_BYTES`]: the response must
/// fail as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", EXPAND_TOO_LARGE_MESSAGE)]
pub struct ExpandTooLarge;

/// Why one expand path is left out (logged, never answered).
#[derive(Debug, thiserror::Error)]
enum PathError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("only superusers can view {0:?} records")]
    Locked(String),
    #[error("view rule: {0}")]
    Rule(String),
    #[error("a deeper hop failed")]
    Nested,
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ids: {0}")]
    Json(#[from] serde_json::Error),
    /// Not a path failure: the whole expansion stops.
    #[error(transparent)]
    TooLarge(#[from] ExpandTooLarge),
}

impl From<QueryError> for PathError {
    fn from(e: QueryError) -> Self {
        PathError::Rule(e.to_string())
    }
}

impl From<CrudError> for PathError {
    fn from(e: CrudError) -> Self {
        PathError::Rule(e.to_string())
    }
}

/// How a node's records are reached from the records of the level above.
enum Hop<'s> {
    /// A relation field of the parent, read from its column.
    Direct { column: usize, target: &'s Collection, multiple: bool },
    /// `<source>_via_<field>`: the records of `source` whose relation `field` holds the parent.
    Back { source: &'s Collection, field: &'s Field, single: bool },
    /// The path fails here.
    Invalid(&'static str),
}

fn resolve<'s>(snap: &'s Snapshot, parent: &Collection, segment: &str, superuser: bool) -> Hop<'s> {
    if let Some((collection, field)) = back_relation(segment) {
        let Some(source) = snap.get(collection).map(|c| c.as_ref()) else {
            return Hop::Invalid("unknown back-related collection");
        };
        return match source.field(field) {
            Some(f) if f.hidden && !superuser => Hop::Invalid("hidden relation field"),
            Some(f) if matches!(&f.kind, FieldKind::Relation(o) if o.collection_id == parent.id) => {
                Hop::Back { source, field: f, single: has_single_column_unique_index(&source.indexes, &f.name) }
            }
            _ => Hop::Invalid("unknown back-relation field"),
        };
    }
    let Some(f) = parent.field(segment) else { return Hop::Invalid("unknown relation field") };
    if f.hidden && !superuser {
        return Hop::Invalid("hidden relation field");
    }
    let FieldKind::Relation(opts) = &f.kind else { return Hop::Invalid("not a relation field") };
    let Some(target) = snap.get(&opts.collection_id).map(|c| c.as_ref()) else {
        return Hop::Invalid("unknown related collection");
    };
    match column_index(parent, segment) {
        Some(column) => Hop::Direct { column, target, multiple: f.is_multiple() },
        None => Hop::Invalid("relation field is not readable"),
    }
}

/// The records of one level as the hops below them need them: their ids and, per direct hop,
/// the ids each record holds. Filled row by row while the records are written.
pub struct Level<'s> {
    hops: Vec<Hop<'s>>,
    ids: Vec<String>,
    /// `links[hop][record]`; empty for back-relation hops (their links come from a query).
    links: Vec<Vec<Vec<String>>>,
}

impl<'s> Level<'s> {
    /// Resolves `nodes` (the hops below this level) against `collection`, for a superuser or
    /// not (hidden relation fields are walked only for superusers).
    pub fn new(snap: &'s Snapshot, collection: &Collection, nodes: &[Node], superuser: bool) -> Level<'s> {
        let hops: Vec<Hop<'s>> = nodes.iter().map(|n| resolve(snap, collection, &n.segment, superuser)).collect();
        let links = hops.iter().map(|_| Vec::new()).collect();
        Level { hops, ids: Vec::new(), links }
    }

    /// Adds one record: `row` selects [`select_columns`] of the level's collection first.
    pub fn push(&mut self, row: &Row<'_>, id: String) -> rusqlite::Result<()> {
        for (hop, links) in self.hops.iter().zip(self.links.iter_mut()) {
            if let Hop::Direct { column, .. } = hop {
                links.push(relation_ids(row.get_ref(*column)?));
            }
        }
        self.ids.push(id);
        Ok(())
    }
}

/// Which related ids each parent record has, in relation order.
enum Links<'p> {
    /// Per parent position (direct relations: read from the parents' rows).
    ByRecord(&'p [Vec<String>]),
    /// Per parent id (back-relations: found by the query).
    ByParent(HashMap<String, Vec<String>>),
}

impl Links<'_> {
    fn ids(&self, record: usize, parent_id: &str) -> &[String] {
        match self {
            Links::ByRecord(links) => links.get(record).map_or(&[], Vec::as_slice),
            Links::ByParent(map) => map.get(parent_id).map_or(&[], Vec::as_slice),
        }
    }
}

/// One node's fetched records, finished (nested `expand` and closing brace included).
struct Fetched<'p> {
    records: Vec<Vec<u8>>,
    index: HashMap<String, usize>,
    links: Links<'p>,
    multiple: bool,
}

/// Runs expansions for one request.
pub struct Expander<'a> {
    conn: &'a Connection,
    snap: &'a Snapshot,
    req: &'a Requester,
    /// The requester's context with `@request.context = "expand"`, for the view rules.
    ctx: RequestContext,
    /// Queries run so far (the batching promise is checked against it).
    queries: Cell<usize>,
    /// Related rows read and expanded bytes built so far, against the bounds.
    records: Cell<usize>,
    bytes: Cell<usize>,
    limits: (usize, usize),
}

impl<'a> Expander<'a> {
    pub fn new(conn: &'a Connection, snap: &'a Snapshot, req: &'a Requester) -> Expander<'a> {
        let mut ctx = req.ctx.clone();
        ctx.context = EXPAND_CONTEXT.to_owned();
        Expander {
            conn,
            snap,
            req,
            ctx,
            queries: Cell::new(0),
            records: Cell::new(0),
            bytes: Cell::new(0),
            limits: (MAX_EXPANDED_RECORDS, MAX_EXPAND_BYTES),
        }
    }

    /// The same expander with other bounds (records, bytes): for tests.
    #[cfg(test)]
    pub fn with_limits(mut self, records: usize, bytes: usize) -> Expander<'a> {
        self.limits = (records, bytes);
        self
    }

    /// Counts `records` more rows and `bytes` more bytes against the bounds.
    fn charge(&self, records: usize, bytes: usize) -> Result<(), ExpandTooLarge> {
        let records = self.records.get().saturating_add(records);
        let bytes = self.bytes.get().saturating_add(bytes);
        self.records.set(records);
        self.bytes.set(bytes);
        if records > self.limits.0 || bytes > self.limits.1 {
            return Err(ExpandTooLarge);
        }
        Ok(())
    }

    /// How many SQL queries this expander has run.
    pub fn queries_run(&self) -> usize {
        self.queries.get()
    }

    /// The `expand` object of each record of `level`, in order, or `None` when every path
    /// failed (the records then get no `expand` key). `shown` is how the records' `expand` key
    /// is projected; a hidden node is still fetched, because whether its path succeeds decides
    /// what its parent shows. Fails as a whole past the bounds ([`ExpandTooLarge`]).
    pub fn expand(&self, nodes: &[Node], level: &Level<'_>, shown: &KeyPick) -> Result<Option<Vec<Vec<u8>>>, ExpandTooLarge> {
        if level.ids.is_empty() {
            // PocketBase returns before looking at any path: all of them succeed.
            return Ok(Some(Vec::new()));
        }
        let mut done: Vec<(&Node, Fetched<'_>, bool)> = Vec::new();
        for ((node, hop), links) in nodes.iter().zip(&level.hops).zip(&level.links) {
            let projection = shown.nested(&node.segment);
            let visible = projection.is_some();
            match self.fetch(node, hop, links, &level.ids, projection.unwrap_or_default()) {
                Ok(fetched) => done.push((node, fetched, visible)),
                Err(PathError::TooLarge(e)) => return Err(e),
                // A SQLite error here is a bug in the generated SQL, not a client mistake.
                Err(e @ PathError::Sqlite(_)) => tracing::warn!(segment = %node.segment, error = %e, "expand path left out"),
                Err(e) => tracing::debug!(segment = %node.segment, error = %e, "expand path left out"),
            }
        }
        if done.is_empty() {
            return Ok(None);
        }
        let objects = level
            .ids
            .iter()
            .enumerate()
            .map(|(r, parent_id)| {
                let mut o = Vec::with_capacity(64);
                let mut copied_bytes = 0usize;
                o.push(b'{');
                let mut first = true;
                for (node, fetched, visible) in &done {
                    if !visible {
                        continue;
                    }
                    let mut found = fetched.links.ids(r, parent_id).iter().filter_map(|id| fetched.index.get(id).and_then(|&i| fetched.records.get(i)));
                    let Some(head) = found.next() else { continue };
                    if !first {
                        o.push(b',');
                    }
                    first = false;
                    write_str(&mut o, &node.segment);
                    o.push(b':');
                    self.charge(0, head.len())?;
                    copied_bytes += head.len();
                    if fetched.multiple {
                        o.push(b'[');
                        o.extend_from_slice(head);
                        for rec in found {
                            // Copies are charged as they are made: one parent may hold
                            // thousands of records, each with its own nested copies.
                            self.charge(0, rec.len())?;
                            copied_bytes += rec.len();
                            o.push(b',');
                            o.extend_from_slice(rec);
                        }
                        o.push(b']');
                    } else {
                        o.extend_from_slice(head);
                    }
                }
                o.push(b'}');
                // The punctuation and keys around the copies.
                self.charge(0, o.len().saturating_sub(copied_bytes))?;
                Ok(o)
            })
            .collect::<Result<Vec<_>, ExpandTooLarge>>()?;
        Ok(Some(objects))
    }

    /// The target's view rule for the requester as a WHERE body (`1` when there is none).
    fn view_rule(&self, target: &Collection) -> Result<(String, Vec<SqlValue>), PathError> {
        if self.req.superuser {
            return Ok(("1".to_owned(), Vec::new()));
        }
        match target.view_rule.as_deref() {
            None => Err(PathError::Locked(target.name.clone())),
            Some(rule) if rule.trim().is_empty() => Ok(("1".to_owned(), Vec::new())),
            Some(rule) => {
                let expr = parse_rule(rule)?;
                let compiled = QueryBuilder::new(target, self.snap, &self.ctx, &target.name)?.filter(&expr, true)?.finish();
                Ok((compiled.standalone_where(), compiled.params))
            }
        }
    }

    /// Fetches and writes the records of `node` for the parents `parent_ids` (with their
    /// `links` for a direct hop), then their own nested expansions.
    fn fetch<'p>(
        &self,
        node: &Node,
        hop: &Hop<'_>,
        links: &'p [Vec<String>],
        parent_ids: &[String],
        projection: Projection,
    ) -> Result<Fetched<'p>, PathError> {
        let (target, multiple) = match hop {
            Hop::Direct { target, multiple, .. } => (*target, *multiple),
            Hop::Back { source, single, .. } => (*source, !*single),
            Hop::Invalid(why) => return Err(PathError::Invalid(why)),
        };
        // Checked even when there is nothing to fetch: a locked or broken rule fails the path.
        let (rule_sql, mut params) = self.view_rule(target)?;
        let table = quote_ident(&target.name);
        let id_column = column_count(target);
        let columns = select_columns(target);
        let n = params.len();
        let sql = match hop {
            Hop::Direct { .. } => {
                let mut seen = HashSet::new();
                let wanted: Vec<&str> = links.iter().flatten().map(String::as_str).filter(|id| seen.insert(*id)).collect();
                if wanted.is_empty() {
                    return Ok(Fetched { records: Vec::new(), index: HashMap::new(), links: Links::ByRecord(links), multiple });
                }
                params.push(SqlValue::Text(serde_json::to_string(&wanted)?));
                format!(
                    "SELECT {columns}, {table}.\"id\" FROM {table} AS {table} \
                     WHERE {table}.\"id\" IN (SELECT value FROM json_each(?{})) AND ({rule_sql})",
                    n + 1
                )
            }
            Hop::Back { field, .. } => {
                params.push(SqlValue::Text(serde_json::to_string(parent_ids)?));
                params.push(SqlValue::Integer(MAX_BACK_RELATION_IDS));
                back_relation_sql(target, field, &columns, &rule_sql, n)
            }
            Hop::Invalid(why) => return Err(PathError::Invalid(why)),
        };

        let plan = RecordPlan::new(target, &projection);
        let mut level = Level::new(self.snap, target, &node.children, self.req.superuser);
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut wrote: Vec<bool> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut by_parent: HashMap<String, Vec<String>> = HashMap::new();
        let back = matches!(hop, Hop::Back { .. });
        {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            self.queries.set(self.queries.get() + 1);
            while let Some(row) = rows.next()? {
                let id: String = row.get(id_column)?;
                if back {
                    let parent: String = row.get(id_column + 1)?;
                    by_parent.entry(parent).or_default().push(id.clone());
                }
                // Every row counts (a back-related record repeats once per parent it serves).
                self.charge(1, 0)?;
                if index.contains_key(&id) {
                    continue;
                }
                let mut buf = Vec::with_capacity(256);
                wrote.push(write_record_open(&mut buf, target, row, &output_for(target, self.req, &id), Some(&plan))?);
                self.charge(0, buf.len())?;
                level.push(row, id.clone())?;
                index.insert(id, records.len());
                records.push(buf);
            }
        }

        let nested = if node.children.is_empty() || records.is_empty() {
            None
        } else {
            Some(self.expand(&node.children, &level, plan.expand())?.ok_or(PathError::Nested)?)
        };
        let show_expand = !plan.expand().is_drop();
        for (i, buf) in records.iter_mut().enumerate() {
            if let (Some(objects), true) = (&nested, show_expand) {
                if let Some(object) = objects.get(i) {
                    if wrote.get(i).copied().unwrap_or(false) {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(b"\"expand\":");
                    buf.extend_from_slice(object);
                }
            }
            buf.push(b'}');
        }
        let links = if back { Links::ByParent(by_parent) } else { Links::ByRecord(links) };
        Ok(Fetched { records, index, links, multiple })
    }
}

/// The records of `source` pointing back at the parents (`?{n+1}`: the parents' ids as a JSON
/// array), at most `?{n+2}` per parent in insertion order, then filtered by the view rule
/// (`rule_sql`, binding `?1..?n`). Each row ends with the record id and the parent id.
fn back_relation_sql(source: &Collection, field: &Field, columns: &str, rule_sql: &str, n: usize) -> String {
    let table = quote_ident(&source.name);
    let col = format!("__b.{}", quote_ident(&field.name));
    // Views have no rowid; PocketBase gives them no order either.
    let has_rowid = source.kind != CollectionType::View;
    let candidates = if field.is_multiple() {
        let array = format!("(CASE WHEN (CASE WHEN json_valid({col}) THEN json_type({col}) = 'array' ELSE 0 END) THEN {col} ELSE json_array({col}) END)");
        let (rowid, order) = if has_rowid { (", __b.rowid AS __r", " ORDER BY __d.__r") } else { ("", "") };
        format!(
            "SELECT __d.__id, __d.__parent, ROW_NUMBER() OVER (PARTITION BY __d.__parent{order}) AS __n FROM \
             (SELECT DISTINCT __b.\"id\" AS __id, __je.value AS __parent{rowid} FROM {table} AS __b, json_each({array}) AS __je \
             WHERE __je.value IN (SELECT value FROM json_each(?{}))) AS __d",
            n + 1
        )
    } else {
        let order = if has_rowid { " ORDER BY __b.rowid" } else { "" };
        format!(
            "SELECT __b.\"id\" AS __id, {col} AS __parent, ROW_NUMBER() OVER (PARTITION BY {col}{order}) AS __n \
             FROM {table} AS __b WHERE {col} IN (SELECT value FROM json_each(?{}))",
            n + 1
        )
    };
    format!(
        "SELECT {columns}, {table}.\"id\", __l.__parent FROM ({candidates}) AS __l JOIN {table} AS {table} ON {table}.\"id\" = __l.__id \
         WHERE __l.__n <= ?{} AND ({rule_sql}) ORDER BY __l.__parent, __l.__n",
        n + 2
    )
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
