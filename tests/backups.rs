//! Backups and restore: PocketBase's `/api/backups` in `serve`, `POST /api/admin/restore`,
//! the `vaultbase backup` / `vaultbase restore` commands, a PocketBase-made backup restored
//! here, and a restore in a 4-worker cluster under load (no request fails with a database
//! error; afterwards every worker serves the restored data), and `backups.cron` with
//! `cronMaxKeep` on a cluster, and backups kept in S3 (SeaweedFS) for the API and the CLI.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn make_posts(port: u16, token: &str) {
    let body = json!({"name": "posts", "type": "base", "fields": [{"name": "title", "type": "text"}], "listRule": "", "viewRule": "", "createRule": ""});
    ok(call(port, "POST", "/api/collections", Some(token), Some(&body)));
}

fn add_post(port: u16, token: &str, title: &str) {
    ok(call(port, "POST", "/api/collections/posts/records", Some(token), Some(&json!({"title": title}))));
}

/// The titles of `posts`, sorted.
fn titles(port: u16) -> Vec<String> {
    let r = ok(call(port, "GET", "/api/collections/posts/records?perPage=500", None, None));
    let mut out: Vec<String> = r["items"].as_array().expect("items").iter().map(|i| i["title"].as_str().unwrap_or_default().to_owned()).collect();
    out.sort();
    out
}

/// A POST with a raw body.
fn post_raw(port: u16, path: &str, token: &str, content_type: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    read_response(&mut s, false).expect("response")
}

/// `_logs` rows of `db` whose data mentions `needle` (0 when the file or table is missing).
fn logged_in_file(db: &std::path::Path, needle: &str) -> i64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else { return 0 };
    conn.query_row("SELECT count(*) FROM _logs WHERE data LIKE ?1", [format!("%{needle}%")], |r| r.get(0)).unwrap_or(0)
}

fn field_code(r: &Resp, field: &str) -> String {
    r.json()["data"][field]["code"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn serve_lists_creates_downloads_uploads_deletes_and_restores_backups() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    make_posts(port, &token);
    add_post(port, &token, "before");

    assert_eq!(ok(call(port, "GET", "/api/backups", Some(&token), None)), json!([]));
    assert_eq!(call(port, "GET", "/api/backups", None, None).status, 401);
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "one.zip"}))).status, 204);
    let bad = call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "Bad.zip"})));
    assert_eq!((bad.status, field_code(&bad, "name")), (400, "validation_match_invalid".to_owned()));
    let dup = call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "one.zip"})));
    assert_eq!((dup.status, field_code(&dup, "name")), (400, "validation_backup_name_exists".to_owned()));
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({}))).status, 204);

    let listed = ok(call(port, "GET", "/api/backups", Some(&token), None));
    let keys: Vec<&str> = listed.as_array().expect("list").iter().map(|b| b["key"].as_str().expect("key")).collect();
    assert_eq!(keys.len(), 2, "{listed}");
    assert!(keys.contains(&"one.zip"));
    let generated = keys.iter().find(|k| **k != "one.zip").expect("generated");
    assert!(generated.starts_with("pb_backup_acme_") && generated.ends_with(".zip") && generated.len() == "pb_backup_acme_20261207104257.zip".len(), "{generated}");
    assert!(listed[0]["size"].as_u64().expect("size") > 0);
    assert!(listed[0]["modified"].as_str().expect("modified").ends_with('Z'));

    // Download: a superuser file token in the query, no Authorization header.
    let file_token = ok(call(port, "POST", "/api/files/token", Some(&token), None))["token"].as_str().expect("token").to_owned();
    let zip = call(port, "GET", &format!("/api/backups/one.zip?token={file_token}"), None, None);
    assert_eq!(zip.status, 200);
    assert!(zip.body.starts_with(b"PK\x03\x04"), "a zip");
    assert_eq!(zip.header("content-type").as_deref(), Some("application/zip"));
    assert_eq!(call(port, "GET", "/api/backups/one.zip", None, None).status, 403);
    assert_eq!(call(port, "GET", &format!("/api/backups/one.zip?token={token}"), None, None).status, 403, "an auth token is not a file token");
    assert_eq!(call(port, "GET", &format!("/api/backups/nope.zip?token={file_token}"), None, None).status, 404);

    // Upload keeps the file's name; a second one under the same name, or not a zip, is refused.
    let up = post_multipart(port, "/api/backups/upload", &token, &small_multipart(&[], &[("file", "up_1.zip", &zip.body)]));
    assert_eq!(up.status, 204, "{}", String::from_utf8_lossy(&up.body));
    let again = post_multipart(port, "/api/backups/upload", &token, &small_multipart(&[], &[("file", "up_1.zip", &zip.body)]));
    assert_eq!((again.status, field_code(&again, "file")), (400, "validation_backup_name_exists".to_owned()));
    let not_zip = post_multipart(port, "/api/backups/upload", &token, &small_multipart(&[], &[("file", "x.zip", b"hello")]));
    assert_eq!((not_zip.status, field_code(&not_zip, "file")), (400, "validation_invalid_mime_type".to_owned()));
    let none = post_multipart(port, "/api/backups/upload", &token, &small_multipart(&[("other", "1")], &[]));
    assert_eq!((none.status, field_code(&none, "file")), (400, "validation_required".to_owned()));

    // Restore: records made after the backup are gone, the ones before it are back.
    add_post(port, &token, "after");
    assert_eq!(titles(port), ["after", "before"]);
    assert_eq!(call(port, "POST", "/api/backups/nope.zip/restore", Some(&token), None).status, 400);
    assert_eq!(call(port, "POST", "/api/backups/up_1.zip/restore", Some(&token), None).status, 204);
    assert_eq!(titles(port), ["before"]);
    // The superuser's token still works, and writes go to the restored file.
    add_post(port, &token, "later");
    assert_eq!(titles(port), ["before", "later"]);
    let kept: Vec<_> = std::fs::read_dir(&server.dir).expect("dir").filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(".pre-restore-")).collect();
    assert_eq!(kept.len(), 1, "the previous data is kept beside the restored files");
    assert!(kept[0].path().join("data.db").exists());
    // Request logs go on into the restored auxiliary.db file (not the one moved aside), and
    // the logs API reads them there.
    assert_eq!(call(port, "GET", "/api/health?marker=after-restore", None, None).status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_disk = logged_in_file(&server.dir.join("auxiliary.db"), "after-restore");
        let listed = ok(call(port, "GET", "/api/logs?filter=data.url~'after-restore'", Some(&token), None));
        if on_disk == 1 && listed["totalItems"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the request after the restore never reached the restored auxiliary.db (file {on_disk}, api {listed})");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(logged_in_file(&kept[0].path().join("auxiliary.db"), "after-restore"), 0, "nothing went into the file moved aside");
    assert!(logged_in_file(&kept[0].path().join("auxiliary.db"), "/api/backups") > 0, "positive control: the moved file has the requests from before");

    assert_eq!(call(port, "DELETE", "/api/backups/one.zip", Some(&token), None).status, 204);
    assert_eq!(call(port, "DELETE", "/api/backups/one.zip", Some(&token), None).status, 400);
}

#[test]
fn the_backup_command_snapshots_a_running_server_and_admin_restore_swaps_it_in() {
    let (server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    make_posts(port, &token);
    add_post(port, &token, "before");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dest = out_dir.path().join("snap.db");
    let run = Command::new(BIN).args(["backup", "--to"]).arg(&dest).arg("--dir").arg(&server.dir).arg("--gzip").output().expect("backup");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let gz = out_dir.path().join("snap.db.gz");
    assert!(gz.exists(), "--gzip appends .gz");
    assert!(String::from_utf8_lossy(&run.stdout).contains("backup written to"));

    add_post(port, &token, "after");
    // Offline restore is refused while the server owns the data dir.
    let refused = Command::new(BIN).args(["restore"]).arg(&gz).arg("--dir").arg(&server.dir).output().expect("restore");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use"), "{}", String::from_utf8_lossy(&refused.stderr));

    let not_db = post_raw(port, "/api/admin/restore", &token, "application/octet-stream", b"not a database");
    assert_eq!(not_db.status, 400);
    assert_eq!(titles(port), ["after", "before"], "a refused restore changes nothing");
    let bytes = std::fs::read(&gz).expect("snapshot");
    let r = post_raw(port, "/api/admin/restore", &token, "application/octet-stream", &bytes);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(titles(port), ["before"]);
    let guest = post_raw(port, "/api/admin/restore", "", "application/octet-stream", &bytes);
    assert_eq!(guest.status, 401);
}

#[test]
fn the_restore_command_swaps_a_backup_in_offline() {
    let (mut server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    make_posts(port, &token);
    add_post(port, &token, "before");
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "b.zip"}))).status, 204);
    add_post(port, &token, "after");
    let dir = server.dir.clone();
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).is_some());
    let run = Command::new(BIN).arg("restore").arg(dir.join("backups/b.zip")).arg("--dir").arg(&dir).output().expect("restore");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mut again = Spawn::serve().dir(&dir).start();
    again.wait_healthy();
    assert_eq!(titles(again.port), ["before"]);
}

/// The real PocketBase (0.40.6): its process, port, data dir and a superuser token.
struct PocketBase {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
    token: String,
    _tmp: tempfile::TempDir,
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PB_PASSWORD: &str = "pocketbase-pass";

fn start_pocketbase() -> PocketBase {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pb_data");
    let up = Command::new(pocketbase_binary()).args(["superuser", "upsert", SU_EMAIL, PB_PASSWORD, "--dir"]).arg(&dir).output().expect("pb");
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let port = free_port();
    let child = Command::new(pocketbase_binary())
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--automigrate=false", "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pocketbase");
    let deadline = Instant::now() + START_TIMEOUT;
    while get(port, "/api/health").map(|r| r.status != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "pocketbase did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let login = json!({"identity": SU_EMAIL, "password": PB_PASSWORD});
    let token = ok(call(port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&login)))["token"].as_str().expect("token").to_owned();
    PocketBase { child, port, dir, token, _tmp: tmp }
}

/// A zip made by the real PocketBase restores here.
#[test]
fn a_pocketbase_backup_restores_into_vaultbase() {
    let pb = start_pocketbase();
    make_posts(pb.port, &pb.token);
    add_post(pb.port, &pb.token, "from pocketbase");
    assert_eq!(call(pb.port, "POST", "/api/backups", Some(&pb.token), Some(&json!({"name": "pb.zip"}))).status, 204);
    let zip = std::fs::read(pb.dir.join("backups/pb.zip")).expect("pocketbase wrote its backup");
    drop(pb);

    let (server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    let up = post_multipart(port, "/api/backups/upload", &token, &small_multipart(&[], &[("file", "pb.zip", &zip)]));
    assert_eq!(up.status, 204, "{}", String::from_utf8_lossy(&up.body));
    assert_eq!(call(port, "POST", "/api/backups/pb.zip/restore", Some(&token), None).status, 204);
    assert_eq!(titles(port), ["from pocketbase"]);
    // PocketBase's collections and rules are this server's now: a guest creates (createRule "").
    ok(call(port, "POST", "/api/collections/posts/records", None, Some(&json!({"title": "added here"}))));
    assert_eq!(titles(port), ["added here", "from pocketbase"]);
    // The old token's superuser went with the old data. (PocketBase's superuser hashes its
    // password with bcrypt, which vaultbase does not verify: set one with the CLI.)
    assert_eq!(call(port, "GET", "/api/collections/posts", Some(&token), None).status, 401);
}

/// A zip made here restores into the real PocketBase, through its own restore endpoint.
#[test]
fn a_vaultbase_backup_restores_into_pocketbase() {
    let pb = start_pocketbase();
    let (server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    make_posts(port, &token);
    add_post(port, &token, "from vaultbase");
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "vb.zip"}))).status, 204);
    let zip = std::fs::read(server.dir.join("backups/vb.zip")).expect("the backup");

    let up = post_multipart(pb.port, "/api/backups/upload", &pb.token, &small_multipart(&[], &[("file", "vb.zip", &zip)]));
    assert_eq!(up.status, 204, "{}", String::from_utf8_lossy(&up.body));
    assert_eq!(call(pb.port, "POST", "/api/backups/vb.zip/restore", Some(&pb.token), None).status, 204);
    // PocketBase restarts itself (same pid and port) on the restored data.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = get(pb.port, "/api/collections/posts/records").ok().filter(|r| r.status == 200).map(|r| r.json());
        if let Some(items) = listed.as_ref().and_then(|l| l["items"].as_array()) {
            let got: Vec<_> = items.iter().map(|i| i["title"].as_str().unwrap_or_default().to_owned()).collect();
            assert_eq!(got, ["from vaultbase"]);
            break;
        }
        assert!(Instant::now() < deadline, "PocketBase never served the restored data: {listed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the load saw: (started, ended, status) per request.
type Seen = Arc<Mutex<Vec<(Instant, Instant, u16, String)>>>;

fn load(port: u16, token: String, stop: Arc<AtomicBool>, seen: Seen, n: usize) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let r = if i % 2 == 0 {
            call(port, "POST", "/api/collections/posts/records", Some(&token), Some(&json!({"title": format!("load-{n}-{i}")})))
        } else {
            call(port, "GET", "/api/collections/posts/records?perPage=1", None, None)
        };
        let body = if r.status == 200 || r.status == 503 { String::new() } else { String::from_utf8_lossy(&r.body).into_owned() };
        seen.lock().expect("seen").push((start, Instant::now(), r.status, body));
        i += 1;
    }
}

#[test]
fn a_cluster_restore_pauses_every_worker_and_none_serves_the_old_file() {
    const WORKERS: usize = 4;
    let (server, token) = start_with_superuser(Spawn::cluster(WORKERS));
    let port = server.port;
    server.wait_logs(WORKERS, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    make_posts(port, &token);
    add_post(port, &token, "before");
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "snap.zip"}))).status, 204);
    for i in 0..20 {
        add_post(port, &token, &format!("after-{i}"));
    }
    // Every worker has the new records cached in its connections before the restore.
    for (_, mut conn) in connection_per_worker(port, WORKERS) {
        let r = exchange(&mut conn, "GET", "/api/collections/posts/records?filter=(title~'after')").expect("list");
        assert_eq!(r.json()["totalItems"], 20);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::default();
    let threads: Vec<_> = (0..3)
        .map(|n| {
            let (stop, seen, token) = (stop.clone(), seen.clone(), token.clone());
            std::thread::spawn(move || load(port, token, stop, seen, n))
        })
        .collect();
    while seen.lock().expect("seen").len() < 20 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let restore_start = Instant::now();
    let r = call(port, "POST", "/api/backups/snap.zip/restore", Some(&token), None);
    let restore_end = Instant::now();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let after_restore = seen.lock().expect("seen").len();
    while seen.lock().expect("seen").len() < after_restore + 20 {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }

    let seen = seen.lock().expect("seen");
    let failed: Vec<_> = seen.iter().filter(|(_, _, status, _)| *status != 200 && *status != 503).collect();
    assert!(failed.is_empty(), "requests failed during the restore: {failed:?}");
    let overlapping = seen.iter().filter(|(s, e, _, _)| *s < restore_end && *e > restore_start).count();
    assert!(overlapping > 0, "the load ran while the restore did ({} requests in all)", seen.len());

    // Every worker serves the restored file: the record from before the backup, none of after.
    for (id, mut conn) in connection_per_worker(port, WORKERS) {
        let before = exchange(&mut conn, "GET", "/api/collections/posts/records?filter=(title='before')").expect("list");
        assert_eq!(before.json()["totalItems"], 1, "worker {id}: {}", String::from_utf8_lossy(&before.body));
        let after = exchange(&mut conn, "GET", "/api/collections/posts/records?filter=(title~'after')").expect("list");
        assert_eq!(after.json()["totalItems"], 0, "worker {id} still serves the old file");
    }
}

#[test]
fn backups_cron_makes_automatic_backups_once_per_slot_and_keeps_cron_max_keep() {
    // Bus invalidations ignored: the listing must be current on every worker by itself, for
    // the very next request after the PATCH (which landed on one of them).
    let spawn = Spawn::cluster(2).env("VAULTBASE_TEST_CRON_SECOND_TICKS", "1").env("VAULTBASE_TEST_IGNORE_INVALIDATE", "1");
    let (server, token) = start_with_superuser(spawn);
    let port = server.port;
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "manual.zip"}))).status, 204);
    let patch = json!({"backups": {"cron": "* * * * *", "cronMaxKeep": 2}});
    ok(call(port, "PATCH", "/api/settings", Some(&token), Some(&patch)));
    for (worker, mut conn) in connection_per_worker(port, 2) {
        conn.write_all(format!("GET /api/crons HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n").as_bytes()).expect("send");
        let listed = read_one(&mut conn).expect("answer").json();
        assert!(listed.as_array().expect("jobs").iter().any(|j| j["id"] == "__pbAutoBackup__" && j["expression"] == "* * * * *"), "worker {worker}: {listed}");
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let r = ok(call(port, "GET", "/api/crons/__pbAutoBackup__/runs?limit=100", Some(&token), None));
        let done: Vec<_> = r["items"].as_array().expect("items").iter().filter(|run| run["outcome"] == "ok").cloned().collect();
        if done.len() >= 4 {
            break done;
        }
        assert!(Instant::now() < deadline, "automatic backups did not run: {r}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let slots: std::collections::HashSet<_> = runs.iter().map(|r| r["slot"].as_i64().expect("slot")).collect();
    assert_eq!(slots.len(), runs.len(), "each slot ran once in the cluster: {runs:?}");
    ok(call(port, "PATCH", "/api/settings", Some(&token), Some(&json!({"backups": {"cron": ""}}))));

    let listed = ok(call(port, "GET", "/api/backups", Some(&token), None));
    let keys: Vec<&str> = listed.as_array().expect("list").iter().map(|b| b["key"].as_str().expect("key")).collect();
    let auto: Vec<_> = keys.iter().filter(|k| k.starts_with("@auto_pb_backup_acme_")).collect();
    assert!(!auto.is_empty() && auto.len() <= 2, "at most cronMaxKeep automatic backups are kept: {keys:?}");
    // The SDK sends keys through encodeURIComponent: `@` arrives as %40.
    let escaped = auto[0].replace('@', "%40");
    let file_token = ok(call(port, "POST", "/api/files/token", Some(&token), None))["token"].as_str().expect("token").to_owned();
    assert_eq!(call(port, "GET", &format!("/api/backups/{escaped}?token={file_token}"), None, None).status, 200);
    assert_eq!(call(port, "DELETE", &format!("/api/backups/{escaped}"), Some(&token), None).status, 204);
    assert!(keys.contains(&"manual.zip"), "other backups are never pruned: {keys:?}");
    let jobs = ok(call(port, "GET", "/api/crons", Some(&token), None));
    assert!(!jobs.as_array().expect("jobs").iter().any(|j| j["id"] == "__pbAutoBackup__"), "an empty backups.cron removes the job: {jobs}");
}

#[test]
fn backups_s3_keeps_backups_in_the_bucket_and_restores_from_it() {
    let weed = common::weed::start_weed();
    let (server, token) = start_with_superuser(Spawn::serve());
    let port = server.port;
    let endpoint = format!("http://127.0.0.1:{}", weed.s3_port);
    let s3 = json!({"backups": {"s3": {"enabled": true, "bucket": "vaultbase", "region": "us-east-1", "endpoint": endpoint, "accessKey": "vbkey", "secret": "vbsecret", "forcePathStyle": true}}});
    ok(call(port, "PATCH", "/api/settings", Some(&token), Some(&s3)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while call(port, "POST", "/api/settings/test/s3", Some(&token), Some(&json!({"filesystem": "backups"}))).status != 204 {
        assert!(Instant::now() < deadline, "SeaweedFS S3 not ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    make_posts(port, &token);
    add_post(port, &token, "before");
    assert_eq!(call(port, "POST", "/api/backups", Some(&token), Some(&json!({"name": "in_s3.zip"}))).status, 204);
    assert!(weed.objects("vaultbase", "").contains(&"in_s3.zip".to_owned()), "the zip is in the bucket");
    assert!(!server.dir.join("backups/in_s3.zip").exists(), "and not on the local disk");
    let listed = ok(call(port, "GET", "/api/backups", Some(&token), None));
    assert!(listed.as_array().expect("list").iter().any(|b| b["key"] == "in_s3.zip"), "{listed}");
    let file_token = ok(call(port, "POST", "/api/files/token", Some(&token), None))["token"].as_str().expect("token").to_owned();
    let zip = call(port, "GET", &format!("/api/backups/in_s3.zip?token={file_token}"), None, None);
    assert!(zip.status == 200 && zip.body.starts_with(b"PK\x03\x04"));

    add_post(port, &token, "after");
    assert_eq!(call(port, "POST", "/api/backups/in_s3.zip/restore", Some(&token), None).status, 204);
    assert_eq!(titles(port), ["before"]);
    assert_eq!(call(port, "DELETE", "/api/backups/in_s3.zip", Some(&token), None).status, 204);
    assert!(!weed.objects("vaultbase", "").contains(&"in_s3.zip".to_owned()));

    // The CLI uploads its snapshot with the AWS variables.
    let run = Command::new(BIN)
        .args(["backup", "--to", "s3://vaultbase/cli/snap.db", "--quiet", "--dir"])
        .arg(&server.dir)
        .env("AWS_ACCESS_KEY_ID", "vbkey")
        .env("AWS_SECRET_ACCESS_KEY", "vbsecret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .output()
        .expect("backup");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.stdout.is_empty(), "--quiet prints nothing");
    assert_eq!(weed.objects("vaultbase", "cli/"), ["cli/snap.db"]);
    let missing = Command::new(BIN).args(["backup", "--to", "r2://vaultbase/x.db", "--dir"]).arg(&server.dir).env("AWS_ACCESS_KEY_ID", "k").env("AWS_SECRET_ACCESS_KEY", "s").output().expect("backup");
    assert_eq!(missing.status.code(), Some(2), "r2:// needs R2_ENDPOINT");
}
