//! Filter/rule compiler: turns a parsed [`Expr`] (see [`super::filter`]) into a SQL WHERE
//! fragment with bound parameters, plus the LEFT JOINs it needs, and a `sort` string into an
//! ORDER BY body — with PocketBase's semantics (empty/NULL normalisation, LIKE wrapping,
//! match-all versus `?` any-of over multi-valued operands, `@request.*`, `@collection.*`,
//! macros, modifiers, hidden fields and the list-rule guard on joined collections).
//!
//! It owns the SQL shapes of filters. It must not touch a database, read HTTP, or put any text
//! from a filter, rule or request into SQL: literals and request values are always bound
//! parameters ([`SqlValue`]), identifiers come only from the schema and are quoted with
//! [`quote_ident`], and table aliases (`__t0`, `__t1`, …) are generated here. Nothing here
//! panics on any input; every refusal is a [`QueryError`].
//!
//! Shapes (base table `__t0`; the other alias numbers are illustrative):
//! * single relation `author.name`: `LEFT JOIN "users" __t1 ON __t1."id" = __t0."author"`;
//! * multiple relation `tags.name`: `LEFT JOIN json_each(<tags as array>) __t1
//!   LEFT JOIN "tags" __t2 ON __t2."id" = __t1.value`;
//! * back-relation `comments_via_post.message`: `LEFT JOIN "comments" __t1 ON __t1."post" =
//!   __t0."id"` (or `ON __t0."id" IN (SELECT value FROM json_each(__t1."post"))` when the
//!   relation field is multiple);
//! * match-all (plain operators over a multi-valued operand): `((cond) AND NOT EXISTS (SELECT 1
//!   FROM (SELECT <value> AS __mv FROM (SELECT 1) __tN LEFT JOIN …) __tM WHERE NOT (cond on
//!   __tM.__mv)))` — the joined chain is rebuilt with fresh aliases, correlated to the outer row;
//!   `?` operators keep only the first part (any-of). For client filters the rebuilt chain
//!   carries the same guards as the joins: `WHERE` the list rule of every joined collection
//!   (over its chain alias) and, for `email`, `emailVisibility = 1` — so neither half ever
//!   reads a row the caller cannot list or an email its owner hid. Records reached from
//!   `@request.auth` through a relation are someone else's and get the same guards.
//!
//! Rows are multiplied by the joins, so a caller either selects `DISTINCT` with
//! [`Compiled::joins`] or uses [`Compiled::standalone_where`], which folds the joins into one
//! `EXISTS (…)` and needs neither:
//!
//! ```text
//! let c = compile(&expr, posts, &schema, &ctx, CompileOptions::default())?;
//! SELECT __t0.* FROM "posts" __t0 WHERE <c.standalone_where()> LIMIT ?<c.next_param_index()>
//! -- bind c.params, then the caller's own values
//! ```

mod compare;
mod context;
mod resolve;
mod sort;
mod sql;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::UNIX_EPOCH;

use crate::worker::records::filter::{self, Expr, Limits};
use crate::worker::records::schema::{quote_ident, Collection};

pub use context::{format_datetime, AuthContext, RequestContext, DEFAULT_CONTEXT};
pub use sql::{SqlValue, MAX_BOUND_PARAMS};
/// Also used by `expand`: a back-relation through such a field expands to one record.
pub(crate) use resolve::has_single_column_unique_index;

use sql::Sql;

/// The base table alias unless the caller picks another.
pub const DEFAULT_BASE_ALIAS: &str = "__t0";
/// PocketBase's `maxNestedRels`: relation hops allowed in one path.
pub const MAX_NESTED_RELATIONS: usize = 6;
/// Joins one query may add. SQLite allows 64 tables in one FROM; the base table and the
/// `(SELECT 1)` root of [`Compiled::standalone_where`] take two.
pub const MAX_JOINS: usize = 62;
/// PocketBase's limits on `sort`: fields per request and characters per field.
pub const MAX_SORT_FIELDS: usize = 8;
pub const MAX_SORT_FIELD_CHARS: usize = 255;
/// Longest caller-chosen base alias.
pub const MAX_ALIAS_CHARS: usize = 64;
/// Stored list rules are parsed without the client-filter length cap (PocketBase checks only
/// the comparison count on rules); this bounds them anyway.
pub const MAX_RULE_LEN_BYTES: usize = 64 * 1024;

/// The message PocketBase's list endpoint answers a bad `filter` or `sort` with (status 400,
/// `data: {}`), whatever the [`QueryError`] was. The error's own text is for logs.
pub const CLIENT_ERROR_MESSAGE: &str = "Something went wrong while processing your request.";

/// Why a filter, rule or sort cannot be compiled. Every variant is a client error: the API
/// answers 400 with [`CLIENT_ERROR_MESSAGE`] and `data: {}` (PocketBase §2.2 item 6, §12).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    #[error("field {0:?} is hidden and cannot be filtered or sorted by")]
    HiddenField(String),
    /// Ciphertext compares with nothing: refused, never silently matched against.
    #[error("field {0:?} is encrypted and cannot be used in a filter, sort or rule")]
    EncryptedField(String),
    #[error("field {0:?} is not a relation, so it has no sub-fields")]
    NotARelation(String),
    #[error("invalid back-relation {segment:?}: {reason}")]
    InvalidBackRelation { segment: String, reason: &'static str },
    #[error("the :{modifier} modifier cannot be used on {target}")]
    InvalidModifier { modifier: &'static str, target: String },
    #[error("field {0:?} doesn't support multivalue operations")]
    NotMultiValued(String),
    #[error("{path:?} goes through more than {max} relations")]
    TooManyRelations { path: String, max: usize },
    #[error("{0:?} fields can be accessed only by superusers (its list rule is locked)")]
    CollectionLocked(String),
    #[error("the list rule of {collection:?} cannot be used: {reason}")]
    InvalidListRule { collection: String, reason: String },
    #[error("the @collection alias {0:?} is used for two different collections")]
    AliasConflict(String),
    #[error("the query would need more than {max} joins")]
    TooManyJoins { max: usize },
    #[error("the query would need more than {max} bound parameters")]
    TooManyParams { max: usize },
    #[error("invalid sort field {0:?}")]
    InvalidSort(String),
    #[error("at most {max} sort fields are allowed")]
    TooManySortFields { max: usize },
    #[error("invalid table alias {0:?}")]
    InvalidAlias(String),
    #[error("not supported yet: {0}")]
    Unsupported(String),
}

/// Finds collections by name (case-insensitive, as PocketBase) or id. The caller passes its
/// schema cache.
pub trait SchemaLookup {
    fn collection_by_name_or_id(&self, name_or_id: &str) -> Option<&Collection>;
}

impl SchemaLookup for [Collection] {
    fn collection_by_name_or_id(&self, name_or_id: &str) -> Option<&Collection> {
        self.iter()
            .find(|c| c.id == name_or_id)
            .or_else(|| self.iter().find(|c| c.name.eq_ignore_ascii_case(name_or_id)))
    }
}

impl SchemaLookup for Vec<Collection> {
    fn collection_by_name_or_id(&self, name_or_id: &str) -> Option<&Collection> {
        self.as_slice().collection_by_name_or_id(name_or_id)
    }
}

/// Per-compilation switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Superusers and API rules may reference hidden fields and walk into collections whose
    /// list rule is locked; client filters and sorts of everyone else may not (§3.6, §2.2).
    pub allow_hidden_fields: bool,
    /// Alias of the base table in the caller's query (`FROM "posts" <alias>`): ASCII letters,
    /// digits and `_`, not starting with `__` (reserved for generated aliases) unless it is
    /// [`DEFAULT_BASE_ALIAS`].
    pub base_alias: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { allow_hidden_fields: false, base_alias: DEFAULT_BASE_ALIAS.to_owned() }
    }
}

/// A compiled filter (and optionally sort): SQL text plus the values to bind, in order
/// (`params[i]` binds `?{i+1}`). Bind all of them with every piece of text used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compiled {
    /// A boolean SQL expression over the base alias and the join aliases; `1` when empty.
    pub where_sql: String,
    pub params: Vec<SqlValue>,
    /// `LEFT JOIN …` clauses, in order, to put after `FROM "<table>" <base alias>`.
    pub joins: Vec<String>,
    /// True when there are joins: they can multiply rows, so select `DISTINCT` (or use
    /// [`Compiled::standalone_where`]).
    pub needs_distinct: bool,
    /// The ORDER BY body (without the keywords), empty when no sort was compiled. It uses
    /// correlated subqueries, never the joins, so it works with either WHERE form.
    pub order_by: String,
}

impl Compiled {
    /// The WHERE body with the joins folded into an `EXISTS` subquery: use it with
    /// `SELECT … FROM "<table>" <base alias> WHERE <this>` and no joins or DISTINCT. Binds
    /// the same [`Compiled::params`].
    pub fn standalone_where(&self) -> String {
        if self.joins.is_empty() {
            return self.where_sql.clone();
        }
        format!("EXISTS (SELECT 1 FROM (SELECT 1) AS __root {} WHERE {})", self.joins.join(" "), self.where_sql)
    }

    /// The number to give the caller's first own placeholder (`?N`) after these params.
    pub fn next_param_index(&self) -> usize {
        self.params.len() + 1
    }
}

/// Builds one query from several filters (ANDed, e.g. the list rule and the client filter,
/// which share joins like PocketBase's shared resolver) and a sort. Each step consumes the
/// builder, so a builder that returned an error cannot be reused half-updated.
pub struct QueryBuilder<'a> {
    base: &'a Collection,
    schema: &'a dyn SchemaLookup,
    ctx: &'a RequestContext,
    base_alias: String,
    params: Vec<SqlValue>,
    joins: JoinSet,
    /// Set while compiling a list rule inside a sort subquery: joins go there instead.
    local_joins: Option<JoinSet>,
    next_alias: usize,
    /// (alias, collection id) of joined collections whose list rule must be ANDed in.
    pending_rules: Vec<(String, String)>,
    guarded_aliases: HashSet<String>,
    wheres: Vec<String>,
    order_by: Vec<String>,
}

/// Registered joins by dedupe key: the same path reuses the same alias (PocketBase's
/// alias-per-path), so `tags.name = 'a' && tags.weight > 1` speaks about one joined row.
#[derive(Default)]
struct JoinSet {
    rendered: Vec<String>,
    /// key → (alias, collection id or empty for json_each joins)
    by_key: HashMap<String, (String, String)>,
}

/// Where a resolution starts: the collection, its alias, the namespace of its join keys, and
/// whether hidden fields are allowed.
#[derive(Clone)]
struct Scope<'a> {
    base: &'a Collection,
    alias: String,
    key_prefix: String,
    allow_hidden: bool,
}

impl<'a> QueryBuilder<'a> {
    /// A builder for queries on `base` (`FROM "<base.name>" <base_alias>`).
    pub fn new(
        base: &'a Collection,
        schema: &'a dyn SchemaLookup,
        ctx: &'a RequestContext,
        base_alias: &str,
    ) -> Result<QueryBuilder<'a>, QueryError> {
        check_alias(base_alias)?;
        Ok(QueryBuilder {
            base,
            schema,
            ctx,
            base_alias: base_alias.to_owned(),
            params: Vec::new(),
            joins: JoinSet::default(),
            local_joins: None,
            next_alias: 1,
            pending_rules: Vec::new(),
            guarded_aliases: HashSet::new(),
            wheres: Vec::new(),
            order_by: Vec::new(),
        })
    }

    /// ANDs a filter or rule into the query. With `allow_hidden_fields` false, hidden fields
    /// are refused and every collection the filter joins must have a non-locked list rule,
    /// which is then ANDed in for that join as `id = '' || (rule)` (PocketBase ≥ 0.31).
    pub fn filter(mut self, expr: &Expr, allow_hidden_fields: bool) -> Result<QueryBuilder<'a>, QueryError> {
        let scope = self.base_scope(allow_hidden_fields);
        let sql = self.expr(&scope, expr)?;
        let mut rendered = vec![sql.render(&mut self.params)?];
        rendered.extend(self.apply_pending_rules()?);
        let joined = if rendered.len() == 1 { rendered.remove(0) } else { format!("({})", rendered.join(" AND ")) };
        self.wheres.push(joined);
        Ok(self)
    }

    /// Appends a PocketBase `sort` value (`-created,title,@random`) to the ORDER BY.
    pub fn sort(mut self, sort: &str, allow_hidden_fields: bool) -> Result<QueryBuilder<'a>, QueryError> {
        let scope = self.base_scope(allow_hidden_fields);
        let items = self.sort_items(&scope, sort)?;
        for item in items {
            let rendered = item.render(&mut self.params)?;
            self.order_by.push(rendered);
        }
        Ok(self)
    }

    pub fn finish(self) -> Compiled {
        let where_sql = match self.wheres.len() {
            0 => "1".to_owned(),
            1 => self.wheres.concat(),
            _ => self.wheres.iter().map(|w| format!("({w})")).collect::<Vec<_>>().join(" AND "),
        };
        let needs_distinct = !self.joins.rendered.is_empty();
        Compiled { where_sql, params: self.params, joins: self.joins.rendered, needs_distinct, order_by: self.order_by.join(", ") }
    }

    fn base_scope(&self, allow_hidden: bool) -> Scope<'a> {
        Scope { base: self.base, alias: self.base_alias.clone(), key_prefix: String::new(), allow_hidden }
    }

    fn fresh_alias(&mut self) -> String {
        let alias = format!("__t{}", self.next_alias);
        self.next_alias = self.next_alias.saturating_add(1);
        alias
    }

    fn lookup(&self, name_or_id: &str) -> Option<&'a Collection> {
        if self.base.id == name_or_id || self.base.name.eq_ignore_ascii_case(name_or_id) {
            return Some(self.base);
        }
        self.schema.collection_by_name_or_id(name_or_id)
    }

    /// Registers (or reuses) the join for `key` and returns its alias. `target` is the
    /// collection joined (for the alias-conflict check and the list-rule guard); `guard`
    /// says whether its list rule applies (client filters).
    fn join(
        &mut self,
        key: &str,
        target: Option<&'a Collection>,
        guard: bool,
        build: impl FnOnce(&str) -> Sql,
    ) -> Result<String, QueryError> {
        let target_id = target.map(|c| c.id.clone()).unwrap_or_default();
        let existing = match &self.local_joins {
            Some(local) => local.by_key.get(key).cloned(),
            None => self.joins.by_key.get(key).cloned(),
        };
        let alias = match existing {
            Some((alias, id)) => {
                if id != target_id {
                    return Err(QueryError::AliasConflict(key.rsplit(':').next().unwrap_or(key).to_owned()));
                }
                alias
            }
            None => {
                let count = self.local_joins.as_ref().map_or(self.joins.rendered.len(), |l| l.rendered.len());
                if count >= MAX_JOINS {
                    return Err(QueryError::TooManyJoins { max: MAX_JOINS });
                }
                let alias = self.fresh_alias();
                let rendered = build(&alias).render(&mut self.params)?;
                let set = match self.local_joins.as_mut() {
                    Some(local) => local,
                    None => &mut self.joins,
                };
                set.rendered.push(rendered);
                set.by_key.insert(key.to_owned(), (alias.clone(), target_id));
                alias
            }
        };
        if let (true, Some(c)) = (guard, target) {
            match &c.list_rule {
                None => return Err(QueryError::CollectionLocked(c.name.clone())),
                Some(rule) if rule.is_empty() => {}
                Some(_) => {
                    let queued = self.pending_rules.iter().any(|(a, _)| *a == alias);
                    if !queued && !self.guarded_aliases.contains(&alias) {
                        self.pending_rules.push((alias.clone(), c.id.clone()));
                    }
                }
            }
        }
        Ok(alias)
    }

    /// Compiles the list rules queued by guarded joins: `(alias.id = '' OR alias.id IS NULL)
    /// OR (rule)` against the joined alias, with hidden fields allowed (rules may use them).
    fn apply_pending_rules(&mut self) -> Result<Vec<String>, QueryError> {
        let mut out = Vec::new();
        while let Some((alias, collection_id)) = self.pending_rules.pop() {
            self.guarded_aliases.insert(alias.clone());
            let (scope, expr) = self.rule_scope(&alias, &collection_id)?;
            let sql = self.expr(&scope, &expr)?;
            out.push(sql.render(&mut self.params)?);
        }
        Ok(out)
    }

    /// The scope and wrapped expression of a joined collection's list rule.
    fn rule_scope(&self, alias: &str, collection_id: &str) -> Result<(Scope<'a>, Expr), QueryError> {
        let collection = self.lookup(collection_id).ok_or_else(|| QueryError::UnknownCollection(collection_id.to_owned()))?;
        let rule = collection.list_rule.as_deref().unwrap_or("");
        let limits = Limits { max_len_bytes: MAX_RULE_LEN_BYTES, ..Limits::CLIENT_FILTER };
        let parsed = filter::parse_with_limits(rule, limits)
            .map_err(|e| QueryError::InvalidListRule { collection: collection.name.clone(), reason: e.to_string() })?;
        let id_is_empty = Expr::Compare {
            left: filter::Operand::Field(filter::Path { segments: vec!["id".to_owned()], modifier: None }),
            op: filter::Op::all(filter::OpKind::Eq),
            right: filter::Operand::Text(String::new()),
        };
        let expr = Expr::Or(vec![id_is_empty, Expr::Group(Box::new(parsed))]);
        let scope = Scope { base: collection, alias: alias.to_owned(), key_prefix: format!("{alias}|"), allow_hidden: true };
        Ok((scope, expr))
    }

    /// The text of a column of `alias`.
    fn column(alias: &str, field: &str) -> String {
        format!("{alias}.{}", quote_ident(field))
    }
}

fn check_alias(alias: &str) -> Result<(), QueryError> {
    let word = alias.len() <= MAX_ALIAS_CHARS
        && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && alias.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    if !word || (alias.starts_with("__") && alias != DEFAULT_BASE_ALIAS) {
        return Err(QueryError::InvalidAlias(alias.to_owned()));
    }
    Ok(())
}

/// Compiles one filter or rule against `base`.
pub fn compile(
    expr: &Expr,
    base: &Collection,
    schema: &dyn SchemaLookup,
    ctx: &RequestContext,
    opts: CompileOptions,
) -> Result<Compiled, QueryError> {
    Ok(QueryBuilder::new(base, schema, ctx, &opts.base_alias)?.filter(expr, opts.allow_hidden_fields)?.finish())
}

/// Compiles a PocketBase `sort` value into an ORDER BY body that binds no parameters.
/// Supports direct fields, single-relation and unique back-relation paths (as correlated
/// subqueries), `:lower`, `:length`, `@random` and `@rowid`. Paths that need bound values
/// (JSON sub-paths, or a list rule guarding a joined collection) must go through
/// [`QueryBuilder::sort`] instead, which returns them with the filter's parameters.
pub fn compile_sort(sort: &str, base: &Collection, schema: &dyn SchemaLookup, opts: CompileOptions) -> Result<String, QueryError> {
    let ctx = RequestContext::new(UNIX_EPOCH);
    let compiled = QueryBuilder::new(base, schema, &ctx, &opts.base_alias)?.sort(sort, opts.allow_hidden_fields)?.finish();
    if !compiled.params.is_empty() {
        return Err(QueryError::Unsupported(
            "this sort needs bound parameters; compile it with QueryBuilder::sort".to_owned(),
        ));
    }
    Ok(compiled.order_by)
}
