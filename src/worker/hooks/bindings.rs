//! The one install point of the JS globals: [`install`] runs in every runtime (the loader and
//! each executor) and builds the same surface: `__native` host functions (here and in
//! `natives`), then `prelude.js`, then each binding module's own `install`.
//!
//! **Other modules plug in here with one line each** (below, in `install`): `record.rs`,
//! `app.rs` (jsdata), `migrate*.rs`, `mailer.rs`, `realtime_js.rs` (jsmigrate). A module
//! adds `$app` members on `__vb.appMembers` (see [`app_members`]) and its own globals; it must
//! not replace `$app` itself (the `$app` stack in prelude.js owns that).

use std::sync::Arc;

use rquickjs::{Ctx, Function, Object, Value};

use super::engine::Env;
use super::registry::HOOK_NAMES;

/// The JavaScript half of the globals.
const PRELUDE_JS: &str = include_str!("prelude.js");

/// Installs every global into `ctx`.
pub fn install<'js>(ctx: &Ctx<'js>, env: &Arc<Env>) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;
    super::natives::install(ctx, &native, env)?;
    ctx.globals().set("__native", native)?;
    eval_internal(ctx, PRELUDE_JS, "<vaultbase prelude>")?;
    let vb: Object = ctx.globals().get("__vb")?;
    vb.set("hookNames", HOOK_NAMES.to_vec())?;
    // A runtime serves one hook set, so what it registered is fixed for the runtime's life.
    let registered: rquickjs::Function = ctx.eval("(names) => new Set(names)")?;
    vb.set("registeredHooks", registered.call::<_, Value>((env.registry.hook_names(),))?)?;
    super::cron_js::install(ctx, env)?;
    // Binding modules of other parts of the issue: one line each, in this order.
    super::collection::install(ctx)?;
    super::record::install(ctx)?;
    super::app::install(ctx)?;
    super::jobs_js::install(ctx)?;
    super::record_requests::install(ctx)?;
    super::mailer::install(ctx, env)?;
    super::realtime_js::install(ctx, env)?;
    Ok(())
}

/// `__vb.appMembers`: the object behind `$app` (a Proxy throws a TypeError for unknown
/// members). A binding adds a member with `app_members(ctx)?.set("findRecordById", f)`.
pub fn app_members<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let vb: Object = ctx.globals().get("__vb")?;
    vb.get("appMembers")
}

/// The `__vb` internals object (prelude.js).
pub fn vb<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    ctx.globals().get("__vb")
}

/// Calls `__vb.<name>(args…)`.
pub fn call_vb<'js, A, R>(ctx: &Ctx<'js>, name: &str, args: A) -> rquickjs::Result<R>
where
    A: rquickjs::function::IntoArgs<'js>,
    R: rquickjs::FromJs<'js>,
{
    let f: Function = vb(ctx)?.get(name)?;
    f.call(args)
}

/// Evaluates trusted built-in source as a global script.
pub fn eval_internal<'js>(ctx: &Ctx<'js>, src: &str, name: &str) -> rquickjs::Result<Value<'js>> {
    let mut opts = rquickjs::context::EvalOptions::default();
    opts.strict = false;
    opts.filename = Some(name.to_owned());
    ctx.eval_with_options(src, opts)
}
