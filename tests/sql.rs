//! The SQL console (`POST /api/sql`) against the real binary: superusers only; a read answers
//! PocketBase's shape (declared column types, values as text) capped at 1000 rows; a write runs
//! in one transaction (a failing statement leaves nothing behind) and only when its request sends
//! `allowWrites: true`; the `sql.readOnly` setting refuses writes even then and keeps reads; a rule changed through the console is obeyed by every worker
//! of a cluster on its very next request even with bus invalidations ignored; a query past
//! `VAULTBASE_QUERY_TIMEOUT_MS` is cut off and the server keeps serving.

mod common;


use common::*;
use serde_json::{json, Value};


fn sql(port: u16, token: Option<&str>, query: &str) -> Resp {
    call(port, "POST", "/api/sql", token, Some(&json!({ "query": query })))
}

/// A console request that consents to writing.
fn write_sql(port: u16, token: Option<&str>, query: &str) -> Resp {
    call(port, "POST", "/api/sql", token, Some(&json!({ "query": query, "allowWrites": true })))
}

fn rows_of(v: &Value) -> Vec<Vec<Value>> {
    serde_json::from_value(v["rows"].clone()).expect("rows")
}

#[test]
fn only_superusers_may_use_the_console() {
    let (p, su) = start_with_superuser(Spawn::serve());
    let r = sql(p.port, None, "SELECT 1");
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    let creds = json!({"email": "u@example.com", "password": "user password", "passwordConfirm": "user password"});
    ok(call(p.port, "POST", "/api/collections/users/records", Some(&su), Some(&creds)));
    let login = ok(call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "u@example.com", "password": "user password"}))));
    let user = login["token"].as_str().expect("token");
    let r = sql(p.port, Some(user), "SELECT 1");
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // Positive control: the superuser is answered.
    assert_eq!(rows_of(&ok(sql(p.port, Some(&su), "SELECT 1"))), vec![vec![json!("1")]]);
}

#[test]
fn bad_queries_get_pocketbase_errors() {
    let (p, su) = start_with_superuser(Spawn::serve());
    let r = call(p.port, "POST", "/api/sql", Some(&su), Some(&json!({})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["query"]["code"], "validation_required");
    let r = sql(p.port, Some(&su), &format!("SELECT 1{}", " ".repeat(5000)));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["query"]["code"], "validation_length_too_long");
    let r = sql(p.port, Some(&su), "selec 1");
    assert_eq!(r.status, 400);
    let message = r.json()["message"].as_str().expect("message").to_owned();
    assert!(message.starts_with("Failed to execute query. Raw error:") && message.contains("syntax error"), "{message}");
    // Statements that would change the shared connection rather than the data are refused.
    let temp_trigger = "CREATE TEMP TRIGGER spy AFTER INSERT ON _collections BEGIN SELECT 1; END";
    for q in ["COMMIT", "BEGIN", "ATTACH DATABASE ':memory:' AS other", "PRAGMA query_only = 0", "CREATE TEMP TABLE _collections (id TEXT)", temp_trigger] {
        let r = sql(p.port, Some(&su), q);
        assert_eq!(r.status, 400, "{q}: {}", String::from_utf8_lossy(&r.body));
    }
    // Reporting pragmas still answer.
    let info = ok(sql(p.port, Some(&su), "PRAGMA table_info(_collections)"));
    assert!(!rows_of(&info).is_empty());
}

#[test]
fn a_read_answers_columns_and_at_most_1000_rows() {
    let (p, su) = start_with_superuser(Spawn::serve());
    let r = ok(write_sql(p.port, Some(&su), "CREATE TABLE t (id INTEGER PRIMARY KEY NOT NULL, v TEXT NOT NULL, w REAL)"));
    assert_eq!(r["columns"], json!([]));
    let r = ok(write_sql(p.port, Some(&su), "INSERT INTO t (v, w) VALUES ('a', 1.5), ('b', NULL)"));
    assert_eq!(r["affectedRows"], 2);
    assert_eq!(r["rows"], json!([]));

    let r = ok(sql(p.port, Some(&su), "SELECT id, v, w, 1 + 1 AS two FROM t ORDER BY id"));
    assert_eq!(r["affectedRows"], 0);
    assert_eq!(
        r["columns"],
        json!([
            {"name": "id", "type": "INTEGER", "nullable": true},
            {"name": "v", "type": "TEXT", "nullable": true},
            {"name": "w", "type": "REAL", "nullable": true},
            {"name": "two", "type": "", "nullable": true},
        ])
    );
    assert_eq!(r["rows"], json!([["1", "a", "1.5", "2"], ["2", "b", null, "2"]]));

    // Positive control for the cap: 1500 rows exist, 1000 come back.
    ok(write_sql(p.port, Some(&su), "CREATE TABLE many (n INTEGER)"));
    let r = ok(write_sql(p.port, Some(&su), "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500) INSERT INTO many SELECT x FROM c"));
    assert_eq!(r["affectedRows"], 1500);
    assert_eq!(rows_of(&ok(sql(p.port, Some(&su), "SELECT count(*) FROM many"))), vec![vec![json!("1500")]]);
    let rows = rows_of(&ok(sql(p.port, Some(&su), "SELECT n FROM many ORDER BY n")));
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999], vec![json!("1000")]);

    // Several statements: the last one answers, as in PocketBase.
    assert_eq!(rows_of(&ok(sql(p.port, Some(&su), "SELECT 1; SELECT 2"))), vec![vec![json!("2")]]);
}

#[test]
fn a_write_is_one_transaction() {
    let (p, su) = start_with_superuser(Spawn::serve());
    ok(write_sql(p.port, Some(&su), "CREATE TABLE t (v TEXT NOT NULL)"));
    let r = ok(write_sql(p.port, Some(&su), "INSERT INTO t VALUES ('a'); INSERT INTO t VALUES ('b'), ('c')"));
    assert_eq!(r["affectedRows"], 2, "the last statement's changes");
    // The second statement fails: the first one's row must not stay.
    let r = write_sql(p.port, Some(&su), "INSERT INTO t VALUES ('d'); INSERT INTO t VALUES (NULL)");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().expect("message").contains("NOT NULL"));
    let rows = rows_of(&ok(sql(p.port, Some(&su), "SELECT v FROM t ORDER BY v")));
    assert_eq!(rows, vec![vec![json!("a")], vec![json!("b")], vec![json!("c")]]);
    // A write's RETURNING rows come back.
    let r = ok(write_sql(p.port, Some(&su), "INSERT INTO t VALUES ('e') RETURNING v"));
    assert_eq!((r["affectedRows"].clone(), r["rows"].clone()), (json!(1), json!([["e"]])));
}

#[test]
fn the_read_only_setting_refuses_writes_and_keeps_reads() {
    let (p, su) = start_with_superuser(Spawn::serve());
    ok(write_sql(p.port, Some(&su), "CREATE TABLE t (v TEXT)"));
    let s = ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"sql": {"readOnly": true}}))));
    assert_eq!(s["sql"]["readOnly"], true);
    // Decided by SQLite, not by the text: a WITH that inserts is a write.
    // The setting is a lock: even a request that allows writes is refused.
    for q in ["INSERT INTO t VALUES ('x')", "WITH a AS (SELECT 'x') INSERT INTO t SELECT * FROM a", "SELECT 1; DELETE FROM t"] {
        let r = write_sql(p.port, Some(&su), q);
        assert_eq!(r.status, 403, "{q}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["message"].as_str().expect("message").contains("sql.readOnly"));
    }
    assert_eq!(rows_of(&ok(sql(p.port, Some(&su), "SELECT count(*) FROM t"))), vec![vec![json!("0")]]);
    ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"sql": {"readOnly": false}}))));
    assert_eq!(ok(write_sql(p.port, Some(&su), "INSERT INTO t VALUES ('x')"))["affectedRows"], 1);
}

#[test]
fn a_write_runs_only_when_its_request_allows_writes() {
    let (p, su) = start_with_superuser(Spawn::serve());
    let exists = || rows_of(&ok(sql(p.port, Some(&su), "SELECT count(*) FROM sqlite_master WHERE name IN ('t', '_collections')")));
    // Without consent (absent, false or null) the console is read-only for this request,
    // whatever the shared setting says (off here).
    for body in [json!({"query": "CREATE TABLE t (v TEXT)"}), json!({"query": "CREATE TABLE t (v TEXT)", "allowWrites": false}), json!({"query": "CREATE TABLE t (v TEXT)", "allowWrites": null})] {
        let r = call(p.port, "POST", "/api/sql", Some(&su), Some(&body));
        assert_eq!(r.status, 403, "{body}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["message"].as_str().expect("message").contains("allowWrites"));
        // `_collections` always exists: the count proves the query sees tables.
        assert_eq!(exists(), vec![vec![json!("1")]], "the refused write did not happen");
    }
    let r = call(p.port, "POST", "/api/sql", Some(&su), Some(&json!({"query": "SELECT 1", "allowWrites": "yes"})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // Reads need no consent; the consenting request writes, and the setting was not touched.
    assert_eq!(rows_of(&ok(sql(p.port, Some(&su), "SELECT 2"))), vec![vec![json!("2")]]);
    ok(write_sql(p.port, Some(&su), "CREATE TABLE t (v TEXT)"));
    assert_eq!(exists(), vec![vec![json!("2")]]);
    assert_eq!(ok(call(p.port, "GET", "/api/settings", Some(&su), None))["sql"]["readOnly"], false);
}

#[test]
fn a_query_past_the_deadline_is_cut_off_and_the_server_serves_on() {
    let (p, su) = start_with_superuser(Spawn::serve().env("VAULTBASE_QUERY_TIMEOUT_MS", "300"));
    let forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let r = sql(p.port, Some(&su), forever);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().expect("message").contains("deadline"));
    // A write that never ends is cut off too, and leaves the writer free.
    ok(write_sql(p.port, Some(&su), "CREATE TABLE t (n INTEGER)"));
    let r = write_sql(p.port, Some(&su), "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) INSERT INTO t SELECT x FROM c");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().expect("message").contains("deadline"));
    assert_eq!(ok(write_sql(p.port, Some(&su), "INSERT INTO t VALUES (1)"))["affectedRows"], 1);
    assert_eq!(rows_of(&ok(sql(p.port, Some(&su), "SELECT count(*) FROM t"))), vec![vec![json!("1")]]);
}

#[test]
fn a_rule_changed_through_the_console_is_obeyed_by_every_worker_on_the_next_request() {
    // Bus invalidations are ignored: only the version bump in the write can make it seen.
    let (p, su) = start_with_superuser(Spawn::cluster(2).env("VAULTBASE_TEST_IGNORE_INVALIDATE", "1"));
    p.wait_logs(2, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "notes", "listRule": "", "fields": [{"name": "title", "type": "text"}]}))));
    ok(call(p.port, "POST", "/api/collections/notes/records", Some(&su), Some(&json!({"title": "hello"}))));

    let mut conns = connection_per_worker(p.port, 2);
    // Positive control, and every worker's cache warm with the public rule.
    for (worker, s) in conns.iter_mut() {
        let r = exchange(s, "GET", "/api/collections/notes/records").expect("list");
        assert_eq!(r.status, 200, "worker {worker}");
        assert_eq!(r.json()["totalItems"], 1, "worker {worker}");
    }

    let r = ok(write_sql(p.port, Some(&su), "UPDATE _collections SET listRule = NULL WHERE name = 'notes'"));
    assert_eq!(r["affectedRows"], 1);

    for (worker, s) in conns.iter_mut() {
        let r = exchange(s, "GET", "/api/collections/notes/records").expect("list");
        assert_eq!(r.status, 403, "worker {worker} still lists for guests: {}", String::from_utf8_lossy(&r.body));
    }
}
