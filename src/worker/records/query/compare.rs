//! Operators to SQL: PocketBase's `=`/`!=` normalisation of NULL and empty text, LIKE with
//! automatic `%…%` wrapping and escaping, the ordering operators, and the match-all
//! `NOT EXISTS` check for multi-valued operands (skipped by the `?` any-of operators). It owns
//! comparison shapes only; what an operand *is* comes from [`super::resolve`].

use crate::worker::records::filter::{Op, OpKind};

use super::resolve::{Fallback, Multi, Resolved, Shape};
use super::sql::{Sql, SqlValue};
use super::{JoinSet, QueryBuilder, QueryError};

/// The column every match-all subquery selects.
const MULTI_VALUE_COLUMN: &str = "__mv";

/// True when PocketBase treats the operand as empty: the NULL literal, or a single bound value
/// that is NULL or ''.
fn is_empty(o: &Resolved) -> bool {
    o.shape == Shape::Null || (o.fallback == Fallback::Auto && o.sql.value_count() == 1 && o.sql.has_empty_value())
}

/// True when the operand cannot be NULL or '': 1/0 constants and non-empty bound values.
fn is_known_non_empty(o: &Resolved) -> bool {
    o.fallback != Fallback::Enforced
        && (o.shape == Shape::Const || (o.sql.value_count() > 0 && !o.sql.has_empty_value() && o.shape != Shape::Null))
}

fn binary(left: &Sql, op: &str, right: &Sql) -> Sql {
    let mut s = left.clone();
    s.push(op).append(right);
    s
}

/// Whether `text` has a `%` not preceded by an escaping backslash (PocketBase's check for
/// "the user wrote their own pattern").
fn contains_unescaped(text: &str, ch: char) -> bool {
    let mut prev = '\0';
    for c in text.chars() {
        if c == ch && prev != '\\' {
            return true;
        }
        // A doubled backslash escapes itself, not the next character.
        prev = if c == '\\' && prev == '\\' { '\0' } else { c };
    }
    false
}

/// Escapes `\`, `%` and `_` for `LIKE … ESCAPE '\'`, keeping pairs the user already escaped.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('\\' | '%' | '_')) => {
                    out.push('\\');
                    out.push(next);
                    chars.next();
                }
                _ => out.push_str("\\\\"),
            },
            '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    out
}

/// The LIKE pattern for a value: "contains" (`%…%`, escaped) unless the value carries its
/// own unescaped `%`, in which case it is the pattern as written.
pub(super) fn like_pattern(value: &str) -> String {
    if contains_unescaped(value, '%') {
        value.to_owned()
    } else {
        format!("%{}%", escape_like(value))
    }
}

impl<'a> QueryBuilder<'a> {
    /// One comparison, with the match-all check and the operands' guards.
    pub(super) fn compare(&mut self, l: &Resolved, op: Op, r: &Resolved) -> Result<Sql, QueryError> {
        let mut out = Self::plain(l, op.kind, r);
        if !op.any {
            let all = match (&l.multi, &r.multi) {
                (Some(lm), Some(rm)) => Some(self.many_vs_many(l, lm, op.kind, r, rm)?),
                (Some(lm), None) => Some(self.many_vs_one(l, lm, op.kind, r, false)?),
                (None, Some(rm)) => Some(self.many_vs_one(r, rm, op.kind, l, true)?),
                (None, None) => None,
            };
            if let Some(all) = all {
                let mut s = Sql::wrap("((", &out, ") AND (");
                s.append(&all).push("))");
                out = s;
            }
        }
        for guard in l.guards.iter().chain(&r.guards) {
            let mut s = Sql::wrap("((", &out, ") AND ");
            s.append(guard).push(")");
            out = s;
        }
        Ok(out)
    }

    /// The comparison itself, without multi-value or guard handling.
    fn plain(l: &Resolved, kind: OpKind, r: &Resolved) -> Sql {
        match kind {
            OpKind::Eq => Self::equal(true, l, r),
            OpKind::Neq => Self::equal(false, l, r),
            OpKind::Like => Self::like(l, r, false),
            OpKind::NotLike => Self::like(l, r, true),
            OpKind::Gt => binary(&l.sql, " > ", &r.sql),
            OpKind::Gte => binary(&l.sql, " >= ", &r.sql),
            OpKind::Lt => binary(&l.sql, " < ", &r.sql),
            OpKind::Lte => binary(&l.sql, " <= ", &r.sql),
        }
    }

    /// `=` / `!=` with PocketBase's normalisation: empty text and NULL are the same, `!=`
    /// uses `IS NOT` so a NULL column still differs from a value, and a known non-empty side
    /// allows a direct (index-friendly) comparison.
    pub(super) fn equal(equal: bool, l: &Resolved, r: &Resolved) -> Sql {
        let (op, join, null_test) = if equal { (" = ", " OR ", " IS NULL") } else { (" IS NOT ", " AND ", " IS NOT NULL") };
        if l.fallback == Fallback::Disabled || r.fallback == Fallback::Disabled {
            return binary(&l.sql, if equal { " IS " } else { " IS NOT " }, &r.sql);
        }
        let empty = Sql::text("''");
        let (l_empty, r_empty) = (is_empty(l), is_empty(r));
        if l_empty && r_empty {
            return binary(&empty, op, &empty);
        }
        if is_known_non_empty(l) || is_known_non_empty(r) {
            let left = if l_empty { &empty } else { &l.sql };
            let right = if r_empty { &empty } else { &r.sql };
            return binary(left, op, right);
        }
        let empty_or_null = |side: &Sql, empty_left: bool| {
            let mut s = Sql::text("(");
            if empty_left {
                s.push("''").push(op).append(side);
            } else {
                s.append(side).push(op).push("''");
            }
            s.push(join).append(side).push(null_test).push(")");
            s
        };
        if l_empty {
            return empty_or_null(&r.sql, true);
        }
        if r_empty {
            return empty_or_null(&l.sql, false);
        }
        let mut s = Sql::wrap("COALESCE(", &l.sql, ", '')");
        s.push(op).push("COALESCE(").append(&r.sql).push(", '')");
        s
    }

    /// `~` / `!~`. A column on the right means "contains that column's value".
    fn like(l: &Resolved, r: &Resolved, negated: bool) -> Sql {
        let keyword = if negated { " NOT LIKE " } else { " LIKE " };
        let mut s = l.sql.clone();
        s.push(keyword);
        if r.sql.value_count() == 0 {
            s.push("('%' || ").append(&r.sql).push(" || '%')");
        } else {
            s.append(&r.sql.map_values(|v| SqlValue::Text(like_pattern(&v.to_text()))));
        }
        s.push(" ESCAPE '\\'");
        s
    }

    /// `SELECT <value> AS __mv FROM (SELECT 1) <root> <joins> WHERE <guards>` — every value
    /// of a multi-valued operand for the current outer row (one NULL row when there is none)
    /// that the caller may read: chain rows of collections whose list rule rejects the caller,
    /// and emails their owners hid, are left out, exactly as the any-value half leaves them
    /// out through the main joins. The list rules' own joins go inside this subquery.
    fn every_value(&mut self, m: &Multi) -> Result<Sql, QueryError> {
        let root = self.fresh_alias();
        let mut s = Sql::wrap("SELECT ", &m.value, &format!(" AS {MULTI_VALUE_COLUMN} FROM (SELECT 1) AS {root}"));
        s.append(&m.joins);
        let mut conditions = m.conditions.clone();
        if !m.rules.is_empty() {
            let saved = self.local_joins.replace(JoinSet::default());
            let compiled = self.chain_rules(&m.rules);
            let local = std::mem::replace(&mut self.local_joins, saved).unwrap_or_default();
            conditions.extend(compiled?);
            for join in &local.rendered {
                s.push(" ").push(join.as_str());
            }
        }
        if !conditions.is_empty() {
            s.push(" WHERE ").append(&Sql::join(&conditions, " AND "));
        }
        Ok(s)
    }

    /// The list rules of a match-all chain, each `(alias.id = '' OR alias.id IS NULL) OR
    /// (rule)` over its chain alias (a missing record keeps its NULL row).
    fn chain_rules(&mut self, rules: &[(String, String)]) -> Result<Vec<Sql>, QueryError> {
        let mut out = Vec::with_capacity(rules.len());
        for (alias, collection_id) in rules {
            let (scope, expr) = self.rule_scope(alias, collection_id)?;
            let sql = self.expr(&scope, &expr)?;
            out.push(Sql::wrap("(", &sql, ")"));
        }
        Ok(out)
    }

    fn multi_value(alias: &str, like: &Resolved) -> Resolved {
        Resolved {
            sql: Sql::text(format!("{alias}.{MULTI_VALUE_COLUMN}")),
            shape: Shape::Expr,
            fallback: like.fallback,
            multi: None,
            guards: Vec::new(),
        }
    }

    /// Match-all against a single-valued operand: no value of `multi` may fail the comparison.
    fn many_vs_one(&mut self, many: &Resolved, m: &Multi, kind: OpKind, other: &Resolved, inverse: bool) -> Result<Sql, QueryError> {
        let alias = self.fresh_alias();
        let value = Self::multi_value(&alias, many);
        // The other side keeps its text and values but loses its own null-handling preference,
        // as in PocketBase.
        let other = Resolved { sql: other.sql.clone(), shape: other.shape, fallback: Fallback::Auto, multi: None, guards: Vec::new() };
        let condition = if inverse { Self::plain(&other, kind, &value) } else { Self::plain(&value, kind, &other) };
        let mut s = Sql::wrap("NOT EXISTS (SELECT 1 FROM (", &self.every_value(m)?, &format!(") {alias} WHERE NOT ("));
        s.append(&condition).push("))");
        Ok(s)
    }

    /// Match-all with both sides multi-valued: no pair of values may fail the comparison.
    fn many_vs_many(&mut self, l: &Resolved, lm: &Multi, kind: OpKind, r: &Resolved, rm: &Multi) -> Result<Sql, QueryError> {
        let (la, ra) = (self.fresh_alias(), self.fresh_alias());
        let condition = Self::plain(&Self::multi_value(&la, l), kind, &Self::multi_value(&ra, r));
        let mut s = Sql::wrap("NOT EXISTS (SELECT 1 FROM (", &self.every_value(lm)?, &format!(") {la} LEFT JOIN ("));
        s.append(&self.every_value(rm)?).push(format!(") {ra} ON 1 WHERE NOT ("));
        s.append(&condition).push("))");
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_follow_pocketbase() {
        assert_eq!(like_pattern("abc"), "%abc%");
        assert_eq!(like_pattern("a_b"), "%a\\_b%");
        assert_eq!(like_pattern("a__b"), "%a\\_\\_b%");
        assert_eq!(like_pattern("abc%"), "abc%", "an explicit wildcard is a raw pattern");
        assert_eq!(like_pattern("100\\%"), "%100\\%%", "an escaped % is literal and kept escaped");
        assert_eq!(like_pattern("a\\b"), "%a\\\\b%", "a lone backslash is escaped");
        assert_eq!(like_pattern("a\\\\%"), "a\\\\%", "after an escaped backslash the % is a wildcard");
        assert_eq!(like_pattern(""), "%%");
    }
}
