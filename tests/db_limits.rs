//! The database's limits and failures through the real binary: a read past the query
//! deadline is answered and the server serves on; a full disk (a real, tiny tmpfs holding the
//! data dir and the log) answers writes 507, keeps reads serving, shows in health, never drops
//! a request or cuts a log line, and writes work again once space returns.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";

fn token(port: u16) -> String {
    let r = call(port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": EMAIL, "password": PASSWORD})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().expect("token").to_owned()
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_query_past_its_deadline_answers_400_and_the_server_serves_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    create_superuser(&tmp.path().join("data"), EMAIL, PASSWORD);
    let mut p = Spawn::serve().env("VAULTBASE_QUERY_TIMEOUT_MS", "300").in_tempdir(tmp).start();
    p.wait_healthy();
    let su = token(p.port);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "posts", "listRule": "", "createRule": "", "fields": [{"name": "title", "type": "text"}]
    })));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(call(p.port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "kept"}))).status, 200);
    // A view whose query never ends: counting it (totalItems) runs until interrupted.
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "endless", "type": "view", "listRule": "",
        "viewQuery": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT CAST(x AS TEXT) AS id, x AS n FROM c"
    })));
    assert_eq!(r.status, 200, "{}", text(&r));

    for _ in 0..3 {
        let r = call(p.port, "GET", "/api/collections/endless/records", None, None);
        assert_eq!(r.status, 400, "{}", text(&r));
        let body = r.json();
        assert_eq!(body["status"], 400);
        assert!(body["message"].as_str().is_some_and(|m| m.contains("took too long")), "{body}");
        assert_eq!(body["data"], json!({}));
    }
    // A cross join of the view with itself, through a filter: the same deadline.
    let r = call(p.port, "GET", "/api/collections/endless/records?filter=(n%3E0)&sort=-n&skipTotal=1", None, None);
    assert_eq!(r.status, 400, "{}", text(&r));

    // Every reader got its interrupted job back: ordinary reads still answer, many at once.
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let port = p.port;
            std::thread::spawn(move || call(port, "GET", "/api/collections/posts/records", None, None))
        })
        .collect();
    for r in readers {
        let r = r.join().expect("join");
        assert_eq!(r.status, 200, "{}", text(&r));
        assert_eq!(r.json()["items"][0]["title"], "kept");
    }
    assert_eq!(call(p.port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "more"}))).status, 200);
}

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted when dropped. Mounting needs
/// root (the test suite runs as root here and in CI): if it fails, the test fails loudly.
struct TinyFs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl TinyFs {
    fn mount(bytes: u64) -> TinyFs {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).expect("mount point");
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}")]).arg("tmpfs").arg(&dir).output().expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (this test needs root to make a real full disk): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyFs { dir, _parent: parent }
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        // Lazy: the server may still hold files open while the test unwinds.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the filesystem under `path` with one file, until the kernel refuses another byte.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("ballast");
    let chunk = vec![0x55u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last pages: byte by byte, so not even a small write finds room.
    while f.write(&[0x55]).is_ok_and(|n| n == 1) {}
}

fn health(port: u16) -> Value {
    let r = get(port, "/_/health").expect("health answers");
    assert_eq!(r.status, 200);
    r.json()
}

#[test]
fn a_full_disk_refuses_writes_with_507_keeps_reads_and_recovers_when_space_returns() {
    let fs = TinyFs::mount(8 * 1024 * 1024);
    let data = fs.dir.join("data");
    let log = fs.dir.join("vaultbase.log");
    create_superuser(&data, EMAIL, PASSWORD);
    let mut p = Spawn::serve().dir(&data).stderr_to(&log).start();
    p.wait_healthy();
    let su = token(p.port);
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "notes", "listRule": "", "viewRule": "", "createRule": "", "fields": [{"name": "body", "type": "text"}]
    })));
    assert_eq!(r.status, 200, "{}", text(&r));
    let body = "x".repeat(3000);
    let first = call(p.port, "POST", "/api/collections/notes/records", None, Some(&json!({"body": body})));
    assert_eq!(first.status, 200, "{}", text(&first));
    let first_id = first.json()["id"].as_str().expect("id").to_owned();
    let h = health(p.port);
    assert_eq!((h["status"].as_str(), h["writes"].as_str()), (Some("ok"), Some("ok")), "{h}");

    let ballast = fs.dir.join("ballast");
    fill(&ballast);
    // Writes go on until the WAL needs room the disk no longer has; each is answered.
    let mut refused = None;
    for i in 0..2000 {
        let r = call(p.port, "POST", "/api/collections/notes/records", None, Some(&json!({"body": format!("{i}{body}")})));
        match r.status {
            200 => continue,
            507 => {
                refused = Some(r);
                break;
            }
            other => panic!("write {i} answered {other}: {}", text(&r)),
        }
    }
    let refused = refused.expect("a write was refused once the disk was full");
    let envelope = refused.json();
    assert_eq!(envelope["status"], 507);
    assert!(envelope["message"].as_str().is_some_and(|m| m.contains("disk is full")), "{envelope}");
    assert_eq!(envelope["data"], json!({}));
    // Still full: the next write gets the same clear answer, not "the database is closed".
    let again = call(p.port, "POST", "/api/collections/notes/records", None, Some(&json!({"body": body})));
    assert_eq!(again.status, 507, "{}", text(&again));

    // Reads still serve, every one answered though none of their log lines fits on the disk
    // (a few hundred bytes each: well past the log file's last partly used page).
    for _ in 0..100 {
        let r = call(p.port, "GET", &format!("/api/collections/notes/records/{first_id}"), None, None);
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    assert_eq!(call(p.port, "GET", "/api/collections/notes/records?perPage=1", None, None).status, 200);
    // Health says writes fail, and why.
    let h = health(p.port);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["writes"], "failing", "{h}");
    assert!(h["writes_error"].as_str().is_some_and(|e| e.contains("disk full")), "{h}");
    assert!(h["worker_id"].is_u64() && h["pid"].is_u64(), "the existing fields stay: {h}");
    let api = get(p.port, "/api/health").expect("api health");
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["data"]["writes"], "failing", "{}", text(&api));

    // Space returns: writes succeed again by themselves, and health follows.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let r = call(p.port, "POST", "/api/collections/notes/records", None, Some(&json!({"body": "after"})));
    assert_eq!(r.status, 200, "{}", text(&r));
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(call(p.port, "GET", &format!("/api/collections/notes/records/{id}"), None, None).json()["body"], "after");
    let h = health(p.port);
    assert_eq!((h["status"].as_str(), h["writes"].as_str()), (Some("ok"), Some("ok")), "{h}");
    assert!(h.get("writes_error").is_none(), "{h}");

    // The log on the same full filesystem: lines were dropped whole, never cut.
    p.signal(Signal::SIGTERM);
    assert!(p.wait_exit(std::time::Duration::from_secs(30)).is_some_and(|s| s.success()), "clean exit");
    let logged = std::fs::read_to_string(&log).expect("log");
    let mut requests = 0;
    for line in logged.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("a cut log line ({e}): {line:?}"));
        if v["message"] == "request" {
            requests += 1;
        }
    }
    assert!(requests > 0, "positive control: request lines were logged");
    assert!(
        logged.contains("a write group did not commit") || logged.contains("writes succeed again"),
        "the failure or the recovery made it to the log"
    );
}

#[test]
fn a_panicking_handler_still_answers_500() {
    let mut p = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").start();
    p.wait_healthy();
    for _ in 0..3 {
        let r = get(p.port, "/_/test/panic").expect("an answer, not a dropped connection");
        assert_eq!(r.status, 500);
        assert_eq!(r.json(), json!({"status": 500, "message": "Something went wrong while processing your request.", "data": {}}));
    }
    assert_eq!(health(p.port)["status"], "ok", "the worker serves on");
}
