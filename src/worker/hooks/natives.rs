//! The `__native` host functions behind `$security`, `$os`, `$http`, `console`, `require`,
//! `sleep` and the byte helpers (their JS faces are in prelude.js).
//!
//! They run on a JS thread (a plain std thread, never a tokio worker), so blocking here is
//! allowed; async vaultbase code is reached with the tokio handle's `block_on`. A host call is
//! not interrupted by the deadline, so each one that can wait has its own bound.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::function::Opt;
use rquickjs::{Ctx, Exception, Function, Object, Value};

use super::engine::{self, Env};

/// PocketBase's default `$http.send` timeout.
pub const HTTP_DEFAULT_TIMEOUT_SECS: u64 = 120;
/// The largest response body `$http.send` reads.
pub const HTTP_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The longest `$security.randomString` (a larger request is a bug, not a secret).
pub const RANDOM_STRING_MAX_CHARS: usize = 1 << 20;
/// The most output `$os.cmd(...).output()` keeps.
pub const EXEC_MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

fn type_error(ctx: &Ctx<'_>, msg: impl AsRef<str>) -> rquickjs::Error {
    Exception::throw_type(ctx, msg.as_ref())
}

fn js_error(ctx: &Ctx<'_>, msg: impl AsRef<str>) -> rquickjs::Error {
    Exception::throw_message(ctx, msg.as_ref())
}

fn set_fn<'js, P, F>(obj: &Object<'js>, ctx: &Ctx<'js>, name: &str, f: F) -> rquickjs::Result<()>
where
    F: rquickjs::function::IntoJsFunc<'js, P> + 'js,
{
    obj.set(name, Function::new(ctx.clone(), f)?.with_name(name)?)
}

pub fn install<'js>(ctx: &Ctx<'js>, n: &Object<'js>, env: &Arc<Env>) -> rquickjs::Result<()> {
    set_fn(n, ctx, "utf8Decode", |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned())?;
    set_fn(n, ctx, "utf8Encode", |s: String| s.into_bytes())?;
    set_fn(n, ctx, "sleep", |ms: f64| {
        // A host call is not interrupted: never sleep past the dispatch's deadline.
        let want = Duration::from_millis(ms.max(0.0).min(u64::MAX as f64) as u64);
        let cap = engine::remaining().unwrap_or(want);
        std::thread::sleep(want.min(cap));
    })?;
    set_fn(n, ctx, "log", |level: String, msg: String| match level.as_str() {
        "error" => tracing::error!(target: "vaultbase::hooks", "{msg}"),
        "warn" => tracing::warn!(target: "vaultbase::hooks", "{msg}"),
        "debug" => tracing::debug!(target: "vaultbase::hooks", "{msg}"),
        _ => tracing::info!(target: "vaultbase::hooks", "{msg}"),
    })?;
    // `$app.logger()`: the event's level is the entry's level; message and data (JSON of the
    // key/value pairs) are plain string fields, which the logs layer stores in `_logs`.
    set_fn(n, ctx, "appLog", |level: String, message: String, data: String| {
        let (message, data) = (message.as_str(), data.as_str());
        match level.as_str() {
            "error" => tracing::error!(target: "vaultbase::app_log", message, data),
            "warn" => tracing::warn!(target: "vaultbase::app_log", message, data),
            "debug" => tracing::debug!(target: "vaultbase::app_log", message, data),
            _ => tracing::info!(target: "vaultbase::app_log", message, data),
        }
    })?;
    set_fn(n, ctx, "settle", |ctx: Ctx<'js>, v: Value<'js>| settle(&ctx, v))?;
    set_fn(n, ctx, "evalScript", |ctx: Ctx<'js>, src: String, file: String| -> rquickjs::Result<Value<'js>> {
        let mut opts = rquickjs::context::EvalOptions::default();
        opts.strict = false;
        opts.filename = Some(file);
        ctx.eval_with_options(src, opts)
    })?;
    let dir = env.dir.clone();
    set_fn(n, ctx, "resolveModule", move |ctx: Ctx<'js>, name: String, from: String| -> rquickjs::Result<Object<'js>> {
        let from = if from.is_empty() { dir.clone() } else { PathBuf::from(from) };
        let Some(path) = resolve_module(&name, &from, &dir) else {
            return Err(js_error(&ctx, format!("Cannot find module '{name}'")));
        };
        let source = std::fs::read_to_string(&path).map_err(|e| js_error(&ctx, format!("reading module {}: {e}", path.display())))?;
        let out = Object::new(ctx.clone())?;
        out.set("json", path.extension().is_some_and(|e| e == "json"))?;
        out.set("dir", path.parent().map(|p| p.display().to_string()).unwrap_or_default())?;
        out.set("path", path.display().to_string())?;
        out.set("source", source)?;
        Ok(out)
    })?;

    // $security
    set_fn(n, ctx, "randomString", |ctx: Ctx<'js>, len: i32, alphabet: String| -> rquickjs::Result<String> {
        let chars: Vec<char> = alphabet.chars().collect();
        if chars.is_empty() || len < 0 || len as usize > RANDOM_STRING_MAX_CHARS {
            return Err(type_error(&ctx, format!("randomString needs a length from 0 to {RANDOM_STRING_MAX_CHARS} and a non-empty alphabet")));
        }
        let mut buf = vec![0u8; len as usize * 2];
        getrandom::getrandom(&mut buf).map_err(|e| js_error(&ctx, format!("random source failed: {e}")))?;
        Ok(buf.chunks(2).map(|c| chars[(u16::from_le_bytes([c[0], c[1]]) as usize) % chars.len()]).collect())
    })?;
    set_fn(n, ctx, "hash", |ctx: Ctx<'js>, alg: String, data: String| -> rquickjs::Result<String> {
        use sha2::Digest;
        Ok(match alg.as_str() {
            "md5" => hex(&md5::Md5::digest(data.as_bytes())),
            "sha256" => hex(&sha2::Sha256::digest(data.as_bytes())),
            "sha512" => hex(&sha2::Sha512::digest(data.as_bytes())),
            other => return Err(type_error(&ctx, format!("unknown hash {other}"))),
        })
    })?;
    set_fn(n, ctx, "hmac", |ctx: Ctx<'js>, alg: String, data: String, key: String| -> rquickjs::Result<String> {
        use hmac::{Hmac, Mac};
        let out = match alg.as_str() {
            "sha256" => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).map_err(|e| js_error(&ctx, e.to_string()))?;
                m.update(data.as_bytes());
                hex(&m.finalize().into_bytes())
            }
            _ => {
                let mut m = Hmac::<sha2::Sha512>::new_from_slice(key.as_bytes()).map_err(|e| js_error(&ctx, e.to_string()))?;
                m.update(data.as_bytes());
                hex(&m.finalize().into_bytes())
            }
        };
        Ok(out)
    })?;
    set_fn(n, ctx, "constantTimeEqual", |a: String, b: String| {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    })?;
    set_fn(n, ctx, "jwtCreate", |ctx: Ctx<'js>, payload: String, key: String, secs: f64| -> rquickjs::Result<String> {
        let mut claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&payload).map_err(|e| type_error(&ctx, format!("createJWT payload: {e}")))?;
        if secs > 0.0 {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            claims.insert("exp".into(), serde_json::Value::from(now + secs as u64));
        }
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()))
            .map_err(|e| js_error(&ctx, format!("createJWT: {e}")))
    })?;
    set_fn(n, ctx, "jwtParse", |ctx: Ctx<'js>, token: String, key: String| -> rquickjs::Result<String> {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.required_spec_claims.clear();
        v.leeway = 0;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(&token, &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()), &v)
            .map_err(|e| js_error(&ctx, format!("invalid JWT: {e}")))?;
        Ok(serde_json::Value::Object(data.claims).to_string())
    })?;
    set_fn(n, ctx, "jwtParseUnverified", |ctx: Ctx<'js>, token: String| -> rquickjs::Result<String> {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).ok_or_else(|| js_error(&ctx, "invalid JWT: not three parts"))?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| js_error(&ctx, format!("invalid JWT: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| js_error(&ctx, format!("invalid JWT: {e}")))?;
        Ok(v.to_string())
    })?;
    set_fn(n, ctx, "encrypt", |ctx: Ctx<'js>, data: String, key: String| -> rquickjs::Result<String> {
        encrypt(data.as_bytes(), key.as_bytes()).map_err(|e| js_error(&ctx, e))
    })?;
    set_fn(n, ctx, "decrypt", |ctx: Ctx<'js>, data: String, key: String| -> rquickjs::Result<Vec<u8>> {
        decrypt(&data, key.as_bytes()).map_err(|e| js_error(&ctx, e))
    })?;

    // $os
    set_fn(n, ctx, "getenv", |k: String| std::env::var(k).unwrap_or_default())?;
    // A file larger than the runtime's memory could never become a JS value: refused before
    // it is read, so a huge file cannot exhaust the process's memory instead.
    let memory = env.limits.memory_bytes as u64;
    set_fn(n, ctx, "readFile", move |ctx: Ctx<'js>, p: String| -> rquickjs::Result<Vec<u8>> {
        let size = std::fs::metadata(&p).map_err(|e| js_error(&ctx, format!("open {p}: {e}")))?.len();
        if size > memory {
            return Err(js_error(&ctx, format!("read {p}: {size} bytes is more than the hooks' memory limit")));
        }
        std::fs::read(&p).map_err(|e| js_error(&ctx, format!("open {p}: {e}")))
    })?;
    set_fn(n, ctx, "writeFile", |ctx: Ctx<'js>, p: String, data: Vec<u8>, perm: f64| -> rquickjs::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(perm as u32)
            .open(&p)
            .map_err(|e| js_error(&ctx, format!("open {p}: {e}")))?;
        std::io::Write::write_all(&mut f, &data).map_err(|e| js_error(&ctx, format!("write {p}: {e}")))
    })?;
    set_fn(n, ctx, "readDir", |ctx: Ctx<'js>, p: String| -> rquickjs::Result<Vec<Object<'js>>> {
        let mut entries: Vec<(String, bool)> = std::fs::read_dir(&p)
            .map_err(|e| js_error(&ctx, format!("open {p}: {e}")))?
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_type().map(|t| t.is_dir()).unwrap_or(false)))
            .collect();
        entries.sort();
        entries
            .into_iter()
            .map(|(name, is_dir)| {
                let o = Object::new(ctx.clone())?;
                o.set("name", name)?;
                o.set("isDir", is_dir)?;
                Ok(o)
            })
            .collect()
    })?;
    set_fn(n, ctx, "remove", |ctx: Ctx<'js>, p: String, all: bool| -> rquickjs::Result<()> {
        let path = Path::new(&p);
        let res = if path.is_dir() {
            if all { std::fs::remove_dir_all(path) } else { std::fs::remove_dir(path) }
        } else {
            match std::fs::remove_file(path) {
                Err(e) if all && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        res.map_err(|e| js_error(&ctx, format!("remove {p}: {e}")))
    })?;
    set_fn(n, ctx, "mkdirAll", |ctx: Ctx<'js>, p: String, all: bool| -> rquickjs::Result<()> {
        let res = if all { std::fs::create_dir_all(&p) } else { std::fs::create_dir(&p) };
        res.map_err(|e| js_error(&ctx, format!("mkdir {p}: {e}")))
    })?;
    set_fn(n, ctx, "tempDir", || std::env::temp_dir().display().to_string())?;
    set_fn(n, ctx, "getwd", || std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default())?;
    set_fn(n, ctx, "stat", |ctx: Ctx<'js>, p: String| -> rquickjs::Result<Object<'js>> {
        let m = std::fs::metadata(&p).map_err(|e| js_error(&ctx, format!("stat {p}: {e}")))?;
        let o = Object::new(ctx.clone())?;
        o.set("name", Path::new(&p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())?;
        o.set("size", m.len() as f64)?;
        o.set("isDir", m.is_dir())?;
        let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_millis() as f64).unwrap_or(0.0);
        o.set("modified", modified)?;
        Ok(o)
    })?;
    let allow_exec = env.allow_exec;
    set_fn(n, ctx, "exec", move |ctx: Ctx<'js>, argv: Vec<String>, combined: bool| -> rquickjs::Result<Vec<u8>> {
        if !allow_exec {
            return Err(type_error(&ctx, "$os.cmd is disabled; set VAULTBASE_HOOKS_ALLOW_EXEC=1 to allow hooks to run programs"));
        }
        let Some((prog, args)) = argv.split_first() else { return Err(type_error(&ctx, "$os.cmd needs a program")) };
        let out = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| js_error(&ctx, format!("exec {prog}: {e}")))?;
        let mut bytes = out.stdout;
        if combined {
            bytes.extend_from_slice(&out.stderr);
        }
        bytes.truncate(EXEC_MAX_OUTPUT_BYTES);
        if !out.status.success() && !combined {
            return Err(js_error(&ctx, format!("exec {prog}: {}", out.status)));
        }
        Ok(bytes)
    })?;

    set_fn(n, ctx, "staticFile", |ctx: Ctx<'js>, dir: String, rel: String, fallback: bool| -> rquickjs::Result<Option<Object<'js>>> {
        let Some(path) = static_file(Path::new(&dir), &rel, fallback) else { return Ok(None) };
        let o = Object::new(ctx.clone())?;
        o.set("type", content_type(&path))?;
        o.set("path", path.display().to_string())?;
        Ok(Some(o))
    })?;

    // $http
    let handle = env.handle.clone();
    set_fn(n, ctx, "httpSend", move |ctx: Ctx<'js>, config: String| -> rquickjs::Result<Object<'js>> {
        let config: HttpConfig = serde_json::from_str(&config).map_err(|e| type_error(&ctx, format!("$http.send: {e}")))?;
        let Some(handle) = handle.clone() else { return Err(js_error(&ctx, "$http.send is not available here")) };
        let (meta, body) = http_send(&handle, config).map_err(|e| js_error(&ctx, e))?;
        let out = Object::new(ctx.clone())?;
        out.set("meta", meta.to_string())?;
        out.set("body", body)?;
        Ok(out)
    })?;

    // $app.store(): one map per worker process, shared by its runtimes (JSON values).
    let store = env.store.clone();
    set_fn(n, ctx, "storeGet", move |k: String| store.lock().ok().and_then(|m| m.get(&k).cloned()))?;
    let store = env.store.clone();
    set_fn(n, ctx, "storeSet", move |k: String, v: Opt<String>| {
        if let Ok(mut m) = store.lock() {
            match v.0 {
                Some(v) => {
                    m.insert(k, v);
                }
                None => {
                    m.remove(&k);
                }
            }
        }
    })?;
    let store = env.store.clone();
    set_fn(n, ctx, "storeKeys", move || store.lock().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())?;
    Ok(())
}

/// Resolves a value that may be a promise (an async handler), running queued jobs on this
/// thread until it settles; a rejection is thrown as the handler's error.
pub fn settle<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> rquickjs::Result<Value<'js>> {
    let Some(promise) = v.as_promise() else {
        return Ok(v);
    };
    let promise = promise.clone();
    while let rquickjs::promise::PromiseState::Pending = promise.state() {
        if !ctx.execute_pending_job() {
            return Err(type_error(ctx, "the handler's promise never settled (vaultbase has no timers; await only synchronous work)"));
        }
    }
    match promise.result::<Value>() {
        Some(Ok(v)) => Ok(v),
        Some(Err(rquickjs::Error::Exception)) => Err(rquickjs::Error::Exception),
        Some(Err(e)) => Err(e),
        None => Ok(Value::new_undefined(ctx.clone())),
    }
}

/// PocketBase's `security.Encrypt`: AES-GCM with the key's own size (16 or 32 bytes), a random
/// 12-byte nonce prepended to the sealed data, standard base64.
fn encrypt(data: &[u8], key: &[u8]) -> Result<String, String> {
    use aes_gcm::aead::{Aead, KeyInit};
    use base64::Engine as _;
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).map_err(|e| format!("random source failed: {e}"))?;
    let sealed = match key.len() {
        32 => aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?.encrypt((&nonce).into(), data),
        16 => aes_gcm::Aes128Gcm::new_from_slice(key).map_err(|e| e.to_string())?.encrypt((&nonce).into(), data),
        n => return Err(format!("crypto/aes: invalid key size {n}")),
    }
    .map_err(|_| "encryption failed".to_owned())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

fn decrypt(data: &str, key: &[u8]) -> Result<Vec<u8>, String> {
    use aes_gcm::aead::{Aead, KeyInit};
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(data.trim()).map_err(|e| e.to_string())?;
    if raw.len() < 12 {
        return Err("cipher: message authentication failed".into());
    }
    let (nonce, sealed) = raw.split_at(12);
    match key.len() {
        32 => aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?.decrypt(nonce.into(), sealed),
        16 => aes_gcm::Aes128Gcm::new_from_slice(key).map_err(|e| e.to_string())?.decrypt(nonce.into(), sealed),
        n => return Err(format!("crypto/aes: invalid key size {n}")),
    }
    .map_err(|_| "cipher: message authentication failed".to_owned())
}

/// `$apis.static`: the file `rel` names inside `dir` (a directory means its index.html; with
/// `fallback`, a missing file means the root index.html). Never a path outside `dir`.
fn static_file(dir: &Path, rel: &str, fallback: bool) -> Option<PathBuf> {
    let root = dir.canonicalize().ok()?;
    let wanted = rel.trim_start_matches('/');
    let candidate = if wanted.split('/').any(|c| c == "..") { None } else { root.join(wanted).canonicalize().ok() };
    let inside = candidate.filter(|p| p.starts_with(&root)).map(|p| if p.is_dir() { p.join("index.html") } else { p });
    match inside {
        Some(p) if p.is_file() => Some(p),
        _ if fallback => Some(root.join("index.html")).filter(|p| p.is_file()),
        _ => None,
    }
}

/// The content type of a static file, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("xml") => "text/xml; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/vnd.microsoft.icon",
        Some("wasm") => "application/wasm",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `require(name)` from `from`: relative names against `from`, bare names against the hooks
/// dir, the working directory and their node_modules; `.js`, `.json` and `index.js` tried.
fn resolve_module(name: &str, from: &Path, hooks_dir: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let bases: Vec<PathBuf> = if name.starts_with('/') {
        vec![PathBuf::from(name)]
    } else if name.starts_with("./") || name.starts_with("../") {
        vec![from.join(name)]
    } else {
        vec![
            hooks_dir.join(name),
            cwd.join(name),
            hooks_dir.join("node_modules").join(name),
            cwd.join("node_modules").join(name),
        ]
    };
    for base in bases {
        let candidates = [
            base.clone(),
            base.with_extension(match base.extension() {
                Some(e) => format!("{}.js", e.to_string_lossy()),
                None => "js".into(),
            }),
            PathBuf::from(format!("{}.json", base.display())),
            base.join("index.js"),
        ];
        for c in candidates {
            if c.is_file() {
                return Some(c.canonicalize().unwrap_or(c));
            }
        }
        let pkg = base.join("package.json");
        if let Ok(text) = std::fs::read_to_string(&pkg) {
            if let Some(main) = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("main").and_then(|m| m.as_str()).map(str::to_owned)) {
                let p = base.join(main);
                if p.is_file() {
                    return Some(p);
                }
                if p.with_extension("js").is_file() {
                    return Some(p.with_extension("js"));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_round_trips_and_refuses_a_wrong_key() {
        let key = b"abcdefghijklmnopqrstuvwxyz012345";
        let sealed = encrypt(b"secret", key).expect("encrypt");
        assert_eq!(decrypt(&sealed, key).expect("decrypt"), b"secret");
        assert!(decrypt(&sealed, b"bbcdefghijklmnopqrstuvwxyz012345").is_err());
        assert!(encrypt(b"x", b"short").is_err());
    }
}

#[derive(serde::Deserialize)]
struct HttpConfig {
    url: String,
    method: String,
    body: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    timeout: f64,
}

/// `$http.send`: only a network error or the timeout is an error; any HTTP status is an answer.
fn http_send(handle: &tokio::runtime::Handle, config: HttpConfig) -> Result<(serde_json::Value, Vec<u8>), String> {
    let timeout = if config.timeout > 0.0 { Duration::from_secs_f64(config.timeout) } else { Duration::from_secs(HTTP_DEFAULT_TIMEOUT_SECS) };
    let method = reqwest::Method::from_bytes(config.method.as_bytes()).map_err(|_| format!("invalid method {:?}", config.method))?;
    let started = Instant::now();
    handle.block_on(async move {
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| e.to_string())?;
        let mut req = client.request(method, &config.url);
        for (k, v) in &config.headers {
            req = req.header(k, v);
        }
        if let Some(body) = config.body {
            req = req.body(body);
        }
        let mut res = req.send().await.map_err(|e| format!("$http.send {}: {e}", config.url))?;
        let status = res.status().as_u16();
        let mut headers = serde_json::Map::new();
        let mut cookies = serde_json::Map::new();
        for (name, value) in res.headers() {
            let canonical = canonical_header(name.as_str());
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            if name == reqwest::header::SET_COOKIE {
                if let Some((ck, cv)) = v.split(';').next().and_then(|c| c.split_once('=')) {
                    cookies.insert(ck.trim().to_owned(), serde_json::json!({"name": ck.trim(), "value": cv.trim(), "raw": v}));
                }
            }
            if let serde_json::Value::Array(a) = headers.entry(canonical).or_insert_with(|| serde_json::Value::Array(vec![])) {
                a.push(serde_json::Value::String(v));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("$http.send {}: {e}", config.url))? {
            if body.len() + chunk.len() > HTTP_MAX_BODY_BYTES {
                return Err(format!("$http.send {}: the response is larger than {HTTP_MAX_BODY_BYTES} bytes", config.url));
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(target: "vaultbase::hooks", url = %config.url, status, elapsed_ms = started.elapsed().as_millis() as u64, "$http.send");
        Ok((serde_json::json!({"statusCode": status, "headers": headers, "cookies": cookies}), body))
    })
}

/// Go's canonical header key: `content-type` → `Content-Type`.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
