//! Background jobs: retries with growing gaps, dead jobs and the superuser API
//! (`/api/vb/jobs…`), the transactional outbox (a job enqueued in a transaction that fails
//! never runs), and the cluster guarantee under `kill -9`: every enqueued job completes and no
//! job runs on two workers at once.
//!
//! Jobs are enqueued through the test-only `POST /_/test/jobs` and run by the test handler
//! `test.record` (both on with `VAULTBASE_TEST_ROUTES=1`), which appends a `start` and an `end`
//! (or `fail`) line per attempt to a file in the data dir (`GET /_/test/jobs`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

const POLL_TIMEOUT: Duration = Duration::from_secs(90);

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(what, POLL_TIMEOUT, f)
}

fn enqueue(port: u16, body: Value) -> Vec<String> {
    let r = ok(call(port, "POST", "/_/test/jobs", None, Some(&body)));
    r["ids"].as_array().expect("ids").iter().map(|v| v.as_str().expect("id").to_owned()).collect()
}

fn lines(port: u16) -> Vec<Value> {
    ok(call(port, "GET", "/_/test/jobs", None, None))["lines"].as_array().expect("lines").clone()
}

fn job(port: u16, token: &str, id: &str) -> Value {
    ok(call(port, "GET", &format!("/api/vb/jobs/{id}"), Some(token), None))
}

fn wait_status(port: u16, token: &str, id: &str, status: &str) -> Value {
    poll(&format!("job {id} to be {status}"), || Some(job(port, token, id)).filter(|j| j["status"] == status))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

#[test]
fn failing_jobs_retry_with_growing_gaps_then_die_and_the_api_retries_and_cancels_them() {
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1"));
    let flaky = enqueue(p.port, json!({ "payload": { "tag": "flaky", "failTimes": 2 }, "options": { "backoff": 1000, "maxAttempts": 5 } })).remove(0);
    let doomed = enqueue(p.port, json!({ "payload": { "tag": "doomed", "failTimes": 99 }, "options": { "backoff": 50, "maxAttempts": 2 } })).remove(0);
    let keyed = enqueue(p.port, json!({ "payload": { "tag": "keyed" }, "options": { "key": "once" } })).remove(0);
    assert_eq!(enqueue(p.port, json!({ "payload": { "tag": "keyed" }, "options": { "key": "once" } })), std::slice::from_ref(&keyed), "a key makes the enqueue idempotent");

    let done = wait_status(p.port, &token, &flaky, "done");
    let attempts = done["attempts"].as_array().expect("attempts");
    let outcomes: Vec<_> = attempts.iter().map(|a| a["outcome"].as_str().expect("outcome")).collect();
    assert_eq!(outcomes, ["failed", "failed", "ok"]);
    let started: Vec<i64> = attempts.iter().map(|a| a["started"].as_i64().expect("started")).collect();
    let (gap1, gap2) = (started[1] - started[0], started[2] - started[1]);
    // The gaps grow: each retry is not started before its backoff (1 s, then 2 s, each plus
    // at most a quarter of jitter), a floor the scheduler guarantees however loaded the
    // machine is. (How much longer than the floor a gap runs is timing, not asserted; that the
    // schedule itself doubles whatever the jitter is `retry_delays_double_and_jitter_only_adds`.)
    assert!(gap1 >= 1000 && gap2 >= 2000, "gaps {gap1} ms, {gap2} ms");

    let dead = wait_status(p.port, &token, &doomed, "dead");
    assert_eq!(dead["attempts"].as_array().expect("attempts").len(), 2);
    assert!(dead["lastError"].as_str().expect("error").contains("failing on purpose"), "{dead}");
    wait_status(p.port, &token, &keyed, "done");
    let keyed_runs = lines(p.port).iter().filter(|l| l["payload"]["tag"] == "keyed" && l["stage"] == "end").count();
    assert_eq!(keyed_runs, 1, "the keyed job ran once");

    // The listing filters by name and status.
    let listed = ok(call(p.port, "GET", "/api/vb/jobs?status=dead&name=test.record", Some(&token), None));
    let ids: Vec<_> = listed["items"].as_array().expect("items").iter().map(|j| j["id"].clone()).collect();
    assert_eq!(ids, [json!(doomed)]);
    assert_eq!(call(p.port, "GET", "/api/vb/jobs?status=bogus", Some(&token), None).status, 400);
    assert_eq!(call(p.port, "GET", "/api/vb/jobs", None, None).status, 401, "superusers only");

    // Retry gives a dead job a fresh set of attempts.
    assert_eq!(call(p.port, "POST", &format!("/api/vb/jobs/{doomed}/retry"), Some(&token), None).status, 204);
    poll("the retried job to die again", || {
        let j = job(p.port, &token, &doomed);
        (j["status"] == "dead" && j["attempts"].as_array().map_or(0, Vec::len) == 4).then_some(())
    });

    // Cancel stops a job that has not run; a second cancel has nothing to cancel.
    let later = enqueue(p.port, json!({ "payload": { "tag": "later" }, "options": { "delay": 600000 } })).remove(0);
    assert_eq!(call(p.port, "POST", &format!("/api/vb/jobs/{later}/cancel"), Some(&token), None).status, 204);
    assert_eq!(job(p.port, &token, &later)["status"], "cancelled");
    assert_eq!(call(p.port, "POST", &format!("/api/vb/jobs/{later}/cancel"), Some(&token), None).status, 400);
    assert_eq!(call(p.port, "GET", "/api/vb/jobs/nope", Some(&token), None).status, 404);
}

#[test]
fn a_job_enqueued_in_a_transaction_that_fails_never_runs() {
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1"));
    let r = call(p.port, "POST", "/_/test/jobs", None, Some(&json!({ "payload": { "tag": "rolled" }, "count": 3, "rollback": true })));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    // Positive control: the same enqueue without the failure runs, and it was enqueued after
    // the rolled-back one, so by the time it ran the other would have been due too.
    let control = enqueue(p.port, json!({ "payload": { "tag": "control" } })).remove(0);
    wait_status(p.port, &token, &control, "done");
    let tags: Vec<_> = lines(p.port).iter().map(|l| l["payload"]["tag"].clone()).collect();
    assert!(tags.contains(&json!("control")));
    assert!(!tags.contains(&json!("rolled")), "{tags:?}");
    let all = ok(call(p.port, "GET", "/api/vb/jobs", Some(&token), None));
    assert_eq!(all["totalItems"], 1, "only the control job exists: {all}");
}

/// One attempt of a job, from the test handler's lines.
#[derive(Debug, Default)]
struct Attempt {
    pid: u64,
    start: i64,
    end: Option<i64>,
    ok: bool,
}

#[test]
fn on_a_three_worker_cluster_a_kill_9_loses_no_job_and_no_job_runs_twice_at_once() {
    let spawn = Spawn::cluster(3).env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_JOBS_LEASE_MS", "1500");
    let (p, _token) = start_with_superuser(spawn);
    p.wait_logs(3, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let port = p.port;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..25 {
                    // A request the killed worker had accepted fails; the key makes the retry
                    // safe (it answers the job the first try may have committed).
                    let body = json!({ "payload": { "tag": format!("w{w}-{i}"), "sleepMs": 300 }, "options": { "key": format!("w{w}-{i}") } }).to_string();
                    let id = poll("an enqueue", || {
                        let r = request(port, "POST", "/_/test/jobs", Some(body.as_bytes())).ok().filter(|r| r.status == 200)?;
                        r.json()["ids"][0].as_str().map(str::to_owned)
                    });
                    ids.push(id);
                    std::thread::sleep(Duration::from_millis(20));
                }
                ids
            })
        })
        .collect();

    // Kill a worker while it is running a job: a start line of a worker pid without its end.
    let workers: BTreeSet<u64> = p.worker_pids().iter().map(|p| u64::from(*p)).collect();
    let victim = poll("a worker mid-job", || {
        let ls = lines(port);
        let ended: BTreeSet<(String, u64)> =
            ls.iter().filter(|l| l["stage"] != "start").map(|l| (l["id"].as_str().unwrap_or_default().to_owned(), l["attempt"].as_u64().unwrap_or(0))).collect();
        ls.iter()
            .filter(|l| l["stage"] == "start" && workers.contains(&l["pid"].as_u64().unwrap_or(0)))
            .find(|l| !ended.contains(&(l["id"].as_str().unwrap_or_default().to_owned(), l["attempt"].as_u64().unwrap_or(0))))
            .and_then(|l| l["pid"].as_u64())
    });
    kill(victim as u32, Signal::SIGKILL);
    let killed_at = now_ms();
    let ids: Vec<String> = writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
    assert_eq!(ids.len(), 200);

    let ended = |ls: &[Value]| ls.iter().filter(|l| l["stage"] == "end").map(|l| l["id"].as_str().unwrap_or_default().to_owned()).collect::<BTreeSet<_>>();
    poll("every job to complete", || {
        let done = ended(&lines(port));
        ids.iter().all(|id| done.contains(id)).then_some(())
    });

    let mut per_job: BTreeMap<String, BTreeMap<u64, Attempt>> = BTreeMap::new();
    for l in lines(port) {
        let a = per_job.entry(l["id"].as_str().expect("id").to_owned()).or_default().entry(l["attempt"].as_u64().expect("attempt")).or_default();
        let at = l["at"].as_i64().expect("at");
        match l["stage"].as_str().expect("stage") {
            "start" => {
                a.start = at;
                a.pid = l["pid"].as_u64().expect("pid");
            }
            stage => {
                a.end = Some(at);
                a.ok = stage == "end";
            }
        }
    }
    let mut taken_over = 0;
    for (id, attempts) in &per_job {
        let list: Vec<&Attempt> = attempts.values().collect();
        for pair in list.windows(2) {
            // An attempt without an end died with the victim; it ended at the kill at the latest.
            let first_end = match pair[0].end {
                Some(e) => e,
                None => {
                    assert_eq!(pair[0].pid, victim, "only the victim leaves attempts unfinished: {id} {list:?}");
                    taken_over += 1;
                    killed_at
                }
            };
            assert!(first_end <= pair[1].start, "job {id} ran twice at once: {list:?}");
        }
    }
    // The race happened: jobs the victim held were taken over by the others.
    assert!(taken_over >= 1, "no job was taken over from the killed worker");
    let runners: BTreeSet<u64> = per_job.values().flat_map(|a| a.values().map(|x| x.pid)).collect();
    assert!(runners.len() >= 2, "jobs ran on {runners:?}");
}

#[test]
fn a_drain_lets_short_jobs_finish_and_releases_long_ones_for_the_next_worker() {
    let spawn = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_DRAIN_TIMEOUT", "3");
    let (mut p, _token) = start_with_superuser(spawn);
    let quick = enqueue(p.port, json!({ "payload": { "tag": "quick", "sleepMs": 300 } })).remove(0);
    let long = enqueue(p.port, json!({ "payload": { "tag": "long", "sleepMs": 600000 } })).remove(0);
    poll("both jobs running", || {
        let ls = lines(p.port);
        let started = |id: &str| ls.iter().any(|l| l["id"] == id && l["stage"] == "start");
        (started(&quick) && started(&long)).then_some(())
    });
    p.signal(Signal::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(30)).expect("exit").success());

    let conn = rusqlite::Connection::open(p.dir.join("data.db")).expect("open");
    let status = |id: &str| -> (String, i64) { conn.query_row("SELECT status, attempts FROM _vb_jobs WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).expect("job") };
    assert_eq!(status(&quick), ("done".to_owned(), 1), "a job that fits the drain budget finishes");
    assert_eq!(status(&long), ("queued".to_owned(), 0), "a job that does not is released, its attempt not counted");
    let outcome: String = conn.query_row("SELECT outcome FROM _vb_job_attempts WHERE job = ?1", [&long], |r| r.get(0)).expect("attempt");
    assert_eq!(outcome, "released");
    drop(conn);

    // The next server on the data dir runs the released job.
    let next = Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1").dir(&p.dir).start();
    let mut next = next;
    next.wait_healthy();
    poll("the released job to start again", || {
        lines(next.port).iter().any(|l| l["id"] == long.as_str() && l["stage"] == "start" && l["pid"] == next.pid()).then_some(())
    });
}
