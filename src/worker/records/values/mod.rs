//! Record values on the write and read paths: turning a request body into field values and
//! field values into SQL parameters, and SQL rows into PocketBase's record JSON.
//!
//! The pipeline, in order: [`form::decode_form`] (multipart / urlencoded text pairs → a JSON
//! object, PocketBase's value inference and `@jsonPayload`), [`modifiers::resolve_input`]
//! (`field+`, `+field`, `field-`, `field:autogenerate` against the stored record, and which keys
//! a caller may set at all), [`validate::validate_record`] (per-field checks with PocketBase's
//! error codes, normalisation to storage values), and on the way out
//! [`output::write_record_json`] (row → JSON bytes, no `serde_json::Value` tree).
//!
//! Pure domain code: no hyper, no database connection of its own (the output writer reads a
//! `rusqlite::Row` it is handed), no password hashing (plain passwords are handed back for the
//! caller to hash) and no existence checks of related records (their ids are handed back).
//!
//! Where PocketBase silently coerces garbage (an array into a text field, `"abc"` into a
//! number, an unparsable date), vaultbase rejects it with the closest PocketBase error code
//! instead of storing a zero value: every input PocketBase accepts meaningfully is accepted
//! alike, and no request loses data without being told.

pub mod autogen;
pub mod checks;
pub mod datetime;
pub mod form;
pub mod modifiers;
pub mod output;
pub mod validate;

pub use form::{decode_form, form_value, FormError};
pub use modifiers::resolve_input;
pub use output::{
    column_count, column_index, read_record_map, relation_ids, select_columns, write_json_value, write_record_json, write_record_open, OutputOptions,
    RecordPlan,
};
pub use validate::{check_record, unchecked_record, validate_record, PasswordInput, Rejected, RelationRefs, Validated, WriteOptions};

use serde_json::Value;

/// Who is writing: decides which keys of a body count (PocketBase's form access levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A guest or an ordinary user: hidden fields are dropped, `email`/`verified` of auth
    /// records are fixed, a password change needs `oldPassword`.
    Default,
    /// Passes the auth collection's `manageRule`: may set `email`, `verified` and `password`
    /// directly, but still cannot touch hidden fields.
    Manager,
    /// A superuser: everything, hidden fields included.
    Superuser,
}

impl Access {
    pub fn can_manage(self) -> bool {
        matches!(self, Access::Manager | Access::Superuser)
    }
}

/// Largest integer an f64 holds exactly (2^53); integral numbers within it are stored and
/// printed as integers, like Go prints a float64 without a fraction.
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A number as Go's `strconv.FormatFloat(f, 'f', -1, 64)` prints it: the shortest digits that
/// read back to the same f64, never in exponent form. Rust's `Display` for f64 is exactly that.
pub fn format_float(f: f64) -> String {
    format!("{f}")
}

/// `spf13/cast.ToString` for JSON scalars, which PocketBase applies to text-like input:
/// strings as they are, numbers in Go's shortest form, booleans as `true`/`false`, null as
/// empty. Arrays and objects have no text form: `None`.
pub fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_owned()),
        Value::Number(n) => Some(number_text(n)),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    n.as_f64().map(format_float).unwrap_or_default()
}

/// PocketBase's `list.ToUniqueStringSlice`: the value as a list of distinct non-empty strings,
/// first occurrence kept. A string holding a JSON array of strings (what multipart bodies and
/// stored columns carry) is unpacked; any other string is one element. Array elements that are
/// not scalars are dropped, as PocketBase's cast drops them.
pub fn to_string_list(v: &Value) -> Vec<String> {
    let raw: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => {
            if s.contains('[') {
                match serde_json::from_str::<Vec<String>>(s) {
                    Ok(list) => list,
                    Err(_) => vec![s.clone()],
                }
            } else {
                vec![s.clone()]
            }
        }
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::Array(_) | Value::Object(_) => None,
                other => scalar_to_string(other),
            })
            .collect(),
        Value::Bool(_) | Value::Number(_) => scalar_to_string(v).into_iter().collect(),
        Value::Object(_) => Vec::new(),
    };
    unique_non_empty(raw)
}

/// Drops empty strings and repeats, keeping the first occurrence's position.
pub fn unique_non_empty(list: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        if !s.is_empty() && seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// `cast.ToFloat64` as PocketBase uses it for number fields, minus the silent zero for
/// garbage: numbers as they are, booleans 1/0, null and `""` 0, numeric strings parsed.
/// `None` for anything else (including arrays and objects); the result may be non-finite
/// (`"Infinity"`), which validation rejects.
pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(0.0),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.is_empty() => Some(0.0),
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A number as a JSON value: integral values within ±2^53 become JSON integers (so they print
/// without `.0`), others floats; non-finite values, which JSON cannot carry, become the string
/// `"inf"`/`"NaN"` so that validation sees and rejects them.
pub fn number_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
        // `as` is exact here: the value is integral and within i64 range.
        return Value::from(f as i64);
    }
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None => Value::String(format_float(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_lists_follow_pocketbase_casting() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!(null), vec![]),
            (json!(""), vec![]),
            (json!("a"), vec!["a"]),
            (json!("[\"a\",\"b\",\"a\"]"), vec!["a", "b"]),
            (json!("[not json"), vec!["[not json"]),
            (json!(["a", "", "b", "a", 1, true, null, {"x": 1}, [2]]), vec!["a", "b", "1", "true"]),
            (json!(12.5), vec!["12.5"]),
            (json!({"a": 1}), vec![]),
        ];
        for (input, want) in cases {
            assert_eq!(to_string_list(&input), want, "{input}");
        }
    }

    #[test]
    fn numbers_cast_and_print_like_go() {
        assert_eq!(to_number(&json!("12.5")), Some(12.5));
        assert_eq!(to_number(&json!("")), Some(0.0));
        assert_eq!(to_number(&json!(true)), Some(1.0));
        assert_eq!(to_number(&json!("abc")), None);
        assert_eq!(to_number(&json!([1])), None);
        assert!(to_number(&json!("inf")).is_some_and(|f| f.is_infinite()));
        assert_eq!(number_value(3.0), json!(3));
        assert_eq!(number_value(-0.0), json!(0));
        assert_eq!(number_value(0.5), json!(0.5));
        assert_eq!(number_value(f64::INFINITY), json!("inf"));
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(scalar_to_string(&json!(1.0)), Some("1".into()));
        assert_eq!(scalar_to_string(&json!([1])), None);
    }
}
