//! Realtime across a 4-worker cluster, with real subscribers on fresh connections: raw SSE
//! streams (the wire PocketBase's SDK reads) and WebSocket sessions, authenticated as guests,
//! users and a superuser, some with a filter option. Writes go through fresh connections, so
//! the kernel spreads them over the workers as it spreads the subscribers.
//!
//! Each test waits for events by polling with a deadline and judges "nothing else arrived"
//! only after a barrier write every subscriber is allowed to see has arrived (events reach one
//! subscriber in commit order), never after a sleep. No timing is asserted.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

const EMAIL: &str = "rt-admin@example.com";
const PASSWORD: &str = "realtime superuser password";
const USER_PASSWORD: &str = "realtime user password";
/// Bound for all expected events to arrive on a loaded 2-core machine (normally well under 1 s).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts at landing a fresh connection on a worker other than a given one (each attempt
/// fails with probability 1/4 with 4 workers).
const ELSEWHERE_ATTEMPTS: usize = 400;

/// One received record event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    collection: String,
    id: String,
    action: String,
    v: i64,
    topic: String,
    /// Characters of the record's `data` field when it is a string (large-payload tests).
    data_len: usize,
}

type Inbox = Arc<Mutex<Vec<Ev>>>;

fn ev_from(topic: &str, action: &str, record: &Value) -> Ev {
    Ev {
        collection: record["collectionName"].as_str().unwrap_or_default().to_owned(),
        id: record["id"].as_str().unwrap_or_default().to_owned(),
        action: action.to_owned(),
        v: record["v"].as_i64().unwrap_or(-1),
        topic: topic.to_owned(),
        data_len: record["data"].as_str().map_or(0, str::len),
    }
}

/// The worker a client id names (its first three characters, base 36).
fn owner(client_id: &str) -> u32 {
    client_id.chars().take(3).fold(0, |acc, c| acc * 36 + c.to_digit(36).expect("base-36 client id"))
}

/// Reads an HTTP response head (through the blank line) byte by byte.
fn read_head(r: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("read head") > 0, "connection closed in the head: {head}");
        if line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

struct SseSub {
    client_id: String,
    inbox: Inbox,
    ended: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the final `VB_DRAIN` frame arrived.
    drained: Arc<std::sync::atomic::AtomicBool>,
}

/// Opens `GET /api/realtime` on a fresh connection and reads it on a thread until it ends.
fn open_sse(port: u16) -> SseSub {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("request");
    let mut r = BufReader::new(s);
    let head = read_head(&mut r);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    let inbox: Inbox = Arc::default();
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (connect_tx, connect_rx) = mpsc::channel::<String>();
    let (sink, done, drain_seen) = (inbox.clone(), ended.clone(), drained.clone());
    std::thread::spawn(move || {
        let mut pending = Vec::<u8>::new();
        loop {
            // Chunked transfer: size line, data, CRLF.
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                break;
            }
            pending.extend_from_slice(&chunk[..n]);
            while let Some(pos) = pending.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = pending.drain(..pos + 2).collect();
                let text = String::from_utf8(frame).expect("utf-8 frame");
                let (mut id, mut event, mut data) = ("", "", "");
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = v;
                    }
                }
                let data: Value = serde_json::from_str(data).expect("JSON data");
                if event == "PB_CONNECT" {
                    assert_eq!(data["clientId"].as_str(), Some(id), "the id field carries the client id");
                    let _ = connect_tx.send(id.to_owned());
                } else if event == "VB_DRAIN" {
                    drain_seen.store(true, std::sync::atomic::Ordering::SeqCst);
                } else if event.starts_with('@') {
                    // A message on a free-form topic (`@oauth2`): its state and code.
                    let text = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
                    sink.lock().expect("inbox").push(Ev { collection: text("state"), id: text("code"), action: "message".into(), v: -1, topic: event.to_owned(), data_len: 0 });
                } else {
                    let e = ev_from(event, data["action"].as_str().unwrap_or_default(), &data["record"]);
                    sink.lock().expect("inbox").push(e);
                }
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let client_id = connect_rx.recv_timeout(Duration::from_secs(20)).expect("PB_CONNECT");
    assert_eq!(client_id.len(), 40);
    SseSub { client_id, inbox, ended, drained }
}

/// A fresh connection that a `/_/health` on it proved to be served by another worker than
/// `avoid`: (writer, reader, worker).
fn connect_elsewhere(port: u16, avoid: u32) -> (TcpStream, BufReader<TcpStream>, u32) {
    for _ in 0..ELSEWHERE_ATTEMPTS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        s.write_all(b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n").expect("health");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let head = read_head(&mut r);
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("length")))
            .expect("content-length");
        let mut body_bytes = vec![0u8; len];
        r.read_exact(&mut body_bytes).expect("health body");
        let worker = serde_json::from_slice::<Value>(&body_bytes).expect("health JSON")["worker_id"].as_u64().expect("worker_id") as u32;
        if worker != avoid {
            return (s, r, worker);
        }
    }
    panic!("no connection reached a worker other than {avoid} in {ELSEWHERE_ATTEMPTS} attempts");
}

/// The status of a response head.
fn status_of(head: &str) -> u16 {
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status")
}

/// Sends the subscription POST on a fresh connection served by another worker than `avoid`.
/// Returns (status, worker).
fn post_elsewhere(port: u16, avoid: u32, token: Option<&str>, body: &Value) -> (u16, u32) {
    let (mut s, mut r, worker) = connect_elsewhere(port, avoid);
    let payload = body.to_string();
    let mut req = format!("POST /api/realtime HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", payload.len());
    if let Some(t) = token {
        req.push_str(&format!("Authorization: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    s.write_all(req.as_bytes()).expect("post");
    (status_of(&read_head(&mut r)), worker)
}

/// How a WebSocket ended: `Some((code, reason))` from the server's close frame, `None` for a
/// connection that ended without one.
type WsEnd = Arc<Mutex<Option<Option<(u16, String)>>>>;

struct WsSub {
    client_id: String,
    inbox: Inbox,
    ended: WsEnd,
    /// Server messages that are not record events, in order.
    control: Arc<Mutex<Vec<Value>>>,
}

/// Opens a WebSocket at `/realtime`, authenticates, subscribes, then reads on a thread.
fn open_ws(port: u16, token: Option<&str>, topics: &[String]) -> WsSub {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut ws, res) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/realtime"), stream).expect("ws handshake");
    assert_eq!(res.status().as_u16(), 101);
    let next = |ws: &mut tungstenite::WebSocket<TcpStream>| -> Value {
        loop {
            match ws.read().expect("ws read") {
                Message::Text(t) => return serde_json::from_str(&t).expect("ws JSON"),
                Message::Close(f) => panic!("ws closed early: {f:?}"),
                _ => {}
            }
        }
    };
    let hello = next(&mut ws);
    assert_eq!(hello["type"], "connected");
    let client_id = hello["clientId"].as_str().expect("clientId").to_owned();
    if let Some(t) = token {
        ws.send(Message::Text(json!({"type": "auth", "token": t}).to_string())).expect("send auth");
        let r = next(&mut ws);
        assert_eq!(r["type"], "authenticated", "{r}");
    }
    ws.send(Message::Text(json!({"type": "subscribe", "topics": topics}).to_string())).expect("send subscribe");
    let r = next(&mut ws);
    assert_eq!(r["type"], "subscribed", "{r}");
    assert_eq!(r["topics"].as_array().map(Vec::len), Some(topics.len()));
    let inbox: Inbox = Arc::default();
    let ended: WsEnd = Arc::default();
    let control: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (sink, end, other) = (inbox.clone(), ended.clone(), control.clone());
    std::thread::spawn(move || loop {
        match ws.read() {
            Ok(Message::Close(f)) => {
                *end.lock().expect("end") = Some(f.map(|f| (u16::from(f.code), f.reason.to_string())));
                break;
            }
            Err(_) => {
                end.lock().expect("end").get_or_insert(None);
                break;
            }
            Ok(Message::Text(t)) => {
                let m: Value = serde_json::from_str(&t).expect("ws JSON");
                if let Some(action) = m["action"].as_str() {
                    assert_eq!(m["type"].as_str(), Some(action));
                    let e = ev_from(m["topic"].as_str().unwrap_or_default(), action, &m["record"]);
                    assert_eq!(m["collection"].as_str(), Some(e.collection.as_str()));
                    sink.lock().expect("inbox").push(e);
                } else {
                    other.lock().expect("control").push(m);
                }
            }
            Ok(_) => {}
        }
    });
    WsSub { client_id, inbox, ended, control }
}

/// One call on a fresh connection; `Err` only when the connection itself failed (refused,
/// reset, or closed before any byte of an answer). Anything the server answered is `Ok`.
fn try_call(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/json\r\n", payload.len());
    if let Some(t) = token {
        head.push_str(&format!("Authorization: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(payload.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(parse_response(&raw, method == "HEAD").unwrap_or_else(|e| panic!("{method} {path}: a malformed answer ({e})")))
}

/// A call made while a worker is being killed: a connection the kernel had queued on the
/// dying worker's socket is reset, so connection-level failures (and only those) are retried
/// on a fresh connection. Any answer is returned as it is. Only for the kill test: everywhere
/// else a dropped connection is a bug the test must see.
fn call_across_a_kill(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    use std::io::ErrorKind::*;
    const ATTEMPTS: usize = 20;
    for _ in 0..ATTEMPTS {
        match try_call(port, method, path, token, body) {
            Ok(r) => return r,
            Err(e) if matches!(e.kind(), ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
    panic!("{method} {path} failed on {ATTEMPTS} fresh connections");
}

struct Cluster {
    p: Proc,
    su: String,
}

fn start_cluster() -> Cluster {
    start(Spawn::cluster(4))
}

fn start(spawn: Spawn) -> Cluster {
    let tmp = tempfile::tempdir().expect("tempdir");
    create_superuser(&tmp.path().join("data"), EMAIL, PASSWORD);
    let mut p = spawn.in_tempdir(tmp).start();
    p.wait_healthy();
    let su = ok(call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": EMAIL, "password": PASSWORD}))))["token"]
        .as_str()
        .expect("token")
        .to_owned();
    Cluster { p, su }
}

impl Cluster {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        ok(call(self.p.port, method, path, Some(&self.su), body))
    }

    /// `items` (public, with `n` and `v`) and `secrets` (each visible to its owner only).
    fn schema(&self) -> Vec<(String, String)> {
        let members = self.call(
            "POST",
            "/api/collections",
            Some(&json!({"name": "members", "type": "auth", "createRule": "", "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"})),
        );
        self.call(
            "POST",
            "/api/collections",
            Some(&json!({"name": "items", "listRule": "", "viewRule": "", "fields": [
                {"name": "title", "type": "text", "required": true},
                {"name": "n", "type": "number"},
                {"name": "v", "type": "number"}
            ]})),
        );
        self.call(
            "POST",
            "/api/collections",
            Some(&json!({"name": "secrets", "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id", "fields": [
                {"name": "owner", "type": "relation", "collectionId": members["id"], "maxSelect": 1},
                {"name": "v", "type": "number"}
            ]})),
        );
        let mut users = Vec::new();
        for who in ["u1", "u2", "u3"] {
            let email = format!("{who}@example.com");
            let rec = self.call("POST", "/api/collections/members/records", Some(&json!({"email": email, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD})));
            let auth = ok(call(self.p.port, "POST", "/api/collections/members/auth-with-password", None, Some(&json!({"identity": email, "password": USER_PASSWORD}))));
            users.push((rec["id"].as_str().expect("id").to_owned(), auth["token"].as_str().expect("token").to_owned()));
        }
        users
    }
}

/// Who a subscriber is.
#[derive(Debug, Clone, PartialEq)]
enum Who {
    Guest,
    User(usize),
    Superuser,
}

/// What a subscriber asked for and what it got.
struct Sub {
    who: Who,
    /// Only `items` with n >= 50 (a filter option on its `items/*` topic).
    filtered: bool,
    items_topic: String,
    inbox: Inbox,
}

/// Waits until `pred` holds for every subscriber's inbox.
fn wait_all(subs: &[Sub], what: &str, pred: impl Fn(&Sub, &[Ev]) -> bool) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let pending: Vec<usize> = subs.iter().enumerate().filter(|(_, s)| !pred(s, &s.inbox.lock().expect("inbox"))).map(|(i, _)| i).collect();
        if pending.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "subscribers {pending:?} did not receive {what} in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One committed write as a subscriber should see it.
#[derive(Debug, Clone)]
struct Written {
    collection: &'static str,
    id: String,
    action: &'static str,
    v: i64,
    n: i64,
    owner: Option<usize>,
}

fn may_see(sub: &Sub, w: &Written) -> bool {
    match w.collection {
        "items" => !sub.filtered || w.n >= 50,
        _ => match sub.who {
            Who::Superuser => true,
            Who::User(u) => w.owner == Some(u),
            Who::Guest => false,
        },
    }
}

fn items_filter_topic() -> String {
    let options = json!({"query": {"filter": "n >= 50"}}).to_string();
    format!("items/*?options={}", url_encode(&options))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Opens `count` subscribers (even: SSE, odd: WS) cycling through the identities, each on
/// `items/*` (some with the filter) and `secrets/*`. SSE subscriptions are POSTed through a
/// connection to another worker than the stream's, so each is forwarded over the bus.
fn subscribe_all(c: &Cluster, users: &[(String, String)], count: usize) -> (Vec<Sub>, Vec<u32>) {
    let mut subs = Vec::new();
    let mut owners = Vec::new();
    for i in 0..count {
        let who = match i % 5 {
            0 => Who::Guest,
            4 => Who::Superuser,
            u => Who::User(u - 1),
        };
        let token = match &who {
            Who::Guest => None,
            Who::User(u) => Some(users[*u].1.clone()),
            Who::Superuser => Some(c.su.clone()),
        };
        let filtered = i % 3 == 2;
        let items_topic = if filtered { items_filter_topic() } else { "items/*".to_owned() };
        let topics = vec![items_topic.clone(), "secrets/*".to_owned()];
        let (inbox, client_id) = if i % 2 == 0 {
            let sse = open_sse(c.p.port);
            let stream_worker = owner(&sse.client_id);
            let (status, post_worker) = post_elsewhere(c.p.port, stream_worker, token.as_deref(), &json!({"clientId": sse.client_id, "subscriptions": topics}));
            assert_eq!(status, 204, "forwarded subscription POST");
            assert_ne!(post_worker, stream_worker);
            (sse.inbox, sse.client_id)
        } else {
            let ws = open_ws(c.p.port, token.as_deref(), &topics);
            (ws.inbox, ws.client_id)
        };
        owners.push(owner(&client_id));
        subs.push(Sub { who, filtered, items_topic, inbox });
    }
    (subs, owners)
}

/// Runs `per_thread` writes on each of `threads` threads, each on its own records, through
/// fresh connections. Returns every committed write in per-record order.
fn write_load(c: &Cluster, users: &[(String, String)], threads: usize, per_thread: usize) -> Vec<Written> {
    let log: Arc<Mutex<Vec<Written>>> = Arc::default();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let log = log.clone();
            scope.spawn(move || {
                // (collection, id, v, n, owner) of this thread's live records.
                let mut live: Vec<(&'static str, String, i64, i64, Option<usize>)> = Vec::new();
                let mut rng = 0x9e37_79b9_u64.wrapping_mul(t as u64 + 1);
                for k in 0..per_thread {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let roll = rng % 10;
                    let n = (rng % 100) as i64;
                    let w = if live.is_empty() || roll < 4 {
                        if roll.is_multiple_of(2) {
                            let rec = c.call("POST", "/api/collections/items/records", Some(&json!({"title": format!("t{t}k{k}"), "n": n, "v": 0})));
                            let id = rec["id"].as_str().expect("id").to_owned();
                            live.push(("items", id.clone(), 0, n, None));
                            Written { collection: "items", id, action: "create", v: 0, n, owner: None }
                        } else {
                            let u = (rng as usize / 7) % users.len();
                            let rec = c.call("POST", "/api/collections/secrets/records", Some(&json!({"owner": users[u].0, "v": 0})));
                            let id = rec["id"].as_str().expect("id").to_owned();
                            live.push(("secrets", id.clone(), 0, 0, Some(u)));
                            Written { collection: "secrets", id, action: "create", v: 0, n: 0, owner: Some(u) }
                        }
                    } else {
                        let i = (rng as usize / 11) % live.len();
                        let (col, id, v, old_n, own) = live[i].clone();
                        if roll < 8 {
                            let v = v + 1;
                            c.call("PATCH", &format!("/api/collections/{col}/records/{id}"), Some(&json!({"n": n, "v": v})));
                            let n = if col == "items" { n } else { old_n };
                            live[i] = (col, id.clone(), v, n, own);
                            Written { collection: col, id, action: "update", v, n, owner: own }
                        } else {
                            c.call("DELETE", &format!("/api/collections/{col}/records/{id}"), None);
                            live.remove(i);
                            Written { collection: col, id, action: "delete", v, n: old_n, owner: own }
                        }
                    };
                    log.lock().expect("log").push(w);
                }
            });
        }
    });
    Arc::try_unwrap(log).expect("sole owner").into_inner().expect("log")
}

/// Checks that each subscriber got exactly what it may see: per record, the same actions and
/// versions in the same order, none missing, none twice, nothing else (barrier excluded).
fn check_exact(subs: &[Sub], writes: &[Written], barrier: &str) {
    for (i, s) in subs.iter().enumerate() {
        let got = s.inbox.lock().expect("inbox").clone();
        let mut got_per: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
        for e in got.iter().filter(|e| e.id != barrier) {
            let expected_topic = if e.collection == "items" { s.items_topic.as_str() } else { "secrets/*" };
            assert_eq!(e.topic, expected_topic, "subscriber {i}: event under its subscription's name");
            got_per.entry((e.collection.clone(), e.id.clone())).or_default().push((e.action.clone(), e.v));
        }
        let mut want_per: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
        for w in writes.iter().filter(|w| may_see(s, w)) {
            want_per.entry((w.collection.to_owned(), w.id.clone())).or_default().push((w.action.to_owned(), w.v));
        }
        assert_eq!(got_per, want_per, "subscriber {i} ({:?}, filtered: {}) got other events than its rules allow", s.who, s.filtered);
    }
}

fn expected_counts(subs: &[Sub], writes: &[Written]) -> Vec<usize> {
    subs.iter().map(|s| writes.iter().filter(|w| may_see(s, w)).count()).collect()
}

#[test]
fn every_subscriber_gets_exactly_what_its_rules_allow_across_four_workers() {
    let c = start_cluster();
    let users = c.schema();
    let (subs, owners) = subscribe_all(&c, &users, 20);
    let mut spread: HashMap<u32, usize> = HashMap::new();
    for o in &owners {
        *spread.entry(*o).or_default() += 1;
    }
    println!("subscribers per worker: {spread:?}");

    let writes = write_load(&c, &users, 4, 50);
    assert_eq!(writes.len(), 200);
    let want = expected_counts(&subs, &writes);
    wait_all(&subs, "their events", |s, got| {
        let i = subs.iter().position(|x| std::ptr::eq(x, s)).unwrap_or(0);
        got.len() >= want[i]
    });

    // A batch that fails (its second item lacks the required title) commits nothing and so
    // publishes nothing; a barrier everyone sees then proves nothing else is on its way.
    c.call("PATCH", "/api/settings", Some(&json!({"batch": {"enabled": true, "maxRequests": 50}})));
    let failed = call(
        c.p.port,
        "POST",
        "/api/batch",
        Some(&c.su),
        Some(&json!({"requests": [
            {"method": "POST", "url": "/api/collections/items/records", "body": {"title": "in a failed batch", "n": 99, "v": 0}},
            {"method": "POST", "url": "/api/collections/items/records", "body": {"n": 99, "v": 0}}
        ]})),
    );
    assert_eq!(failed.status, 400, "{}", String::from_utf8_lossy(&failed.body));
    let barrier = c.call("POST", "/api/collections/items/records", Some(&json!({"title": "barrier", "n": 100, "v": 0})));
    let barrier_id = barrier["id"].as_str().expect("id").to_owned();
    wait_all(&subs, "the barrier", |_, got| got.iter().any(|e| e.id == barrier_id));
    for s in &subs {
        assert!(!s.inbox.lock().expect("inbox").iter().any(|e| e.v == 0 && e.action == "create" && e.id != barrier_id && !writes.iter().any(|w| w.id == e.id)), "an event from the failed batch");
    }
    check_exact(&subs, &writes, &barrier_id);

    // A batch that commits publishes each of its writes once.
    let ok_batch = c.call(
        "POST",
        "/api/batch",
        Some(&json!({"requests": [
            {"method": "POST", "url": "/api/collections/items/records", "body": {"title": "batched a", "n": 60, "v": 0}},
            {"method": "POST", "url": "/api/collections/items/records", "body": {"title": "batched b", "n": 61, "v": 0}}
        ]})),
    );
    let batched: Vec<String> = ok_batch.as_array().expect("items").iter().map(|r| r["body"]["id"].as_str().expect("id").to_owned()).collect();
    wait_all(&subs, "the committed batch", |_, got| batched.iter().all(|id| got.iter().filter(|e| &e.id == id).count() == 1));
}

#[test]
fn killing_a_worker_does_not_stop_delivery_on_the_others() {
    let c = start_cluster();
    let users = c.schema();
    let mut sses: Vec<SseSub> = Vec::new();
    // Enough SSE streams that at least two workers hold some.
    let mut workers: HashMap<u32, usize> = HashMap::new();
    while sses.len() < 8 || workers.len() < 2 {
        let s = open_sse(c.p.port);
        let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": s.client_id, "subscriptions": ["items/*"]}));
        assert_eq!(status, 204);
        *workers.entry(owner(&s.client_id)).or_default() += 1;
        sses.push(s);
        assert!(sses.len() < 200, "streams never spread over two workers");
    }
    let victim = *workers.keys().next().expect("a worker");
    // The victim's pid, from its own health answer.
    let pid = loop {
        let h = get(c.p.port, "/_/health").expect("health").json();
        if h["worker_id"].as_u64() == Some(u64::from(victim)) {
            break h["pid"].as_u64().expect("pid") as u32;
        }
    };
    kill(pid, Signal::SIGKILL);
    assert!(wait_gone(&[pid], Duration::from_secs(20)), "worker {victim} (pid {pid}) did not die");

    let survivors: Vec<&SseSub> = sses.iter().filter(|s| owner(&s.client_id) != victim).collect();
    assert!(!survivors.is_empty());
    let mut ids = Vec::new();
    for k in 0..20 {
        let body = json!({"title": format!("after kill {k}"), "n": k, "v": 0});
        let rec = ok(call_across_a_kill(c.p.port, "POST", "/api/collections/items/records", Some(&c.su), Some(&body)));
        ids.push(rec["id"].as_str().expect("id").to_owned());
    }
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    for s in &survivors {
        loop {
            let got: Vec<String> = s.inbox.lock().expect("inbox").iter().map(|e| e.id.clone()).collect();
            if ids.iter().all(|id| got.contains(id)) {
                assert_eq!(got, ids, "each event once, in order");
                break;
            }
            assert!(Instant::now() < deadline, "a subscriber on a surviving worker missed events: {got:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The victim's streams ended with it (clients reconnect elsewhere).
    for s in sses.iter().filter(|s| owner(&s.client_id) == victim) {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        while !s.ended.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "a stream of the killed worker stayed open");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = users;
}

#[test]
fn a_draining_worker_ends_its_streams_with_a_final_frame() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    let sse = open_sse(p.port);
    let (status, _) = post_elsewhere(p.port, u32::MAX, None, &json!({"clientId": sse.client_id, "subscriptions": ["items/*"]}));
    assert_eq!(status, 204);
    p.signal(Signal::SIGTERM);
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while !sse.ended.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the stream stayed open during the drain");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sse.drained.load(std::sync::atomic::Ordering::SeqCst), "no final VB_DRAIN frame before the end");
    let status = p.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(status.success(), "drained cleanly, without waiting for the stream: {status}");
}

/// A `members` user subscribed to `secrets/*` and `items/*` with her token, shown to get her
/// own secret (the positive control for what follows): the cluster, her id and token, the
/// stream.
fn owner_getting_her_secrets(c: &Cluster) -> (String, String, SseSub) {
    let users = c.schema();
    let (u1, token) = users[0].clone();
    let sse = open_sse(c.p.port);
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, Some(&token), &json!({"clientId": sse.client_id, "subscriptions": ["secrets/*", "items/*"]}));
    assert_eq!(status, 204);
    let first = c.call("POST", "/api/collections/secrets/records", Some(&json!({"owner": u1, "v": 0})))["id"].as_str().expect("id").to_owned();
    wait_for_event(&sse, &first, "the owner did not get her secret");
    (u1, token, sse)
}

fn wait_for_event(sse: &SseSub, id: &str, what: &str) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while !sse.inbox.lock().expect("inbox").iter().any(|e| e.id == id) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a public barrier record reached the stream, everything committed before it has been
/// judged: `secret` must not be among what arrived.
fn assert_not_delivered(c: &Cluster, sse: &SseSub, secret: &str) {
    let barrier = c.call("POST", "/api/collections/items/records", Some(&json!({"title": "barrier", "n": 1, "v": 0})))["id"].as_str().expect("id").to_owned();
    wait_for_event(sse, &barrier, "the barrier did not arrive");
    let got: Vec<String> = sse.inbox.lock().expect("inbox").iter().map(|e| e.id.clone()).collect();
    assert!(!got.iter().any(|id| id == secret), "a revoked client still received a secret: {got:?}");
}

#[test]
fn a_change_committed_with_a_token_key_change_is_judged_with_the_new_auth() {
    // One batch commits the password change (a new tokenKey) and, after it, a secret: the two
    // changes reach the dispatcher as one set, and the secret must be judged with the
    // client's auth as the password change left it (a guest), not as the round began.
    let c = start(Spawn::serve());
    c.call("PATCH", "/api/settings", Some(&json!({"batch": {"enabled": true}})));
    let (u1, _, sse) = owner_getting_her_secrets(&c);
    let items = c.call("POST", "/api/batch", Some(&json!({"requests": [
        {"method": "PATCH", "url": format!("/api/collections/members/records/{u1}"), "body": {"password": "a brand new password", "passwordConfirm": "a brand new password"}},
        {"method": "POST", "url": "/api/collections/secrets/records", "body": {"owner": u1, "v": 0}}
    ]})));
    let second = items[1]["body"]["id"].as_str().expect("secret id").to_owned();
    assert_not_delivered(&c, &sse, &second);
}

#[test]
fn a_client_whose_auth_record_gets_a_new_token_key_becomes_a_guest() {
    let c = start(Spawn::cluster(2));
    let (u1, token, sse) = owner_getting_her_secrets(&c);
    // A new password rotates the tokenKey: every token issued before is void, and so is the
    // realtime client's auth.
    c.call("PATCH", &format!("/api/collections/members/records/{u1}"), Some(&json!({"password": "a brand new password", "passwordConfirm": "a brand new password"})));
    let second = c.call("POST", "/api/collections/secrets/records", Some(&json!({"owner": u1, "v": 0})))["id"].as_str().expect("id").to_owned();
    assert_not_delivered(&c, &sse, &second);
    // The same POST with the old token now binds nothing: the client is a guest again and a
    // guest → auth upgrade with a valid token is what is allowed.
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, Some(&token), &json!({"clientId": sse.client_id, "subscriptions": ["secrets/*"]}));
    assert_eq!(status, 204);
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_off_without_holding_back_the_others() {
    let c = start(Spawn::serve());
    c.call("POST", "/api/collections", Some(&json!({"name": "blobs", "listRule": "", "viewRule": "", "fields": [
        {"name": "body", "type": "text", "max": 200000},
        {"name": "v", "type": "number"}
    ]})));
    // The slow one: reads its PB_CONNECT, subscribes, then reads nothing more.
    let mut slow = TcpStream::connect(("127.0.0.1", c.p.port)).expect("connect");
    slow.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut slow_r = BufReader::new(slow.try_clone().expect("clone"));
    read_head(&mut slow_r);
    let mut first = String::new();
    while !first.contains("\n\n") {
        let mut line = String::new();
        slow_r.read_line(&mut line).expect("read");
        first.push_str(&line);
    }
    let slow_id = first.lines().find_map(|l| l.strip_prefix("id:")).expect("client id").to_owned();
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": slow_id, "subscriptions": ["blobs/*"]}));
    assert_eq!(status, 204);
    let fast = open_sse(c.p.port);
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": fast.client_id, "subscriptions": ["blobs/*"]}));
    assert_eq!(status, 204);

    // 150 events of ~100 KB: far more than the socket buffers plus the 4 MiB outbox bound.
    const EVENTS: usize = 150;
    let body = "x".repeat(100_000);
    let mut ids = Vec::new();
    for _ in 0..EVENTS {
        ids.push(c.call("POST", "/api/collections/blobs/records", Some(&json!({"body": body, "v": 0})))["id"].as_str().expect("id").to_owned());
    }
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let got: Vec<String> = fast.inbox.lock().expect("inbox").iter().map(|e| e.id.clone()).collect();
        if got.len() >= EVENTS {
            assert_eq!(got, ids, "the reading subscriber got every event once, in order");
            break;
        }
        assert!(Instant::now() < deadline, "the reading subscriber was held back: {} of {EVENTS}", got.len());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The slow one's stream was ended by the server: reading it now reaches the end of the
    // chunked body (or the connection's end) with fewer than all events.
    slow.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut rest = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match slow_r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                rest.extend_from_slice(&buf[..n]);
                if rest.ends_with(b"\r\n0\r\n\r\n") {
                    break;
                }
            }
            Err(e) => panic!("the slow stream was neither ended nor closed: {e}"),
        }
    }
    let seen = rest.windows(8).filter(|w| w == b"\nevent:b").count();
    println!("the slow subscriber got {seen} of {EVENTS} events before it was cut off");
    assert!(seen < EVENTS, "the slow subscriber was not cut off ({seen} events)");
}

/// Waits until `sub` received an event for `id`.
fn wait_for(sub: &SseSub, id: &str, what: &str) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while !sub.inbox.lock().expect("inbox").iter().any(|e| e.id == id) {
        assert!(Instant::now() < deadline, "{what}: no event for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rules that read their own collection — `@collection.<same>`, a back-relation from the same
/// collection, a self-relation path — are judged against the whole table, not against the
/// changed row alone; a delete is judged against the row as it was (and the table with it).
#[test]
fn rules_reading_their_own_collection_see_the_whole_table() {
    let c = start(Spawn::cluster(2));
    let users = c.schema();
    let (u1, u2, u3) = (users[0].0.clone(), users[1].0.clone(), users[2].0.clone());
    let members = c.call("GET", "/api/collections/members", None)["id"].as_str().expect("id").to_owned();
    // A note is visible to whoever has a note in the same group.
    let same_group = "@collection.groupnotes.grp ?= grp && @collection.groupnotes.owner ?= @request.auth.id";
    c.call("POST", "/api/collections", Some(&json!({"name": "groupnotes", "listRule": same_group, "viewRule": same_group, "fields": [
        {"name": "grp", "type": "text"},
        {"name": "owner", "type": "relation", "collectionId": members, "maxSelect": 1},
        {"name": "v", "type": "number"}
    ]})));
    // A task is visible to its owner, to the owner of its parent task (self-relation path) and
    // to the owners of its subtasks (back-relation from the same collection).
    let family = "owner = @request.auth.id || parent.owner = @request.auth.id || tasks_via_parent.owner ?= @request.auth.id";
    let tasks_id = "pbc_rttasks0001";
    c.call("POST", "/api/collections", Some(&json!({"id": tasks_id, "name": "tasks", "listRule": family, "viewRule": family, "fields": [
        {"name": "owner", "type": "relation", "collectionId": members, "maxSelect": 1},
        {"name": "parent", "type": "relation", "collectionId": tasks_id, "maxSelect": 1},
        {"name": "v", "type": "number"}
    ]})));
    let create = |coll: &str, body: Value| c.call("POST", &format!("/api/collections/{coll}/records"), Some(&body))["id"].as_str().expect("id").to_owned();
    let n2 = create("groupnotes", json!({"grp": "g", "owner": u2, "v": 0}));
    let parent = create("tasks", json!({"owner": u1, "v": 0}));
    create("tasks", json!({"owner": u2, "parent": parent, "v": 0}));

    let subs: Vec<SseSub> = users
        .iter()
        .map(|(_, token)| {
            let sse = open_sse(c.p.port);
            let body = json!({"clientId": sse.client_id, "subscriptions": ["groupnotes/*", "tasks/*", "items/*"]});
            let (status, _) = post_elsewhere(c.p.port, u32::MAX, Some(token), &body);
            assert_eq!(status, 204);
            sse
        })
        .collect();

    // Rules are judged when a change is delivered, against the database as it is then: each
    // step waits until every subscriber has had the one before (a barrier everyone sees, in
    // commit order), so no later write changes what an earlier change is judged against.
    let mut barriers = Vec::new();
    let mut settle = || {
        let barrier = create("items", json!({"title": "barrier", "n": 1, "v": 9}));
        for (i, s) in subs.iter().enumerate() {
            wait_for(s, &barrier, &format!("u{}", i + 1));
        }
        barriers.push(barrier);
    };
    // u1's note in group g: u1 owns it, u2 has a note in g, u3 has none.
    let n1 = create("groupnotes", json!({"grp": "g", "owner": u1, "v": 1}));
    settle();
    // The parent task changes: u1 owns it, u2 owns a subtask of it, u3 neither.
    c.call("PATCH", &format!("/api/collections/tasks/records/{parent}"), Some(&json!({"v": 2})));
    settle();
    // A subtask for u3 under u1's task: u3 owns it, u1 owns its parent, u2 neither.
    let sub3 = create("tasks", json!({"owner": u3, "parent": parent, "v": 3}));
    settle();
    // Deleting u1's note: judged as things were before — u1 owned it, u2 still has a note in g.
    c.call("DELETE", &format!("/api/collections/groupnotes/records/{n1}"), None);
    settle();
    let got = |i: usize| -> Vec<(String, String)> {
        subs[i].inbox.lock().expect("inbox").iter().filter(|e| !barriers.contains(&e.id)).map(|e| (e.action.clone(), e.id.clone())).collect()
    };
    let ev = |action: &str, id: &str| (action.to_owned(), id.to_owned());
    assert_eq!(got(0), [ev("create", &n1), ev("update", &parent), ev("create", &sub3), ev("delete", &n1)], "u1");
    assert_eq!(got(1), [ev("create", &n1), ev("update", &parent), ev("delete", &n1)], "u2");
    assert_eq!(got(2), [ev("create", &sub3)], "u3");
    let _ = (n2, u3);
}

/// Polls `done` until it holds; fails with `what` after [`DELIVERY_DEADLINE`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server logged closing stream `client_id` for `reason`.
fn closed_for(p: &Proc, client_id: &str, reason: &str) -> bool {
    p.logs_with_message("realtime stream closed").iter().any(|l| l["client_id"] == client_id && l["reason"] == reason)
}

/// The idle timeout (shortened for the test) closes an SSE stream and a WebSocket that get
/// nothing: the SSE body ends, the WebSocket gets close 1000 "idle".
#[test]
fn an_idle_stream_is_closed() {
    let c = start(Spawn::serve().env("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", "1000").env("VAULTBASE_LOG_LEVEL", "debug"));
    let sse = open_sse(c.p.port);
    let ws = open_ws(c.p.port, None, &["items/*".to_owned()]);
    wait_until("the idle SSE stream stayed open", || sse.ended.load(std::sync::atomic::Ordering::SeqCst));
    wait_until("the idle WebSocket stayed open", || ws.ended.lock().expect("end").is_some());
    assert_eq!(*ws.ended.lock().expect("end"), Some(Some((1000, "idle".to_owned()))));
    wait_until("the SSE close was not logged as idle", || closed_for(&c.p, &sse.client_id, "idle"));
    assert!(closed_for(&c.p, &ws.client_id, "idle"));
}

/// Events keep a stream past the idle timeout; both an SSE stream and a WebSocket still end at
/// their maximum lifetime, however busy (the WebSocket with close 1000 `max_lifetime`).
#[test]
fn a_stream_receiving_events_outlives_the_idle_timeout_and_ends_at_its_max_lifetime() {
    let c = start(
        Spawn::serve()
            .env("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", "2000")
            .env("VAULTBASE_REALTIME_MAX_LIFETIME_MS", "8000")
            .env("VAULTBASE_LOG_LEVEL", "debug"),
    );
    c.call("POST", "/api/collections", Some(&json!({"name": "ticks", "listRule": "", "viewRule": "", "fields": [{"name": "v", "type": "number"}]})));
    let sse = open_sse(c.p.port);
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": sse.client_id, "subscriptions": ["ticks/*"]}));
    assert_eq!(status, 204);
    let ws = open_ws(c.p.port, None, &["ticks/*".to_owned()]);
    // A steady trickle of events, far more often than the idle timeout, until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, port, su) = (stop.clone(), c.p.port, c.su.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                ok(call(port, "POST", "/api/collections/ticks/records", Some(&su), Some(&json!({"v": 1}))));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    wait_until("the SSE stream outlived its maximum lifetime", || sse.ended.load(std::sync::atomic::Ordering::SeqCst));
    wait_until("the WebSocket outlived its maximum lifetime", || ws.ended.lock().expect("end").is_some());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().expect("writer");
    assert_eq!(*ws.ended.lock().expect("end"), Some(Some((1000, "max_lifetime".to_owned()))));
    wait_until("the closes were not logged", || closed_for(&c.p, &sse.client_id, "max_lifetime") && closed_for(&c.p, &ws.client_id, "max_lifetime"));
    assert!(!closed_for(&c.p, &sse.client_id, "idle"), "closed for another reason: {}", c.p.log_text());
    assert!(!closed_for(&c.p, &ws.client_id, "idle"), "closed for another reason: {}", c.p.log_text());
    assert!(!sse.inbox.lock().expect("inbox").is_empty(), "the SSE stream got events");
    assert!(!ws.inbox.lock().expect("inbox").is_empty(), "the WebSocket got events");
}

/// A WebSocket authenticated with a token that expires becomes a guest's when it does: it is
/// told so, and then gets only what a guest may see. A second session of the same user with a
/// long-lived token still gets the owner-only record (positive control).
#[test]
fn a_websocket_whose_token_expires_becomes_a_guest() {
    let c = start(Spawn::serve());
    let users = c.schema();
    let (u1, long_token) = users[0].clone();
    let short = c.call("POST", &format!("/api/collections/members/impersonate/{u1}"), Some(&json!({"duration": 3})));
    let short_token = short["token"].as_str().expect("token");
    let topics = ["secrets/*".to_owned(), "items/*".to_owned()];
    let expiring = open_ws(c.p.port, Some(short_token), &topics);
    let lasting = open_ws(c.p.port, Some(&long_token), &topics);
    wait_until("no token_expired notice", || expiring.control.lock().expect("control").iter().any(|m| m["reason"] == "token_expired"));
    let notice = expiring.control.lock().expect("control").iter().find(|m| m["reason"] == "token_expired").cloned();
    assert_eq!(notice, Some(json!({"type": "authenticated", "collectionName": null, "id": null, "reason": "token_expired"})));
    let secret = c.call("POST", "/api/collections/secrets/records", Some(&json!({"owner": u1, "v": 1})))["id"].as_str().expect("id").to_owned();
    let barrier = c.call("POST", "/api/collections/items/records", Some(&json!({"title": "barrier", "n": 1, "v": 0})))["id"].as_str().expect("id").to_owned();
    let has = |s: &WsSub, id: &str| s.inbox.lock().expect("inbox").iter().any(|e| e.id == id);
    wait_until("the lasting session did not get the secret and the barrier", || has(&lasting, &secret) && has(&lasting, &barrier));
    wait_until("the expired session did not get the barrier", || has(&expiring, &barrier));
    assert!(!has(&expiring, &secret), "an expired session still got the owner's secret");
}

/// A record change carrying a 5 MB json field reaches an SSE and a WebSocket subscriber whole.
#[test]
fn a_five_megabyte_change_reaches_subscribers_in_serve() {
    let c = start(Spawn::serve());
    let id = big_blob_collection(&c);
    let sse = open_sse(c.p.port);
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": sse.client_id, "subscriptions": ["blobs/*"]}));
    assert_eq!(status, 204);
    let ws = open_ws(c.p.port, None, &["blobs/*".to_owned()]);
    let data = big_data();
    c.call("PATCH", &format!("/api/collections/blobs/records/{id}"), Some(&json!({"data": data, "v": 2})));
    let whole = |inbox: &Inbox| inbox.lock().expect("inbox").iter().any(|e| e.id == id && e.v == 2 && e.data_len == data.len());
    wait_until("the SSE subscriber did not get the 5 MB change", || whole(&sse.inbox));
    wait_until("the WebSocket subscriber did not get the 5 MB change", || whole(&ws.inbox));
}

/// The same across workers: the change is written through another worker than the
/// subscriber's, so it crosses the bus, whose frames are limited to 4 MiB.
#[test]
fn a_five_megabyte_change_reaches_a_subscriber_on_another_worker() {
    let c = start(Spawn::cluster(2));
    let id = big_blob_collection(&c);
    let sse = open_sse(c.p.port);
    let home = owner(&sse.client_id);
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": sse.client_id, "subscriptions": ["blobs/*"]}));
    assert_eq!(status, 204);
    let data = big_data();
    let (mut s, mut r, worker) = connect_elsewhere(c.p.port, home);
    assert_ne!(worker, home);
    let body = json!({"data": data, "v": 2}).to_string();
    let req = format!(
        "PATCH /api/collections/blobs/records/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        c.su,
        body.len()
    );
    s.write_all(req.as_bytes()).expect("patch head");
    s.write_all(body.as_bytes()).expect("patch body");
    assert_eq!(status_of(&read_head(&mut r)), 200);
    let whole = || sse.inbox.lock().expect("inbox").iter().any(|e| e.id == id && e.v == 2 && e.data_len == data.len());
    wait_until("the subscriber on the other worker did not get the 5 MB change", whole);
}

/// `blobs` (public, a json `data` field allowed 10 MB) with one small record; its id.
fn big_blob_collection(c: &Cluster) -> String {
    c.call("POST", "/api/collections", Some(&json!({"name": "blobs", "listRule": "", "viewRule": "", "fields": [
        {"name": "data", "type": "json", "maxSize": 10_000_000},
        {"name": "v", "type": "number"}
    ]})));
    c.call("POST", "/api/collections/blobs/records", Some(&json!({"data": "small", "v": 1})))["id"].as_str().expect("id").to_owned()
}

/// 5 MB of text with quotes and backslashes (escaped again on the bus) and non-ASCII.
fn big_data() -> String {
    let unit = "a \"quoted\" \\ path — é ";
    unit.repeat(5_000_000 / unit.len() + 1)
}

/// Two users subscribe with the same filter through a relation whose target's list rule shows
/// each user only herself: each must get her own posts only, never the other's, although
/// their subscriptions are equal.
#[test]
fn equal_filters_through_a_relation_are_judged_per_identity() {
    let c = start(Spawn::serve());
    let users = c.schema();
    let members = c.call("GET", "/api/collections/members", None)["id"].as_str().expect("id").to_owned();
    c.call("POST", "/api/collections", Some(&json!({"name": "posts", "listRule": "", "viewRule": "", "fields": [
        {"name": "author", "type": "relation", "collectionId": members, "maxSelect": 1},
        {"name": "v", "type": "number"}
    ]})));
    let filter = json!({"query": {"filter": "author.verified = false"}}).to_string();
    let topic = format!("posts/*?options={}", url_encode(&filter));
    let subs: Vec<SseSub> = users[..2]
        .iter()
        .map(|(_, token)| {
            let sse = open_sse(c.p.port);
            let (status, _) = post_elsewhere(c.p.port, u32::MAX, Some(token), &json!({"clientId": sse.client_id, "subscriptions": [topic, "items/*"]}));
            assert_eq!(status, 204);
            sse
        })
        .collect();
    let post1 = c.call("POST", "/api/collections/posts/records", Some(&json!({"author": users[0].0, "v": 1})))["id"].as_str().expect("id").to_owned();
    let post2 = c.call("POST", "/api/collections/posts/records", Some(&json!({"author": users[1].0, "v": 2})))["id"].as_str().expect("id").to_owned();
    let barrier = c.call("POST", "/api/collections/items/records", Some(&json!({"title": "barrier", "n": 1, "v": 0})))["id"].as_str().expect("id").to_owned();
    for (i, s) in subs.iter().enumerate() {
        wait_for(s, &barrier, &format!("u{}", i + 1));
    }
    let got = |s: &SseSub| -> Vec<String> { s.inbox.lock().expect("inbox").iter().filter(|e| e.id != barrier).map(|e| e.id.clone()).collect() };
    assert_eq!(got(&subs[0]), [post1], "u1");
    assert_eq!(got(&subs[1]), [post2], "u2");
}

/// A client may use at most 100 distinct subscription options: the 101st is refused with 400
/// in PocketBase's envelope (SSE POST) or an error message carrying the same (WebSocket), and
/// 100 are accepted (control).
#[test]
fn a_client_may_not_use_more_than_a_hundred_distinct_options() {
    let c = start(Spawn::serve());
    let topics = |n: usize| -> Vec<String> {
        (0..n).map(|i| format!("items/*?options={}", url_encode(&json!({"query": {"i": i.to_string()}}).to_string()))).collect()
    };
    let sse = open_sse(c.p.port);
    let post = |subs: Vec<String>| call(c.p.port, "POST", "/api/realtime", None, Some(&json!({"clientId": sse.client_id, "subscriptions": subs})));
    let refused = post(topics(101));
    assert_eq!(refused.status, 400, "{}", String::from_utf8_lossy(&refused.body));
    let body = refused.json();
    assert_eq!(body["status"], 400);
    assert_eq!(body["data"]["subscriptions"]["code"], "validation_too_many_options", "{body}");
    assert_eq!(post(topics(100)).status, 204);

    let ws = open_ws(c.p.port, None, &topics(100));
    let stream = TcpStream::connect(("127.0.0.1", c.p.port)).expect("connect");
    let (mut raw, _) = tungstenite::client::client(format!("ws://127.0.0.1:{}/realtime", c.p.port), stream).expect("ws handshake");
    raw.read().expect("connected");
    raw.send(Message::Text(json!({"type": "subscribe", "topics": topics(101)}).to_string())).expect("send subscribe");
    let reply: Value = match raw.read().expect("reply") {
        Message::Text(t) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "too_many_options");
    assert_eq!(reply["status"], 400);
    assert!(ws.ended.lock().expect("end").is_none());
}

/// A subscriber that stops reading is cut off at its outbox bound and leaves the worker's
/// client registry then, not when its connection finally dies.
#[test]
fn a_cut_off_subscriber_leaves_the_client_registry() {
    let c = start(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1"));
    c.call("POST", "/api/collections", Some(&json!({"name": "blobs", "listRule": "", "viewRule": "", "fields": [
        {"name": "body", "type": "text", "max": 200000}
    ]})));
    let clients = || ok(call(c.p.port, "GET", "/_/test/stats", None, None))["realtimeClients"].as_u64().expect("realtimeClients");
    let mut slow = TcpStream::connect(("127.0.0.1", c.p.port)).expect("connect");
    slow.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut slow_r = BufReader::new(slow.try_clone().expect("clone"));
    read_head(&mut slow_r);
    let mut first = String::new();
    while !first.contains("\n\n") {
        let mut line = String::new();
        slow_r.read_line(&mut line).expect("read");
        first.push_str(&line);
    }
    let slow_id = first.lines().find_map(|l| l.strip_prefix("id:")).expect("client id").to_owned();
    let (status, _) = post_elsewhere(c.p.port, u32::MAX, None, &json!({"clientId": slow_id, "subscriptions": ["blobs/*"]}));
    assert_eq!(status, 204);
    assert_eq!(clients(), 1, "the subscriber is registered");
    // ~100 KB events until it is gone: the socket buffers plus the 4 MiB bound fill long
    // before the last of them.
    const MAX_EVENTS: usize = 400;
    let body = "x".repeat(100_000);
    let mut sent = 0;
    while clients() > 0 && sent < MAX_EVENTS {
        c.call("POST", "/api/collections/blobs/records", Some(&json!({"body": body})));
        sent += 1;
    }
    wait_until("the cut-off subscriber is still registered", || clients() == 0);
    println!("gone from the registry after {sent} events");
    drop(slow);
}

/// PocketBase's OAuth2 redirect reaches the realtime client named by its `state` when the
/// redirect lands on another worker than the stream: the client gets `@oauth2` with the state
/// and code once, loses the subscription, and the page says so.
#[test]
fn an_oauth2_redirect_reaches_its_realtime_client_on_another_worker() {
    let c = start(Spawn::cluster(2));
    let sse = open_sse(c.p.port);
    let home = owner(&sse.client_id);
    let (status, _) = post_elsewhere(c.p.port, home, None, &json!({"clientId": sse.client_id, "subscriptions": ["@oauth2"]}));
    assert_eq!(status, 204);
    let redirect = |code: &str| -> (u16, u32) {
        let (mut s, mut r, worker) = connect_elsewhere(c.p.port, home);
        let req = format!("GET /api/oauth2-redirect?code={code}&state={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", sse.client_id);
        s.write_all(req.as_bytes()).expect("redirect");
        (status_of(&read_head(&mut r)), worker)
    };
    let (status, worker) = redirect("the-code");
    assert_ne!(worker, home);
    assert_eq!(status, 200);
    wait_until("no @oauth2 message", || !sse.inbox.lock().expect("inbox").is_empty());
    let got = sse.inbox.lock().expect("inbox").clone();
    assert_eq!(got, [Ev { collection: sse.client_id.clone(), id: "the-code".into(), action: "message".into(), v: -1, topic: "@oauth2".into(), data_len: 0 }]);
    // One message per subscription: a replayed redirect finds no subscriber.
    assert_eq!(redirect("another-code").0, 400);
}
