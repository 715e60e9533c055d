//! PocketBase's `rateLimits` against the real binary: settings round trip and validation, each
//! label form limiting what it names and nothing else, audiences, the 429 envelope, and the
//! cluster-exact count (4 workers, fresh connections spread by the kernel, exactly
//! `maxRequests` pass).

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::{json, Value};

const USER_EMAIL: &str = "user@example.com";
const USER_PASSWORD: &str = "user password 1";

fn limits(port: u16, su: &str, rules: Value) -> Value {
    ok(call(port, "PATCH", "/api/settings", Some(su), Some(&json!({"rateLimits": {"enabled": true, "rules": rules}}))))
}

fn status(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> u16 {
    call(port, method, path, token, body).status
}

fn statuses(port: u16, n: usize, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Vec<u16> {
    (0..n).map(|_| status(port, method, path, token, body)).collect()
}

#[test]
fn settings_round_trip_and_validation_match_pocketbase() {
    let (server, su) = start_with_superuser(Spawn::serve());
    let port = server.port;
    let fresh = ok(call(port, "GET", "/api/settings", Some(&su), None));
    assert_eq!(fresh["rateLimits"]["enabled"], false, "off on a fresh instance");
    assert_eq!(fresh["rateLimits"]["rules"].as_array().map(Vec::len), Some(4));

    let saved = limits(port, &su, json!([{"label": "posts:list", "maxRequests": 2, "duration": 60, "audience": "@guest"}]));
    assert_eq!(saved["rateLimits"]["rules"], json!([{"label": "posts:list", "audience": "@guest", "duration": 60, "maxRequests": 2}]));
    assert_eq!(ok(call(port, "GET", "/api/settings", Some(&su), None))["rateLimits"], saved["rateLimits"]);

    let bad = json!({"rateLimits": {"enabled": true, "rules": [
        {"label": "ok:list", "maxRequests": 1, "duration": 1},
        {"label": "bad label!", "maxRequests": 0, "duration": 0, "audience": "x"}]}});
    let r = call(port, "PATCH", "/api/settings", Some(&su), Some(&bad));
    assert_eq!(r.status, 400);
    let rule = &r.json()["data"]["rateLimits"]["rules"]["1"];
    assert_eq!(rule["label"]["code"], "validation_match_invalid");
    assert_eq!(rule["audience"]["code"], "validation_in_invalid");
    assert_eq!(rule["maxRequests"]["code"], "validation_required");
    assert_eq!(rule["duration"]["code"], "validation_required");

    let conflict = json!({"rateLimits": {"enabled": true, "excludedIPs": ["nope"], "rules": [
        {"label": "a:b", "maxRequests": 1, "duration": 1},
        {"label": "a:b", "audience": "@guest", "maxRequests": 1, "duration": 1}]}});
    let r = call(port, "PATCH", "/api/settings", Some(&su), Some(&conflict));
    assert_eq!(r.status, 400);
    let data = &r.json()["data"]["rateLimits"];
    assert_eq!(data["rules"]["1"]["label"]["code"], "validation_conflicting_rate_limit_rule");
    assert_eq!(data["excludedIPs"]["0"]["code"], "validation_invlaid_ip_or_subnet");

    let empty = call(port, "PATCH", "/api/settings", Some(&su), Some(&json!({"rateLimits": {"enabled": true, "rules": []}})));
    assert_eq!(empty.json()["data"]["rateLimits"]["rules"]["code"], "validation_required");
    // Positive control: @guest and @auth may share a label.
    limits(port, &su, json!([{"label": "a:b", "audience": "@guest", "maxRequests": 1, "duration": 1}, {"label": "a:b", "audience": "@auth", "maxRequests": 1, "duration": 1}]));
}

#[test]
fn each_label_form_limits_what_it_names_with_pocketbases_429() {
    let (server, su) = start_with_superuser(Spawn::serve());
    let port = server.port;
    for name in ["posts", "notes"] {
        ok(call(port, "POST", "/api/collections", Some(&su), Some(&json!({
            "name": name, "type": "base", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [{"name": "title", "type": "text"}]}))));
    }
    let list = "/api/collections/posts/records";
    let other_list = "/api/collections/notes/records";

    // A collection tag: posts:list limits listing posts, not listing notes nor creating posts.
    limits(port, &su, json!([{"label": "posts:list", "maxRequests": 2, "duration": 60}]));
    assert_eq!(statuses(port, 3, "GET", list, None, None), [200, 200, 429]);
    let refused = call(port, "GET", list, None, None);
    assert_eq!(refused.json(), json!({"data": {}, "message": "Too Many Requests.", "status": 429}));
    assert_eq!(statuses(port, 3, "GET", other_list, None, None), [200, 200, 200]);
    assert_eq!(status(port, "POST", list, None, Some(&json!({"title": "x"}))), 200);
    assert_eq!(status(port, "GET", list, Some(&su), None), 200, "superusers are never limited");

    // `*:create` counts per collection (saving settings also starts every counter afresh).
    limits(port, &su, json!([{"label": "*:create", "maxRequests": 1, "duration": 60}]));
    let body = json!({"title": "x"});
    assert_eq!(statuses(port, 2, "POST", list, None, Some(&body)), [200, 429]);
    assert_eq!(statuses(port, 2, "POST", other_list, None, Some(&body)), [200, 429]);
    assert_eq!(statuses(port, 3, "GET", list, None, None), [200, 200, 200], "listing is not a create");

    // `users:auth` covers auth-with-password (wrong passwords count too); listing users is not auth.
    limits(port, &su, json!([{"label": "users:auth", "maxRequests": 2, "duration": 60}]));
    let wrong = json!({"identity": "nobody@example.com", "password": "wrong password"});
    assert_eq!(statuses(port, 3, "POST", "/api/collections/users/auth-with-password", None, Some(&wrong)), [400, 400, 429]);
    assert_eq!(statuses(port, 3, "GET", "/api/collections/users/auth-methods", None, None), [200, 200, 200]);

    // A path prefix counts the routes under it (unknown ones too), not routes outside it.
    limits(port, &su, json!([{"label": "/api/collections/notes/", "maxRequests": 2, "duration": 60}]));
    assert_eq!(statuses(port, 3, "GET", "/api/collections/notes/nothing-here", None, None), [404, 404, 429]);
    // A collection route keeps its own counter under whichever rule it falls (as PocketBase).
    assert_eq!(statuses(port, 3, "GET", other_list, None, None), [200, 200, 429]);
    assert_eq!(statuses(port, 3, "GET", list, None, None), [200, 200, 200]);

    // An exact `METHOD /path` limits that method only.
    limits(port, &su, json!([{"label": "POST /api/collections/notes/records", "maxRequests": 1, "duration": 60}]));
    assert_eq!(statuses(port, 2, "POST", other_list, None, Some(&body)), [200, 429]);
    assert_eq!(statuses(port, 3, "GET", other_list, None, None), [200, 200, 200]);

    // An exact path (no trailing slash) is that path only.
    limits(port, &su, json!([{"label": "/api/health", "maxRequests": 1, "duration": 60}]));
    assert_eq!(statuses(port, 2, "GET", "/api/health", None, None), [200, 429]);
    assert_eq!(statuses(port, 2, "GET", "/api/health/", None, None), [404, 404], "not a prefix");
    assert_eq!(statuses(port, 2, "GET", list, None, None), [200, 200]);

    // Switched off: nothing is limited.
    ok(call(port, "PATCH", "/api/settings", Some(&su), Some(&json!({"rateLimits": {"enabled": false}}))));
    assert_eq!(statuses(port, 3, "GET", "/api/health", None, None), [200, 200, 200]);
}

#[test]
fn audiences_pick_guests_or_signed_in_callers() {
    let (server, su) = start_with_superuser(Spawn::serve());
    let port = server.port;
    ok(call(port, "POST", "/api/collections", Some(&su), Some(&json!({
        "name": "posts", "type": "base", "listRule": "", "fields": [{"name": "title", "type": "text"}]}))));
    ok(call(port, "POST", "/api/collections/users/records", Some(&su), Some(&json!({
        "email": USER_EMAIL, "password": USER_PASSWORD, "passwordConfirm": USER_PASSWORD}))));
    let user = ok(call(port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": USER_EMAIL, "password": USER_PASSWORD}))))
        ["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let list = "/api/collections/posts/records";

    limits(port, &su, json!([{"label": "posts:list", "audience": "@guest", "maxRequests": 1, "duration": 60}]));
    assert_eq!(statuses(port, 2, "GET", list, None, None), [200, 429]);
    assert_eq!(statuses(port, 3, "GET", list, Some(&user), None), [200, 200, 200], "@guest rules skip signed-in callers");

    limits(port, &su, json!([{"label": "posts:list", "audience": "@auth", "maxRequests": 1, "duration": 60}]));
    assert_eq!(statuses(port, 2, "GET", list, Some(&user), None), [200, 429]);
    assert_eq!(statuses(port, 3, "GET", list, None, None), [200, 200, 200], "@auth rules skip guests");
}

#[test]
fn a_cluster_lets_exactly_max_requests_through_across_its_workers() {
    let (server, su) = start_with_superuser(Spawn::cluster(4));
    let port = server.port;
    limits(port, &su, json!([{"label": "/_/health", "maxRequests": 10, "duration": 60}]));
    // 8 clients at once, 5 requests each, every one on its own connection: the workers'
    // counts race on the shared buckets.
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (0..5).map(|_| get(port, "/_/health").expect("health")).collect::<Vec<Resp>>()
            })
        })
        .collect();
    let answers: Vec<Resp> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    let passed: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!((passed.len(), refused), (10, 30), "statuses: {:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    // The allowance was shared: the requests that passed were served by several workers (each
    // with its own count they would have let 10 through each).
    let workers: HashSet<u64> = passed.iter().map(|r| r.json()["worker_id"].as_u64().expect("worker_id")).collect();
    assert!(workers.len() >= 2, "all 10 allowed requests went to one worker: {workers:?}");
}

#[test]
fn clients_are_told_apart_through_a_trusted_proxy_and_excluded_ips_pass() {
    let (server, su) = start_with_superuser(Spawn::serve());
    let port = server.port;
    ok(call(port, "PATCH", "/api/settings", Some(&su), Some(&json!({
        "trustedProxy": {"headers": ["X-Forwarded-For"]},
        "rateLimits": {"enabled": true, "excludedIPs": ["192.0.2.0/24"], "rules": [{"label": "/api/health", "maxRequests": 1, "duration": 60}]}}))));
    let from = |ip: &str| call_with(port, "GET", "/api/health", None, None, &[("X-Forwarded-For", ip)]).status;
    assert_eq!([from("198.51.100.1"), from("198.51.100.1")], [200, 429]);
    assert_eq!(from("198.51.100.2"), 200, "another client behind the proxy has its own count");
    assert_eq!([from("2001:db8:1:2::1"), from("2001:db8:1:2::ffff")], [200, 429], "IPv6 counted by /64");
    assert_eq!([from("192.0.2.7"), from("192.0.2.7"), from("192.0.2.7")], [200, 200, 200], "excluded subnet");
}
