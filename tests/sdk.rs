//! The official PocketBase JS SDK (npm `pocketbase`, pinned in `tests/sdk/package.json`) drives
//! the real binary under node: the scenarios in `tests/sdk/*.test.mjs` run unchanged against
//! `vaultbase serve` and against a three-worker `vaultbase cluster`. Real clients working
//! unchanged is the point of the wire compatibility, so this runs the client itself rather
//! than an imitation of it.
//!
//! Needs node ≥ 18 and npm. The pinned SDK is installed with `npm ci --prefix tests/sdk` by the
//! test itself when `node_modules` is missing or stale (once per run), so `cargo test` is the
//! whole set-up; `.ci/run` also installs node and npm on a machine that lacks them. A failed
//! install is a failure with the instruction, never a skip.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

const EMAIL: &str = "sdk-admin@example.com";
const PASSWORD: &str = "sdk superuser password";
/// The `test(...)` scenarios in `tests/sdk/*.test.mjs`, all of which must run and pass (the
/// same set in serve and cluster mode). Adding or removing a scenario changes this number.
const SCENARIOS: u64 = 96;
/// Scenario files run on their own after the others: a restore rolls back every write made
/// since its backup, including those of scenarios running beside it.
const RUN_ALONE: &[&str] = &["backups.test.mjs"];
/// Bound for one whole node run (all scenario files) on a loaded 2-core machine; a run takes
/// a few seconds, so only a hang gets near it.
const NODE_TIMEOUT: Duration = Duration::from_secs(300);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("sdk")
}

/// Installs the pinned SDK (`npm ci`) unless the installed one is already it. Once per test
/// binary: the two tests below would otherwise race on one `node_modules`.
fn ensure_installed(dir: &Path) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let pinned = |p: PathBuf, key: &str| -> Option<serde_json::Value> {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
            Some(if key == "version" { v["version"].clone() } else { v["dependencies"]["pocketbase"].clone() })
        };
        let wanted = pinned(dir.join("package.json"), "dependencies");
        let installed = pinned(dir.join("node_modules").join("pocketbase").join("package.json"), "version");
        // MailDev (the account-flow scenarios' SMTP capture) is installed by the same `npm ci`.
        let maildev = dir.join("node_modules").join("maildev").join("package.json").exists();
        // The realtime scenarios' EventSource polyfill, from the same `npm ci`.
        let eventsource = dir.join("node_modules").join("eventsource").join("package.json").exists();
        if wanted.is_some() && wanted == installed && maildev && eventsource {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm ({e}): install node >= 18 and npm (.ci/run does this)"));
        assert!(
            out.status.success(),
            "npm ci --prefix tests/sdk failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    check_installed(dir);
}

/// The installed SDK is the pinned one; anything else means `npm ci` was not run (or is stale).
fn check_installed(dir: &Path) {
    let fix = "run `npm ci --prefix tests/sdk` (needs node >= 18 and npm; .ci/run does this)";
    let read = |p: PathBuf| -> serde_json::Value {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("the JS SDK is not installed ({}: {e}): {fix}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {fix}", p.display()))
    };
    let wanted = read(dir.join("package.json"))["dependencies"]["pocketbase"].clone();
    let installed = read(dir.join("node_modules").join("pocketbase").join("package.json"))["version"].clone();
    assert_eq!(installed, wanted, "tests/sdk/node_modules holds pocketbase {installed}, package.json pins {wanted}: {fix}");
    let version = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install node >= 18, then {fix}"));
    let v = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = v.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= 18, "node {v} is too old: the SDK scenarios need node >= 18 (fetch, FormData, node:test)");
}

/// `tests/sdk/*.test.mjs`, sorted. Listed explicitly because how `node --test DIR` finds files
/// differs between node 18, 20 and 22.
fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read tests/sdk")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".test.mjs")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no tests/sdk/*.test.mjs found");
    files
}

struct NodeRun {
    status: ExitStatus,
    output: String,
}

/// Runs node's test runner over every scenario file against `url`; its own process group, so
/// a hung run (node runs each file in a child process) is killed whole at the deadline.
fn run_scenarios(url: &str, alone: bool) -> NodeRun {
    let dir = sdk_dir();
    let files = scenario_files(&dir)
        .into_iter()
        .filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| RUN_ALONE.contains(&n)) == alone);
    let mut child = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .args(files)
        .current_dir(&dir)
        .env("VB_URL", url)
        .env("VB_EMAIL", EMAIL)
        .env("VB_PASSWORD", PASSWORD)
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn node");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait node") {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.wait();
            panic!(
                "node did not finish within {NODE_TIMEOUT:?}; output so far:\n{}\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!("{}{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    NodeRun { status, output }
}

fn kill_group(pid: u32) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// A count from the runner's summary (`ℹ pass 51` from the spec reporter, `# pass 51` in TAP).
fn summary_count(output: &str, key: &str) -> Option<u64> {
    output.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("ℹ ").or_else(|| l.trim().strip_prefix("# "))?;
        rest.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Creates the superuser with the CLI (as an operator would, before the first start), starts
/// the server and runs every scenario against it.
fn scenarios_pass_against(spawn: Spawn) {
    ensure_installed(&sdk_dir());
    let tmp = tempfile::tempdir().expect("tempdir");
    let cli = Command::new(BIN)
        .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
        .arg(tmp.path().join("data"))
        .output()
        .expect("run superuser upsert");
    assert!(cli.status.success(), "superuser upsert failed: {}", String::from_utf8_lossy(&cli.stderr));
    // The test routes carry the write observer the pipeline scenarios read.
    let mut server = spawn.env("VAULTBASE_TEST_ROUTES", "1").env("VAULTBASE_TEST_OBSERVER", "1").in_tempdir(tmp).start();
    server.wait_healthy();

    let mut ran = 0;
    for alone in [false, true] {
        let run = run_scenarios(&format!("http://127.0.0.1:{}", server.port), alone);
        assert!(
            run.status.success(),
            "the SDK scenarios failed ({}):\n{}\n--- server log ---\n{}",
            run.status,
            run.output,
            server.log_text()
        );
        assert_eq!(summary_count(&run.output, "fail"), Some(0), "{}", run.output);
        let tests = summary_count(&run.output, "tests").unwrap_or(0);
        assert_eq!(summary_count(&run.output, "pass"), Some(tests), "{}", run.output);
        for key in ["skipped", "todo", "cancelled"] {
            assert_eq!(summary_count(&run.output, key), Some(0), "{key}:\n{}", run.output);
        }
        ran += tests;
    }
    // Exactly the scenarios there are: a file that stops loading, a test that is skipped or
    // a `before` that silently returns early would otherwise pass with fewer.
    assert_eq!(ran, SCENARIOS, "scenarios run in all");
}

/// `npm ci` (here and in `.ci/run`) installs from the cache without a single registry request
/// only when each lock entry names its tarball (`resolved`) and its hash (`integrity`).
/// Without the URL npm asks the registry for every package's metadata first, even with
/// everything cached; where those requests fail or stall it retries each with backoff before
/// falling back to the cache, which made a fresh clone's first run take three minutes. This
/// machine's user npmrc sets `omit-lockfile-registry-resolved`, so `tests/sdk/.npmrc` turns it
/// back off for this project.
#[test]
fn the_sdk_lockfile_names_every_tarball() {
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sdk_dir().join("package-lock.json")).expect("read package-lock.json")).expect("lock JSON");
    let packages = lock["packages"].as_object().expect("lockfileVersion 3 `packages`");
    let mut checked = 0;
    for (path, meta) in packages {
        if path.is_empty() || meta["link"] == true {
            continue;
        }
        let resolved = meta["resolved"].as_str().unwrap_or_default();
        assert!(resolved.starts_with("https://") && resolved.ends_with(".tgz"), "{path} has no tarball URL in package-lock.json: regenerate it in tests/sdk (its .npmrc keeps the URLs)");
        assert!(meta["integrity"].as_str().is_some_and(|i| i.starts_with("sha512-")), "{path} has no integrity in package-lock.json");
        checked += 1;
    }
    assert!(checked > 0, "no package in package-lock.json");
}

#[test]
fn the_js_sdk_scenarios_pass_against_serve() {
    scenarios_pass_against(Spawn::serve());
}

#[test]
fn the_js_sdk_scenarios_pass_against_a_three_worker_cluster() {
    scenarios_pass_against(Spawn::cluster(3));
}
