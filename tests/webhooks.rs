//! Webhooks against a local receiver (a std `TcpListener` in the test): one signed delivery
//! per committed change, none for a rolled-back batch, retries with growing gaps and the same
//! event id, the SSRF refusal of private addresses without the opt-in, the test event, secrets
//! never shown after the create (webhooks are records of the `_webhooks` system collection),
//! the cluster guarantee under `kill -9`: every committed
//! write is delivered at least once, duplicates carrying the same event id, and the workers'
//! cached copies of the active webhooks following a change made through any worker at once,
//! and the pause of a failing webhook as a record update (realtime, hooks, `updated`) that
//! cannot feed a webhook listening to everything.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const POLL_TIMEOUT: Duration = Duration::from_secs(90);
const SECRET: &str = "receiver-secret-0123456789";
/// The webhook definitions: records of the `_webhooks` system collection.
const HOOKS: &str = "/api/collections/_webhooks/records";

fn hook_of(port: u16, token: &str, hook: &str) -> Value {
    ok(call(port, "GET", &format!("{HOOKS}/{hook}"), Some(token), None))
}

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(what, POLL_TIMEOUT, f)
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

type Answer = Arc<dyn Fn(&Received, usize) -> u16 + Send + Sync>;

/// A local HTTP receiver: records every request and answers the status `answer` picks (given
/// the request and how many requests with its event id came before it).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(answer: Answer, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (g, answer) = (g.clone(), answer.clone());
                std::thread::spawn(move || serve_one(conn, &g, &*answer, delay));
            }
        });
        Receiver { port, got }
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

fn serve_one(mut s: TcpStream, got: &Mutex<Vec<Received>>, answer: &(dyn Fn(&Received, usize) -> u16 + Send + Sync), delay: Duration) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let headers: HashMap<String, String> =
        head.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while raw.len() < head_end + len {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let r = Received { headers, body: raw[head_end..head_end + len].to_vec() };
    std::thread::sleep(delay);
    let status = {
        let mut g = got.lock().expect("lock");
        let id = r.headers.get("x-vaultbase-event-id").cloned();
        let before = g.iter().filter(|x| x.headers.get("x-vaultbase-event-id") == id.as_ref()).count();
        g.push(r.clone());
        answer(&r, before)
    };
    let _ = s.write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").as_bytes());
}

fn always(status: u16) -> Answer {
    Arc::new(move |_, _| status)
}

/// Checks the `X-Vaultbase-Signature` of a received request, as a receiver would.
fn verify(r: &Received) -> bool {
    let Some(sig) = r.headers.get("x-vaultbase-signature") else { return false };
    let Some((t, v1)) = sig.split_once(',').and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?))) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == v1
}

fn setup(port: u16, token: &str, receiver: u16) -> String {
    ok(call(port, "POST", "/api/collections", Some(token), Some(&json!({ "name": "posts", "type": "base", "fields": [{ "name": "title", "type": "text" }] }))));
    let hook = ok(call(port, "POST", HOOKS, Some(token), Some(&json!({
        "name": "receiver", "url": format!("http://127.0.0.1:{receiver}/hook"), "events": ["posts.*"], "secret": SECRET, "headers": { "X-Extra": "yes" }
    }))));
    assert_eq!(hook["secret"], SECRET, "the create answers the secret once");
    assert_eq!(hook["active"], true, "active unless the create says otherwise");
    hook["id"].as_str().expect("id").to_owned()
}

fn deliveries(port: u16, token: &str, hook: &str) -> Vec<Value> {
    ok(call(port, "GET", &format!("/api/vb/webhooks/{hook}/deliveries?limit=500"), Some(token), None))["items"].as_array().expect("items").clone()
}

#[test]
fn each_committed_change_is_delivered_once_signed_and_a_rolled_back_batch_delivers_nothing() {
    let receiver = Receiver::start(always(200), Duration::ZERO);
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1"));
    let hook = setup(p.port, &token, receiver.port);
    let shown = hook_of(p.port, &token, &hook);
    assert!(shown.get("secret").is_none() && shown["url"].is_string(), "no secret after the create: {shown}");
    let listed = ok(call(p.port, "GET", HOOKS, Some(&token), None));
    assert_eq!(listed["totalItems"], 1, "{listed}");
    assert!(!listed.to_string().contains(SECRET), "{listed}");
    // A form that cannot show the secret sends it back empty: it is kept (the signatures below
    // still verify with it).
    let patched = ok(call(p.port, "PATCH", &format!("{HOOKS}/{hook}"), Some(&token), Some(&json!({ "name": "renamed", "secret": "" }))));
    assert!(patched.get("secret").is_none() && patched["name"] == "renamed", "{patched}");
    assert_eq!(call(p.port, "GET", HOOKS, None, None).status, 403, "superusers only");
    // A generated secret is shown once too.
    let generated = ok(call(p.port, "POST", HOOKS, Some(&token), Some(&json!({ "url": "https://example.com/x", "events": ["*"], "active": false }))));
    assert!(generated["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{generated}");
    assert!(!hook_of(p.port, &token, generated["id"].as_str().expect("id")).to_string().contains("whsec_"));
    let bad = call(p.port, "POST", HOOKS, Some(&token), Some(&json!({ "url": "ftp://x", "events": ["posts.nope"], "headers": { "a": 1 } })));
    assert_eq!(bad.status, 400);
    let data = &bad.json()["data"];
    assert_eq!((data["url"]["code"].clone(), data["events"]["code"].clone()), (json!("validation_invalid_url"), json!("validation_invalid_value")), "{data}");
    assert_eq!(data["headers"]["code"], "validation_invalid_value", "{data}");

    let rec = ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "one" }))));
    let id = rec["id"].as_str().expect("id").to_owned();
    ok(call(p.port, "PATCH", &format!("/api/collections/posts/records/{id}"), Some(&token), Some(&json!({ "title": "two" }))));
    ok(call(p.port, "DELETE", &format!("/api/collections/posts/records/{id}"), Some(&token), None));

    // A batch whose second item fails rolls back its first: nothing may be delivered for it.
    ok(call(p.port, "PATCH", "/api/settings", Some(&token), Some(&json!({ "batch": { "enabled": true } }))));
    let batch = json!({ "requests": [
        { "method": "POST", "url": "/api/collections/posts/records", "body": { "title": "rolled back" } },
        { "method": "POST", "url": "/api/collections/missing/records", "body": {} },
    ]});
    assert_eq!(call(p.port, "POST", "/api/batch", Some(&token), Some(&batch)).status, 400);
    // Positive control, written after the batch.
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "control" }))));

    let got = poll("four deliveries", || Some(receiver.all()).filter(|g| g.len() >= 4));
    let jobs = ok(call(p.port, "GET", "/api/vb/jobs?name=webhook.deliver", Some(&token), None));
    assert_eq!(jobs["totalItems"], 4, "one delivery job per committed change: {jobs}");
    poll("every delivery job done", || {
        let j = ok(call(p.port, "GET", "/api/vb/jobs?name=webhook.deliver&status=done", Some(&token), None));
        (j["totalItems"] == 4).then_some(())
    });
    let got = { let mut g = got; g.extend(receiver.all().into_iter().skip(4)); g };
    assert_eq!(got.len(), 4, "exactly one attempt each");
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    let events: BTreeSet<(String, String)> = bodies.iter().map(|b| (b["event"].as_str().unwrap_or("").to_owned(), b["record"]["title"].as_str().unwrap_or("").to_owned())).collect();
    let expected: BTreeSet<(String, String)> =
        [("create", "one"), ("update", "two"), ("delete", "two"), ("create", "control")].iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    assert_eq!(events, expected);
    assert!(!bodies.iter().any(|b| b.to_string().contains("rolled back")));
    let update = bodies.iter().find(|b| b["event"] == "update").expect("update");
    assert_eq!(update["previous"]["title"], "one");
    // The record as the record API shows it, not the stored columns.
    assert!(bodies.iter().all(|b| b["record"]["collectionName"] == "posts"), "{bodies:?}");
    assert_eq!(update["collection"], "posts");
    for r in &got {
        assert!(verify(r), "the signature verifies: {:?}", r.headers);
        assert_eq!(r.headers.get("x-vaultbase-event-id").map(String::as_str), r.json()["id"].as_str());
        assert_eq!(r.headers.get("x-extra").map(String::as_str), Some("yes"));
    }
    let ids: BTreeSet<String> = bodies.iter().map(|b| b["id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(ids.len(), 4, "event ids are unique");
    let log = deliveries(p.port, &token, &hook);
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|d| d["status"] == 200 && d["attempt"] == 1), "{log:?}");

    // The test event reaches the receiver and the log.
    let t = ok(call(p.port, "POST", &format!("/api/vb/webhooks/{hook}/test"), Some(&token), None));
    let test = poll("the test event", || receiver.all().into_iter().find(|r| r.json()["event"] == "test"));
    assert_eq!(test.headers.get("x-vaultbase-event-id").map(String::as_str), t["eventId"].as_str());
    assert!(verify(&test));
}

#[test]
fn a_receiver_failing_twice_gets_three_attempts_with_growing_gaps_and_one_event_id() {
    let receiver = Receiver::start(Arc::new(|_, before| if before < 2 { 500 } else { 200 }), Duration::ZERO);
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1"));
    let hook = setup(p.port, &token, receiver.port);
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "flaky" }))));
    let log = poll("three attempts", || Some(deliveries(p.port, &token, &hook)).filter(|l| l.len() >= 3 && l[0]["status"] == 200));
    let mut log = log;
    log.reverse();
    let statuses: Vec<_> = log.iter().map(|d| d["status"].as_u64().expect("status")).collect();
    assert_eq!(statuses, [500, 500, 200]);
    // The gaps grow: the job queue's backoff (1 s, then 2 s) is a floor on when each retry
    // starts, whatever the load; the log's times are taken after each answer, so allow the
    // difference of two answer latencies (this receiver answers at once). The doubling of the
    // schedule itself is a unit test (`retry_delays_double_and_jitter_only_adds`).
    let times: Vec<i64> = log.iter().map(|d| d["created"].as_i64().expect("created")).collect();
    let latency_slack_ms = 100;
    assert!(times[1] - times[0] >= 1000 - latency_slack_ms && times[2] - times[1] >= 2000 - latency_slack_ms, "the gaps grow: {times:?}");
    let ids: BTreeSet<_> = receiver.all().iter().map(|r| r.headers.get("x-vaultbase-event-id").cloned()).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same event id");
    assert_eq!(receiver.all().len(), 3);
    let shown = hook_of(p.port, &token, &hook);
    assert_eq!(shown["failures"], 0, "a success resets the failure count");
}

#[test]
fn private_addresses_are_refused_without_the_opt_in() {
    let receiver = Receiver::start(always(200), Duration::ZERO);
    let (p, token) = start_with_superuser(Spawn::serve());
    let hook = setup(p.port, &token, receiver.port);
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "x" }))));
    let log = poll("a refused attempt", || Some(deliveries(p.port, &token, &hook)).filter(|l| !l.is_empty()));
    assert_eq!(log[0]["status"], 0);
    assert!(log[0]["error"].as_str().expect("error").contains("refused"), "{log:?}");
    assert!(receiver.all().is_empty(), "nothing reached the loopback receiver");
    // The same setup with the opt-in delivers: the first test of this file.
}

#[test]
fn on_a_three_worker_cluster_a_kill_9_loses_no_committed_delivery() {
    let receiver = Receiver::start(always(200), Duration::from_millis(100));
    let spawn = Spawn::cluster(3).env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1").env("VAULTBASE_JOBS_LEASE_MS", "1500");
    let (p, token) = start_with_superuser(spawn);
    p.wait_logs(3, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    setup(p.port, &token, receiver.port);
    let port = p.port;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let token = token.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    // A create the killed worker had accepted fails or not: the database decides
                    // below which records exist.
                    let body = json!({ "title": format!("w{w}-{i}") }).to_string();
                    let _ = request_with_token(port, "/api/collections/posts/records", &token, &body);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    poll("deliveries under way", || (receiver.all().len() >= 20).then_some(()));
    // One worker leads the deliveries (the pid in the high half of the data dir's lead word):
    // that is the one killed, so another must take the lead over for the rest to arrive.
    let lead = std::fs::read(p.dir.join(".jobs.lead")).expect("the lead word");
    let holder = (u64::from_le_bytes(lead[..8].try_into().expect("8 bytes")) >> 32) as u32;
    let pids = p.worker_pids();
    assert!(pids.contains(&holder), "a worker leads the deliveries under way: {holder} among {pids:?}");
    kill(holder, Signal::SIGKILL);
    let at_kill = receiver.all().len();
    for w in writers {
        w.join().expect("writer");
    }
    let conn = rusqlite::Connection::open(p.dir.join("data.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy");
    let committed: BTreeSet<String> = conn.prepare("SELECT id FROM posts").expect("prepare").query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
    assert!(committed.len() > 100, "most writes committed: {}", committed.len());
    let per_record = || {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in receiver.all() {
            let b = r.json();
            if b["event"] == "create" {
                m.entry(b["record"]["id"].as_str().unwrap_or_default().to_owned()).or_default().insert(b["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        m
    };
    poll("every committed record delivered", || {
        let m = per_record();
        committed.iter().all(|id| m.contains_key(id)).then_some(())
    });
    let m = per_record();
    for (record, ids) in &m {
        assert_eq!(ids.len(), 1, "duplicates of {record} carry the same event id: {ids:?}");
        assert!(committed.contains(record), "only committed records are delivered");
    }
    // The kill happened mid-run: deliveries before it and after it.
    assert!(at_kill >= 20 && receiver.all().len() > at_kill);
}

/// A POST with a token that reports failure instead of panicking (the worker may be killed).
fn request_with_token(port: u16, path: &str, token: &str, body: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    Ok(read_response(&mut s, false)?.status)
}

#[test]
fn a_webhook_that_keeps_failing_is_paused_with_the_reason_and_resumes_when_activated() {
    let receiver = Receiver::start(always(500), Duration::ZERO);
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1"));
    let hook = setup(p.port, &token, receiver.port);
    for i in 0..10 {
        ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": format!("t{i}") }))));
    }
    let paused = poll("the webhook paused", || Some(hook_of(p.port, &token, &hook)).filter(|h| h["active"] == false));
    let reason = paused["pausedReason"].as_str().expect("reason");
    assert!(reason.contains("paused after 10") && reason.contains("HTTP 500"), "{reason}");
    assert!(paused["updated"].as_str() > paused["created"].as_str(), "the pause is a record update: {paused}");
    // While paused, writes enqueue nothing for it.
    let queued = |p: &Proc| ok(call(p.port, "GET", "/api/vb/jobs?name=webhook.deliver", Some(&token), None))["totalItems"].as_i64().expect("total");
    let before = queued(&p);
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "while paused" }))));
    assert_eq!(queued(&p), before);
    // The pause state is the delivery handler's: a body cannot set it.
    let forged = ok(call(p.port, "PATCH", &format!("{HOOKS}/{hook}"), Some(&token), Some(&json!({ "failures": 0, "pausedReason": "" }))));
    assert_eq!((forged["failures"].clone(), forged["pausedReason"].clone()), (paused["failures"].clone(), paused["pausedReason"].clone()));
    // Resuming clears the count and the reason, and writes are delivered again.
    let resumed = ok(call(p.port, "POST", &format!("/api/vb/webhooks/{hook}/resume"), Some(&token), None));
    assert_eq!((resumed["active"].clone(), resumed["failures"].clone(), resumed["pausedReason"].clone()), (json!(true), json!(0), json!("")));
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "after" }))));
    assert_eq!(queued(&p), before + 1, "positive control: an active webhook gets the write");
}

#[test]
fn a_sign_in_is_delivered_as_an_auth_event_to_webhooks_that_ask_for_it() {
    let receiver = Receiver::start(always(200), Duration::ZERO);
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1"));
    let hook = setup(p.port, &token, receiver.port);
    let user = json!({ "email": "u@example.com", "password": "a long password", "passwordConfirm": "a long password" });
    ok(call(p.port, "POST", "/api/collections/users/records", Some(&token), Some(&user)));
    let sign_in = json!({ "identity": "u@example.com", "password": "a long password" });
    ok(call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&sign_in)));
    // Positive control for "not asked for": a write to posts is delivered, the sign-in is not.
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "before" }))));
    poll("the posts delivery", || receiver.all().iter().any(|r| r.json()["record"]["title"] == "before").then_some(()));
    assert!(!receiver.all().iter().any(|r| r.json()["event"] == "auth"), "not subscribed yet");
    let jobs = ok(call(p.port, "GET", "/api/vb/jobs?name=webhook.deliver", Some(&token), None));
    assert_eq!(jobs["totalItems"], 1, "only the posts write was enqueued: {jobs}");

    ok(call(p.port, "PATCH", &format!("{HOOKS}/{hook}"), Some(&token), Some(&json!({ "events": ["posts.*", "users.auth"] }))));
    ok(call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&sign_in)));
    let auth = poll("the auth event", || receiver.all().into_iter().find(|r| r.json()["event"] == "auth")).json();
    assert_eq!((auth["collection"].clone(), auth["method"].clone()), (json!("users"), json!("password")));
    assert_eq!(auth["record"]["email"], "u@example.com");
    assert!(auth["record"].get("password").is_none() && auth["record"].get("tokenKey").is_none(), "{auth}");
}

/// A create on a kept-alive connection (so on the worker that connection belongs to).
fn create_on(s: &mut TcpStream, token: &str, title: &str) -> u16 {
    let body = json!({ "title": title }).to_string();
    let head = format!("POST /api/collections/posts/records HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body.as_bytes()).expect("write body");
    read_one(s).expect("response").status
}

#[test]
fn a_webhook_change_through_one_worker_is_in_force_for_the_next_write_on_every_worker() {
    // Each worker caches the active webhooks; this is what keeps the copies coherent.
    let receiver = Receiver::start(always(204), Duration::ZERO);
    let (p, token) = start_with_superuser(Spawn::cluster(2).env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1"));
    ok(call(p.port, "POST", "/api/collections", Some(&token), Some(&json!({ "name": "posts", "type": "base", "fields": [{ "name": "title", "type": "text" }] }))));
    let mut conns = connection_per_worker(p.port, 2);
    let queued = || ok(call(p.port, "GET", "/api/vb/jobs?name=webhook.deliver", Some(&token), None))["totalItems"].as_i64().expect("total");
    // Both workers load their copy (no webhook yet) with a write.
    for (w, s) in conns.iter_mut() {
        assert_eq!(create_on(s, &token, &format!("warm {w}")), 200);
    }
    assert_eq!(queued(), 0);
    // The webhook is created through some worker; the next write on each worker is delivered
    // (deliveries are enqueued in the write's transaction: counted as soon as it answered).
    let hook = ok(call(p.port, "POST", HOOKS, Some(&token), Some(&json!({
        "url": format!("http://127.0.0.1:{}/hook", receiver.port), "events": ["posts.create"], "secret": SECRET
    }))))["id"].as_str().expect("id").to_owned();
    for (w, s) in conns.iter_mut() {
        assert_eq!(create_on(s, &token, &format!("after create {w}")), 200);
    }
    assert_eq!(queued(), 2, "each worker saw the new webhook at once");
    // Delivered before the webhook is turned off below (a delivery still queued then is
    // skipped): the runner works at a lower priority and may trail a loaded test.
    poll("the two deliveries", || (receiver.all().len() == 2).then_some(()));
    // Turned off through some worker, in a batch: the next write on each worker enqueues nothing.
    ok(call(p.port, "PATCH", "/api/settings", Some(&token), Some(&json!({ "batch": { "enabled": true } }))));
    let batch = json!({ "requests": [{ "method": "PATCH", "url": format!("{HOOKS}/{hook}"), "body": { "active": false } }] });
    ok(call(p.port, "POST", "/api/batch", Some(&token), Some(&batch)));
    for (w, s) in conns.iter_mut() {
        assert_eq!(create_on(s, &token, &format!("after pause {w}")), 200);
    }
    assert_eq!(queued(), 2, "no worker used its stale copy");
}

/// A realtime subscriber (SSE): every message after `PB_CONNECT`, as (event, data).
struct Sse {
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Sse {
    /// Opens `GET /api/realtime` and subscribes to `topics` as the holder of `token`.
    fn subscribe(port: u16, token: &str, topics: &[&str]) -> Sse {
        use std::io::{BufRead, BufReader};
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("request");
        let mut r = BufReader::new(s);
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).expect("head") > 0, "the stream ended in its head");
            if line == "\r\n" {
                break;
            }
        }
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let (sink, (connected, connect)) = (got.clone(), std::sync::mpsc::channel::<String>());
        std::thread::spawn(move || {
            let mut pending = Vec::<u8>::new();
            loop {
                // Chunked transfer: a size line, the data, CRLF.
                let mut size = String::new();
                if r.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if n == 0 || r.read_exact(&mut chunk).is_err() {
                    return;
                }
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                    let frame = String::from_utf8(pending.drain(..end + 2).collect()).expect("utf-8");
                    let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().to_owned();
                    let (event, data) = (field("event:"), serde_json::from_str::<Value>(&field("data:")).unwrap_or(Value::Null));
                    if event == "PB_CONNECT" {
                        let _ = connected.send(data["clientId"].as_str().unwrap_or_default().to_owned());
                    } else {
                        sink.lock().expect("lock").push((event, data));
                    }
                }
            }
        });
        let client_id = connect.recv_timeout(Duration::from_secs(20)).expect("PB_CONNECT");
        let r = call(port, "POST", "/api/realtime", Some(token), Some(&json!({ "clientId": client_id, "subscriptions": topics })));
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
        Sse { got }
    }

    /// The `action` events about record `id`, with the record, in arrival order.
    fn about(&self, id: &str) -> Vec<(String, Value)> {
        let got = self.got.lock().expect("lock");
        got.iter().filter(|(_, d)| d["record"]["id"] == id).map(|(_, d)| (d["action"].as_str().unwrap_or_default().to_owned(), d["record"].clone())).collect()
    }
}

/// Webhook deliveries by status (`queued`, `running`, …, or all with "").
fn delivery_jobs(port: u16, token: &str, status: &str) -> i64 {
    let q = if status.is_empty() { String::new() } else { format!("&status={status}") };
    ok(call(port, "GET", &format!("/api/vb/jobs?name=webhook.deliver{q}"), Some(token), None))["totalItems"].as_i64().expect("total")
}

#[test]
fn a_pause_is_a_record_update_seen_by_realtime_hooks_and_every_worker_and_a_failing_catch_all_webhook_does_not_feed_itself() {
    // The delivery runner pauses a webhook through the write pipeline, and only the pause is a
    // record update: the failure count raises no event. `tests/webhooks_hooks` writes an
    // `audit` row on every update of a webhook, and the webhook listens to every event of
    // every collection (`*`, so `audit` too) at a receiver that always fails: an event per
    // failed delivery would enqueue a new failing delivery through the hook, for ever.
    let receiver = Receiver::start(always(500), Duration::ZERO);
    let hooks_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks_hooks").display().to_string();
    let (p, token) = start_with_superuser(Spawn::cluster(2).env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", "1").args(&["--hooksDir", &hooks_dir]));
    ok(call(p.port, "POST", "/api/collections", Some(&token), Some(&json!({ "name": "posts", "type": "base", "fields": [{ "name": "title", "type": "text" }] }))));
    let audit_fields = json!([{ "name": "rid", "type": "text" }, { "name": "active", "type": "bool" }, { "name": "failures", "type": "number" }, { "name": "reason", "type": "text" }]);
    ok(call(p.port, "POST", "/api/collections", Some(&token), Some(&json!({ "name": "audit", "type": "base", "fields": audit_fields }))));
    let created = ok(call(p.port, "POST", HOOKS, Some(&token), Some(&json!({ "url": format!("http://127.0.0.1:{}/hook", receiver.port), "events": ["*"], "secret": SECRET }))));
    let hook = created["id"].as_str().expect("id").to_owned();
    let sse = Sse::subscribe(p.port, &token, &["_webhooks/*"]);
    let audits = || -> Vec<Value> { ok(call(p.port, "GET", &format!("/api/collections/audit/records?filter=rid%3D%27{hook}%27&perPage=100"), Some(&token), None))["items"].as_array().expect("items").clone() };

    // Positive control: a superuser's edit of the webhook is an update event, runs the hook,
    // and the hook's audit row is delivered (and fails: one failure).
    let edited = ok(call(p.port, "PATCH", &format!("{HOOKS}/{hook}"), Some(&token), Some(&json!({ "name": "catch-all" }))));
    assert!(edited["updated"].as_str() > created["updated"].as_str(), "{created} → {edited}");
    poll("the edit's realtime event", || sse.about(&hook).iter().any(|(a, r)| a == "update" && r["name"] == "catch-all").then_some(()));
    poll("the edit's audit row", || (audits().len() == 1).then_some(()));
    poll("the audit row delivered", || receiver.all().iter().any(|r| r.json()["collection"] == "audit").then_some(()));

    for i in 0..10 {
        ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": format!("t{i}") }))));
    }
    let paused = poll("the webhook paused", || Some(hook_of(p.port, &token, &hook)).filter(|h| h["active"] == false));
    let reason = paused["pausedReason"].as_str().expect("reason");
    assert!(reason.contains("paused after 10") && reason.contains("HTTP 500"), "{reason}");
    assert!(paused["failures"].as_i64().expect("failures") >= 10, "{paused}");
    assert!(paused["updated"].as_str() > edited["updated"].as_str(), "the pause moves `updated`: {edited} → {paused}");
    // Seen as an update by a realtime subscriber (on either worker: the pause is written by
    // the one leading the deliveries) and by the after-update hook.
    let event = poll("the pause's realtime event", || sse.about(&hook).into_iter().find(|(a, r)| a == "update" && r["active"] == false));
    // The count: as of the pause (failures in flight may have added to it since).
    assert_eq!(event.1["pausedReason"], paused["pausedReason"]);
    assert!(event.1["failures"].as_i64().is_some_and(|n| (10..=paused["failures"].as_i64().expect("n")).contains(&n)), "{event:?}");
    assert!(event.1.get("secret").is_none(), "{event:?}");
    let hooked = poll("the pause's audit row", || audits().into_iter().find(|a| a["active"] == false));
    assert_eq!((hooked["reason"].clone(), hooked["failures"].as_i64().expect("n") >= 10), (paused["pausedReason"].clone(), true), "{hooked}");

    // It terminates: every delivery ends (those queued behind the pause are skipped), and
    // there were exactly the 11 the writes asked for — the control's audit row and the ten
    // posts. The pause's own audit row found the webhook paused, the failure counts raised no
    // event, and changes of `_webhooks` are never delivered.
    poll("no delivery left to run", || (delivery_jobs(p.port, &token, "queued") + delivery_jobs(p.port, &token, "running") == 0).then_some(()));
    assert_eq!(delivery_jobs(p.port, &token, ""), 11);
    let received = receiver.all();
    assert!(received.iter().all(|r| r.json()["collection"] != "_webhooks"), "a change of _webhooks was delivered");
    let audit_events: BTreeSet<String> = received.iter().filter(|r| r.json()["collection"] == "audit").map(|r| r.headers["x-vaultbase-event-id"].clone()).collect();
    assert_eq!(audit_events.len(), 1, "only the control's audit row was delivered");
    assert_eq!(audits().len(), 2, "the hook ran for the edit and the pause, not per failure: {:?}", audits());
    let updates: Vec<bool> = sse.about(&hook).iter().filter(|(a, _)| a == "update").map(|(_, r)| r["active"] == true).collect();
    assert_eq!(updates, vec![true, false], "one event for the edit, one for the pause, none per failure");

    // Every worker's cached active set followed the pause: the next write on each enqueues
    // nothing for it.
    for (w, s) in connection_per_worker(p.port, 2).iter_mut() {
        assert_eq!(create_on(s, &token, &format!("after the pause {w}")), 200);
    }
    assert_eq!(delivery_jobs(p.port, &token, ""), 11, "no worker used a stale copy");
    // Resuming is an update too, and the webhook gets writes again.
    ok(call(p.port, "POST", &format!("/api/vb/webhooks/{hook}/resume"), Some(&token), None));
    poll("the resume's realtime event", || (sse.about(&hook).iter().filter(|(a, r)| a == "update" && r["active"] == true).count() == 2).then_some(()));
    ok(call(p.port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({ "title": "after the resume" }))));
    poll("positive control: the resumed webhook gets writes", || receiver.all().iter().any(|r| r.json()["record"]["title"] == "after the resume").then_some(()));
}
