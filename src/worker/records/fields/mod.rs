//! `?fields=`: PocketBase's response projection (`id,title,expand.author.name`, `*`,
//! `content:excerpt(200,true)`), parsed once per request into [`Projection`] and applied key by
//! key while a record is written (see [`super::values::output::RecordPlan`]): the record JSON is
//! never written whole and re-parsed to be cut down.
//!
//! Semantics follow PocketBase's `tools/picker` over the serialised record: a key is kept when
//! a path names it exactly (its modifier, if any, applied to the value), projected further when
//! only longer paths start with it (`expand.author.name` keeps `expand` and cuts inside it),
//! kept whole when `*` is listed at that level and no path starts with it, and dropped
//! otherwise. Arrays of objects are projected element by element; other values that a longer
//! path reaches into are kept as they are. The only modifier is `:excerpt` ([`excerpt`]).
//!
//! It owns the `fields` grammar (PocketBase's tokenizer: commas and whitespace separate paths,
//! parentheses and quotes group) and the value-level projection used for nested JSON values.
//! It must not touch SQL or HTTP; a malformed expression is a [`FieldsError`] for the caller to
//! answer.
//!
//! Parsing runs on the async threads and every key lookup walks the whole list, so the parse is
//! linear (paths deduplicated by hash) and the list is bounded by [`MAX_FIELDS_PATHS`].

pub mod excerpt;
mod tokens;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde_json::Value;

pub use excerpt::Excerpt;

/// Separators between `fields` paths (PocketBase's tokenizer defaults).
const PATH_SEPARATORS: &[char] = &[',', ' ', '\t', '\n'];
/// Separators inside a modifier call: `excerpt(200, true)` → `excerpt`, `200`, `true`.
const MODIFIER_SEPARATORS: &[char] = &['(', ')', ',', ' '];
/// The wildcard path: every key of its level that no other path starts with.
const WILDCARD: &str = "*";
/// Most paths one `fields` value may list. Each key of every written record (and of JSON
/// values projected inside it) is looked up against the whole list, so the list must stay
/// short; real clients list a few dozen.
pub const MAX_FIELDS_PATHS: usize = 1_000;

/// Why a `fields` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("unbalanced parenthesis or quoted expression: {0:?}")]
    Unbalanced(String),
    #[error("invalid or empty modifier expression {0:?}")]
    EmptyModifier(String),
    #[error("missing or invalid modifier {0:?}")]
    UnknownModifier(String),
    #[error("excerpt modifier: {0}")]
    Excerpt(&'static str),
    #[error("more than {max} paths")]
    TooManyPaths { max: usize },
}

/// What a response shows of each record.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Projection {
    /// No `fields` parameter: everything.
    #[default]
    All,
    Pick(Fields),
}

/// A parsed `fields` list: dotted paths, each with an optional modifier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    path: String,
    modifier: Option<Excerpt>,
}

/// What happens to one key of an object.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPick {
    /// Not shown.
    Drop,
    /// Shown whole, with the modifier applied if the value is a string.
    Keep(Option<Excerpt>),
    /// Shown, cut down by the remaining paths (objects and arrays of objects; any other value
    /// stays whole).
    Nested(Fields),
}

impl Projection {
    /// Parses a `fields` query value. Empty means no projection, as in PocketBase (which only
    /// projects when the parameter is non-empty).
    pub fn parse(raw: &str) -> Result<Projection, FieldsError> {
        if raw.is_empty() {
            return Ok(Projection::All);
        }
        let mut fields = Fields::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for token in tokens::scan(raw, PATH_SEPARATORS, false)? {
            let token = token.trim();
            let (path, modifier) = match token.split_once(':') {
                Some((path, m)) => (path, Some(parse_modifier(m)?)),
                None => (token, None),
            };
            // A repeated path replaces the earlier one, like PocketBase's map assignment.
            match seen.get(path).and_then(|&at| fields.entries.get_mut(at)) {
                Some(e) => e.modifier = modifier,
                None => {
                    if fields.entries.len() >= MAX_FIELDS_PATHS {
                        return Err(FieldsError::TooManyPaths { max: MAX_FIELDS_PATHS });
                    }
                    seen.insert(path.to_owned(), fields.entries.len());
                    fields.entries.push(Entry { path: path.to_owned(), modifier });
                }
            }
        }
        Ok(Projection::Pick(fields))
    }

    /// How key `key` of an object at this level is shown.
    pub fn key(&self, key: &str) -> KeyPick {
        match self {
            Projection::All => KeyPick::Keep(None),
            Projection::Pick(f) => f.key(key),
        }
    }
}

impl KeyPick {
    /// The projection a kept value is shown with (`None` when dropped). A modifier on a whole
    /// object or array does nothing, so it is not carried.
    pub fn into_projection(self) -> Option<Projection> {
        match self {
            KeyPick::Drop => None,
            KeyPick::Keep(_) => Some(Projection::All),
            KeyPick::Nested(f) => Some(Projection::Pick(f)),
        }
    }

    /// The projection of the value under `key` inside the object this pick applies to.
    pub fn nested(&self, key: &str) -> Option<Projection> {
        match self {
            KeyPick::Drop => None,
            KeyPick::Keep(_) => Some(Projection::All),
            KeyPick::Nested(f) => f.key(key).into_projection(),
        }
    }

    pub fn is_drop(&self) -> bool {
        matches!(self, KeyPick::Drop)
    }
}

impl Fields {
    /// How key `key` of an object at this level is shown.
    pub fn key(&self, key: &str) -> KeyPick {
        let mut rest = Vec::new();
        for e in &self.entries {
            // PocketBase matches `path + "."` against `key + "."`: the path is the key, or
            // goes on below it. A path `key.` (trailing dot) leaves nothing and counts as exact.
            let Some(tail) = e.path.strip_prefix(key) else { continue };
            let remains = if tail.is_empty() {
                ""
            } else if let Some(r) = tail.strip_prefix('.') {
                r
            } else {
                continue;
            };
            if remains.is_empty() {
                return KeyPick::Keep(e.modifier);
            }
            rest.push(Entry { path: remains.to_owned(), modifier: e.modifier });
        }
        if !rest.is_empty() {
            return KeyPick::Nested(Fields { entries: rest });
        }
        match self.entries.iter().find(|e| e.path == WILDCARD) {
            Some(star) => KeyPick::Keep(star.modifier),
            None => KeyPick::Drop,
        }
    }

    /// Projects a decoded JSON value in place (used for paths into JSON field values, which
    /// the byte writer does not look inside).
    pub fn pick_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                if self.entries.is_empty() {
                    return;
                }
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    match self.key(&k) {
                        KeyPick::Drop => {
                            map.remove(&k);
                        }
                        KeyPick::Keep(Some(m)) => {
                            if let Some(Value::String(s)) = map.get_mut(&k) {
                                *s = m.apply(s);
                            }
                        }
                        KeyPick::Keep(None) => {}
                        KeyPick::Nested(f) => {
                            if let Some(v) = map.get_mut(&k) {
                                f.pick_value(v);
                            }
                        }
                    }
                }
            }
            // Like PocketBase, only arrays of objects are projected (element by element).
            Value::Array(items) if matches!(items.first(), Some(Value::Object(_))) => {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    self.pick_value(item);
                }
            }
            _ => {}
        }
    }
}

/// `excerpt(200,true)` → the modifier.
fn parse_modifier(raw: &str) -> Result<Excerpt, FieldsError> {
    let parts = tokens::scan(raw, MODIFIER_SEPARATORS, true)?;
    let Some((name, args)) = parts.split_first() else {
        return Err(FieldsError::EmptyModifier(raw.to_owned()));
    };
    match name.as_str() {
        "excerpt" => Excerpt::from_args(args),
        _ => Err(FieldsError::UnknownModifier(name.clone())),
    }
}
