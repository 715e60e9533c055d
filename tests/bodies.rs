//! Record bodies are read only once the write may happen, and their text is limited apart
//! from their files: a create on a collection whose createRule is null (and an update whose
//! updateRule is null) is refused before a byte of the body is read; a multipart body's plain
//! values are limited to 1 MiB each, its parts to 1000, whatever its file fields allow.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::json;

const MB: usize = 1024 * 1024;

/// Sends a request head declaring `declared` body bytes, then only `sent` bytes of it, and
/// reads the answer without sending the rest: only a server that answers before reading
/// the body can answer at all.
fn answer_before_body(port: u16, method: &str, path: &str, declared: usize, sent: usize) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // Generous: a server that waits for the rest of the body never answers within it.
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&vec![b' '; sent]).expect("body start");
    read_response(&mut s, false).expect("an answer before the body was sent")
}

#[test]
fn a_write_a_null_rule_refuses_is_answered_before_its_body_is_read() {
    let (p, su) = start_with_superuser(Spawn::serve());
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "locked", "listRule": "", "viewRule": "", "createRule": null, "updateRule": null,
        "fields": [{"name": "title", "type": "text"}]
    })));
    assert_eq!(r.status, 200);
    let rec = call(p.port, "POST", "/api/collections/locked/records", Some(&su), Some(&json!({"id": "locked000000001", "title": "a"})));
    assert_eq!(rec.status, 200, "positive control: a superuser writes");

    let create = answer_before_body(p.port, "POST", "/api/collections/locked/records", 20 * MB, 10);
    assert_eq!(create.status, 403);
    assert_eq!(create.json()["message"], "Only superusers can perform this action.");
    let update = answer_before_body(p.port, "PATCH", "/api/collections/locked/records/locked000000001", 20 * MB, 10);
    assert_eq!(update.status, 403);
    let missing = answer_before_body(p.port, "PATCH", "/api/collections/locked/records/nosuchrecord000", 20 * MB, 10);
    assert_eq!(missing.status, 404, "a missing record is answered first, as PocketBase does");
    assert_eq!(call(p.port, "GET", "/api/collections/locked/records/locked000000001", None, None).json()["title"], "a");
}

#[test]
fn multipart_text_is_limited_apart_from_the_files() {
    let (p, su) = start_with_superuser(Spawn::serve());
    // 100 MB of files allowed: the body limit is far above the text limits.
    let r = call(p.port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [{"name": "body", "type": "text", "max": 3000000}, {"name": "data", "type": "json", "maxSize": 8 * MB},
                   {"name": "file", "type": "file", "maxSelect": 1, "maxSize": 100 * MB}]
    })));
    assert_eq!(r.status, 200);

    // Positive controls: a 900 KiB value and a 2 MiB @jsonPayload are fine.
    let ok = post_multipart(p.port, "/api/collections/posts/records", "", &small_multipart(&[("body", &"a".repeat(900 * 1024))], &[]));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let payload = json!({"data": {"blob": "b".repeat(2 * MB)}}).to_string();
    let ok = post_multipart(p.port, "/api/collections/posts/records", "", &small_multipart(&[("@jsonPayload", &payload)], &[]));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));

    let big = post_multipart(p.port, "/api/collections/posts/records", "", &small_multipart(&[("body", &"a".repeat(2 * MB))], &[]));
    assert_eq!(big.status, 413);
    assert!(big.json()["message"].as_str().unwrap_or_default().contains("\"body\""), "{:?}", big.json());

    let many: Vec<String> = (0..1001).map(|i| format!("x{i}")).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|k| (k.as_str(), "1")).collect();
    let r = post_multipart(p.port, "/api/collections/posts/records", "", &small_multipart(&refs, &[]));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "The form has more than 1000 parts.");
    let fewer = post_multipart(p.port, "/api/collections/posts/records", "", &small_multipart(&refs[..999], &[]));
    assert_eq!(fewer.status, 200, "999 parts are fine: {}", String::from_utf8_lossy(&fewer.body));
    let list = call(p.port, "GET", "/api/collections/posts/records?perPage=1", None, None).json();
    assert_eq!(list["totalItems"], 3, "only the accepted writes were stored");
}
