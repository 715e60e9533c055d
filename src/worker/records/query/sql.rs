//! SQL text under construction: [`SqlValue`] (a bound parameter) and [`Sql`], a fragment made of
//! trusted text pieces and parameter slots. It owns the one place where parameters become
//! `?NNN` placeholders. It must not accept request text as a text piece: everything that came
//! from a filter, a rule or a request travels as a [`SqlValue`] and only ever reaches SQLite
//! through `bind`.
//!
//! Placeholders are numbered (`?1`, `?2`, …) rather than positional, so fragments can be
//! rendered in any order (joins before the WHERE clause, ORDER BY last) and still bind
//! correctly: parameter `n` of [`super::Compiled::params`] is `?n+1`.


/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER` (since 3.32): the highest `?NNN` a statement
/// may use.
pub const MAX_BOUND_PARAMS: usize = 32_766;

pub use crate::worker::records::sql_value::SqlValue;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Trusted SQL text: keywords, generated aliases, identifiers quoted from the schema.
    Text(String),
    /// A value that came from the filter or the request (PocketBase binds these too); the
    /// comparison rules look at these (empty-value normalisation, LIKE wrapping).
    Value(SqlValue),
    /// A value we bind where PocketBase would inline text (JSON paths). Invisible to the
    /// comparison rules, so PocketBase's classification of the operand is unchanged.
    Internal(SqlValue),
}

/// A SQL fragment: text pieces and parameter slots, rendered by [`Sql::render`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    parts: Vec<Part>,
}

impl Sql {
    pub fn new() -> Sql {
        Sql::default()
    }

    /// A fragment of trusted text. Callers pass only constants, generated aliases and
    /// [`crate::worker::records::schema::quote_ident`] output.
    pub fn text(text: impl Into<String>) -> Sql {
        let mut s = Sql::new();
        s.push(text);
        s
    }

    /// A fragment that is one value slot.
    pub fn value(value: SqlValue) -> Sql {
        Sql { parts: vec![Part::Value(value)] }
    }

    /// Appends trusted text.
    pub fn push(&mut self, text: impl Into<String>) -> &mut Sql {
        let text = text.into();
        if let Some(Part::Text(last)) = self.parts.last_mut() {
            last.push_str(&text);
        } else if !text.is_empty() {
            self.parts.push(Part::Text(text));
        }
        self
    }

    /// Appends another fragment.
    pub fn append(&mut self, other: &Sql) -> &mut Sql {
        for part in &other.parts {
            match part {
                Part::Text(t) => {
                    self.push(t.as_str());
                }
                other => self.parts.push(other.clone()),
            }
        }
        self
    }

    /// Appends an internal value slot.
    pub fn push_internal(&mut self, value: SqlValue) -> &mut Sql {
        self.parts.push(Part::Internal(value));
        self
    }

    /// Builds `before || inner || after` in one go, the common wrapping shape.
    pub fn wrap(before: &str, inner: &Sql, after: &str) -> Sql {
        let mut s = Sql::text(before);
        s.append(inner);
        s.push(after);
        s
    }

    /// Joins fragments with a trusted separator.
    pub fn join<'a>(items: impl IntoIterator<Item = &'a Sql>, separator: &str) -> Sql {
        let mut s = Sql::new();
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                s.push(separator);
            }
            s.append(item);
        }
        s
    }

    /// How many value slots (not internal ones) the fragment has.
    pub fn value_count(&self) -> usize {
        self.parts.iter().filter(|p| matches!(p, Part::Value(_))).count()
    }

    /// Whether any value slot holds NULL or empty text.
    pub fn has_empty_value(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Value(v) if v.is_empty()))
    }

    /// The same fragment with every value slot replaced by `f(value)`.
    pub fn map_values(&self, f: impl Fn(&SqlValue) -> SqlValue) -> Sql {
        let parts = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Value(v) => Part::Value(f(v)),
                other => other.clone(),
            })
            .collect();
        Sql { parts }
    }

    /// Writes the fragment, turning each slot into `?N` and pushing its value onto `params`.
    /// Fails only when the statement would need more parameters than SQLite accepts.
    pub fn render(&self, params: &mut Vec<SqlValue>) -> Result<String, super::QueryError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(v) | Part::Internal(v) => {
                    if params.len() >= MAX_BOUND_PARAMS {
                        return Err(super::QueryError::TooManyParams { max: MAX_BOUND_PARAMS });
                    }
                    params.push(v.clone());
                    out.push('?');
                    out.push_str(&params.len().to_string());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_numbers_placeholders_from_the_existing_count() {
        let mut s = Sql::text("a = ");
        s.append(&Sql::value(SqlValue::Text("x".into())));
        s.push(" AND b = ");
        s.push_internal(SqlValue::Integer(2));
        let mut params = vec![SqlValue::Null];
        assert_eq!(s.render(&mut params).expect("render"), "a = ?2 AND b = ?3");
        assert_eq!(params, vec![SqlValue::Null, SqlValue::Text("x".into()), SqlValue::Integer(2)]);
        assert_eq!(s.value_count(), 1, "internal slots are not values");
    }

    #[test]
    fn values_convert_like_go_cast() {
        assert_eq!(SqlValue::Real(5.0).to_text(), "5");
        assert_eq!(SqlValue::Real(0.5).to_text(), "0.5");
        assert_eq!(SqlValue::Null.to_text(), "");
        assert!(SqlValue::Text(String::new()).is_empty());
        assert!(!SqlValue::Integer(0).is_empty());
    }
}
