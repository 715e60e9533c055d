//! The batched expansion against an in-memory SQLite: PocketBase's outcomes, view rules per
//! requester, and one query per tree node however many records there are.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::*;
use crate::worker::records::expand::ExpandTree;
use crate::worker::records::schema::field::{RelationOptions, TextOptions};
use crate::worker::records::values::OutputOptions;

fn text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
}

fn relation(name: &str, target: &Collection, max_select: u32) -> Field {
    Field::new(name, FieldKind::Relation(RelationOptions { collection_id: target.id.clone(), max_select, ..Default::default() }))
}

fn collection(name: &str, view_rule: Option<&str>, fields: Vec<Field>) -> Collection {
    let mut c = Collection::scaffold(CollectionType::Base, name);
    c.fields.extend(fields);
    c.view_rule = view_rule.map(str::to_owned);
    c
}

/// users ← posts.author, tags ← posts.tags (multiple), posts ← comments.post, users ←
/// comments.user. The users' view rule hides "hidden".
fn fixture(tags_rule: Option<&str>) -> (Connection, Snapshot) {
    let users = collection("users", Some("name != 'hidden'"), vec![text("name")]);
    let tags = collection("tags", tags_rule, vec![text("name")]);
    let mut editor = relation("editor", &users, 1);
    editor.hidden = true;
    let posts = collection("posts", Some(""), vec![text("title"), relation("author", &users, 1), relation("tags", &tags, 5), editor]);
    let comments = collection("comments", Some(""), vec![text("body"), relation("post", &posts, 1), relation("user", &users, 1)]);
    let conn = Connection::open_in_memory().expect("sqlite");
    for c in [&users, &tags, &posts, &comments] {
        conn.execute_batch(&c.create_table_sql()).expect("table");
    }
    conn.execute_batch(
        "INSERT INTO users (id, name) VALUES ('u1', 'Ann'), ('u2', 'hidden');
         INSERT INTO tags (id, name) VALUES ('t1', 'A'), ('t2', 'B');
         INSERT INTO posts (id, title, author, tags, editor) VALUES ('p1', 'one', 'u1', '[\"t2\",\"t1\",\"gone\"]', 'u1'), ('p2', 'two', 'u2', '[]', ''), ('p3', 'three', 'u1', '[\"t1\"]', '');
         INSERT INTO comments (id, body, post, user) VALUES ('c1', 'x', 'p1', 'u1'), ('c2', 'y', 'p1', 'u2'), ('c3', 'z', 'p3', 'u2');",
    )
    .expect("rows");
    (conn, Snapshot::new(1, vec![users, tags, posts, comments]))
}

fn requester(superuser: bool) -> Requester {
    Requester { ctx: RequestContext::new(SystemTime::now()), superuser }
}

/// Expands every post (in rowid order) and returns the `expand` objects and the query count.
fn run(conn: &Connection, snap: &Snapshot, req: &Requester, expand: &str) -> (Option<Vec<Value>>, usize) {
    let posts = snap.get("posts").expect("posts");
    let tree = ExpandTree::parse(expand);
    let mut level = Level::new(snap, posts, &tree.roots, req.superuser);
    let sql = format!("SELECT {}, \"posts\".\"id\" FROM \"posts\" AS \"posts\" ORDER BY rowid", select_columns(posts));
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    while let Some(row) = rows.next().expect("row") {
        let id: String = row.get(column_count(posts)).expect("id");
        let mut sink = Vec::new();
        write_record_open(&mut sink, posts, row, &OutputOptions::default(), None).expect("write");
        level.push(row, id).expect("push");
    }
    let expander = Expander::new(conn, snap, req);
    let objects = expander.expand(&tree.roots, &level, &KeyPick::Keep(None)).expect("within the bounds");
    let parsed = objects.map(|all| all.iter().map(|o| serde_json::from_slice(o).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(o)))).collect());
    (parsed, expander.queries_run())
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x["name"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[test]
fn one_query_per_node_and_the_shapes_of_pocketbase() {
    let (conn, snap) = fixture(Some(""));
    let (objects, queries) = run(&conn, &snap, &requester(true), "author,tags,comments_via_post.user");
    let o = objects.expect("expanded");
    assert_eq!(queries, 4, "author, tags, comments_via_post, and its user: one query each for all posts");
    let p1 = o.first().expect("p1");
    assert_eq!(p1["author"]["name"], "Ann", "a single relation is an object");
    assert_eq!(names(&p1["tags"]), ["B", "A"], "a multiple relation is an array in relation order, unknown ids skipped");
    let comments = p1["comments_via_post"].as_array().expect("a back-relation is an array");
    assert_eq!(comments.iter().map(|c| c["id"].clone()).collect::<Vec<_>>(), [json!("c1"), json!("c2")]);
    assert_eq!(comments.get(1).map(|c| c["expand"]["user"]["name"].clone()), Some(json!("hidden")), "superusers bypass view rules");
    let p2 = o.get(1).expect("p2");
    assert_eq!(p2, &json!({"author": {"collectionId": p1["author"]["collectionId"], "collectionName": "users", "id": "u2", "name": "hidden"}}));
    assert_eq!(o.get(2).map(|p| names(&p["tags"])), Some(vec!["A".to_owned()]));
}

#[test]
fn view_rules_filter_per_requester_without_extra_queries() {
    let (conn, snap) = fixture(Some(""));
    let (objects, queries) = run(&conn, &snap, &requester(false), "author,comments_via_post.user");
    let o = objects.expect("expanded");
    assert_eq!(queries, 3);
    assert_eq!(o.first().map(|p| p["author"]["name"].clone()), Some(json!("Ann")));
    assert_eq!(o.get(1), Some(&json!({})), "a forbidden relation is left out, the key stays");
    let c2 = o.first().map(|p| p["comments_via_post"][1].clone()).expect("c2");
    assert_eq!(c2["expand"], json!({}), "its user is forbidden, the path is still valid");
}

#[test]
fn failing_paths_are_left_out_as_a_whole() {
    let (conn, snap) = fixture(None);
    let guest = requester(false);
    assert_eq!(run(&conn, &snap, &guest, "nope").0, None, "unknown: no expand key");
    assert_eq!(run(&conn, &snap, &guest, "title").0, None, "not a relation");
    assert_eq!(run(&conn, &snap, &guest, "tags").0, None, "a null view rule drops the path for guests");
    let (objects, _) = run(&conn, &snap, &requester(true), "tags");
    assert_eq!(objects.and_then(|o| o.first().map(|p| names(&p["tags"]))), Some(vec!["B".to_owned(), "A".to_owned()]));
    let (objects, _) = run(&conn, &snap, &guest, "tags,author");
    assert_eq!(objects.and_then(|o| o.first().cloned()).map(|p| p.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>())), Some(Some(vec!["author".to_owned()])));
    // A hidden relation field is walked for superusers only.
    assert_eq!(run(&conn, &snap, &guest, "editor").0, None);
    let (objects, _) = run(&conn, &snap, &requester(true), "editor");
    assert_eq!(objects.and_then(|o| o.first().map(|p| p["editor"]["name"].clone())), Some(json!("Ann")));
    // A deeper hop failing takes the whole path with it (PocketBase's error propagation).
    assert_eq!(run(&conn, &snap, &requester(true), "author.nope").0, None);
    assert_eq!(run(&conn, &snap, &requester(true), "comments_via_title").0, None);
}

#[test]
fn hostile_segments_are_only_names() {
    let (conn, snap) = fixture(Some(""));
    for bad in ["author\"; DROP TABLE posts; --", "comments_via_post) OR 1=1", "x'_via_y", "(", "author..tags"] {
        let (objects, _) = run(&conn, &snap, &requester(true), bad);
        assert_eq!(objects, None, "{bad}");
    }
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0)).expect("count");
    assert_eq!(count, 3);
}

/// Expands every post with the given bounds; `Err` when they are passed.
fn run_bounded(conn: &Connection, snap: &Snapshot, expand: &str, records: usize, bytes: usize) -> Result<Option<Vec<Vec<u8>>>, ExpandTooLarge> {
    let posts = snap.get("posts").expect("posts");
    let tree = ExpandTree::parse(expand);
    let mut level = Level::new(snap, posts, &tree.roots, true);
    let sql = format!("SELECT {}, \"posts\".\"id\" FROM \"posts\" AS \"posts\" ORDER BY rowid", select_columns(posts));
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    while let Some(row) = rows.next().expect("row") {
        let id: String = row.get(column_count(posts)).expect("id");
        level.push(row, id).expect("push");
    }
    let req = requester(true);
    Expander::new(conn, snap, &req).with_limits(records, bytes).expand(&tree.roots, &level, &KeyPick::Keep(None))
}

#[test]
fn the_whole_expansion_fails_past_its_bounds() {
    let (conn, snap) = fixture(Some(""));
    // author (2 rows), tags (2), comments_via_post (3) and their user (2): 9 rows.
    let expand = "author,tags,comments_via_post.user";
    assert!(matches!(run_bounded(&conn, &snap, expand, 9, usize::MAX), Ok(Some(_))), "exactly at the record bound");
    assert_eq!(run_bounded(&conn, &snap, expand, 8, usize::MAX), Err(ExpandTooLarge), "one row past it");
    // Bytes count every copy: u1 is the author of two posts, so its JSON is copied twice.
    let once = run_bounded(&conn, &snap, "author", usize::MAX, usize::MAX).expect("fits").expect("expanded");
    let built: usize = once.iter().map(Vec::len).sum();
    assert!(matches!(run_bounded(&conn, &snap, "author", usize::MAX, built * 2), Ok(Some(_))));
    assert_eq!(run_bounded(&conn, &snap, "author", usize::MAX, built), Err(ExpandTooLarge));
    // The defaults leave ordinary expansions alone.
    let (objects, _) = run(&conn, &snap, &requester(true), expand);
    assert!(objects.is_some());
    assert!(EXPAND_TOO_LARGE_MESSAGE.contains("expand"), "the message names the parameter");
    assert!(EXPAND_TOO_LARGE_MESSAGE.contains(&MAX_EXPANDED_RECORDS.to_string()));
    assert!(EXPAND_TOO_LARGE_MESSAGE.contains(&format!("{} MiB", MAX_EXPAND_BYTES / (1024 * 1024))));
}
