//! Record JSON output against a real SQLite table made by `Collection::create_table_sql()`.

use super::*;
use crate::worker::records::schema::field::*;
use crate::worker::records::sql_value::SqlValue;
use crate::worker::records::values::{resolve_input, validate_record, Access, WriteOptions};
use serde_json::json;

fn posts() -> Collection {
    let mut c = Collection::scaffold(CollectionType::Base, "posts");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    c.fields.push(Field::new("title", FieldKind::Text(TextOptions::default())));
    c.fields.push(Field::new("n", FieldKind::Number(NumberOptions::default())));
    c.fields.push(Field::new("ok", FieldKind::Bool(BoolOptions::default())));
    c.fields.push(Field::new("site", FieldKind::Url(DomainOptions::default())));
    c.fields.push(Field::new("when", FieldKind::Date(DateOptions::default())));
    c.fields.push(Field::new("kind", FieldKind::Select(SelectOptions { values: s(&["a", "b"]), max_select: 1, ..Default::default() })));
    c.fields.push(Field::new("tags", FieldKind::Select(SelectOptions { values: s(&["a", "b"]), max_select: 2, ..Default::default() })));
    c.fields.push(Field::new("owner", FieldKind::Relation(RelationOptions { collection_id: "pbc_1".into(), max_select: 1, ..Default::default() })));
    c.fields.push(Field::new("refs", FieldKind::Relation(RelationOptions { collection_id: "pbc_1".into(), max_select: 5, ..Default::default() })));
    c.fields.push(Field::new("docs", FieldKind::File(FileOptions { max_select: 3, ..Default::default() })));
    c.fields.push(Field::new("meta", FieldKind::Json(JsonOptions::default())));
    c.fields.push(Field::new("at", FieldKind::GeoPoint(GeoPointOptions::default())));
    let mut secret = Field::new("secret", FieldKind::Text(TextOptions::default()));
    secret.hidden = true;
    c.fields.push(secret);
    c.with_timestamps()
}

fn db(c: &Collection) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
    conn.execute_batch(&c.create_table_sql()).expect("create table");
    conn
}

fn insert(conn: &rusqlite::Connection, c: &Collection, columns: &[(String, SqlValue)]) {
    let names: Vec<String> = columns.iter().map(|(k, _)| quote_ident(k)).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", quote_ident(&c.name), names.join(", "), marks.join(", "));
    let params: Vec<&dyn rusqlite::ToSql> = columns.iter().map(|(_, v)| v as &dyn rusqlite::ToSql).collect();
    conn.execute(&sql, params.as_slice()).expect("insert");
}

fn read_all(conn: &rusqlite::Connection, c: &Collection, opts: OutputOptions) -> Vec<Value> {
    let sql = format!("SELECT {} FROM {} ORDER BY rowid", select_columns(c), quote_ident(&c.name));
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        let mut buf = Vec::new();
        write_record_json(&mut buf, c, row, &opts).expect("write");
        out.push(serde_json::from_slice(&buf).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf))));
    }
    out
}

#[test]
fn zero_values_and_every_type() {
    let c = posts();
    let conn = db(&c);
    conn.execute("INSERT INTO posts (id) VALUES ('aaaaaaaaaaaaaaa')", []).expect("bare row");
    let rows = read_all(&conn, &c, OutputOptions::default());
    assert_eq!(
        rows,
        vec![json!({
            "collectionId": c.id, "collectionName": "posts", "id": "aaaaaaaaaaaaaaa",
            "title": "", "n": 0, "ok": false, "site": "", "when": "", "kind": "", "tags": [], "owner": "",
            "refs": [], "docs": [], "meta": null, "at": {"lon": 0, "lat": 0}, "created": "", "updated": ""
        })]
    );
}

#[test]
fn validated_values_round_trip_through_sqlite() {
    let c = posts();
    let conn = db(&c);
    let body = json!({
        "id": "bbbbbbbbbbbbbbb", "title": "Hello \"world\"\n\u{2028}", "n": "12.5", "ok": "true", "site": "https://example.com",
        "when": "2024-05-06T07:08:09.5+01:00", "kind": ["a", "b"], "tags": ["b", "a", "b"], "owner": "u1",
        "refs+": ["r1", "r2"], "meta": {"deep": [1, {"x": null}]}, "at": {"lon": -0.5, "lat": 51.5}, "secret": "s"
    });
    let resolved = resolve_input(&c, None, body.as_object().cloned().unwrap_or_default(), Access::Superuser);
    let v = validate_record(&c, &resolved, &WriteOptions { existing: None, access: Access::Superuser, now_millis: 0, new_files: &[] }).expect("valid");
    insert(&conn, &c, &v.columns);
    let rows = read_all(&conn, &c, OutputOptions::default());
    assert_eq!(
        rows,
        vec![json!({
            "collectionId": c.id, "collectionName": "posts", "id": "bbbbbbbbbbbbbbb",
            "title": "Hello \"world\"\n\u{2028}", "n": 12.5, "ok": true, "site": "https://example.com",
            "when": "2024-05-06 06:08:09.500Z", "kind": "b", "tags": ["b", "a"], "owner": "u1", "refs": ["r1", "r2"],
            "docs": [], "meta": {"deep": [1, {"x": null}]}, "at": {"lon": -0.5, "lat": 51.5},
            "created": "1970-01-01 00:00:00.000Z", "updated": "1970-01-01 00:00:00.000Z"
        })],
        "hidden `secret` left out"
    );
    let shown = read_all(&conn, &c, OutputOptions { show_hidden: true, show_email: false });
    assert_eq!(shown.first().map(|r| r["secret"].clone()), Some(json!("s")));
    let sql = format!("SELECT {} FROM posts", select_columns(&c));
    let map = conn.query_row(&sql, [], |r| Ok(read_record_map(&c, r).map_err(|e| e.to_string()))).expect("row").expect("map");
    assert_eq!(map.get("secret"), Some(&json!("s")));
    assert!(!map.contains_key("collectionId"));
}

#[test]
fn numbers_print_like_go() {
    let mut c = Collection::scaffold(CollectionType::Base, "nums");
    c.fields.push(Field::new("n", FieldKind::Number(NumberOptions::default())));
    c.fields.push(Field::new("j", FieldKind::Json(JsonOptions::default())));
    let conn = db(&c);
    let cases: Vec<(SqlValue, &str)> = vec![
        (SqlValue::Integer(3), "3"),
        (SqlValue::Real(3.0), "3"),
        (SqlValue::Real(-2.5), "-2.5"),
        (SqlValue::Real(0.1), "0.1"),
        (SqlValue::Real(1e21), "1e+21"),
        (SqlValue::Real(1e20), "100000000000000000000"),
        (SqlValue::Real(1.5e-7), "1.5e-7"),
        (SqlValue::Real(0.000001), "0.000001"),
        (SqlValue::Integer(i64::MAX), "9223372036854775807"),
        (SqlValue::Text("junk".into()), "0"),
        (SqlValue::Text(String::new()), "0"),
    ];
    for (i, (v, _)) in cases.iter().enumerate() {
        let id = format!("{i:015}");
        conn.execute("INSERT INTO nums (id, n, j) VALUES (?1, ?2, ?3)", rusqlite::params![id, v, "123"]).expect("insert");
    }
    let mut stmt = conn.prepare(&format!("SELECT {} FROM nums ORDER BY id", select_columns(&c))).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    for (_, want) in &cases {
        let row = rows.next().expect("next").expect("row");
        let mut buf = Vec::new();
        write_record_json(&mut buf, &c, row, &OutputOptions::default()).expect("write");
        let text = String::from_utf8(buf).expect("utf8");
        assert!(text.contains(&format!("\"n\":{want},")), "{want}: {text}");
        assert!(text.ends_with("\"j\":123}"), "json column with numeric affinity: {text}");
    }
}

#[test]
fn auth_records_hide_secrets_and_email() {
    let c = Collection::scaffold(CollectionType::Auth, "users");
    let conn = db(&c);
    conn.execute(
        "INSERT INTO users (id, password, tokenKey, email, emailVisibility, verified) VALUES
         ('aaaaaaaaaaaaaaa', '$argon2id$hash', 'tk', 'hidden@example.com', 0, 1),
         ('bbbbbbbbbbbbbbb', '$argon2id$hash', 'tk2', 'shown@example.com', 1, 0)",
        [],
    )
    .expect("insert");
    let rows = read_all(&conn, &c, OutputOptions::default());
    assert_eq!(
        rows,
        vec![
            json!({"collectionId": c.id, "collectionName": "users", "id": "aaaaaaaaaaaaaaa", "emailVisibility": false, "verified": true}),
            json!({"collectionId": c.id, "collectionName": "users", "id": "bbbbbbbbbbbbbbb", "email": "shown@example.com", "emailVisibility": true, "verified": false}),
        ]
    );
    let owner = read_all(&conn, &c, OutputOptions { show_hidden: true, show_email: true });
    assert_eq!(owner.first().map(|r| r["email"].clone()), Some(json!("hidden@example.com")));
    for r in &owner {
        let text = r.to_string();
        assert!(!text.contains("argon2") && !text.contains("tokenKey") && !text.contains("password"), "{text}");
    }
    assert!(!select_columns(&c).contains("password") && !select_columns(&c).contains("tokenKey"));
}

#[test]
fn odd_stored_data_never_breaks_the_output() {
    let c = posts();
    let conn = db(&c);
    conn.execute(
        "INSERT INTO posts (id, title, tags, meta, at, ok) VALUES ('ccccccccccccccc', CAST(x'ff41' AS TEXT), 'a', '{broken', 'nope', 'true')",
        [],
    )
    .expect("insert");
    let rows = read_all(&conn, &c, OutputOptions::default());
    let r = rows.first().cloned().unwrap_or_default();
    assert_eq!(r["title"], json!("\u{fffd}A"), "invalid UTF-8 replaced");
    assert_eq!(r["tags"], json!(["a"]), "a single value read as a one-element list");
    assert_eq!(r["meta"], json!("{broken"), "broken JSON as a string");
    assert_eq!(r["at"], json!({"lon": 0, "lat": 0}));
    assert_eq!(r["ok"], json!(true));
}

#[test]
fn string_escaping() {
    let mut out = Vec::new();
    write_str(&mut out, "a\"b\\c\u{1}\u{1f}\té\u{2029}z");
    assert_eq!(String::from_utf8(out.clone()).expect("utf8"), "\"a\\\"b\\\\c\\u0001\\u001f\\té\\u2029z\"");
    assert_eq!(serde_json::from_slice::<String>(&out).expect("valid"), "a\"b\\c\u{1}\u{1f}\té\u{2029}z");
}

/// Rows written open under a `fields` projection, closed by the test.
fn read_projected(conn: &rusqlite::Connection, c: &Collection, opts: OutputOptions, fields: &str) -> Vec<Value> {
    let plan = RecordPlan::new(c, &Projection::parse(fields).expect("fields"));
    let sql = format!("SELECT {} FROM {} ORDER BY rowid", select_columns(c), quote_ident(&c.name));
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        let mut buf = Vec::new();
        write_record_open(&mut buf, c, row, &opts, Some(&plan)).expect("write");
        buf.push(b'}');
        out.push(serde_json::from_slice(&buf).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf))));
    }
    out
}

#[test]
fn fields_are_applied_while_writing() {
    let c = posts();
    let conn = db(&c);
    conn.execute(
        "INSERT INTO posts (id, title, n, tags, meta, secret) VALUES
         ('ddddddddddddddd', '<p>Hello <i>big</i> world</p>', 7, '[\"a\",\"b\"]', '{\"a\":{\"b\":1,\"c\":\"<b>long text</b>\"},\"z\":[{\"k\":1,\"v\":2}]}', 's')",
        [],
    )
    .expect("insert");
    let one = |fields: &str| read_projected(&conn, &c, OutputOptions::default(), fields).first().cloned().unwrap_or_default();
    assert_eq!(one("id,n"), json!({"id": "ddddddddddddddd", "n": 7}));
    assert_eq!(one("title:excerpt(9,true)"), json!({"title": "Hello big..."}));
    assert_eq!(one("n:excerpt(1),tags:excerpt(1)"), json!({"n": 7, "tags": ["a", "b"]}), "non-strings pass unchanged");
    assert_eq!(one("meta.a.c:excerpt(4),meta.z.v"), json!({"meta": {"a": {"c": "long"}, "z": [{"v": 2}]}}), "paths reach into JSON values");
    assert_eq!(one("secret,nope"), json!({}), "a hidden field cannot be picked back");
    let all = one("*");
    assert_eq!(all.as_object().map(|m| m.len()), Some(17), "all 15 visible fields and the two collection keys");
    let star = one("*,title:excerpt(5)");
    assert_eq!((star["title"].clone(), star["n"].clone()), (json!("Hello"), json!(7)));
    assert_eq!(one("collectionName"), json!({"collectionName": "posts"}));
    let shown = read_projected(&conn, &c, OutputOptions { show_hidden: true, show_email: false }, "secret");
    assert_eq!(shown, vec![json!({"secret": "s"})]);
}
