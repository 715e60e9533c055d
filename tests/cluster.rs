//! `vaultbase cluster` with real worker processes: balancing, respawn after kill -9, the
//! crash-loop guard, drain on SIGTERM with a request in flight, the drain deadline, orphan
//! exit when the supervisor dies, readiness notification.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Bound on waiting for a killed worker's replacement (the supervisor waits 1 s, then starts
/// it); only a respawn that never happens gets near it.
const RESPAWN_BOUND: Duration = Duration::from_secs(30);

fn health(port: u16) -> serde_json::Value {
    let r = get(port, "/_/health").expect("health request");
    assert_eq!(r.status, 200);
    r.json()
}

/// Waits until every worker has logged "listening" (the supervisor is healthy once one is).
fn wait_all_listening(p: &Proc, workers: usize) {
    p.wait_logs(workers, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
}

/// Hits `/_/health` on fresh connections until `worker_id` answers; returns its pid. Connection
/// errors are retried: in a one-worker cluster nobody listens while the worker restarts.
fn pid_of_worker(port: u16, worker_id: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(r) = get(port, "/_/health") {
            let h = r.json();
            if h["worker_id"] == worker_id {
                return h["pid"].as_u64().expect("pid");
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(Instant::now() < deadline, "worker {worker_id} never answered");
    }
}

#[test]
fn four_workers_share_the_port() {
    let mut p = Spawn::cluster(4).start();
    p.wait_healthy();
    wait_all_listening(&p, 4);
    let mut pids = HashSet::new();
    let mut ids = HashSet::new();
    for _ in 0..200 {
        let h = health(p.port);
        assert_eq!(h["status"], "ok");
        pids.insert(h["pid"].as_u64().expect("pid"));
        ids.insert(h["worker_id"].as_u64().expect("id"));
    }
    assert!(pids.len() >= 2, "200 fresh connections all went to one worker: {pids:?}");
    assert!(ids.iter().all(|id| *id < 4));
    assert!(!pids.contains(&(p.pid() as u64)), "the supervisor itself never answers");
    // The PocketBase endpoint works through any worker.
    assert_eq!(get(p.port, "/api/health").expect("api health").status, 200);
}

#[test]
fn a_killed_worker_is_respawned_with_its_id_while_the_others_keep_answering() {
    let mut p = Spawn::cluster(3).start();
    p.wait_healthy();
    wait_all_listening(&p, 3);
    let victim = pid_of_worker(p.port, 1);
    kill(victim as u32, Signal::SIGKILL);
    let killed_at = Instant::now();
    // Until the process is really gone its socket can still take a SYN and reset it (the
    // kernel pins a connection to one listener). The supervisor's "worker died" comes from
    // waitpid, i.e. after every thread of the victim has exited and its socket is closed;
    // from then on nothing may fail.
    p.wait_logs(1, RESPAWN_BOUND, |v| v["message"] == "worker died");

    let mut answered_by = HashMap::new();
    let respawned_pid = loop {
        // Every request in the window must succeed: the survivors keep serving.
        let h = health(p.port);
        *answered_by.entry(h["worker_id"].as_u64().expect("id")).or_insert(0) += 1;
        if h["worker_id"] == 1 && h["pid"] != victim {
            break h["pid"].as_u64().expect("pid");
        }
        // A bound against hanging, not a timing check: how fast the respawn is, is measured
        // by bench/respawn.sh.
        assert!(
            killed_at.elapsed() < RESPAWN_BOUND,
            "worker 1 not back within {RESPAWN_BOUND:?}; answered by {answered_by:?}; logs:\n{}",
            p.log_text()
        );
    };
    assert_ne!(respawned_pid, victim);
    assert!(!alive(victim as u32), "the killed worker is gone");
    assert!(alive(respawned_pid as u32), "the new worker {respawned_pid} runs");
    assert!(answered_by.keys().any(|id| *id != 1), "other workers answered meanwhile");
    let died = p.logs_with_message("worker died");
    assert_eq!(died.len(), 1);
    assert_eq!(died[0]["worker_id"], 1);
}

#[test]
fn a_crash_loop_backs_off_and_says_so() {
    let mut p = Spawn::cluster(1).start();
    p.wait_healthy();
    let mut killed = HashSet::new();
    // Kill worker 0 each time it comes back, five times within the crash-loop window.
    while killed.len() < 5 {
        let pid = pid_of_worker(p.port, 0);
        if killed.insert(pid) {
            kill(pid as u32, Signal::SIGKILL);
        }
    }
    let lines = p.wait_logs(1, Duration::from_secs(10), |v| v["level"] == "ERROR" && v["message"].as_str().is_some_and(|m| m.contains("CRASH LOOP")));
    assert_eq!(lines[0]["backoff_s"], 2, "the first crash-loop backoff doubles the 1 s delay");
    // It still comes back after the longer backoff.
    let pid = pid_of_worker(p.port, 0);
    assert!(!killed.contains(&pid));
}

#[test]
fn sigterm_drains_an_in_flight_request_and_leaves_no_worker_behind() {
    let mut p = Spawn::cluster(2).env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_DRAIN_TIMEOUT", "10").start();
    p.wait_healthy();
    wait_all_listening(&p, 2);
    let workers = p.worker_pids();
    assert_eq!(workers.len(), 2);

    let inflight = InFlight::start(p.port, 200_000);
    p.signal(Signal::SIGTERM);
    // Both workers have begun draining while the body is still arriving.
    p.wait_logs(2, Duration::from_secs(10), |v| v["message"] == "draining" && v["worker_id"].is_u64());
    let r = inflight.finish().expect("the in-flight request gets its response");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bytes"], 200_000);

    let status = p.wait_exit(Duration::from_secs(10)).expect("supervisor exits within the drain timeout");
    assert_eq!(status.code(), Some(0));
    assert!(wait_gone(&workers, Duration::from_secs(1)), "no worker process remains");
    assert!(p.logs_with_message("worker did not finish draining in time; SIGKILL").is_empty());
    assert!(!p.dir.join(".bus.sock").exists(), "the bus socket is removed");
}

#[test]
fn a_worker_that_misses_the_drain_deadline_is_killed() {
    let mut p = Spawn::cluster(1).env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_DRAIN_TIMEOUT", "2").start();
    p.wait_healthy();
    let workers = p.worker_pids();
    let _stuck = InFlight::start(p.port, 1000);
    let signalled = Instant::now();
    p.signal(Signal::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(15)).expect("supervisor exits");
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() >= Duration::from_secs(2), "the deadline was honoured before killing");
    let killed = p.logs_with_message("worker did not finish draining in time; SIGKILL");
    assert_eq!(killed.len(), 1, "{}", p.log_text());
    assert!(wait_gone(&workers, Duration::from_secs(1)));
}

#[test]
fn workers_exit_when_the_supervisor_is_killed() {
    let mut p = Spawn::cluster(3).start();
    p.wait_healthy();
    wait_all_listening(&p, 3);
    let workers = p.worker_pids();
    assert_eq!(workers.len(), 3);
    p.signal(Signal::SIGKILL);
    p.wait_exit(Duration::from_secs(5)).expect("supervisor dead");
    assert!(wait_gone(&workers, Duration::from_secs(2)), "orphaned workers still alive after 2 s");
}

#[test]
fn a_second_cluster_on_the_same_dir_fails_and_the_first_keeps_serving() {
    let mut first = Spawn::cluster(2).start();
    first.wait_healthy();
    let mut second = Spawn::cluster(2).dir(&first.dir.clone()).start();
    let status = second.wait_exit(Duration::from_secs(10)).expect("second exits");
    assert_eq!(status.code(), Some(1));
    let text = second.log_text();
    assert!(text.contains(&format!("in use by another vaultbase process (pid {})", first.pid())), "{text}");
    assert!(second.worker_pids().is_empty(), "the loser spawned no workers");
    for _ in 0..20 {
        assert_eq!(health(first.port)["status"], "ok");
    }
}

#[test]
fn ready_is_announced_once_every_worker_listens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(START_TIMEOUT)).expect("timeout");
    let mut p = Spawn::cluster(3).env("NOTIFY_SOCKET", sock_path.to_str().expect("utf8")).start();
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("READY=1");
    assert_eq!(&buf[..n], b"READY=1");
    // Our log reader may lag the datagram; the stream order is what proves the sequence.
    p.wait_logs(1, Duration::from_secs(5), |v| v["message"] == "cluster ready");
    let text = p.log_text();
    let before_ready = &text[..text.find("\"cluster ready\"").expect("cluster ready logged")];
    assert_eq!(before_ready.matches("\"worker ready\"").count(), 3, "all three were ready before READY=1");
    p.signal(Signal::SIGTERM);
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).expect("exit").code(), Some(0));
}

/// `/_/health` and then `path` on one keep-alive connection, so both are answered by the same
/// worker: returns that worker's id and the second response.
fn get_through_one_worker(port: u16, path: &str) -> (u64, Resp) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let req = format!("GET /_/health HTTP/1.1\r\nHost: x\r\n\r\nGET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("first head") + 4;
    let first = parse_response(&raw[..head_end], true).expect("first response");
    let len: usize = first.header("content-length").expect("health has a content-length").parse().expect("length");
    let health: serde_json::Value = serde_json::from_slice(&raw[head_end..head_end + len]).expect("health JSON");
    let second = parse_response(&raw[head_end + len..], false).expect("second response");
    (health["worker_id"].as_u64().expect("worker_id"), second)
}

#[test]
fn serve_and_cluster_give_the_same_answers_on_one_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let (email, password) = ("cluster-admin@example.com", "cluster superuser password");
    create_superuser(&dir, email, password);
    let mut serve = Spawn::serve().dir(&dir).start();
    serve.wait_healthy();
    let port = serve.port;
    let r = call(port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&serde_json::json!({"identity": email, "password": password})));
    assert_eq!(r.status, 200);
    let token = r.json()["token"].as_str().expect("token").to_owned();
    let body = serde_json::json!({"name": "handover", "viewRule": "", "fields": [{"name": "title", "type": "text"}]});
    assert_eq!(call(port, "POST", "/api/collections", Some(&token), Some(&body)).status, 200);
    let r = call(port, "POST", "/api/collections/handover/records", Some(&token), Some(&serde_json::json!({"title": "written by serve"})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let written = r.json();
    let path = format!("/api/collections/handover/records/{}", written["id"].as_str().expect("id"));
    serve.signal(Signal::SIGTERM);
    assert_eq!(serve.wait_exit(Duration::from_secs(10)).expect("exit").code(), Some(0));

    const WORKERS: u64 = 2;
    let mut cluster = Spawn::cluster(WORKERS as usize).dir(&dir).start();
    cluster.wait_healthy();
    wait_all_listening(&cluster, WORKERS as usize);
    // Every worker reads the record serve wrote, field for field. The kernel picks the worker
    // per connection, so connect until each has answered (bounded, not timed).
    let mut seen = HashSet::new();
    for _ in 0..500 {
        let (worker, r) = get_through_one_worker(cluster.port, &path);
        assert_eq!(r.status, 200, "worker {worker}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json(), written, "worker {worker}");
        seen.insert(worker);
        if seen.len() as u64 == WORKERS {
            break;
        }
    }
    assert_eq!(seen, (0..WORKERS).collect::<HashSet<_>>(), "500 connections did not reach every worker");
    assert_eq!(cluster.logs_with_message("migration applied").len(), 0, "migrations ran once, in serve");
}
