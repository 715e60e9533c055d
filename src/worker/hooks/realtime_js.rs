//! Custom realtime messages for hooks: `SubscriptionMessage` and `$app.subscriptionsBroker()`
//! (`clients()`, `clientById`, `totalClients`, each client's `hasSubscription`, `send`,
//! `get("auth")`), over `worker::realtime::custom`, so the loop PocketBase documents —
//! `for (id in clients) if (clients[id].hasSubscription(t)) clients[id].send(msg)` — reaches
//! the subscribers of every worker of a cluster, not only this one's. `broadcast(topic, data)`
//! is vaultbase's one-call form of that loop.
//!
//! The natives block their JS thread (a plain std thread) on the tokio handle for the
//! cluster listing; sends only queue.

use std::sync::Arc;

use rquickjs::{Ctx, Exception, Function, Object};

use super::bindings;
use super::engine::Env;

const REALTIME_JS: &str = include_str!("realtime.js");

pub fn install<'js>(ctx: &Ctx<'js>, env: &Arc<Env>) -> rquickjs::Result<()> {
    let native: Object = ctx.globals().get("__native")?;
    let e = env.clone();
    let clients = Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> rquickjs::Result<String> {
        let (Some(state), Some(handle)) = (&e.state, &e.handle) else {
            return Err(Exception::throw_message(&ctx, "realtime is not available here"));
        };
        let list = handle.block_on(state.realtime.cluster_clients(state.config.workers));
        serde_json::to_string(&list).map_err(|err| Exception::throw_message(&ctx, &err.to_string()))
    })?;
    native.set("rtClients", clients.with_name("rtClients")?)?;
    let e = env.clone();
    let send = Function::new(ctx.clone(), move |client_id: String, name: String, data: String| {
        if let Some(state) = &e.state {
            state.realtime.send_custom(&client_id, &name, &data);
        }
    })?;
    native.set("rtSend", send.with_name("rtSend")?)?;
    let e = env.clone();
    let broadcast = Function::new(ctx.clone(), move |topic: String, data: String| {
        if let Some(state) = &e.state {
            state.realtime.broadcast_custom(&topic, &data);
        }
    })?;
    native.set("rtBroadcast", broadcast.with_name("rtBroadcast")?)?;
    bindings::eval_internal(ctx, REALTIME_JS, "<vaultbase realtime>")?;
    Ok(())
}
