//! Encrypted fields end to end: values are ciphertext in data.db and plaintext on every output
//! path; filters, sorts, rules and unique indexes on them are refused naming the field; a
//! missing or wrong key stops start-up; `vaultbase encryption rotate` re-encrypts online; a
//! 4-worker cluster reads through every worker what one wrote; settings secrets are sealed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// 32 raw characters.
const KEY_A: &str = "an-encryption-key-of-32-letters!";
/// 64 hex digits.
const KEY_B: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SECRET: &str = "the plaintext secret";
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn key_id(key_bytes: &[u8]) -> String {
    Sha256::digest(key_bytes).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn key_b_bytes() -> Vec<u8> {
    (0..KEY_B.len()).step_by(2).map(|i| u8::from_str_radix(&KEY_B[i..i + 2], 16).expect("hex")).collect()
}

/// `notes` (a plain `title`, encrypted `secret`, `info` and `mail`) and `refs` relating to it,
/// all public; returns the notes collection id.
fn create_collections(port: u16, token: &str) -> String {
    let notes = ok(call(
        port,
        "POST",
        "/api/collections",
        Some(token),
        Some(&json!({
            "name": "notes", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "secret", "type": "text", "encrypted": true},
                {"name": "info", "type": "json", "encrypted": true},
                {"name": "mail", "type": "email", "encrypted": true}
            ]
        })),
    ));
    assert_eq!(notes["fields"].as_array().expect("fields").iter().filter(|f| f["encrypted"] == true).count(), 3, "{notes}");
    let notes_id = notes["id"].as_str().expect("id").to_owned();
    ok(call(
        port,
        "POST",
        "/api/collections",
        Some(token),
        Some(&json!({
            "name": "refs", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [{"name": "note", "type": "relation", "collectionId": notes_id, "maxSelect": 1}]
        })),
    ));
    notes_id
}

fn note_body(n: usize) -> Value {
    json!({"title": format!("title {n}"), "secret": format!("{SECRET} {n}"), "info": {"n": n, "s": "nested"}, "mail": format!("n{n}@example.com")})
}

fn assert_plain(record: &Value, n: usize) {
    assert_eq!(record["secret"], format!("{SECRET} {n}"), "{record}");
    assert_eq!(record["info"], json!({"n": n, "s": "nested"}), "{record}");
    assert_eq!(record["mail"], format!("n{n}@example.com"), "{record}");
}

/// The stored `(title, secret, info, mail)` of every note, read from data.db directly.
fn stored_notes(dir: &std::path::Path) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
    let mut stmt = conn.prepare("SELECT title, secret, CAST(info AS TEXT), mail FROM notes ORDER BY title").expect("prepare");
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

fn param(dir: &std::path::Path, id: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
    conn.query_row("SELECT value FROM _params WHERE id = ?1", [id], |r| r.get(0)).ok()
}

/// A blocking SSE reader for `/api/realtime` (chunked frames).
struct Sse {
    r: BufReader<TcpStream>,
    pending: Vec<u8>,
}

impl Sse {
    fn open(port: u16) -> (Sse, String) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        s.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("request");
        let mut r = BufReader::new(s);
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).expect("head") > 0, "closed in the head");
            if line == "\r\n" {
                break;
            }
        }
        let mut sse = Sse { r, pending: Vec::new() };
        let (event, data) = sse.next_frame();
        assert_eq!(event, "PB_CONNECT");
        let id = data["clientId"].as_str().expect("clientId").to_owned();
        (sse, id)
    }

    fn next_frame(&mut self) -> (String, Value) {
        loop {
            if let Some(pos) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.pending.drain(..pos + 2).collect();
                let text = String::from_utf8(frame).expect("utf-8");
                let mut event = String::new();
                let mut data = Value::Null;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v).expect("JSON data");
                    }
                }
                return (event, data);
            }
            let mut size = String::new();
            assert!(self.r.read_line(&mut size).expect("chunk size") > 0, "stream ended");
            let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            let mut chunk = vec![0u8; n + 2];
            self.r.read_exact(&mut chunk).expect("chunk");
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A minimal SMTP server on loopback that accepts one mail and keeps the decoded `AUTH PLAIN`
/// credentials it was sent.
struct SmtpCapture {
    port: u16,
    auth: std::sync::mpsc::Receiver<String>,
}

impl SmtpCapture {
    fn start() -> SmtpCapture {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, auth) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut w = stream.try_clone().expect("clone");
            let mut r = BufReader::new(stream);
            let _ = w.write_all(b"220 capture ESMTP\r\n");
            let mut in_data = false;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                let cmd = line.trim_end().to_owned();
                line.clear();
                let reply: &[u8] = if in_data {
                    if cmd != "." {
                        continue;
                    }
                    in_data = false;
                    b"250 queued\r\n"
                } else if cmd.starts_with("EHLO") {
                    b"250-capture\r\n250 AUTH PLAIN\r\n"
                } else if let Some(b64) = cmd.strip_prefix("AUTH PLAIN ") {
                    use base64::Engine;
                    let raw = base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default();
                    let _ = tx.send(String::from_utf8_lossy(&raw).into_owned());
                    b"235 ok\r\n"
                } else if cmd == "DATA" {
                    in_data = true;
                    b"354 go on\r\n"
                } else if cmd == "QUIT" {
                    let _ = w.write_all(b"221 bye\r\n");
                    return;
                } else {
                    b"250 ok\r\n"
                };
                let _ = w.write_all(reply);
            }
        });
        SmtpCapture { port, auth }
    }

    fn auth(&self) -> String {
        self.auth.recv_timeout(Duration::from_secs(20)).expect("AUTH PLAIN received")
    }
}

#[test]
fn values_are_ciphertext_at_rest_and_plaintext_on_every_output_path() {
    let (server, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A));
    let port = server.port;
    create_collections(port, &token);

    let (mut sse, client_id) = Sse::open(port);
    ok(call(port, "POST", "/api/realtime", None, Some(&json!({"clientId": client_id, "subscriptions": ["notes/*"]}))));

    // The write pipeline's returned record.
    let created = ok(call(port, "POST", "/api/collections/notes/records", None, Some(&note_body(1))));
    assert_plain(&created, 1);
    let id = created["id"].as_str().expect("id").to_owned();

    // The realtime event.
    let (event, data) = sse.next_frame();
    assert_eq!(event, "notes/*");
    assert_eq!(data["action"], "create");
    assert_plain(&data["record"], 1);

    // List, view, and expand from another collection.
    let list = ok(call(port, "GET", "/api/collections/notes/records", None, None));
    assert_plain(&list["items"][0], 1);
    assert_plain(&ok(call(port, "GET", &format!("/api/collections/notes/records/{id}"), None, None)), 1);
    let r = ok(call(port, "POST", "/api/collections/refs/records?expand=note", None, Some(&json!({"note": id}))));
    assert_plain(&r["expand"]["note"], 1);
    let refs = ok(call(port, "GET", "/api/collections/refs/records?expand=note", None, None));
    assert_plain(&refs["items"][0]["expand"]["note"], 1);
    // A `fields` modifier works on the plaintext.
    let excerpt = ok(call(port, "GET", &format!("/api/collections/notes/records/{id}?fields=secret:excerpt(9)"), None, None));
    assert_eq!(excerpt["secret"], "the plain", "{excerpt}");

    // An update keeps values it does not touch and seals what it sets.
    let updated = ok(call(port, "PATCH", &format!("/api/collections/notes/records/{id}"), None, Some(&json!({"title": "title 1", "secret": format!("{SECRET} 1")}))));
    assert_plain(&updated, 1);

    // A batch response.
    ok(call(port, "PATCH", "/api/settings", Some(&token), Some(&json!({"batch": {"enabled": true}}))));
    let batch = ok(call(
        port,
        "POST",
        "/api/batch",
        None,
        Some(&json!({"requests": [{"method": "POST", "url": "/api/collections/notes/records", "body": note_body(2)}]})),
    ));
    assert_eq!(batch[0]["status"], 200, "{batch}");
    assert_plain(&batch[0]["body"], 2);

    // A view selecting an encrypted column shows it decrypted too.
    ok(call(
        port,
        "POST",
        "/api/collections",
        Some(&token),
        Some(&json!({"name": "notes_view", "type": "view", "listRule": "", "viewRule": "", "viewQuery": "SELECT id, secret AS hidden_text, info FROM notes"})),
    ));
    let view = ok(call(port, "GET", &format!("/api/collections/notes_view/records/{id}"), None, None));
    assert_eq!(view["hidden_text"], format!("{SECRET} 1"), "{view}");
    assert_eq!(view["info"], json!({"n": 1, "s": "nested"}), "{view}");

    // At rest: the plain field is plaintext (the control), the encrypted ones ciphertext.
    let stored = stored_notes(&server.dir);
    assert_eq!(stored.len(), 2);
    let prefix = format!("vbenc:v1:{}:", key_id(KEY_A.as_bytes()));
    for (n, (title, secret, info, mail)) in stored.iter().enumerate() {
        assert_eq!(title, &format!("title {}", n + 1), "a field that is not encrypted is stored as it is");
        for v in [secret, info, mail] {
            assert!(v.starts_with(&prefix), "{v}");
            assert!(!v.contains(SECRET) && !v.contains("nested") && !v.contains("example.com"), "{v}");
        }
    }

    // Settings secrets and OAuth2 client secrets are sealed at rest too, and the SMTP password
    // reaches the mail server decrypted.
    let smtp = SmtpCapture::start();
    let settings = json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": smtp.port, "username": "mailer", "password": "smtp-hunter2", "authMethod": "PLAIN"}});
    ok(call(port, "PATCH", "/api/settings", Some(&token), Some(&settings)));
    let secrets = param(&server.dir, "settings_secrets").expect("secrets row");
    assert!(secrets.contains("vbenc:v1:") && !secrets.contains("smtp-hunter2"), "{secrets}");
    let settings = ok(call(port, "GET", "/api/settings", Some(&token), None));
    assert_eq!(settings["smtp"]["host"], "127.0.0.1", "the rest of the settings reads back");
    ok(call(port, "POST", "/api/settings/test/email", Some(&token), Some(&json!({"email": "to@example.com", "template": "verification"}))));
    assert_eq!(smtp.auth(), "\0mailer\0smtp-hunter2");
    let users = ok(call(
        port,
        "PATCH",
        "/api/collections/users",
        Some(&token),
        Some(&json!({"oauth2": {"enabled": true, "providers": [{"name": "github", "clientId": "cid", "clientSecret": "gh-client-secret"}]}})),
    ));
    assert_eq!(users["oauth2"]["providers"][0]["clientId"], "cid", "{users}");
    let conn = rusqlite::Connection::open(server.dir.join("data.db")).expect("open");
    let options: String = conn.query_row("SELECT options FROM _collections WHERE name = 'users'", [], |r| r.get(0)).expect("options");
    assert!(options.contains("\"clientId\":\"cid\""), "the provider is stored: {options}");
    assert!(!options.contains("gh-client-secret") && options.contains("vbenc:v1:"), "{options}");
}

fn message(r: &Resp) -> String {
    r.json()["message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn filters_sorts_rules_and_unique_indexes_on_encrypted_fields_are_refused_naming_the_field() {
    let (server, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A));
    let port = server.port;
    create_collections(port, &token);
    let id = ok(call(port, "POST", "/api/collections/notes/records", None, Some(&note_body(1))))["id"].as_str().expect("id").to_owned();
    ok(call(port, "POST", "/api/collections/refs/records", None, Some(&json!({"note": id}))));

    // The control: the plain field filters and sorts.
    let found = ok(call(port, "GET", "/api/collections/notes/records?filter=title%3D'title%201'&sort=-title", None, None));
    assert_eq!(found["totalItems"], 1);
    for path in [
        "/api/collections/notes/records?filter=secret%3D'x'",
        "/api/collections/notes/records?filter=info.n%3D1",
        "/api/collections/notes/records?sort=-secret",
        "/api/collections/refs/records?filter=note.secret%3D'x'",
    ] {
        for t in [None, Some(token.as_str())] {
            let r = call(port, "GET", path, t, None);
            assert_eq!(r.status, 400, "{path}: {}", String::from_utf8_lossy(&r.body));
            let m = message(&r);
            assert!(m.contains("encrypted") && (m.contains("\"secret\"") || m.contains("\"info\"")), "{path}: {m}");
        }
    }

    // At collection save: a rule, a unique index, an unsupported type.
    let base = |extra: Value| {
        let mut body = json!({"name": "other", "type": "base", "fields": [{"name": "code", "type": "text", "encrypted": true}, {"name": "n", "type": "number"}]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        call(port, "POST", "/api/collections", Some(&token), Some(&body))
    };
    let r = base(json!({"listRule": "code = 'x'"}));
    assert_eq!(r.status, 400);
    let rule_error = r.json()["data"]["listRule"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(rule_error.contains("\"code\"") && rule_error.contains("encrypted"), "{}", String::from_utf8_lossy(&r.body));
    let r = base(json!({"listRule": "@collection.notes.secret = 'x'"}));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = base(json!({"indexes": ["CREATE UNIQUE INDEX idx_code ON other (n, `code`)"]}));
    assert_eq!(r.status, 400);
    let index_error = r.json()["data"]["indexes"]["0"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(index_error.contains("\"code\""), "{}", String::from_utf8_lossy(&r.body));
    let r = call(
        port,
        "POST",
        "/api/collections",
        Some(&token),
        Some(&json!({"name": "other", "type": "base", "fields": [{"name": "n", "type": "number", "encrypted": true}]})),
    );
    assert_eq!(r.status, 400);
    let errors = r.json()["data"]["fields"].as_object().cloned().unwrap_or_default();
    assert!(errors.values().any(|e| e["encrypted"]["message"].is_string()), "{}", String::from_utf8_lossy(&r.body));
    // The control: a plain index and a rule on the plain field save.
    let r = base(json!({"listRule": "n > 0", "indexes": ["CREATE INDEX idx_code ON other (code)"]}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn turning_encryption_on_and_off_migrates_the_stored_values() {
    let (server, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A));
    let port = server.port;
    let c = ok(call(
        port,
        "POST",
        "/api/collections",
        Some(&token),
        Some(&json!({"name": "notes", "type": "base", "listRule": "", "fields": [
            {"name": "title", "type": "text"}, {"name": "secret", "type": "text"}, {"name": "info", "type": "json"}, {"name": "mail", "type": "email"}
        ]})),
    ));
    ok(call(port, "POST", "/api/collections/notes/records", Some(&token), Some(&note_body(1))));
    let stored = |dir: &std::path::Path| stored_notes(dir).remove(0);
    assert_eq!(stored(&server.dir).1, format!("{SECRET} 1"), "plaintext before");

    let mut fields = c["fields"].clone();
    let set = |fields: &mut Value, on: bool| {
        for f in fields.as_array_mut().expect("fields") {
            if ["secret", "info"].contains(&f["name"].as_str().unwrap_or_default()) {
                f["encrypted"] = json!(on);
            }
        }
    };
    set(&mut fields, true);
    ok(call(port, "PATCH", "/api/collections/notes", Some(&token), Some(&json!({"fields": fields}))));
    let (_, secret, info, mail) = stored(&server.dir);
    assert!(secret.starts_with("vbenc:v1:") && info.starts_with("vbenc:v1:"), "{secret} {info}");
    assert_eq!(mail, "n1@example.com", "a field left alone stays plaintext");
    let list = ok(call(port, "GET", "/api/collections/notes/records", None, None));
    assert_plain(&list["items"][0], 1);

    // A client that does not know the option (it sends fields without the key) leaves it on.
    let mut unaware = ok(call(port, "GET", "/api/collections/notes", Some(&token), None))["fields"].clone();
    for f in unaware.as_array_mut().expect("fields") {
        f.as_object_mut().expect("field").remove("encrypted");
    }
    let after = ok(call(port, "PATCH", "/api/collections/notes", Some(&token), Some(&json!({"fields": unaware}))));
    assert_eq!(after["fields"].as_array().expect("fields").iter().filter(|f| f["encrypted"] == true).count(), 2, "{after}");
    assert!(stored(&server.dir).1.starts_with("vbenc:v1:"));

    set(&mut fields, false);
    ok(call(port, "PATCH", "/api/collections/notes", Some(&token), Some(&json!({"fields": fields}))));
    let (_, secret, info, _) = stored(&server.dir);
    assert_eq!(secret, format!("{SECRET} 1"));
    assert_eq!(serde_json::from_str::<Value>(&info).expect("json"), json!({"n": 1, "s": "nested"}));
    assert_plain(&ok(call(port, "GET", "/api/collections/notes/records", None, None))["items"][0], 1);
}

/// Starts `spawn` on `dir` and expects it to fail start-up; returns its log.
fn failed_start(spawn: Spawn, dir: &std::path::Path) -> String {
    let mut p = spawn.dir(dir).start();
    let status = p.wait_exit(EXIT_TIMEOUT).expect("exits");
    assert!(!status.success(), "start-up must fail");
    p.log_text()
}

fn stop(mut p: Proc) {
    p.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(p.wait_exit(EXIT_TIMEOUT).expect("drained").success());
}

#[test]
fn start_up_without_the_key_or_with_a_wrong_key_stops_naming_the_fields() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    create_superuser(&dir, SU_EMAIL, SU_PASSWORD);
    let mut first = Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A).dir(&dir).start();
    first.wait_healthy();
    let auth = ok(call(first.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD}))));
    create_collections(first.port, auth["token"].as_str().expect("token"));
    ok(call(first.port, "POST", "/api/collections/notes/records", None, Some(&note_body(1))));
    stop(first);

    let log = failed_start(Spawn::serve(), &dir);
    assert!(log.contains("VAULTBASE_ENCRYPTION_KEY is not set") && log.contains("notes.secret") && log.contains("notes.info"), "{log}");
    let log = failed_start(Spawn::cluster(2).env("VAULTBASE_ENCRYPTION_KEY", KEY_B), &dir);
    assert!(log.contains("is not the key") && log.contains("notes.secret"), "{log}");

    // The control: the right key starts and reads.
    let mut again = Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A).dir(&dir).start();
    again.wait_healthy();
    assert_plain(&ok(call(again.port, "GET", "/api/collections/notes/records", None, None))["items"][0], 1);
    stop(again);

    // With no record stored at all, the canary still tells a wrong key.
    let empty = tempfile::tempdir().expect("tempdir");
    let empty_dir = empty.path().join("data");
    let mut p = Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A).dir(&empty_dir).start();
    p.wait_healthy();
    stop(p);
    let log = failed_start(Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_B), &empty_dir);
    assert!(log.contains("is not the key"), "{log}");
    // A new data dir has PocketBase's layout, whose auth collections come with token secrets:
    // the key sealed them, so a keyless start is refused too, naming them.
    let log = failed_start(Spawn::serve(), &empty_dir);
    assert!(log.contains("token or OAuth2 secrets are encrypted"), "{log}");
}

fn rotate(dir: &std::path::Path, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["encryption", "rotate", "--dir"]).arg(dir).env_clear();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run rotate")
}

#[test]
fn rotation_runs_online_and_the_new_key_alone_reads_everything_after() {
    const NOTES: usize = 12;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    create_superuser(&dir, SU_EMAIL, SU_PASSWORD);
    let mut old = Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A).dir(&dir).start();
    old.wait_healthy();
    let auth = ok(call(old.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD}))));
    let token = auth["token"].as_str().expect("token").to_owned();
    create_collections(old.port, &token);
    for n in 0..NOTES {
        ok(call(old.port, "POST", "/api/collections/notes/records", None, Some(&note_body(n))));
    }
    ok(call(old.port, "PATCH", "/api/settings", Some(&token), Some(&json!({"smtp": {"password": "smtp-hunter2"}}))));

    // A server that does not hold the new key could not read what a rotation writes.
    let both = [("VAULTBASE_ENCRYPTION_KEY", KEY_A), ("VAULTBASE_ENCRYPTION_NEW_KEY", KEY_B)];
    let refused = rotate(&dir, &both);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not hold the new key"), "{}", String::from_utf8_lossy(&refused.stderr));
    stop(old);

    let mut server = Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A).env("VAULTBASE_ENCRYPTION_NEW_KEY", KEY_B).dir(&dir).start();
    server.wait_healthy();
    // Written during the rotation window: under the new key already.
    ok(call(server.port, "POST", "/api/collections/notes/records", None, Some(&note_body(NOTES))));
    let (old_id, new_id) = (key_id(KEY_A.as_bytes()), key_id(&key_b_bytes()));
    let count_under = |id: &str| stored_notes(&dir).iter().filter(|(_, s, i, m)| [s, i, m].iter().all(|v| v.starts_with(&format!("vbenc:v1:{id}:")))).count();
    assert_eq!(count_under(&old_id), NOTES);
    assert_eq!(count_under(&new_id), 1);

    // Rotate in batches of 5, held after the first: halfway through, the server reads values
    // under both keys and keeps writing.
    let go = tmp.path().join("go");
    let paused = tmp.path().join("go.paused");
    let mut cmd = Command::new(BIN);
    cmd.args(["encryption", "rotate", "--batch-rows", "5", "--dir"]).arg(&dir).env_clear().env("VAULTBASE_TEST_ROTATE_PAUSE", &go);
    for (k, v) in both {
        cmd.env(k, v);
    }
    let rotation = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn rotate");
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    while !paused.exists() {
        assert!(std::time::Instant::now() < deadline, "the rotation never reached its pause");
        std::thread::sleep(Duration::from_millis(10));
    }
    let secrets_under = |id: &str| stored_notes(&dir).iter().filter(|(_, s, _, _)| s.starts_with(&format!("vbenc:v1:{id}:"))).count();
    assert_eq!(secrets_under(&new_id), 1 + 5, "one batch of secrets is under the new key");
    assert_eq!(secrets_under(&old_id), NOTES - 5, "and the rest still under the old one");
    let list = ok(call(server.port, "GET", "/api/collections/notes/records?perPage=100", None, None));
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), NOTES + 1);
    for record in items {
        let n: usize = record["title"].as_str().and_then(|t| t.strip_prefix("title ")).and_then(|n| n.parse().ok()).expect("title");
        assert_plain(record, n);
    }
    ok(call(server.port, "POST", "/api/collections/notes/records", None, Some(&note_body(NOTES + 1))));
    std::fs::write(&go, b"").expect("release the rotation");
    let out = rotation.wait_with_output().expect("rotate ends");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(report.contains("notes.secret: 12") && report.contains("notes.mail: 12"), "{report}");
    assert_eq!(count_under(&old_id), 0, "no value is left under the old key");
    assert_eq!(count_under(&new_id), NOTES + 2);
    // Resumable: progress is the data, so a second run finds nothing left to do.
    let again = rotate(&dir, &both);
    assert!(String::from_utf8_lossy(&again.stdout).contains("re-encrypted 0 field values and 0 secrets"), "{}", String::from_utf8_lossy(&again.stdout));
    stop(server);

    let mut new = Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_B).dir(&dir).start();
    new.wait_healthy();
    let list = ok(call(new.port, "GET", "/api/collections/notes/records?perPage=100", None, None));
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), NOTES + 2);
    for record in items {
        let n: usize = record["title"].as_str().and_then(|t| t.strip_prefix("title ")).and_then(|n| n.parse().ok()).expect("title");
        assert_plain(record, n);
    }
    let secrets = param(&dir, "settings_secrets").expect("secrets row");
    assert!(secrets.contains(&format!("vbenc:v1:{new_id}:")), "{secrets}");
    stop(new);
    // And the old key alone no longer starts.
    let log = failed_start(Spawn::serve().env("VAULTBASE_ENCRYPTION_KEY", KEY_A), &dir);
    assert!(log.contains("is not the key"), "{log}");
}

#[test]
fn a_four_worker_cluster_reads_through_every_worker_what_one_wrote() {
    let (cluster, token) = start_with_superuser(Spawn::cluster(4).env("VAULTBASE_ENCRYPTION_KEY", KEY_B));
    let port = cluster.port;
    create_collections(port, &token);
    let mut conns = connection_per_worker(port, 4);
    let (mut sse, client_id) = Sse::open(port);
    ok(call(port, "POST", "/api/realtime", None, Some(&json!({"clientId": client_id, "subscriptions": ["notes/*"]}))));

    let mut ids = Vec::new();
    for (n, (_, conn)) in conns.iter_mut().enumerate() {
        let payload = note_body(n).to_string();
        let req = format!(
            "POST /api/collections/notes/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        conn.write_all(req.as_bytes()).expect("write");
        let created = ok(read_one(conn).expect("response"));
        assert_plain(&created, n);
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    for conn in conns.values_mut() {
        for (n, id) in ids.iter().enumerate() {
            let r = ok(exchange(conn, "GET", &format!("/api/collections/notes/records/{id}")).expect("view"));
            assert_plain(&r, n);
        }
    }
    // Every worker's write reached the subscriber decrypted, wherever it is connected.
    for _ in 0..ids.len() {
        let (event, data) = sse.next_frame();
        assert_eq!(event, "notes/*");
        let n = ids.iter().position(|id| data["record"]["id"] == *id).expect("a known record");
        assert_plain(&data["record"], n);
    }
    let stored = stored_notes(&cluster.dir);
    assert_eq!(stored.len(), 4);
    assert!(stored.iter().all(|(_, s, _, _)| s.starts_with(&format!("vbenc:v1:{}:", key_id(&key_b_bytes())))));
}
