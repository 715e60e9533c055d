//! Command line and configuration: every bad value stops start-up with exit code 2 and a
//! message naming the variable; `--help` lists every variable; `--version` prints it.

mod common;

use std::process::Command;

use common::BIN;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().env("VAULTBASE_DATA_DIR", dir.path().join("d")).env("VAULTBASE_HOST", "127.0.0.1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run vaultbase");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_values_exit_2_naming_the_variable() {
    let cases: &[(&[&str], &[(&str, &str)], &str)] = &[
        (&[], &[("VAULTBASE_PORT", "abc")], "VAULTBASE_PORT"),
        (&["cluster"], &[("VAULTBASE_PORT", "abc")], "VAULTBASE_PORT"),
        (&["cluster"], &[("VAULTBASE_WORKERS", "0")], "VAULTBASE_WORKERS"),
        (&["cluster"], &[("VAULTBASE_WORKERS", "many")], "VAULTBASE_WORKERS"),
        (&["cluster"], &[("VAULTBASE_PORT", "0")], "VAULTBASE_PORT"),
        (&["cluster", "--http", "127.0.0.1:0"], &[], "VAULTBASE_PORT"),
        (&[], &[("VAULTBASE_HOST", "example dot com")], "VAULTBASE_HOST"),
        (&[], &[("VAULTBASE_DRAIN_TIMEOUT", "-5")], "VAULTBASE_DRAIN_TIMEOUT"),
        (&[], &[("VAULTBASE_JWT_SECRET", "too-short")], "VAULTBASE_JWT_SECRET"),
        (&[], &[("VAULTBASE_LOG_LEVEL", "chatty")], "VAULTBASE_LOG_LEVEL"),
        (&[], &[("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", "0")], "VAULTBASE_REALTIME_IDLE_TIMEOUT_MS"),
        (&["cluster"], &[("VAULTBASE_REALTIME_MAX_LIFETIME_MS", "forever")], "VAULTBASE_REALTIME_MAX_LIFETIME_MS"),
        (&["serve", "--http", "nonsense"], &[], "--http"),
    ];
    for (args, envs, variable) in cases {
        let (code, _, stderr) = run(args, envs);
        assert_eq!(code, Some(2), "{args:?} {envs:?}: {stderr}");
        assert!(stderr.contains(variable), "{args:?} {envs:?} must name {variable}: {stderr}");
        assert!(stderr.contains("expected"), "says what it accepts: {stderr}");
    }
}

#[test]
fn unknown_arguments_exit_2_with_usage() {
    for args in [&["--bogus"][..], &["serve", "--http"][..], &["cluster", "extra"][..]] {
        let (code, _, stderr) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains("USAGE"), "{stderr}");
    }
}

#[test]
fn help_lists_every_environment_variable_with_its_default() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for (var, default) in [
        ("VAULTBASE_HOST", "[0.0.0.0]"),
        ("VAULTBASE_PORT", "[8091]"),
        ("VAULTBASE_DATA_DIR", "[./vaultbase_data]"),
        ("VAULTBASE_WORKERS", "[number of CPUs]"),
        ("VAULTBASE_DRAIN_TIMEOUT", "[30]"),
        ("VAULTBASE_JWT_SECRET", "[generated into <data>/.secret]"),
        ("VAULTBASE_LOG_LEVEL", "[info]"),
        ("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", "[300000]"),
        ("VAULTBASE_REALTIME_MAX_LIFETIME_MS", "[1800000]"),
    ] {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(var)).unwrap_or_else(|| panic!("{var} missing:\n{stdout}"));
        assert!(line.contains(default), "{var} shows its default {default}: {line}");
    }
    assert!(stdout.contains("--http HOST:PORT") && stdout.contains("--dir DIR"));
}

#[test]
fn version_is_printed() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.trim(), format!("vaultbase {}", env!("CARGO_PKG_VERSION")));
}
