//! Subscription topics as PocketBase spells them — `collection`, `collection/*`,
//! `collection/recordId`, each optionally followed by `?options=<JSON {query, headers}>` —
//! parsed once when a client subscribes. It owns the parsing and the matching of a topic
//! against a record change; it must not evaluate rules or touch the database.

use std::collections::HashMap;

use serde_json::Value;

use crate::worker::records::crud::{RuleKind, Shape};
use crate::worker::records::expand::ExpandTree;
use crate::worker::records::fields::Projection;

/// Most subscriptions one client may hold (PocketBase's limit per POST).
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// Longest subscription string, in characters (PocketBase's limit).
pub const MAX_TOPIC_CHARS: usize = 2500;
/// Most distinct `?options=` one client may use across its subscriptions. Subscribers are
/// grouped by options to check rules and render once, so each distinct set is a rule check
/// and a render per matching change: without a cap one client could cost a thousand of them
/// per change.
pub const MAX_OPTION_SETS_PER_CLIENT: usize = 100;

/// How many distinct option sets (the text after `?`, when any) `topics` use.
pub fn option_sets<'a>(topics: impl IntoIterator<Item = &'a str>) -> usize {
    let mut seen = std::collections::HashSet::new();
    for t in topics {
        if let Some((_, qs)) = t.split_once('?') {
            if !qs.is_empty() {
                seen.insert(qs);
            }
        }
    }
    seen.len()
}

/// What a subscription's options say: `@request.query.*` / `@request.headers.*` for its rule
/// checks, and the `filter`, `expand` and `fields` of its payloads.
#[derive(Debug, Clone, Default)]
pub struct SubOptions {
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    /// The client filter, empty when none.
    pub filter: String,
    /// `None` when `fields` did not parse: such a subscription is never sent anything, as
    /// PocketBase's failed serialisation sends nothing.
    pub shape: Option<Shape>,
}

/// One parsed subscription.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Exactly as the client sent it: the SSE event name and the WS `topic`.
    pub raw: String,
    /// The collection name or id before `/` (any free-form topic also lands here, and then
    /// simply never matches a record change).
    pub collection: String,
    /// `None` for a collection-wide topic (`c`, `c/*`), else the record id.
    pub record: Option<String>,
    /// The raw options text (`?…` part), the key that groups subscribers with equal options.
    pub options_key: String,
    pub options: std::sync::Arc<SubOptions>,
}

impl Topic {
    /// Parses a subscription string; never fails (PocketBase accepts any string).
    pub fn parse(raw: &str) -> Topic {
        let (base, qs) = match raw.split_once('?') {
            Some((b, q)) => (b, q),
            None => (raw, ""),
        };
        let (collection, record) = match base.split_once('/') {
            Some((c, "*")) => (c, None),
            Some((c, id)) => (c, Some(id.to_owned())),
            None => (base, None),
        };
        Topic {
            raw: raw.to_owned(),
            collection: collection.to_owned(),
            record,
            options_key: qs.to_owned(),
            options: std::sync::Arc::new(parse_options(qs)),
        }
    }

    /// Which rule this topic's events are held to.
    pub fn rule_kind(&self) -> RuleKind {
        if self.record.is_some() {
            RuleKind::View
        } else {
            RuleKind::List
        }
    }

    /// Whether a change to record `record_id` of the collection (`name`, `id`) belongs here.
    pub fn matches(&self, name: &str, id: &str, record_id: &str) -> bool {
        (self.collection == name || self.collection == id) && self.record.as_deref().is_none_or(|r| r == record_id)
    }
}

/// `options=<JSON>` from the query string. Unparsable options count as none, as PocketBase
/// ignores them.
fn parse_options(qs: &str) -> SubOptions {
    let mut out = SubOptions::default();
    let raw = form_urlencoded::parse(qs.as_bytes()).find(|(k, _)| k == "options").map(|(_, v)| v.into_owned());
    if let Some(Ok(Value::Object(map))) = raw.as_deref().map(serde_json::from_str::<Value>) {
        if let Some(Value::Object(q)) = map.get("query") {
            out.query = q.iter().map(|(k, v)| (k.clone(), text_of(v))).collect();
        }
        if let Some(Value::Object(h)) = map.get("headers") {
            // As `@request.headers.*` sees request headers: lower-case, `-` → `_`.
            out.headers = h.iter().map(|(k, v)| (k.to_ascii_lowercase().replace('-', "_"), text_of(v))).collect();
        }
    }
    out.filter = out.query.get("filter").cloned().unwrap_or_default();
    let fields = out.query.get("fields").map(String::as_str).unwrap_or_default();
    let expand = out.query.get("expand").map(String::as_str).unwrap_or_default();
    out.shape = Projection::parse(fields).ok().map(|fields| Shape { expand: ExpandTree::parse(expand), fields });
    out
}

/// Option values are strings to the rules (the SDK sends them so; anything else is coerced).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_record_and_legacy_forms() {
        let all = Topic::parse("posts/*");
        assert_eq!((all.collection.as_str(), all.record.as_deref()), ("posts", None));
        assert!(all.matches("posts", "pbc_1", "abc"));
        assert_eq!(all.rule_kind(), RuleKind::List);
        let legacy = Topic::parse("pbc_1");
        assert!(legacy.matches("posts", "pbc_1", "abc"));
        let one = Topic::parse("posts/abc");
        assert!(one.matches("posts", "pbc_1", "abc"));
        assert!(!one.matches("posts", "pbc_1", "abd"));
        assert_eq!(one.rule_kind(), RuleKind::View);
        assert!(!Topic::parse("@oauth2").matches("posts", "pbc_1", "abc"));
    }

    #[test]
    fn options_become_query_headers_filter_and_shape() {
        let opts = r#"{"query":{"filter":"n > 1","expand":"author","fields":"id,n","page":2},"headers":{"X-Token":"t"}}"#;
        let raw = format!("posts/*?options={}", form_urlencoded::byte_serialize(opts.as_bytes()).collect::<String>());
        let t = Topic::parse(&raw);
        assert_eq!(t.raw, raw);
        assert!(t.matches("posts", "x", "y"));
        assert_eq!(t.options.filter, "n > 1");
        assert_eq!(t.options.query.get("page").map(String::as_str), Some("2"));
        assert_eq!(t.options.headers.get("x_token").map(String::as_str), Some("t"));
        let shape = t.options.shape.as_ref().expect("fields parse");
        assert!(!shape.expand.is_empty());
    }

    #[test]
    fn bad_fields_leave_no_shape() {
        let opts = r#"{"query":{"fields":"id:excerpt("}}"#;
        let raw = format!("posts?options={}", form_urlencoded::byte_serialize(opts.as_bytes()).collect::<String>());
        assert!(Topic::parse(&raw).options.shape.is_none());
    }
}
