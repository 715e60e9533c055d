//! `$jobs.enqueue` and `jobsAdd`: server-side JavaScript on the job queue (`worker::jobs`).
//!
//! Where an enqueue lands decides when the job exists:
//! - in a transaction-scoped app (`runInTransaction`, or a record hook of a save made with
//!   one): on that transaction, through the data facade's session — it exists only if the
//!   transaction commits;
//! - in a record hook of a save outside one (a REST create, `$app.save`): planned now and
//!   inserted by the save's own transaction (`jobs.js` stages it right before the write;
//!   [`crate::worker::jobs::take_staged`] in the pipeline picks it up) — a save that fails or
//!   is never made leaves no job;
//! - anywhere else: in a write of its own, at once.
//!
//! `jobsAdd` is recorded by the loader like `cronAdd`; after each load the set's handlers are
//! registered with the worker's [`Jobs`](crate::worker::jobs::Jobs) ([`sync_loaded_handlers`]),
//! each a Rust handler that runs the JS function on a JS thread of the set current at that
//! moment, under the registration's timeout. A throw (or a rejected promise) fails the
//! attempt, which the queue retries with its backoff.
//!
//! It must not run JS anywhere but a pool thread, and it never lets a hook file replace a
//! built-in handler (webhook deliveries, the test handler).

use std::sync::Arc;
use std::time::Duration;

use rquickjs::{Ctx, Function, Object, Value as JsValue};
use serde_json::{Map, Value};

use super::engine;
use super::{bindings, errors, natives, Loaded};
use crate::worker::jobs::{self, handler_fn, EnqueueOptions, Handler, HandlerOptions, Job};
use crate::worker::state::AppState;

const JOBS_JS: &str = include_str!("jobs.js");

/// The most jobs of one name a registration may run at once on one worker.
pub const MAX_CONCURRENCY: usize = 1000;
/// The longest timeout a registration may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A checked `jobsAdd` registration.
pub struct Spec {
    pub concurrency: usize,
    pub timeout: Duration,
}

/// Checks `jobsAdd(name, fn, {concurrency, timeout})` at load: the error is the load's.
pub fn check_registration(name: &str, concurrency: Option<f64>, timeout_ms: Option<f64>) -> Result<Spec, String> {
    if name.trim().is_empty() {
        return Err("jobsAdd needs a job name".into());
    }
    if is_builtin(name) {
        return Err(format!("jobsAdd({name:?}): the name belongs to a built-in job"));
    }
    let concurrency = match concurrency {
        None => jobs::DEFAULT_CONCURRENCY,
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= MAX_CONCURRENCY as f64 => n as usize,
        Some(_) => return Err(format!("jobsAdd({name:?}): concurrency must be a whole number from 1 to {MAX_CONCURRENCY}")),
    };
    let timeout = match timeout_ms {
        None => jobs::DEFAULT_TIMEOUT,
        Some(ms) if ms.is_finite() && ms >= 1.0 && ms <= jobs::millis(MAX_TIMEOUT) as f64 => Duration::from_millis(ms as u64),
        Some(_) => return Err(format!("jobsAdd({name:?}): timeout must be a number of milliseconds from 1 to {}", jobs::millis(MAX_TIMEOUT))),
    };
    Ok(Spec { concurrency, timeout })
}

fn is_builtin(name: &str) -> bool {
    name == jobs::webhooks::DELIVER_JOB || name == jobs::testing::TEST_JOB
}

/// Adds the natives, then evaluates `jobs.js` (after `app.js`).
pub fn install<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    let native: Object = ctx.globals().get("__native")?;
    native.set("jobsEnqueue", Function::new(ctx.clone(), |ctx: Ctx<'js>, name: String, payload: String, opts: String, tx: f64| enqueue(&ctx, &name, &payload, &opts, tx))?)?;
    native.set("jobsPrepare", Function::new(ctx.clone(), |ctx: Ctx<'js>, name: String, payload: String, opts: String| prepare(&ctx, &name, &payload, &opts))?)?;
    native.set("jobsStage", Function::new(ctx.clone(), |ctx: Ctx<'js>, staged: String| stage(&ctx, &staged))?)?;
    bindings::eval_internal(ctx, JOBS_JS, "<vaultbase jobs>")?;
    Ok(())
}

fn parse_args<'js>(ctx: &Ctx<'js>, payload: &str, opts: &str) -> rquickjs::Result<(Value, EnqueueOptions)> {
    let payload: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let opts: EnqueueOptions = serde_json::from_str(opts).map_err(|e| {
        let why = e.to_string();
        let why = why.split(" at line").next().unwrap_or_default().to_owned();
        rquickjs::Exception::throw_type(ctx, &format!("$jobs.enqueue: invalid options ({why}); allowed: delay, runAt, maxAttempts, backoff, key"))
    })?;
    Ok((payload, opts))
}

/// `$jobs.enqueue` in a transaction (`tx` > 0) or a write of its own.
fn enqueue<'js>(ctx: &Ctx<'js>, name: &str, payload: &str, opts: &str, tx: f64) -> rquickjs::Result<String> {
    let (payload, opts) = parse_args(ctx, payload, opts)?;
    let mut args = Map::new();
    if tx > 0.0 {
        args.insert("tx".into(), Value::from(tx as u64));
    }
    let Some(app) = super::app::app_for(&args) else {
        return Err(rquickjs::Exception::throw_message(ctx, "$jobs.enqueue: the database is not available here"));
    };
    app.enqueue_job(name, payload, opts).map_err(|e| super::app::throw_data_error(ctx, e))
}

/// `$jobs.enqueue` inside a record hook: the planned job as JSON, for the save to insert.
fn prepare<'js>(ctx: &Ctx<'js>, name: &str, payload: &str, opts: &str) -> rquickjs::Result<String> {
    let (payload, opts) = parse_args(ctx, payload, opts)?;
    let staged = jobs::prepare(name, payload, &opts, jobs::now_ms()).map_err(|e| rquickjs::Exception::throw_message(ctx, &e.to_string()))?;
    serde_json::to_string(&staged).map_err(|e| rquickjs::Exception::throw_internal(ctx, &e.to_string()))
}

/// Hands the planned jobs to this thread's next write ("" clears them).
fn stage<'js>(ctx: &Ctx<'js>, staged: &str) -> rquickjs::Result<()> {
    if staged.is_empty() {
        jobs::stage(Vec::new());
        return Ok(());
    }
    let list: Vec<jobs::Staged> = serde_json::from_str(staged).map_err(|e| rquickjs::Exception::throw_internal(ctx, &e.to_string()))?;
    jobs::stage(list);
    Ok(())
}

/// Registers the `jobsAdd` handlers of `loaded` and removes those a previous load registered
/// that are gone. Answers the names registered, for the next call.
pub fn sync_loaded_handlers(state: &AppState, loaded: &Loaded, previous: &[String]) -> Vec<String> {
    let names: Vec<String> = loaded.registry.jobs.iter().map(|j| j.name.clone()).collect();
    for old in previous {
        if !names.contains(old) {
            state.jobs.remove_handler(old);
        }
    }
    for j in &loaded.registry.jobs {
        state.jobs.add_handler(&j.name, loaded_handler(j.name.clone()), HandlerOptions { concurrency: j.concurrency, timeout: j.timeout, led: false });
    }
    names
}

/// A registered job's handler: found in the hook set current when the attempt starts.
fn loaded_handler(name: String) -> Handler {
    handler_fn(move |state: AppState, job: Job| {
        let name = name.clone();
        async move {
            let loaded = state.hooks.current();
            let Some(reg) = loaded.registry.jobs.iter().find(|j| j.name == name).cloned() else {
                return Err(format!("job {name}: no longer registered by the hooks"));
            };
            run(&loaded, reg.handler, reg.timeout, job).await
        }
    })
}

/// Runs handler `handler` with the job's event `{id, name, payload, attempt, maxAttempts,
/// app}` on a JS thread of `loaded`; `$app` is the base app while it runs.
async fn run(loaded: &Arc<Loaded>, handler: usize, timeout: Duration, job: Job) -> Result<(), String> {
    let what = format!("job {}", job.name);
    let ran = loaded
        .run(timeout, move |ctx| -> Result<(), String> {
            let go = || -> rquickjs::Result<()> {
                let f = engine::handler(ctx, handler)?;
                let link: Function = bindings::call_vb(ctx, "hookLink", (f,))?;
                let e = Object::new(ctx.clone())?;
                e.set("id", job.id.as_str())?;
                e.set("name", job.name.as_str())?;
                e.set("payload", ctx.json_parse(job.payload.to_string())?)?;
                e.set("attempt", job.attempt)?;
                e.set("maxAttempts", job.max_attempts)?;
                e.set("app", bindings::vb(ctx)?.get::<_, JsValue>("baseApp")?)?;
                let out: JsValue = link.call((e,))?;
                natives::settle(ctx, out)?;
                Ok(())
            };
            go().map_err(|err| thrown(ctx, err))
        })
        .await;
    let limits = loaded.env().limits;
    match ran {
        Ok((Ok(()), None)) => Ok(()),
        Ok((_, Some(trap))) => {
            errors::trapped(trap, &what, "", 0, &engine::Limits { timeout, ..limits });
            Err(format!("{what}: stopped by the {} limit", if trap == engine::Trap::Deadline { "deadline" } else { "memory" }))
        }
        Ok((Err(text), None)) => Err(text),
        Err(e) => Err(format!("{what}: could not run ({e:?})")),
    }
}


/// What a handler threw, with its stack, as the attempt's error (only superusers see it, in
/// the jobs API; PocketBase's hiding of internal messages from clients does not apply).
fn thrown(ctx: &Ctx<'_>, err: rquickjs::Error) -> String {
    let caught = rquickjs::CaughtError::from_error(ctx, err);
    if engine::interrupted() {
        // The dispatcher reports the deadline.
        return String::new();
    }
    if let rquickjs::CaughtError::Exception(ex) = &caught {
        if errors::is_out_of_memory(ex) {
            engine::note_out_of_memory();
        }
    }
    errors::describe_caught(caught)
}
