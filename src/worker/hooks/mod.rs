//! Server-side JavaScript: PocketBase's `pb_hooks/*.pb.js` run unchanged on QuickJS
//! (rquickjs). Owns loading the hooks dir, the registry of what it registered, the pool of JS
//! threads that runs handlers, hot reload, and custom routes. It must not import hyper (the
//! HTTP edge is `api::custom_routes`) and must never run JS on a tokio thread or inside a
//! database executor closure: JS runs on the pool's std threads, which reach async vaultbase
//! code with `Handle::block_on`.
//!
//! Layout, and where other parts plug in:
//! - `registry` — what was registered (`Registry::has` / `handlers`: the cheap checks a
//!   request makes before going anywhere near the pool).
//! - `loader` (+ loader.js) — evaluates the files once per worker, records registrations.
//! - `engine` — one runtime per thread: deadline, memory limit, compiled-handler cache.
//! - `pool` — elastic std threads; `Loaded::run` / `run_blocking` dispatch a closure there.
//! - `chain` — the generic hook chain (`chain::run`, `chain::rust_link`,
//!   `chain::throw_api_error`): how record/collection/mailer/realtime hooks are fired.
//! - `bindings::install` (+ prelude.js, `natives`) — the globals; **other binding modules add
//!   one line there** (`record.rs`, `app.rs`: jsdata; `migrate*.rs`, `mailer.rs`,
//!   `realtime_js.rs`: jsmigrate). `$app` members go on `bindings::app_members`; the Record
//!   class replaces `__vb.makeRecord`.
//! - `jobs_js` (+ jobs.js) — `$jobs.enqueue` (transactional in `runInTransaction` and record
//!   hooks) and the `jobsAdd` handlers, registered with the worker's job runner per load.
//! - `routes` (+ `pattern`) — `routerAdd` matching, system-route collisions, the route chain,
//!   and `routerUse` middlewares around system routes (`Hooks::around_system`).
//! - `errors` — thrown values → PocketBase's error envelope; logging with file and line.
//! - `types.d.ts` — written into the data dir at start; extend it with each binding.
//!
//! Cluster semantics: every worker process loads the files itself (top-level code and
//! `onBootstrap` run once per worker), watches the dir, and swaps in a reloaded set on its
//! own; in-flight requests finish on the set they started with.

pub mod app;
pub mod bindings;
pub mod chain;
pub mod collection;
pub mod cron_js;
pub mod engine;
pub mod errors;
pub mod jobs_js;
pub mod loader;
pub mod mailer;
pub mod natives;
pub mod pattern;
pub mod pool;
pub mod realtime_js;
pub mod record;
pub mod record_requests;
pub mod registry;
pub mod routes;
pub mod tail;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use rquickjs::Ctx;

use crate::shared::config::Config;
use crate::worker::state::AppState;
use engine::{Engine, Env, Limits, Trap};
pub use loader::LoadError;
use registry::Registry;
use routes::{Around, RouteRequest, RouteResponse};

/// The TypeScript declarations of the supported API, written to `<data dir>/types.d.ts`.
pub const TYPES_D_TS: &str = include_str!("types.d.ts");
/// The deadline of one cron job run.
pub const CRON_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the watcher looks at the hooks dir.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// How many directory levels under the hooks dir the watcher looks into.
pub const WATCH_MAX_DEPTH: usize = 4;
/// The pool may grow to this many threads, or the core count if larger.
pub const MAX_POOL_THREADS: usize = 64;
/// What a request answers when every JS thread is busy and the queue is full.
pub const SATURATED_MESSAGE: &str = "The server is too busy running hooks; try again shortly.";

/// Hooks configuration, from [`Config`].
#[derive(Debug, Clone)]
pub struct HooksConfig {
    pub dir: PathBuf,
    pub watch: bool,
    /// Prewarmed JS threads (PocketBase's `--hooksPool`).
    pub pool: usize,
    pub limits: Limits,
    pub allow_exec: bool,
}

impl HooksConfig {
    pub fn from_config(cfg: &Config) -> HooksConfig {
        let h = &cfg.hooks;
        HooksConfig {
            dir: h.dir.clone().unwrap_or_else(|| default_dir(&cfg.data_dir)),
            watch: h.watch,
            pool: h.pool,
            limits: Limits { timeout: h.timeout, cron_timeout: CRON_TIMEOUT, memory_bytes: h.memory_bytes },
            allow_exec: h.allow_exec,
        }
    }
}

/// PocketBase's default: `pb_hooks` next to the data dir.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    let parent = data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join("pb_hooks")
}

/// Why a dispatch did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchError {
    /// Nothing is registered, so no pool exists.
    NoPool,
    /// Every thread busy and the queue full.
    Saturated,
    /// The JS thread died before answering.
    Lost,
}

/// One loaded hook set: its registry and the threads that run it. Replaced whole on reload.
pub struct Loaded {
    pub registry: Arc<Registry>,
    env: Arc<Env>,
    pool: Option<pool::Pool>,
}

impl Loaded {
    fn empty(dir: PathBuf) -> Loaded {
        let registry = Arc::new(Registry::empty(dir.clone()));
        let env = Arc::new(Env {
            state: None,
            handle: None,
            registry: registry.clone(),
            dir,
            limits: Limits { timeout: Duration::from_secs(30), cron_timeout: Duration::from_secs(600), memory_bytes: 64 << 20 },
            allow_exec: false,
            store: Arc::default(),
        });
        Loaded { registry, env, pool: None }
    }

    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    /// Runs `f` on a JS thread of this set, under `timeout`.
    pub async fn run<T, F>(&self, timeout: Duration, f: F) -> Result<(T, Option<Trap>), DispatchError>
    where
        T: Send + 'static,
        F: for<'js> FnOnce(&Ctx<'js>) -> T + Send + 'static,
    {
        let pool = self.pool.as_ref().ok_or(DispatchError::NoPool)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        pool.submit(Box::new(move |engine: &mut Engine| {
            let out = engine.run(timeout, f);
            Box::new(move || {
                let _ = tx.send(out);
            })
        }))
        .map_err(|_| DispatchError::Saturated)?;
        rx.await.map_err(|_| DispatchError::Lost)
    }

    /// [`Loaded::run`] for callers on plain threads (the watcher, start-up).
    pub fn run_blocking<T, F>(&self, timeout: Duration, f: F) -> Result<(T, Option<Trap>), DispatchError>
    where
        T: Send + 'static,
        F: for<'js> FnOnce(&Ctx<'js>) -> T + Send + 'static,
    {
        let pool = self.pool.as_ref().ok_or(DispatchError::NoPool)?;
        let (tx, rx) = std::sync::mpsc::channel();
        pool.submit(Box::new(move |engine: &mut Engine| {
            let out = engine.run(timeout, f);
            Box::new(move || {
                let _ = tx.send(out);
            })
        }))
        .map_err(|_| DispatchError::Saturated)?;
        rx.recv().map_err(|_| DispatchError::Lost)
    }

    /// Runs a lifecycle event (`onBootstrap`, `onTerminate`) with an empty default action;
    /// the error names what failed (the caller logs it or refuses the set).
    fn lifecycle_blocking(&self, name: &'static str) -> Result<(), String> {
        if !self.registry.has_any(name) {
            return Ok(());
        }
        let registry = self.registry.clone();
        let limits = self.env.limits;
        let ran = self.run_blocking(limits.timeout, move |ctx| -> Result<(), errors::Failure> {
            let hooks = registry.handlers(name, &[]);
            let go = || -> rquickjs::Result<()> {
                let e = rquickjs::Object::new(ctx.clone())?;
                e.set("app", bindings::vb(ctx)?.get::<_, rquickjs::Value>("baseApp")?)?;
                chain::run(ctx, &hooks, e, None)
            };
            go().map_err(|err| errors::failure_of(ctx, err, name))
        });
        match ran {
            Ok((_, Some(trap))) => {
                errors::trapped(trap, name, "", 0, &limits);
                Err(format!("{name} was stopped by the {} limit", if trap == Trap::Deadline { "deadline" } else { "memory" }))
            }
            Ok((Err(f), None)) => Err(format!("{name} failed: {}", f.message)),
            Ok((Ok(()), None)) => Ok(()),
            Err(e) => Err(format!("{name} could not run: {e:?}")),
        }
    }
}

/// A request that matched a custom route, with the set it matched in.
pub struct RouteMatch {
    loaded: Arc<Loaded>,
    index: usize,
    pub path_values: Vec<(String, String)>,
}

/// What a custom-route lookup found.
pub enum Routed {
    Matched(RouteMatch),
    /// A route has this path but not this method: PocketBase answers 404 "The requested
    /// resource wasn't found." (not the unknown-path "File not found.").
    WrongMethod,
}

/// The installed hook set of this worker, swapped whole on reload.
pub struct Hooks {
    current: RwLock<Arc<Loaded>>,
    store: Arc<Mutex<HashMap<String, String>>>,
    /// Cron job ids the current set registered (removed when a reload drops them).
    cron_ids: Mutex<Vec<String>>,
    /// `jobsAdd` names the current set registered (removed when a reload drops them).
    job_names: Mutex<Vec<String>>,
    /// The worker's tokio runtime, captured at start: reloads happen on the watcher thread,
    /// which has none, and JS threads need it for async vaultbase code.
    handle: OnceLock<tokio::runtime::Handle>,
    /// The current set has `routerUse` middlewares: they wrap system routes too.
    wraps: std::sync::atomic::AtomicBool,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks::new()
    }
}

impl Hooks {
    /// Nothing loaded: every check answers "no handler" without touching a thread.
    pub fn new() -> Hooks {
        Hooks { current: RwLock::new(Arc::new(Loaded::empty(PathBuf::new()))), store: Arc::default(), cron_ids: Mutex::default(), job_names: Mutex::default(), handle: OnceLock::new(), wraps: Default::default() }
    }

    /// The current set (cheap: one Arc clone). Hold it for the whole of one request.
    pub fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `next` as the current set and re-registers its cron jobs.
    fn install(&self, state: &AppState, next: Arc<Loaded>) {
        self.wraps.store(!next.registry.global_middlewares.is_empty(), std::sync::atomic::Ordering::Release);
        self.swap(next.clone());
        let mut ids = match self.cron_ids.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *ids = cron_js::sync_loaded_jobs(state, &next, &ids);
        let mut names = self.job_names.lock().unwrap_or_else(|p| p.into_inner());
        *names = jobs_js::sync_loaded_handlers(state, &next, &names);
    }

    fn swap(&self, next: Arc<Loaded>) -> Arc<Loaded> {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *g, next)
    }

    /// Loads the hooks dir at start: an error refuses the start (as PocketBase). Writes
    /// `types.d.ts` into the data dir, runs `onBootstrap`, and starts the watcher.
    pub fn start(&self, state: &AppState) -> Result<(), LoadError> {
        let cfg = HooksConfig::from_config(&state.config);
        let types = state.config.data_dir.join("types.d.ts");
        if let Err(e) = std::fs::write(&types, TYPES_D_TS) {
            tracing::warn!(path = %types.display(), error = %e, "writing types.d.ts failed");
        }
        let loaded = self.build(state, &cfg)?;
        // A failing onBootstrap fails the start, as in PocketBase.
        loaded.lifecycle_blocking("onBootstrap").map_err(|m| LoadError { file: String::new(), line: 0, message: m })?;
        log_loaded(state.worker_id, &cfg.dir, &loaded.registry, "hooks loaded");
        self.install(state, loaded);
        if cfg.watch {
            let state = state.clone();
            let spawned = std::thread::Builder::new().name("vb-hooks-watch".into()).spawn(move || watch(state, cfg));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "starting the hooks watcher failed; hook files are not reloaded");
            }
        }
        Ok(())
    }

    /// Runs `onTerminate` on the current set (drain).
    pub fn terminate(&self) {
        if let Err(e) = self.current().lifecycle_blocking("onTerminate") {
            tracing::error!(target: "vaultbase::hooks", error = %e, "onTerminate");
        }
    }

    fn build(&self, state: &AppState, cfg: &HooksConfig) -> Result<Arc<Loaded>, LoadError> {
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let _ = self.handle.set(h);
        }
        let handle = self.handle.get().cloned();
        let base = |registry: Arc<Registry>| {
            Arc::new(Env {
                state: Some(state.clone()),
                handle: handle.clone(),
                registry,
                dir: cfg.dir.clone(),
                limits: cfg.limits,
                allow_exec: cfg.allow_exec,
                store: self.store.clone(),
            })
        };
        let registry = Arc::new(loader::load(base(Arc::new(Registry::empty(cfg.dir.clone()))))?);
        let env = base(registry.clone());
        let pool = if registry.is_empty() {
            None
        } else {
            let core = cfg.pool.max(1);
            Some(pool::Pool::start(env.clone(), core, core.max(MAX_POOL_THREADS)).map_err(|m| LoadError { file: String::new(), line: 0, message: m })?)
        };
        Ok(Arc::new(Loaded { registry, env, pool }))
    }

    /// Rebuilds from the dir and swaps the new set in; on error the current set stays.
    pub fn reload(&self, state: &AppState, cfg: &HooksConfig) -> Result<(), LoadError> {
        let loaded = self.build(state, cfg)?;
        // Bootstrapped before the swap: a set whose onBootstrap fails never serves.
        loaded.lifecycle_blocking("onBootstrap").map_err(|m| LoadError { file: String::new(), line: 0, message: m })?;
        log_loaded(state.worker_id, &cfg.dir, &loaded.registry, "hooks reloaded");
        self.install(state, loaded);
        Ok(())
    }

    /// Whether `routerUse` middlewares must wrap system routes (one atomic load: false, and
    /// free, when none is registered).
    pub fn wraps_system_routes(&self) -> bool {
        self.wraps.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs the `routerUse` middlewares around a system route on a JS thread; `inner` runs
    /// the system route (blocking that thread until it answers) if the chain reaches it.
    pub async fn around_system<R, F>(&self, req: RouteRequest, inner: F) -> Around<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let loaded = self.current();
        let registry = loaded.registry.clone();
        let limits = loaded.env.limits;
        match loaded.run(limits.timeout, move |ctx| routes::run_around(ctx, &registry, &req, inner)).await {
            Ok((out @ Around::Passed(..), _)) => out,
            Ok((out, None)) => out,
            Ok((_, Some(trap))) => Around::Answered(RouteResponse::failure(&errors::trapped(trap, "routerUse", "", 0, &limits))),
            Err(DispatchError::Saturated) => {
                Around::Answered(RouteResponse::failure(&errors::Failure { status: 503, message: SATURATED_MESSAGE.into(), data: Default::default() }))
            }
            Err(e) => {
                tracing::error!(target: "vaultbase::hooks", error = ?e, "routerUse: the JS thread did not answer");
                Around::Answered(RouteResponse::failure(&errors::Failure::internal()))
            }
        }
    }

    /// Whether `method path` belongs to a custom route that no system route can answer (one
    /// whose first segment is a literal: the load refused overlaps). Such a request is not
    /// wrapped from outside: its own chain runs the `routerUse` middlewares, on one event.
    pub fn owns_path(&self, method: &str, path: &str) -> bool {
        let loaded = self.current();
        match routes::match_route(&loaded.registry, method, path) {
            Some((i, _)) => !loaded.registry.routes[i].pattern.is_root_catch_all(),
            None => false,
        }
    }

    /// The custom route `method path` matches, if any. Costs a read lock and an empty check
    /// when no route is registered.
    pub fn match_route(&self, method: &str, path: &str) -> Option<Routed> {
        let loaded = self.current();
        if loaded.registry.routes.is_empty() {
            return None;
        }
        match routes::match_route(&loaded.registry, method, path) {
            Some((index, path_values)) => Some(Routed::Matched(RouteMatch { loaded, index, path_values })),
            None if loaded.registry.routes.iter().any(|r| r.pattern.matches(path).is_some()) => Some(Routed::WrongMethod),
            None => None,
        }
    }
}

/// Runs a matched route's chain on a JS thread.
pub async fn serve_route(m: RouteMatch, mut req: RouteRequest) -> RouteResponse {
    req.path_values = m.path_values.iter().cloned().collect();
    let registry = m.loaded.registry.clone();
    let limits = m.loaded.env.limits;
    let index = m.index;
    let ran = m.loaded.run(limits.timeout, move |ctx| routes::run(ctx, &registry, index, &req)).await;
    match ran {
        Ok((res, None)) => res,
        Ok((_, Some(trap))) => {
            let route = &m.loaded.registry.routes[m.index];
            let src = &m.loaded.registry.sources[route.handler];
            let what = format!("{} {}", route.method.as_deref().unwrap_or("*"), route.pattern.text);
            RouteResponse::failure(&errors::trapped(trap, &what, &src.file, src.line, &limits))
        }
        Err(DispatchError::Saturated) => RouteResponse::failure(&errors::Failure {
            status: 503,
            message: SATURATED_MESSAGE.into(),
            data: Default::default(),
        }),
        Err(e) => {
            tracing::error!(target: "vaultbase::hooks", error = ?e, "a route's JS thread did not answer");
            RouteResponse::failure(&errors::Failure::internal())
        }
    }
}

fn log_loaded(worker_id: u32, dir: &Path, reg: &Registry, what: &str) {
    let hooks: Vec<String> = reg.hook_counts().into_iter().map(|(k, n)| format!("{k}×{n}")).collect();
    tracing::info!(
        target: "vaultbase::hooks", worker_id, dir = %dir.display(), files = reg.files.len(), routes = reg.routes.len(),
        middlewares = reg.global_middlewares.len(), crons = reg.crons.len(), hooks = %hooks.join(","), "{what}"
    );
}

/// What the watcher compares: every file under the dir (skipping dot dirs and node_modules,
/// as PocketBase's watcher) with its modification time and size.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, SystemTime, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "node_modules" {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                if depth < WATCH_MAX_DEPTH {
                    walk(&e.path(), depth + 1, out);
                }
            } else {
                out.push((e.path(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 0, &mut out);
    out.sort();
    out
}

/// Polls the hooks dir; a change that has settled for one interval (debounce) reloads.
fn watch(state: AppState, cfg: HooksConfig) {
    let mut seen = fingerprint(&cfg.dir);
    let mut pending: Option<Vec<(PathBuf, SystemTime, u64)>> = None;
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let now = fingerprint(&cfg.dir);
        match &pending {
            None if now != seen => pending = Some(now),
            Some(p) if *p != now => pending = Some(now),
            Some(_) => {
                pending = None;
                seen = now;
                let reloaded = state.hooks.reload(&state, &cfg);
                crate::worker::ops::hooks_view::note_reload(&reloaded);
                if let Err(e) = reloaded {
                    tracing::error!(
                        target: "vaultbase::hooks", worker_id = state.worker_id, file = %e.file, line = e.line, error = %e.message,
                        "reloading the hooks failed; the previous hooks keep running"
                    );
                }
            }
            None => {}
        }
    }
}
