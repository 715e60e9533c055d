//! Request parsing shared by handlers: query parameters, JSON bodies, and PocketBase's list
//! parameters (`page`, `perPage`, `sort`, `filter`, `skipTotal`) with its defaults and caps.

use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::body::collect_limited;
use super::error::ApiError;

/// `perPage` when absent or ≤ 0.
pub const DEFAULT_PER_PAGE: u32 = 30;
/// Largest `perPage`; larger values are capped, not refused (PocketBase).
pub const MAX_PER_PAGE: u32 = 1000;

/// Decoded query parameters; PocketBase keeps only the first value of each name.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The list parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub page: u32,
    pub per_page: u32,
    pub sort: String,
    pub filter: String,
    pub skip_total: bool,
}

impl ListParams {
    pub fn from_query(q: &Query) -> Result<ListParams, ApiError> {
        let number = |name: &str, default: u32| -> Result<u32, ApiError> {
            match q.get(name).map(str::trim) {
                None | Some("") => Ok(default),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if n <= 0 => Ok(default),
                    Ok(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
                    Err(_) => Err(ApiError::bad_request("")),
                },
            }
        };
        Ok(ListParams {
            page: number("page", 1)?,
            per_page: number("perPage", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
            sort: q.get("sort").unwrap_or_default().to_owned(),
            filter: q.get("filter").unwrap_or_default().to_owned(),
            skip_total: matches!(q.get("skipTotal"), Some("1" | "true" | "t")),
        })
    }

    /// Rows to skip for this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

/// Writes the list envelope around already-serialised items.
pub fn list_envelope(params: &ListParams, total: Option<u64>, items: &[u8]) -> Vec<u8> {
    let (total_items, total_pages) = match total {
        Some(t) => (t as i64, t.div_ceil(u64::from(params.per_page.max(1))) as i64),
        None => (-1, -1),
    };
    let mut out = Vec::with_capacity(items.len() + 96);
    out.extend_from_slice(
        format!(
            "{{\"page\":{},\"perPage\":{},\"totalItems\":{},\"totalPages\":{},\"items\":",
            params.page, params.per_page, total_items, total_pages
        )
        .as_bytes(),
    );
    out.extend_from_slice(items);
    out.push(b'}');
    out
}

/// Reads a JSON object body. An empty body is `{}`; anything else that is not a JSON object
/// is a 400 with `bad_format` (PocketBase words it per endpoint).
pub async fn json_object(body: Incoming, limit: usize, bad_format: &str) -> Result<Map<String, Value>, ApiError> {
    let bytes = collect_limited(body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request(bad_format)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_params_follow_pocketbase() {
        let p = ListParams::from_query(&Query::parse(None)).expect("defaults");
        assert_eq!((p.page, p.per_page, p.skip_total), (1, 30, false));
        let p = ListParams::from_query(&Query::parse(Some("page=0&perPage=5000&skipTotal=1&sort=-a&filter=a%3D1"))).expect("ok");
        assert_eq!((p.page, p.per_page, p.skip_total), (1, 1000, true));
        assert_eq!(p.filter, "a=1");
        assert_eq!(p.sort, "-a");
        assert!(ListParams::from_query(&Query::parse(Some("page=abc"))).is_err());
        let p = ListParams::from_query(&Query::parse(Some("page=3&perPage=-2"))).expect("ok");
        assert_eq!((p.page, p.per_page, p.offset()), (3, 30, 60));
    }

    #[test]
    fn first_value_wins() {
        let q = Query::parse(Some("a=1&a=2&b=x+y"));
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y"));
    }

    #[test]
    fn envelope() {
        let p = ListParams { page: 2, per_page: 10, sort: String::new(), filter: String::new(), skip_total: false };
        let out = list_envelope(&p, Some(25), b"[]");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v, serde_json::json!({"page":2,"perPage":10,"totalItems":25,"totalPages":3,"items":[]}));
        let v: Value = serde_json::from_slice(&list_envelope(&p, None, b"[1]")).expect("json");
        assert_eq!(v["totalItems"], -1);
        assert_eq!(v["totalPages"], -1);
    }
}
