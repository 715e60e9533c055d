//! `cronAdd`/`cronRemove` on the worker's cron scheduler (`worker::cron`).
//!
//! Jobs the hook files register at load are (re-)registered after every load and reload
//! ([`sync_loaded_jobs`]); each run looks its handler up in the hook set current at that
//! moment and runs it on a JS thread under the cron deadline. Inside handlers (executor
//! runtimes) `cronAdd`/`cronRemove` talk to the scheduler directly; such a job keeps its
//! source text and is compiled afresh for each run, on whichever set is current.

use std::sync::Arc;

use rquickjs::{Ctx, Function, Value};

use super::engine::{self, Env};
use super::{bindings, errors, Loaded};
use crate::worker::cron::{job_fn, JobFn};
use crate::worker::state::AppState;

pub fn install<'js>(ctx: &Ctx<'js>, env: &Arc<Env>) -> rquickjs::Result<()> {
    let state = env.state.clone();
    let add = Function::new(ctx.clone(), move |ctx: Ctx<'js>, id: String, expr: String, f: Value<'js>| -> rquickjs::Result<()> {
        let Some(f) = f.as_function() else {
            return Err(rquickjs::Exception::throw_type(&ctx, "cronAdd's handler must be a function"));
        };
        let src: String = ctx.globals().get::<_, Function>("Function")?.get::<_, rquickjs::Object>("prototype")?.get::<_, Function>("toString")?.call((rquickjs::function::This(f.clone()),))?;
        let Some(state) = state.clone() else {
            return Err(rquickjs::Exception::throw_internal(&ctx, "cronAdd needs a running server"));
        };
        state.crons.add(&id, &expr, source_job(id.clone(), src)).map_err(|e| rquickjs::Exception::throw_message(&ctx, &e.to_string()))
    })?;
    ctx.globals().set("cronAdd", add)?;
    let state = env.state.clone();
    let remove = Function::new(ctx.clone(), move |id: String| {
        if let Some(state) = &state {
            state.crons.remove(&id);
        }
    })?;
    ctx.globals().set("cronRemove", remove)?;
    Ok(())
}

/// Registers the jobs of `loaded` with the scheduler and removes the ones a previous load
/// registered that are gone now. Answers the ids registered, for the next call.
pub fn sync_loaded_jobs(state: &AppState, loaded: &Loaded, previous: &[String]) -> Vec<String> {
    let ids: Vec<String> = loaded.registry.crons.iter().map(|j| j.id.clone()).collect();
    for old in previous {
        if !ids.contains(old) {
            state.crons.remove(old);
        }
    }
    for job in &loaded.registry.crons {
        if let Err(e) = state.crons.add(&job.id, &job.expr, loaded_job(job.id.clone())) {
            // The loader already parsed the expression; this cannot happen for a loaded set.
            tracing::error!(target: "vaultbase::hooks", job = %job.id, error = %e, "registering a cron job failed");
        }
    }
    ids
}

/// A job registered by a hook file: its handler is found in the set current at run time.
fn loaded_job(id: String) -> JobFn {
    job_fn(move |state: AppState| {
        let id = id.clone();
        async move {
            let loaded = state.hooks.current();
            let Some(handler) = loaded.registry.crons.iter().find(|j| j.id == id).map(|j| j.handler) else {
                return Err(format!("cron job {id} is no longer registered by the hooks"));
            };
            let what = format!("cron {id}");
            run_on(&loaded, what, move |ctx| engine::handler(ctx, handler)).await
        }
    })
}

/// A job added from inside a handler: compiled from its source for each run.
fn source_job(id: String, src: String) -> JobFn {
    job_fn(move |state: AppState| {
        let (id, src) = (id.clone(), src.clone());
        async move {
            let loaded = state.hooks.current();
            run_on(&loaded, format!("cron {id}"), move |ctx| {
                let mut opts = rquickjs::context::EvalOptions::default();
                opts.strict = false;
                opts.filename = Some(format!("<cronAdd {id}>"));
                ctx.eval_with_options(format!("({src}\n)"), opts)
            })
            .await
        }
    })
}

async fn run_on<F>(loaded: &Loaded, what: String, get: F) -> Result<(), String>
where
    F: for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<Function<'js>> + Send + 'static,
{
    let limits = loaded.env().limits;
    let label = what.clone();
    let ran = loaded
        .run(limits.cron_timeout, move |ctx| -> Result<(), errors::Failure> {
            let go = || -> rquickjs::Result<()> {
                let f = get(ctx)?;
                let link: Function = bindings::call_vb(ctx, "hookLink", (f,))?;
                let out: Value = link.call(())?;
                super::natives::settle(ctx, out)?;
                Ok(())
            };
            go().map_err(|e| errors::failure_of(ctx, e, &label))
        })
        .await;
    match ran {
        Ok((Ok(()), None)) => Ok(()),
        Ok((_, Some(trap))) => {
            let timed = engine::Limits { timeout: limits.cron_timeout, ..limits };
            errors::trapped(trap, &what, "", 0, &timed);
            Err(format!("{what}: stopped by the {} limit", if trap == engine::Trap::Deadline { "deadline" } else { "memory" }))
        }
        Ok((Err(f), None)) => Err(format!("{what}: {}", f.message)),
        Err(e) => Err(format!("{what}: could not run ({e:?})")),
    }
}
