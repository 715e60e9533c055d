//! Resource bounds and freshness holes against the real binary: a file download on every
//! worker of a cluster honours a field made `protected` the very next request (with bus
//! invalidations switched off, so only the version check can do it); a connection that sends
//! an h2c preface (or nothing) and then stalls is closed after the header timeout; past
//! `VAULTBASE_MAX_CONNECTIONS` a new connection waits until one closes; a decompression-bomb
//! PNG asked for a thumbnail is served as it is without its pixels ever being allocated.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// How long a read waits before the test calls a connection "left open" (far above the
/// server's 300 ms header timeout used here, so a pass never depends on scheduling).
const STALL_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads until the server closes the connection; false if it is still open after
/// [`STALL_READ_TIMEOUT`].
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(STALL_READ_TIMEOUT)).expect("timeout");
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the server's own SETTINGS frame
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Like [`closed_by_server`] for an HTTP/2 connection that answers the server's PINGs, as a
/// live client would (so keep-alive pings alone cannot be what ends it).
fn h2_closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(STALL_READ_TIMEOUT)).expect("timeout");
    let started = std::time::Instant::now();
    let mut header = [0u8; 9];
    loop {
        if started.elapsed() > STALL_READ_TIMEOUT {
            return false; // still open, kept alive by the answered pings
        }
        match s.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(e) => panic!("reading: {e}"),
        }
        let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0u8; len];
        match s.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return true,
            Err(e) => panic!("reading: {e}"),
        }
        let (kind, flags) = (header[3], header[4]);
        if kind == 6 && flags & 1 == 0 {
            // PING without ACK: answer it.
            let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
            ack.extend_from_slice(&payload);
            if s.write_all(&ack).is_err() {
                return true;
            }
        }
    }
}

#[test]
fn a_field_made_protected_through_one_worker_is_enforced_by_every_worker_on_the_next_download() {
    // Bus invalidations are ignored: only the version check can make the change seen.
    let (p, su) = start_with_superuser(Spawn::cluster(2).env("VAULTBASE_TEST_IGNORE_INVALIDATE", "1"));
    p.wait_logs(2, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        // Records only for signed-in users: once protected, a file needs a token (PocketBase
        // checks a protected file against the view rule, and an empty rule admits anyone).
        "name": "docs", "listRule": "", "viewRule": "@request.auth.id != ''", "fields": [{"name": "doc", "type": "file", "maxSelect": 1}]
    })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = post_multipart(p.port, "/api/collections/docs/records", &su, &small_multipart(&[], &[("doc", "note.txt", b"secret words")]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = r.json();
    let url = format!("/api/files/docs/{}/{}", rec["id"].as_str().expect("id"), rec["doc"].as_str().expect("doc"));

    // One kept-alive connection to each worker, each known by the worker that answers on it.
    let mut conns = connection_per_worker(p.port, 2);

    // Warm every worker's schema cache with a download of the public file.
    for (worker, s) in conns.iter_mut() {
        let r = exchange(s, "GET", &url).expect("download");
        assert_eq!(r.status, 200, "worker {worker} serves the public file");
        assert_eq!(r.body, b"secret words");
    }

    // Everything that needs a signed-in request comes first: resolving a bearer token checks
    // the schema version too, and would refresh whichever worker took it.
    let file_token = call(p.port, "POST", "/api/files/token", Some(&su), None).json()["token"].as_str().expect("file token").to_owned();
    let mut fields = call(p.port, "GET", "/api/collections/docs", Some(&su), None).json()["fields"].clone();
    for f in fields.as_array_mut().expect("fields") {
        if f["name"] == "doc" {
            f["protected"] = json!(true);
        }
    }
    let r = call(p.port, "PATCH", "/api/collections/docs", Some(&su), Some(&json!({"fields": fields})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["fields"][1]["protected"], true);

    for (worker, s) in conns.iter_mut() {
        let r = exchange(s, "GET", &url).expect("download");
        assert_eq!(r.status, 404, "worker {worker} served a protected file without a token: {}", String::from_utf8_lossy(&r.body));
        // Positive control on the same connection: with a superuser's file token it is served.
        let r = exchange(s, "GET", &format!("{url}?token={file_token}")).expect("download with token");
        assert_eq!(r.status, 200, "worker {worker}");
        assert_eq!(r.header("cache-control").as_deref(), Some("private, no-store"), "worker {worker} knows the field is protected");
    }
}

#[test]
fn a_connection_that_never_completes_a_request_head_is_closed_after_the_header_timeout() {
    let mut p = Spawn::serve().env("VAULTBASE_HEADER_TIMEOUT_MS", "300").start();
    p.wait_healthy();

    // h2c with prior knowledge: the connection preface, then silence (no SETTINGS, no HEADERS).
    let mut h2 = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect("preface");
    // An HTTP/2 SETTINGS frame (empty) but no HEADERS ever.
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).expect("settings");
    // And a connection that sends nothing at all (the protocol is never even detected).
    let mut silent = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    // And half an HTTP/1 head.
    let mut half = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    half.write_all(b"GET /_/health HTTP/1.1\r\nHost: x\r\n").expect("half a head");

    assert!(h2_closed_by_server(&mut h2), "an h2c connection without a request was left open");
    assert!(closed_by_server(&mut silent), "a silent connection was left open");
    assert!(closed_by_server(&mut half), "a half HTTP/1 head was left open");
    // The server serves on: a complete request on a new connection is answered.
    assert_eq!(get(p.port, "/_/health").expect("health").status, 200);
}

#[test]
fn past_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let mut p = Spawn::serve().env("VAULTBASE_MAX_CONNECTIONS", "2").start();
    p.wait_healthy();
    // wait_healthy's connections are closed by the client; give the server a moment to see
    // them go by asking on two fresh, held connections until both are served.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        assert_eq!(exchange(&mut s, "GET", "/_/health").expect("health").status, 200);
        held.push(s);
    }
    let mut third = TcpStream::connect(("127.0.0.1", p.port)).expect("the kernel queues the connection");
    third.write_all(b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    third.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut byte = [0u8; 1];
    match third.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the connection over the cap was served while the cap was held: {other:?}"),
    }
    assert!(p.log_text().contains("connection cap reached"), "the cap is logged");
    // One held connection closes: the waiting one is accepted and served.
    drop(held.remove(0));
    third.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let r = read_one(&mut third).expect("served once a slot freed");
    assert_eq!(r.status, 200);
    assert_eq!(exchange(&mut held[0], "GET", "/_/health").expect("health").status, 200, "held connections keep working");
}

/// A 1-bit greyscale PNG of `side` × `side` black pixels: a few dozen kilobytes that decode
/// to `side`² bytes.
fn bomb_png(side: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let ihdr = [&side.to_be_bytes()[..], &side.to_be_bytes()[..], &[1, 0, 0, 0, 0]].concat();
    png_chunk(&mut out, b"IHDR", &ihdr);
    let row = vec![0u8; 1 + (side as usize).div_ceil(8)];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..side {
        z.write_all(&row).expect("compress");
    }
    png_chunk(&mut out, b"IDAT", &z.finish().expect("compress"));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Peak resident memory of `pid`, bytes (`/proc/PID/status` VmHWM).
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kb * 1024
}

#[test]
fn a_decompression_bomb_asked_for_a_thumbnail_is_served_as_it_is_without_decoding() {
    // 18,000 × 18,000: 324 MB of pixels, under the side limit the decoder once had.
    const SIDE_PX: u32 = 18_000;
    /// Far below the 324 MB the pixels would take, far above an idle server.
    const PEAK_BOUND_BYTES: u64 = 200 * 1024 * 1024;
    let (p, su) = start_with_superuser(Spawn::serve());
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "pics", "listRule": "", "viewRule": "", "fields": [{"name": "img", "type": "file", "maxSelect": 1}]
    })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let bomb = bomb_png(SIDE_PX);
    assert!(bomb.len() < 1_000_000, "the bomb is a small file: {} bytes", bomb.len());
    let r = post_multipart(p.port, "/api/collections/pics/records", &su, &small_multipart(&[], &[("img", "bomb.png", &bomb)]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec: Value = r.json();
    let url = format!("/api/files/pics/{}/{}?thumb=100x100", rec["id"].as_str().expect("id"), rec["img"].as_str().expect("img"));

    let r = get(p.port, &url).expect("thumb");
    assert_eq!(r.status, 200);
    assert!(r.body == bomb, "the original is served when no thumbnail can be made");
    let failed = p.logs_with_message("thumbnail failed; serving the original");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["error"].as_str().is_some_and(|e| e.contains("limit")), "{failed:?}");
    assert!(p.logs_with_message("thumbnail generated").is_empty());
    let peak = peak_memory(p.pid());
    assert!(peak < PEAK_BOUND_BYTES, "the server's peak memory reached {peak} bytes");

    // Positive control: a modest image of the same kind gets its thumbnail, and the server
    // serves on.
    let small = bomb_png(64);
    let r = post_multipart(p.port, "/api/collections/pics/records", &su, &small_multipart(&[], &[("img", "small.png", &small)]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec: Value = r.json();
    let r = get(p.port, &format!("/api/files/pics/{}/{}?thumb=100x100", rec["id"].as_str().expect("id"), rec["img"].as_str().expect("img"))).expect("thumb");
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..4], b"\x89PNG");
    assert!(r.body != small, "a thumbnail, not the original");
    assert_eq!(p.logs_with_message("thumbnail generated").len(), 1);
}
