//! `?expand=`: PocketBase's relation expansion (`author`, `author.org`, `comments_via_post`),
//! parsed into an [`ExpandTree`] here and run in batches by [`run`].
//!
//! Parsing follows PocketBase's `normalizeExpands`: comma-separated paths, spaces removed,
//! leading/trailing dots trimmed, empty paths dropped, a path covered by a longer one (`a.b`
//! by `a.b.c`) merged into it, and segments past [`MAX_EXPAND_DEPTH`] ignored. Nothing here
//! fails: an unknown or forbidden path is silently left out when it runs, as in PocketBase.
//!
//! This module owns the path grammar; it must not build SQL from any of it — segments are only
//! ever looked up as names in the schema.

pub mod run;

#[cfg(test)]
mod tests;

/// PocketBase's `maxNestedRels`: relation hops one expand path may take; deeper segments are
/// ignored.
pub const MAX_EXPAND_DEPTH: usize = 6;

/// The requested expansions as a tree of path segments: paths sharing a prefix share nodes,
/// so each hop is fetched once per level however many paths go through it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpandTree {
    pub roots: Vec<Node>,
}

/// One hop: a relation field name, `<collection>_via_<field>`, or the old
/// `<collection>(<field>)`. The segment text is also the key under `expand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub segment: String,
    pub children: Vec<Node>,
}

impl ExpandTree {
    /// Parses an `expand` query value (empty: nothing to expand).
    pub fn parse(raw: &str) -> ExpandTree {
        let paths: Vec<String> = raw.split(',').map(|p| p.replace(' ', "").trim_matches('.').to_owned()).filter(|p| !p.is_empty()).collect();
        let mut tree = ExpandTree::default();
        for (i, p) in paths.iter().enumerate() {
            let covered = paths.iter().enumerate().any(|(j, q)| i != j && q.len() > p.len() && q.starts_with(p.as_str()) && q.as_bytes().get(p.len()) == Some(&b'.'));
            if !covered {
                tree.insert(p.split('.').take(MAX_EXPAND_DEPTH));
            }
        }
        tree
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    fn insert<'p>(&mut self, segments: impl Iterator<Item = &'p str>) {
        let mut level = &mut self.roots;
        for segment in segments {
            let at = match level.iter().position(|n| n.segment == segment) {
                Some(at) => at,
                None => {
                    level.push(Node { segment: segment.to_owned(), children: Vec::new() });
                    level.len() - 1
                }
            };
            let Some(node) = level.get_mut(at) else { return };
            level = &mut node.children;
        }
    }
}

/// A back-relation segment's collection and field: `<collection>_via_<field>` (PocketBase's
/// `^(\w+)_via_(\w+)$`, greedy, so the last usable `_via_` splits) or the deprecated
/// `<collection>(<field>)`. `None` for a plain field name.
pub fn back_relation(segment: &str) -> Option<(&str, &str)> {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if segment.contains('(') {
        let inner = segment.strip_suffix(')')?;
        let (collection, field) = inner.split_once('(')?;
        return (word(collection) && word(field)).then_some((collection, field));
    }
    if !word(segment) {
        return None;
    }
    segment.rmatch_indices("_via_").find_map(|(at, sep)| {
        let collection = segment.get(..at)?;
        let field = segment.get(at + sep.len()..)?;
        (!collection.is_empty() && !field.is_empty()).then_some((collection, field))
    })
}
