//! Operand resolution: what each side of a comparison means in SQL — fields and relation
//! paths (with the joins they register and the match-all subquery chain they carry),
//! `@request.*` values, `@collection.*` joins, macros, literals and function calls. It owns
//! PocketBase's naming rules (back-relations, `rel.id` shortcut, JSON sub-paths, modifiers,
//! hidden fields, NULL for unknown `@request` paths). It must not decide how operands are
//! compared: that is [`super::compare`].

use serde_json::Value;

use crate::worker::records::filter::{ast, Call, Expr, Function, Modifier, Path, RequestSource};
use crate::worker::records::schema::{quote_ident, Collection, CollectionType, Field, FieldKind};

use super::sql::{Sql, SqlValue};
use super::{QueryBuilder, QueryError, Scope, MAX_NESTED_RELATIONS};

/// Mean Earth radius PocketBase's `geoDistance` uses, in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// `@request.auth.*` keys PocketBase serves from the auth record itself, without a join.
const PLAIN_AUTH_FIELDS: [&str; 6] = ["id", "collectionId", "collectionName", "email", "emailVisibility", "verified"];

/// How `=`/`!=` treat NULL and empty text for this operand (PocketBase's `NullFallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fallback {
    /// Normalise: `x = ''` also matches NULL, two columns compare through `COALESCE`.
    Auto,
    /// Compare with `IS` / `IS NOT` as is (JSON values, distances, `:changed`).
    Disabled,
    /// Never treat as a known non-empty value (strftime may yield NULL).
    Enforced,
}

/// The literal kind of the operand's SQL text, as PocketBase's identifier checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// The `NULL` literal: an empty operand.
    Null,
    /// `1`/`0` (true, false, `:isset`): known non-empty.
    Const,
    /// Anything else: a column, an expression, or a bound value.
    Expr,
}

/// The every-value view of a multi-valued operand: `SELECT <value> FROM (SELECT 1) <joins>
/// WHERE <guards>`, with the join chain correlated to the outer row.
///
/// The guards are the every-value twin of what the any-value half gets through the main
/// joins: without them the `NOT EXISTS` part would look at rows the caller may not list and
/// emails their owners hid, and a client could read them one `!~ 'prefix%'` at a time.
#[derive(Debug, Clone)]
pub(super) struct Multi {
    pub joins: Sql,
    pub value: Sql,
    /// (chain alias, collection id) whose list rule keeps a chain row (client filters only).
    pub rules: Vec<(String, String)>,
    /// Further conditions a chain row must meet (email visibility).
    pub conditions: Vec<Sql>,
}

impl Multi {
    fn unguarded(joins: Sql, value: Sql) -> Multi {
        Multi { joins, value, rules: Vec::new(), conditions: Vec::new() }
    }
}

/// The condition under which a non-superuser may read the `email` of the auth record at
/// `alias`: its owner made it visible. Filters AND it onto comparisons, sorts replace a
/// hidden email by NULL with it, and match-all chains skip rows failing it.
pub(super) fn email_visible(alias: &str) -> String {
    format!("{alias}.{} = 1", quote_ident("emailVisibility"))
}

/// Whether `field` of `collection` is an email that only shows where `emailVisibility` is on.
pub(super) fn is_guarded_email(collection: &Collection, field: &str, allow_hidden: bool) -> bool {
    field == "email" && !allow_hidden && collection.kind == CollectionType::Auth
}

/// A resolved operand.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub sql: Sql,
    pub shape: Shape,
    pub fallback: Fallback,
    /// Present when the operand goes through a multiple relation, a non-unique back-relation,
    /// `:each` of a multiple field, or `@collection`: plain operators then require every value.
    pub multi: Option<Multi>,
    /// Conditions ANDed onto the finished comparison (email visibility).
    pub guards: Vec<Sql>,
}

impl Resolved {
    pub fn null() -> Resolved {
        Resolved { sql: Sql::text("NULL"), shape: Shape::Null, fallback: Fallback::Auto, multi: None, guards: Vec::new() }
    }

    fn constant(truth: bool) -> Resolved {
        Resolved { sql: Sql::text(if truth { "1" } else { "0" }), shape: Shape::Const, ..Resolved::null() }
    }

    fn expr(sql: Sql) -> Resolved {
        Resolved { sql, shape: Shape::Expr, ..Resolved::null() }
    }

    fn value(value: SqlValue) -> Resolved {
        Resolved::expr(Sql::value(value))
    }

    fn lower(mut self) -> Resolved {
        self.sql = Sql::wrap("LOWER(", &self.sql, ")");
        if let Some(m) = self.multi.as_mut() {
            m.value = Sql::wrap("LOWER(", &m.value, ")");
        }
        self
    }
}

/// Where a path walk stands: the current collection and alias in the main query, the same
/// position in the match-all chain, and the rules that apply to this path.
struct Walk<'a> {
    collection: &'a Collection,
    alias: String,
    /// Dedupe key of the current position (joins along the same path share aliases).
    key: String,
    mm_alias: String,
    mm_joins: Sql,
    /// List rules and conditions on the match-all chain's rows (see [`Multi`]).
    mm_rules: Vec<(String, String)>,
    mm_conditions: Vec<Sql>,
    multi: bool,
    allow_hidden: bool,
    /// `@request.*` paths: unknown fields resolve to NULL instead of failing.
    nullify: bool,
    /// Client filters: every joined collection's list rule is ANDed in.
    guard: bool,
    /// `@request.auth.*` in a client filter: the caller's own record is fully visible, but
    /// records reached from it through a relation are someone else's and get the client
    /// restrictions (hidden fields, list rules, email visibility) from the first hop on.
    restrict_after_hop: bool,
}

impl<'a> Walk<'a> {
    fn new(collection: &'a Collection, alias: &str, key: &str, allow_hidden: bool) -> Walk<'a> {
        Walk {
            collection,
            alias: alias.to_owned(),
            key: key.to_owned(),
            mm_alias: alias.to_owned(),
            mm_joins: Sql::new(),
            mm_rules: Vec::new(),
            mm_conditions: Vec::new(),
            multi: false,
            allow_hidden,
            nullify: false,
            guard: !allow_hidden,
            restrict_after_hop: false,
        }
    }

    /// Called on every relation hop, before the hop's join is registered.
    fn hop(&mut self) {
        if self.restrict_after_hop {
            self.allow_hidden = false;
            self.guard = true;
        }
    }

    /// Queues `target`'s list rule for the match-all chain's alias `mm_alias`, as
    /// [`QueryBuilder::join`] does for the main alias (a locked rule has already failed there).
    fn guard_chain(&mut self, target: &Collection, mm_alias: &str) {
        if self.guard && target.list_rule.as_deref().is_some_and(|r| !r.is_empty()) {
            self.mm_rules.push((mm_alias.to_owned(), target.id.clone()));
        }
    }

    /// The every-value view of the walk so far, ending in `value`.
    fn take_multi(&mut self, value: Sql) -> Option<Multi> {
        self.multi.then(|| Multi {
            joins: std::mem::take(&mut self.mm_joins),
            value,
            rules: std::mem::take(&mut self.mm_rules),
            conditions: std::mem::take(&mut self.mm_conditions),
        })
    }
}

fn is_multi_valuer(field: &Field) -> bool {
    matches!(field.kind, FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_))
}

fn is_json_like(field: &Field) -> bool {
    matches!(field.kind, FieldKind::Json(_) | FieldKind::GeoPoint(_))
}

/// `CASE` expression true when `col` holds a JSON array. `CASE` (unlike `AND`) is evaluated
/// lazily, so `json_type` never sees invalid JSON and raises.
fn is_json_array(col: &str) -> String {
    format!("(CASE WHEN json_valid({col}) THEN json_type({col}) = 'array' ELSE 0 END)")
}

/// `LEFT JOIN json_each(<col as an array>) <alias>`: a scalar (a single relation id) becomes a
/// one-element array, so every relation/select/file column can be iterated.
pub(super) fn json_each_join(col: &str, alias: &str) -> Sql {
    Sql::text(format!("LEFT JOIN json_each(CASE WHEN {} THEN {col} ELSE json_array({col}) END) {alias}", is_json_array(col)))
}

/// Element count of a select/file/relation column: an array's length, 0 for '' or NULL, 1
/// for a scalar.
pub(super) fn json_length(col: &str) -> Sql {
    Sql::text(format!(
        "json_array_length(CASE WHEN {} THEN {col} ELSE (CASE WHEN {col} = '' OR {col} IS NULL THEN json_array() ELSE json_array({col}) END) END)",
        is_json_array(col)
    ))
}

/// `json_extract` that also works on non-JSON column text (wrapped into an object first).
/// `path` starts with `$`; it is bound, not spliced.
pub(super) fn json_extract(col: &str, path: &str) -> Sql {
    let mut s = Sql::text(format!("(CASE WHEN json_valid({col}) THEN json_extract({col}, "));
    s.push_internal(SqlValue::Text(path.to_owned()));
    s.push(format!(") ELSE json_extract(json_object('pb', {col}), "));
    s.push_internal(SqlValue::Text(format!("$.pb{}", path.get(1..).unwrap_or(""))));
    s.push(") END)");
    s
}

/// `$.a[0].b` from the segments after a json/geoPoint field.
pub(super) fn json_path(segments: &[String]) -> String {
    let mut path = String::from("$");
    for seg in segments {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) && seg.parse::<u64>().is_ok() {
            path.push('[');
            path.push_str(seg);
            path.push(']');
        } else {
            path.push('.');
            path.push_str(seg);
        }
    }
    path
}

/// Whether `indexes` holds a unique index on exactly `column` (WHERE clauses ignored, like
/// PocketBase): a back-relation through such a field points at one record at most.
pub(crate) fn has_single_column_unique_index(indexes: &[String], column: &str) -> bool {
    indexes.iter().any(|idx| unique_index_column(idx).is_some_and(|c| c.eq_ignore_ascii_case(column)))
}

fn unique_index_column(index_sql: &str) -> Option<String> {
    let lower = index_sql.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    if (words.next(), words.next(), words.next()) != (Some("create"), Some("unique"), Some("index")) {
        return None;
    }
    let open = index_sql.find('(')?;
    let mut depth = 0usize;
    let mut close = None;
    for (i, b) in index_sql.bytes().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = index_sql.get(open + 1..close?)?;
    if inner.contains(',') {
        return None;
    }
    let mut col = inner.trim();
    let lower_col = col.to_ascii_lowercase();
    for suffix in [" asc", " desc"] {
        if lower_col.ends_with(suffix) {
            col = col.get(..col.len() - suffix.len())?.trim_end();
            break;
        }
    }
    if let Some(pos) = col.to_ascii_lowercase().find(" collate ") {
        col = col.get(..pos)?;
    }
    let col = col.trim_matches(|c: char| c.is_whitespace() || "`\"'[]".contains(c));
    (!col.is_empty()).then(|| col.to_owned())
}

/// A request value as a bound parameter, the way PocketBase binds Go values: JSON numbers are
/// float64, booleans 1/0, arrays and objects their JSON text.
fn json_to_sql(value: &Value, number_field: bool) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => n.as_f64().map_or(SqlValue::Null, SqlValue::Real),
        // A numeric string compared with a number field is cast (multipart bodies are text).
        Value::String(s) => match (number_field, s.parse::<f64>()) {
            (true, Ok(f)) => SqlValue::Real(f),
            _ => SqlValue::Text(s.clone()),
        },
        Value::Array(_) | Value::Object(_) => SqlValue::Text(value.to_string()),
    }
}

/// PocketBase's `cast.ToString` on a body value (for `@request.body.f:lower`): NULL and
/// non-scalars become empty.
fn json_to_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.as_f64().map(|f| SqlValue::Real(f).to_text()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// A body value as a list: NULL is empty, a scalar is one element.
fn to_list(value: Option<&Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// Follows `segments` into a JSON map; `None` when a key or index is missing.
fn lookup_json<'v>(root: &'v serde_json::Map<String, Value>, segments: &[String]) -> Option<&'v Value> {
    let (first, rest) = segments.split_first()?;
    let mut current = root.get(first)?;
    for seg in rest {
        current = match current {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

impl<'a> QueryBuilder<'a> {
    /// Compiles a boolean expression.
    pub(super) fn expr(&mut self, scope: &Scope<'a>, expr: &Expr) -> Result<Sql, QueryError> {
        match expr {
            Expr::Compare { left, op, right } => {
                let l = self.operand(scope, left)?;
                let r = self.operand(scope, right)?;
                self.compare(&l, *op, &r)
            }
            Expr::And(items) | Expr::Or(items) => {
                let separator = if matches!(expr, Expr::And(_)) { " AND " } else { " OR " };
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    parts.push(self.expr(scope, item)?);
                }
                Ok(Sql::wrap("(", &Sql::join(&parts, separator), ")"))
            }
            Expr::Group(inner) => self.expr(scope, inner),
        }
    }

    pub(super) fn operand(&mut self, scope: &Scope<'a>, operand: &ast::Operand) -> Result<Resolved, QueryError> {
        match operand {
            ast::Operand::Text(text) => Ok(Resolved::value(SqlValue::Text(text.clone()))),
            // PocketBase binds every number literal as a float64.
            ast::Operand::Number(n) => Ok(Resolved::value(SqlValue::Real(*n))),
            // Field names `true`/`false`/`null` are reserved, so the keywords never resolve to
            // a field here.
            ast::Operand::Bool(b) => Ok(Resolved::constant(*b)),
            ast::Operand::Null => Ok(Resolved::null()),
            ast::Operand::Macro(m) => Ok(Resolved::value(self.ctx.macro_value(*m))),
            ast::Operand::Field(path) => {
                let walk = Walk::new(scope.base, &scope.alias, &scope.key_prefix, scope.allow_hidden);
                self.walk(walk, &path.segments, path.modifier)
            }
            ast::Operand::Request { source, path } => self.request(scope, *source, path),
            ast::Operand::Collection { collection, alias, path } => {
                self.collection(scope, collection, alias.as_deref(), path)
            }
            ast::Operand::Call(call) => self.call(scope, call),
        }
    }

    /// Resolves `segments` from the walk's position: relations and back-relations in the
    /// middle, a field (with `modifier`) at the end.
    fn walk(&mut self, mut w: Walk<'a>, segments: &[String], modifier: Option<Modifier>) -> Result<Resolved, QueryError> {
        let Some((last, init)) = segments.split_last() else {
            return Err(QueryError::UnknownField(String::new()));
        };
        for (i, seg) in init.iter().enumerate() {
            let field = w.collection.field(seg);
            if let Some(f) = field {
                if f.hidden && !w.allow_hidden {
                    return Err(QueryError::HiddenField(seg.clone()));
                }
                if f.encrypted {
                    return Err(QueryError::EncryptedField(seg.clone()));
                }
                if is_json_like(f) {
                    return self.json_sub_path(w, f, segments.get(i + 1..).unwrap_or(&[]), modifier);
                }
            }
            if i >= MAX_NESTED_RELATIONS {
                return Err(QueryError::TooManyRelations { path: segments.join("."), max: MAX_NESTED_RELATIONS });
            }
            let Some(f) = field else {
                if !self.back_relation(&mut w, seg)? {
                    return Ok(Resolved::null());
                }
                continue;
            };
            let FieldKind::Relation(options) = &f.kind else {
                return Err(QueryError::NotARelation(seg.clone()));
            };
            // `rel.id` of a single relation is the relation column itself: no join needed.
            if !f.is_multiple() && i + 2 == segments.len() && last == "id" && modifier.is_none() {
                return self.last_field(w, seg, None);
            }
            if !self.forward_relation(&mut w, f, &options.collection_id)? {
                return Ok(Resolved::null());
            }
        }
        self.last_field(w, last, modifier)
    }

    /// Moves the walk along relation field `f` into its target collection. `false` when the
    /// target is unknown and the walk resolves missing things to NULL.
    fn forward_relation(&mut self, w: &mut Walk<'a>, f: &Field, target_id: &str) -> Result<bool, QueryError> {
        let Some(target) = self.lookup(target_id) else {
            return if w.nullify { Ok(false) } else { Err(QueryError::UnknownCollection(target_id.to_owned())) };
        };
        w.hop();
        let table = quote_ident(&target.name);
        let col = Self::column(&w.alias, &f.name);
        let mm_col = Self::column(&w.mm_alias, &f.name);
        let key = format!("{}.{}", w.key, f.name);
        let mm_target = self.fresh_alias();
        let alias = if f.is_multiple() {
            let each = self.join(&format!("{key}#each"), None, false, |a| json_each_join(&col, a))?;
            let alias = self.join(&key, Some(target), w.guard, |a| {
                Sql::text(format!("LEFT JOIN {table} {a} ON {a}.\"id\" = {each}.value"))
            })?;
            let mm_each = self.fresh_alias();
            w.mm_joins.push(" ").append(&json_each_join(&mm_col, &mm_each));
            w.mm_joins.push(format!(" LEFT JOIN {table} {mm_target} ON {mm_target}.\"id\" = {mm_each}.value"));
            w.multi = true;
            alias
        } else {
            let alias = self.join(&key, Some(target), w.guard, |a| {
                Sql::text(format!("LEFT JOIN {table} {a} ON {a}.\"id\" = {col}"))
            })?;
            w.mm_joins.push(format!(" LEFT JOIN {table} {mm_target} ON {mm_target}.\"id\" = {mm_col}"));
            alias
        };
        w.guard_chain(target, &mm_target);
        w.collection = target;
        w.alias = alias;
        w.key = key;
        w.mm_alias = mm_target;
        Ok(true)
    }

    /// Moves the walk along a back-relation segment `<collection>_via_<field>`. `false` when
    /// the walk resolves invalid back-relations to NULL (inside `@request.*`).
    fn back_relation(&mut self, w: &mut Walk<'a>, segment: &str) -> Result<bool, QueryError> {
        let invalid = |reason: &'static str| QueryError::InvalidBackRelation { segment: segment.to_owned(), reason };
        let resolved = match Path::back_relation(segment) {
            None => Err(QueryError::UnknownField(segment.to_owned())),
            Some((collection_name, field_name)) => match self.lookup(collection_name) {
                None => Err(invalid("unknown collection")),
                Some(back) => match back.field(field_name) {
                    None => Err(invalid("unknown relation field")),
                    Some(f) => match &f.kind {
                        FieldKind::Relation(o) if o.collection_id == w.collection.id => Ok((back, f)),
                        FieldKind::Relation(_) => Err(invalid("the relation field points to another collection")),
                        _ => Err(invalid("not a relation field")),
                    },
                },
            },
        };
        let (back, f) = match resolved {
            Ok(found) => found,
            Err(_) if w.nullify => return Ok(false),
            Err(e) => return Err(e),
        };
        w.hop();
        if f.hidden && !w.allow_hidden {
            return Err(QueryError::HiddenField(f.name.clone()));
        }
        let table = quote_ident(&back.name);
        let id = Self::column(&w.alias, "id");
        let mm_id = Self::column(&w.mm_alias, "id");
        let key = format!("{}.{segment}", w.key);
        let mm_target = self.fresh_alias();
        let alias = if f.is_multiple() {
            let each = self.fresh_alias();
            let alias = self.join(&key, Some(back), w.guard, |a| {
                let col = Self::column(a, &f.name);
                Sql::text(format!(
                    "LEFT JOIN {table} {a} ON {id} IN (SELECT {each}.value FROM json_each(CASE WHEN {} THEN {col} ELSE json_array({col}) END) {each})",
                    is_json_array(&col)
                ))
            })?;
            let mm_each = self.fresh_alias();
            let col = Self::column(&mm_target, &f.name);
            w.mm_joins.push(format!(
                " LEFT JOIN {table} {mm_target} ON {mm_id} IN (SELECT {mm_each}.value FROM json_each(CASE WHEN {} THEN {col} ELSE json_array({col}) END) {mm_each})",
                is_json_array(&col)
            ));
            alias
        } else {
            let alias = self.join(&key, Some(back), w.guard, |a| {
                Sql::text(format!("LEFT JOIN {table} {a} ON {} = {id}", Self::column(a, &f.name)))
            })?;
            w.mm_joins.push(format!(" LEFT JOIN {table} {mm_target} ON {} = {mm_id}", Self::column(&mm_target, &f.name)));
            alias
        };
        w.guard_chain(back, &mm_target);
        // Several records may point back unless the field is single and uniquely indexed.
        if f.is_multiple() || !has_single_column_unique_index(&back.indexes, &f.name) {
            w.multi = true;
        }
        w.collection = back;
        w.alias = alias;
        w.key = key;
        w.mm_alias = mm_target;
        Ok(true)
    }

    /// The field at the end of a path, with its modifier.
    fn last_field(&mut self, mut w: Walk<'a>, name: &str, modifier: Option<Modifier>) -> Result<Resolved, QueryError> {
        let Some(f) = w.collection.field(name) else {
            return if w.nullify { Ok(Resolved::null()) } else { Err(QueryError::UnknownField(name.to_owned())) };
        };
        if f.hidden && !w.allow_hidden {
            return Err(QueryError::HiddenField(name.to_owned()));
        }
        if f.encrypted {
            return Err(QueryError::EncryptedField(name.to_owned()));
        }
        if let Some(m @ (Modifier::Isset | Modifier::Changed)) = modifier {
            return Err(QueryError::InvalidModifier { modifier: m.name(), target: format!("field {name:?} (only @request.* values)") });
        }
        let col = Self::column(&w.alias, name);
        let mm_col = Self::column(&w.mm_alias, name);
        let mut guards = Vec::new();
        let mut fallback = Fallback::Auto;
        let (sql, mm_value) = match modifier {
            Some(Modifier::Length) if is_multi_valuer(f) => (json_length(&col), json_length(&mm_col)),
            Some(Modifier::Each) if is_multi_valuer(f) => {
                let key = format!("{}.{name}:each", w.key);
                let each = self.join(&key, None, false, |a| json_each_join(&col, a))?;
                if f.is_multiple() {
                    w.multi = true;
                }
                let mm_each = self.fresh_alias();
                w.mm_joins.push(" ").append(&json_each_join(&mm_col, &mm_each));
                (Sql::text(format!("{each}.value")), Sql::text(format!("{mm_each}.value")))
            }
            // `:length`/`:each` on other types are ignored, as PocketBase does.
            _ => {
                if is_guarded_email(w.collection, name, w.allow_hidden) {
                    // Non-superusers only match emails their owners made visible; the
                    // match-all chain skips the others (a missing record stays, as NULL).
                    guards.push(Sql::text(email_visible(&w.alias)));
                    let mm_id = Self::column(&w.mm_alias, "id");
                    w.mm_conditions.push(Sql::text(format!("({mm_id} IS NULL OR {})", email_visible(&w.mm_alias))));
                }
                if matches!(f.kind, FieldKind::Json(_)) {
                    // Top-level JSON primitives then compare like SQL values.
                    fallback = Fallback::Disabled;
                    (json_extract(&col, "$"), json_extract(&mm_col, "$"))
                } else {
                    (Sql::text(col), Sql::text(mm_col))
                }
            }
        };
        let multi = w.take_multi(mm_value);
        let resolved = Resolved { sql, shape: Shape::Expr, fallback, multi, guards };
        Ok(if modifier == Some(Modifier::Lower) { resolved.lower() } else { resolved })
    }

    /// A JSON (or geoPoint) field followed by a sub-path: `data.a.0` → `json_extract(…, '$.a[0]')`.
    fn json_sub_path(&mut self, mut w: Walk<'a>, f: &Field, rest: &[String], modifier: Option<Modifier>) -> Result<Resolved, QueryError> {
        if let Some(m @ (Modifier::Isset | Modifier::Changed)) = modifier {
            return Err(QueryError::InvalidModifier { modifier: m.name(), target: format!("field {:?} (only @request.* values)", f.name) });
        }
        let path = json_path(rest);
        let sql = json_extract(&Self::column(&w.alias, &f.name), &path);
        let multi = w.take_multi(json_extract(&Self::column(&w.mm_alias, &f.name), &path));
        let resolved = Resolved { sql, shape: Shape::Expr, fallback: Fallback::Disabled, multi, guards: Vec::new() };
        Ok(if modifier == Some(Modifier::Lower) { resolved.lower() } else { resolved })
    }

    /// `@collection.<name>[:alias].<path>`: an unconstrained join, always match-all.
    fn collection(&mut self, scope: &Scope<'a>, name: &str, alias: Option<&str>, path: &Path) -> Result<Resolved, QueryError> {
        let Some(target) = self.lookup(name) else {
            return Err(QueryError::UnknownCollection(name.to_owned()));
        };
        let key = match alias {
            Some(alias) => format!("{}@alias:{alias}", scope.key_prefix),
            None => format!("{}@collection:{}", scope.key_prefix, target.name),
        };
        let table = quote_ident(&target.name);
        let joined = self.join(&key, Some(target), !scope.allow_hidden, |a| Sql::text(format!("LEFT JOIN {table} {a} ON 1")))?;
        let mm_alias = self.fresh_alias();
        let mut w = Walk::new(target, &joined, &key, scope.allow_hidden);
        w.mm_alias = mm_alias.clone();
        w.mm_joins = Sql::text(format!(" LEFT JOIN {table} {mm_alias} ON 1"));
        w.guard_chain(target, &mm_alias);
        w.multi = true;
        self.walk(w, &path.segments, path.modifier)
    }

    fn request(&mut self, scope: &Scope<'a>, source: RequestSource, path: &Path) -> Result<Resolved, QueryError> {
        let single = |value: &str, modifier: Option<Modifier>| match modifier {
            Some(m) => Err(QueryError::InvalidModifier { modifier: m.name(), target: format!("@request.{}", source.name()) }),
            None => Ok(Resolved::value(SqlValue::Text(value.to_owned()))),
        };
        match source {
            RequestSource::Context => single(&self.ctx.context, path.modifier),
            RequestSource::Method => single(&self.ctx.method, path.modifier),
            RequestSource::Query | RequestSource::Headers => {
                let map = if source == RequestSource::Query { &self.ctx.query } else { &self.ctx.headers };
                // Values are text, so there is nothing below the first segment.
                let found = match path.segments.as_slice() {
                    [key] => map.get(key).map(|v| Value::String(v.clone())),
                    _ => None,
                };
                static_value(found.as_ref(), path.modifier, names_number_field(scope.base, &path.segments), source)
            }
            RequestSource::Body => self.body(scope, path),
            RequestSource::Auth => self.auth(scope, path),
        }
    }

    fn body(&mut self, scope: &Scope<'a>, path: &Path) -> Result<Resolved, QueryError> {
        let body = &self.ctx.body;
        let segments = path.segments.as_slice();
        let found = lookup_json(body, segments);
        let number_field = names_number_field(scope.base, segments);
        let Some((name, rest)) = segments.split_first() else {
            return Ok(Resolved::null());
        };
        let Some(field) = scope.base.field(name) else {
            if path.modifier == Some(Modifier::Changed) {
                return Err(QueryError::UnknownField(name.clone()));
            }
            return static_value(found, path.modifier, number_field, RequestSource::Body);
        };
        if let FieldKind::Relation(options) = &field.kind {
            if !rest.is_empty() {
                return self.body_relation(scope, field, &options.collection_id, rest, path.modifier);
            }
        }
        if rest.is_empty() {
            let submitted = body.get(name);
            match path.modifier {
                Some(Modifier::Each) => return self.body_each(scope, field),
                Some(Modifier::Length) => {
                    if !is_multi_valuer(field) {
                        return Err(QueryError::NotMultiValued(name.clone()));
                    }
                    let count = i64::try_from(to_list(submitted).len()).unwrap_or(i64::MAX);
                    return Ok(Resolved::value(SqlValue::Integer(count)));
                }
                Some(Modifier::Lower) => {
                    let text = SqlValue::Text(json_to_text(submitted));
                    return Ok(Resolved::expr(Sql::wrap("LOWER(", &Sql::value(text), ")")));
                }
                Some(Modifier::Changed) => return self.body_changed(scope, field),
                Some(Modifier::Isset) | None => {}
            }
        } else if path.modifier == Some(Modifier::Changed) {
            return Err(QueryError::InvalidModifier { modifier: "changed", target: "a @request.body sub-path".to_owned() });
        }
        static_value(found, path.modifier, number_field, RequestSource::Body)
    }

    /// `@request.body.f:each`: the submitted list as rows of a `json_each` join.
    fn body_each(&mut self, scope: &Scope<'a>, field: &Field) -> Result<Resolved, QueryError> {
        if !is_multi_valuer(field) {
            return Err(QueryError::NotMultiValued(field.name.clone()));
        }
        let list = Value::Array(to_list(self.ctx.body.get(&field.name))).to_string();
        let each_join = |alias: &str| {
            let mut s = Sql::text("LEFT JOIN json_each(");
            s.push_internal(SqlValue::Text(list.clone()));
            s.push(format!(") {alias}"));
            s
        };
        let key = format!("{}@body-each:{}", scope.key_prefix, field.name);
        let each = self.join(&key, None, false, each_join)?;
        let multi = if field.is_multiple() {
            let mm_each = self.fresh_alias();
            Some(Multi::unguarded(Sql::wrap(" ", &each_join(&mm_each), ""), Sql::text(format!("{mm_each}.value"))))
        } else {
            None
        };
        Ok(Resolved { sql: Sql::text(format!("{each}.value")), shape: Shape::Expr, fallback: Fallback::Auto, multi, guards: Vec::new() })
    }

    /// `@request.body.f:changed`: submitted and different from the stored value.
    fn body_changed(&mut self, scope: &Scope<'a>, field: &Field) -> Result<Resolved, QueryError> {
        let Some(submitted) = self.ctx.body.get(&field.name) else {
            return Ok(Resolved { fallback: Fallback::Disabled, ..Resolved::constant(false) });
        };
        let value = match submitted {
            Value::Null => Resolved::null(),
            v => Resolved::value(json_to_sql(v, matches!(field.kind, FieldKind::Number(_)))),
        };
        let stored = self.last_field(Walk::new(scope.base, &scope.alias, &scope.key_prefix, true), &field.name, None)?;
        let differs = Self::equal(false, &value, &stored);
        Ok(Resolved { sql: Sql::wrap("(", &differs, ")"), shape: Shape::Expr, fallback: Fallback::Disabled, multi: None, guards: Vec::new() })
    }

    /// `@request.body.rel.<path>`: joins the records whose ids were submitted.
    fn body_relation(
        &mut self,
        scope: &Scope<'a>,
        field: &Field,
        target_id: &str,
        rest: &[String],
        modifier: Option<Modifier>,
    ) -> Result<Resolved, QueryError> {
        let Some(target) = self.lookup(target_id) else {
            return Err(QueryError::UnknownCollection(target_id.to_owned()));
        };
        let mut ids: Vec<String> = Vec::new();
        for item in to_list(self.ctx.body.get(&field.name)) {
            let id = match item {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if !id.is_empty() && !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Ok(Resolved::null());
        }
        let table = quote_ident(&target.name);
        let join_on_ids = |alias: &str| {
            let mut s = Sql::text(format!("LEFT JOIN {table} {alias} ON {alias}.\"id\" IN ("));
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    s.push(", ");
                }
                s.push_internal(SqlValue::Text(id.clone()));
            }
            s.push(")");
            s
        };
        let key = format!("{}@body:{}", scope.key_prefix, field.name);
        let joined = self.join(&key, Some(target), !scope.allow_hidden, join_on_ids)?;
        let mm_alias = self.fresh_alias();
        let mut w = Walk::new(target, &joined, &key, scope.allow_hidden);
        w.mm_joins = Sql::wrap(" ", &join_on_ids(&mm_alias), "");
        w.guard_chain(target, &mm_alias);
        w.mm_alias = mm_alias;
        w.multi = field.is_multiple();
        w.nullify = true;
        self.walk(w, rest, modifier)
    }

    /// `@request.auth.*`: the plain keys from the auth record, anything else through a join
    /// on the auth collection (so `@request.auth.team.name` works). NULL for guests.
    fn auth(&mut self, scope: &Scope<'a>, path: &Path) -> Result<Resolved, QueryError> {
        let Some(auth) = self.ctx.auth.as_ref() else {
            return Ok(Resolved::null());
        };
        if let [key] = path.segments.as_slice() {
            if PLAIN_AUTH_FIELDS.contains(&key.as_str()) {
                let value = match key.as_str() {
                    "collectionId" => Some(Value::String(auth.collection_id.clone())),
                    "collectionName" => Some(Value::String(auth.collection_name.clone())),
                    _ => auth.record.get(key).cloned(),
                };
                return static_value(value.as_ref(), path.modifier, false, RequestSource::Auth);
            }
        }
        let Some(collection) = self.lookup(&auth.collection_id).or_else(|| self.lookup(&auth.collection_name)) else {
            return Ok(Resolved::null());
        };
        let table = quote_ident(&collection.name);
        let id = auth.id().to_owned();
        let join_on_id = |alias: &str| {
            let mut s = Sql::text(format!("LEFT JOIN {table} {alias} ON {alias}.\"id\" = "));
            s.push_internal(SqlValue::Text(id.clone()));
            s
        };
        let key = format!("{}@auth", scope.key_prefix);
        // The auth record's own fields are visible to rules, hidden ones included.
        let joined = self.join(&key, Some(collection), false, join_on_id)?;
        let mm_alias = self.fresh_alias();
        let mut w = Walk::new(collection, &joined, &key, true);
        w.restrict_after_hop = !scope.allow_hidden;
        w.mm_joins = Sql::wrap(" ", &join_on_id(&mm_alias), "");
        w.mm_alias = mm_alias;
        w.nullify = true;
        self.walk(w, &path.segments, path.modifier)
    }

    fn call(&mut self, scope: &Scope<'a>, call: &Call) -> Result<Resolved, QueryError> {
        match call.function {
            Function::GeoDistance => {
                // Like SQLite's own functions, geoDistance applies no match-all: one matching
                // related value is enough.
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.operand(scope, arg)?.sql);
                }
                let [lon_a, lat_a, lon_b, lat_b] = args.as_slice() else {
                    return Err(QueryError::Unsupported("geoDistance() takes exactly 4 arguments".to_owned()));
                };
                let rad = |s: &Sql| Sql::wrap("radians(", s, ")");
                let half_delta = |a: &Sql, b: &Sql| {
                    let mut s = Sql::text("pow(sin((");
                    s.append(&rad(b)).push(" - ").append(&rad(a)).push(") / 2), 2)");
                    s
                };
                // Haversine; min(1, …) guards asin against rounding just above 1.
                let mut sql = Sql::text(format!("({} * asin(min(1, sqrt(", 2.0 * EARTH_RADIUS_KM));
                sql.append(&half_delta(lat_a, lat_b));
                sql.push(" + cos(").append(&rad(lat_a)).push(") * cos(").append(&rad(lat_b)).push(") * ");
                sql.append(&half_delta(lon_a, lon_b));
                sql.push("))))");
                Ok(Resolved { sql, shape: Shape::Expr, fallback: Fallback::Disabled, multi: None, guards: Vec::new() })
            }
            Function::Strftime => {
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.operand(scope, arg)?);
                }
                let strftime = |time_value: Option<&Sql>| {
                    let mut parts: Vec<Sql> = args.iter().map(|a| a.sql.clone()).collect();
                    if let (Some(tv), Some(slot)) = (time_value, parts.get_mut(1)) {
                        *slot = tv.clone();
                    }
                    Sql::wrap("strftime(", &Sql::join(&parts, ", "), ")")
                };
                let multi = args.get(1).and_then(|tv| tv.multi.clone()).map(|m| Multi { value: strftime(Some(&m.value)), ..m });
                // A NULL result (bad time value) must compare like '' — never "known non-empty".
                Ok(Resolved { sql: strftime(None), shape: Shape::Expr, fallback: Fallback::Enforced, multi, guards: Vec::new() })
            }
        }
    }
}

/// PocketBase casts a static request string to a number when the last key of its path names
/// a number field of the base collection (multipart and query values are always text).
fn names_number_field(base: &Collection, segments: &[String]) -> bool {
    segments.last().and_then(|last| base.field(last)).is_some_and(|f| matches!(f.kind, FieldKind::Number(_)))
}

/// A static `@request.*` value (query, headers, body keys, plain auth keys) with its modifier.
fn static_value(found: Option<&Value>, modifier: Option<Modifier>, number_field: bool, source: RequestSource) -> Result<Resolved, QueryError> {
    match modifier {
        Some(Modifier::Isset) => return Ok(Resolved::constant(found.is_some())),
        Some(Modifier::Changed) => {
            return Err(QueryError::InvalidModifier { modifier: "changed", target: format!("@request.{}", source.name()) })
        }
        _ => {}
    }
    let value = match found {
        None | Some(Value::Null) => return Ok(Resolved::null()),
        Some(v) => Resolved::value(json_to_sql(v, number_field)),
    };
    // `:each`/`:length` on a static value that is not a collection field are ignored.
    Ok(if modifier == Some(Modifier::Lower) { value.lower() } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_index_detection() {
        let idx = |s: &str| vec![s.to_owned()];
        assert!(has_single_column_unique_index(&idx("CREATE UNIQUE INDEX idx_x ON p (`user`)"), "user"));
        assert!(has_single_column_unique_index(&idx("create  unique index \"i\" on \"p\" (\"user\" DESC) WHERE x != ''"), "user"));
        assert!(has_single_column_unique_index(&idx("CREATE UNIQUE INDEX i ON p ([user] collate nocase)"), "USER"));
        assert!(!has_single_column_unique_index(&idx("CREATE INDEX i ON p (user)"), "user"));
        assert!(!has_single_column_unique_index(&idx("CREATE UNIQUE INDEX i ON p (user, other)"), "user"));
        assert!(!has_single_column_unique_index(&idx("CREATE UNIQUE INDEX i ON p (lower(user)"), "user"));
        assert!(!has_single_column_unique_index(&idx("garbage ("), "user"));
    }

    #[test]
    fn json_paths() {
        assert_eq!(json_path(&["a".into(), "0".into(), "b".into()]), "$.a[0].b");
        assert_eq!(json_path(&["0".into()]), "$[0]");
        assert_eq!(json_path(&[]), "$");
        assert_eq!(json_path(&["99999999999999999999999".into()]), "$.99999999999999999999999");
    }
}
