//! The dashboard in a real browser: every `tests/ui/journeys/*.mjs` runs under node
//! (playwright-core driving Debian's chromium, see `tests/ui/lib.mjs`) against a fresh binary
//! that serves its embedded `/_/`. The table [`JOURNEYS`] says how each journey's server starts;
//! a journey file without a row fails [`every_journey_has_a_row`] (`*-lib.mjs` files are
//! helpers, not journeys).
//!
//! Needs node >= 18, npm and `/usr/bin/chromium` (or `VB_CHROMIUM`); a missing one fails the
//! test with the fix, never skips it. The pinned playwright-core is installed by `npm ci
//! --prefix tests/ui` once per run. Screenshots land in `$CARGO_TARGET_DIR/ui-shots/<journey>/`.
//! `VB_UI_JOURNEY=<name>` runs only that journey.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `serve` with a superuser (VB_EMAIL / VB_PASSWORD).
    Superuser,
    /// `serve` on an empty data dir: no superuser, VB_SETUP_URL is the printed link.
    FirstRun,
    /// `cluster` with this many workers and a superuser; VB_WORKER_PIDS lists the workers.
    Cluster(usize),
}

/// Every journey and the server it needs. Add a row with each new journey file.
const JOURNEYS: &[(&str, Mode)] = &[
    ("first-run.mjs", Mode::FirstRun),
    ("sign-in.mjs", Mode::Superuser),
    ("cluster.mjs", Mode::Cluster(2)),
    ("collections.mjs", Mode::Superuser),
    ("rules.mjs", Mode::Superuser),
    ("records.mjs", Mode::Superuser),
    ("logs.mjs", Mode::Superuser),
    ("settings.mjs", Mode::Superuser),
    ("mail.mjs", Mode::Superuser),
    ("backups.mjs", Mode::Superuser),
    ("crons.mjs", Mode::Superuser),
    ("sql.mjs", Mode::Superuser),
    ("webhooks.mjs", Mode::Superuser),
];

/// How long a cluster may take to report every worker ready.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("ui")
}

fn shots_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target")));
    target.join("ui-shots")
}

fn chromium() -> PathBuf {
    std::env::var_os("VB_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// node, chromium and the pinned playwright-core, installed once per test binary.
fn ensure_tools() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.as_ref().is_ok_and(|o| o.status.success()),
            "cannot run node ({node:?}): install node >= 18 and npm (apt-get install -y nodejs npm; .ci/run does this)"
        );
        assert!(
            chromium().exists(),
            "no chromium at {}: apt-get install -y chromium (.ci/run does this), or set VB_CHROMIUM to a chromium binary",
            chromium().display()
        );
        let dir = ui_dir();
        let wanted = std::fs::read_to_string(dir.join("package-lock.json")).ok();
        let installed = std::fs::read_to_string(dir.join("node_modules").join(".package-lock.json")).ok();
        let fresh = dir.join("node_modules").join("playwright-core").join("package.json").exists() && installed.is_some() && wanted.is_some();
        if fresh {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm ({e}): install node >= 18 and npm (.ci/run does this)"));
        assert!(
            out.status.success(),
            "npm ci --prefix tests/ui failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn journey_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ui_dir().join("journeys"))
        .expect("tests/ui/journeys")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // `*-lib.mjs` beside the journeys are their shared helpers, not journeys.
        .filter(|n| n.ends_with(".mjs") && !n.ends_with("-lib.mjs"))
        .collect();
    names.sort();
    names
}

/// The setup link the binary printed on stdout (first run).
fn printed_setup_url(stdout: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(stdout).unwrap_or_default();
        if let Some(at) = text.find("http://") {
            let url: String = text[at..].chars().take_while(|c| !c.is_whitespace()).collect();
            if url.contains("/_/#/setup/") {
                return url;
            }
        }
        assert!(Instant::now() < deadline, "no setup link on stdout: {text:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls the cluster endpoint until every worker is ready and has published its counters.
fn wait_cluster_ready(port: u16, token: &str, workers: usize) {
    let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
    loop {
        let r = call(port, "GET", "/api/vb/cluster", Some(token), None);
        if r.status == 200 {
            let v = r.json();
            let list = v["workers"].as_array().cloned().unwrap_or_default();
            if list.len() == workers && list.iter().all(|w| w["state"] == "ready" && w["requests"].is_u64()) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the cluster did not report {workers} ready workers: {}", String::from_utf8_lossy(&r.body));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the server for `mode`, runs `file` under node, and answers its failure output, if any.
fn run_journey(file: &str, mode: Mode) -> Result<(), String> {
    let name = file.trim_end_matches(".mjs");
    let shots = shots_root().join(name);
    let _ = std::fs::remove_dir_all(&shots);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut envs: Vec<(String, String)> = vec![("VB_SHOTS".into(), shots.display().to_string())];
    let server = match mode {
        Mode::FirstRun => {
            let stdout = tmp.path().join("stdout");
            let mut p = Spawn::serve().stdout_to(&stdout).start();
            p.wait_healthy();
            envs.push(("VB_SETUP_URL".into(), printed_setup_url(&stdout).replace("0.0.0.0", "127.0.0.1")));
            p
        }
        Mode::Superuser | Mode::Cluster(_) => {
            let spawn = if let Mode::Cluster(n) = mode { Spawn::cluster(n) } else { Spawn::serve() };
            let (p, token) = start_with_superuser(spawn);
            envs.push(("VB_EMAIL".into(), SU_EMAIL.into()));
            envs.push(("VB_PASSWORD".into(), SU_PASSWORD.into()));
            if let Mode::Cluster(n) = mode {
                wait_cluster_ready(p.port, &token, n);
                let view = call(p.port, "GET", "/api/vb/cluster", Some(&token), None).json();
                let listed: Vec<String> = view["workers"].as_array().into_iter().flatten().filter_map(|w| w["pid"].as_u64()).map(|p| p.to_string()).collect();
                // The journey compares the page with the processes the supervisor really spawned.
                let spawned: Vec<String> = p.worker_pids().iter().map(u32::to_string).collect();
                assert_eq!(sorted(listed), sorted(spawned.clone()), "the endpoint lists the spawned workers");
                envs.push(("VB_WORKER_PIDS".into(), spawned.join(",")));
            }
            p
        }
    };
    envs.push(("VB_URL".into(), format!("http://127.0.0.1:{}", server.port)));
    envs.push(("VB_DATA_DIR".into(), server.dir.display().to_string()));
    let out = Command::new("node")
        .arg(ui_dir().join("journeys").join(file))
        .current_dir(ui_dir())
        .envs(envs)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install node >= 18 (.ci/run does this)"));
    drop(server);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "journey {file} failed ({}); screenshots in {}\n{}{}",
            out.status,
            shots.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn every_journey_has_a_row() {
    let files = journey_files();
    assert!(!files.is_empty(), "no journeys found in tests/ui/journeys");
    let rows: Vec<String> = sorted(JOURNEYS.iter().map(|(f, _)| (*f).to_owned()).collect());
    assert_eq!(files, rows, "each tests/ui/journeys/*.mjs needs exactly one row in JOURNEYS (tests/ui.rs), and each row a file");
}

#[test]
fn journeys_pass_in_chromium() {
    ensure_tools();
    let only = std::env::var("VB_UI_JOURNEY").ok().filter(|s| !s.is_empty());
    let mut failures = Vec::new();
    let mut ran = 0;
    // One at a time: each starts its own server and browser, and the machine is small.
    for (file, mode) in JOURNEYS {
        if only.as_deref().is_some_and(|o| o != *file && o != file.trim_end_matches(".mjs")) {
            continue;
        }
        ran += 1;
        if let Err(e) = run_journey(file, *mode) {
            failures.push(e);
        }
    }
    assert!(ran > 0, "VB_UI_JOURNEY={only:?} names no journey in JOURNEYS");
    assert!(failures.is_empty(), "{} of {ran} journeys failed:\n\n{}", failures.len(), failures.join("\n\n"));
}
