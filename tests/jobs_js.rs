//! Jobs from server-side JavaScript (`tests/hooks/jobs`): `jobsAdd` handlers get the payload,
//! the attempt number and `$app`, and a throw retries; `$jobs.enqueue` with a `key` is
//! idempotent; a job enqueued in a `runInTransaction` that throws, or in a record hook whose
//! save fails, never exists (positive controls beside each); on a two-worker cluster every
//! job runs exactly once although both workers run jobs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const POLL_TIMEOUT: Duration = Duration::from_secs(60);

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(what, POLL_TIMEOUT, f)
}

/// A server with the jobs fixture, a superuser, and the collections the fixture writes.
fn start(spawn: Spawn) -> (Proc, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hooks/jobs").display().to_string();
    let (p, su) = start_with_superuser(spawn.args(&["--hooksDir", &dir]));
    let runs = json!({"name": "runs", "type": "base", "fields": [
        {"name": "job", "type": "text"}, {"name": "tag", "type": "text"},
        {"name": "attempt", "type": "number"}, {"name": "viaGlobal", "type": "text"}]});
    let orders = json!({"name": "orders", "type": "base", "createRule": "", "fields": [{"name": "title", "type": "text", "required": true}]});
    for c in [runs, orders] {
        ok(call(p.port, "POST", "/api/collections", Some(&su), Some(&c)));
    }
    (p, su)
}

fn enqueue(port: u16, body: Value) -> String {
    ok(call(port, "POST", "/enqueue", None, Some(&body)))["id"].as_str().expect("id").to_owned()
}

fn job(port: u16, su: &str, id: &str) -> Value {
    ok(call(port, "GET", &format!("/api/vb/jobs/{id}"), Some(su), None))
}

fn wait_done(port: u16, su: &str, id: &str) -> Value {
    poll(&format!("job {id} to be done"), || Some(job(port, su, id)).filter(|j| j["status"] == "done"))
}

fn runs(port: u16, su: &str) -> Vec<Value> {
    ok(call(port, "GET", "/api/collections/runs/records?perPage=500", Some(su), None))["items"].as_array().expect("items").clone()
}

fn runs_tagged(port: u16, su: &str, tag: &str) -> Vec<Value> {
    runs(port, su).into_iter().filter(|r| r["tag"] == tag).collect()
}

#[test]
fn js_handlers_get_payload_attempt_and_app_retry_on_throw_and_keys_dedupe() {
    let (p, su) = start(Spawn::serve());

    let id = enqueue(p.port, json!({"name": "record", "payload": {"tag": "hello"}}));
    wait_done(p.port, &su, &id);
    let run = runs_tagged(p.port, &su, "hello");
    assert_eq!(run.len(), 1, "{run:?}");
    assert_eq!((&run[0]["job"], &run[0]["attempt"], &run[0]["viaGlobal"]), (&json!(id), &json!(1), &json!("runs")), "payload, attempt, e.app and $app reach the handler");

    // Throwing means retry: two failures, then success on the third attempt.
    let flaky = enqueue(p.port, json!({"name": "flaky", "payload": {}, "options": {"backoff": 50, "maxAttempts": 5}}));
    let done = wait_done(p.port, &su, &flaky);
    let attempts = done["attempts"].as_array().expect("attempts");
    let outcomes: Vec<_> = attempts.iter().map(|a| a["outcome"].as_str().expect("outcome")).collect();
    assert_eq!(outcomes, ["failed", "failed", "ok"], "{done}");
    assert!(attempts[0]["error"].as_str().expect("error").contains("flaky attempt 1"), "{done}");
    assert_eq!(runs_tagged(p.port, &su, "flaky")[0]["attempt"], 3);

    // A key makes the enqueue idempotent: the second answers the first job, which runs once.
    let keyed = json!({"name": "record", "payload": {"tag": "keyed"}, "options": {"key": "order-42"}});
    let first = enqueue(p.port, keyed.clone());
    assert_eq!(enqueue(p.port, keyed), first);
    wait_done(p.port, &su, &first);
    assert_eq!(runs_tagged(p.port, &su, "keyed").len(), 1);

    // Bad options are the caller's error, not a job.
    let r = call(p.port, "POST", "/enqueue", None, Some(&json!({"name": "record", "payload": {}, "options": {"delay": -5}})));
    assert_ne!(r.status, 200);
    let r = call(p.port, "POST", "/enqueue", None, Some(&json!({"name": "record", "payload": {}, "options": {"retries": 3}})));
    assert_ne!(r.status, 200);
}

#[test]
fn a_job_enqueued_in_a_transaction_or_record_hook_exists_only_if_it_commits() {
    let (p, su) = start(Spawn::serve());

    // runInTransaction that throws after the enqueue: the enqueue ran (it answered an id),
    // and the job is gone with the transaction.
    let r = call(p.port, "POST", "/enqueue-tx", None, Some(&json!({"tag": "rolled", "fail": true})));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    let rolled = r.json()["id"].as_str().expect("id").to_owned();
    assert!(!rolled.is_empty(), "the enqueue inside the transaction ran");
    // Positive control: the same without the throw.
    let kept = ok(call(p.port, "POST", "/enqueue-tx", None, Some(&json!({"tag": "kept"}))))["id"].as_str().expect("id").to_owned();
    wait_done(p.port, &su, &kept);
    assert_eq!(call(p.port, "GET", &format!("/api/vb/jobs/{rolled}"), Some(&su), None).status, 404, "the rolled-back job does not exist");

    // A record hook enqueues before the save: a save that fails validation leaves no job, one
    // that commits leaves its job, which runs.
    let r = call(p.port, "POST", "/api/collections/orders/records", None, Some(&json!({"title": ""})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    ok(call(p.port, "POST", "/api/collections/orders/records", None, Some(&json!({"title": "A"}))));
    poll("the order's job to run", || (runs_tagged(p.port, &su, "order:A").len() == 1).then_some(()));

    let all = ok(call(p.port, "GET", "/api/vb/jobs?limit=100", Some(&su), None));
    let tags: BTreeSet<String> = all["items"].as_array().expect("items").iter().map(|j| j["payload"]["tag"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(tags, BTreeSet::from(["kept".to_owned(), "order:A".to_owned()]), "{all}");
    let ran: BTreeSet<String> = runs(p.port, &su).iter().map(|r| r["tag"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(ran, BTreeSet::from(["kept".to_owned(), "order:A".to_owned()]));
}

#[test]
fn on_a_two_worker_cluster_each_js_job_runs_once() {
    const JOBS: usize = 40;
    let (p, su) = start(Spawn::cluster(2));
    let ids: Vec<String> = (0..JOBS).map(|i| enqueue(p.port, json!({"name": "record", "payload": {"tag": format!("c{i}"), "sleepMs": 30}}))).collect();
    let jobs: Vec<Value> = ids.iter().map(|id| wait_done(p.port, &su, id)).collect();

    let mut per_job: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs(p.port, &su) {
        *per_job.entry(r["job"].as_str().expect("job").to_owned()).or_default() += 1;
    }
    assert_eq!(per_job.len(), JOBS, "every job ran");
    assert!(per_job.values().all(|n| *n == 1), "no job ran twice: {per_job:?}");
    assert!(jobs.iter().all(|j| j["attempts"].as_array().map_or(0, Vec::len) == 1), "one attempt each");
    // Both workers ran jobs: the one-run-each above held under a real race for them.
    let workers: BTreeSet<u64> = jobs.iter().map(|j| j["attempts"][0]["worker"].as_u64().expect("worker")).collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
}
