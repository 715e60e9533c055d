//! Custom realtime messages for hooks: `SubscriptionMessage` and `$app.subscriptionsBroker()`
//! (`clients()`, `clientById`, `totalClients`, each client's `hasSubscription`, `send`,
//! `get("auth")`), over `worker::realtime::custom`, so the loop PocketBase documents —
//! `for (id in clients) if (clients[id].hasSubscription(t)) clients[id].send(msg)` — reaches
//! the subscribers of every worker of a cluster, not only this one's. `broadcast(topic, data)`
//! is vaultbase's one-call form of that loop.
//!
//! Also the request hooks of realtime: `onRealtimeConnectRequest` (`e.client`) before a
//! stream starts and `onRealtimeSubscribeRequest` (`e.client`, `e.subscriptions`, mutable)
//! before a subscription change; a throw answers with its status, a handler that does not
//! call `e.next()` answers what it wrote (an empty 200 if nothing). Without handlers neither
//! touches a JS thread. `e.client` of a subscription POST that landed on another worker than
//! the stream's carries only the id.
//!
//! The natives block their JS thread (a plain std thread) on the tokio handle for the
//! cluster listing; sends only queue.

use std::sync::Arc;

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::{Ctx, Exception, Function, Object, Value};

use super::engine::Env;
use super::routes::{RouteRequest, RouteResponse};
use super::{bindings, chain, errors, DispatchError};
use crate::worker::realtime::custom::{client_info, ClientInfo, MessageFilter, Outgoing};
use crate::worker::state::AppState;

/// `GET /api/realtime`'s hook.
pub const ON_CONNECT: &str = "onRealtimeConnectRequest";
/// `POST /api/realtime`'s hook.
pub const ON_SUBSCRIBE: &str = "onRealtimeSubscribeRequest";
/// The hook every message to a client goes through.
pub const ON_MESSAGE: &str = "onRealtimeMessageSend";
/// The hook each subscriber's copy of a record event goes through first.
pub const ON_ENRICH: &str = "onRecordEnrich";

/// `onRealtimeMessageSend` as the realtime module's message filter: active only while a
/// handler is registered (checked per round, so a reload takes effect at once). Each message
/// of a batch runs the chain with `e.client` and `e.message` (a `SubscriptionMessage`,
/// mutable); a handler that does not call `e.next()` drops that message, a throw is logged
/// and drops it too. With an `onRecordEnrich` handler, a record event first goes through it
/// per subscriber (`e.requestInfo.auth` the client's, context "realtime"), as PocketBase
/// enriches each client's copy before `onRealtimeMessageSend`.
pub struct MessageHook {
    state: AppState,
}

impl MessageHook {
    pub fn new(state: AppState) -> MessageHook {
        MessageHook { state }
    }
}

impl MessageFilter for MessageHook {
    fn active(&self) -> bool {
        let loaded = self.state.hooks.current();
        loaded.registry.has_any(ON_MESSAGE) || loaded.registry.has_any(ON_ENRICH)
    }

    fn run(&self, batch: Vec<Outgoing>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Outgoing>> + Send + '_>> {
        Box::pin(filter_messages(&self.state, batch))
    }
}

async fn filter_messages(state: &AppState, batch: Vec<Outgoing>) -> Vec<Outgoing> {
    let loaded = state.hooks.current();
    let env = loaded.env().clone();
    let limits = env.limits;
    let items: Vec<(String, String, String)> = batch
        .iter()
        .map(|o| (serde_json::to_string(&client_info(&o.client)).unwrap_or_default(), o.name.clone(), String::from_utf8_lossy(&o.data).into_owned()))
        .collect();
    let enrich = loaded.registry.has_any(ON_ENRICH);
    let ran = loaded
        .run(limits.timeout, move |ctx| -> Vec<Option<(String, String)>> {
            let mut out = Vec::with_capacity(items.len());
            for (client, name, data) in items {
                let kept: Rc<RefCell<Option<(String, String)>>> = Rc::default();
                let go = || -> rquickjs::Result<()> {
                    let e = Object::new(ctx.clone())?;
                    e.set("app", bindings::vb(ctx)?.get::<_, Value>("baseApp")?)?;
                    e.set("client", bindings::call_vb::<_, Value>(ctx, "makeRealtimeClient", (client.as_str(),))?)?;
                    let class: rquickjs::Constructor = ctx.globals().get("SubscriptionMessage")?;
                    let init = Object::new(ctx.clone())?;
                    init.set("name", name)?;
                    // onRecordEnrich first (PocketBase enriches each subscriber's record before
                    // onRealtimeMessageSend sees the message).
                    let data: String = if enrich { bindings::call_vb(ctx, "enrichRealtime", (client.as_str(), data))? } else { data };
                    init.set("data", data)?;
                    e.set("message", class.construct::<_, Value>((init,))?)?;
                    let sink = kept.clone();
                    let default = chain::rust_link(ctx, move |ctx, e| {
                        let text: String = bindings::call_vb(&ctx, "subscriptionMessageJson", (e.get::<_, Value>("message")?,))?;
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
                        *sink.borrow_mut() = Some((field("name"), field("data")));
                        Ok(())
                    })?;
                    chain::run(ctx, &env.registry.handlers(ON_MESSAGE, &[]), e, Some(default))
                };
                if let Err(err) = go() {
                    let f = errors::failure_of(ctx, err, ON_MESSAGE);
                    tracing::warn!(target: "vaultbase::hooks", hook = ON_MESSAGE, status = f.status, message = %f.message, "a realtime message was dropped by its hook");
                }
                let result = kept.borrow_mut().take();
                out.push(result);
            }
            out
        })
        .await;
    let results = match ran {
        Ok((r, None)) => r,
        Ok((_, Some(trap))) => {
            errors::trapped(trap, ON_MESSAGE, "", 0, &limits);
            return Vec::new();
        }
        Err(e) => {
            tracing::error!(target: "vaultbase::hooks", hook = ON_MESSAGE, error = ?e, "realtime messages were not sent: the hook could not run");
            return Vec::new();
        }
    };
    batch
        .into_iter()
        .zip(results)
        .filter_map(|(o, r)| {
            let (name, data) = r?;
            if name == o.name && data.as_bytes() == o.data.as_ref() {
                Some(o)
            } else {
                Some(Outgoing { client: o.client, name, data: bytes::Bytes::from(data), ws: None })
            }
        })
        .collect()
}

/// What a realtime request hook decided.
pub enum Decision<T> {
    /// The chain reached the default action: go on, with this.
    Proceed(T),
    /// Answer this instead (an error, or what a handler wrote).
    Answer(RouteResponse),
}

/// Whether `hook` has a handler in this worker's current set (the cheap check).
pub fn registered(state: &AppState, hook: &str) -> bool {
    state.hooks.current().registry.has_any(hook)
}

/// Runs `hook` over a request event with `e.client` (and `e.subscriptions` when given); the
/// default action takes the subscriptions as the handlers left them.
pub async fn request_hook(
    state: &AppState,
    hook: &'static str,
    request: RouteRequest,
    client: ClientInfo,
    subscriptions: Option<Vec<String>>,
) -> Decision<Vec<String>> {
    let loaded = state.hooks.current();
    let env = loaded.env().clone();
    let limits = env.limits;
    let ran = loaded
        .run(limits.timeout, move |ctx| -> Result<Decision<Vec<String>>, errors::Failure> {
            let reached: Rc<RefCell<Option<Vec<String>>>> = Rc::default();
            let go = || -> rquickjs::Result<Option<String>> {
                let r = ctx.json_parse(serde_json::to_string(&request).unwrap_or_default())?;
                let e: Object = bindings::call_vb(ctx, "requestEvent", (r,))?;
                let client = bindings::call_vb::<_, Value>(ctx, "makeRealtimeClient", (serde_json::to_string(&client).unwrap_or_default(),))?;
                e.set("client", client)?;
                if let Some(subs) = &subscriptions {
                    e.set("subscriptions", subs.clone())?;
                }
                let hooks = env.registry.handlers(hook, &[]);
                let sink = reached.clone();
                let has_subs = subscriptions.is_some();
                let default = chain::rust_link(ctx, move |_ctx, e| {
                    let subs: Vec<String> = if has_subs { e.get("subscriptions")? } else { Vec::new() };
                    *sink.borrow_mut() = Some(subs);
                    Ok(())
                })?;
                chain::run(ctx, &hooks, e.clone(), Some(default))?;
                if reached.borrow().is_some() {
                    return Ok(None);
                }
                bindings::call_vb::<_, String>(ctx, "responseOf", (e,)).map(Some)
            };
            match go() {
                Ok(None) => Ok(Decision::Proceed(reached.borrow_mut().take().unwrap_or_default())),
                Ok(Some(written)) => Ok(Decision::Answer(written_response(&written))),
                Err(err) => Err(errors::failure_of(ctx, err, hook)),
            }
        })
        .await;
    match ran {
        Ok((Ok(d), None)) => d,
        Ok((Err(f), None)) => Decision::Answer(RouteResponse::failure(&f)),
        Ok((_, Some(trap))) => Decision::Answer(RouteResponse::failure(&errors::trapped(trap, hook, "", 0, &limits))),
        Err(DispatchError::Saturated) => Decision::Answer(RouteResponse::failure(&errors::Failure {
            status: 503,
            message: super::SATURATED_MESSAGE.into(),
            data: Default::default(),
        })),
        Err(e) => {
            tracing::error!(target: "vaultbase::hooks", hook, error = ?e, "a realtime hook's JS thread did not answer");
            Decision::Answer(RouteResponse::failure(&errors::Failure::internal()))
        }
    }
}

/// `vb.responseOf`'s JSON as a response.
fn written_response(text: &str) -> RouteResponse {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let status = v.get("status").and_then(serde_json::Value::as_u64).and_then(|s| u16::try_from(s).ok()).filter(|s| (100..=999).contains(s)).unwrap_or(200);
    let headers: Vec<(String, String)> = serde_json::from_value(v.get("headers").cloned().unwrap_or_default()).unwrap_or_default();
    let body = match v.get("bytes") {
        Some(serde_json::Value::Array(b)) => b.iter().filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok())).collect(),
        _ => v.get("body").and_then(serde_json::Value::as_str).unwrap_or_default().as_bytes().to_vec(),
    };
    RouteResponse { status, headers, body }
}

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
