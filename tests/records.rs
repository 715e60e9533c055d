//! Records through the real binary: CRUD with every rule outcome and status code of the
//! reference's §12, field validation codes, filters and sorts (including malicious ones that
//! must not inject), relation cascades, and the same answers through a cluster.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";

fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", payload.len());
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(payload.as_bytes()).expect("body");
    read_response(&mut s, method == "HEAD").expect("response")
}

fn ok(r: Resp) -> Value {
    assert!(r.status == 200, "status {}: {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

struct App {
    p: Proc,
    su: String,
}

impl App {
    fn start(spawn: Spawn) -> App {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = Command::new(BIN)
            .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
            .arg(tmp.path().join("data"))
            .output()
            .expect("cli");
        assert!(out.status.success());
        let mut p = spawn.in_tempdir(tmp).start();
        p.wait_healthy();
        let su = ok(call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": EMAIL, "password": PASSWORD}))))["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let app = App { p, su };
        app.schema();
        app
    }

    fn port(&self) -> u16 {
        self.p.port
    }

    fn schema(&self) {
        let users = ok(call(self.port(), "POST", "/api/collections", Some(&self.su), Some(&json!({
            "name": "users", "type": "auth",
            "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id",
            "createRule": "", "updateRule": "id = @request.auth.id", "deleteRule": null,
            "fields": [{"name": "name", "type": "text", "max": 50}]
        }))));
        ok(call(self.port(), "POST", "/api/collections", Some(&self.su), Some(&json!({
            "name": "posts",
            "listRule": "", "viewRule": "", "createRule": "@request.auth.id != ''",
            "updateRule": "author = @request.auth.id", "deleteRule": null,
            "fields": [
                {"name": "title", "type": "text", "required": true, "max": 100},
                {"name": "views", "type": "number", "onlyInt": true, "min": 0},
                {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
                {"name": "published", "type": "bool"},
                {"name": "author", "type": "relation", "collectionId": users["id"], "maxSelect": 1},
                {"name": "secret", "type": "text", "hidden": true}
            ]
        }))));
        let posts = ok(call(self.port(), "GET", "/api/collections/posts", Some(&self.su), None));
        ok(call(self.port(), "POST", "/api/collections", Some(&self.su), Some(&json!({
            "name": "comments", "listRule": "", "viewRule": "", "createRule": "", "deleteRule": "",
            "fields": [
                {"name": "body", "type": "text"},
                {"name": "post", "type": "relation", "collectionId": posts["id"], "maxSelect": 1, "cascadeDelete": true}
            ]
        }))));
    }

    fn signup(&self, email: &str) -> (String, String) {
        let user = ok(call(self.port(), "POST", "/api/collections/users/records", None, Some(&json!({
            "email": email, "password": "user password 1", "passwordConfirm": "user password 1", "name": "U"
        }))));
        let auth = ok(call(self.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": email, "password": "user password 1"}))));
        (user["id"].as_str().expect("id").to_owned(), auth["token"].as_str().expect("token").to_owned())
    }
}

#[test]
fn crud_and_every_rule_outcome() {
    let app = App::start(Spawn::serve());
    let port = app.port();
    let (alice, alice_t) = app.signup("alice@example.com");
    let (_bob, bob_t) = app.signup("bob@example.com");

    // create: rule passes for a user, fails (400) for a guest.
    let post = ok(call(port, "POST", "/api/collections/posts/records", Some(&alice_t), Some(&json!({
        "title": "Hello", "views": 3, "tags": ["a", "b"], "published": true, "author": alice, "secret": "s"
    }))));
    assert_eq!(post["title"], "Hello");
    assert_eq!(post["tags"], json!(["a", "b"]));
    assert_eq!(post["collectionName"], "posts");
    assert!(post.get("secret").is_none(), "hidden fields are not shown to users");
    let id = post["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 15);
    let r = call(port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "guest"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Failed to create record.");

    // view: public rule.
    assert_eq!(ok(call(port, "GET", &format!("/api/collections/posts/records/{id}"), None, None))["title"], "Hello");
    assert_eq!(call(port, "GET", "/api/collections/posts/records/nope", None, None).status, 404);
    assert_eq!(call(port, "GET", "/api/collections/nope/records", None, None).json()["message"], "Missing collection context.");

    // update: the author passes, another user gets 404, a guest 404.
    let r = ok(call(port, "PATCH", &format!("/api/collections/posts/records/{id}"), Some(&alice_t), Some(&json!({"views+": 2, "tags-": "a"}))));
    assert_eq!(r["views"], 5);
    assert_eq!(r["tags"], json!(["b"]));
    assert_eq!(call(port, "PATCH", &format!("/api/collections/posts/records/{id}"), Some(&bob_t), Some(&json!({"title": "x"}))).status, 404);
    assert_eq!(call(port, "PATCH", &format!("/api/collections/posts/records/{id}"), None, Some(&json!({"title": "x"}))).status, 404);

    // delete: null rule → 403 for users, 204 for a superuser.
    let r = call(port, "DELETE", &format!("/api/collections/posts/records/{id}"), Some(&alice_t), None);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "Only superusers can perform this action.");

    // users: list rule filters (200 with only yourself), view of another user → 404.
    let list = ok(call(port, "GET", "/api/collections/users/records", Some(&alice_t), None));
    assert_eq!(list["totalItems"], 1);
    assert_eq!(list["items"][0]["email"], "alice@example.com", "own email is visible");
    assert_eq!(ok(call(port, "GET", "/api/collections/users/records", None, None))["totalItems"], 0);
    let bob_view = call(port, "GET", &format!("/api/collections/users/records/{_bob}"), Some(&alice_t), None);
    assert_eq!(bob_view.status, 404);
    let all = ok(call(port, "GET", "/api/collections/users/records", Some(&app.su), None));
    assert_eq!(all["totalItems"], 2);

    assert_eq!(call(port, "DELETE", &format!("/api/collections/posts/records/{id}"), Some(&app.su), None).status, 204);
    assert_eq!(call(port, "GET", &format!("/api/collections/posts/records/{id}"), None, None).status, 404);
}

#[test]
fn validation_errors_carry_field_codes() {
    let app = App::start(Spawn::serve());
    let port = app.port();
    let (alice, t) = app.signup("alice@example.com");
    let cases = [
        (json!({"views": 1, "author": alice}), "title", "validation_required"),
        (json!({"title": "x".repeat(101), "author": alice}), "title", "validation_max_text_constraint"),
        (json!({"title": "t", "views": 1.5, "author": alice}), "views", "validation_only_int_constraint"),
        (json!({"title": "t", "views": -1, "author": alice}), "views", "validation_min_number_constraint"),
        (json!({"title": "t", "tags": ["z"], "author": alice}), "tags", "validation_invalid_value"),
        (json!({"title": "t", "author": "nonexistent1234"}), "author", "validation_missing_rel_records"),
    ];
    for (body, field, code) in cases {
        let r = call(port, "POST", "/api/collections/posts/records", Some(&t), Some(&body));
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["data"][field]["code"], code, "{body}: {}", r.json());
    }
    let r = call(port, "POST", "/api/collections/users/records", None, Some(&json!({"email": "alice@example.com", "password": "pw pw pw pw", "passwordConfirm": "pw pw pw pw"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["email"]["code"], "validation_not_unique");
    let r = call(port, "POST", "/api/collections/users/records", None, Some(&json!({"email": "c@example.com", "password": "pw pw pw pw", "passwordConfirm": "other pw pw"})));
    assert_eq!(r.json()["data"]["passwordConfirm"]["code"], "validation_values_mismatch");
}

#[test]
fn filters_sorts_and_pages_and_no_injection() {
    let app = App::start(Spawn::serve());
    let port = app.port();
    let (alice, t) = app.signup("alice@example.com");
    for (title, views, tags) in [("alpha", 1, json!(["a"])), ("beta", 5, json!(["b", "c"])), ("gamma", 9, json!([])), ("x' OR 1=1 --", 0, json!([]))] {
        ok(call(port, "POST", "/api/collections/posts/records", Some(&t), Some(&json!({"title": title, "views": views, "tags": tags, "author": alice}))));
    }
    let titles = |filter: &str, sort: &str| -> Vec<String> {
        let r = ok(call(port, "GET", &format!("/api/collections/posts/records?filter={}&sort={}", enc(filter), enc(sort)), None, None));
        r["items"].as_array().expect("items").iter().map(|i| i["title"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(titles("views > 2", "views"), ["beta", "gamma"]);
    assert_eq!(titles("views >= 1 && views < 9", "-views"), ["beta", "alpha"]);
    assert_eq!(titles("title ~ 'amm'", ""), ["gamma"]);
    assert_eq!(titles("tags:each ?= 'c'", ""), ["beta"]);
    assert_eq!(titles("tags:length = 2", ""), ["beta"]);
    assert_eq!(titles("title = \"x' OR 1=1 --\"", ""), ["x' OR 1=1 --"], "a quote inside a literal is data");
    assert_eq!(titles("title = 'alpha' || title = 'gamma'", "-title"), ["gamma", "alpha"]);
    assert_eq!(titles("author.email = 'alice@example.com' && views = 1", ""), Vec::<String>::new(), "alice's email is hidden from guests walking the relation");
    for bad in ["title = 'a'; DROP TABLE posts", "nope = 1", "title = ", "(title = 'a'", "title = 'a' /* x */", "secret = 's'"] {
        let r = call(port, "GET", &format!("/api/collections/posts/records?filter={}", enc(bad)), None, None);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json(), json!({"status": 400, "message": "Something went wrong while processing your request.", "data": {}}), "{bad}");
    }
    assert_eq!(call(port, "GET", "/api/collections/posts/records?sort=nope", None, None).status, 400);
    assert_eq!(call(port, "GET", &format!("/api/collections/posts/records?filter={}", enc("@request.auth.id != ''")), None, None).status, 403);
    assert_eq!(ok(call(port, "GET", "/api/collections/posts/records?perPage=2", None, None))["items"].as_array().map(Vec::len), Some(2));
    let page = ok(call(port, "GET", "/api/collections/posts/records?perPage=3&page=2", None, None));
    assert_eq!((page["totalItems"].clone(), page["totalPages"].clone()), (json!(4), json!(2)));
    let skip = ok(call(port, "GET", "/api/collections/posts/records?skipTotal=1", None, None));
    assert_eq!((skip["totalItems"].clone(), skip["totalPages"].clone()), (json!(-1), json!(-1)));
    // The table is intact after every attempt.
    assert_eq!(ok(call(port, "GET", "/api/collections/posts/records", None, None))["totalItems"], 4);
}

#[test]
fn deleting_a_record_cascades_to_relations_that_ask_for_it() {
    let app = App::start(Spawn::serve());
    let port = app.port();
    let (alice, t) = app.signup("alice@example.com");
    let post = ok(call(port, "POST", "/api/collections/posts/records", Some(&t), Some(&json!({"title": "p", "author": alice}))));
    let pid = post["id"].as_str().expect("id");
    for i in 0..3 {
        ok(call(port, "POST", "/api/collections/comments/records", None, Some(&json!({"body": format!("c{i}"), "post": pid}))));
    }
    assert_eq!(ok(call(port, "GET", "/api/collections/comments/records", None, None))["totalItems"], 3);
    assert_eq!(call(port, "DELETE", &format!("/api/collections/posts/records/{pid}"), Some(&app.su), None).status, 204);
    assert_eq!(ok(call(port, "GET", "/api/collections/comments/records", None, None))["totalItems"], 0);
}

#[test]
fn a_cluster_gives_the_same_answers() {
    let app = App::start(Spawn::cluster(3));
    let port = app.port();
    let (alice, t) = app.signup("alice@example.com");
    let post = ok(call(port, "POST", "/api/collections/posts/records", Some(&t), Some(&json!({"title": "shared", "author": alice}))));
    let id = post["id"].as_str().expect("id");
    for _ in 0..30 {
        assert_eq!(ok(call(port, "GET", &format!("/api/collections/posts/records/{id}"), None, None))["title"], "shared");
    }
    // A rule change through one worker applies on all of them at once.
    ok(call(port, "PATCH", "/api/collections/posts", Some(&app.su), Some(&json!({"viewRule": null}))));
    for _ in 0..30 {
        assert_eq!(call(port, "GET", &format!("/api/collections/posts/records/{id}"), None, None).status, 403);
    }
}
