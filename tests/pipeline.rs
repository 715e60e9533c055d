//! The record write pipeline through the real binary: the test-only observer (on with
//! `VAULTBASE_TEST_OBSERVER=1`, read at `GET /_/test/observed`) is registered the way a hook
//! will be, and must see every write — REST, batch items, relation cascades — exactly once,
//! with the record before and after; a refusal from it stops the write. Also: a batch that
//! deletes a record and creates it again with files keeps the new files, and a batch's
//! `oldPassword` is checked (now off the writer thread) with the same answers as before.
//! (OAuth2 and the account-flow confirms are observed in `tests/sdk/observers.test.mjs`,
//! which has the mail server and the OIDC provider they need.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};


/// The observer's events since the last call (the route answers all of them).
fn observed(port: u16) -> Vec<Value> {
    static SEEN: std::sync::Mutex<Vec<(u16, usize)>> = std::sync::Mutex::new(Vec::new());
    let all = ok(get(port, "/_/test/observed").expect("observed"))["events"].as_array().cloned().unwrap_or_default();
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let from = seen.iter().find(|(p, _)| *p == port).map_or(0, |(_, n)| *n);
    seen.retain(|(p, _)| *p != port);
    seen.push((port, all.len()));
    all[from.min(all.len())..].to_vec()
}

/// `(stage, source, action, collection id, record id)` of each event.
fn summary(events: &[Value]) -> Vec<(String, String, String, String, String)> {
    events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("stage"), s("source"), s("action"), s("collectionId"), s("recordId"))
        })
        .collect()
}

fn ev(stage: &str, source: &str, action: &str, cid: &str, rid: &str) -> (String, String, String, String, String) {
    (stage.into(), source.into(), action.into(), cid.into(), rid.into())
}

#[test]
fn the_observer_sees_every_rest_batch_and_cascade_write_once_with_before_and_after() {
    let (p, su) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_OBSERVER", "1"));
    let authors = ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "authors", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "name", "type": "text"}, {"name": "observerVeto", "type": "text"}]
    }))));
    let aid = authors["id"].as_str().expect("authors id").to_owned();
    let books = ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "books", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "author", "type": "relation", "collectionId": aid, "maxSelect": 1, "cascadeDelete": true}]
    }))));
    let bid = books["id"].as_str().expect("books id").to_owned();
    ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true}}))));
    observed(p.port);

    // REST: create, update.
    let a = ok(call(p.port, "POST", "/api/collections/authors/records", None, Some(&json!({"id": "author000000001", "name": "Ann"}))));
    assert_eq!(a["id"], "author000000001");
    ok(call(p.port, "PATCH", "/api/collections/authors/records/author000000001", None, Some(&json!({"name": "Anna"}))));
    ok(call(p.port, "POST", "/api/collections/books/records", None, Some(&json!({"id": "book00000000001", "title": "One", "author": "author000000001"}))));
    let events = observed(p.port);
    assert_eq!(
        summary(&events),
        vec![
            ev("before", "rest", "create", &aid, "author000000001"),
            ev("after", "rest", "create", &aid, "author000000001"),
            ev("before", "rest", "update", &aid, "author000000001"),
            ev("after", "rest", "update", &aid, "author000000001"),
            ev("before", "rest", "create", &bid, "book00000000001"),
            ev("after", "rest", "create", &bid, "book00000000001"),
        ]
    );
    let update = &events[3];
    assert_eq!(update["before"]["name"], "Ann", "the committed update carries the record before it");
    assert_eq!(update["after"]["name"], "Anna");
    assert_eq!(events[2]["before"]["name"], "Ann");
    assert_eq!(events[2]["after"]["name"], "Anna", "the pending update shows the record as it will be written");
    assert!(events[1]["before"].is_null(), "a create has no before");

    // Batch: create, update, upsert (a create), delete — one event pair per item, in order.
    ok(call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": [
        {"method": "POST", "url": "/api/collections/authors/records", "body": {"id": "author000000002", "name": "Bo"}},
        {"method": "PATCH", "url": "/api/collections/authors/records/author000000002", "body": {"name": "Bob"}},
        {"method": "PUT", "url": "/api/collections/authors/records", "body": {"id": "author000000003", "name": "Cy"}},
        {"method": "DELETE", "url": "/api/collections/authors/records/author000000003"}
    ]}))));
    let events = observed(p.port);
    assert_eq!(
        summary(&events),
        vec![
            ev("before", "batch", "create", &aid, "author000000002"),
            ev("before", "batch", "update", &aid, "author000000002"),
            ev("before", "batch", "create", &aid, "author000000003"),
            ev("before", "batch", "delete", &aid, "author000000003"),
            ev("after", "batch", "create", &aid, "author000000002"),
            ev("after", "batch", "update", &aid, "author000000002"),
            ev("after", "batch", "create", &aid, "author000000003"),
            ev("after", "batch", "delete", &aid, "author000000003"),
        ]
    );
    assert_eq!(events[5]["before"]["name"], "Bo");
    assert_eq!(events[5]["after"]["name"], "Bob");
    assert_eq!(events[7]["before"]["name"], "Cy", "a delete carries the record as it was");
    assert!(events[7]["after"].is_null());

    // A delete that cascades: the author and the book that referenced it, each once.
    ok(call(p.port, "DELETE", "/api/collections/authors/records/author000000001", None, None));
    let events = observed(p.port);
    assert_eq!(
        summary(&events),
        vec![
            ev("before", "rest", "delete", &aid, "author000000001"),
            ev("after", "rest", "delete", &aid, "author000000001"),
            ev("after", "rest", "delete", &bid, "book00000000001"),
        ]
    );
    assert_eq!(events[2]["before"]["title"], "One");

    // A failed batch commits nothing, so no after event (its items were seen before).
    let failed = call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": [
        {"method": "POST", "url": "/api/collections/authors/records", "body": {"id": "author000000004", "name": "Di"}},
        {"method": "PATCH", "url": "/api/collections/authors/records/nosuchrecord000", "body": {"name": "x"}}
    ]})));
    assert_eq!(failed.status, 400);
    let events = observed(p.port);
    assert!(events.iter().all(|e| e["stage"] == "before"), "a rolled-back batch is never reported as committed: {events:?}");
    assert_eq!(call(p.port, "GET", "/api/collections/authors/records/author000000004", None, None).status, 404);
}

#[test]
fn an_observer_refusal_stops_the_write_before_anything_is_stored() {
    let (p, su) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_OBSERVER", "1"));
    ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "notes", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "observerVeto", "type": "text"}, {"name": "body", "type": "text"}]
    }))));
    ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true}}))));
    // Positive control: the same write without the veto goes through.
    ok(call(p.port, "POST", "/api/collections/notes/records", None, Some(&json!({"id": "note00000000001", "observerVeto": "allow"}))));
    let refused = call(p.port, "POST", "/api/collections/notes/records", None, Some(&json!({"id": "note00000000002", "observerVeto": "refuse"})));
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["message"], "Refused by the test observer.");
    assert_eq!(call(p.port, "GET", "/api/collections/notes/records/note00000000002", None, None).status, 404);
    let upd = call(p.port, "PATCH", "/api/collections/notes/records/note00000000001", None, Some(&json!({"observerVeto": "refuse", "body": "changed"})));
    assert_eq!(upd.status, 400);
    assert_eq!(ok(call(p.port, "GET", "/api/collections/notes/records/note00000000001", None, None))["body"], "", "the refused update wrote nothing");
    let batch = call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"id": "note00000000003"}},
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"id": "note00000000004", "observerVeto": "refuse"}}
    ]})));
    assert_eq!(batch.status, 400);
    assert_eq!(batch.json()["data"]["requests"]["1"]["response"]["message"], "Refused by the test observer.");
    assert_eq!(call(p.port, "GET", "/api/collections/notes/records/note00000000003", None, None).status, 404, "the whole batch is refused");
    let committed: Vec<Value> = observed(p.port).into_iter().filter(|e| e["stage"] == "after").collect();
    assert_eq!(committed.len(), 1, "only the allowed create committed: {committed:?}");
}

fn stored_files(p: &Proc, cid: &str, rid: &str) -> Vec<String> {
    let dir = p.dir.join("storage").join(cid).join(rid);
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).filter(|e| e.path().is_file()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn a_batch_that_deletes_a_record_and_creates_it_again_with_files_keeps_the_new_files() {
    let (p, su) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_OBSERVER", "1"));
    let docs = ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "docs", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "file", "type": "file", "maxSelect": 1, "maxSize": 1000000}]
    }))));
    let cid = docs["id"].as_str().expect("id").to_owned();
    ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true}}))));
    let first = post_multipart(p.port, "/api/collections/docs/records", &su, &small_multipart(&[("id", "doc000000000001")], &[("file", "old.txt", b"old bytes")]));
    let old_name = ok(first)["file"].as_str().expect("file").to_owned();
    assert_eq!(stored_files(&p, &cid, "doc000000000001"), vec![old_name.clone()]);

    let payload = json!({"requests": [
        {"method": "DELETE", "url": "/api/collections/docs/records/doc000000000001"},
        {"method": "POST", "url": "/api/collections/docs/records", "body": {"id": "doc000000000001"}}
    ]})
    .to_string();
    let body = small_multipart(&[("@jsonPayload", &payload)], &[("requests.1.file", "new.txt", b"new bytes")]);
    let r = post_multipart(p.port, "/api/batch", &su, &body);
    let items = ok(r);
    let new_name = items[1]["body"]["file"].as_str().expect("new file").to_owned();
    assert_ne!(new_name, old_name);
    // The old record's file is gone from the disk; the new one is there and downloads.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored_files(&p, &cid, "doc000000000001") != vec![new_name.clone()] {
        assert!(std::time::Instant::now() < deadline, "storage holds {:?}, want only {new_name}", stored_files(&p, &cid, "doc000000000001"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let dl = get(p.port, &format!("/api/files/docs/doc000000000001/{new_name}")).expect("download");
    assert_eq!((dl.status, dl.body.as_slice()), (200, b"new bytes".as_slice()));
}

#[test]
fn a_batch_checks_old_passwords_before_its_transaction() {
    let (p, su) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_OBSERVER", "1"));
    ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "members", "type": "auth", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "id = @request.auth.id", "deleteRule": null,
        "fields": []
    }))));
    ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true}}))));
    let m = ok(call(p.port, "POST", "/api/collections/members/records", None, Some(&json!({"email": "m@example.com", "password": "first password", "passwordConfirm": "first password"}))));
    let id = m["id"].as_str().expect("id").to_owned();
    let auth = ok(call(p.port, "POST", "/api/collections/members/auth-with-password", None, Some(&json!({"identity": "m@example.com", "password": "first password"}))));
    let token = auth["token"].as_str().expect("token").to_owned();
    let change = |old: &str, new: &str| {
        call(p.port, "POST", "/api/batch", Some(&token), Some(&json!({"requests": [
            {"method": "PATCH", "url": format!("/api/collections/members/records/{id}"), "body": {"oldPassword": old, "password": new, "passwordConfirm": new}}
        ]})))
    };
    let wrong = change("not the password", "second password");
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["data"]["requests"]["0"]["response"]["data"]["oldPassword"]["code"], "validation_invalid_old_password");
    assert_eq!(change("first password", "second password").status, 200, "the right old password is accepted");
    let login = call(p.port, "POST", "/api/collections/members/auth-with-password", None, Some(&json!({"identity": "m@example.com", "password": "second password"})));
    assert_eq!(login.status, 200, "the new password is in force");
}
