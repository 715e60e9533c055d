//! Mailer and realtime hooks against the real binary: `onMailerSend` changing or suppressing
//! mail (captured by a small SMTP server on loopback), `onMailerRecord…Send` around a system
//! mail, `MailerMessage` + `$app.newMailClient().send`; and custom realtime topics reaching
//! subscribers on every worker of a cluster.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// How long a background mail may take to arrive.
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// One captured message: envelope recipients and the raw DATA.
#[derive(Debug, Clone)]
struct Captured {
    rcpt: Vec<String>,
    data: String,
}

impl Captured {
    /// The DATA with quoted-printable soft breaks and `=XX` escapes undone.
    fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn header(&self, name: &str) -> String {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
            .unwrap_or_default()
    }
}

/// A minimal SMTP server that accepts everything and keeps what it got, in arrival order.
struct SmtpCapture {
    port: u16,
    mails: Arc<(Mutex<Vec<Captured>>, Condvar)>,
}

impl SmtpCapture {
    fn start() -> SmtpCapture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let mails: Arc<(Mutex<Vec<Captured>>, Condvar)> = Arc::default();
        let sink = mails.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &sink);
                });
            }
        });
        SmtpCapture { port, mails }
    }

    fn all(&self) -> Vec<Captured> {
        self.mails.0.lock().expect("lock").clone()
    }

    /// Waits for a mail to `to`.
    fn wait_for(&self, to: &str) -> Captured {
        let deadline = Instant::now() + MAIL_WAIT;
        let mut mails = self.mails.0.lock().expect("lock");
        loop {
            if let Some(m) = mails.iter().find(|m| m.rcpt.iter().any(|r| r.contains(to))) {
                return m.clone();
            }
            let now = Instant::now();
            assert!(now < deadline, "no mail to {to} arrived; got {:?}", *mails);
            mails = self.mails.1.wait_timeout(mails, deadline - now).expect("wait").0;
        }
    }
}

fn session(conn: TcpStream, sink: &(Mutex<Vec<Captured>>, Condvar)) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    out.write_all(b"220 capture ESMTP\r\n")?;
    let mut rcpt = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            out.write_all(b"250 capture\r\n")?;
        } else if cmd.starts_with("RCPT TO:") {
            rcpt.push(line.trim_end()[8..].to_owned());
            out.write_all(b"250 OK\r\n")?;
        } else if cmd == "DATA" {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            let (list, cond) = sink;
            list.lock().expect("lock").push(Captured { rcpt: std::mem::take(&mut rcpt), data });
            cond.notify_all();
            out.write_all(b"250 queued\r\n")?;
        } else if cmd == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            // MAIL FROM, RSET, NOOP…
            out.write_all(b"250 OK\r\n")?;
        }
    }
}

fn fixture_dir(name: &str, dest: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hooks").join(name);
    std::fs::create_dir_all(dest).expect("mkdir");
    for e in std::fs::read_dir(&src).expect("fixture") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dest.join(e.file_name())).expect("copy");
    }
    dest.to_owned()
}

#[test]
fn mailer_hooks_change_and_suppress_mail() {
    let smtp = SmtpCapture::start();
    let hooks_tmp = tempfile::tempdir().expect("tempdir");
    let hooks = fixture_dir("mail", &hooks_tmp.path().join("pb_hooks"));
    let (server, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_HOOKS_DIR", hooks.to_str().expect("utf-8")));
    let port = server.port;
    ok(call(
        port,
        "PATCH",
        "/api/settings",
        Some(&token),
        Some(&json!({"meta": {"senderAddress": "no-reply@example.com"}, "smtp": {"enabled": true, "host": "127.0.0.1", "port": smtp.port}})),
    ));

    // $app.newMailClient().send(new MailerMessage(…)) goes through onMailerSend.
    ok(call(port, "POST", "/send-custom", None, Some(&json!({"to": "a@example.com", "subject": "Hello"}))));
    let first = smtp.wait_for("a@example.com");
    assert_eq!(first.header("subject"), "[hooked] Hello");
    assert!(first.header("from").contains("app@example.com"), "{}", first.header("from"));

    // A handler that does not call e.next() suppresses it; the send after it goes out, so
    // the capture's order shows the suppressed one never reached the server.
    ok(call(port, "POST", "/send-custom", None, Some(&json!({"to": "skipped@example.com", "subject": "SKIP me"}))));
    ok(call(port, "POST", "/send-custom", None, Some(&json!({"to": "b@example.com", "subject": "After"}))));
    smtp.wait_for("b@example.com");
    let subjects: Vec<String> = smtp.all().iter().map(|m| m.header("subject")).collect();
    assert_eq!(subjects, ["[hooked] Hello", "[hooked] After"]);

    // A system mail: onMailerRecordVerificationSend (with e.record, e.meta) then onMailerSend.
    ok(call(
        port,
        "POST",
        "/api/collections/users/records",
        None,
        Some(&json!({"email": "user@example.com", "password": "a long password", "passwordConfirm": "a long password"})),
    ));
    let r = call(port, "POST", "/api/collections/users/request-verification", None, Some(&json!({"email": "user@example.com"})));
    assert_eq!(r.status, 204);
    let verification = smtp.wait_for("user@example.com");
    assert!(verification.header("subject").starts_with("[hooked] "), "{}", verification.header("subject"));
    assert!(verification.decoded().contains("verify user@example.com token:yes"), "{}", verification.decoded());
}

/// One SSE frame: its event name and data text.
type Frame = (String, String);

/// Opens `GET /api/realtime` on a fresh connection; returns the client id and the frames as
/// they arrive (read on a thread, chunked transfer decoded).
fn open_sse(port: u16) -> (String, std::sync::mpsc::Receiver<Frame>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("request");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).expect("head") > 0, "closed in the head");
        if line == "\r\n" {
            break;
        }
    }
    let (tx, rx) = std::sync::mpsc::channel::<Frame>();
    std::thread::spawn(move || {
        let mut pending = Vec::<u8>::new();
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                return;
            }
            let mut chunk = vec![0u8; n + 2];
            if std::io::Read::read_exact(&mut r, &mut chunk).is_err() {
                return;
            }
            pending.extend_from_slice(&chunk[..n]);
            while let Some(pos) = pending.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = pending.drain(..pos + 2).collect();
                let text = String::from_utf8_lossy(&frame).into_owned();
                let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().to_owned();
                if tx.send((field("event:"), field("data:"))).is_err() {
                    return;
                }
            }
        }
    });
    let (event, data) = rx.recv_timeout(START_TIMEOUT).expect("PB_CONNECT");
    assert_eq!(event, "PB_CONNECT");
    let id = serde_json::from_str::<serde_json::Value>(&data).expect("json")["clientId"].as_str().expect("clientId").to_owned();
    (id, rx)
}

/// The worker a realtime client id names (its first three base-36 characters).
fn owner(client_id: &str) -> u64 {
    client_id.chars().take(3).fold(0, |acc, c| acc * 36 + u64::from(c.to_digit(36).expect("base-36 client id")))
}

#[test]
fn a_custom_topic_reaches_a_subscriber_on_another_worker() {
    let hooks_tmp = tempfile::tempdir().expect("tempdir");
    let hooks = fixture_dir("realtime", &hooks_tmp.path().join("pb_hooks"));
    let (cluster, token) = start_with_superuser(Spawn::cluster(2).env("VAULTBASE_HOOKS_DIR", hooks.to_str().expect("utf-8")));
    let port = cluster.port;
    ok(call(port, "POST", "/api/collections", Some(&token), Some(&json!({"name": "notes", "listRule": "", "createRule": "", "fields": [{"name": "text", "type": "text"}]}))));

    // onRealtimeConnectRequest: a throw refuses the stream with its status.
    let denied = call(port, "GET", "/api/realtime?deny=1", None, None);
    assert_eq!(denied.status, 400);
    assert_eq!(denied.json()["message"], "Connections refused here.");

    let (client_id, frames) = open_sse(port);
    // onRealtimeSubscribeRequest: a throw denies; a handler may rewrite e.subscriptions
    // (`alias` becomes `example`, which the messages below are sent on).
    let refused = call(port, "POST", "/api/realtime", None, Some(&json!({"clientId": client_id, "subscriptions": ["forbidden"]})));
    assert_eq!(refused.status, 403, "{}", String::from_utf8_lossy(&refused.body));
    let subscribed = call(port, "POST", "/api/realtime", None, Some(&json!({"clientId": client_id, "subscriptions": ["alias", "secret", "notes"]})));
    assert_eq!(subscribed.status, 204, "{}", String::from_utf8_lossy(&subscribed.body));
    let mut conns = connection_per_worker(port, 2);
    let other = conns.keys().copied().find(|w| *w != owner(&client_id)).expect("a second worker");
    let conn = conns.get_mut(&other).expect("connection");
    let next_frame = |what: &str| -> (String, serde_json::Value) {
        let (event, data) = frames.recv_timeout(MAIL_WAIT).unwrap_or_else(|_| panic!("{what} arrives"));
        (event, serde_json::from_str(&data).expect("json data"))
    };

    // onRealtimeMessageSend drops `secret`: it is listed and sent, never delivered (the
    // frames after it show it did not come first).
    let r = exchange(conn, "POST", "/notify/secret").expect("notify");
    assert_eq!(r.json(), json!({"sent": 1, "total": 1}));

    // PocketBase's loop, run on the worker that does not hold the stream.
    let r = exchange(conn, "POST", "/notify/example").expect("notify");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"sent": 1, "total": 1}), "the listing includes the other worker's client");
    let (event, data) = next_frame("the message");
    assert_eq!(event, "example");
    assert_eq!(data, json!({"hello": "world", "from": "loop", "seenBy": "hook"}), "changed by onRealtimeMessageSend");

    // broadcast(topic, data): the same, in one call.
    let r = exchange(conn, "POST", "/broadcast/example").expect("broadcast");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (event, data) = next_frame("the broadcast");
    assert_eq!(event, "example");
    assert_eq!(data, json!({"hello": "broadcast", "seenBy": "hook"}));

    // A record event goes through onRealtimeMessageSend too.
    ok(call(port, "POST", "/api/collections/notes/records", None, Some(&json!({"text": "hi"}))));
    let (event, data) = next_frame("the record event");
    assert_eq!(event, "notes");
    assert_eq!(data["action"], "create");
    assert_eq!(data["record"]["text"], "hi");
    assert_eq!(data["seenBy"], "hook");

    // A topic nobody subscribed to: the loop finds the client but sends nothing.
    let r = exchange(conn, "POST", "/notify/elsewhere").expect("notify");
    assert_eq!(r.json(), json!({"sent": 0, "total": 1}));
}
