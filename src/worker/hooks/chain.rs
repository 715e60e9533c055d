//! The generic hook chain (PocketBase's `tools/hook`): the handlers of one event, sorted by
//! priority (stable), with the default action as the last link. Each link continues with
//! `e.next()`, which runs the next link on the same runtime, re-entrantly — the default action
//! may be Rust (a host function). `e.next()` throws if anything downstream throws (goja's
//! wrapper: `err.value.status`); a link that does not call it stops the chain; return values
//! are ignored; an async handler's promise is settled before the chain goes on.
//!
//! How another module fires an event, on a JS thread (inside `Loaded::run`):
//! ```text
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rquickjs::{CatchResultExt, Object};

    use super::*;
    use crate::worker::hooks::engine::{Engine, Env, Limits};
    use crate::worker::hooks::errors;
    use crate::worker::hooks::registry::{Registry, Source};

    fn setup(handlers: &[(&str, &[&str])]) -> (Engine, Arc<Registry>) {
        let mut reg = Registry::empty(std::env::temp_dir());
        for (src, tags) in handlers {
            let h = reg.add_source(Source { src: (*src).to_owned(), file: "test.pb.js".into(), line: 1 });
            reg.add_hook("onThing", Hook { handler: h, tags: tags.iter().map(|t| t.to_string()).collect(), priority: 0 });
        }
        let reg = Arc::new(reg);
        let env = Arc::new(Env {
            state: None,
            handle: None,
            registry: reg.clone(),
            dir: std::env::temp_dir(),
            limits: Limits { timeout: Duration::from_secs(5), cron_timeout: Duration::from_secs(5), memory_bytes: 32 << 20 },
            allow_exec: false,
            store: Arc::default(),
        });
        (Engine::new(env).expect("engine"), reg)
    }

    /// Runs the chain of "onThing" for `tags` with a Rust default action that appends "D" to
    /// `e.trace` (or throws a 409 when `e.fail` is set); answers e.trace or the failure.
    fn fire(engine: &mut Engine, reg: &Registry, tags: &[&str], fail: bool) -> Result<String, errors::Failure> {
        let hooks: Vec<&Hook> = reg.handlers("onThing", tags);
        let (out, trap) = engine.run(Duration::from_secs(5), |ctx| {
            let e = Object::new(ctx.clone()).expect("event");
            e.set("trace", "").expect("set");
            e.set("fail", fail).expect("set");
            let default = rust_link(ctx, |ctx, e: Object| {
                if e.get::<_, bool>("fail")? {
                    return Err(throw_api_error(&ctx, 409, "taken", Some(&serde_json::json!({"f": 1}))));
                }
                let t: String = e.get("trace")?;
                e.set("trace", t + "D")
            })
            .expect("link");
            match run(ctx, &hooks, e.clone(), Some(default)).catch(ctx) {
                Ok(()) => Ok(e.get::<_, String>("trace").expect("trace")),
                Err(err) => Err(errors::failure_of(ctx, err.throw(ctx), "onThing")),
            }
        });
        assert!(trap.is_none());
        out
    }

    #[test]
    fn handlers_wrap_the_rust_default_action_re_entrantly() {
        let (mut engine, reg) = setup(&[
            ("function (e) { e.trace += 'a'; e.next(); e.trace += 'A'; }", &[]),
            ("function (e) { e.trace += 'b'; e.next(); }", &["posts"]),
            ("function (e) { e.trace += 'x'; e.next(); }", &["users"]),
        ]);
        assert_eq!(fire(&mut engine, &reg, &["posts"], false).expect("chain"), "abDA");
        assert_eq!(fire(&mut engine, &reg, &["users"], false).expect("chain"), "axDA");
    }

    #[test]
    fn a_failing_default_action_surfaces_through_next_as_goja_does() {
        let (mut engine, reg) = setup(&[(
            "function (e) { try { e.next() } catch (err) { e.trace = err.message + ' ' + err.value.status + ' ' + (err.status === undefined); } }",
            &[],
        )]);
        assert_eq!(fire(&mut engine, &reg, &[], true).expect("caught"), "Taken. 409 true");

        let (mut engine, reg) = setup(&[("function (e) { e.next() }", &[])]);
        let f = fire(&mut engine, &reg, &[], true).expect_err("propagates");
        assert_eq!((f.status, f.message.as_str(), f.data), (409, "Taken.", serde_json::from_value(serde_json::json!({"f": {"code": "validation_invalid_value", "message": "Invalid value."}})).expect("map")));
    }

    #[test]
    fn not_calling_next_stops_the_chain_and_no_handlers_runs_the_default() {
        let (mut engine, reg) = setup(&[("function (e) { e.trace += 's'; }", &[]), ("function (e) { e.trace += 'never'; e.next(); }", &[])]);
        assert_eq!(fire(&mut engine, &reg, &[], false).expect("chain"), "s");
        let (mut engine, reg) = setup(&[]);
        assert_eq!(fire(&mut engine, &reg, &[], false).expect("chain"), "D");
    }
}
