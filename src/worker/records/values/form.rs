//! Form bodies (`multipart/form-data` and `application/x-www-form-urlencoded`) as the JSON
//! object PocketBase makes of them: each text value type-inferred ([`form_value`]), repeated
//! keys gathered into arrays, and `@jsonPayload` values unmarshalled on top without inference.
//!
//! Takes already-decoded text pairs: splitting the body, percent-decoding and rejecting invalid
//! UTF-8 belong to the HTTP layer. File parts are not values and never reach this module.

use serde_json::{Map, Value};

/// The multipart key whose value is serialised JSON merged over the other values.
pub const JSON_PAYLOAD_KEY: &str = "@jsonPayload";

/// Why a form body cannot become a record body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    /// `@jsonPayload` is not valid JSON (or nests deeper than serde_json's recursion limit).
    #[error("invalid @jsonPayload: {0}")]
    InvalidJsonPayload(String),
    /// `@jsonPayload` is valid JSON but not an object, so it has no keys to merge.
    #[error("@jsonPayload must be a JSON object")]
    JsonPayloadNotObject,
}

/// PocketBase's inference for one form value: `"true"`/`"false"` become booleans; a string of
/// digits, `-` and `.` becomes a number only when the number's shortest decimal form is the same
/// text (so `"0001"`, `"1e3"`, `"0.0"`, `"1."` and out-of-range values stay strings); everything
/// else, `""` included, stays a string.
pub fn form_value(text: &str) -> Value {
    match text {
        "" => Value::String(String::new()),
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => infer_number(text).unwrap_or_else(|| Value::String(text.to_owned())),
    }
}

fn infer_number(text: &str) -> Option<Value> {
    let first = *text.as_bytes().first()?;
    if !(first == b'-' || first.is_ascii_digit()) {
        return None;
    }
    if !text.bytes().all(|b| b == b'-' || b == b'.' || b.is_ascii_digit()) {
        return None;
    }
    let f: f64 = text.parse().ok()?;
    // Rust's Display prints the shortest round-trip digits without an exponent, which is Go's
    // FormatFloat(f, 'f', -1, 64); infinities print as "inf" and never match.
    if !f.is_finite() || super::format_float(f) != text {
        return None;
    }
    if f == 0.0 && f.is_sign_negative() {
        // "-0" round-trips in Go as a float; JSON integers have no negative zero.
        return serde_json::Number::from_f64(f).map(Value::Number);
    }
    Some(super::number_value(f))
}

/// Builds the body object from decoded form pairs, in body order. A key seen once maps to its
/// inferred value; a repeated key maps to the array of its inferred values. Every
/// `@jsonPayload` value (in order) is then parsed and its top-level keys replace those before.
pub fn decode_form<I, K, V>(pairs: I) -> Result<Map<String, Value>, FormError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut payloads: Vec<String> = Vec::new();
    for (k, v) in pairs {
        let (k, v) = (k.as_ref(), v.as_ref());
        if k == JSON_PAYLOAD_KEY {
            payloads.push(v.to_owned());
            continue;
        }
        match index.get(k) {
            Some(&i) => {
                if let Some(slot) = grouped.get_mut(i) {
                    slot.1.push(v.to_owned());
                }
            }
            None => {
                index.insert(k.to_owned(), grouped.len());
                grouped.push((k.to_owned(), vec![v.to_owned()]));
            }
        }
    }
    let mut out = Map::new();
    for (k, values) in grouped {
        let value = if values.len() == 1 {
            values.first().map(|v| form_value(v)).unwrap_or(Value::Null)
        } else {
            Value::Array(values.iter().map(|v| form_value(v)).collect())
        };
        out.insert(k, value);
    }
    for payload in payloads {
        match serde_json::from_str::<Value>(&payload) {
            Ok(Value::Object(obj)) => out.extend(obj),
            // Go's json.Unmarshal of `null` into a map leaves it as it was.
            Ok(Value::Null) => {}
            Ok(_) => return Err(FormError::JsonPayloadNotObject),
            Err(e) => return Err(FormError::InvalidJsonPayload(e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_table() {
        let nines = "9".repeat(400);
        let cases: Vec<(&str, Value)> = vec![
            ("", json!("")),
            ("true", json!(true)),
            ("false", json!(false)),
            ("True", json!("True")),
            ("TRUE", json!("TRUE")),
            ("1", json!(1)),
            ("-1", json!(-1)),
            ("0", json!(0)),
            ("12.5", json!(12.5)),
            ("-0.25", json!(-0.25)),
            ("0001", json!("0001")),
            ("1e3", json!("1e3")),
            ("0.0", json!("0.0")),
            ("1.", json!("1.")),
            (".5", json!(".5")),
            ("-.5", json!("-.5")),
            ("1.50", json!("1.50")),
            ("--1", json!("--1")),
            ("1-2", json!("1-2")),
            ("+1", json!("+1")),
            ("abc", json!("abc")),
            (" 1", json!(" 1")),
            ("NaN", json!("NaN")),
            ("Infinity", json!("Infinity")),
            ("9007199254740993", json!("9007199254740993")),
            ("123456789012345", json!(123456789012345_i64)),
            ("100000000000000000000", json!(100000000000000000000.0)),
            (nines.as_str(), json!(nines)),
            ("null", json!("null")),
            ("[1,2]", json!("[1,2]")),
        ];
        for (text, want) in cases {
            assert_eq!(form_value(text), want, "{text:?}");
        }
        let neg_zero = form_value("-0");
        assert!(neg_zero.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()), "{neg_zero}");
    }

    #[test]
    fn repeated_keys_become_arrays_and_payload_merges_on_top() {
        let pairs = [
            ("title", "hello"),
            ("tags", "a"),
            ("n", "5"),
            ("tags", "1"),
            ("@jsonPayload", r#"{"meta":{"x":"1"},"n":"007"}"#),
            ("tags", "true"),
        ];
        let body = decode_form(pairs).expect("decode");
        assert_eq!(
            Value::Object(body),
            json!({"title": "hello", "tags": ["a", 1, true], "n": "007", "meta": {"x": "1"}})
        );
    }

    #[test]
    fn several_payloads_apply_in_order() {
        let body = decode_form([("@jsonPayload", r#"{"a":1,"b":1}"#), ("@jsonPayload", r#"{"b":2}"#), ("@jsonPayload", "null")])
            .expect("decode");
        assert_eq!(Value::Object(body), json!({"a": 1, "b": 2}));
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        assert!(matches!(decode_form([("@jsonPayload", "{")]), Err(FormError::InvalidJsonPayload(_))));
        assert_eq!(decode_form([("@jsonPayload", "[1]")]), Err(FormError::JsonPayloadNotObject));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(decode_form([("@jsonPayload", deep.as_str())]), Err(FormError::InvalidJsonPayload(_))));
        assert_eq!(decode_form(Vec::<(String, String)>::new()), Ok(Map::new()));
    }
}
