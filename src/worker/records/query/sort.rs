//! PocketBase's `sort` parameter to an ORDER BY body: comma-separated fields, `-` for
//! descending, `@random` and `@rowid`. Relation paths become correlated scalar subqueries (not
//! joins), so the ORDER BY works with either WHERE form of [`super::Compiled`] and never
//! multiplies rows. For non-superusers a joined record the caller cannot list sorts as NULL,
//! and so does an `email` its owner hid. It must not accept anything that resolves to a bound value or NULL
//! (`@request.*`, literals): PocketBase calls those invalid sort fields.

use crate::worker::records::filter::Modifier;
use crate::worker::records::schema::{quote_ident, Collection, FieldKind};

use super::resolve::{email_visible, has_single_column_unique_index, is_guarded_email, json_extract, json_length, json_path};
use super::sql::Sql;
use super::{JoinSet, QueryBuilder, QueryError, Scope, MAX_NESTED_RELATIONS, MAX_SORT_FIELDS, MAX_SORT_FIELD_CHARS};

/// Splits `a.b.c[:modifier]` and checks its characters: the same identifier shape filters
/// accept for plain field paths.
fn parse_sort_path(name: &str) -> Result<(Vec<String>, Option<Modifier>), QueryError> {
    let invalid = || QueryError::InvalidSort(name.to_owned());
    let (path, modifier) = match name.split_once(':') {
        Some((path, m)) => (path, Some(Modifier::from_name(m).ok_or_else(invalid)?)),
        None => (name, None),
    };
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    let word = |s: &String| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !segments.iter().all(word) {
        return Err(invalid());
    }
    Ok((segments, modifier))
}

impl<'a> QueryBuilder<'a> {
    pub(super) fn sort_items(&mut self, scope: &Scope<'a>, sort: &str) -> Result<Vec<Sql>, QueryError> {
        let entries: Vec<&str> = sort.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.len() > MAX_SORT_FIELDS {
            return Err(QueryError::TooManySortFields { max: MAX_SORT_FIELDS });
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.chars().count() > MAX_SORT_FIELD_CHARS {
                return Err(QueryError::InvalidSort(entry.chars().take(MAX_SORT_FIELD_CHARS).collect()));
            }
            let (descending, name) = match entry.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, entry.strip_prefix('+').unwrap_or(entry)),
            };
            let direction = if descending { " DESC" } else { " ASC" };
            let item = match name {
                "@random" => Sql::text("RANDOM()"),
                "@rowid" => Sql::text(format!("{}._rowid_{direction}", scope.alias)),
                _ => {
                    let (segments, modifier) = parse_sort_path(name)?;
                    let mut value = self.sort_value(scope, scope.base, &scope.alias, &segments, modifier, 0, name)?;
                    value.push(direction);
                    value
                }
            };
            out.push(item);
        }
        Ok(out)
    }

    /// The sort expression of `segments` starting at `collection` aliased `alias`.
    #[allow(clippy::too_many_arguments)]
    fn sort_value(
        &mut self,
        scope: &Scope<'a>,
        collection: &'a Collection,
        alias: &str,
        segments: &[String],
        modifier: Option<Modifier>,
        depth: usize,
        name: &str,
    ) -> Result<Sql, QueryError> {
        let Some((first, rest)) = segments.split_first() else {
            return Err(QueryError::InvalidSort(name.to_owned()));
        };
        let field = collection.field(first);
        if let Some(f) = field {
            if f.hidden && !scope.allow_hidden {
                return Err(QueryError::HiddenField(first.clone()));
            }
            if f.encrypted {
                return Err(QueryError::EncryptedField(first.clone()));
            }
        }
        let col = Self::column(alias, first);
        if rest.is_empty() {
            let Some(f) = field else {
                return Err(QueryError::UnknownField(first.clone()));
            };
            let multi_valuer = matches!(f.kind, FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_));
            let value = match modifier {
                Some(Modifier::Isset | Modifier::Changed) => return Err(QueryError::InvalidSort(name.to_owned())),
                Some(Modifier::Each) if multi_valuer => {
                    return Err(QueryError::Unsupported(format!("sorting by {name:?}: :each has many values per record")))
                }
                Some(Modifier::Length) if multi_valuer => json_length(&col),
                _ if matches!(f.kind, FieldKind::Json(_)) => json_extract(&col, "$"),
                // A hidden email sorts as NULL for non-superusers, or the order would let a
                // client binary-search it (the filter's guard, as a value).
                _ if is_guarded_email(collection, first, scope.allow_hidden) => {
                    Sql::text(format!("(CASE WHEN {} THEN {col} END)", email_visible(alias)))
                }
                _ => Sql::text(col),
            };
            return Ok(lower_if(value, modifier));
        }
        if let Some(f) = field {
            if matches!(f.kind, FieldKind::Json(_) | FieldKind::GeoPoint(_)) {
                if matches!(modifier, Some(Modifier::Isset | Modifier::Changed)) {
                    return Err(QueryError::InvalidSort(name.to_owned()));
                }
                return Ok(lower_if(json_extract(&col, &json_path(rest)), modifier));
            }
        }
        if depth >= MAX_NESTED_RELATIONS {
            return Err(QueryError::TooManyRelations { path: name.to_owned(), max: MAX_NESTED_RELATIONS });
        }
        let unsupported = || QueryError::Unsupported(format!("sorting by {name:?}: the path has many values per record"));
        let (target, link) = match field {
            Some(f) => {
                let FieldKind::Relation(options) = &f.kind else {
                    return Err(QueryError::NotARelation(first.clone()));
                };
                if f.is_multiple() {
                    return Err(unsupported());
                }
                if rest.len() == 1 && rest.first().is_some_and(|s| s == "id") && modifier.is_none() {
                    return Ok(Sql::text(col));
                }
                let target = self.lookup(&options.collection_id).ok_or_else(|| QueryError::UnknownCollection(options.collection_id.clone()))?;
                (target, (String::from("id"), col))
            }
            None => {
                let (collection_name, field_name) = crate::worker::records::filter::Path::back_relation(first)
                    .ok_or_else(|| QueryError::UnknownField(first.clone()))?;
                let back = self.lookup(collection_name).ok_or_else(|| QueryError::UnknownCollection(collection_name.to_owned()))?;
                let Some(back_field) = back.field(field_name) else {
                    return Err(QueryError::InvalidBackRelation { segment: first.clone(), reason: "unknown relation field" });
                };
                match &back_field.kind {
                    FieldKind::Relation(o) if o.collection_id == collection.id => {}
                    _ => return Err(QueryError::InvalidBackRelation { segment: first.clone(), reason: "not a relation to this collection" }),
                }
                if back_field.hidden && !scope.allow_hidden {
                    return Err(QueryError::HiddenField(back_field.name.clone()));
                }
                if back_field.is_multiple() || !has_single_column_unique_index(&back.indexes, &back_field.name) {
                    return Err(unsupported());
                }
                (back, (back_field.name.clone(), Self::column(alias, "id")))
            }
        };
        let inner_alias = self.fresh_alias();
        let inner = self.sort_value(scope, target, &inner_alias, rest, modifier, depth + 1, name)?;
        self.sort_subquery(scope, target, &inner_alias, &inner, &link)
    }

    /// `(SELECT <inner> FROM <target> <alias> WHERE <alias>.<link> = <outer> [AND list rule]
    /// LIMIT 1)`. For client sorts the target's list rule is applied inside the subquery, so a
    /// record the requester may not list sorts as NULL instead of leaking its value.
    fn sort_subquery(
        &mut self,
        scope: &Scope<'a>,
        target: &'a Collection,
        alias: &str,
        inner: &Sql,
        link: &(String, String),
    ) -> Result<Sql, QueryError> {
        let mut rule = None;
        let mut rule_joins = Vec::new();
        if !scope.allow_hidden {
            match &target.list_rule {
                None => return Err(QueryError::CollectionLocked(target.name.clone())),
                Some(r) if r.is_empty() => {}
                Some(_) => {
                    let (rule_scope, expr) = self.rule_scope(alias, &target.id)?;
                    let saved = self.local_joins.replace(JoinSet::default());
                    let compiled = self.expr(&rule_scope, &expr);
                    let local = std::mem::replace(&mut self.local_joins, saved).unwrap_or_default();
                    rule = Some(compiled?);
                    rule_joins = local.rendered;
                }
            }
        }
        let (link_column, outer) = link;
        let mut s = Sql::wrap("(SELECT ", inner, &format!(" FROM {} {alias}", quote_ident(&target.name)));
        for join in &rule_joins {
            s.push(" ").push(join.as_str());
        }
        s.push(format!(" WHERE {} = {outer}", Self::column(alias, link_column)));
        if let Some(rule) = rule {
            s.push(" AND (").append(&rule).push(")");
        }
        s.push(" LIMIT 1)");
        Ok(s)
    }
}

fn lower_if(value: Sql, modifier: Option<Modifier>) -> Sql {
    if modifier == Some(Modifier::Lower) {
        Sql::wrap("LOWER(", &value, ")")
    } else {
        value
    }
}
