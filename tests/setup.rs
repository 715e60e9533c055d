//! The first-start setup link: printed only while no superuser exists, good once, through any
//! worker of a cluster.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

/// The token of the setup link the server printed on stdout.
fn printed_token(stdout: &Path) -> String {
    let text = std::fs::read_to_string(stdout).expect("stdout file");
    let at = text.find("/_/#/setup/").unwrap_or_else(|| panic!("no setup link in stdout: {text:?}"));
    text[at + "/_/#/setup/".len()..].chars().take_while(char::is_ascii_hexdigit).collect()
}

fn setup(port: u16, token: &str, email: &str, password: &str, confirm: &str) -> Resp {
    let body = json!({ "token": token, "email": email, "password": password, "passwordConfirm": confirm });
    call(port, "POST", "/_/setup", None, Some(&body))
}

#[test]
fn the_link_creates_the_first_superuser_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("stdout");
    // The test write observer (on with its own variable): the first superuser is a record write too.
    let mut p = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_OBSERVER", "1").stdout_to(&out).start();
    p.wait_healthy();
    let token = printed_token(&out);
    assert_eq!(token.len(), 64);
    assert!(!p.log_text().contains(&token), "the token is not written to the logs");

    let page = get(p.port, "/_/").expect("page");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/html"));

    let bad = setup(p.port, &token, "not-an-email", "short", "other");
    assert_eq!(bad.status, 400);
    let data = &bad.json()["data"];
    assert_eq!(data["email"]["code"], "validation_is_email");
    assert_eq!(data["password"]["code"], "validation_length_out_of_range");
    assert_eq!(data["passwordConfirm"]["code"], "validation_values_mismatch");

    let wrong = setup(p.port, &"0".repeat(64), "first@example.com", "a-good-password", "a-good-password");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["status"], 401);

    let ok = setup(p.port, &token, "first@example.com", "a-good-password", "a-good-password");
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    let login = call(
        p.port,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        None,
        Some(&json!({ "identity": "first@example.com", "password": "a-good-password" })),
    );
    assert_eq!(login.status, 200);
    assert!(login.json()["token"].is_string());

    let again = setup(p.port, &token, "second@example.com", "a-good-password", "a-good-password");
    assert_eq!(again.status, 401, "the link works once");
    let list = call(p.port, "GET", "/api/collections/_superusers/records", login.json()["token"].as_str(), None);
    assert_eq!(list.json()["totalItems"], 1);
    let observed = get(p.port, "/_/test/observed").expect("observed").json();
    let seen: Vec<(String, String, String)> = observed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["stage"].as_str().unwrap_or_default().into(), e["source"].as_str().unwrap_or_default().into(), e["after"]["email"].as_str().unwrap_or_default().into()))
        .collect();
    assert_eq!(seen, vec![("after".to_owned(), "setup".to_owned(), "first@example.com".to_owned())], "the setup write goes through the pipeline once");
}

#[test]
fn no_link_is_printed_when_a_superuser_exists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    create_superuser(&dir, "admin@example.com", "a-good-password");
    let out = tmp.path().join("stdout");
    let mut p = Spawn::serve().dir(&dir).stdout_to(&out).start();
    p.wait_healthy();
    let text = std::fs::read_to_string(&out).expect("stdout");
    assert!(!text.contains("/_/#/setup/"), "{text}");
    let attempt = setup(p.port, &"a".repeat(64), "x@example.com", "a-good-password", "a-good-password");
    assert_eq!(attempt.status, 401);
}

#[test]
fn the_link_printed_by_the_supervisor_works_through_a_worker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("stdout");
    let mut p = Spawn::cluster(2).stdout_to(&out).start();
    p.wait_healthy();
    let token = printed_token(&out);
    let ok = setup(p.port, &token, "first@example.com", "a-good-password", "a-good-password");
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    let again = setup(p.port, &token, "first@example.com", "a-good-password", "a-good-password");
    assert_eq!(again.status, 401);
}
