//! Collections and superuser auth through the real binary, in serve and cluster mode:
//! the superuser CLI, auth-with-password / auth-refresh / auth-methods, the collections API
//! and its guard, and cluster coherence (a change through one worker is in force on every
//! worker for the very next request).

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";

fn superuser(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).arg("superuser").args(args).arg("--dir").arg(dir).output().expect("run cli");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}


fn login(port: u16, password: &str) -> Resp {
    call(port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": EMAIL, "password": password})))
}

fn token(port: u16) -> String {
    let r = login(port, PASSWORD);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().expect("token").to_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn start_with_superuser(spawn: Spawn) -> Proc {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ok, out) = superuser(&tmp.path().join("data"), &["upsert", EMAIL, PASSWORD]);
    assert!(ok, "{out}");
    let mut p = spawn.in_tempdir(tmp).start();
    p.wait_healthy();
    p
}

#[test]
fn superuser_login_and_the_auth_endpoints_answer_like_pocketbase() {
    let p = start_with_superuser(Spawn::serve());
    let r = login(p.port, PASSWORD);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["record"]["email"], EMAIL);
    assert_eq!(body["record"]["collectionName"], "_superusers");
    assert_eq!(body["record"]["verified"], true);
    assert!(body["record"].get("password").is_none() && body["record"].get("tokenKey").is_none());
    let t = body["token"].as_str().expect("token").to_owned();

    // Wrong password and unknown user: the same 400.
    for (identity, pw) in [(EMAIL, "wrong password"), ("nobody@example.com", PASSWORD)] {
        let r = call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": identity, "password": pw})));
        assert_eq!(r.status, 400);
        assert_eq!(r.json(), json!({"status": 400, "message": "Failed to authenticate.", "data": {}}));
    }
    let r = call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["identity"]["code"], "validation_required");
    assert_eq!(r.json()["data"]["password"]["code"], "validation_required");

    // Refresh with and without the Bearer prefix; a guest gets 401.
    for header in [t.clone(), format!("Bearer {t}")] {
        let r = call(p.port, "POST", "/api/collections/_superusers/auth-refresh", Some(&header), None);
        assert_eq!(r.status, 200, "{header}");
        assert_eq!(r.json()["record"]["email"], EMAIL);
    }
    let r = call(p.port, "POST", "/api/collections/_superusers/auth-refresh", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "The request requires valid record authorization token.");

    let m = call(p.port, "GET", "/api/collections/_superusers/auth-methods", None, None).json();
    assert_eq!(m["password"], json!({"enabled": true, "identityFields": ["email"]}));
    assert_eq!(m["emailPassword"], true);
    assert_eq!(call(p.port, "GET", "/api/collections/nope/auth-methods", None, None).status, 404);
}

#[test]
fn changing_the_password_revokes_old_tokens() {
    let p = start_with_superuser(Spawn::serve());
    let old = token(p.port);
    assert_eq!(call(p.port, "GET", "/api/collections", Some(&old), None).status, 200);
    let (ok, out) = superuser(&p.dir, &["upsert", EMAIL, "a brand new password"]);
    assert!(ok, "{out}");
    let r = call(p.port, "GET", "/api/collections", Some(&old), None);
    assert_eq!(r.status, 401, "the old token is now a guest's");
    assert_eq!(login(p.port, PASSWORD).status, 400);
    assert_eq!(login(p.port, "a brand new password").status, 200);
}

#[test]
fn superuser_cli_refuses_bad_input_and_the_last_superuser() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    assert!(!superuser(&dir, &["upsert", "not-an-email", PASSWORD]).0);
    assert!(!superuser(&dir, &["upsert", EMAIL, "short"]).0);
    assert!(superuser(&dir, &["upsert", EMAIL, PASSWORD]).0);
    let (ok, out) = superuser(&dir, &["delete", EMAIL]);
    assert!(!ok && out.contains("only existing superuser"), "{out}");
    assert!(superuser(&dir, &["upsert", "second@example.com", PASSWORD]).0);
    assert!(superuser(&dir, &["delete", EMAIL]).0);
    let (ok, out) = superuser(&dir, &["delete", "ghost@example.com"]);
    assert!(!ok && out.contains("no superuser"), "{out}");
}

#[test]
fn collections_api_is_superuser_only_and_round_trips() {
    let p = start_with_superuser(Spawn::serve());
    let t = token(p.port);
    let r = call(p.port, "GET", "/api/collections", None, None);
    assert_eq!(r.status, 401);

    let r = call(p.port, "POST", "/api/collections", Some(&t), Some(&json!({"name": "posts", "fields": [{"name": "title", "type": "text", "required": true}]})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["id"], "pbc_1125843985", "PocketBase's id for a base collection named posts");
    assert_eq!(created["type"], "base");
    assert_eq!(created["fields"][0]["name"], "id", "the system id field is added");
    assert_eq!(created["fields"][1]["id"], "text724990059");
    assert!(created["listRule"].is_null());

    let dup = call(p.port, "POST", "/api/collections", Some(&t), Some(&json!({"name": "Posts"})));
    assert_eq!(dup.status, 400);
    assert_eq!(dup.json()["message"], "Failed to create collection.");
    assert_eq!(dup.json()["data"]["name"]["code"], "validation_collection_name_exists");

    let bad = call(p.port, "POST", "/api/collections", Some(&t), Some(&json!({"name": "bad name!", "fields": [{"name": "expand", "type": "bool"}]})));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["data"]["name"].is_object() && bad.json()["data"]["fields"]["1"]["name"].is_object(), "{}", bad.json());

    let r = call(p.port, "PATCH", "/api/collections/posts", Some(&t), Some(&json!({"fields": [{"name": "x", "type": "no-such-type"}]})));
    assert_eq!(r.status, 400, "a malformed field definition is refused with its reason");
    assert_eq!(r.json()["message"], "Failed to update collection.");
    assert_eq!(r.json()["data"]["fields"]["code"], "validation_invalid_value");
    let r = call(p.port, "PATCH", "/api/collections/posts", Some(&t), Some(&json!({"listRule": "", "name": "articles"})));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["listRule"], "");
    assert_eq!(call(p.port, "GET", "/api/collections/posts", Some(&t), None).status, 404);
    assert_eq!(call(p.port, "GET", "/api/collections/articles", Some(&t), None).json()["name"], "articles");

    let list = call(p.port, "GET", "/api/collections?perPage=1&sort=name", Some(&t), None).json();
    assert_eq!(list["perPage"], 1);
    assert_eq!(list["totalItems"], 8, "PocketBase's system collections (_mfas, _otps, _externalAuths, _authOrigins, _superusers), vaultbase's _webhooks, the default users and articles");
    assert_eq!(list["items"][0]["name"], "_authOrigins");
    let scaffolds = call(p.port, "GET", "/api/collections/meta/scaffolds", Some(&t), None).json();
    assert_eq!(scaffolds["auth"]["fields"].as_array().map(Vec::len), Some(6));

    let r = call(p.port, "DELETE", "/api/collections/_superusers", Some(&t), None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Failed to delete collection.");
    assert_eq!(call(p.port, "DELETE", "/api/collections/articles/truncate", Some(&t), None).status, 204);
    assert_eq!(call(p.port, "DELETE", "/api/collections/articles", Some(&t), None).status, 204);
    assert_eq!(call(p.port, "GET", "/api/collections/articles", Some(&t), None).status, 404);

    let r = call(p.port, "POST", "/api/collections", Some(&t), None);
    assert_eq!(r.status, 400, "an empty body has no name");
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    use std::io::Write;
    write!(raw, "POST /api/collections HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {t}\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n{{bad").expect("write");
    let r = read_response(&mut raw, false).expect("response");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Failed to load the collection type data due to invalid formatting.");
}

#[test]
fn a_collection_created_through_one_worker_is_in_force_on_all_of_them_at_once() {
    let p = start_with_superuser(Spawn::cluster(4));
    p.wait_logs(4, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let t = token(p.port);
    // Warm every worker's cache first, so a stale cache would show.
    for _ in 0..20 {
        assert_eq!(call(p.port, "GET", "/api/collections/posts", Some(&t), None).status, 404);
    }
    let r = call(p.port, "POST", "/api/collections", Some(&t), Some(&json!({"name": "posts"})));
    assert_eq!(r.status, 200);
    let mut pids = std::collections::HashSet::new();
    for i in 0..50 {
        let r = call(p.port, "GET", "/api/collections/posts", Some(&t), None);
        assert_eq!(r.status, 200, "request {i} on a fresh connection saw no collection");
        pids.insert(get(p.port, "/_/health").expect("health").json()["pid"].clone());
    }
    assert!(pids.len() >= 2, "the requests reached several workers");
    // And a rename is seen everywhere just as fast.
    assert_eq!(call(p.port, "PATCH", "/api/collections/posts", Some(&t), Some(&json!({"name": "notes"}))).status, 200);
    for _ in 0..50 {
        assert_eq!(call(p.port, "GET", "/api/collections/posts", Some(&t), None).status, 404);
        assert_eq!(call(p.port, "GET", "/api/collections/notes", Some(&t), None).status, 200);
    }
}

#[test]
fn the_auth_rule_decides_who_may_log_in() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "members", "type": "auth", "createRule": "", "authRule": "verified = true"
    })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let creds = json!({"email": "m@example.com", "password": "member password", "passwordConfirm": "member password"});
    let member = call(p.port, "POST", "/api/collections/members/records", None, Some(&creds));
    assert_eq!(member.status, 200, "{}", String::from_utf8_lossy(&member.body));
    let id = member.json()["id"].as_str().expect("id").to_owned();
    let login = || call(p.port, "POST", "/api/collections/members/auth-with-password", None, Some(&json!({"identity": "m@example.com", "password": "member password"})));
    assert_eq!(login().status, 403, "unverified: the rule refuses");
    let r = call(p.port, "PATCH", &format!("/api/collections/members/records/{id}"), Some(&su), Some(&json!({"verified": true})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(login().status, 200, "verified: allowed");
    assert_eq!(call(p.port, "PATCH", "/api/collections/members", Some(&su), Some(&json!({"authRule": null}))).status, 200);
    assert_eq!(login().status, 403, "a null authRule disables authentication");
}

#[test]
fn view_collections_read_through_their_query() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    assert_eq!(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "posts", "listRule": "", "createRule": "", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]
    }))).status, 200);
    for (t, n) in [("a", 1), ("b", 5)] {
        assert_eq!(call(p.port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": t, "n": n}))).status, 200);
    }
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "big", "type": "view", "listRule": "", "viewRule": "", "viewQuery": "SELECT id, title, n FROM posts WHERE n > 2"
    })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let types: Vec<String> = r.json()["fields"].as_array().expect("fields").iter().map(|f| format!("{}:{}", f["name"].as_str().unwrap_or(""), f["type"].as_str().unwrap_or(""))).collect();
    assert_eq!(types, ["id:text", "title:text", "n:number"]);
    let list = call(p.port, "GET", "/api/collections/big/records", None, None).json();
    assert_eq!(list["totalItems"], 1);
    assert_eq!(list["items"][0]["title"], "b");
    assert_eq!(list["items"][0]["n"], 5);
    let r = call(p.port, "POST", "/api/collections/big/records", Some(&su), Some(&json!({"title": "x"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Unsupported collection type.");
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "bad", "type": "view", "viewQuery": "SELECT title FROM posts"})));
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["viewQuery"].is_object());
}

#[test]
fn import_creates_updates_and_deletes_in_one_transaction() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    assert_eq!(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "old_stuff"}))).status, 200);
    assert_eq!(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))).status, 200);
    let import = json!({"deleteMissing": true, "collections": [
        {"name": "posts", "listRule": "", "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "editor"}]},
        {"name": "tags", "fields": [{"name": "label", "type": "text"}]}
    ]});
    let r = call(p.port, "PUT", "/api/collections/import", Some(&su), Some(&import));
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let names: Vec<String> = call(p.port, "GET", "/api/collections?sort=name", Some(&su), None).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["_authOrigins", "_externalAuths", "_mfas", "_otps", "_superusers", "_webhooks", "posts", "tags"], "old_stuff deleted, tags created, system kept");
    let posts = call(p.port, "GET", "/api/collections/posts", Some(&su), None).json();
    assert_eq!(posts["listRule"], "");
    assert_eq!(posts["fields"].as_array().map(Vec::len), Some(3), "id kept, body added");

    // A bad definition fails the whole import: nothing changes.
    let bad = json!({"collections": [{"name": "fine"}, {"name": "bad name"}]});
    let r = call(p.port, "PUT", "/api/collections/import", Some(&su), Some(&bad));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Failed to import collections.");
    assert!(r.json()["data"]["collections"]["1"]["name"].is_object(), "{}", r.json());
    assert_eq!(call(p.port, "GET", "/api/collections/fine", Some(&su), None).status, 404, "rolled back");
}

#[test]
fn api_health_tells_superusers_more() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    assert_eq!(call(p.port, "GET", "/api/health", None, None).json()["data"], json!({}));
    let h = call(p.port, "GET", "/api/health", Some(&su), None).json();
    assert_eq!(h["message"], "API is healthy.");
    assert_eq!(h["data"], json!({"canBackup": true, "realIP": "127.0.0.1", "possibleProxyHeader": ""}));
}

#[test]
fn the_manage_rule_lets_managers_set_email_and_verified() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "staff", "type": "auth", "createRule": "", "listRule": "", "viewRule": "",
        "updateRule": "id = @request.auth.id || @request.auth.role = 'admin'",
        "manageRule": "@request.auth.role = 'admin'",
        "fields": [{"name": "role", "type": "select", "values": ["admin", "member"], "maxSelect": 1}]
    })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut ids = Vec::new();
    for (email, role) in [("boss@example.com", "admin"), ("ann@example.com", "member")] {
        let r = call(p.port, "POST", "/api/collections/staff/records", Some(&su), Some(&json!({
            "email": email, "password": "staff password", "passwordConfirm": "staff password", "role": role
        })));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["id"].as_str().expect("id").to_owned());
    }
    let login = |email: &str| {
        call(p.port, "POST", "/api/collections/staff/auth-with-password", None, Some(&json!({"identity": email, "password": "staff password"}))).json()["token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let (boss, ann) = (login("boss@example.com"), login("ann@example.com"));
    // A member may update herself but not change her email or verified flag directly.
    let r = call(p.port, "PATCH", &format!("/api/collections/staff/records/{}", ids[1]), Some(&ann), Some(&json!({"verified": true})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["verified"]["code"], "validation_values_mismatch");
    // The admin passes the manage rule: both are allowed.
    let r = call(p.port, "PATCH", &format!("/api/collections/staff/records/{}", ids[1]), Some(&boss), Some(&json!({"verified": true, "email": "ann2@example.com"})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["verified"], true);
}

#[test]
fn names_the_record_queries_cannot_use_are_refused_at_create_update_and_import() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let long = "x".repeat(65);
    for (name, code) in [("1abc", "validation_invalid_name"), (long.as_str(), "validation_length_out_of_range"), ("order", "validation_invalid_name")] {
        let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": name, "listRule": ""})));
        assert_eq!(r.status, 400, "{name}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["message"], "Failed to create collection.");
        assert_eq!(r.json()["data"]["name"]["code"], code, "{name}");
        let r = call(p.port, "PUT", "/api/collections/import", Some(&su), Some(&json!({"collections": [{"name": name}]})));
        assert_eq!(r.status, 400, "{name}");
        assert_eq!(r.json()["data"]["collections"]["0"]["name"]["code"], code, "{name}");
    }
    // The longest accepted name works end to end (positive control).
    let max = "y".repeat(64);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": max, "listRule": "", "fields": [{"name": "t", "type": "text"}]})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(call(p.port, "POST", &format!("/api/collections/{max}/records"), Some(&su), Some(&json!({"t": "a"}))).status, 200);
    let r = call(p.port, "GET", &format!("/api/collections/{max}/records?filter=t%3D'a'&sort=-t"), None, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["totalItems"], 1);
    let r = call(p.port, "PATCH", &format!("/api/collections/{max}"), Some(&su), Some(&json!({"name": "2nd"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Failed to update collection.");
    assert_eq!(r.json()["data"]["name"]["code"], "validation_invalid_name");
}

#[test]
fn custom_indexes_never_drop_the_unique_email_index_of_an_auth_collection() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "members", "type": "auth", "indexes": ["CREATE INDEX idx_verified ON members (verified)"]
    })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = call(p.port, "PATCH", "/api/collections/members", Some(&su), Some(&json!({"indexes": []})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let indexes = r.json()["indexes"].clone();
    assert!(indexes.as_array().is_some_and(|i| i.iter().any(|s| s.as_str().is_some_and(|s| s.contains("UNIQUE") && s.contains("\"email\"")))), "{indexes}");
    let user = json!({"email": "same@example.com", "password": "member password", "passwordConfirm": "member password"});
    assert_eq!(call(p.port, "POST", "/api/collections/members/records", Some(&su), Some(&user)).status, 200);
    let r = call(p.port, "POST", "/api/collections/members/records", Some(&su), Some(&user));
    assert_eq!(r.status, 400, "a second account with the same email: {}", String::from_utf8_lossy(&r.body));
}

#[test]
fn collections_filter_by_type_name_system_and_id_like_records() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    assert_eq!(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))).status, 200);
    let names = |filter: &str| -> Vec<String> {
        let r = call(p.port, "GET", &format!("/api/collections?sort=name&filter={}", encode(filter)), Some(&su), None);
        assert_eq!(r.status, 200, "{filter}: {}", String::from_utf8_lossy(&r.body));
        r.json()["items"].as_array().expect("items").iter().map(|c| c["name"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(names("type='auth'"), ["_superusers", "users"]);
    assert_eq!(names("type = 'auth' && system = false"), ["users"]);
    assert_eq!(names("name ~ 'post' || id = '_pb_users_auth_'"), ["posts", "users"]);
    let r = call(p.port, "GET", &format!("/api/collections?filter={}", encode("type='base'")), Some(&su), None).json();
    assert_eq!(r["totalItems"], 6, "posts, PocketBase's four system base collections and vaultbase's _webhooks");
    let r = call(p.port, "GET", &format!("/api/collections?filter={}", encode("nosuch = 1")), Some(&su), None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"status": 400, "message": "Something went wrong while processing your request.", "data": {}}));
    let r = call(p.port, "GET", "/api/collections?sort=nosuch", Some(&su), None);
    assert_eq!(r.json(), json!({"status": 400, "message": "Something went wrong while processing your request.", "data": {}}));
}

#[test]
fn every_rule_is_compiled_against_the_fields_when_saved() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    assert_eq!(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))).status, 200);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "drafts", "viewRule": "nosuchfield = 1"})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["message"], "Failed to create collection.");
    assert_eq!(r.json()["data"]["viewRule"]["code"], "validation_invalid_rule");
    assert_eq!(call(p.port, "GET", "/api/collections/drafts", Some(&su), None).status, 404, "nothing created");
    let r = call(p.port, "PATCH", "/api/collections/posts", Some(&su), Some(&json!({"listRule": "nosuchfield = 1"})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["message"], "Failed to update collection.");
    assert_eq!(r.json()["data"]["listRule"]["code"], "validation_invalid_rule");
    let r = call(p.port, "PATCH", "/api/collections/users", Some(&su), Some(&json!({"manageRule": "nosuch.x = 1", "authRule": "verified = true"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["manageRule"]["code"], "validation_invalid_rule");
    assert!(r.json()["data"].get("authRule").is_none(), "a valid rule is not reported");
    let r = call(p.port, "PATCH", "/api/collections/posts", Some(&su), Some(&json!({"listRule": "title != ''"})));
    assert_eq!(r.status, 200, "a rule over real fields passes: {}", String::from_utf8_lossy(&r.body));
    let r = call(p.port, "PUT", "/api/collections/import", Some(&su), Some(&json!({"collections": [{"name": "posts", "deleteRule": "nope = 1", "fields": [{"name": "title", "type": "text"}]}]})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["collections"]["0"]["deleteRule"]["code"], "validation_invalid_rule");
}

#[test]
fn a_fresh_data_dir_has_pocketbases_users_collection() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let r = call(p.port, "GET", "/api/collections/users", Some(&su), None);
    assert_eq!(r.status, 200);
    let users = r.json();
    assert_eq!(users["id"], "_pb_users_auth_");
    assert_eq!(users["type"], "auth");
    assert_eq!(users["system"], false);
    for rule in ["listRule", "viewRule", "updateRule", "deleteRule"] {
        assert_eq!(users[rule], "id = @request.auth.id", "{rule}");
    }
    assert_eq!(users["createRule"], "");
    let fields: Vec<&str> = users["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(fields, ["id", "password", "tokenKey", "email", "emailVisibility", "verified", "name", "avatar", "created", "updated"]);
    assert_eq!(users["fields"][6]["max"], 255);
    assert_eq!(users["fields"][7]["mimeTypes"], json!(["image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"]));
    assert_eq!(users["oauth2"]["mappedFields"], json!({"id": "", "name": "name", "username": "", "avatarURL": "avatar"}));

    // Anyone may sign up; each user sees only themselves.
    let mut ids = Vec::new();
    for email in ["ann@example.com", "bob@example.com"] {
        let r = call(p.port, "POST", "/api/collections/users/records", None, Some(&json!({"email": email, "password": "user password", "passwordConfirm": "user password", "name": "N"})));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["id"].as_str().expect("id").to_owned());
    }
    let ann = call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "ann@example.com", "password": "user password"})));
    let ann = ann.json()["token"].as_str().expect("token").to_owned();
    let r = call(p.port, "GET", "/api/collections/users/records", Some(&ann), None).json();
    assert_eq!(r["totalItems"], 1);
    assert_eq!(r["items"][0]["id"], ids[0].as_str());
    assert_eq!(call(p.port, "GET", "/api/collections/users/records", None, None).json()["totalItems"], 0);
}

#[test]
fn the_default_users_collection_is_created_once_not_on_every_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let (ok, out) = superuser(&dir, &["upsert", EMAIL, PASSWORD]);
    assert!(ok, "{out}");
    let mut p = Spawn::serve().dir(&dir).start();
    p.wait_healthy();
    let su = token(p.port);
    assert_eq!(call(p.port, "GET", "/api/collections/users", Some(&su), None).status, 200, "there at first");
    assert_eq!(call(p.port, "DELETE", "/api/collections/users", Some(&su), None).status, 204);
    drop(p);
    let mut p = Spawn::serve().dir(&dir).start();
    p.wait_healthy();
    let su = token(p.port);
    assert_eq!(call(p.port, "GET", "/api/collections/users", Some(&su), None).status, 404, "a deleted default stays deleted");
    assert_eq!(call(p.port, "GET", "/api/collections/_superusers", Some(&su), None).status, 200);
}

#[test]
fn every_failing_view_query_is_a_400_on_view_query() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let create = |query: &str| call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "v1", "type": "view", "viewQuery": query})));
    let refused = |r: Resp| -> String {
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        assert_eq!(body["data"]["viewQuery"]["code"], "validation_invalid_view_query", "{body}");
        body["data"]["viewQuery"]["message"].as_str().expect("message").to_owned()
    };
    // PocketBase 0.40.6's answers, word for word.
    assert_eq!(refused(create("select idx from _superusers")), "Invalid query - SQL logic error: no such column: idx (1).");
    assert!(refused(create("select id from nosuch")).contains("no such table: nosuch"));
    assert!(refused(create("select id, from _superusers")).contains("syntax error"));
    assert_eq!(refused(create("select id from _superusers; select 1")), "Invalid query - multiple statements are not supported.");
    assert!(refused(create("select email from _superusers")).starts_with("Invalid query - missing required id column"));
    // Positive control: a good query (a trailing `;` is fine) makes the view.
    let v = ok(create("select id, email from _superusers;"));
    // Update: refused the same way, and the view keeps working with its old query.
    let r = call(p.port, "PATCH", "/api/collections/v1", Some(&su), Some(&json!({"viewQuery": "select idx from _superusers"})));
    assert_eq!(refused(r), "Invalid query - SQL logic error: no such column: idx (1).");
    assert_eq!(ok(call(p.port, "GET", "/api/collections/v1/records", Some(&su), None))["totalItems"], 1);
    // Import: the same refusal, keyed by the definition at fault.
    let mut bad = v.clone();
    bad["viewQuery"] = json!("select id from nosuch");
    let r = call(p.port, "PUT", "/api/collections/import", Some(&su), Some(&json!({"collections": [bad]})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["collections"]["0"]["viewQuery"]["code"], "validation_invalid_view_query", "{}", String::from_utf8_lossy(&r.body));
    let r = call(p.port, "PUT", "/api/collections/import", Some(&su), Some(&json!({"collections": [{"name": "v2", "type": "view", "viewQuery": "select idx from _superusers"}]})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // Dropping a column a view selects: SQLite refuses, and so does the API (400, not 500).
    ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "posts", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}))));
    ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "titles", "type": "view", "viewQuery": "SELECT id, title FROM posts"}))));
    let posts = ok(call(p.port, "GET", "/api/collections/posts", Some(&su), None));
    let without = |name: &str| -> Vec<serde_json::Value> { posts["fields"].as_array().expect("fields").iter().filter(|f| f["name"] != name).cloned().collect() };
    let r = call(p.port, "PATCH", "/api/collections/posts", Some(&su), Some(&json!({"fields": without("title")})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().expect("message").contains("failed to drop column title"));
    // Positive control: a column no view uses drops.
    ok(call(p.port, "PATCH", "/api/collections/posts", Some(&su), Some(&json!({"fields": without("n")}))));
    // Deleting a collection a view selects from: refused, and the view still reads.
    let r = call(p.port, "DELETE", "/api/collections/posts", Some(&su), None);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().expect("message").contains("titles"));
    assert_eq!(ok(call(p.port, "GET", "/api/collections/titles/records", Some(&su), None))["totalItems"], 0);
    // Positive control: once the view is gone, so can the collection be.
    assert_eq!(call(p.port, "DELETE", "/api/collections/titles", Some(&su), None).status, 204);
    assert_eq!(call(p.port, "DELETE", "/api/collections/posts", Some(&su), None).status, 204);
}

#[test]
fn renaming_a_field_rewrites_indexes_in_every_identifier_quoting() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let t9 = ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "t9", "fields": [{"name": "title", "type": "text"}, {"name": "sub", "type": "text"}],
        "indexes": ["CREATE INDEX `idx_a` ON `t9` (`title`)", "CREATE INDEX idx_b ON t9 ([title], sub)", "CREATE INDEX idx_c ON t9 (\"title\" COLLATE nocase)"]
    }))));
    let mut fields = t9["fields"].clone();
    for f in fields.as_array_mut().expect("fields") {
        if f["name"] == "title" {
            f["name"] = json!("headline");
        }
    }
    let r = call(p.port, "PATCH", "/api/collections/t9", Some(&su), Some(&json!({"fields": fields})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let indexes: Vec<String> = serde_json::from_value(r.json()["indexes"].clone()).expect("indexes");
    // The table part stays as written (it already names the table); only the column moves.
    assert_eq!(indexes, [
        "CREATE INDEX `idx_a` ON `t9` (\"headline\")",
        "CREATE INDEX idx_b ON t9 (\"headline\", sub)",
        "CREATE INDEX idx_c ON t9 (\"headline\" COLLATE nocase)",
    ]);
    // The indexes exist on the renamed column.
    let r = ok(call(p.port, "POST", "/api/collections/t9/records", Some(&su), Some(&json!({"headline": "x"}))));
    assert_eq!(r["headline"], "x");
}

#[test]
fn view_fields_copy_the_fields_they_select_like_pocketbase() {
    let p = start_with_superuser(Spawn::serve());
    let su = token(p.port);
    let tags = ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "tags", "listRule": "", "viewRule": "", "createRule": "", "fields": [{"name": "label", "type": "text"}]}))));
    ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "posts", "listRule": "", "createRule": "", "fields": [
        {"name": "title", "type": "text", "max": 50},
        {"name": "image", "type": "file", "maxSelect": 3, "maxSize": 1000, "mimeTypes": ["image/png"]},
        {"name": "tag", "type": "relation", "collectionId": tags["id"], "maxSelect": 1},
        {"name": "kind", "type": "select", "values": ["a", "b"], "maxSelect": 1},
        {"name": "meta", "type": "json"}, {"name": "at", "type": "date"}, {"name": "ok", "type": "bool"}, {"name": "n", "type": "number"}
    ]}))));
    let tag = ok(call(p.port, "POST", "/api/collections/tags/records", None, Some(&json!({"label": "red"}))));
    ok(call(p.port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "hello", "tag": tag["id"], "kind": "b", "n": 2}))));
    let query = "SELECT p.id, p.title, p.image, p.tag, p.kind AS k, p.meta, p.at, p.ok, p.n, t.id AS tagref, t.label, \
                 count(p.id) AS c, CAST(p.n AS TEXT) AS nt, (p.n + 1) AS expr \
                 FROM posts p LEFT JOIN tags t ON t.id = p.tag GROUP BY p.id";
    let v = ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "post_view", "type": "view", "listRule": "", "viewQuery": query}))));
    let types: Vec<String> = v["fields"].as_array().expect("fields").iter().map(|f| format!("{}:{}", f["name"].as_str().unwrap_or(""), f["type"].as_str().unwrap_or(""))).collect();
    assert_eq!(types, [
        "id:text", "title:text", "image:file", "tag:relation", "k:select", "meta:json", "at:date", "ok:bool", "n:number",
        "tagref:relation", "label:text", "c:number", "nt:text", "expr:json",
    ]);
    let field = |name: &str| v["fields"].as_array().expect("fields").iter().find(|f| f["name"] == name).cloned().expect("field");
    assert_eq!((field("image")["maxSelect"].clone(), field("image")["mimeTypes"].clone()), (json!(3), json!(["image/png"])), "the source field's options");
    assert_eq!(field("title")["max"], 50);
    assert_eq!(field("k")["values"], json!(["a", "b"]));
    assert_eq!((field("tagref")["collectionId"].clone(), field("tagref")["maxSelect"].clone()), (tags["id"].clone(), json!(1)));
    assert_eq!((field("id")["primaryKey"].clone(), field("id")["system"].clone()), (json!(true), json!(true)));
    // Records read with those types: a multi-file column is a list, the relation expands.
    let list = ok(call(p.port, "GET", "/api/collections/post_view/records?expand=tagref", None, None));
    let item = &list["items"][0];
    assert_eq!((item["image"].clone(), item["ok"].clone(), item["n"].clone(), item["c"].clone()), (json!([]), json!(false), json!(2), json!(1)), "{item}");
    assert_eq!(item["expand"]["tagref"]["label"], "red", "{item}");
}
