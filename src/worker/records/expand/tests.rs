//! `expand` parsing and back-relation segments.

use super::*;

fn paths(tree: &ExpandTree) -> Vec<String> {
    fn walk(prefix: &str, nodes: &[Node], out: &mut Vec<String>) {
        for n in nodes {
            let path = if prefix.is_empty() { n.segment.clone() } else { format!("{prefix}.{}", n.segment) };
            if n.children.is_empty() {
                out.push(path);
            } else {
                walk(&path, &n.children, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", &tree.roots, &mut out);
    out
}

#[test]
fn paths_are_normalised_like_pocketbase() {
    assert!(ExpandTree::parse("").is_empty());
    assert!(ExpandTree::parse(" , ., ..").is_empty());
    assert_eq!(paths(&ExpandTree::parse("author")), ["author"]);
    assert_eq!(paths(&ExpandTree::parse(" author . org ,tags.")), ["author.org", "tags"]);
    assert_eq!(paths(&ExpandTree::parse("a.b,a.b.c,a,test,test")), ["a.b.c", "test"]);
    assert_eq!(paths(&ExpandTree::parse("a.b,a.c")), ["a.b", "a.c"]);
    let tree = ExpandTree::parse("a.b,a.c");
    assert_eq!(tree.roots.len(), 1, "shared prefixes share a node");
    assert_eq!(tree.roots.first().map(|n| n.children.len()), Some(2));
    // An empty middle segment stays (and fails when it runs, as in PocketBase).
    assert_eq!(paths(&ExpandTree::parse("a..b")), ["a..b"]);
}

#[test]
fn depth_is_capped_at_six() {
    assert_eq!(paths(&ExpandTree::parse("a.b.c.d.e.f.g.h")), ["a.b.c.d.e.f"]);
    assert_eq!(paths(&ExpandTree::parse("a.b.c.d.e.f.g,a.b.c.d.e.f.h")), ["a.b.c.d.e.f"]);
}

#[test]
fn parsing_is_linear_in_the_input() {
    // 20,000 distinct paths sharing prefixes, plus their own prefixes (which PocketBase
    // checks pairwise for being "covered"): the old pairwise check and sibling scan took
    // hundreds of millions of steps here, on an async thread.
    let mut raw = String::new();
    for i in 0..20_000 {
        raw.push_str(&format!("r{i}.s{i}.t,r{i},"));
    }
    let (tree, steps) = ExpandTree::parse_counting(&raw);
    assert_eq!(tree.roots.len(), 20_000);
    assert_eq!(paths(&tree).len(), 20_000);
    let segments = raw.split(',').map(|p| p.split('.').count()).sum::<usize>();
    let path_count = raw.split(',').count();
    assert!(steps <= segments + path_count, "{steps} steps for {segments} segments in {path_count} paths");
}

#[test]
fn back_relation_segments() {
    assert_eq!(back_relation("comments_via_post"), Some(("comments", "post")));
    assert_eq!(back_relation("a_via_b_via_c"), Some(("a_via_b", "c")), "greedy like the regexp");
    assert_eq!(back_relation("x_via_y_via_"), Some(("x", "y_via_")));
    assert_eq!(back_relation("comments(post)"), Some(("comments", "post")));
    for plain in ["comments", "_via_post", "comments_via_", "a-b_via_c", "comments(post", "(post)", "c(p)x"] {
        assert_eq!(back_relation(plain), None, "{plain}");
    }
}
