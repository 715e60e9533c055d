//! The dashboard's own endpoints: `GET /api/vb/cluster` (workers, pids, restarts, counters,
//! right whichever worker answers) and `GET /api/vb/hooks` (hook files, last reload error).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// One GET with a token that may meet a worker being killed (then an error, not a panic).
fn try_get(port: u16, path: &str, token: &str) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {token}\r\n\r\n").as_bytes())?;
    read_response(&mut s, false)
}

/// Polls `path` until `pred` holds for its JSON; answers that JSON.
fn poll(port: u16, token: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match try_get(port, path, token) {
            Ok(r) if r.status == 200 && pred(&r.json()) => return r.json(),
            Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "{path} never matched; last: {last}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pids(view: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = view["workers"].as_array().into_iter().flatten().filter_map(|w| w["pid"].as_u64()).collect();
    v.sort();
    v
}

#[test]
fn the_cluster_endpoint_lists_the_real_workers_and_counts_a_restart() {
    let (p, token) = start_with_superuser(Spawn::cluster(2));
    let all_ready = |v: &Value| v["workers"].as_array().is_some_and(|w| w.len() == 2 && w.iter().all(|w| w["state"] == "ready" && w["requests"].is_u64()));
    let view = poll(p.port, &token, "/api/vb/cluster", all_ready);
    assert_eq!(view["mode"], "cluster");
    assert_eq!(view["supervisorPid"].as_u64(), Some(u64::from(p.pid())));
    let mut spawned: Vec<u64> = p.worker_pids().into_iter().map(u64::from).collect();
    spawned.sort();
    assert_eq!(pids(&view), spawned);
    assert!(view["workers"].as_array().expect("workers").iter().all(|w| w["restarts"] == 0));

    // Guests and records are refused, in the envelope.
    let guest = call(p.port, "GET", "/api/vb/cluster", None, None);
    assert_eq!(guest.status, 401);
    assert_eq!(guest.json()["status"], 401);

    // A worker killed: its slot comes back with a new pid and one restart, whichever worker answers.
    let victim = view["workers"][0]["pid"].as_u64().expect("pid") as u32;
    kill(victim, Signal::SIGKILL);
    let after = poll(p.port, &token, "/api/vb/cluster", |v| {
        all_ready(v) && v["workers"][0]["restarts"] == 1 && v["workers"][0]["pid"].as_u64() != Some(u64::from(victim))
    });
    let reborn = after["workers"][0]["pid"].as_u64().expect("pid") as u32;
    assert!(alive(reborn), "the listed pid is a live process");
    assert_eq!(after["workers"][1]["restarts"], 0, "the other slot did not restart");
    assert_eq!(after["totals"]["restarts"], 1);
}

#[test]
fn serve_mode_reports_its_one_worker() {
    let (p, token) = start_with_superuser(Spawn::serve());
    let view = poll(p.port, &token, "/api/vb/cluster", |_| true);
    assert_eq!(view["mode"], "serve");
    assert_eq!(pids(&view), vec![u64::from(p.pid())]);
    assert!(view["workers"][0]["requests"].as_u64().is_some_and(|n| n >= 1), "{view}");
}

#[test]
fn the_hooks_endpoint_shows_files_and_the_last_reload_error() {
    let (p, token) = start_with_superuser(Spawn::serve());
    let hooks = p.dir.parent().expect("parent").join("pb_hooks");
    std::fs::create_dir_all(&hooks).expect("pb_hooks");
    std::fs::write(hooks.join("main.pb.js"), "cronAdd(\"tick\", \"*/5 * * * *\", () => {})\n").expect("write");
    let loaded = poll(p.port, &token, "/api/vb/hooks", |v| v["files"][0]["loaded"] == true && v["crons"][0]["id"] == "tick");
    assert_eq!(loaded["files"][0]["name"], "main.pb.js");
    assert!(loaded["files"][0]["content"].as_str().is_some_and(|c| c.contains("cronAdd")));
    assert_eq!(loaded["errors"], serde_json::json!([]), "no error while the files load");

    std::fs::write(hooks.join("broken.pb.js"), "routerAdd(\"GET\", \"/x\", (e) => {\n  let a = ;\n})\n").expect("write");
    let failed = poll(p.port, &token, "/api/vb/hooks", |v| v["errors"].as_array().is_some_and(|e| !e.is_empty()));
    let error = &failed["errors"][0];
    assert!(error["file"].as_str().is_some_and(|f| f.ends_with("broken.pb.js")), "{error}");
    assert_eq!(error["line"], 2);
    assert_eq!(failed["crons"][0]["id"], "tick", "the previous hooks keep running");

    assert_eq!(call(p.port, "GET", "/api/vb/hooks", None, None).status, 401);
}
