//! pb_hooks: PocketBase hook files (`tests/hooks/<fixture>/*.pb.js`) run against the real
//! binary. Each assertion is PocketBase 0.40's observable answer for the same file, unless a
//! comment names a deliberate vaultbase difference (limits: PocketBase has none).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Copies fixture `name` (a dir under tests/hooks) into `dest`, which is created.
fn copy_fixture(name: &str, dest: &Path) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hooks").join(name);
    copy_dir(&src, dest);
}

fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("create hooks dir");
    for e in std::fs::read_dir(src).expect("fixture dir") {
        let e = e.expect("entry");
        let to = dest.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy fixture file");
        }
    }
}

/// A serve process with fixture `name` in the default hooks dir (`<data>/../pb_hooks`).
fn serve_fixture(name: &str, spawn: Spawn) -> Proc {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_fixture(name, &tmp.path().join("pb_hooks"));
    let mut p = spawn.in_tempdir(tmp).start();
    p.wait_healthy();
    p
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn router_add_answers_like_pocketbase() {
    let p = serve_fixture("routes", Spawn::serve());
    let port = p.port;

    let r = call(port, "GET", "/hello/bob?q=1", None, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    // Handlers cannot see the file's top-level variables (they are re-compiled from source).
    assert_eq!(r.json(), json!({"message": "Hello bob", "q": "1", "top": "undefined"}));

    // Go 1.22 patterns: {name...}, {$}, trailing-slash prefix; the method is case-insensitive.
    assert_eq!(text(&call(port, "GET", "/files/a/b/c.txt", None, None)), "a/b/c.txt");
    assert_eq!(text(&call(port, "GET", "/exact/", None, None)), "exact");
    assert_eq!(call(port, "GET", "/exact/more", None, None).status, 404);
    assert_eq!(text(&call(port, "GET", "/prefix/x/y", None, None)), "prefix /prefix/x/y");
    // A wrong method is 404 (not 405), in other words than an unknown path's.
    let wrong = call(port, "POST", "/hello/bob", None, None);
    assert_eq!(wrong.json(), json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404}));
    let unknown = call(port, "GET", "/nowhere", None, None);
    assert_eq!(unknown.json(), json!({"data": {}, "message": "File not found.", "status": 404}));

    // A handler that writes nothing: an empty 200.
    let r = call(port, "GET", "/empty", None, None);
    assert_eq!((r.status, r.body.len()), (200, 0));

    let r = call(port, "GET", "/headers", None, None);
    assert_eq!((r.status, r.header("x-custom").as_deref()), (204, Some("yes")));
    let r = call(port, "GET", "/redirect", None, None);
    assert_eq!((r.status, r.header("location").as_deref()), (302, Some("/hello/there")));
    let r = call(port, "GET", "/html", None, None);
    assert_eq!(r.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
}

#[test]
fn request_info_parses_json_and_forms() {
    let p = serve_fixture("routes", Spawn::serve());
    let r = call_with(p.port, "POST", "/echo?q=1&q=2", None, Some(&json!({"a": 1, "b": "x"})), &[("User-Agent", "tester")]);
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(
        r.json(),
        json!({"body": {"a": 1, "b": "x"}, "query": {"q": "1"}, "ua": "tester", "method": "POST", "context": "default", "auth": null})
    );
    // Multipart values are inferred: numbers and booleans.
    let body = small_multipart(&[("n", "12"), ("t", "true"), ("s", "abc")], &[]);
    let r = post_multipart(p.port, "/echo", "", &body);
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(r.json()["body"], json!({"n": 12, "t": true, "s": "abc"}));

    let r = call(p.port, "POST", "/bind", None, Some(&json!({"title": "t", "count": 3, "ok": true, "extra": "dropped"})));
    assert_eq!(r.json(), json!({"title": "t", "count": 3, "ok": true}));
}

#[test]
fn thrown_errors_take_pocketbases_shape() {
    let p = serve_fixture("routes", Spawn::serve());
    let r = call(p.port, "GET", "/throws/api", None, None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"status": 400, "message": "Bad thing.", "data": {
            "title": {"code": "x_code", "message": "Nope."},
            "other": {"code": "validation_invalid_value", "message": "Invalid value."},
            "nested": {"a": {"code": "validation_invalid_value", "message": "Invalid value."}},
        }})
    );
    // Anything that is not an ApiError hides its text behind the generic 400.
    for path in ["/throws/plain", "/throws/reference"] {
        let r = call(p.port, "GET", path, None, None);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json(), json!({"status": 400, "message": "Something went wrong while processing your request.", "data": {}}));
    }
    // ... and is logged with the file and line of the throw.
    let logged = p.wait_logs(1, START_TIMEOUT, |v| v["message"] == "hook failed" && v["error"].as_str().is_some_and(|e| e.contains("secret detail")));
    assert!(logged[0]["file"].as_str().is_some_and(|f| f.ends_with("main.pb.js")), "{}", logged[0]);
    assert_eq!(logged[0]["line"], 26, "{}", logged[0]);

    let r = call(p.port, "GET", "/throws/notfound", None, None);
    assert_eq!(r.json(), json!({"status": 404, "message": "The requested resource wasn't found.", "data": {}}));
    let r = call(p.port, "GET", "/throws/api500", None, None);
    assert_eq!(r.json(), json!({"status": 500, "message": "Internal Server Error.", "data": {}}));
    // Unknown $app members say so instead of being undefined.
    let r = call(p.port, "GET", "/unsupported", None, None);
    assert_eq!(r.status, 400);
    p.wait_logs(1, START_TIMEOUT, |v| {
        v["error"].as_str().is_some_and(|e| e.contains("TypeError: $app.findSomethingImaginary is not supported by vaultbase"))
    });
}

#[test]
fn middlewares_and_the_chain() {
    let p = serve_fixture("routes", Spawn::serve());
    // Priority -1 first, then the global middleware, the route's own, the handler.
    assert_eq!(text(&call(p.port, "GET", "/trace", None, None)), "2134");
    let r = call(p.port, "GET", "/next-error", None, None);
    assert_eq!(r.json(), json!({"message": "Deep.", "status": 403, "direct": true}));
    // A middleware that does not call e.next() ends the chain: an empty 200.
    let r = call(p.port, "GET", "/stopped", None, None);
    assert_eq!((r.status, r.body.len()), (200, 0));

    let r = call(p.port, "GET", "/guarded", None, None);
    assert_eq!(r.json(), json!({"status": 401, "message": "The request requires valid record authorization token.", "data": {}}));
    let r = call(p.port, "GET", "/superusers-only", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(text(&call(p.port, "GET", "/guests-only", None, None)), "in");
}

#[test]
fn utilities_and_async_handlers() {
    let p = serve_fixture("routes", Spawn::serve());
    let r = call(p.port, "GET", "/utils", None, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        r.json(),
        json!({
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "hs256": "9c196e32dc0175f86f4b1cb89289d6619de6bee699e4c378e68309ed97a1a6ab",
            "len": 12,
            "sub": "x",
            "env": "",
            "bytes": "héllo",
            "store": 1,
            "required": 42,
            "decrypted": "hello from pocketbase",
            "roundTrip": "again",
            "relative": "from json",
            "unmarshaled": {"a": 1, "c": true},
        })
    );
    assert_eq!(call(p.port, "GET", "/async", None, None).json(), json!({"v": 7}));

    assert_eq!(call(p.port, "GET", "/log", None, None).status, 204);
    let logged = p.wait_logs(1, START_TIMEOUT, |v| v["message"] == "hello from a hook");
    assert_eq!(logged[0]["level"], "INFO");
    assert_eq!(serde_json::from_str::<Value>(logged[0]["data"].as_str().expect("data")).expect("json"), json!({"answer": 42}));
}

/// Bound on a reload becoming visible: the watcher polls every 500 ms; only a reload that never
/// happens gets near it.
const RELOAD_BOUND: Duration = Duration::from_secs(60);

/// Polls `path` until its body is `want` (a reload is asynchronous by nature).
fn wait_body(port: u16, path: &str, want: &str) {
    let deadline = Instant::now() + RELOAD_BOUND;
    loop {
        let r = call(port, "GET", path, None, None);
        if text(&r) == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never answered {want:?}; last {} {}", r.status, text(&r));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_runaway_loop_is_interrupted_and_the_server_keeps_serving() {
    let p = serve_fixture("limits", Spawn::serve().env("VAULTBASE_HOOKS_TIMEOUT", "1"));
    let port = p.port;
    let looping = std::thread::spawn(move || call(port, "GET", "/loop", None, None));
    // Once the loop is spinning (it says so in the store), another request is still served
    // while the loop's request has not been answered.
    wait_body(port, "/looping", "true");
    assert_eq!(text(&call(port, "GET", "/ok", None, None)), "ok");
    assert!(!looping.is_finished(), "the loop was still running while /ok answered");
    let r = looping.join().expect("loop request");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"status": 500, "message": "Something went wrong while processing your request.", "data": {}}));
    let logged = p.wait_logs(1, START_TIMEOUT, |v| v["message"].as_str().is_some_and(|m| m.contains("past its deadline")));
    assert_eq!(logged[0]["hook"], "GET /loop");
    assert_eq!(logged[0]["line"], 2, "{}", logged[0]);
    // The interrupt cannot be caught by the hook.
    assert_eq!(call(port, "GET", "/catching-loop", None, None).status, 500);
    assert_eq!(text(&call(port, "GET", "/ok", None, None)), "ok");
}

#[test]
fn an_allocation_bomb_hits_the_memory_limit_and_nothing_else() {
    // One JS thread: sequential requests all run on the same runtime, so its rebuild shows.
    let p = serve_fixture("limits", Spawn::serve().env("VAULTBASE_HOOKS_MEMORY", "16").env("VAULTBASE_HOOKS_POOL", "1"));
    for path in ["/bomb", "/global-bomb", "/global-bomb"] {
        assert_eq!(call(p.port, "POST", "/leak", None, None).status, 204);
        assert_eq!(text(&call(p.port, "GET", "/leaked", None, None)), "still here", "the positive control, before {path}");
        let r = call(p.port, "GET", path, None, None);
        assert_eq!(r.status, 500, "{path}: {}", text(&r));
        assert_eq!(r.json(), json!({"status": 500, "message": "Something went wrong while processing your request.", "data": {}}));
        // The runtime that hit the limit was replaced by a fresh one (its globals are gone),
        // which serves normally.
        assert_eq!(text(&call(p.port, "GET", "/leaked", None, None)), "undefined", "after {path}");
        assert_eq!(text(&call(p.port, "GET", "/ok", None, None)), "ok", "after {path}");
    }
    let logged = p.wait_logs(3, START_TIMEOUT, |v| v["message"].as_str().is_some_and(|m| m.contains("out of memory")));
    assert!(logged.iter().all(|l| l["file"].as_str().is_some_and(|f| f.ends_with("main.pb.js"))), "{logged:?}");
    assert_eq!(call(p.port, "GET", "/_/health", None, None).status, 200);
}

#[test]
fn a_duplicate_route_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("hooks");
    copy_fixture("duplicate", &hooks);
    let mut p = Spawn::serve().args(&["--hooksDir", hooks.to_str().expect("utf-8")]).in_tempdir(tmp).start();
    let status = p.wait_exit(START_TIMEOUT).expect("exits");
    assert!(!status.success());
    let log = p.log_text();
    assert!(log.contains("b.pb.js:2: duplicate route GET /same (first registered at"), "{log}");
    assert!(!log.contains("\"listening\""), "{log}");
}

#[test]
fn a_cluster_whose_hooks_fail_to_load_refuses_to_start_instead_of_crash_looping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("hooks");
    copy_fixture("duplicate", &hooks);
    let mut p = Spawn::cluster(2).args(&["--hooksDir", hooks.to_str().expect("utf-8")]).in_tempdir(tmp).start();
    // Without the refusal the supervisor respawns the workers forever and never exits.
    let status = p.wait_exit(START_TIMEOUT).expect("the supervisor exits");
    assert!(!status.success());
    let log = p.log_text();
    assert!(log.contains("b.pb.js:2: duplicate route GET /same"), "{log}");
    assert!(log.contains("refused to start"), "{log}");
    assert!(!log.contains("respawning"), "{log}");

    // The positive control: the same cluster with loadable hooks starts and serves the route.
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("hooks");
    copy_fixture("duplicate", &hooks);
    std::fs::remove_file(hooks.join("b.pb.js")).expect("remove the duplicate");
    let mut p = Spawn::cluster(2).args(&["--hooksDir", hooks.to_str().expect("utf-8")]).in_tempdir(tmp).start();
    p.wait_healthy();
    assert_eq!(call(p.port, "GET", "/same", None, None).status, 200);
}

#[test]
fn a_custom_route_cannot_shadow_a_system_route() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("hooks");
    copy_fixture("system", &hooks);
    let mut p = Spawn::serve().args(&["--hooksDir", hooks.to_str().expect("utf-8")]).in_tempdir(tmp).start();
    let status = p.wait_exit(START_TIMEOUT).expect("exits");
    assert!(!status.success());
    let log = p.log_text();
    assert!(log.contains("main.pb.js:3: the route GET /api/collections/{collection}/records collides with vaultbase's own route"), "{log}");

    // The positive control: without the colliding line the same file loads and serves.
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("hooks");
    copy_fixture("system", &hooks);
    let file = hooks.join("main.pb.js");
    let src = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, src.lines().filter(|l| !l.contains("shadowed")).collect::<Vec<_>>().join("\n")).expect("write");
    let mut p = Spawn::serve().args(&["--hooksDir", hooks.to_str().expect("utf-8")]).in_tempdir(tmp).start();
    p.wait_healthy();
    assert_eq!(text(&call(p.port, "GET", "/fine", None, None)), "fine");
}

/// Writes a hook file the way an editor's atomic save does (a hidden temp file renamed).
fn write_hook(dir: &Path, name: &str, src: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, src).expect("write temp");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

fn versioned(v: u32) -> String {
    format!(
        "routerAdd(\"GET\", \"/version\", (e) => e.string(200, \"{v}\"));\nrouterAdd(\"GET\", \"/ping\", (e) => {{ sleep(5); e.string(200, \"pong-{v}\") }});\n"
    )
}

#[test]
fn hot_reload_under_load_fails_no_request_and_keeps_the_last_good_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("pb_hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    write_hook(&hooks, "main.pb.js", &versioned(1));
    let mut p = Spawn::serve().in_tempdir(tmp).start();
    p.wait_healthy();
    let port = p.port;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut seen) = (0u32, Vec::new(), std::collections::BTreeSet::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = call(port, "GET", "/ping", None, None);
                    if r.status == 200 {
                        ok += 1;
                        seen.insert(text(&r));
                    } else {
                        failed.push((r.status, text(&r)));
                    }
                }
                (ok, failed, seen)
            })
        })
        .collect();

    for v in 2..=4 {
        write_hook(&hooks, "main.pb.js", &versioned(v));
        wait_body(port, "/version", &v.to_string());
    }
    // A broken file: logged with its file and line, the last good set keeps serving.
    write_hook(&hooks, "main.pb.js", "routerAdd(\"GET\", \"/version\", (e) => e.string(200, \"5\"));\nthis is not javascript\n");
    let logged = p.wait_logs(1, START_TIMEOUT, |v| v["message"] == "reloading the hooks failed; the previous hooks keep running");
    assert!(logged[0]["file"].as_str().is_some_and(|f| f.ends_with("main.pb.js")), "{}", logged[0]);
    assert_eq!(logged[0]["line"], 2, "{}", logged[0]);
    assert_eq!(text(&call(port, "GET", "/version", None, None)), "4");
    write_hook(&hooks, "main.pb.js", &versioned(6));
    wait_body(port, "/version", "6");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    let mut seen_all = std::collections::BTreeSet::new();
    for h in hammers {
        let (ok, failed, seen) = h.join().expect("hammer");
        assert!(failed.is_empty(), "requests failed during reloads: {failed:?}");
        total += ok;
        seen_all.extend(seen);
    }
    // The race happened: requests were answered by several generations across the swaps.
    assert!(seen_all.len() >= 3, "only saw {seen_all:?} in {total} requests");
    // The last reload's line may trail its first answer (see the cluster test below).
    p.wait_logs(4, RELOAD_BOUND, |v| v["message"] == "hooks reloaded");
    assert_eq!(p.logs_with_message("hooks reloaded").len(), 4);
}

#[test]
fn a_cluster_serves_routes_from_every_worker_and_reloads_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    write_hook(&hooks, "main.pb.js", &versioned(1));
    let mut p = Spawn::cluster(2).args(&["--hooksDir", hooks.to_str().expect("utf-8")]).in_tempdir(tmp).start();
    p.wait_healthy();
    p.wait_logs(2, START_TIMEOUT, |v| v["message"] == "listening" && v["role"] == "worker");
    let mut conns = connection_per_worker(p.port, 2);
    for s in conns.values_mut() {
        assert_eq!(String::from_utf8_lossy(&exchange(s, "GET", "/version").expect("version").body), "1");
    }
    write_hook(&hooks, "main.pb.js", &versioned(2));
    let deadline = Instant::now() + RELOAD_BOUND;
    for (id, s) in conns.iter_mut() {
        loop {
            let body = String::from_utf8_lossy(&exchange(s, "GET", "/version").expect("version").body).into_owned();
            if body == "2" {
                break;
            }
            assert!(Instant::now() < deadline, "worker {id} never reloaded (still {body})");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // A worker logs the reload after it swapped the set in (through its log thread), so the
    // line may trail the first answer of the new version.
    p.wait_logs(2, RELOAD_BOUND, |v| v["message"] == "hooks reloaded");
    assert_eq!(p.logs_with_message("hooks reloaded").len(), 2, "one reload per worker");
    // A broken file: every worker logs it and keeps serving its last good set.
    write_hook(&hooks, "main.pb.js", "routerAdd(\"GET\", \"/version\", (e) => e.string(200, \"3\"));\n)(\n");
    p.wait_logs(2, RELOAD_BOUND, |v| v["message"] == "reloading the hooks failed; the previous hooks keep running");
    for s in conns.values_mut() {
        assert_eq!(String::from_utf8_lossy(&exchange(s, "GET", "/version").expect("version").body), "2");
    }
}

#[test]
fn cron_add_registers_jobs_that_run_on_the_pool() {
    let hooks = tempfile::tempdir().expect("tempdir");
    copy_fixture("cron", hooks.path());
    let (p, su) = start_with_superuser(Spawn::serve().args(&["--hooksDir", hooks.path().to_str().expect("utf-8")]));
    let list = ok(call(p.port, "GET", "/api/crons", Some(&su), None));
    let jobs: Vec<&Value> = list.as_array().expect("array").iter().filter(|j| !j["id"].as_str().unwrap_or("").starts_with("__pb")).collect();
    assert_eq!(jobs, vec![&json!({"id": "hello", "expression": "*/5 * * * *"})], "cronRemove dropped \"gone\"");

    assert_eq!(call(p.port, "POST", "/api/crons/hello", Some(&su), None).status, 204);
    let deadline = Instant::now() + START_TIMEOUT;
    while call(p.port, "GET", "/cron-ran", None, None).json()["n"] != 1 {
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(call(p.port, "POST", "/cron-add", None, None).status, 204);
    let ids: Vec<String> = ok(call(p.port, "GET", "/api/crons", Some(&su), None)).as_array().expect("array").iter().map(|j| j["id"].as_str().unwrap_or("").to_owned()).collect();
    assert!(ids.contains(&"runtime".to_owned()), "{ids:?}");
    assert_eq!(call(p.port, "POST", "/api/crons/runtime", Some(&su), None).status, 204);
    while call(p.port, "GET", "/cron-ran", None, None).json()["runtime"] != true {
        assert!(Instant::now() < deadline, "the runtime job never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bootstrap_terminate_http_and_exec() {
    let hooks = tempfile::tempdir().expect("tempdir");
    copy_fixture("lifecycle", hooks.path());
    let mut p = Spawn::serve().args(&["--hooksDir", hooks.path().to_str().expect("utf-8")]).start();
    p.wait_healthy();
    // onBootstrap ran once, both handlers in order.
    assert_eq!(call(p.port, "GET", "/booted", None, None).json(), json!({"booted": 1, "order": "second"}));
    assert!(p.dir.join("types.d.ts").is_file(), "types.d.ts is written into the data dir");

    // $http.send may call this very server: handlers do not hold the only thread.
    let r = call(p.port, "GET", &format!("/self/{}", p.port), None, None);
    assert_eq!(r.json(), json!({"status": 200, "message": "API is healthy.", "type": ["application/json"]}));
    assert_eq!(text(&call(p.port, "GET", "/unreachable", None, None)), "threw");
    // $os.cmd is refused unless allowed.
    assert_eq!(call(p.port, "GET", "/exec", None, None).status, 400);
    p.wait_logs(1, START_TIMEOUT, |v| v["error"].as_str().is_some_and(|e| e.contains("VAULTBASE_HOOKS_ALLOW_EXEC")));

    // After a reload (on the watcher's thread) the new set can still reach async code, and
    // its onBootstrap ran.
    let file = hooks.path().join("main.pb.js");
    let src = std::fs::read_to_string(&file).expect("read");
    write_hook(hooks.path(), "main.pb.js", &format!("{src}\n// edited\n"));
    p.wait_logs(1, RELOAD_BOUND, |v| v["message"] == "hooks reloaded");
    assert_eq!(call(p.port, "GET", "/booted", None, None).json(), json!({"booted": 2, "order": "second"}));
    assert_eq!(call(p.port, "GET", &format!("/self/{}", p.port), None, None).json()["status"], 200);

    p.signal(Signal::SIGTERM);
    p.wait_exit(START_TIMEOUT).expect("drains");
    assert_eq!(p.logs_with_message("terminating from a hook").len(), 1);
}

#[test]
fn apis_middlewares_with_tokens() {
    let hooks = tempfile::tempdir().expect("tempdir");
    copy_fixture("lifecycle", hooks.path());
    let (p, su) = start_with_superuser(Spawn::serve().args(&["--hooksDir", hooks.path().to_str().expect("utf-8")]));
    let user = ok(call(p.port, "POST", "/api/collections/users/records", None, Some(&json!({"email": "u@example.com", "password": "password123", "passwordConfirm": "password123"}))));
    let auth = ok(call(p.port, "POST", "/api/collections/users/auth-with-password", None, Some(&json!({"identity": "u@example.com", "password": "password123"}))));
    let token = auth["token"].as_str().expect("token");
    let id = user["id"].as_str().expect("id");

    let r = call(p.port, "GET", "/users-only", Some(token), None);
    assert_eq!(r.json(), json!({"id": id, "collection": "users", "superuser": false}));
    let r = call(p.port, "GET", "/users-only", Some(&su), None);
    assert_eq!(r.json(), json!({"status": 403, "message": "The authorized record is not allowed to perform this action.", "data": {}}));
    let r = call(p.port, "GET", "/users-only", Some("not a token"), None);
    assert_eq!(r.status, 401, "an invalid token is a guest");

    assert_eq!(call(p.port, "GET", "/superusers-only", Some(token), None).json()["status"], 403);
    assert_eq!(text(&call(p.port, "GET", "/superusers-only", Some(&su), None)), "in");
    let r = call(p.port, "GET", "/guests-only", Some(token), None);
    assert_eq!(r.json(), json!({"status": 400, "message": "The request can be accessed only by guests.", "data": {}}));

    assert_eq!(text(&call(p.port, "GET", &format!("/owner/{id}"), Some(token), None)), "owner");
    assert_eq!(call(p.port, "GET", "/owner/someone-else", Some(token), None).json()["status"], 403);
    assert_eq!(text(&call(p.port, "GET", "/owner/someone-else", Some(&su), None)), "owner");
    assert_eq!(call(p.port, "GET", "/owner/x", None, None).json()["status"], 401);

    // e.realIP() follows the trustedProxy setting as soon as it is saved.
    let r = call_with(p.port, "GET", "/ip", None, None, &[("X-Forwarded-For", "9.9.9.9")]);
    assert_eq!(r.json(), json!({"real": "127.0.0.1", "remote": "127.0.0.1"}));
    ok(call(p.port, "PATCH", "/api/settings", Some(&su), Some(&json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": false}}))));
    let r = call_with(p.port, "GET", "/ip", None, None, &[("X-Forwarded-For", "9.9.9.9")]);
    assert_eq!(r.json(), json!({"real": "9.9.9.9", "remote": "127.0.0.1"}));

    assert_eq!(text(&call(p.port, "POST", "/limited", None, Some(&json!("short")))), "in");
    let r = call(p.port, "POST", "/limited", None, Some(&json!("a body longer than ten bytes")));
    assert_eq!(r.status, 413);
}

/// A `pocketbase serve` killed on drop.
struct PocketBase {
    child: std::process::Child,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_pocketbase(hooks: &Path) -> PocketBase {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = std::process::Command::new(pocketbase_binary())
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--automigrate=false", "--hooksWatch=false", "--dir"])
        .arg(tmp.path().join("pb_data"))
        .arg("--hooksDir")
        .arg(hooks)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pocketbase");
    let pb = PocketBase { child, port, _tmp: tmp };
    let deadline = Instant::now() + START_TIMEOUT;
    while get(port, "/api/health").map(|r| r.status).ok() != Some(200) {
        assert!(Instant::now() < deadline, "pocketbase did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    pb
}

/// Status, content type and body (structurally for JSON) of one answer.
fn answer(r: &Resp) -> (u16, Option<String>, Value) {
    let body = serde_json::from_slice(&r.body).unwrap_or_else(|_| Value::String(text(r)));
    (r.status, r.header("content-type"), body)
}

/// Runs `requests` against `pocketbase serve` and vaultbase with the same copy of `fixture`
/// and compares the answers structurally (JSON key order is random in PocketBase 0.40).
fn compare_with_pocketbase(fixture: &str, requests: &[(&str, &str, Option<Value>)]) {
    let hooks = tempfile::tempdir().expect("tempdir");
    copy_fixture(fixture, hooks.path());
    let pb = start_pocketbase(hooks.path());
    let mut vb = Spawn::serve().args(&["--hooksDir", hooks.path().to_str().expect("utf-8")]).start();
    vb.wait_healthy();
    for (method, path, body) in requests {
        let theirs = answer(&call(pb.port, method, path, None, body.as_ref()));
        let ours = answer(&call(vb.port, method, path, None, body.as_ref()));
        assert_eq!(ours, theirs, "{fixture}: {method} {path}: vaultbase (left) and PocketBase (right) differ");
    }
}

#[test]
fn the_routes_fixture_answers_as_pocketbase_does() {
    compare_with_pocketbase(
        "routes",
        &[
            ("GET", "/hello/bob?q=1", None),
            ("GET", "/files/a/b/c.txt", None),
            ("GET", "/exact/", None),
            ("GET", "/exact/more", None),
            ("GET", "/prefix/x/y", None),
            ("POST", "/hello/bob", None),
            ("GET", "/nowhere", None),
            ("GET", "/empty", None),
            ("POST", "/echo?q=1&q=2", Some(json!({"a": 1, "b": [true, null]}))),
            ("GET", "/throws/api", None),
            ("GET", "/throws/plain", None),
            ("GET", "/throws/reference", None),
            ("GET", "/throws/notfound", None),
            ("GET", "/throws/api500", None),
            ("GET", "/headers", None),
            ("GET", "/redirect", None),
            ("GET", "/html", None),
            ("GET", "/trace", None),
            ("GET", "/next-error", None),
            ("GET", "/stopped", None),
            ("GET", "/guarded", None),
            ("GET", "/superusers-only", None),
            ("GET", "/guests-only", None),
            ("POST", "/bind", Some(json!({"title": "t", "count": 3, "ok": true, "extra": 1}))),
            ("POST", "/bind", Some(json!({"title": 5}))),
            ("GET", "/utils", None),
            ("GET", "/async", None),
            ("GET", "/unsupported", None),
        ],
    );
}

#[test]
fn the_static_fixture_answers_as_pocketbase_does() {
    compare_with_pocketbase(
        "static",
        &[
            ("GET", "/app/sub/site.css", None),
            ("GET", "/app/", None),
            ("GET", "/app/some/client/route", None),
            ("GET", "/strict/missing.js", None),
            ("GET", "/strict/..%2Foutside.txt", None),
            ("GET", "/strict/", None),
        ],
    );
}

#[test]
fn the_globals_fixture_answers_as_pocketbase_does() {
    compare_with_pocketbase(
        "globals",
        &[
            ("GET", "/api/health?block=1", None),
            ("GET", "/api/collections/users/records?block=1", None),
            ("GET", "/api/collections?answer=1", None),
            ("GET", "/nowhere", None),
            ("GET", "/own", None),
            ("GET", "/own?block=1", None),
        ],
    );
}

#[test]
fn a_failing_on_bootstrap_refuses_the_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks = tmp.path().join("pb_hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    write_hook(&hooks, "main.pb.js", "onBootstrap((e) => { throw new BadRequestError(\"not today\") });\n");
    let mut p = Spawn::serve().in_tempdir(tmp).start();
    assert!(!p.wait_exit(START_TIMEOUT).expect("exits").success());
    let log = p.log_text();
    assert!(log.contains("onBootstrap failed: Not today."), "{log}");
}

#[test]
fn router_use_wraps_system_routes_too() {
    let hooks = tempfile::tempdir().expect("tempdir");
    copy_fixture("globals", hooks.path());
    let (p, su) = start_with_superuser(Spawn::serve().args(&["--hooksDir", hooks.path().to_str().expect("utf-8")]));
    let r = call(p.port, "GET", "/api/health", None, None);
    assert_eq!((r.status, r.header("x-global").as_deref()), (200, Some("seen /api/health")));
    assert_eq!(r.json()["message"], "API is healthy.");
    let r = call(p.port, "GET", "/api/health?block=1", None, None);
    assert_eq!(r.json(), json!({"status": 403, "message": "Blocked by a global middleware.", "data": {}}));
    let r = call(p.port, "GET", "/api/collections?answer=1", Some(&su), None);
    assert_eq!(r.json(), json!({"answeredBy": "middleware", "auth": "_superusers"}));
    // A system route with a body still gets it (the middlewares see only the head).
    let r = call(p.port, "POST", "/api/collections/users/records", None, Some(&json!({"email": "g@example.com", "password": "password123", "passwordConfirm": "password123"})));
    assert_eq!((r.status, r.header("x-global").as_deref()), (200, Some("seen /api/collections/users/records")), "{}", text(&r));
    // Unknown paths too, and a custom route runs them once, in its own chain.
    assert_eq!(call(p.port, "GET", "/nowhere", None, None).header("x-global").as_deref(), Some("seen /nowhere"));
    let r = call(p.port, "GET", "/own", None, None);
    assert_eq!((text(&r), r.header("x-global").as_deref()), ("own route-mw".to_owned(), Some("seen /own")));
    assert_eq!(call(p.port, "GET", "/own?block=1", None, None).status, 403);
}

#[test]
fn apis_static_serves_a_directory() {
    let p = serve_fixture("static", Spawn::serve());
    let r = call(p.port, "GET", "/app/sub/site.css", None, None);
    assert_eq!((r.status, text(&r).as_str(), r.header("content-type").as_deref()), (200, "body{}\n", Some("text/css; charset=utf-8")));
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(text(&call(p.port, "GET", "/app/", None, None)), "<h1>index</h1>\n");
    // indexFallback: an unknown path is the SPA's index.
    assert_eq!(text(&call(p.port, "GET", "/app/some/client/route", None, None)), "<h1>index</h1>\n");
    let r = call(p.port, "GET", "/strict/missing.js", None, None);
    assert_eq!(r.json(), json!({"status": 404, "message": "File not found.", "data": {}}));
    // Never a file outside the directory.
    assert_eq!(call(p.port, "GET", "/strict/..%2Foutside.txt", None, None).status, 404);
    assert_eq!(call(p.port, "GET", "/strict/%2E%2E/outside.txt", None, None).status, 404);
    assert_eq!(call(p.port, "GET", "/strict/sub/site.css", None, None).status, 200, "the positive control");
}

/// `$app.logger()` lines are application logs in `_logs` (PocketBase's shape: the message, the
/// level number, the key/value pairs as `data`), read back through `/api/logs`.
#[test]
fn app_logger_lines_reach_the_logs_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_fixture("routes", &tmp.path().join("pb_hooks"));
    create_superuser(&tmp.path().join("data"), SU_EMAIL, SU_PASSWORD);
    let mut p = Spawn::serve().in_tempdir(tmp).start();
    p.wait_healthy();
    let auth = call(p.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD})));
    let su = auth.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(call(p.port, "GET", "/log", None, None).status, 204);
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    let item = loop {
        let list = ok(call(p.port, "GET", "/api/logs?filter=message%3D'hello%20from%20a%20hook'", Some(&su), None));
        if let Some(item) = list["items"].as_array().and_then(|a| a.first()).cloned() {
            break item;
        }
        assert!(std::time::Instant::now() < deadline, "the hook's log line never reached /api/logs: {list}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(item["level"], 0, "info, as slog numbers it: {item}");
    assert_eq!(item["data"], json!({"answer": 42}), "{item}");
    // Positive control beside it: the request that ran the hook is logged as a request. Its
    // entry is made when the answer is written, after the hook's line, so it may reach the
    // logs in a later flush.
    let requests = loop {
        let requests = ok(call(p.port, "GET", "/api/logs?filter=data.url%3D'%2Flog'", Some(&su), None));
        if requests["totalItems"] != 0 || std::time::Instant::now() >= deadline {
            break requests;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(requests["totalItems"], 1, "{requests}");
}
