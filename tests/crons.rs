//! Cron jobs: `/api/crons` as PocketBase 0.40.6 answers it, manual runs and the run log, the
//! system cleanup jobs doing their work, and the cluster guarantee — each scheduled slot runs
//! once cluster-wide, also while a worker is killed and respawned.
//!
//! The cluster test uses the test-only probe job (`__vbTestProbe__`, on with
//! `VAULTBASE_TEST_ROUTES=1`), which appends `<slot> <worker> <pid>` to `cron-probe.log` in the
//! data dir, and `VAULTBASE_TEST_CRON_SECOND_TICKS=1`, which makes every second a slot.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PROBE: &str = "__vbTestProbe__";
const POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// PocketBase 0.40.6's list on a fresh server, in its order.
fn pocketbase_jobs() -> Value {
    json!([
        {"id": "__pbDBOptimize__", "expression": "0 0 * * *"},
        {"id": "__pbMFACleanup__", "expression": "0 * * * *"},
        {"id": "__pbOTPCleanup__", "expression": "0 * * * *"},
        {"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"},
    ])
}

fn db(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn
}

/// Polls `f` until it answers Some, or fails after [`POLL_TIMEOUT`] with `what`.
fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(what, POLL_TIMEOUT, f)
}

fn runs(port: u16, token: &str, job: &str) -> Vec<Value> {
    let r = ok(call(port, "GET", &format!("/api/crons/{job}/runs?limit=500"), Some(token), None));
    r["items"].as_array().expect("items").clone()
}

/// `(slot, worker, pid)` of each probe line; `slot` is None for a manual run.
fn probe_lines(dir: &Path) -> Vec<(Option<i64>, u64, u64)> {
    let text = std::fs::read_to_string(dir.join("cron-probe.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 3, "a whole line: {l:?}");
            (parts[0].parse().ok(), parts[1].parse().expect("worker"), parts[2].parse().expect("pid"))
        })
        .collect()
}

#[test]
fn the_listing_matches_pocketbase_and_needs_a_superuser() {
    let (p, token) = start_with_superuser(Spawn::serve());
    let listed = ok(call(p.port, "GET", "/api/crons", Some(&token), None));
    assert_eq!(listed, pocketbase_jobs());

    let guest = call(p.port, "GET", "/api/crons", None, None);
    assert_eq!(guest.status, 401);
    assert_eq!(guest.json()["message"], "The request requires valid record authorization token.");
    let guest_run = call(p.port, "POST", "/api/crons/__pbDBOptimize__", None, None);
    assert_eq!(guest_run.status, 401);

    let user = json!({"email": "u@example.com", "password": "user password", "passwordConfirm": "user password"});
    ok(call(p.port, "POST", "/api/collections/users/records", None, Some(&user)));
    let auth = ok(call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "u@example.com", "password": "user password"}))));
    let user_token = auth["token"].as_str().expect("token");
    assert_eq!(call(p.port, "GET", "/api/crons", Some(user_token), None).status, 403);
    assert_eq!(call(p.port, "GET", "/api/crons/__pbDBOptimize__/runs", Some(user_token), None).status, 403);

    let missing = call(p.port, "POST", "/api/crons/nope", Some(&token), None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"data": {}, "message": "Missing or invalid cron job.", "status": 404}));
    let bad_limit = call(p.port, "GET", "/api/crons/nope/runs?limit=0", Some(&token), None);
    assert_eq!(bad_limit.status, 400);
}

#[test]
fn a_manual_run_answers_204_at_once_runs_here_and_is_logged() {
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1"));
    let listed = ok(call(p.port, "GET", "/api/crons", Some(&token), None));
    // The probe is a user-level job (not `__pb…`), so it comes first.
    let mut expected = vec![json!({"id": PROBE, "expression": "* * * * *"})];
    expected.extend(pocketbase_jobs().as_array().expect("array").iter().cloned());
    assert_eq!(listed, Value::Array(expected));

    let r = call(p.port, "POST", &format!("/api/crons/{PROBE}"), Some(&token), None);
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.body.is_empty());
    let line = poll("the manual probe line", || probe_lines(&p.dir).into_iter().find(|(slot, _, _)| slot.is_none()));
    assert_eq!(line.1, 0, "serve is worker 0");
    let run = poll("the manual run in the log", || runs(p.port, &token, PROBE).into_iter().find(|r| r["trigger"] == "manual"));
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["slot"], Value::Null);
    assert_eq!(run["job"], PROBE);
    assert_eq!(run["pid"].as_u64(), Some(line.2));

    // The daily optimize job, run by hand, does its checkpoint and optimize and logs success.
    assert_eq!(call(p.port, "POST", "/api/crons/__pbDBOptimize__", Some(&token), None).status, 204);
    let run = poll("the optimize run", || runs(p.port, &token, "__pbDBOptimize__").into_iter().next());
    assert_eq!(run["outcome"], "ok", "{run}");
    // An id with characters the SDK escapes is decoded before lookup (and still unknown).
    assert_eq!(call(p.port, "POST", "/api/crons/no%20such%20job", Some(&token), None).status, 404);
}

#[test]
fn the_otp_and_mfa_cleanup_jobs_delete_only_expired_rows() {
    let (p, token) = start_with_superuser(Spawn::serve());
    let conn = db(&p.dir);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    // A new data dir has PocketBase's layout: a row expires its collection's `otp.duration` /
    // `mfa.duration` after `created` (180 s and 600 s by default).
    for (id, age_secs) in [("expired", 3600), ("live", 0)] {
        let created = "strftime('%Y-%m-%d %H:%M:%fZ', ?2, 'unixepoch')";
        conn.execute(&format!("INSERT INTO _otps (id, collectionRef, recordRef, password, created) VALUES (?1, 'c', 'r', 'x', {created})"), rusqlite::params![id, now - age_secs])
            .expect("otp");
        conn.execute(&format!("INSERT INTO _mfas (id, collectionRef, recordRef, method, created) VALUES (?1, 'c', 'r', 'password', {created})"), rusqlite::params![id, now - age_secs])
            .expect("mfa");
    }
    for job in ["__pbOTPCleanup__", "__pbMFACleanup__"] {
        assert_eq!(call(p.port, "POST", &format!("/api/crons/{job}"), Some(&token), None).status, 204);
        let run = poll(job, || runs(p.port, &token, job).into_iter().next());
        assert_eq!(run["outcome"], "ok", "{run}");
    }
    for table in ["_otps", "_mfas"] {
        let ids: Vec<String> = conn
            .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        assert_eq!(ids, ["live"], "{table}: the expired row is gone, the live one stays");
    }
}

/// Each slot of a `* * * * *` job runs exactly once on a 4-worker cluster, before, during and
/// after one worker is killed with SIGKILL and respawned.
#[test]
fn every_slot_runs_exactly_once_on_a_four_worker_cluster_through_a_kill() {
    let spawn = Spawn::cluster(4).env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_CRON_SECOND_TICKS", "1");
    let (mut p, token) = start_with_superuser(spawn);
    p.wait_logs(4, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let distinct_slots = |dir: &Path| probe_lines(dir).iter().filter_map(|l| l.0).collect::<BTreeSet<i64>>();
    poll("5 slots before the kill", || (distinct_slots(&p.dir).len() >= 5).then_some(()));

    let victim = p.worker_pids()[0];
    kill(victim, Signal::SIGKILL);
    let slot_at_kill = *distinct_slots(&p.dir).iter().next_back().expect("slots");
    // A slot after the kill, so the window really spans it (on a loaded machine the respawn
    // could otherwise be logged before any later slot was recorded).
    poll("a slot after the kill", || (distinct_slots(&p.dir).iter().next_back().copied() > Some(slot_at_kill)).then_some(()));
    p.wait_logs(1, Duration::from_secs(30), |v| v["message"] == "worker died");
    p.wait_logs(5, Duration::from_secs(30), |v| v["message"] == "listening" && v["role"] == "worker");
    // Five slots after the respawned worker joined, so it took part in some.
    let joined = *distinct_slots(&p.dir).iter().next_back().expect("slots");
    poll("5 slots after the respawn", || (distinct_slots(&p.dir).iter().filter(|s| **s > joined).count() >= 5).then_some(()));

    let before_term = *distinct_slots(&p.dir).iter().next_back().expect("slots");
    p.signal(Signal::SIGTERM);
    p.wait_exit(Duration::from_secs(30)).expect("the cluster drains");

    let lines = probe_lines(&p.dir);
    let mut per_slot: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (slot, _, pid) in &lines {
        per_slot.entry(slot.expect("only scheduled runs")).or_default().push(*pid);
    }
    let twice: Vec<_> = per_slot.iter().filter(|(_, pids)| pids.len() > 1).collect();
    assert!(twice.is_empty(), "slots run more than once: {twice:?}");

    let conn = db(&p.dir);
    let claims: BTreeMap<i64, u64> = conn
        .prepare("SELECT slot, pid FROM _vb_cron_claims WHERE job = ?1")
        .expect("prepare")
        .query_map([PROBE], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    // Up to the last slot seen before the drain began: a run still pending when its worker
    // drained may be cut off, which the drain does not wait for.
    let (first, last) = (*per_slot.keys().next().expect("first"), before_term);
    // Every slot in the window was claimed (the key makes a second claim impossible), and each
    // claim ran exactly once where it was claimed — except that the victim may have died
    // holding one claim it had not yet run: that slot is lost, never run twice.
    let mut lost = vec![];
    for slot in first..=last {
        let claimant = claims.get(&slot).unwrap_or_else(|| panic!("slot {slot} was not claimed; claims {claims:?}"));
        match per_slot.get(&slot) {
            Some(pids) => assert_eq!(pids, &[*claimant], "slot {slot} ran where it was claimed"),
            None => lost.push((slot, *claimant)),
        }
    }
    assert!(lost.len() <= 1 && lost.iter().all(|(_, pid)| *pid == u64::from(victim)), "slots lost other than the victim's: {lost:?}");
    assert!(first <= slot_at_kill && slot_at_kill < joined, "the kill happened inside the observed window");

    // The race happened: more than one worker won slots, so the slots were contested.
    let winners: BTreeSet<u64> = claims.values().copied().collect();
    assert!(winners.len() >= 2, "winners {winners:?}");
    // Positive control for "exactly once": the job did run, many times.
    assert!(per_slot.len() >= 10, "{per_slot:?}");

    // The run log has one scheduled run per line, each ok.
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM _vb_cron_runs WHERE job = ?1 AND slot IS NOT NULL AND outcome = 'ok'", [PROBE], |r| r.get(0))
        .expect("count");
    assert_eq!(logged as usize, lines.len());
    let distinct_logged: i64 = conn
        .query_row("SELECT count(DISTINCT slot) FROM _vb_cron_runs WHERE job = ?1 AND slot IS NOT NULL", [PROBE], |r| r.get(0))
        .expect("count");
    assert_eq!(distinct_logged, logged);
    drop(token);
}

/// With real minutes: the first scheduled run happens at a UTC minute boundary, for the slot
/// of that minute.
#[test]
fn with_real_minutes_a_job_runs_for_the_minute_it_started_in() {
    let (p, token) = start_with_superuser(Spawn::serve().env("VAULTBASE_TEST_ROUTES", "1"));
    let deadline = Instant::now() + Duration::from_secs(150);
    let run = loop {
        if let Some(run) = runs(p.port, &token, PROBE).into_iter().find(|r| r["trigger"] == "schedule") {
            break run;
        }
        assert!(Instant::now() < deadline, "no scheduled run within two minutes");
        std::thread::sleep(Duration::from_millis(500));
    };
    let slot = run["slot"].as_i64().expect("slot");
    // `started` is "YYYY-MM-DD HH:MM:SS.sssZ"; its minute is the slot's minute.
    let started = run["started"].as_str().expect("started");
    let minute_of_slot = {
        let secs = slot * 60;
        let out = std::process::Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %H:%M"]).output().expect("date");
        String::from_utf8(out.stdout).expect("utf8").trim().to_owned()
    };
    assert!(started.starts_with(&minute_of_slot), "started {started}, slot minute {minute_of_slot}");
    let lines = probe_lines(&p.dir);
    assert_eq!(lines[0].0, Some(slot), "{lines:?}");
}
