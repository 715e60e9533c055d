//! Record request chains whose handlers all end with `e.next()` leave their write until the
//! JS dispatch has returned (`src/worker/hooks/tail.rs`, `Deferred` in
//! `src/worker/hooks/record_requests.rs`). The fixture `tests/hooks_defer/main.pb.js` gives the
//! "tail" collection handlers that end with `e.next()` and the "blocking" collection the same
//! handlers with one statement more after it. Both must answer alike; only the first may
//! leave its JS thread free while its write waits for the database.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const POLL_TIMEOUT: Duration = Duration::from_secs(20);

fn hooks_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hooks_defer").display().to_string()
}

/// A server with the fixture hooks and one prewarmed JS thread, and both collections.
fn start() -> (Proc, String) {
    let dir = hooks_dir();
    let (p, su) = start_with_superuser(Spawn::serve().args(&["--hooksDir", &dir, "--hooksPool", "1"]));
    for name in ["tail", "blocking"] {
        let c = json!({"name": name, "type": "base",
            "fields": [{"name": "title", "type": "text"}, {"name": "code", "type": "text", "max": 3}, {"name": "n", "type": "number"}],
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""});
        ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&c)));
    }
    (p, su)
}

fn records(c: &str) -> String {
    format!("/api/collections/{c}/records")
}

/// An answer with what differs between two records left out (ids, times, collection).
fn answer(r: &Resp) -> Value {
    let mut body = if r.body.is_empty() { Value::Null } else { r.json() };
    if let Some(m) = body.as_object_mut() {
        for k in ["id", "created", "updated", "collectionId", "collectionName"] {
            m.remove(k);
        }
    }
    json!({"status": r.status, "hooked": r.header("x-hooked"), "body": body})
}

/// Creates, a refusal, a validation error, an answer written before e.next(), an update, a
/// refused and a plain delete on collection `c`; what each answered.
fn script(port: u16, c: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let created = call(port, "POST", &records(c), None, Some(&json!({"title": "hello", "n": 2})));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    out.push(answer(&created));
    out.push(answer(&call(port, "POST", &records(c), None, Some(&json!({"title": "forbidden"})))));
    out.push(answer(&call(port, "POST", &records(c), None, Some(&json!({"title": "x", "code": "toolong"})))));
    out.push(answer(&call(port, "POST", &records(c), None, Some(&json!({"title": "answered"})))));
    let one = format!("{}/{id}", records(c));
    out.push(answer(&call(port, "PATCH", &one, None, Some(&json!({"n": 3})))));
    out.push(answer(&call(port, "PATCH", &one, None, Some(&json!({"code": "toolong"})))));
    out.push(answer(&call(port, "GET", &one, None, None)));
    let keep = call(port, "POST", &records(c), None, Some(&json!({"title": "keep"})));
    let keep_id = keep.json()["id"].as_str().expect("id").to_owned();
    out.push(answer(&call(port, "DELETE", &format!("{}/{keep_id}", records(c)), None, None)));
    out.push(answer(&call(port, "DELETE", &one, None, None)));
    out.push(answer(&call(port, "GET", &one, None, None)));
    let titles: Vec<Value> = ok(call(port, "GET", &format!("{}?sort=title", records(c)), None, None))["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    out.push(json!(titles));
    out
}

#[test]
fn chains_ending_with_next_answer_as_chains_that_go_on_after_it() {
    let (p, _su) = start();
    let tail = script(p.port, "tail");
    let blocking = script(p.port, "blocking");
    assert_eq!(tail, blocking);
    // And what they answer is what the hooks say, not merely the same.
    assert_eq!(tail[0], json!({"status": 200, "hooked": "create", "body": {"title": "hello (hooked)", "code": "", "n": 2}}));
    // A refusal, and a write that failed, keep the header set before them (as PocketBase).
    assert_eq!(tail[1], json!({"status": 400, "hooked": "create", "body": {"status": 400, "message": "No forbidden titles.", "data": {}}}));
    assert_eq!(tail[2]["status"], 400);
    assert_eq!(tail[2]["hooked"], "create");
    assert_eq!(tail[2]["body"]["data"]["code"]["code"], "validation_max_text_constraint", "{}", tail[2]);
    assert_eq!(tail[3], json!({"status": 201, "hooked": "create", "body": {"answered": true}}));
    assert_eq!(tail[4]["status"], 200);
    assert_eq!(tail[4]["body"]["n"], 30);
    assert_eq!(tail[5]["status"], 400);
    assert_eq!(tail[6]["body"]["n"], 30, "the refused update changed nothing");
    assert_eq!(tail[7]["status"], 403);
    assert_eq!(tail[7]["body"]["message"], "Kept.");
    assert_eq!(tail[8], json!({"status": 204, "hooked": null, "body": null}));
    assert_eq!(tail[9]["status"], 404);
    // "answered" was still saved (its answer was written before e.next()); "keep" stayed.
    assert_eq!(tail[10], json!(["answered (hooked)", "keep (hooked)"]));
}

fn js_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("vb-js-"))
        .count()
}

fn wait_for_line(p: &Proc, line: &str) {
    let deadline = Instant::now() + POLL_TIMEOUT;
    while !p.log_text().contains(line) {
        assert!(Instant::now() < deadline, "no {line:?} in the server's log:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `n` creates to collection `c`, one after another, each once the previous one's
/// handler has run (its log line); answers the threads that wait for their answers.
fn creates_behind_the_lock(p: &Proc, c: &str, n: usize) -> Vec<std::thread::JoinHandle<Resp>> {
    (0..n)
        .map(|i| {
            let (port, path, title) = (p.port, records(c), format!("{c}-{i}"));
            let body = json!({ "title": title });
            let t = std::thread::spawn(move || call(port, "POST", &path, None, Some(&body)));
            wait_for_line(p, &format!("reached {c}-{i}"));
            t
        })
        .collect()
}

fn lock_writes(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
    conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
    conn
}

#[test]
fn a_write_left_for_after_the_chain_holds_no_js_thread_while_it_waits() {
    const CREATES: usize = 4;
    let (p, _su) = start();
    let pid = p.pid();
    assert_eq!(js_threads(pid), 1, "--hooksPool 1");

    // Another connection holds the write lock: every write waits for it.
    let lock = lock_writes(&p.dir);
    let tail = creates_behind_the_lock(&p, "tail", CREATES);
    let tail_threads = js_threads(pid);
    // The control: handlers with a statement after e.next() wait inside it, each on a thread.
    let blocking = creates_behind_the_lock(&p, "blocking", CREATES);
    let blocking_threads = js_threads(pid);
    // The writes really were waiting: none is stored yet (reads go on beside the lock).
    let stored = |c: &str| ok(call(p.port, "GET", &records(c), None, None))["totalItems"].as_i64().expect("totalItems");
    assert_eq!((stored("tail"), stored("blocking")), (0, 0));
    lock.execute_batch("ROLLBACK").expect("release the write lock");
    drop(lock);

    for (i, t) in tail.into_iter().enumerate() {
        assert_eq!(ok(t.join().expect("create"))["title"], format!("tail-{i} (hooked)"));
    }
    for (i, t) in blocking.into_iter().enumerate() {
        assert_eq!(ok(t.join().expect("create"))["title"], format!("blocking-{i} (hooked)"));
    }
    assert_eq!((stored("tail"), stored("blocking")), (CREATES as i64, CREATES as i64));
    assert!(blocking_threads >= CREATES, "the blocking chains held a JS thread each ({blocking_threads} threads)");
    // Each tail chain's thread was free again before the next create came: one thread would
    // do; a second may start if a create arrives just as the first finishes its dispatch.
    assert!(tail_threads <= 2, "tail chains held {tail_threads} JS threads while their writes waited");
}

#[test]
fn headers_set_before_a_throw_stay_on_the_error_answer() {
    // PocketBase 0.40.6 answers this route 400 {"data":{},"message":"Nope.","status":400}
    // with X-Hooked: route.
    let (p, _su) = start();
    let r = call(p.port, "GET", "/defer/refused", None, None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"data": {}, "message": "Nope.", "status": 400}));
    assert_eq!(r.header("x-hooked").as_deref(), Some("route"));
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    // An auth flow's request hook keeps them the same way.
    let r = call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "a@example.com", "password": "whatever-123"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"data": {}, "message": "No sign-ins.", "status": 400}));
    assert_eq!(r.header("x-hooked").as_deref(), Some("auth"));
}

#[test]
fn the_request_members_of_a_route_answer_as_pocketbases() {
    // PocketBase 0.40.6 answered the same (with the Host header the client sent).
    let (p, _su) = start();
    let r = call_with(p.port, "POST", "/defer/request/abc?q=z", None, Some(&json!({"a": 1})), &[("X-Probe", "yes")]);
    assert_eq!(
        ok(r),
        json!({"method": "POST", "host": "x", "uri": "/defer/request/abc?q=z", "length": 7,
               "header": "yes", "path": "/defer/request/abc", "query": "z", "id": "abc!", "body": "{\"a\":1}", "remote": "string"})
    );
}
