//! [`Engine`]: one QuickJS runtime + context on the current (dedicated, non-tokio) thread,
//! with its limits and its cache of compiled handlers.
//!
//! Limits: every dispatch runs under a deadline enforced by the interrupt handler (an
//! uncatchable "interrupted" error), and the runtime has a memory limit. A runtime that was
//! interrupted or ran out of memory is marked poisoned and must be dropped by its owner (the
//! pool builds a fresh one): memory held by globals would otherwise stay held.
//!
//! rquickjs rules kept here: `Persistent` handles are dropped before the runtime (else
//! `JS_FreeRuntime` asserts); no `Runtime::execute_pending_job` inside `ctx.with`.
//!
//! While a dispatch runs, [`current`] gives host functions (this module's callers, and other
//! binding modules) the thread's [`Env`] and handler cache without threading them through JS.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::{Context, Ctx, Function, Persistent, Runtime};

use super::registry::Registry;
use crate::worker::state::AppState;

/// The JS stack limit; the thread running it has a larger native stack (see `pool`).
pub const JS_STACK_BYTES: usize = 1024 * 1024;
/// A runtime using more than this share of its memory limit after a dispatch is recycled.
pub const RECYCLE_MEMORY_PERCENT: u64 = 90;
/// The memory check above runs after every this many dispatches, not after each: QuickJS
/// measures usage by walking its whole heap (~100 µs with the bindings loaded, more than a
/// small route's whole cost). A dispatch that outgrows the limit is stopped by the limit
/// itself; this check only catches slow growth across dispatches.
pub const MEMORY_CHECK_EVERY_DISPATCHES: u32 = 1024;

/// Deadlines and memory, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Route, hook and bootstrap dispatches.
    pub timeout: Duration,
    /// Cron jobs.
    pub cron_timeout: Duration,
    pub memory_bytes: usize,
}

/// What every runtime of one loaded hook set shares.
pub struct Env {
    /// None only in unit tests that run JS without a server.
    pub state: Option<AppState>,
    /// For host functions that need async vaultbase code (`block_on` from this plain thread).
    pub handle: Option<tokio::runtime::Handle>,
    pub registry: Arc<Registry>,
    /// The hooks dir (`__hooks`, `require` base).
    pub dir: PathBuf,
    pub limits: Limits,
    /// `$os.cmd` is refused unless VAULTBASE_HOOKS_ALLOW_EXEC=1.
    pub allow_exec: bool,
    /// `$app.store()`: per worker process, kept across reloads.
    pub store: Arc<Mutex<HashMap<String, String>>>,
}

/// Per-thread state reachable from host functions during a dispatch.
pub struct ThreadState {
    pub env: Arc<Env>,
    deadline: Cell<Option<Instant>>,
    interrupted: Cell<bool>,
    out_of_memory: Cell<bool>,
    cache: RefCell<Vec<Option<Persistent<Function<'static>>>>>,
    /// `__vb` functions Rust calls on every dispatch, by name ([`internal`]).
    internals: RefCell<HashMap<&'static str, Persistent<Function<'static>>>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<ThreadState>>> = const { RefCell::new(None) };
}

/// The running dispatch's thread state (None outside a dispatch).
pub fn current() -> Option<Rc<ThreadState>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Time left before the running dispatch's deadline.
pub fn remaining() -> Option<Duration> {
    current().and_then(|ts| ts.deadline.get()).map(|d| d.saturating_duration_since(Instant::now()))
}

/// Whether the running dispatch was interrupted by its deadline (its error is then not the
/// hook's own and is reported once, by the dispatcher).
pub fn interrupted() -> bool {
    current().is_some_and(|ts| ts.interrupted.get())
}

/// Records that the running dispatch hit the memory limit (the engine is then recycled).
pub fn note_out_of_memory() {
    if let Some(ts) = current() {
        ts.out_of_memory.set(true);
    }
}

/// Why a dispatch could not finish normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    Deadline,
    OutOfMemory,
}

pub struct Engine {
    ts: Rc<ThreadState>,
    ctx: Context,
    rt: Runtime,
    poisoned: bool,
    dispatches: u32,
}

impl Engine {
    /// A runtime with the limits and every global installed.
    pub fn new(env: Arc<Env>) -> Result<Engine, String> {
        let rt = Runtime::new().map_err(|e| format!("creating a JS runtime: {e}"))?;
        rt.set_memory_limit(env.limits.memory_bytes);
        rt.set_max_stack_size(JS_STACK_BYTES);
        let ts = Rc::new(ThreadState {
            env: env.clone(),
            deadline: Cell::new(None),
            interrupted: Cell::new(false),
            out_of_memory: Cell::new(false),
            cache: RefCell::new(Vec::new()),
            internals: RefCell::new(HashMap::new()),
        });
        let watch = ts.clone();
        rt.set_interrupt_handler(Some(Box::new(move || match watch.deadline.get() {
            Some(d) if Instant::now() >= d => {
                watch.interrupted.set(true);
                true
            }
            _ => false,
        })));
        let ctx = Context::full(&rt).map_err(|e| format!("creating a JS context: {e}"))?;
        let engine = Engine { ts, ctx, rt, poisoned: false, dispatches: 0 };
        let installed = engine.ctx.with(|ctx| {
            super::bindings::install(&ctx, &env).map_err(|e| super::errors::describe(&ctx, e))?;
            let dir = env.dir.display().to_string();
            ctx.globals().set("__hooks", dir).map_err(|e| e.to_string())
        });
        installed.map_err(|e| format!("installing the JS bindings: {e}"))?;
        Ok(engine)
    }

    /// Runs `f` in this runtime under `timeout`. Afterwards the engine may be poisoned; the
    /// result says whether the deadline or the memory limit ended it.
    pub fn run<T>(&mut self, timeout: Duration, f: impl for<'js> FnOnce(&Ctx<'js>) -> T) -> (T, Option<Trap>) {
        self.ts.deadline.set(Some(Instant::now() + timeout));
        self.ts.interrupted.set(false);
        self.ts.out_of_memory.set(false);
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.ts.clone()));
        let out = self.ctx.with(|ctx| {
            let out = f(&ctx);
            // Jobs a handler left queued (a promise it did not await) run now, still under the
            // deadline, so none leaks into the next dispatch.
            while ctx.execute_pending_job() {}
            out
        });
        CURRENT.with(|c| *c.borrow_mut() = previous);
        self.ts.deadline.set(None);
        self.dispatches = self.dispatches.wrapping_add(1);
        let near_limit = self.dispatches.is_multiple_of(MEMORY_CHECK_EVERY_DISPATCHES) && {
            let used = u64::try_from(self.rt.memory_usage().malloc_size).unwrap_or(0);
            used * 100 > self.ts.env.limits.memory_bytes as u64 * RECYCLE_MEMORY_PERCENT
        };
        let trap = if self.ts.interrupted.get() {
            Some(Trap::Deadline)
        } else if self.ts.out_of_memory.get() || near_limit {
            Some(Trap::OutOfMemory)
        } else {
            None
        };
        if trap.is_some() {
            self.poisoned = true;
        }
        (out, trap)
    }

    /// True after an interrupt or OOM: drop this engine and build a new one.
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    pub fn env(&self) -> &Arc<Env> {
        &self.ts.env
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Persistent handles first, then the interrupt closure (it holds the thread state);
        // the context and runtime drop after, in field order.
        self.ts.cache.borrow_mut().clear();
        self.ts.internals.borrow_mut().clear();
        self.rt.set_interrupt_handler(None);
    }
}

/// The compiled function of handler `id`, compiled on first use in this runtime. Its source
/// is evaluated at global scope with the original file name and line numbers, so it cannot
/// see the hook file's top-level variables (as in PocketBase) and its errors point at the file.
pub fn handler<'js>(ctx: &Ctx<'js>, id: usize) -> rquickjs::Result<Function<'js>> {
    let Some(ts) = current() else {
        return Err(rquickjs::Exception::throw_internal(ctx, "no hook dispatch is running on this thread"));
    };
    if let Some(Some(p)) = ts.cache.borrow().get(id) {
        return p.clone().restore(ctx);
    }
    let Some(source) = ts.env.registry.sources.get(id) else {
        return Err(rquickjs::Exception::throw_internal(ctx, "unknown hook handler"));
    };
    let mut code = "\n".repeat(source.line.saturating_sub(1) as usize);
    code.push('(');
    code.push_str(&source.src);
    code.push_str("\n)");
    let mut opts = rquickjs::context::EvalOptions::default();
    opts.strict = false;
    opts.filename = Some(source.file.clone());
    let f: Function = ctx.eval_with_options(code, opts)?;
    let mut cache = ts.cache.borrow_mut();
    if cache.len() <= id {
        cache.resize_with(id + 1, || None);
    }
    cache[id] = Some(Persistent::save(ctx, f.clone()));
    Ok(f)
}

/// `__vb[name]`, looked up once per runtime: the runtime's internals are fixed once its
/// bindings are installed, and two property lookups by name per call were a measurable part
/// of a small dispatch. Outside a dispatch it is looked up each time.
pub fn internal<'js>(ctx: &Ctx<'js>, name: &'static str) -> rquickjs::Result<Function<'js>> {
    let Some(ts) = current() else {
        return super::bindings::vb(ctx)?.get(name);
    };
    if let Some(p) = ts.internals.borrow().get(name) {
        return p.clone().restore(ctx);
    }
    let f: Function = super::bindings::vb(ctx)?.get(name)?;
    ts.internals.borrow_mut().insert(name, Persistent::save(ctx, f.clone()));
    Ok(f)
}
