//! `vaultbase serve` (and no subcommand): health endpoints, the error envelope, the data dir,
//! the lock, drain on SIGTERM, a second signal, systemd notification, body limits.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

#[test]
fn no_arguments_serves_health_on_the_default_port_and_dir() {
    // The real default: no VAULTBASE_* variables at all, so this needs :8091 free.
    let cwd = tempfile::tempdir().expect("tempdir");
    assert!(
        std::net::TcpListener::bind("0.0.0.0:8091").is_ok(),
        "port 8091 is busy on this machine; this test checks the default port and needs it free"
    );
    let mut p = Spawn::no_args().defaults_in(cwd.path(), 8091).start();
    p.wait_healthy();
    let health = get(8091, "/_/health").expect("health").json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["worker_id"], 0);
    assert_eq!(health["pid"], p.pid());
    assert!(health["uptime_s"].is_u64());
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(cwd.path().join("vaultbase_data").join("data.db").exists(), "default data dir ./vaultbase_data");
}

#[test]
fn api_health_and_unknown_routes_speak_pocketbase() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    let r = get(p.port, "/api/health").expect("api health");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!({"message": "API is healthy.", "code": 200, "data": {}}));

    let head = request(p.port, "HEAD", "/api/health", None).expect("head");
    assert_eq!(head.status, 200);

    for path in ["/nope", "/api/nope", "/api/collections/x/records/y/z", "/_/health/extra"] {
        let r = get(p.port, path).expect("404");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json(), serde_json::json!({"status": 404, "message": "File not found.", "data": {}}), "{path}");
    }
    // The test-only route does not exist unless enabled.
    assert_eq!(request(p.port, "POST", "/_/test/echo", Some(b"{}")).expect("echo").status, 404);
}

#[test]
fn one_log_line_per_request() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    get(p.port, "/api/health").expect("request");
    get(p.port, "/missing").expect("request");
    // Counted once the log is complete (the process has exited and its stderr reached EOF),
    // so a second line for either request cannot arrive after the count.
    p.signal(Signal::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(10)).expect("exits").success());
    for (path, status) in [("/api/health", 200), ("/missing", 404)] {
        let lines: Vec<_> = p.logs_with_message("request").into_iter().filter(|v| v["path"] == path).collect();
        assert_eq!(lines.len(), 1, "{path}: {lines:?}");
        let l = &lines[0];
        assert_eq!(l["worker_id"], 0);
        assert_eq!(l["method"], "GET", "{l}");
        assert_eq!(l["status"], status, "{l}");
        assert!(l["duration_us"].is_u64(), "{l}");
    }
}

#[test]
fn data_dir_is_private_and_the_secret_is_generated_once() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&p.dir), 0o700);
    let secret_path = p.dir.join(".secret");
    assert_eq!(mode(&secret_path), 0o600);
    let secret = std::fs::read_to_string(&secret_path).expect("secret");
    assert!(secret.len() >= 32);

    p.signal(Signal::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(10)).expect("exits").success());
    let dir = p.dir.clone();
    let mut again = Spawn::serve().dir(&dir).start();
    again.wait_healthy();
    assert_eq!(std::fs::read_to_string(&secret_path).expect("secret"), secret, "reused, not regenerated");
}

#[test]
fn a_second_process_on_the_same_data_dir_is_refused() {
    let mut first = Spawn::serve().start();
    first.wait_healthy();
    let mut second = Spawn::serve().dir(&first.dir.clone()).start();
    let status = second.wait_exit(Duration::from_secs(10)).expect("second exits");
    assert!(!status.success());
    let text = second.log_text();
    assert!(text.contains("in use by another vaultbase process"), "{text}");
    assert!(text.contains(&format!("pid {}", first.pid())), "names the holder: {text}");
    // A cluster on the same dir is refused the same way.
    let mut third = Spawn::cluster(2).dir(&first.dir.clone()).start();
    assert!(!third.wait_exit(Duration::from_secs(10)).expect("exits").success());
    assert!(third.log_text().contains("in use by another vaultbase process"));
    assert_eq!(get(first.port, "/_/health").expect("first still serves").status, 200);
}

#[test]
fn a_port_in_use_gives_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    for mut p in [Spawn::serve().port(port).start(), Spawn::cluster(2).port(port).start()] {
        let status = p.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(1));
        let text = p.log_text();
        assert!(text.contains("already in use"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let mut p = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").start();
    p.wait_healthy();
    let inflight = InFlight::start(p.port, 100_000);
    p.signal(Signal::SIGTERM);
    p.wait_logs(1, Duration::from_secs(10), |v| v["message"] == "draining");
    // The listener is closed once draining starts: new connections are refused.
    assert!(get(p.port, "/_/health").is_err(), "no new connections while draining");
    let r = inflight.finish().expect("in-flight response");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bytes"], 100_000);
    let status = p.wait_exit(Duration::from_secs(10)).expect("exits after the request");
    assert_eq!(status.code(), Some(0));
    p.wait_logs(1, Duration::from_secs(1), |v| v["message"] == "drained; exiting");
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut p = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").start();
    p.wait_healthy();
    // A request that never completes would hold the drain for the full 30 s timeout.
    let _stuck = InFlight::start(p.port, 1000);
    p.signal(Signal::SIGTERM);
    p.wait_logs(1, Duration::from_secs(10), |v| v["message"] == "draining");
    p.signal(Signal::SIGINT);
    let status = p.wait_exit(Duration::from_secs(5)).expect("second signal ends it well before the drain timeout");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn drain_gives_up_on_a_stuck_request_at_the_deadline() {
    let mut p = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_DRAIN_TIMEOUT", "1").start();
    p.wait_healthy();
    let _stuck = InFlight::start(p.port, 1000);
    p.signal(Signal::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(10)).expect("exits after the deadline");
    assert_eq!(status.code(), Some(0));
    p.wait_logs(1, Duration::from_secs(1), |v| {
        v["message"] == "connections still open at the drain deadline; closing them"
    });
}

#[test]
fn oversized_bodies_get_413_in_the_envelope() {
    let mut p = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").start();
    p.wait_healthy();
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    let len = 40 * 1024 * 1024;
    write!(s, "POST /_/test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n").expect("head");
    // No body bytes follow: the refusal must come from the declared length alone.
    let r = read_response(&mut s, false).expect("response");
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["status"], 413);
    assert_eq!(r.json()["data"], serde_json::json!({}));
}

#[test]
fn systemd_is_told_ready_then_stopping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut p = Spawn::serve().env("NOTIFY_SOCKET", sock_path.to_str().expect("utf8")).start();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(get(p.port, "/_/health").expect("ready means serving").status, 200);
    p.signal(Signal::SIGTERM);
    let n = sock.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(p.wait_exit(Duration::from_secs(10)).expect("exit").success());
}

#[test]
fn http2_without_tls_is_served() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    let port = p.port;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        use http_body_util::{BodyExt, Empty};
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2 prior-knowledge handshake");
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("http://127.0.0.1:{port}/_/health"))
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let res = send.send_request(req).await.expect("h2 response");
        assert_eq!(res.version(), hyper::Version::HTTP_2);
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["status"], "ok");
    });
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    const LIMIT: u64 = 64;
    let mut p = Spawn::serve().max_open_files(LIMIT).start();
    p.wait_healthy();
    // Hold more connections than the process has descriptors: the kernel completes every
    // handshake, and accept(2) in the server fails with EMFILE.
    let held: Vec<std::net::TcpStream> = (0..LIMIT * 2)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", p.port)).ok())
        .collect();
    assert!(held.len() as u64 > LIMIT);
    p.wait_logs(1, Duration::from_secs(10), |v| v["message"] == "accept failed; backing off");
    drop(held);
    // Once descriptors are free again the same process serves: EMFILE was not fatal.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = get(p.port, "/_/health") {
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["pid"], p.pid());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered; logs:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.child.try_wait().expect("try_wait").is_none(), "still running");
}

#[test]
fn drain_closes_idle_keep_alive_connections_instead_of_waiting_for_them() {
    use std::io::{Read, Write};
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    // One request on a keep-alive connection, which then sits idle.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    p.signal(Signal::SIGTERM);
    // The server closes the idle connection: the client reads EOF.
    assert_eq!(idle.read(&mut buf).expect("eof, not a timeout"), 0);
    // And the drain does not sit out its 30 s timeout on the idle connection.
    let status = p.wait_exit(Duration::from_secs(10)).expect("exits without waiting for the idle connection");
    assert_eq!(status.code(), Some(0));
}
