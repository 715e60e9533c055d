//! Account flows through the real binary where the SDK scenarios cannot look: a mail server
//! that is down (the answers, the logged failure, and nothing lost in the database), and the
//! abuse limits, which must hold across every worker of a cluster because their counters live
//! in SQLite rather than in one process's memory.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";
const USER_EMAIL: &str = "user@example.com";
const USER_PASSWORD: &str = "user password 1";

fn ok(r: Resp) -> Value {
    assert!(r.status == 200, "status {}: {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

struct App {
    p: Proc,
    su: String,
}

impl App {
    fn start(spawn: Spawn) -> App {
        let tmp = tempfile::tempdir().expect("tempdir");
        create_superuser(&tmp.path().join("data"), EMAIL, PASSWORD);
        let mut p = spawn.in_tempdir(tmp).start();
        p.wait_healthy();
        let su = ok(call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": EMAIL, "password": PASSWORD}))))
            ["token"]
            .as_str()
            .expect("token")
            .to_owned();
        App { p, su }
    }

    fn port(&self) -> u16 {
        self.p.port
    }

    fn su(&self, method: &str, path: &str, body: Value) -> Resp {
        call(self.port(), method, path, Some(&self.su), if body.is_null() { None } else { Some(&body) })
    }

    /// An auth collection `users` with OTP on, and one user; returns the user's id.
    fn users(&self) -> String {
        // Replace the default `users` collection with this test's own.
        assert_eq!(self.su("DELETE", "/api/collections/users", Value::Null).status, 204);
        ok(self.su("POST", "/api/collections", json!({"name": "users", "type": "auth", "otp": {"enabled": true}})));
        let user = ok(self.su(
            "POST",
            "/api/collections/users/records",
            json!({"email": USER_EMAIL, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD}),
        ));
        user["id"].as_str().expect("id").to_owned()
    }

    fn user_token(&self) -> String {
        ok(call(self.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": USER_EMAIL, "password": USER_PASSWORD}))))
            ["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

#[test]
fn a_stopped_mail_server_gives_clear_answers_a_logged_error_and_loses_nothing() {
    let app = App::start(Spawn::serve());
    let id = app.users();
    // SMTP pointed at a loopback port nobody listens on: a mail server that is down.
    let dead = free_port();
    ok(app.su("PATCH", "/api/settings", json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": dead}})));
    let before = ok(app.su("GET", &format!("/api/collections/users/records/{id}"), Value::Null));

    // Requests that must not reveal whether the account exists answer as always…
    let r = call(app.port(), "POST", "/api/collections/users/request-verification", None, Some(&json!({"email": USER_EMAIL})));
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = call(app.port(), "POST", "/api/collections/users/request-password-reset", None, Some(&json!({"email": USER_EMAIL})));
    assert_eq!(r.status, 204);
    let otp = ok(call(app.port(), "POST", "/api/collections/users/request-otp", None, Some(&json!({"email": USER_EMAIL}))));
    assert!(otp["otpId"].is_string());
    // …and the failures are logged, one per mail.
    let failed = app.p.wait_logs(3, Duration::from_secs(60), |l| l["message"] == "sending mail failed");
    assert!(failed.iter().any(|l| l["what"] == "verification"), "{failed:?}");
    assert!(failed.iter().any(|l| l["what"] == "password reset"), "{failed:?}");
    assert!(failed.iter().any(|l| l["what"] == "otp"), "{failed:?}");

    // Where the user asked for mail and may learn the outcome, the answer says what happened.
    let token = app.user_token();
    let r = call(app.port(), "POST", "/api/collections/users/request-email-change", Some(&token), Some(&json!({"newEmail": "new@example.com"})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Failed to request email change.", "PocketBase's message");
    let r = app.su("POST", "/api/settings/test/email", json!({"email": "x@example.com", "template": "verification", "collection": "users"}));
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap_or_default().starts_with("Failed to send the test email"));

    // Nothing changed or was half-done: same email, same verified flag, and the old session works.
    let after = ok(app.su("GET", &format!("/api/collections/users/records/{id}"), Value::Null));
    assert_eq!(after["email"], before["email"]);
    assert_eq!(after["verified"], before["verified"]);
    assert_eq!(after["updated"], before["updated"]);
    let r = call(app.port(), "POST", "/api/collections/users/auth-refresh", Some(&token), None);
    assert_eq!(r.status, 200);
}

/// The configured limit on failed passwords per IP.
const IP_LIMIT: u32 = 10;
const ATTEMPTS: u32 = 50;
const WORKERS: usize = 4;

#[test]
fn fifty_wrong_passwords_from_one_ip_across_four_workers_are_limited_once_not_four_times() {
    let app = App::start(Spawn::cluster(WORKERS));
    app.users();
    ok(app.su(
        "PATCH",
        "/api/settings",
        json!({"accountLimits": {"passwordPerIP": {"max": IP_LIMIT, "duration": 3600}, "passwordPerAccount": {"max": 1000, "duration": 3600}}}),
    ));
    // Each call is a new connection, which the kernel spreads over the workers.
    let mut workers = std::collections::HashSet::new();
    for _ in 0..(WORKERS * 8) {
        workers.insert(ok(get(app.port(), "/_/health").expect("health"))["worker_id"].as_u64());
    }
    assert!(workers.len() > 1, "connections should reach several workers: {workers:?}");

    let mut refused_wrong = 0;
    let mut limited = 0;
    for i in 0..ATTEMPTS {
        // Different accounts, one IP: only the per-IP limit applies.
        let identity = format!("nobody{i}@example.com");
        let r = call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": identity, "password": "wrong"})));
        match r.status {
            400 => refused_wrong += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert_eq!(refused_wrong, IP_LIMIT, "exactly the configured number of attempts got through");
    assert_eq!(limited, ATTEMPTS - IP_LIMIT);
    // Even the right password is refused from this IP until the window ends.
    let r = call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": USER_EMAIL, "password": USER_PASSWORD})));
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["status"], 429);
}

#[test]
fn per_account_password_limit_holds_and_a_right_password_does_not_count() {
    let app = App::start(Spawn::cluster(2));
    app.users();
    ok(app.su("PATCH", "/api/settings", json!({"accountLimits": {"passwordPerAccount": {"max": 3, "duration": 3600}}})));
    // Right passwords in between are refunded: they never use up the allowance.
    for _ in 0..5 {
        app.user_token();
    }
    for _ in 0..3 {
        let r = call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": USER_EMAIL, "password": "wrong password"})));
        assert_eq!(r.status, 400);
    }
    // The same identity in another case is the same account.
    let r = call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "USER@example.com", "password": USER_PASSWORD})));
    assert_eq!(r.status, 429);
    // Other accounts from the same IP are unaffected.
    let r = call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "other@example.com", "password": "wrong password"})));
    assert_eq!(r.status, 400);
}

#[test]
fn mail_requests_are_limited_per_ip_and_silently_per_account() {
    let app = App::start(Spawn::serve());
    app.users();
    ok(app.su(
        "PATCH",
        "/api/settings",
        json!({"accountLimits": {"mailPerIP": {"max": 4, "duration": 3600}, "mailPerAccount": {"max": 1, "duration": 3600}}}),
    ));
    let ask = |email: &str| call(app.port(), "POST", "/api/collections/users/request-password-reset", None, Some(&json!({"email": email}))).status;
    // Per account: over the limit still 204 (an error would reveal the account), just no mail.
    assert_eq!(ask(USER_EMAIL), 204);
    assert_eq!(ask(USER_EMAIL), 204);
    assert_eq!(ask("nobody@example.com"), 204);
    assert_eq!(ask("nobody2@example.com"), 204);
    // Per IP: the fifth request from this address is refused, whichever account it names.
    assert_eq!(ask("nobody3@example.com"), 429);
    // Logged by the request's background mail step, which may finish after the 204: wait for it.
    let throttled = app.p.wait_logs(1, std::time::Duration::from_secs(10), |l| l["message"] == "mail to this account is throttled; not sending");
    assert!(!throttled.is_empty());
}

#[test]
fn an_otp_takes_five_guesses_then_answers_429() {
    let app = App::start(Spawn::serve());
    app.users();
    // No SMTP: the OTP is still stored (and its mail failure logged), which is all this needs.
    let otp = ok(call(app.port(), "POST", "/api/collections/users/request-otp", None, Some(&json!({"email": USER_EMAIL}))));
    let otp_id = otp["otpId"].as_str().expect("otpId").to_owned();
    for _ in 0..5 {
        let r = call(app.port(), "POST", "/api/collections/users/auth-with-otp", None, Some(&json!({"otpId": otp_id, "password": "00000000x"})));
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = call(app.port(), "POST", "/api/collections/users/auth-with-otp", None, Some(&json!({"otpId": otp_id, "password": "00000000x"})));
    assert_eq!(r.status, 429);
}

/// Rows of the account-flow tables that belong to `record` of collection `collection_id`.
fn account_rows(data: &std::path::Path, collection_id: &str, record: Option<&str>) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(data.join("data.db")).expect("open data.db");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    ["_externalAuths", "_otps", "_mfas", "_authOrigins"]
        .iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {t} WHERE collectionRef = ?1 AND (?2 IS NULL OR recordRef = ?2)"),
                    rusqlite::params![collection_id, record],
                    |r| r.get(0),
                )
                .expect("count");
            ((*t).to_owned(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A user with a row in each account-flow table: a login origin, a pending OTP, an MFA
/// session, and a provider link (written straight into the table: no provider is needed to
/// show that nothing removes it).
fn user_with_account_rows(app: &App, email: &str) -> String {
    let user = ok(app.su("POST", "/api/collections/users/records", json!({"email": email, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD})));
    let id = user["id"].as_str().expect("id").to_owned();
    let login = json!({"identity": email, "password": USER_PASSWORD});
    ok(call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&login)));
    ok(call(app.port(), "POST", "/api/collections/users/request-otp", None, Some(&json!({"email": email}))));
    ok(app.su("PATCH", "/api/collections/users", json!({"mfa": {"enabled": true}})));
    let r = call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&login));
    assert_eq!(r.status, 401, "MFA is on: the first factor answers 401 with an mfaId");
    ok(app.su("PATCH", "/api/collections/users", json!({"mfa": {"enabled": false}})));
    let collection_id = user["collectionId"].as_str().expect("collectionId").to_owned();
    let conn = rusqlite::Connection::open(app.p.dir.join("data.db")).expect("open data.db");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn.execute(
        "INSERT INTO _externalAuths (id, collectionRef, recordRef, provider, providerId) VALUES (?1, ?2, ?3, 'oidc', ?4)",
        rusqlite::params![format!("l{}", &id[1..]), collection_id, id, format!("sub-{email}")],
    )
    .expect("insert a link");
    assert_eq!(account_rows(&app.p.dir, &collection_id, Some(&id)).len(), 4, "{:?}", account_rows(&app.p.dir, &collection_id, Some(&id)));
    id
}

#[test]
fn deleting_an_auth_record_or_its_collection_deletes_its_links_otps_mfa_sessions_and_origins() {
    let app = App::start(Spawn::serve());
    let first = app.users();
    let collection_id = ok(app.su("GET", "/api/collections/users", Value::Null))["id"].as_str().expect("id").to_owned();
    ok(call(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": USER_EMAIL, "password": USER_PASSWORD}))));
    let id = user_with_account_rows(&app, "doomed@example.com");

    // A record delete.
    let r = app.su("DELETE", &format!("/api/collections/users/records/{id}"), Value::Null);
    assert_eq!(r.status, 204);
    assert_eq!(account_rows(&app.p.dir, &collection_id, Some(&id)), vec![], "rows left by a deleted record");
    // Nothing else was touched: the other user keeps its login origin.
    assert!(!account_rows(&app.p.dir, &collection_id, Some(&first)).is_empty());

    // A truncated collection, then a deleted one.
    user_with_account_rows(&app, "truncated@example.com");
    assert_eq!(app.su("DELETE", "/api/collections/users/truncate", Value::Null).status, 204);
    assert_eq!(account_rows(&app.p.dir, &collection_id, None), vec![], "rows left by a truncated collection");
    user_with_account_rows(&app, "dropped@example.com");
    assert_eq!(app.su("DELETE", "/api/collections/users", Value::Null).status, 204);
    assert_eq!(account_rows(&app.p.dir, &collection_id, None), vec![], "rows left by a deleted collection");
}

/// A password login as if through a proxy that says the client is `ip`.
fn login_from(app: &App, ip: &str, identity: &str, password: &str) -> u16 {
    let body = json!({"identity": identity, "password": password});
    call_with(app.port(), "POST", "/api/collections/users/auth-with-password", None, Some(&body), &[("X-Forwarded-For", ip)]).status
}

#[test]
fn behind_a_trusted_proxy_clients_are_told_apart_and_nobody_can_lock_the_owner_out() {
    let app = App::start(Spawn::serve());
    app.users();
    ok(app.su(
        "PATCH",
        "/api/settings",
        json!({
            "trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": false},
            "accountLimits": {"passwordPerIP": {"max": 3, "duration": 3600}, "passwordPerAccount": {"max": 2, "duration": 3600}},
        }),
    ));
    // The client IP is the proxy's header (its rightmost address), also in /api/health.
    let health = call_with(app.port(), "GET", "/api/health", Some(&app.su), None, &[("X-Forwarded-For", "198.51.100.1, 203.0.113.50")]);
    assert_eq!(health.json()["data"]["realIP"], "203.0.113.50");

    // Per IP: one client's failures do not refuse another client behind the same proxy.
    for i in 0..3 {
        assert_eq!(login_from(&app, "203.0.113.1", &format!("nobody{i}@example.com"), "wrong"), 400);
    }
    assert_eq!(login_from(&app, "203.0.113.1", "nobody9@example.com", "wrong"), 429);
    assert_eq!(login_from(&app, "203.0.113.2", "nobody9@example.com", "wrong"), 400);

    // Per account: an attacker's wrong guesses lock only the attacker out of the account…
    assert_eq!(login_from(&app, "203.0.113.3", USER_EMAIL, "wrong guess"), 400);
    assert_eq!(login_from(&app, "203.0.113.3", USER_EMAIL, "wrong guess"), 400);
    assert_eq!(login_from(&app, "203.0.113.3", USER_EMAIL, USER_PASSWORD), 429);
    // …while the owner, elsewhere, signs in with the right password.
    assert_eq!(login_from(&app, "198.51.100.7", USER_EMAIL, USER_PASSWORD), 200);

    // useLeftmostIP reads the header from the other end.
    ok(app.su("PATCH", "/api/settings", json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": true}})));
    assert_eq!(login_from(&app, "198.51.100.9, 203.0.113.1", "nobody9@example.com", "wrong"), 400);
    assert_eq!(login_from(&app, "203.0.113.1, 198.51.100.9", "nobody9@example.com", "wrong"), 429);
}

/// Median of `samples`, in seconds.
#[test]
fn an_otp_request_refused_by_the_ip_limit_costs_no_argon2_hash() {
    let app = App::start(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1"));
    app.users();
    ok(app.su("PATCH", "/api/settings", json!({"accountLimits": {"mailPerIP": {"max": 1, "duration": 3600}}})));
    let ask = |endpoint: &str| call(app.port(), "POST", &format!("/api/collections/users/{endpoint}"), None, Some(&json!({"email": USER_EMAIL}))).status;
    let jobs = || call(app.port(), "GET", "/_/test/stats", None, None).json()["passwordJobs"].as_u64().expect("passwordJobs");
    assert_eq!(ask("request-otp"), 200);
    let before = jobs();
    for _ in 0..15 {
        assert_eq!(ask("request-otp"), 429);
    }
    assert_eq!(jobs(), before, "a request refused by the limit started no argon2 computation");
}
