//! `?expand=`: PocketBase's relation expansion (`author`, `author.org`, `comments_via_post`),
//! parsed into an [`ExpandTree`] here and run in batches by [`run`].
//!
//! Parsing follows PocketBase's `normalizeExpands`: comma-separated paths, spaces removed,
//! leading/trailing dots trimmed, empty paths dropped, a path covered by a longer one (`a.b`
//! by `a.b.c`) merged into it, and segments past [`MAX_EXPAND_DEPTH`] ignored. Nothing here
//! fails: an unknown or forbidden path is silently left out when it runs, as in PocketBase.
//! Parsing runs on the async threads, so it is linear in the input: each segment is one hash
//! lookup (PocketBase's pairwise "covered" check is not needed — a tree merges `a.b` into
//! `a.b.c` by itself).
//!
//! This module owns the path grammar; it must not build SQL from any of it — segments are only
//! ever looked up as names in the schema.

pub mod run;

use std::collections::HashMap;

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
        Self::parse_counting(raw).0
    }

    /// [`ExpandTree::parse`], also returning its work: one step per loop iteration (per path
    /// and per segment). Nodes are found by hash, never by comparing a path with the others
    /// or scanning siblings, so the steps stay within the number of paths plus segments.
    fn parse_counting(raw: &str) -> (ExpandTree, usize) {
        /// A node while parsing: its children by position in `slots`.
        struct Slot {
            segment: String,
            children: Vec<usize>,
        }
        /// Builds the nodes of `ids` (depth ≤ [`MAX_EXPAND_DEPTH`], so the recursion is shallow).
        fn build(slots: &mut [Slot], ids: &[usize]) -> Vec<Node> {
            ids.iter()
                .filter_map(|&id| {
                    let slot = slots.get_mut(id)?;
                    let (segment, children) = (std::mem::take(&mut slot.segment), std::mem::take(&mut slot.children));
                    Some(Node { segment, children: build(slots, &children) })
                })
                .collect()
        }
        let mut steps = 0usize;
        let mut slots: Vec<Slot> = Vec::new();
        let mut roots: Vec<usize> = Vec::new();
        // (parent slot + 1, or 0 for a root; segment) → slot
        let mut index: HashMap<(usize, String), usize> = HashMap::new();
        for path in raw.split(',') {
            steps += 1;
            let path = path.replace(' ', "");
            let path = path.trim_matches('.');
            if path.is_empty() {
                continue;
            }
            let mut parent = 0usize;
            for segment in path.split('.').take(MAX_EXPAND_DEPTH) {
                steps += 1;
                let at = match index.get(&(parent, segment.to_owned())) {
                    Some(&at) => at,
                    None => {
                        let at = slots.len();
                        slots.push(Slot { segment: segment.to_owned(), children: Vec::new() });
                        match parent.checked_sub(1).and_then(|p| slots.get_mut(p)) {
                            Some(up) => up.children.push(at),
                            None => roots.push(at),
                        }
                        index.insert((parent, segment.to_owned()), at);
                        at
                    }
                };
                parent = at + 1;
            }
        }
        (ExpandTree { roots: build(&mut slots, &roots) }, steps)
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
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
