//! What a client can learn through `filter`, `sort`, `expand` and `fields`, through the real
//! binary: a to-many filter must not read related rows the caller cannot list nor emails their
//! owners hid (in either half of the comparison), a sort must not order by hidden emails, and
//! an expansion or a `fields` list is bounded — over HTTP and realtime alike.
//!
//! Every "learns nothing" check compares two answers that would differ if the private data
//! leaked, and sits beside a positive control where the caller's own data does change them.

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

const EMAIL: &str = "guards-admin@example.com";
const PASSWORD: &str = "guards superuser password";
const USER_PASSWORD: &str = "guards user password";
/// Bound for an expected realtime event or log line on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// Replies per thread: three nested back-relation levels copy 50³ replies — far past the
/// expand bounds — while one level is a small answer.
const REPLIES: usize = 50;
const HUGE_EXPAND: &str = "replies_via_thread.thread.replies_via_thread.thread.replies_via_thread.thread";
const SMALL_EXPAND: &str = "replies_via_thread.thread";

fn ok(r: Resp) -> Value {
    assert!(r.status == 200, "status {}: {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

struct App {
    p: Proc,
    su: String,
}

impl App {
    fn start() -> App {
        let tmp = tempfile::tempdir().expect("tempdir");
        create_superuser(&tmp.path().join("data"), EMAIL, PASSWORD);
        let mut p = Spawn::serve().in_tempdir(tmp).start();
        p.wait_healthy();
        let su = ok(call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": EMAIL, "password": PASSWORD}))))
            ["token"]
            .as_str()
            .expect("token")
            .to_owned();
        App { p, su }
    }

    fn port(&self) -> u16 {
        self.p.port
    }

    fn su(&self, method: &str, path: &str, body: Value) -> Value {
        ok(call(self.port(), method, path, Some(&self.su), Some(&body)))
    }

    fn collection(&self, body: Value) -> String {
        id_of(&self.su("POST", "/api/collections", body))
    }

    fn record(&self, collection: &str, body: Value) -> String {
        id_of(&self.su("POST", &format!("/api/collections/{collection}/records"), body))
    }

    /// An auth record of `people` and its token.
    fn person(&self, email: &str, visible: bool) -> (String, String) {
        let id = self.record(
            "people",
            json!({"email": email, "emailVisibility": visible, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD, "name": email}),
        );
        let auth = ok(call(self.port(), "POST", "/api/collections/people/auth-with-password", None, Some(&json!({"identity": email, "password": USER_PASSWORD}))));
        (id, auth["token"].as_str().expect("token").to_owned())
    }

    /// The ids a list answers, in order.
    fn ids(&self, collection: &str, query: &str, token: Option<&str>) -> Vec<String> {
        let list = ok(call(self.port(), "GET", &format!("/api/collections/{collection}/records?perPage=100&{query}"), token, None));
        list["items"].as_array().expect("items").iter().map(id_of).collect()
    }
}

/// people (auth, public), notes (each listable by its owner only), boards (public, with
/// multi-relations to notes and people) and cards (public, one author each).
fn people_and_notes(app: &App) {
    let people = app.collection(json!({
        "name": "people", "type": "auth", "listRule": "", "viewRule": "", "createRule": null,
        "fields": [{"name": "name", "type": "text"}]
    }));
    let notes = app.collection(json!({
        "name": "notes", "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
        "fields": [{"name": "owner", "type": "relation", "collectionId": people, "maxSelect": 1}, {"name": "message", "type": "text"}]
    }));
    app.collection(json!({
        "name": "boards", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "notes", "type": "relation", "collectionId": notes, "maxSelect": 10},
            {"name": "members", "type": "relation", "collectionId": people, "maxSelect": 10}
        ]
    }));
    app.collection(json!({
        "name": "cards", "listRule": "", "viewRule": "",
        "fields": [{"name": "author", "type": "relation", "collectionId": people, "maxSelect": 1}]
    }));
}

#[test]
fn to_many_filters_do_not_read_rows_the_caller_cannot_list_or_hidden_emails() {
    let app = App::start();
    people_and_notes(&app);
    let (attacker, token) = app.person("attacker@example.com", true);
    let (victim, _) = app.person("victim@example.com", false);
    let mine = app.record("notes", json!({"owner": attacker, "message": "mine alpha"}));
    let theirs = app.record("notes", json!({"owner": victim, "message": "topsecret plans"}));
    let board = app.record("boards", json!({"title": "b", "notes": [mine, theirs], "members": [attacker, victim]}));
    let matches = |filter: &str| app.ids("boards", &format!("filter={}", enc(filter)), Some(&token)) == [board.clone()];

    // The victim's note starts with "top", its owner's email with "victim": neither may
    // change the attacker's answer (both halves of `!~` over a to-many path, and `!=`).
    for (hit, miss) in [
        ("notes.message !~ 'top%'", "notes.message !~ 'nomatch%'"),
        ("notes.message != 'topsecret plans'", "notes.message != 'nomatch'"),
        ("notes.message:lower !~ 'top%'", "notes.message:lower !~ 'nomatch%'"),
        ("members.email !~ 'victim%'", "members.email !~ 'nomatch%'"),
        ("members.email != 'victim@example.com'", "members.email != 'nomatch'"),
        ("notes.owner.email !~ 'victim%'", "notes.owner.email !~ 'nomatch%'"),
    ] {
        assert_eq!(matches(hit), matches(miss), "{hit:?} answers differently from {miss:?}: the victim's data leaked");
        assert!(matches(miss), "{miss}");
    }
    // Positive controls: the attacker's own note and visible email do decide the answer.
    assert!(!matches("notes.message !~ 'mine%'"), "an own note fails the every-value check");
    assert!(!matches("members.email !~ 'attacker%'"), "a visible email fails the every-value check");
    assert!(matches("notes.message ?~ 'alpha'"));
    assert!(!matches("notes.message ?~ 'topsecret'"));
    // A superuser reads everything, so there the victim's data does count.
    let su = |filter: &str| app.ids("boards", &format!("filter={}", enc(filter)), Some(&app.su)) == [board.clone()];
    assert!(!su("notes.message !~ 'top%'") && su("notes.message !~ 'nomatch%'"));
    assert!(!su("members.email !~ 'victim%'"));
}

#[test]
fn sorting_by_email_does_not_order_hidden_emails() {
    let app = App::start();
    people_and_notes(&app);
    let (attacker, token) = app.person("m-attacker@example.com", true);
    let (bystander, _) = app.person("c-bystander@example.com", true);
    let (victim, _) = app.person("d-victim@example.com", false);
    let cards: Vec<String> = [&attacker, &bystander, &victim].iter().map(|p| app.record("cards", json!({"author": p}))).collect();
    let (card_attacker, card_bystander, card_victim) = (cards[0].clone(), cards[1].clone(), cards[2].clone());
    let orders = |token: &str| {
        (
            app.ids("people", "sort=email", Some(token)),
            app.ids("people", "sort=-email", Some(token)),
            app.ids("cards", "sort=author.email", Some(token)),
            app.ids("cards", "sort=-author.email:lower", Some(token)),
        )
    };
    let before = orders(&token);
    // Move the hidden email from between the visible ones to before them both.
    app.su("PATCH", &format!("/api/collections/people/records/{victim}"), json!({"email": "a-victim@example.com"}));
    let after = orders(&token);
    assert_eq!(before, after, "the attacker's order moved with the victim's hidden email");
    // A hidden email sorts as empty (first ascending); visible ones do sort among themselves.
    assert_eq!(after.0, [victim.clone(), bystander.clone(), attacker.clone()]);
    assert_eq!(after.1, [attacker.clone(), bystander.clone(), victim.clone()]);
    assert_eq!(after.2, [card_victim.clone(), card_bystander.clone(), card_attacker.clone()]);
    assert_eq!(after.3, [card_attacker.clone(), card_bystander.clone(), card_victim.clone()]);
    // Superusers sort by every email.
    assert_eq!(app.ids("people", "sort=email", Some(&app.su)), [victim.clone(), bystander.clone(), attacker.clone()]);
    app.su("PATCH", &format!("/api/collections/people/records/{victim}"), json!({"email": "z-victim@example.com"}));
    assert_eq!(app.ids("people", "sort=email", Some(&app.su)), [bystander, attacker, victim]);
    assert_eq!(app.ids("cards", "sort=author.email", Some(&app.su)), [card_bystander, card_attacker, card_victim]);
}

/// threads and replies (both public), one thread with [`REPLIES`] replies, and pings (a
/// barrier for realtime). Returns the thread id.
fn threads(app: &App) -> String {
    let threads = app.collection(json!({"name": "threads", "listRule": "", "viewRule": "", "fields": [{"name": "title", "type": "text"}]}));
    app.collection(json!({
        "name": "replies", "listRule": "", "viewRule": "",
        "fields": [{"name": "body", "type": "text"}, {"name": "thread", "type": "relation", "collectionId": threads, "maxSelect": 1}]
    }));
    app.collection(json!({"name": "pings", "listRule": "", "viewRule": "", "fields": [{"name": "n", "type": "number"}]}));
    let thread = app.record("threads", json!({"title": "t"}));
    for i in 0..REPLIES {
        app.record("replies", json!({"body": format!("reply {i}"), "thread": thread}));
    }
    thread
}

#[test]
fn a_huge_expansion_is_refused_with_a_400_and_a_small_one_works() {
    let app = App::start();
    let thread = threads(&app);
    let port = app.port();
    // Positive control: one level of the same expansion, as a guest.
    let small = ok(call(port, "GET", &format!("/api/collections/threads/records/{thread}?expand={SMALL_EXPAND}"), None, None));
    let replies = small["expand"]["replies_via_thread"].as_array().expect("replies");
    assert_eq!(replies.len(), REPLIES);
    assert_eq!(replies[0]["expand"]["thread"]["id"], thread.as_str());
    // Three levels multiply past the bounds: a 400 in PocketBase's envelope, for the view and
    // the list alike, naming the expand.
    for path in [format!("/api/collections/threads/records/{thread}?expand={HUGE_EXPAND}"), format!("/api/collections/threads/records?expand={HUGE_EXPAND}")] {
        let r = call(port, "GET", &path, None, None);
        let head = String::from_utf8_lossy(r.body.get(..200).unwrap_or(&r.body)).into_owned();
        assert_eq!(r.status, 400, "{path}: {} bytes, starting {head}", r.body.len());
        let body = r.json();
        assert_eq!(body["status"], 400);
        assert_eq!(body["data"], json!({}));
        let message = body["message"].as_str().expect("message");
        assert!(message.contains("expand is too large"), "{message}");
    }
    // The worker is fine afterwards.
    assert_eq!(ok(call(port, "GET", "/api/collections/threads/records", None, None))["totalItems"], 1);
}

#[test]
fn a_long_fields_list_is_refused_with_a_400() {
    let app = App::start();
    let thread = threads(&app);
    let long: String = (0..5_000).map(|i| format!("f{i},")).collect();
    let r = call(app.port(), "GET", &format!("/api/collections/threads/records/{thread}?fields={long}"), None, None);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"], json!({}));
    // Positive control: a short list is applied.
    let short = ok(call(app.port(), "GET", &format!("/api/collections/threads/records/{thread}?fields=id,title"), None, None));
    assert_eq!(short, json!({"id": thread, "title": "t"}));
}

/// A WebSocket subscriber's received `(topic, record)` pairs.
type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

fn subscribe_ws(port: u16, topics: &[String]) -> Inbox {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut ws, _) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/realtime"), stream).expect("ws handshake");
    let next = |ws: &mut tungstenite::WebSocket<TcpStream>| -> Value {
        loop {
            if let Message::Text(t) = ws.read().expect("ws read") {
                return serde_json::from_str(&t).expect("ws JSON");
            }
        }
    };
    assert_eq!(next(&mut ws)["type"], "connected");
    ws.send(Message::Text(json!({"type": "subscribe", "topics": topics}).to_string())).expect("send subscribe");
    let r = next(&mut ws);
    assert_eq!(r["type"], "subscribed", "{r}");
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    std::thread::spawn(move || {
        while let Ok(m) = ws.read() {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v.get("action").is_some() {
                    sink.lock().expect("inbox").push((v["topic"].as_str().unwrap_or_default().to_owned(), v["record"].clone()));
                }
            }
        }
    });
    inbox
}

#[test]
fn realtime_skips_an_event_whose_expansion_is_too_large() {
    let app = App::start();
    let thread = threads(&app);
    let with_expand = |expand: &str| format!("threads/{thread}?options={}", enc(&json!({"query": {"expand": expand}}).to_string()));
    let (huge, small) = (with_expand(HUGE_EXPAND), with_expand(SMALL_EXPAND));
    let inbox = subscribe_ws(app.port(), &[huge.clone(), small.clone(), "pings/*".to_owned()]);
    app.su("PATCH", &format!("/api/collections/threads/records/{thread}"), json!({"title": "changed"}));
    // The barrier: events reach one subscriber in commit order, so once the ping is in, the
    // thread's change has been delivered or skipped for both topics.
    app.record("pings", json!({"n": 1}));
    let deadline = Instant::now() + DEADLINE;
    while !inbox.lock().expect("inbox").iter().any(|(topic, _)| topic == "pings/*") {
        assert!(Instant::now() < deadline, "no ping event in time: {:?}", inbox.lock().expect("inbox").len());
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = inbox.lock().expect("inbox").clone();
    let small_events: Vec<&Value> = got.iter().filter(|(t, _)| *t == small).map(|(_, r)| r).collect();
    assert_eq!(small_events.len(), 1, "the small expansion is delivered: {got:?}");
    assert_eq!(small_events[0]["expand"]["replies_via_thread"].as_array().map(Vec::len), Some(REPLIES));
    assert!(got.iter().all(|(t, _)| *t != huge), "the huge expansion is skipped for its topic");
    let warned = app.p.wait_logs(1, DEADLINE, |l| l["message"] == "realtime event not delivered to a subscriber: its expand is too large");
    assert_eq!(warned[0]["level"], "WARN", "{:?}", warned[0]);
}
