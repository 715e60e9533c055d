//! The generic hook chain (PocketBase's `tools/hook`): the handlers of one event, sorted by
//! priority (stable), with the default action as the last link. Each link continues with
//! `e.next()`, which runs the next link on the same runtime, re-entrantly — the default action
//! may be Rust (a host function). `e.next()` throws if anything downstream throws (goja's
//! wrapper: `err.value.status`); a link that does not call it stops the chain; return values
//! are ignored; an async handler's promise is settled before the chain goes on.
//!
//! How another module fires an event, on a JS thread (inside `Loaded::run`):
//! ```ignore
//! let hooks = env.registry.handlers("onRecordCreateRequest", &[&col.id, &col.name]);
//! let default = chain::rust_link(ctx, move |ctx, e| { /* save; throw ApiError on failure */ Ok(()) })?;
//! chain::run(ctx, &hooks, e.clone(), Some(default))?;   // Err: map with errors::failure_of
//! ```

use rquickjs::function::OnceFn;
use rquickjs::{Array, Ctx, Function, Object, Value};

use super::bindings;
use super::engine;
use super::registry::Hook;

/// Runs `hooks` then `default` over the event object `e`.
pub fn run<'js>(ctx: &Ctx<'js>, hooks: &[&Hook], e: Object<'js>, default: Option<Function<'js>>) -> rquickjs::Result<()> {
    let links = Array::new(ctx.clone())?;
    let vb = bindings::vb(ctx)?;
    let hook_link: Function = vb.get("hookLink")?;
    let mut i = 0;
    for hook in hooks {
        let f = engine::handler(ctx, hook.handler)?;
        links.set(i, hook_link.call::<_, Function>((f,))?)?;
        i += 1;
    }
    if let Some(d) = default {
        links.set(i, d)?;
    }
    let run_chain: Function = vb.get("runChain")?;
    run_chain.call::<_, Value>((e, links))?;
    Ok(())
}

/// A Rust default action as a chain link (called at most once, with the event).
pub fn rust_link<'js, F>(ctx: &Ctx<'js>, f: F) -> rquickjs::Result<Function<'js>>
where
    F: FnOnce(Ctx<'js>, Object<'js>) -> rquickjs::Result<()> + 'js,
{
    Function::new(ctx.clone(), OnceFn::new(move |ctx: Ctx<'js>, e: Object<'js>| f(ctx, e)))
}

/// Throws PocketBase's ApiError (`new ApiError(status, message, data)`) from a Rust link, so
/// the handler upstream sees it through `e.next()` like any other downstream failure.
pub fn throw_api_error<'js>(ctx: &Ctx<'js>, status: u16, message: &str, data: Option<&serde_json::Value>) -> rquickjs::Error {
    let build = || -> rquickjs::Result<Value<'js>> {
        let class: rquickjs::Constructor = ctx.globals().get("ApiError")?;
        let data = match data {
            Some(d) => ctx.json_parse(d.to_string())?,
            None => Value::new_undefined(ctx.clone()),
        };
        class.construct((status, message, data))
    };
    match build() {
        Ok(v) => ctx.throw(v),
        Err(e) => e,
    }
}
