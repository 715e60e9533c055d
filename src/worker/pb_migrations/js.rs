//! One migration file run in its own QuickJS runtime, on its own thread (as PocketBase gives
//! each migration file its own VM): the prelude, then the file (which calls `migrate`), then
//! its `up` or `down`.
//!
//! The write transaction cannot cross into JS host functions (they must be `'static`), so it
//! stays on the caller's thread: every host call is sent there as a [`HostCall`] and waits
//! for its answer. When the JS thread ends, its sender drops and the caller's loop ends.

use std::sync::mpsc;

use rquickjs::{CatchResultExt, Context, Function, Runtime};

/// A migration is trusted code, but a runaway one should fail, not take the host down.
const JS_MEMORY_LIMIT_BYTES: usize = 512 * 1024 * 1024;
const JS_MAX_STACK_BYTES: usize = 1024 * 1024;
/// The JS thread's own stack: QuickJS recursion needs more than Rust's 2 MiB default.
const JS_THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

const PRELUDE: &str = include_str!("prelude.js");

/// Which of the file's two functions to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// One host call from JS: an operation, its JSON payload, and where the answer goes
/// (`{"ok": …}` or `{"error": "…"}` as JSON text).
pub struct HostCall {
    pub op: String,
    pub payload: String,
    pub reply: mpsc::Sender<String>,
}

/// The running file: its host calls, and its thread, which yields the outcome (`Err` holds
/// the JS error text).
pub type Started = (mpsc::Receiver<HostCall>, std::thread::JoinHandle<Result<(), String>>);

/// Starts `source` on a new thread.
pub fn start(file: String, source: String, direction: Direction) -> std::io::Result<Started> {
    let (calls_tx, calls_rx) = mpsc::channel::<HostCall>();
    let handle = std::thread::Builder::new()
        .name(format!("migration {file}"))
        .stack_size(JS_THREAD_STACK_BYTES)
        .spawn(move || run(&file, &source, direction, calls_tx))?;
    Ok((calls_rx, handle))
}

fn run(file: &str, source: &str, direction: Direction, calls: mpsc::Sender<HostCall>) -> Result<(), String> {
    let runtime = Runtime::new().map_err(|e| format!("starting the JS runtime: {e}"))?;
    runtime.set_memory_limit(JS_MEMORY_LIMIT_BYTES);
    runtime.set_max_stack_size(JS_MAX_STACK_BYTES);
    let context = Context::full(&runtime).map_err(|e| format!("starting the JS context: {e}"))?;
    context.with(|ctx| {
        let host = Function::new(ctx.clone(), move |op: String, payload: String| -> String {
            let (reply_tx, reply_rx) = mpsc::channel();
            let gone = || serde_json::json!({"error": "the migration's transaction is gone"}).to_string();
            if calls.send(HostCall { op, payload, reply: reply_tx }).is_err() {
                return gone();
            }
            reply_rx.recv().unwrap_or_else(|_| gone())
        })
        .map_err(|e| format!("installing the host function: {e}"))?;
        ctx.globals().set("__vb_host", host).map_err(|e| format!("installing the host function: {e}"))?;
        ctx.eval::<(), _>(PRELUDE).catch(&ctx).map_err(|e| format!("prelude: {e}"))?;
        let mut options = rquickjs::context::EvalOptions::default();
        options.global = true;
        options.strict = false;
        options.filename = Some(file.to_owned());
        ctx.eval_with_options::<(), _>(source, options).catch(&ctx).map_err(|e| e.to_string())?;
        let which = match direction {
            Direction::Up => "up",
            Direction::Down => "down",
        };
        ctx.eval::<(), _>(format!("__vb_run({which:?})")).catch(&ctx).map_err(|e| e.to_string())?;
        Ok(())
    })
}
