//! JS migrations (`pb_migrations/*.js`): applied once, in order, before serving, recorded in
//! `_migrations` as PocketBase records them; once per cluster; the `migrate` CLI; and the
//! very files PocketBase 0.40's dashboard generated (`tests/migrations/pocketbase/`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrations/pocketbase")
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), body).expect("write migration");
}

fn migrate_cli(data: &Path, migrations: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("migrate")
        .args(args)
        .arg("--dir")
        .arg(data)
        .arg("--migrationsDir")
        .arg(migrations)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run vaultbase migrate")
}

fn db(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("data.db")).expect("open data.db")
}

fn js_ledger(data: &Path) -> Vec<(String, i64)> {
    let conn = db(data);
    let mut stmt = conn.prepare("SELECT file, applied FROM _migrations WHERE file LIKE '%.js' ORDER BY applied, file").expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").collect::<Result<_, _>>().expect("rows")
}

fn field_names(collection: &Value) -> Vec<String> {
    collection["fields"].as_array().expect("fields").iter().map(|f| f["name"].as_str().unwrap_or_default().to_owned()).collect()
}

/// A migration whose side effect counts its runs: a row per application.
const COUNTER: &str = r#"migrate((app) => {
  app.db().newQuery("CREATE TABLE IF NOT EXISTS hits (n INTEGER)").execute();
  app.db().newQuery("INSERT INTO hits (n) VALUES ({:n})").bind({ n: 1 }).execute();
}, (app) => {
  app.db().newQuery("DROP TABLE hits").execute();
})"#;

#[test]
fn the_files_pocketbase_generates_apply_in_order_once_and_are_recorded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    create_superuser(&data, SU_EMAIL, SU_PASSWORD);
    let spawn = || Spawn::serve().dir(&data).env("VAULTBASE_MIGRATIONS_DIR", fixtures().to_str().expect("utf-8 path"));
    let mut server = spawn().start();
    server.wait_healthy();
    let token = ok(call(server.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD}))))["token"]
        .as_str()
        .expect("token")
        .to_owned();

    // created posts → added `body` → removed `views` → renamed to `articles` (listRule null).
    let articles = ok(call(server.port, "GET", "/api/collections/articles", Some(&token), None));
    assert_eq!(articles["id"], "pbc_1125843985", "the id the file gave");
    assert_eq!(field_names(&articles), ["id", "title", "body"]);
    assert_eq!(articles["listRule"], Value::Null);
    assert_eq!(call(server.port, "GET", "/api/collections/posts", Some(&token), None).status, 404, "renamed away");
    assert_eq!(call(server.port, "GET", "/api/collections/tmp", Some(&token), None).status, 404, "created, then deleted");
    // The collection works as one made over the API.
    ok(call(server.port, "POST", "/api/collections/articles/records", Some(&token), Some(&json!({"title": "hi", "body": "<p>x</p>"}))));

    let files: Vec<String> = std::fs::read_dir(fixtures()).expect("fixtures").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    let mut files = files;
    files.sort();
    let ledger = js_ledger(&data);
    assert_eq!(ledger.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(), files, "every file recorded, in name order");
    assert!(ledger.iter().all(|(_, applied)| *applied > 1_700_000_000_000_000), "applied in unix microseconds, as PocketBase: {ledger:?}");
    let system: Vec<String> = db(&data)
        .prepare("SELECT file FROM _migrations WHERE file NOT LIKE '%.js' ORDER BY file").expect("prepare")
        .query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
    assert!(system.iter().all(|f| f.ends_with(".go")), "besides the JS migrations, PocketBase's ledger on a dir vaultbase made holds only PocketBase's own system rows (it is made in PocketBase's layout): {system:?}");
    assert!(system.iter().any(|f| f == "1640988000_init.go"), "{system:?}");
    let own: i64 = db(&data).query_row("SELECT count(*) FROM _vb_migrations", [], |r| r.get(0)).expect("count");
    assert!(own > 0, "positive control: vaultbase's own steps are recorded, in _vb_migrations");

    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()));
    let mut again = spawn().start();
    again.wait_healthy();
    assert_eq!(js_ledger(&data), ledger, "a restart applies nothing again");
}

#[test]
fn a_cluster_applies_each_migration_once_before_any_worker_serves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let migrations = tmp.path().join("pb_migrations");
    write(&migrations, "1700000000_counter.js", COUNTER);
    write(
        &migrations,
        "1700000001_notes.js",
        r#"migrate((app) => {
  const c = new Collection({ name: "notes", type: "base", listRule: "" });
  c.fields.add(new Field({ name: "text", type: "text" }));
  app.save(c);
}, (app) => app.delete(app.findCollectionByNameOrId("notes")))"#,
    );
    // The default dir: `<data dir>/../pb_migrations`.
    let mut cluster = Spawn::cluster(4).in_tempdir(tmp).start();
    cluster.wait_healthy();
    let data = cluster.dir.clone();
    let hits: i64 = db(&data).query_row("SELECT count(*) FROM hits", [], |r| r.get(0)).expect("count hits");
    assert_eq!(hits, 1, "the counter migration ran exactly once for four workers");
    assert_eq!(js_ledger(&data).len(), 2);
    // Every worker serves the migrated schema from its first request.
    for (worker, mut conn) in connection_per_worker(cluster.port, 4) {
        let r = exchange(&mut conn, "GET", "/api/collections/notes/records").expect("request");
        assert_eq!(r.status, 200, "worker {worker}: {}", String::from_utf8_lossy(&r.body));
    }
    // Restarting the cluster applies nothing again.
    cluster.signal(Signal::SIGTERM);
    assert!(cluster.wait_exit(Duration::from_secs(40)).is_some_and(|s| s.success()));
    let mut again = Spawn::cluster(4).dir(&data).port(free_port()).start();
    again.wait_healthy();
    let hits: i64 = db(&data).query_row("SELECT count(*) FROM hits", [], |r| r.get(0)).expect("count hits");
    assert_eq!(hits, 1);
}

#[test]
fn migrate_down_reverts_the_last_applied_and_create_writes_a_runnable_template() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let migrations = tmp.path().join("m");
    write(&migrations, "1700000000_counter.js", COUNTER);
    write(
        &migrations,
        "1700000001_settings.js",
        r#"migrate((app) => {
  const settings = app.settings();
  settings.meta.appName = "Migrated";
  app.save(settings);
}, (app) => {
  const settings = app.settings();
  settings.meta.appName = "Acme";
  app.save(settings);
})"#,
    );
    let out = migrate_cli(&data, &migrations, &["up"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Applied 1700000000_counter.js") && stdout.contains("Applied 1700000001_settings.js"), "{stdout}");
    let app_name = |data: &Path| -> String {
        db(data).query_row("SELECT value->>'$.meta.appName' FROM _params WHERE id = 'settings'", [], |r| r.get(0)).expect("settings")
    };
    assert_eq!(app_name(&data), "Migrated", "settings are writable in migrations");

    let out = migrate_cli(&data, &migrations, &["down"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Reverted 1700000001_settings.js"));
    assert_eq!(app_name(&data), "Acme", "its down function ran");
    assert_eq!(js_ledger(&data).len(), 1, "its _migrations row is gone, the older one kept");

    let out = migrate_cli(&data, &migrations, &["down", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hits_table: bool = db(&data).query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE name = 'hits')", [], |r| r.get(0)).expect("q");
    assert!(!hits_table, "the counter's down dropped its table");
    assert!(js_ledger(&data).is_empty());

    let out = migrate_cli(&data, &migrations, &["create", "add things"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Vec<String> = std::fs::read_dir(&migrations)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_add_things.js"))
        .collect();
    assert_eq!(created.len(), 1, "a timestamped file: {created:?}");
    let out = migrate_cli(&data, &migrations, &["up"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(js_ledger(&data).iter().any(|(f, _)| f == &created[0]), "the blank template applies");
}

#[test]
fn a_collections_snapshot_rebuilds_the_schema_in_another_data_dir() {
    let (mut server, token) = start_with_superuser(Spawn::serve());
    let team = ok(call(server.port, "POST", "/api/collections", Some(&token), Some(&json!({"name": "team", "fields": [{"name": "title", "type": "text", "required": true}]}))));
    ok(call(
        server.port,
        "POST",
        "/api/collections",
        Some(&token),
        Some(&json!({"name": "member", "type": "auth", "fields": [{"name": "team", "type": "relation", "collectionId": team["id"], "maxSelect": 1}]})),
    ));
    let data = server.dir.clone();
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()));

    let tmp = tempfile::tempdir().expect("tempdir");
    let migrations = tmp.path().join("m");
    let out = migrate_cli(&data, &migrations, &["collections"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = tmp.path().join("fresh");
    let out = migrate_cli(&fresh, &migrations, &["up"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let conn = db(&fresh);
    let names: Vec<String> =
        conn.prepare("SELECT name FROM _collections ORDER BY name").expect("prep").query_map([], |r| r.get(0)).expect("q").collect::<Result<_, _>>().expect("rows");
    assert_eq!(names, ["_authOrigins", "_externalAuths", "_mfas", "_otps", "_superusers", "_webhooks", "member", "team", "users"], "the system collections and the snapshot's");
    let relation: String = conn
        .query_row("SELECT f.value->>'$.collectionId' FROM _collections, json_each(fields) AS f WHERE name = 'member' AND f.value->>'$.name' = 'team'", [], |r| r.get(0))
        .expect("relation");
    assert_eq!(relation, team["id"].as_str().expect("id"), "ids survive the round trip");
}

#[test]
fn a_failing_migration_stops_start_up_and_keeps_nothing_of_itself() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let migrations = tmp.path().join("pb_migrations");
    write(&migrations, "1700000000_counter.js", COUNTER);
    write(
        &migrations,
        "1700000001_broken.js",
        r#"migrate((app) => {
  app.db().newQuery("INSERT INTO hits (n) VALUES (2)").execute();
  app.save(new Collection({ name: "bad name!" }));
})"#,
    );
    let mut server = Spawn::serve().in_tempdir(tmp).start();
    let status = server.wait_exit(START_TIMEOUT).expect("start-up must stop");
    assert!(!status.success());
    assert!(server.log_text().contains("1700000001_broken.js"), "the log names the file: {}", server.log_text());
    let rows: Vec<i64> =
        db(&server.dir).prepare("SELECT n FROM hits").expect("prep").query_map([], |r| r.get(0)).expect("q").collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows, [1], "the earlier file stays applied; the broken one's insert was rolled back");
    assert_eq!(js_ledger(&server.dir).len(), 1);
}

#[test]
fn migrate_refuses_a_data_dir_a_running_server_owns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let migrations = tmp.path().join("m");
    write(&migrations, "1700000000_counter.js", COUNTER);
    let mut server = Spawn::serve().in_tempdir(tmp).start();
    server.wait_healthy();
    let data = server.dir.clone();
    let out = migrate_cli(&data, &migrations, &["up"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by a running vaultbase"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(js_ledger(&data).is_empty());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()));
    let out = migrate_cli(&data, &migrations, &["up"]);
    assert!(out.status.success(), "positive control, once stopped: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(js_ledger(&data).len(), 1);
}
