//! pb_hooks record hooks and `$app` data access (`tests/hooks_records/main.pb.js`) against the
//! real binary. Each expectation is what PocketBase 0.40.6 answered for the same hook file
//! and requests (observed on the real binary, `pocketbase serve --hooksDir tests/hooks_records`
//! with the same collections), except where a comment names a difference.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The fixture hooks dir.
fn hooks_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hooks_records").display().to_string()
}

/// A server (serve or cluster) with the fixture hooks, a superuser, and the collections the
/// fixture uses: posts, audit, notes (with a hidden field).
fn start(spawn: Spawn) -> (Proc, String) {
    let dir = hooks_dir();
    let (p, su) = start_with_superuser(spawn.args(&["--hooksDir", &dir]));
    let open = |name: &str, fields: Value| {
        json!({"name": name, "type": "base", "fields": fields,
               "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""})
    };
    let collections = [
        open(
            "posts",
            json!([
                {"name": "title", "type": "text"},
                {"name": "code", "type": "text", "max": 3},
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000},
                {"name": "n", "type": "number"},
                {"name": "meta", "type": "json"},
                {"name": "tags", "type": "select", "maxSelect": 3, "values": ["a", "b", "c"]},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
            ]),
        ),
        open("audit", json!([{"name": "action", "type": "text"}, {"name": "rid", "type": "text"}])),
        open("notes", json!([{"name": "body", "type": "text"}, {"name": "secret", "type": "text", "hidden": true}])),
    ];
    for c in &collections {
        ok(call(p.port, "POST", "/api/collections", Some(&su), Some(c)));
    }
    (p, su)
}

fn items(port: u16, path: &str, token: Option<&str>) -> Vec<Value> {
    ok(call(port, "GET", path, token, None))["items"].as_array().cloned().unwrap_or_default()
}

fn audits_of(port: u16, su: &str, rid: &str) -> usize {
    items(port, &format!("/api/collections/audit/records?filter=rid%3D%27{rid}%27"), Some(su)).len()
}

/// Polls until `f` holds (after-commit hooks of batch writes run after the answer).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_request_hooks_mutate_refuse_and_audit_after_commit() {
    let (p, su) = start(Spawn::serve());
    let port = p.port;

    // The request hook changed the record before e.next(): stored and answered so.
    let created = ok(call(port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "hello", "n": 1}))));
    assert_eq!(created["title"], "hello (hooked)");
    assert_eq!(created["n"], 2);
    let id = created["id"].as_str().expect("id").to_owned();
    let stored = ok(call(port, "GET", &format!("/api/collections/posts/records/{id}"), None, None));
    assert_eq!(stored["title"], "hello (hooked)");
    // onRecordAfterCreateSuccess wrote its audit row through $app.save.
    assert_eq!(audits_of(port, &su, &id), 1);

    // A throwing request hook: PocketBase's envelope (sentenized message) and no row.
    let refused = call(port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "forbidden"})));
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json(), json!({"data": {}, "message": "No forbidden titles.", "status": 400}));
    // A throwing model hook (onRecordCreate) refuses the same way.
    let vetoed = call(port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "model-veto x"})));
    assert_eq!(vetoed.json(), json!({"data": {}, "message": "Vetoed by the model hook.", "status": 400}));
    // Positive control beside the negative one: only the hooked create is stored, with its audit.
    let titles: Vec<Value> = items(port, "/api/collections/posts/records", None).iter().map(|r| r["title"].clone()).collect();
    assert_eq!(titles, vec![json!("hello (hooked)")]);
    assert_eq!(items(port, "/api/collections/audit/records", Some(&su)).len(), 1);
}

#[test]
fn after_success_hooks_of_a_batch_fire_after_commit_only() {
    let (p, su) = start(Spawn::serve());
    let port = p.port;
    ok(call(port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true}}))));
    let id = |title: &str| format!("{title:0>15}");
    let create = |title: &str| json!({"method": "POST", "url": "/api/collections/posts/records", "body": {"id": id(title), "title": title}});
    // The second item fails (unknown collection): the batch rolls back, no hook fires.
    let failed = call(port, "POST", "/api/batch", None, Some(&json!({"requests": [create("rolledback"), {"method": "POST", "url": "/api/collections/nope/records", "body": {}}]})));
    assert_eq!(failed.status, 400);
    // A committed batch: its after-success hook writes the audit row (after the answer).
    ok(call(port, "POST", "/api/batch", None, Some(&json!({"requests": [create("committed")]}))));
    eventually("the committed item's audit row", || audits_of(port, &su, &id("committed")) == 1);
    // Both batches ran through the same hook; only the committed one has a row.
    assert_eq!(audits_of(port, &su, &id("rolledback")), 0);
    assert_eq!(items(port, "/api/collections/posts/records?filter=title%3D%27rolledback%27", None).len(), 0);
}

#[test]
fn app_lookups_raw_sql_and_records_answer_like_pocketbase() {
    let (p, _su) = start(Spawn::serve());
    let port = p.port;
    for t in ["hello", "help", "other"] {
        ok(call(port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": t}))));
    }
    // findRecordsByFilter with {:q}, sort and limit; findFirstRecordByFilter; countRecords.
    let found = ok(call(port, "GET", "/t/find?q=hel", None, None));
    assert_eq!(found, json!({"titles": ["hello (hooked)", "help (hooked)"], "first": true, "count": 3, "byIds": 1}));
    // A missing row thrown out of a handler: 404 with PocketBase's message.
    let missing = call(port, "GET", "/t/missing", None, None);
    assert_eq!(missing.json(), json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404}));
    // Raw SQL into DynamicModel (typed props) and arrayOf.
    let sql = ok(call(port, "GET", "/t/sql", None, None));
    assert_eq!(sql, json!({"n": 3, "typeofN": "number", "title": "other (hooked)", "rows": ["hello (hooked)", "help (hooked)", "other (hooked)"]}));
    // Record: modifiers, JSONRaw for json fields, fields are not properties, API JSON.
    let r = ok(call(port, "GET", "/t/record", None, None));
    assert_eq!(r["n"], 5);
    assert_eq!(r["tags"], json!(["c", "b"]));
    assert_eq!((r["metaA"].clone(), r["metaIsArray"].clone(), r["metaString"].clone()), (json!(1), json!(true), json!("{\"a\":1}")));
    assert_eq!((r["prop"].clone(), r["missing"].clone(), r["isNew"].clone()), (Value::Null, Value::Null, json!(true)));
    assert_eq!(r["json"]["collectionName"], "posts");
    assert_eq!(r["json"]["title"], "x");
    // $app.save fires the model hooks (the veto) and validates; a saved record reloads.
    let saved = ok(call(port, "POST", "/t/save", None, Some(&json!({"title": "saved"}))));
    assert_eq!(saved["title"], "saved updated");
    // original() keeps the record as loaded, also after a save (PocketBase 0.40.6: "saved").
    assert_eq!(saved["originalTitle"], "saved");
    assert_eq!(saved["createdIsDate"], true);
    let vetoed = call(port, "POST", "/t/save", None, Some(&json!({"title": "model-veto"})));
    assert_eq!(vetoed.json(), json!({"error": "Vetoed by the model hook."}));
}

#[test]
fn app_saves_auth_records_and_builds_dbx_queries() {
    let (p, _su) = start(Spawn::serve());
    for code in ["b", "a", "c"] {
        ok(call(p.port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "t", "code": code}))));
    }
    let m = ok(call(p.port, "GET", "/t/misc", None, None));
    assert_eq!(m["byToken"], "code@example.com");
    assert_eq!((m["valid"].clone(), m["wrong"].clone()), (json!(true), json!(false)));
    assert_eq!(m["recordQuery"], json!(["b", "a"]));
    assert_eq!(m["one"], "a");
    assert_eq!((m["inCount"].clone(), m["or"].clone(), m["not"].clone(), m["like"].clone()), (json!(2), json!(2), json!(2), json!(1)));
    assert_eq!(m["appName"], "Acme");
    assert_eq!(m["authCollections"], json!(["_superusers", "users"]));
}

#[test]
fn run_in_transaction_commits_or_rolls_back() {
    let (p, _su) = start(Spawn::serve());
    // The row was visible inside the transaction (the handler checks), then rolled back.
    assert_eq!(ok(call(p.port, "POST", "/t/tx?mode=rollback", None, None)), json!({"count": 0}));
    // Positive control: the same code without the throw commits.
    assert_eq!(ok(call(p.port, "POST", "/t/tx?mode=commit", None, None)), json!({"count": 1}));
}

#[test]
fn enrich_and_read_request_hooks() {
    let (p, su) = start(Spawn::serve());
    let port = p.port;
    let mut ids = Vec::new();
    for b in ["keep", "skip", "stop"] {
        // The create answer is enriched too (custom data shows); only superusers may set a
        // hidden field, and they see it in the answer whatever the enrich hook hid.
        let r = ok(call(port, "POST", "/api/collections/notes/records", Some(&su), Some(&json!({"body": b, "secret": format!("s-{b}")}))));
        assert_eq!(r["secret"], format!("s-{b}"));
        assert_eq!(r["computed"], 4);
        ids.push(r["id"].as_str().expect("id").to_owned());
    }
    // onRecordsListRequest dropped an item from e.result.items; enrich ran on the rest.
    let listed = ok(call(port, "GET", "/api/collections/notes/records", None, None));
    assert_eq!(listed["totalItems"], 3);
    let bodies: Vec<Value> = listed["items"].as_array().expect("items").iter().map(|r| r["body"].clone()).collect();
    assert_eq!(bodies, vec![json!("keep"), json!("stop")]);
    assert!(listed["items"][0].get("secret").is_none());
    // A superuser gets the hidden field back after enrich, whatever the hook hid.
    let as_su = ok(call(port, "GET", "/api/collections/notes/records", Some(&su), None));
    assert_eq!(as_su["items"][0]["secret"], "s-keep");
    // A view hook that returns without e.next(): an empty 200.
    let stopped = call(port, "GET", &format!("/api/collections/notes/records/{}", ids[2]), None, None);
    assert_eq!((stopped.status, stopped.body.len()), (200, 0));
    let viewed = ok(call(port, "GET", &format!("/api/collections/notes/records/{}", ids[0]), None, None));
    assert_eq!((viewed["body"].clone(), viewed["computed"].clone()), (json!("keep"), json!(4)));
}

#[test]
fn hooks_fire_on_whichever_worker_takes_the_request() {
    let (p, su) = start(Spawn::cluster(2));
    let mut conns = connection_per_worker(p.port, 2);
    for (worker, conn) in conns.iter_mut() {
        let body = json!({"title": format!("w{worker}")}).to_string();
        let req = format!(
            "POST /api/collections/posts/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        std::io::Write::write_all(conn, req.as_bytes()).expect("send");
        let r = read_one(conn).expect("answer");
        assert_eq!(r.status, 200, "worker {worker}: {}", String::from_utf8_lossy(&r.body));
        let created = r.json();
        assert_eq!(created["title"], format!("w{worker} (hooked)"));
        assert_eq!(audits_of(p.port, &su, created["id"].as_str().expect("id")), 1, "worker {worker} ran the after-success hook");
    }
}

#[test]
fn auth_hooks_and_record_auth_response() {
    let (p, _su) = start(Spawn::serve());
    let port = p.port;
    let user = json!({"email": "u@example.com", "password": "password123", "passwordConfirm": "password123"});
    ok(call(port, "POST", "/api/collections/users/records", None, Some(&user)));
    // onRecordAuthRequest sets e.meta on the built-in password auth; e.authMethod names it.
    let login = json!({"identity": "u@example.com", "password": "password123"});
    let r = ok(call(port, "POST", "/api/collections/users/auth-with-password", None, Some(&login)));
    assert_eq!(r["meta"], json!({"hooked": true, "method": "password", "email": "u@example.com"}));
    assert_eq!(r["record"]["email"], "u@example.com");
    assert!(r["record"].get("password").is_none() && r["record"].get("tokenKey").is_none());
    // $apis.recordAuthResponse from a route: the same chain with the custom method name, and
    // a token that authenticates.
    let custom = ok(call(port, "POST", "/t/login", None, Some(&json!({"email": "u@example.com", "password": "password123"}))));
    assert_eq!(custom["meta"]["method"], "custom");
    let token = custom["token"].as_str().expect("token");
    let refreshed = ok(call(port, "POST", "/api/collections/users/auth-refresh", Some(token), None));
    assert_eq!(refreshed["record"]["email"], "u@example.com");
    // e.auth in a route is that Record: its JSON as the API shows it to others (PocketBase:
    // no email while emailVisibility is false), email() and collection() still answer.
    let me = ok(call(port, "GET", "/t/me", Some(token), None));
    assert_eq!((me["email"].clone(), me["collection"].clone()), (json!("u@example.com"), json!("users")));
    assert_eq!(me["auth"]["id"], custom["record"]["id"]);
    assert!(me["auth"].get("email").is_none() && me["auth"].get("tokenKey").is_none() && me["auth"].get("password").is_none());
    // onRecordAuthWithPasswordRequest: a hook refusing a known identity, one answering for an
    // unknown one (e.record is null), and the default action's refusal of a wrong password.
    let signup = json!({"email": "banned@example.com", "password": "password123", "passwordConfirm": "password123"});
    ok(call(port, "POST", "/api/collections/users/records", None, Some(&signup)));
    let auth = |identity: &str, password: &str| {
        call(port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": identity, "password": password})))
    };
    assert_eq!(auth("banned@example.com", "password123").json(), json!({"data": {}, "message": "Banned.", "status": 403}));
    assert_eq!(ok(auth("ghost@example.com", "password123")), json!({"unknown": "ghost@example.com"}));
    assert_eq!(auth("u@example.com", "wrongpass1").json(), json!({"data": {}, "message": "Failed to authenticate.", "status": 400}));
    // record.validatePassword refused a wrong password: the route's own 400.
    let wrong = call(port, "POST", "/t/login", None, Some(&json!({"email": "u@example.com", "password": "nope"})));
    assert_eq!(wrong.json(), json!({"data": {}, "message": "Invalid credentials.", "status": 400}));
}

#[test]
fn update_delete_hooks_and_thrown_data_errors_match_pocketbase() {
    let (p, su) = start(Spawn::serve());
    let port = p.port;
    let post = |body: Value| call(port, "POST", "/api/collections/posts/records", None, Some(&body));
    // A request hook that returns without e.next(): an empty 200 and nothing stored.
    let silent = post(json!({"title": "silent"}));
    assert_eq!((silent.status, silent.body.len()), (200, 0));
    assert!(items(port, "/api/collections/posts/records", None).is_empty());
    // Before e.next() a new record has no id yet (PocketBase: "").
    let kept = ok(post(json!({"title": "a keep"})));
    assert_eq!(ok(call(port, "GET", "/t/idbefore", None, None)), json!({"id": ""}));
    let id = kept["id"].as_str().expect("id");
    // onRecordUpdateRequest sees the stored record as original() and the submitted values.
    let updated = ok(call(port, "PATCH", &format!("/api/collections/posts/records/{id}"), None, Some(&json!({"title": "b"}))));
    assert_eq!(updated["title"], "a keep (hooked)->b");
    // onRecordDeleteRequest refuses with a thrown ForbiddenError; another record deletes (204).
    let refused = call(port, "DELETE", &format!("/api/collections/posts/records/{id}"), None, None);
    assert_eq!(refused.json(), json!({"data": {}, "message": "Kept.", "status": 403}));
    let gone = ok(post(json!({"title": "gone"})));
    let deleted = call(port, "DELETE", &format!("/api/collections/posts/records/{}", gone["id"].as_str().expect("id")), None, None);
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    // A failed validation through a hooked create: the REST answer.
    let invalid = post(json!({"title": "c", "code": "toolong"}));
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["message"], "Failed to create record.");
    assert_eq!(invalid.json()["data"]["code"]["code"], "validation_max_text_constraint");
    // $app.save failing validation, not caught: the generic 400 with the field errors …
    let thrown = call(port, "POST", "/t/invalid", None, None);
    assert_eq!(thrown.json()["message"], "Something went wrong while processing your request.");
    assert_eq!(thrown.json()["data"]["code"]["code"], "validation_max_text_constraint");
    // … and caught, ozzo's text (PocketBase 0.40.6 answers this very string).
    let caught = ok(call(port, "POST", "/t/invalid?caught=1", None, None));
    assert_eq!(caught["message"], "code: Must be no more than 3 character(s)..");
    // A missing row caught in JS is Go's error.
    let missing = ok(call(port, "GET", "/t/missing-caught", None, None));
    assert_eq!(missing, json!({"message": "sql: no rows in result set", "str": "GoError: sql: no rows in result set"}));
    // An auth record in JS: no email while emailVisibility is false, no hash, DateTime dates.
    ok(call(port, "POST", "/api/collections/users/records", None, Some(&json!({"email": "u@example.com", "password": "password123", "passwordConfirm": "password123"}))));
    let a = ok(call(port, "GET", "/t/authjson?email=u%40example.com", None, None));
    assert!(a["rec"].get("email").is_none() && a["rec"].get("password").is_none() && a["rec"].get("tokenKey").is_none());
    assert_eq!((a["createdType"].clone(), a["password"].clone(), a["hasTokenKey"].clone(), a["byData"].clone()), (json!("object"), json!(""), json!(true), json!(true)));
    assert_eq!(a["created"], a["rec"]["created"]);
    // A hooked create with an upload: the hook's change and the stored file both land.
    let body = small_multipart(&[("title", "withfile")], &[("doc", "a.txt", b"hello")]);
    let r = post_multipart(port, "/api/collections/posts/records", &su, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["title"], "withfile (hooked)");
    assert!(created["doc"].as_str().is_some_and(|d| d.starts_with('a') && d.ends_with(".txt")), "{created}");
}
