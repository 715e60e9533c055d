//! The auth request hooks of the account flows and OAuth2 against the real binary, with
//! `tests/hooks_auth/`: `onRecordRequestVerificationRequest`, `onRecordConfirmVerificationRequest`,
//! `onRecordRequestPasswordResetRequest`, `onRecordConfirmPasswordResetRequest`,
//! `onRecordRequestEmailChangeRequest`, `onRecordConfirmEmailChangeRequest`,
//! `onRecordAuthWithOAuth2Request` (against a small OAuth2 provider on loopback) and
//! `onRecordAuthRequest` for every way of signing in.
//!
//! Every scenario runs twice, against vaultbase and against PocketBase 0.40.6 with the same
//! hook file, and asserts the same answers, hook logs and stored records on both: what
//! PocketBase does is the expectation. The fixture's mailer hooks log each system mail with its
//! token and end the chain, so no SMTP server is involved and a suppressed mail is a missing
//! log entry.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// How long a mail sent in the background may take to reach the mailer hook.
const MAIL_WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "password123";
const NEW_PASSWORD: &str = "new password 1";

fn hooks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hooks_auth")
}

/// A `pocketbase serve` with the fixture hooks, killed on drop.
struct PocketBase {
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Either server, started with the fixture hooks and a superuser.
struct Server {
    port: u16,
    su: String,
    /// How many entries of the hook log the test has read (the log only grows, so reading it
    /// never races with a hook appending).
    read: std::cell::Cell<usize>,
    _vb: Option<Proc>,
    _pb: Option<PocketBase>,
}

impl Server {
    fn vaultbase() -> Server {
        let dir = hooks_dir().display().to_string();
        let (p, su) = start_with_superuser(Spawn::serve().args(&["--hooksDir", &dir, "--hooksWatch=false"]));
        Server { port: p.port, su, read: Default::default(), _vb: Some(p), _pb: None }
    }

    fn pocketbase() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("pb_data");
        let up = Command::new(pocketbase_binary()).args(["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir"]).arg(&data).output().expect("pocketbase");
        assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
        let port = free_port();
        let child = Command::new(pocketbase_binary())
            .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--automigrate=false", "--hooksWatch=false", "--dir"])
            .arg(&data)
            .arg("--hooksDir")
            .arg(hooks_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pocketbase");
        let pb = PocketBase { child, _tmp: tmp };
        poll_for("pocketbase to come up", START_TIMEOUT, || (get(port, "/api/health").map(|r| r.status).ok() == Some(200)).then_some(()));
        let body = json!({"identity": SU_EMAIL, "password": SU_PASSWORD});
        let su = ok(call(port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&body)))["token"].as_str().expect("token").to_owned();
        Server { port, su, read: Default::default(), _vb: None, _pb: Some(pb) }
    }

    fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        call(self.port, "POST", path, token, Some(&body))
    }

    fn users(&self, action: &str, body: Value) -> Resp {
        self.post(&format!("/api/collections/users/{action}"), None, body)
    }

    fn sign_up(&self, name: &str) -> String {
        let body = json!({"email": format!("{name}@example.com"), "name": name, "password": PASSWORD, "passwordConfirm": PASSWORD});
        ok(self.post("/api/collections/users/records", None, body))["id"].as_str().expect("id").to_owned()
    }

    fn stored(&self, id: &str) -> Value {
        ok(call(self.port, "GET", &format!("/api/collections/users/records/{id}"), Some(&self.su), None))
    }

    fn set(&self, id: &str, fields: Value) {
        ok(call(self.port, "PATCH", &format!("/api/collections/users/records/{id}"), Some(&self.su), Some(&fields)));
    }

    fn login(&self, name: &str, password: &str) -> Resp {
        self.users("auth-with-password", json!({"identity": format!("{name}@example.com"), "password": password}))
    }

    fn token(&self, name: &str, password: &str) -> String {
        ok(self.login(name, password))["token"].as_str().expect("token").to_owned()
    }

    /// What the hooks logged since the last call.
    fn take_log(&self) -> Vec<Value> {
        let log = ok(call(self.port, "GET", "/authlog", None, None)).as_array().cloned().unwrap_or_default();
        let fresh = log.get(self.read.get()..).unwrap_or_default().to_vec();
        self.read.set(log.len());
        fresh
    }

    /// Waits for the mail of `kind` to `to` (the log keeps everything else logged meanwhile).
    fn wait_mail(&self, kind: &str, to: &str) -> (Vec<Value>, Value) {
        let mut seen = Vec::new();
        let mail = poll_for(&format!("a {kind} mail to {to}"), MAIL_WAIT, || {
            seen.extend(self.take_log());
            seen.iter().find(|m| m["mail"] == kind && m["to"] == json!([to])).cloned()
        });
        (seen, mail)
    }
}

/// The entries a hook (not a mailer hook) logged.
fn hook_entries(log: &[Value]) -> Vec<Value> {
    log.iter().filter(|e| e.get("hook").is_some()).cloned().collect()
}

/// The entries the handler of `hook` logged.
fn entries_of(log: &[Value], hook: &str) -> Vec<Value> {
    log.iter().filter(|e| e["hook"] == hook).cloned().collect()
}

fn mails(log: &[Value]) -> Vec<Value> {
    log.iter().filter(|e| e.get("mail").is_some()).cloned().collect()
}

fn refused() -> Value {
    json!({"data": {}, "message": "Refused by hook.", "status": 403})
}

/// An empty 200: a chain a handler ended without `e.next()` and without writing.
fn assert_empty_200(r: &Resp) {
    assert_eq!((r.status, r.body.len()), (200, 0), "{}", String::from_utf8_lossy(&r.body));
}

/// The token of a `kind` mail to `name`'s account, asked for with `action` while the record is
/// named "plain" (so the request hook lets it through), then given back its `name`.
fn mailed_token(s: &Server, id: &str, name: &str, action: &str, kind: &str) -> String {
    s.set(id, json!({"name": "plain"}));
    assert_eq!(s.users(action, json!({"email": format!("{name}@example.com")})).status, 204);
    let (_, mail) = s.wait_mail(kind, &format!("{name}@example.com"));
    s.set(id, json!({"name": name}));
    s.take_log();
    mail["token"].as_str().expect("token").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Verification

fn request_verification(s: &Server) {
    let plain = s.sign_up("plain");
    s.sign_up("refuse");
    s.sign_up("skip");
    let verified = s.sign_up("verified");
    s.set(&verified, json!({"verified": true}));
    let request = |name: &str| s.users("request-verification", json!({"email": format!("{name}@example.com")}));

    // A handler that throws is the answer; nothing is mailed.
    assert_eq!(request("refuse").json(), refused());
    // A handler that returns without e.next(): an empty 200 and no mail.
    assert_empty_200(&request("skip"));
    // An already verified record: the hook sees it, the default action answers 204, no mail.
    assert_eq!(request("verified").status, 204);
    // An unknown address: 204 and the hook never runs.
    assert_eq!(request("ghost").status, 204);
    // e.next(): e.record is the record with that address; code after e.next() runs; the mail
    // goes out. It is also the positive control for the mails the cases above did not send.
    assert_eq!(request("plain").status, 204);
    let (log, mail) = s.wait_mail("verification", "plain@example.com");
    assert_eq!(mail["record"], json!(plain));
    assert_eq!(mails(&log).len(), 1, "only the one mail: {log:?}");
    let entries = hook_entries(&log);
    let seen: Vec<(Value, Value, Value)> = entries.iter().map(|e| (e["email"].clone(), e["verified"].clone(), e["body"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (json!("refuse@example.com"), json!(false), json!({"email": "refuse@example.com"})),
            (json!("skip@example.com"), json!(false), json!({"email": "skip@example.com"})),
            (json!("verified@example.com"), json!(true), json!({"email": "verified@example.com"})),
            (json!("plain@example.com"), json!(false), json!({"email": "plain@example.com"})),
        ]
    );
    assert!(entries.iter().all(|e| e["collection"] == "users"), "{entries:?}");
}

fn confirm_verification(s: &Server) {
    let ids: Vec<String> = ["refuse", "skip", "touch"].iter().map(|n| s.sign_up(n)).collect();
    let tokens: Vec<String> = ["refuse", "skip", "touch"].iter().zip(&ids).map(|(n, id)| mailed_token(s, id, n, "request-verification", "verification")).collect();
    let confirm = |token: &str| s.users("confirm-verification", json!({"token": token}));

    assert_eq!(confirm(&tokens[0]).json(), refused());
    assert_eq!(s.stored(&ids[0])["verified"], false);
    assert_empty_200(&confirm(&tokens[1]));
    assert_eq!(s.stored(&ids[1])["verified"], false);
    // A change a handler made to e.record before e.next() is stored with the verified state,
    // and after e.next() e.record is verified.
    assert_eq!(confirm(&tokens[2]).status, 204);
    let touched = s.stored(&ids[2]);
    assert_eq!((touched["name"].clone(), touched["verified"].clone()), (json!("touched"), json!(true)));
    let log = hook_entries(&s.take_log());
    let seen: Vec<(Value, Value, Value)> = log.iter().map(|e| (e["record"].clone(), e["verified"].clone(), e["after"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (json!(ids[0]), json!(false), Value::Null),
            (json!(ids[1]), json!(false), Value::Null),
            (json!(ids[2]), json!(false), Value::Null),
            (Value::Null, json!(true), json!(true)),
        ]
    );
    // After e.next() the record is stored verified.
    assert_eq!(log[3]["stored"], true);
    // The same token once the record is verified: the hook runs, nothing is saved (PocketBase
    // saves only an unverified record), so its change is not stored.
    s.set(&ids[2], json!({"name": "touch"}));
    assert_eq!(confirm(&tokens[2]).status, 204);
    assert_eq!(s.stored(&ids[2])["name"], "touch");
    let log = hook_entries(&s.take_log());
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["verified"], true);
    // A change that does not validate fails the confirmation with the field's error, and
    // nothing is stored: the record stays unverified.
    let invalid = s.sign_up("invalid");
    let token = mailed_token(s, &invalid, "invalid", "request-verification", "verification");
    let r = confirm(&token).json();
    assert_eq!((r["status"].clone(), r["message"].clone()), (json!(400), json!("An error occurred while saving the verified state.")));
    // (PocketBase also names the limit under `params`, as it does for every field error.)
    assert_eq!(
        (r["data"]["name"]["code"].clone(), r["data"]["name"]["message"].clone()),
        (json!("validation_max_text_constraint"), json!("Must be no more than 255 character(s)."))
    );
    let stored = s.stored(&invalid);
    assert_eq!((stored["name"].clone(), stored["verified"].clone()), (json!("invalid"), json!(false)));
}

#[test]
fn request_verification_hook_vaultbase() {
    request_verification(&Server::vaultbase());
}

#[test]
fn request_verification_hook_pocketbase() {
    request_verification(&Server::pocketbase());
}

#[test]
fn confirm_verification_hook_vaultbase() {
    confirm_verification(&Server::vaultbase());
}

#[test]
fn confirm_verification_hook_pocketbase() {
    confirm_verification(&Server::pocketbase());
}

// ---------------------------------------------------------------------------------------------
// Password reset

fn request_password_reset(s: &Server) {
    let plain = s.sign_up("plain");
    s.sign_up("refuse");
    s.sign_up("skip");
    let request = |name: &str| s.users("request-password-reset", json!({"email": format!("{name}@example.com")}));
    assert_eq!(request("refuse").json(), refused());
    assert_empty_200(&request("skip"));
    assert_eq!(request("ghost").status, 204);
    assert_eq!(request("plain").status, 204);
    let (log, mail) = s.wait_mail("passwordReset", "plain@example.com");
    assert_eq!(mail["record"], json!(plain));
    assert_eq!(mails(&log).len(), 1, "only the one mail: {log:?}");
    let seen: Vec<(Value, Value)> = hook_entries(&log).iter().map(|e| (e["email"].clone(), e["collection"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (json!("refuse@example.com"), json!("users")),
            (json!("skip@example.com"), json!("users")),
            (json!("plain@example.com"), json!("users")),
        ]
    );
    // A handler that throws after e.next(): the default action's 204 was written, so it
    // stands, and the mail goes out.
    let late = s.sign_up("late");
    s.set(&late, json!({"name": "late"}));
    assert_eq!(request("late").status, 204);
    let (_, mail) = s.wait_mail("passwordReset", "late@example.com");
    assert_eq!(mail["record"], json!(late));
}

fn confirm_password_reset(s: &Server) {
    let names = ["refuse", "skip", "touch"];
    let ids: Vec<String> = names.iter().map(|n| s.sign_up(n)).collect();
    let tokens: Vec<String> = names.iter().zip(&ids).map(|(n, id)| mailed_token(s, id, n, "request-password-reset", "passwordReset")).collect();
    let confirm = |token: &str| s.users("confirm-password-reset", json!({"token": token, "password": NEW_PASSWORD, "passwordConfirm": NEW_PASSWORD}));

    assert_eq!(confirm(&tokens[0]).json(), refused());
    assert_eq!(s.login("refuse", NEW_PASSWORD).status, 400);
    assert_eq!(s.login("refuse", PASSWORD).status, 200);
    assert_empty_200(&confirm(&tokens[1]));
    assert_eq!(s.login("skip", NEW_PASSWORD).status, 400);
    // e.next(): the new password works, the record is verified (the token's address is still
    // its own) and what the handler changed on e.record is stored with them.
    assert_eq!(confirm(&tokens[2]).status, 204);
    assert_eq!(s.login("touch", NEW_PASSWORD).status, 200);
    let touched = s.stored(&ids[2]);
    assert_eq!((touched["name"].clone(), touched["verified"].clone()), (json!("touched"), json!(true)));
    let log: Vec<Value> = hook_entries(&s.take_log()).into_iter().filter(|e| e["hook"] == "confirmPasswordReset").collect();
    let seen: Vec<(Value, Value)> = log.iter().map(|e| (e["record"].clone(), e["body"].clone())).collect();
    let body = json!(["password", "passwordConfirm", "token"]);
    assert_eq!(seen, vec![(json!(ids[0]), body.clone()), (json!(ids[1]), body.clone()), (json!(ids[2]), body), (Value::Null, Value::Null)]);
    assert_eq!((log[3]["after"].clone(), log[3]["verified"].clone()), (json!(true), json!(true)));
    // After e.next() the new password is stored, and e.record has it.
    assert_eq!((log[3]["newPassword"].clone(), log[3]["stored"].clone()), (json!(true), json!(true)));
}

#[test]
fn password_reset_request_hook_vaultbase() {
    request_password_reset(&Server::vaultbase());
}

#[test]
fn password_reset_request_hook_pocketbase() {
    request_password_reset(&Server::pocketbase());
}

#[test]
fn password_reset_confirm_hook_vaultbase() {
    confirm_password_reset(&Server::vaultbase());
}

#[test]
fn password_reset_confirm_hook_pocketbase() {
    confirm_password_reset(&Server::pocketbase());
}

// ---------------------------------------------------------------------------------------------
// Email change

fn email_change(s: &Server) {
    let names = ["plain", "refuse", "skip", "touch"];
    let ids: Vec<String> = names.iter().map(|n| s.sign_up(n)).collect();
    let request = |name: &str, new_email: &str| s.post("/api/collections/users/request-email-change", Some(&s.token(name, PASSWORD)), json!({"newEmail": new_email}));

    // The request hook: e.record is the signed-in record, e.newEmail the address asked for. The
    // mail is sent before the answer, so a missing mail is known at once.
    assert_eq!(request("refuse", "new-refuse@example.com").json(), refused());
    assert_empty_200(&request("skip", "new-skip@example.com"));
    let log = s.take_log();
    assert!(mails(&log).is_empty(), "{log:?}");
    let seen: Vec<(Value, Value, Value)> = entries_of(&log, "requestEmailChange").iter().map(|e| (e["record"].clone(), e["auth"].clone(), e["newEmail"].clone())).collect();
    assert_eq!(
        seen,
        vec![(json!(ids[1]), json!(ids[1]), json!("new-refuse@example.com")), (json!(ids[2]), json!(ids[2]), json!("new-skip@example.com"))]
    );
    // e.next() mails e.newEmail; a handler may replace it, and the token names the new one.
    assert_eq!(request("plain", "new-plain@example.com").status, 204);
    let sent = mails(&s.take_log());
    assert_eq!((sent.len(), sent[0]["to"].clone(), sent[0]["newEmail"].clone()), (1, json!(["new-plain@example.com"]), json!("new-plain@example.com")));
    assert_eq!(request("plain", "swap-me@example.com").status, 204);
    let sent = mails(&s.take_log());
    assert_eq!((sent.len(), sent[0]["to"].clone(), sent[0]["newEmail"].clone()), (1, json!(["swapped@example.com"]), json!("swapped@example.com")));

    // The confirm hook: tokens asked for while each record was named "plain".
    let mut tokens = Vec::new();
    for (name, id) in names.iter().zip(&ids).skip(1) {
        s.set(id, json!({"name": "plain"}));
        assert_eq!(request(name, &format!("changed-{name}@example.com")).status, 204);
        tokens.push(mails(&s.take_log())[0]["token"].as_str().expect("token").to_owned());
        s.set(id, json!({"name": name}));
    }
    let confirm = |token: &str| s.users("confirm-email-change", json!({"token": token, "password": PASSWORD}));
    assert_eq!(confirm(&tokens[0]).json(), refused());
    assert_eq!(s.stored(&ids[1])["email"], "refuse@example.com");
    assert_empty_200(&confirm(&tokens[1]));
    assert_eq!(s.stored(&ids[2])["email"], "skip@example.com");
    assert_eq!(confirm(&tokens[2]).status, 204);
    let touched = s.stored(&ids[3]);
    assert_eq!(
        (touched["name"].clone(), touched["email"].clone(), touched["verified"].clone()),
        (json!("touched"), json!("changed-touch@example.com"), json!(true))
    );
    let log = entries_of(&s.take_log(), "confirmEmailChange");
    let seen: Vec<(Value, Value, Value)> = log.iter().map(|e| (e["record"].clone(), e["email"].clone(), e["newEmail"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (json!(ids[1]), json!("refuse@example.com"), json!("changed-refuse@example.com")),
            (json!(ids[2]), json!("skip@example.com"), json!("changed-skip@example.com")),
            (json!(ids[3]), json!("touch@example.com"), json!("changed-touch@example.com")),
            (Value::Null, json!("changed-touch@example.com"), Value::Null),
        ]
    );
    assert_eq!(log[3]["verified"], true);
    // After e.next() the new email is stored.
    assert_eq!(log[3]["stored"], json!("changed-touch@example.com"));
}

#[test]
fn email_change_hooks_vaultbase() {
    email_change(&Server::vaultbase());
}

#[test]
fn email_change_hooks_pocketbase() {
    email_change(&Server::pocketbase());
}

// ---------------------------------------------------------------------------------------------
// Mail quotas and request hooks

/// A request a hook refuses (or ends without e.next()) mails nothing and uses up none of the
/// account's mails: PocketBase starts its 2-minute resend throttle of verification and reset
/// mails in the default action (and counts stored OTPs), and checks it before the hook.
fn mail_quota(s: &Server) {
    if s._vb.is_some() {
        // The same allowance as PocketBase's resend throttle: one mail per 2 minutes.
        ok(call(s.port, "PATCH", "/api/settings", Some(&s.su), Some(&json!({"accountLimits": {"mailPerAccount": {"max": 1, "duration": 120}}}))));
    }
    ok(call(s.port, "PATCH", "/api/collections/users", Some(&s.su), Some(&json!({"otp": {"enabled": true}}))));
    let id = s.sign_up("quota");
    s.take_log();
    for (action, kind, hook) in [("request-verification", "verification", "requestVerification"), ("request-password-reset", "passwordReset", "requestPasswordReset"), ("request-otp", "otp", "requestOTP")] {
        let request = || s.users(action, json!({"email": "quota@example.com"}));
        s.set(&id, json!({"name": "refuse"}));
        assert_eq!(request().json(), refused(), "{action}");
        assert_eq!(request().json(), refused(), "{action}");
        s.set(&id, json!({"name": "skip"}));
        assert_empty_200(&request());
        // The first request the hook lets through still gets its mail.
        s.set(&id, json!({"name": "plain"}));
        assert_eq!(request().status, if kind == "otp" { 200 } else { 204 }, "{action}");
        let (log, mail) = s.wait_mail(kind, "quota@example.com");
        assert_eq!(mail["record"], json!(id));
        assert_eq!((entries_of(&log, hook).len(), mails(&log).len()), (4, 1), "{action}: {log:?}");
        if kind == "otp" {
            // PocketBase's OTP allowance is 10 stored codes, vaultbase's is mailPerAccount:
            // they part from here, and only vaultbase's is used up by that one mail.
            if s._vb.is_some() {
                // The hook still runs and the answer looks the same, but no code goes out.
                let throttled = request();
                assert!(throttled.status == 200 && throttled.json()["otpId"].is_string(), "{throttled:?}");
                // Positive control: another account's OTP, asked for after it, is mailed.
                s.sign_up("quota2");
                assert_eq!(s.users(action, json!({"email": "quota2@example.com"})).status, 200);
                let (log, _) = s.wait_mail(kind, "quota2@example.com");
                let to_quota = log.iter().filter(|m| m["mail"] == kind && m["to"] == json!(["quota@example.com"])).count();
                assert_eq!((to_quota, entries_of(&log, hook).len()), (0, 2), "{log:?}");
            }
            continue;
        }
        // That mail used the allowance up: the next request answers 204 before the hook and
        // sends nothing (a mail would follow the hook's log entry).
        assert_eq!(request().status, 204, "{action}");
        assert_eq!(s.take_log(), Vec::<Value>::new(), "{action}");
    }
}

#[test]
fn mail_quota_and_request_hooks_vaultbase() {
    mail_quota(&Server::vaultbase());
}

#[test]
fn mail_quota_and_request_hooks_pocketbase() {
    mail_quota(&Server::pocketbase());
}

// ---------------------------------------------------------------------------------------------
// OAuth2 and onRecordAuthRequest

/// An OAuth2 provider on loopback: any code is exchanged for a token, and the user info is
/// whatever the test put in `user` last.
struct Provider {
    url: String,
    user: Arc<Mutex<Value>>,
}

impl Provider {
    fn start() -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind provider");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let user: Arc<Mutex<Value>> = Arc::default();
        let shared = user.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let user = shared.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = header.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let answer = if path.starts_with("/token") {
                        json!({"access_token": "access", "token_type": "Bearer", "expires_in": 3600})
                    } else {
                        user.lock().expect("lock").clone()
                    }
                    .to_string();
                    let mut out = conn;
                    let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len());
                });
            }
        });
        Provider { url, user }
    }

    fn signs_in(&self, email: &str) {
        *self.user.lock().expect("lock") = json!({"sub": format!("{email}-sub"), "email": email, "email_verified": true, "name": "Provider Name"});
    }
}

fn oauth2_and_auth_methods(s: &Server) {
    let idp = Provider::start();
    let providers = json!([{"name": "oidc", "clientId": "cid", "clientSecret": "csecret",
        "authURL": format!("{}/authorize", idp.url), "tokenURL": format!("{}/token", idp.url), "userInfoURL": format!("{}/userinfo", idp.url)}]);
    ok(call(s.port, "PATCH", "/api/collections/users", Some(&s.su), Some(&json!({"oauth2": {"enabled": true, "providers": providers}, "otp": {"enabled": true}}))));
    let existing = s.sign_up("existing");
    // Verified, so signing in with the provider's address keeps its password.
    s.set(&existing, json!({"verified": true}));
    s.take_log();
    let oauth = |create: Option<Value>| {
        let mut body = json!({"provider": "oidc", "code": "code", "codeVerifier": "v".repeat(43), "redirectURL": "http://127.0.0.1/cb"});
        if let Some(c) = create {
            body["createData"] = c;
        }
        s.users("auth-with-oauth2", body)
    };
    let count_users = || ok(call(s.port, "GET", "/api/collections/users/records?perPage=100", Some(&s.su), None))["totalItems"].clone();
    let before = count_users();

    // A throw refuses the sign-in; a chain ended without e.next() answers an empty 200; neither
    // creates a record.
    idp.signs_in("refuse-oauth@example.com");
    assert_eq!(oauth(Some(json!({"name": "client"}))).json(), refused());
    idp.signs_in("skip-oauth@example.com");
    assert_empty_200(&oauth(None));
    assert_eq!(count_users(), before);
    let log = hook_entries(&s.take_log());
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["createData"], json!({"name": "client"}));
    assert_eq!(log[1]["createData"], Value::Null);

    // A sign-up: e.oAuth2User is what the provider said, e.isNewRecord, no e.record; the
    // handler's e.createData is what the new record is made from.
    idp.signs_in("new-oauth@example.com");
    let r = ok(oauth(Some(json!({"name": "client"}))));
    assert_eq!((r["record"]["name"].clone(), r["record"]["email"].clone(), r["meta"]["isNew"].clone()), (json!("from hook"), json!("new-oauth@example.com"), json!(true)));
    let created = r["record"]["id"].clone();
    let log = hook_entries(&s.take_log());
    assert_eq!(
        log[0],
        json!({"hook": "authWithOAuth2", "collection": "users", "provider": "oidc",
            "user": {"id": "new-oauth@example.com-sub", "email": "new-oauth@example.com", "name": "Provider Name",
                "rawUser": {"sub": "new-oauth@example.com-sub", "email": "new-oauth@example.com", "email_verified": true, "name": "Provider Name"}},
            "isNewRecord": true, "record": null, "createData": {"name": "client"}})
    );
    // onRecordAuthRequest shaped the answer, with authMethod "oauth2", inside e.next(): then
    // the code after e.next() saw the new record as stored (verified: the provider verified
    // its address), e.isNewRecord still true.
    assert_eq!((log[1]["hook"].clone(), log[1]["authMethod"].clone(), log[1]["record"].clone(), log[1]["token"].clone()), (json!("auth"), json!("oauth2"), created.clone(), json!(true)));
    assert_eq!(
        log[2],
        json!({"hook": "authWithOAuth2", "after": true, "isNewRecord": true, "record": created, "name": "from hook", "email": "new-oauth@example.com", "verified": true})
    );
    assert_eq!(log.len(), 3, "{log:?}");
    // The same identity again: its linked record. A record with the provider's verified
    // address: that one.
    assert_eq!(ok(oauth(None))["record"]["id"], created);
    idp.signs_in("existing@example.com");
    assert_eq!(ok(oauth(None))["record"]["id"], json!(existing));
    let log = hook_entries(&s.take_log());
    let of = |after: bool| -> Vec<(Value, Value)> {
        log.iter().filter(|e| e["hook"] == "authWithOAuth2" && e.get("after").is_some() == after).map(|e| (e["isNewRecord"].clone(), e["record"].clone())).collect()
    };
    assert_eq!(of(false), vec![(json!(false), created.clone()), (json!(false), json!(existing))]);
    assert_eq!(of(true), of(false));

    // A handler that changes the new user after e.next() with $app.save: stored, while the
    // answer (written inside e.next()) shows the record as the sign-up made it.
    idp.signs_in("modify-oauth@example.com");
    let r = ok(oauth(None));
    assert_eq!((r["record"]["name"].clone(), r["meta"]["isNew"].clone()), (json!("from hook"), json!(true)));
    let modified = r["record"]["id"].as_str().expect("id").to_owned();
    assert_eq!(s.stored(&modified)["name"], json!("changed after next"));
    let after = entries_of(&s.take_log(), "authWithOAuth2").into_iter().find(|e| e.get("after").is_some()).expect("logged after e.next()");
    assert_eq!((after["record"].clone(), after["isNewRecord"].clone()), (json!(modified), json!(true)));
    // Signing in again finds the changed record.
    assert_eq!(ok(oauth(None))["record"]["name"], json!("changed after next"));
    s.take_log();

    // onRecordAuthRequest for every other way in: password, refresh and impersonate (both with
    // an empty authMethod, as in PocketBase) and OTP.
    let token = s.token("existing", PASSWORD);
    assert_eq!(s.post("/api/collections/users/auth-refresh", Some(&token), json!({})).status, 200);
    let r = ok(s.post(&format!("/api/collections/users/impersonate/{existing}"), Some(&s.su), json!({})));
    assert!(r["token"].is_string(), "{r}");
    let otp = ok(s.users("request-otp", json!({"email": "existing@example.com"})));
    let (mut log, mail) = s.wait_mail("otp", "existing@example.com");
    assert_eq!(mail["otpId"], otp["otpId"]);
    ok(s.users("auth-with-otp", json!({"otpId": otp["otpId"], "password": mail["password"]})));
    log.extend(s.take_log());
    let methods: Vec<(Value, Value)> = entries_of(&log, "auth").iter().map(|e| (e["authMethod"].clone(), e["record"].clone())).collect();
    let via = |m: &str| (json!(m), json!(existing));
    assert_eq!(methods, vec![via("password"), via(""), via(""), via("otp")]);
    // A password sign-in and a refresh: onRecordAuthRequest ran inside e.next().
    let order: Vec<(Value, Value)> = log.iter().filter(|e| e.get("hook").is_some()).take(4).map(|e| (e["hook"].clone(), e["authMethod"].clone())).collect();
    assert_eq!(
        order,
        vec![(json!("auth"), json!("password")), (json!("authWithPassword"), Value::Null), (json!("auth"), json!("")), (json!("authRefresh"), Value::Null)]
    );
    // The OTP sign-in: onRecordAuthRequest ran inside e.next(), which spent the OTP.
    let otp_log: Vec<Value> = log.iter().filter(|e| e["hook"] == "authWithOTP" || e["authMethod"] == "otp").cloned().collect();
    assert_eq!(
        otp_log,
        vec![
            json!({"hook": "authWithOTP", "record": existing, "otp": otp["otpId"]}),
            json!({"hook": "auth", "collection": "users", "record": existing, "authMethod": "otp", "token": true}),
            json!({"hook": "authWithOTP", "after": true, "record": existing, "spent": true}),
        ]
    );

    // MFA: the first factor fires onRecordAuthRequest, whose default action answers 401
    // {mfaId} and throws, so the code after e.next() in the password hook never runs; the
    // second factor signs in.
    ok(call(s.port, "PATCH", "/api/collections/users", Some(&s.su), Some(&json!({"mfa": {"enabled": true}}))));
    s.take_log();
    let r = s.login("existing", PASSWORD);
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    let mfa_id = r.json()["mfaId"].clone();
    assert!(mfa_id.is_string(), "{mfa_id}");
    let log: Vec<(Value, Value)> = hook_entries(&s.take_log()).iter().map(|e| (e["hook"].clone(), e["authMethod"].clone())).collect();
    assert_eq!(log, vec![(json!("auth"), json!("password"))]);
    let otp = ok(s.users("request-otp", json!({"email": "existing@example.com"})));
    let (_, mail) = s.wait_mail("otp", "existing@example.com");
    let r = ok(s.users("auth-with-otp", json!({"otpId": otp["otpId"], "password": mail["password"], "mfaId": mfa_id})));
    assert_eq!(r["record"]["id"], json!(existing));
}

#[test]
fn oauth2_and_auth_request_hooks_vaultbase() {
    oauth2_and_auth_methods(&Server::vaultbase());
}

#[test]
fn oauth2_and_auth_request_hooks_pocketbase() {
    oauth2_and_auth_methods(&Server::pocketbase());
}
