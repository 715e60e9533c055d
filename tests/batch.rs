//! Settings and batch through the real binary: settings are superuser-only, keep secrets
//! write-only and apply across workers at once; a batch is off by default, runs all items in
//! one transaction and rolls back entirely when one fails, reporting PocketBase's nested error.

mod common;


use common::*;
use serde_json::json;


fn start(spawn: Spawn) -> (Proc, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    create_superuser(&tmp.path().join("data"), "su@example.com", "superuser password");
    let mut p = spawn.in_tempdir(tmp).start();
    p.wait_healthy();
    let r = call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": "su@example.com", "password": "superuser password"})));
    let token = r.json()["token"].as_str().expect("token").to_owned();
    let r = call(p.port, "POST", "/api/collections", Some(&token), Some(&json!({
        "name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text", "required": true}]
    })));
    assert_eq!(r.status, 200);
    (p, token)
}

#[test]
fn settings_are_superuser_only_and_keep_secrets_write_only() {
    let (p, su) = start(Spawn::serve());
    assert_eq!(call(p.port, "GET", "/api/settings", None, None).status, 401);
    let s = call(p.port, "GET", "/api/settings", Some(&su), None).json();
    assert_eq!(s["batch"], json!({"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}));
    let r = call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"meta": {"appName": "Mine"}, "smtp": {"password": "hunter2"}})));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["meta"]["appName"], "Mine");
    assert_eq!(r.json()["meta"]["senderName"], "Support", "a PATCH merges");
    let text = String::from_utf8_lossy(&call(p.port, "GET", "/api/settings", Some(&su), None).body).into_owned();
    assert!(!text.contains("hunter2"), "secrets never come back: {text}");
    let bad = call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"maxRequests": "many"}})));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["data"]["batch"].is_object());
}

#[test]
fn a_batch_is_all_or_nothing() {
    let (p, su) = start(Spawn::serve());
    let body = json!({"requests": [{"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "a"}}]});
    let r = call(p.port, "POST", "/api/batch", None, Some(&body));
    assert_eq!(r.status, 403, "off by default");
    assert_eq!(r.json()["message"], "Batch requests are not allowed.");
    assert_eq!(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true, "maxRequests": 3}}))).status, 200);

    let ok = call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": [
        {"method": "POST", "url": "/api/collections/posts/records", "body": {"id": "aaaaaaaaaaaaaaa", "title": "one"}},
        {"method": "PATCH", "url": "/api/collections/posts/records/aaaaaaaaaaaaaaa", "body": {"title": "one, edited"}},
        {"method": "PUT", "url": "/api/collections/posts/records", "body": {"id": "bbbbbbbbbbbbbbb", "title": "two"}}
    ]})));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let items = ok.json();
    assert_eq!(items[1]["status"], 200);
    assert_eq!(items[1]["body"]["title"], "one, edited", "an item sees what earlier items wrote");

    let failed = call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": [
        {"method": "DELETE", "url": "/api/collections/posts/records/aaaaaaaaaaaaaaa"},
        {"method": "POST", "url": "/api/collections/posts/records", "body": {}}
    ]})));
    assert_eq!(failed.status, 400);
    let f = failed.json();
    assert_eq!(f["message"], "Batch transaction failed.");
    assert_eq!(f["data"]["requests"]["1"]["code"], "batch_request_failed");
    assert_eq!(f["data"]["requests"]["1"]["response"]["data"]["title"]["code"], "validation_required");
    let list = call(p.port, "GET", "/api/collections/posts/records", None, None).json();
    assert_eq!(list["totalItems"], 2, "the delete of item 0 was rolled back with the failing item 1");

    let too_many = call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": (0..4).map(|i| json!({"method": "POST", "url": "/api/collections/posts/records", "body": {"title": format!("t{i}")}})).collect::<Vec<_>>()})));
    assert_eq!(too_many.status, 400);
    assert_eq!(too_many.json()["data"]["requests"]["code"], "validation_length_too_long");
    let bad_action = call(p.port, "POST", "/api/batch", None, Some(&json!({"requests": [{"method": "GET", "url": "/api/collections/posts/records"}]})));
    assert_eq!(bad_action.status, 400);
    assert_eq!(bad_action.json()["data"]["requests"]["0"]["code"], "batch_request_failed");
}

#[test]
fn enabling_batch_on_one_worker_enables_it_on_all() {
    let (p, su) = start(Spawn::cluster(3));
    p.wait_logs(3, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let body = json!({"requests": [{"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "x"}}]});
    for _ in 0..15 {
        assert_eq!(call(p.port, "POST", "/api/batch", None, Some(&body)).status, 403);
    }
    assert_eq!(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"batch": {"enabled": true}}))).status, 200);
    for i in 0..30 {
        assert_eq!(call(p.port, "POST", "/api/batch", None, Some(&body)).status, 200, "request {i}");
    }
}
