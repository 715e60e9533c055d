//! Records through the real binary: CRUD with every rule outcome and status code of the
//! reference's §12, field validation codes, filters and sorts (including malicious ones that
//! must not inject), relation cascades, `expand` and `fields` on every record answer, and the
//! same answers through a cluster.

mod common;


use common::*;
use serde_json::{json, Value};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";


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
        create_superuser(&tmp.path().join("data"), EMAIL, PASSWORD);
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
        // Replace the default `users` collection with this test's own.
        assert_eq!(call(self.port(), "DELETE", "/api/collections/users", Some(&self.su), None).status, 204);
        let users = ok(call(self.port(), "POST", "/api/collections", Some(&self.su), Some(&json!({
            "name": "users", "type": "auth",
            "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id",
            "createRule": "", "updateRule": "id = @request.auth.id", "deleteRule": null,
            "fields": [{"name": "name", "type": "text", "max": 50}]
        }))));
        let labels = ok(call(self.port(), "POST", "/api/collections", Some(&self.su), Some(&json!({
            "name": "labels", "listRule": "", "viewRule": "", "createRule": null,
            "fields": [{"name": "name", "type": "text"}]
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
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "labels", "type": "relation", "collectionId": labels["id"], "maxSelect": 5},
                {"name": "body", "type": "editor"}
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
    // The control: the same filter finds the post for a superuser, who sees every email, so
    // the empty answer above is the hiding and not a filter that matches nothing.
    let as_su = ok(call(port, "GET", &format!("/api/collections/posts/records?filter={}", enc("author.email = 'alice@example.com' && views = 1")), Some(&app.su), None));
    let found: Vec<&str> = as_su["items"].as_array().expect("items").iter().filter_map(|i| i["title"].as_str()).collect();
    assert_eq!(found, ["alpha"], "a superuser walks the relation to alice's email");
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

fn get(port: u16, path: &str, token: Option<&str>) -> Value {
    ok(call(port, "GET", path, token, None))
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[test]
fn expand_and_fields_shape_every_record_answer() {
    let app = App::start(Spawn::serve());
    let port = app.port();
    let su = Some(app.su.as_str());
    let (alice, alice_t) = app.signup("alice@example.com");
    let red = id_of(&ok(call(port, "POST", "/api/collections/labels/records", su, Some(&json!({"name": "red"})))));
    let blue = id_of(&ok(call(port, "POST", "/api/collections/labels/records", su, Some(&json!({"name": "blue"})))));
    let post = ok(call(port, "POST", "/api/collections/posts/records", Some(&alice_t), Some(&json!({
        "title": "Hello world", "body": "<p>Hello <b>big</b> world</p>", "author": alice, "labels": [blue, red]
    }))));
    let pid = id_of(&post);
    for i in 0..3 {
        ok(call(port, "POST", "/api/collections/comments/records", None, Some(&json!({"body": format!("c{i}"), "post": pid}))));
    }
    let view = |query: &str, token: Option<&str>| get(port, &format!("/api/collections/posts/records/{pid}?{query}"), token);

    // A single relation is an object; the users' view rule hides it from a guest, but the path
    // is valid, so `expand` is still there (empty). The record itself sees its email.
    let r = view("expand=author", su);
    assert_eq!((r["expand"]["author"]["id"].as_str(), r["expand"]["author"]["name"].as_str()), (Some(alice.as_str()), Some("U")));
    assert_eq!(r["expand"]["author"]["collectionName"], "users");
    assert_eq!(view("expand=author", None)["expand"], json!({}));
    assert_eq!(view("expand=author", Some(&alice_t))["expand"]["author"]["email"], "alice@example.com");
    // Unknown paths give no `expand` key at all; hostile text is only ever a name lookup.
    for bad in ["nope", "title", "author.nope", enc("author\"; DROP TABLE posts; --").as_str(), "nope_via_post", "comments_via_body"] {
        assert!(view(&format!("expand={bad}"), su).get("expand").is_none(), "{bad}");
    }
    // A valid path next to an invalid one still expands.
    assert_eq!(view("expand=nope,author", su)["expand"]["author"]["id"], alice.as_str());

    // A multiple relation is an array in relation order.
    let names: Vec<Value> = view("expand=labels", None)["expand"]["labels"].as_array().expect("array").iter().map(|l| l["name"].clone()).collect();
    assert_eq!(names, [json!("blue"), json!("red")]);

    // A back-relation is an array (the field has no unique index).
    let comments = view("expand=comments_via_post", None);
    let bodies: Vec<&str> = comments["expand"]["comments_via_post"].as_array().expect("array").iter().filter_map(|c| c["body"].as_str()).collect();
    assert_eq!(bodies, ["c0", "c1", "c2"]);

    // Two levels, in a list: every comment gets its post, and the post its author, for a
    // superuser; a guest gets the post with an empty `expand` (author forbidden).
    let list = get(port, "/api/collections/comments/records?expand=post.author", su);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    for item in items {
        assert_eq!(item["expand"]["post"]["title"], "Hello world");
        assert_eq!(item["expand"]["post"]["expand"]["author"]["id"], alice.as_str());
    }
    let list = get(port, "/api/collections/comments/records?expand=post.author", None);
    for item in list["items"].as_array().expect("items") {
        assert_eq!(item["expand"]["post"]["id"], pid.as_str());
        assert_eq!(item["expand"]["post"]["expand"], json!({}));
    }
    // Back-relation then forward again, several paths at once.
    let r = view("expand=comments_via_post.post,labels,author", su);
    assert_eq!(r["expand"]["comments_via_post"][2]["expand"]["post"]["id"], pid.as_str());
    assert_eq!(r["expand"]["labels"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["expand"]["author"]["id"], alice.as_str());

    // fields: only what is named; `*` keeps the rest and `expand.author.name` cuts inside
    // expand; the excerpt strips markup and cuts by characters.
    assert_eq!(view("fields=id,title", None), json!({"id": pid, "title": "Hello world"}));
    let r = view("expand=author,labels&fields=*,expand.author.name", su);
    assert_eq!(r["title"], "Hello world");
    assert_eq!(r["collectionName"], "posts");
    assert_eq!(r["expand"], json!({"author": {"name": "U"}}));
    assert_eq!(view(&format!("fields={}", enc("body:excerpt(5,true)")), None), json!({"body": "Hello..."}));
    assert_eq!(view(&format!("fields={}", enc("id, body:excerpt(100)")), None), json!({"id": pid, "body": "Hello big world"}));
    assert_eq!(view("fields=expand.labels.name&expand=labels", None), json!({"expand": {"labels": [{"name": "blue"}, {"name": "red"}]}}));
    assert_eq!(view("fields=nope", None), json!({}));
    for bad in ["title:excerpt(0)", "title:upper", "title:excerpt(5"] {
        let r = call(port, "GET", &format!("/api/collections/posts/records/{pid}?fields={}", enc(bad)), None, None);
        assert_eq!(r.status, 400, "{bad}");
    }

    // The list envelope stays whole; each item is projected and expanded.
    let list = get(port, "/api/collections/posts/records?fields=id,title,expand.author.id&expand=author", su);
    assert_eq!((list["page"].clone(), list["perPage"].clone(), list["totalItems"].clone()), (json!(1), json!(30), json!(1)));
    assert_eq!(list["items"], json!([{"id": pid, "title": "Hello world", "expand": {"author": {"id": alice}}}]));
    let list = get(port, "/api/collections/posts/records?expand=nope", None);
    assert!(list["items"][0].get("expand").is_none());

    // Create and update answer with the same shaping.
    let created = ok(call(port, "POST", "/api/collections/posts/records?expand=author,labels&fields=title,expand.labels.name,expand.author.email", Some(&alice_t), Some(&json!({
        "title": "Second", "author": alice, "labels": [red]
    }))));
    assert_eq!(created, json!({"title": "Second", "expand": {"author": {"email": "alice@example.com"}, "labels": [{"name": "red"}]}}));
    let updated = ok(call(port, "PATCH", &format!("/api/collections/posts/records/{pid}?expand=labels&fields={}", enc("id,title:excerpt(4,true),expand")), Some(&alice_t), Some(&json!({"labels": [red]}))));
    assert_eq!(updated["title"], "Hell...");
    assert_eq!(updated["expand"]["labels"][0]["name"], "red");
    assert_eq!(updated.as_object().map(|o| o.len()), Some(3));
    let r = call(port, "POST", "/api/collections/posts/records?fields=title:nope", Some(&alice_t), Some(&json!({"title": "Never", "author": alice})));
    assert_eq!(r.status, 400);
    assert_eq!(ok(call(port, "GET", &format!("/api/collections/posts/records?filter={}", enc("title = 'Never'")), None, None))["totalItems"], 0, "a refused fields value stops the write");

    // A back-relation through a single-column unique index is one object.
    ok(call(port, "POST", "/api/collections", su, Some(&json!({
        "name": "profiles", "listRule": "", "viewRule": "",
        "fields": [{"name": "owner", "type": "relation", "collectionId": post["collectionId"], "maxSelect": 1}, {"name": "bio", "type": "text"}],
        "indexes": ["CREATE UNIQUE INDEX idx_profiles_owner ON profiles (owner)"]
    }))));
    ok(call(port, "POST", "/api/collections/profiles/records", su, Some(&json!({"owner": pid, "bio": "hi"}))));
    assert_eq!(view("expand=profiles_via_owner", None)["expand"]["profiles_via_owner"]["bio"], "hi");

    // A collection with a null view rule is dropped for everyone but superusers.
    ok(call(port, "PATCH", "/api/collections/labels", su, Some(&json!({"viewRule": null}))));
    assert!(view("expand=labels", None).get("expand").is_none());
    assert_eq!(view("expand=labels", su)["expand"]["labels"][0]["name"], "red");
}

#[test]
fn back_relation_expands_are_capped_per_record() {
    let app = App::start(Spawn::serve());
    let port = app.port();
    let (alice, t) = app.signup("alice@example.com");
    let a = id_of(&ok(call(port, "POST", "/api/collections/posts/records", Some(&t), Some(&json!({"title": "a", "author": alice})))));
    let b = id_of(&ok(call(port, "POST", "/api/collections/posts/records", Some(&t), Some(&json!({"title": "b", "author": alice})))));
    // 1005 comments on `a`, 2 on `b`.
    for i in 0..1005 {
        ok(call(port, "POST", "/api/collections/comments/records", None, Some(&json!({"body": format!("a{i}"), "post": a}))));
    }
    for i in 0..2 {
        ok(call(port, "POST", "/api/collections/comments/records", None, Some(&json!({"body": format!("b{i}"), "post": b}))));
    }
    let list = get(port, "/api/collections/posts/records?expand=comments_via_post&sort=title&fields=title,expand.comments_via_post.body", None);
    let items = list["items"].as_array().expect("items");
    let first = items[0]["expand"]["comments_via_post"].as_array().expect("array");
    assert_eq!(first.len(), 1000, "PocketBase expands at most 1000 back-related records per record");
    assert_eq!((first[0]["body"].clone(), first[999]["body"].clone()), (json!("a0"), json!("a999")));
    assert_eq!(items[1]["expand"]["comments_via_post"], json!([{"body": "b0"}, {"body": "b1"}]));
}
