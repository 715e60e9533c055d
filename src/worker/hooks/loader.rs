//! Loading a hooks dir into a [`Registry`]: the `*.pb.js` direct children, sorted by name, are
//! evaluated once in a loader runtime on its own thread (their top-level code runs here, once
//! per worker process); `routerAdd`, `routerUse`, `cronAdd`, `cronRemove`, `jobsAdd` and every
//! `on*` record the handler's source text (loader.js). Then the registrations are checked: route
//! patterns, duplicate routes, collisions with system routes.
//!
//! Any error is a [`LoadError`] naming the file and line; the caller decides whether it is
//! fatal (start-up) or logged while the previous set keeps serving (reload).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rquickjs::Object;
use serde::Deserialize;

use super::engine::{Engine, Env};
use super::pattern::Pattern;
use super::registry::{CronJob, Hook, JobHandler, Middleware, Registry, Route, Source};
use super::routes;

const LOADER_JS: &str = include_str!("loader.js");

/// Why a hooks dir could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, _) => write!(f, "{}", self.message),
            (false, 0) => write!(f, "{}: {}", self.file, self.message),
            (false, line) => write!(f, "{}:{}: {}", self.file, line, self.message),
        }
    }
}

impl std::error::Error for LoadError {}

fn err(file: &str, line: u32, message: impl Into<String>) -> LoadError {
    LoadError { file: file.to_owned(), line, message: message.into() }
}

/// The hook files of `dir`, in load order: direct children named `*.pb.js`, sorted.
pub fn hook_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".pb.js")))
        .collect();
    files.sort();
    files
}

#[derive(Deserialize)]
struct Registrations {
    hooks: Vec<HookReg>,
    routes: Vec<RouteReg>,
    uses: Vec<MwReg>,
    crons: Vec<CronReg>,
    #[serde(default)]
    jobs: Vec<JobReg>,
}

#[derive(Deserialize)]
struct JobReg {
    name: String,
    src: String,
    concurrency: Option<f64>,
    /// Milliseconds.
    timeout: Option<f64>,
    file: String,
}

#[derive(Deserialize)]
struct HookReg {
    name: String,
    src: String,
    tags: Vec<String>,
    file: String,
}

#[derive(Deserialize)]
struct RouteReg {
    method: String,
    path: String,
    src: String,
    middlewares: Vec<MwReg>,
    file: String,
}

#[derive(Deserialize)]
struct MwReg {
    src: String,
    priority: f64,
    id: String,
    builtin: bool,
    #[serde(default)]
    file: String,
}

#[derive(Deserialize)]
struct CronReg {
    op: String,
    id: String,
    #[serde(default)]
    expr: String,
    #[serde(default)]
    src: String,
    file: String,
}

/// Loads `env.dir` on a new thread. `env.registry` is ignored (the loader has none yet).
pub fn load(env: Arc<Env>) -> Result<Registry, LoadError> {
    let files = hook_files(&env.dir);
    let dir = env.dir.clone();
    if files.is_empty() {
        // Nothing to evaluate: no loader runtime is built (the common case costs nothing).
        return Ok(Registry::empty(dir));
    }
    let thread_files = files.clone();
    let joined = std::thread::Builder::new()
        .name("vb-js-loader".into())
        .stack_size(super::pool::THREAD_STACK_BYTES)
        .spawn(move || evaluate(env, &thread_files))
        .map_err(|e| err("", 0, format!("starting the hooks loader thread: {e}")))?
        .join()
        .map_err(|_| err("", 0, "the hooks loader thread panicked"))?;
    let regs = joined?;
    build(dir, files, regs)
}

fn evaluate(env: Arc<Env>, files: &[PathBuf]) -> Result<Registrations, LoadError> {
    let timeout = env.limits.timeout;
    let mut engine = Engine::new(env).map_err(|e| err("", 0, e))?;
    let (result, trap) = engine.run(timeout, |ctx| -> Result<String, LoadError> {
        super::bindings::eval_internal(ctx, LOADER_JS, "<vaultbase loader>").map_err(|e| err("", 0, super::errors::describe(ctx, e)))?;
        let vb: Object = ctx.globals().get("__vb").map_err(|e| err("", 0, e.to_string()))?;
        for file in files {
            let name = file.display().to_string();
            let source = std::fs::read_to_string(file).map_err(|e| err(&name, 0, format!("reading: {e}")))?;
            vb.set("currentFile", name.as_str()).map_err(|e| err(&name, 0, e.to_string()))?;
            let mut opts = rquickjs::context::EvalOptions::default();
            opts.strict = false;
            opts.filename = Some(name.clone());
            if let Err(e) = ctx.eval_with_options::<(), _>(source, opts) {
                let text = super::errors::describe(ctx, e);
                let line = super::errors::location(&text).filter(|(f, _)| *f == name).map(|(_, l)| l).unwrap_or(0);
                let first = text.lines().next().unwrap_or_default().to_owned();
                return Err(err(&name, line, first));
            }
        }
        let regs: rquickjs::Value = vb.get("registrations").map_err(|e| err("", 0, e.to_string()))?;
        let json = ctx
            .json_stringify(regs)
            .map_err(|e| err("", 0, e.to_string()))?
            .and_then(|s| s.to_string().ok())
            .unwrap_or_default();
        Ok(json)
    });
    if let Some(trap) = trap {
        return Err(err("", 0, match trap {
            super::engine::Trap::Deadline => "a hook file's top-level code ran past the deadline (VAULTBASE_HOOKS_TIMEOUT)",
            super::engine::Trap::OutOfMemory => "a hook file's top-level code ran out of memory (VAULTBASE_HOOKS_MEMORY)",
        }));
    }
    serde_json::from_str(&result?).map_err(|e| err("", 0, format!("reading the registrations: {e}")))
}

/// 1-based line where `src` starts in `content` (0 if it cannot be found).
fn line_of(content: &str, src: &str) -> u32 {
    match content.find(src) {
        Some(at) => content[..at].matches('\n').count() as u32 + 1,
        None => 0,
    }
}

fn build(dir: PathBuf, files: Vec<PathBuf>, regs: Registrations) -> Result<Registry, LoadError> {
    let mut contents: HashMap<String, String> = HashMap::new();
    for f in &files {
        contents.insert(f.display().to_string(), std::fs::read_to_string(f).unwrap_or_default());
    }
    let mut reg = Registry::empty(dir);
    reg.files = files;
    let add = |reg: &mut Registry, src: &str, file: &str, builtin: bool| -> (usize, u32) {
        let (file, line) = if builtin {
            ("<vaultbase>".to_owned(), 1)
        } else {
            let line = contents.get(file).map(|c| line_of(c, src)).unwrap_or(0).max(1);
            (file.to_owned(), line)
        };
        (reg.add_source(Source { src: src.to_owned(), file, line }), line)
    };

    for h in &regs.hooks {
        let (handler, _) = add(&mut reg, &h.src, &h.file, false);
        reg.add_hook(&h.name, Hook { handler, tags: h.tags.clone(), priority: 0 });
    }
    for m in &regs.uses {
        let (handler, _) = add(&mut reg, &m.src, &m.file, m.builtin);
        reg.global_middlewares.push(Middleware { handler, priority: m.priority as i32, id: m.id.clone() });
    }
    let mut seen: HashMap<(Option<String>, String), (String, u32)> = HashMap::new();
    for r in &regs.routes {
        let (handler, line) = add(&mut reg, &r.src, &r.file, false);
        let method = match r.method.trim().to_ascii_uppercase().as_str() {
            "" | "*" => None,
            m => Some(m.to_owned()),
        };
        let pattern = Pattern::parse(&r.path).map_err(|m| err(&r.file, line, m))?;
        routes::check_not_system(method.as_deref(), &pattern).map_err(|m| err(&r.file, line, m))?;
        let key = (method.clone(), pattern.text.clone());
        if let Some((file, first_line)) = seen.get(&key) {
            return Err(err(
                &r.file,
                line,
                format!("duplicate route {} {} (first registered at {file}:{first_line})", method.as_deref().unwrap_or("*"), pattern.text),
            ));
        }
        seen.insert(key, (r.file.clone(), line));
        let mut middlewares = Vec::new();
        for m in &r.middlewares {
            let (h, _) = add(&mut reg, &m.src, &r.file, m.builtin);
            middlewares.push(Middleware { handler: h, priority: m.priority as i32, id: m.id.clone() });
        }
        reg.routes.push(Route { method, pattern, handler, middlewares });
    }
    for c in &regs.crons {
        match c.op.as_str() {
            "add" => {
                let (handler, line) = add(&mut reg, &c.src, &c.file, false);
                if c.id.is_empty() {
                    return Err(err(&c.file, line, "cronAdd needs a job id"));
                }
                // An invalid expression aborts loading, as PocketBase's cronAdd throws.
                crate::worker::cron::Schedule::parse(&c.expr)
                    .map_err(|why| err(&c.file, line, format!("cronAdd({:?}): invalid cron expression {:?}: {why}", c.id, c.expr)))?;
                reg.crons.retain(|j| j.id != c.id);
                reg.crons.push(CronJob { id: c.id.clone(), expr: c.expr.clone(), handler });
            }
            _ => reg.crons.retain(|j| j.id != c.id),
        }
    }
    for j in &regs.jobs {
        let (handler, line) = add(&mut reg, &j.src, &j.file, false);
        let spec = super::jobs_js::check_registration(&j.name, j.concurrency, j.timeout).map_err(|m| err(&j.file, line, m))?;
        reg.jobs.retain(|x| x.name != j.name);
        reg.jobs.push(JobHandler { name: j.name.clone(), handler, concurrency: spec.concurrency, timeout: spec.timeout });
    }
    Ok(reg)
}
