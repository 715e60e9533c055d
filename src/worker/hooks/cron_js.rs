//! `cronAdd`/`cronRemove` inside handlers (in the loader, loader.js records them instead).
//! Jobs registered at load are scheduled by `Hooks` (see mod.rs); a job added from a handler
//! at run time goes to the same scheduler when there is one.

use std::sync::Arc;

use rquickjs::{Ctx, Function};

use super::engine::Env;

pub fn install<'js>(ctx: &Ctx<'js>, _env: &Arc<Env>) -> rquickjs::Result<()> {
    let add = Function::new(ctx.clone(), |ctx: Ctx<'js>, id: String, _expr: String, _f: rquickjs::Value<'js>| -> rquickjs::Result<()> {
        tracing::warn!(target: "vaultbase::hooks", job = %id, "cronAdd inside a handler: no cron scheduler in this build; the job is ignored");
        let _ = ctx;
        Ok(())
    })?;
    ctx.globals().set("cronAdd", add)?;
    let remove = Function::new(ctx.clone(), |id: String| {
        tracing::debug!(target: "vaultbase::hooks", job = %id, "cronRemove inside a handler");
    })?;
    ctx.globals().set("cronRemove", remove)?;
    Ok(())
}
