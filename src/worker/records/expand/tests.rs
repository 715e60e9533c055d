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
fn back_relation_segments() {
    assert_eq!(back_relation("comments_via_post"), Some(("comments", "post")));
    assert_eq!(back_relation("a_via_b_via_c"), Some(("a_via_b", "c")), "greedy like the regexp");
    assert_eq!(back_relation("x_via_y_via_"), Some(("x", "y_via_")));
    assert_eq!(back_relation("comments(post)"), Some(("comments", "post")));
    for plain in ["comments", "_via_post", "comments_via_", "a-b_via_c", "comments(post", "(post)", "c(p)x"] {
        assert_eq!(back_relation(plain), None, "{plain}");
    }
}
