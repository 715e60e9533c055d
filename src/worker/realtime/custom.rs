//! Custom messages on free-form topics, as JS hooks send them (PocketBase's
//! `SubscriptionMessage` through `$app.subscriptionsBroker()`), cluster-wide.
//!
//! A client lives on one worker, but a hook runs on whichever worker took the request, so:
//! - [`Realtime::cluster_clients`] lists the clients of every worker: its own, plus the
//!   answers to a `realtime.clients` request published on the bus (each other worker answers
//!   with a `Direct`), gathered until every expected worker answered or
//!   [`GATHER_TIMEOUT`] passed (a worker that is restarting has no clients to list anyway);
//! - [`Realtime::send_custom`] queues a message for a client here, or sends it to the owner
//!   worker (named by the client id) as a `Direct`, which queues it there;
//! - [`Realtime::broadcast_custom`] delivers to every subscriber of a topic here and publishes
//!   it for the other workers to do the same (vaultbase's `broadcast(topic, data)`).
//!
//! Fire-and-forget like PocketBase's `client.Send`: no acknowledgement, a message for a
//! client that went away is dropped. It must not know HTTP or JS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::client::{Client, Transport};
use super::Realtime;
use crate::shared::bus::{Bus, BusMsg};

/// How long a client listing waits for the other workers' answers.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Bus `Publish`: "list your clients" (payload: request id).
pub const LIST: &str = "realtime.custom.list";
/// Bus `Direct`: one worker's answer to [`LIST`].
pub const LIST_ANSWER: &str = "realtime.custom.list.answer";
/// Bus `Direct`: a message for one client of the receiving worker.
pub const SEND: &str = "realtime.custom.send";
/// Bus `Publish`: a message for every subscriber of a topic.
pub const BROADCAST: &str = "realtime.custom.broadcast";

/// One client as hooks see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    pub id: String,
    /// The subscriptions exactly as the client sent them.
    pub subscriptions: Vec<String>,
    /// The bound auth record: `{collection: {id, name, …}, record: {…}}`, or null.
    pub auth: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    #[serde(default)]
    id: u64,
    #[serde(default)]
    clients: Vec<ClientInfo>,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    data: String,
}

/// One message about to be queued for a client: the SSE event name and data, and the frame a
/// WebSocket client would get for it unchanged.
pub struct Outgoing {
    pub client: Arc<Client>,
    pub name: String,
    pub data: bytes::Bytes,
    pub ws: Option<bytes::Bytes>,
}

/// Something that sees every message before it is queued and may change or drop it (JS
/// `onRealtimeMessageSend`). Installed once per worker; consulted only while [`active`].
///
/// [`active`]: MessageFilter::active
pub trait MessageFilter: Send + Sync + 'static {
    /// Whether anything would look at the messages now (the cheap check per round).
    fn active(&self) -> bool;
    /// The messages to queue, in order: changed, or left out to drop them.
    fn run(&self, batch: Vec<Outgoing>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Outgoing>> + Send + '_>>;
}

/// Queues `out` on its client as is.
pub fn queue(rt: &Realtime, out: Outgoing) {
    let alive = match (out.client.transport, out.ws) {
        (Transport::Sse, _) => out.client.push_sse(&out.name, &out.data),
        (Transport::Ws, Some(frame)) => out.client.push_ws(frame),
        (Transport::Ws, None) => {
            let text = String::from_utf8_lossy(&out.data);
            let data: Value = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone().into_owned()));
            let m = serde_json::json!({"type": "message", "topic": out.name, "data": data});
            out.client.push_ws(bytes::Bytes::from(m.to_string()))
        }
    };
    if !alive {
        rt.cut_off(&out.client);
    }
}

/// Listings in progress: request id → where the answers go.
#[derive(Default)]
pub struct Gathers {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, mpsc::UnboundedSender<Vec<ClientInfo>>>>,
}

/// Whether a bus topic belongs here.
pub fn is_custom_topic(topic: &str) -> bool {
    matches!(topic, LIST | LIST_ANSWER | SEND | BROADCAST)
}

/// PocketBase's `hasSubscription`: the subscription itself, with or without `?options=`.
pub fn subscribed(raw: &str, topic: &str) -> bool {
    raw == topic || raw.strip_prefix(topic).is_some_and(|rest| rest.starts_with('?'))
}

/// A client of this worker as hooks see it.
pub fn client_info(client: &Client) -> ClientInfo {
    let st = client.state();
    let auth = match st.actor.auth() {
        Some(a) => {
            let mut record = a.record.clone();
            record.remove("password");
            record.remove("tokenKey");
            let collection = serde_json::to_value(&*a.collection).unwrap_or(Value::Null);
            serde_json::json!({"collection": collection, "record": Value::Object(record)})
        }
        None => Value::Null,
    };
    ClientInfo { id: client.id.clone(), subscriptions: st.subs.iter().map(|t| t.raw.clone()).collect(), auth }
}

/// Queues a custom message on a client of this worker, through the message filter when one
/// is active (on its own task then, so the caller never waits for JS).
fn push(rt: &Realtime, client: &Arc<Client>, name: &str, data: &str) {
    let out = Outgoing { client: client.clone(), name: name.to_owned(), data: bytes::Bytes::from(data.to_owned()), ws: None };
    rt.queue_filtered(vec![out]);
}

impl Realtime {
    /// Installs the message filter (once, at worker start).
    /// Must be called inside the runtime: filtered messages are queued on its tasks.
    pub fn set_message_filter(&self, filter: Arc<dyn MessageFilter>) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let _ = self.filter.set((filter, handle));
            }
            Err(_) => tracing::error!("the realtime message filter was installed outside the runtime; it is not used"),
        }
    }

    /// The filter, if one is installed and active now.
    pub fn active_filter(&self) -> Option<Arc<dyn MessageFilter>> {
        self.filter.get().map(|(f, _)| f).filter(|f| f.active()).cloned()
    }

    /// Queues `batch`, through the active filter if any (on a task: the caller may be the
    /// bus handler or a JS thread, neither of which may wait on JS here).
    pub fn queue_filtered(&self, batch: Vec<Outgoing>) {
        let Some(filter) = self.active_filter() else {
            for out in batch {
                queue(self, out);
            }
            return;
        };
        let Some((_, handle)) = self.filter.get() else { return };
        let rt = self.clone();
        handle.spawn(async move {
            for out in filter.run(batch).await {
                queue(&rt, out);
            }
        });
    }

    /// The clients of this worker.
    pub fn local_clients(&self) -> Vec<ClientInfo> {
        self.registry.all().iter().map(|c| client_info(c)).collect()
    }

    /// One client of this worker, if it is here.
    pub fn local_clients_by_id(&self, client_id: &str) -> Option<ClientInfo> {
        self.registry.get(client_id).map(|c| client_info(&c))
    }

    /// The clients of every worker (`workers` in the cluster, this one included).
    pub async fn cluster_clients(&self, workers: usize) -> Vec<ClientInfo> {
        let mut all = self.local_clients();
        if matches!(self.bus, Bus::Local(_)) || workers <= 1 {
            return all;
        }
        let id = self.custom.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.custom.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let payload = serde_json::to_value(Envelope { id, clients: Vec::new(), client_id: String::new(), topic: String::new(), data: String::new() })
            .unwrap_or(Value::Null);
        self.bus.send(&BusMsg::Publish { origin: self.worker_id, seq: 0, topic: LIST.to_owned(), payload });
        let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
        let mut answered = 0;
        while answered + 1 < workers {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(clients)) => {
                    answered += 1;
                    all.extend(clients);
                }
                _ => break,
            }
        }
        self.custom.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        all
    }

    /// Sends `data` as event `name` to client `client_id`, wherever it is connected.
    pub fn send_custom(&self, client_id: &str, name: &str, data: &str) {
        let Some(owner) = super::client::owner_of(client_id) else { return };
        if owner == self.worker_id {
            if let Some(client) = self.registry.get(client_id) {
                push(self, &client, name, data);
            }
            return;
        }
        if matches!(self.bus, Bus::Local(_)) {
            return;
        }
        let env = Envelope { id: 0, clients: Vec::new(), client_id: client_id.to_owned(), topic: name.to_owned(), data: data.to_owned() };
        let payload = serde_json::to_value(env).unwrap_or(Value::Null);
        self.bus.send(&BusMsg::Direct { to: owner, from: self.worker_id, topic: SEND.to_owned(), payload });
    }

    /// Sends `data` as event `topic` to every subscriber of `topic` on every worker.
    pub fn broadcast_custom(&self, topic: &str, data: &str) {
        self.deliver_topic(topic, data);
        if matches!(self.bus, Bus::Local(_)) {
            return;
        }
        let env = Envelope { id: 0, clients: Vec::new(), client_id: String::new(), topic: topic.to_owned(), data: data.to_owned() };
        let payload = serde_json::to_value(env).unwrap_or(Value::Null);
        self.bus.send(&BusMsg::Publish { origin: self.worker_id, seq: 0, topic: BROADCAST.to_owned(), payload });
    }

    fn deliver_topic(&self, topic: &str, data: &str) {
        for client in self.registry.all() {
            let hit = client.state().subs.iter().any(|t| subscribed(&t.raw, topic));
            if hit {
                push(self, &client, topic, data);
            }
        }
    }

    /// A custom-message bus frame from worker `from`.
    pub fn on_custom(&self, from: u32, topic: &str, payload: Value) {
        let Ok(env) = serde_json::from_value::<Envelope>(payload) else {
            tracing::warn!(from, topic, "undecodable custom realtime message; skipped");
            return;
        };
        match topic {
            LIST => {
                let answer = Envelope { id: env.id, clients: self.local_clients(), client_id: String::new(), topic: String::new(), data: String::new() };
                let payload = serde_json::to_value(answer).unwrap_or(Value::Null);
                self.bus.send(&BusMsg::Direct { to: from, from: self.worker_id, topic: LIST_ANSWER.to_owned(), payload });
            }
            LIST_ANSWER => {
                if let Some(tx) = self.custom.waiting.lock().unwrap_or_else(|p| p.into_inner()).get(&env.id) {
                    let _ = tx.send(env.clients);
                }
            }
            SEND => {
                if let Some(client) = self.registry.get(&env.client_id) {
                    push(self, &client, &env.topic, &env.data);
                }
            }
            BROADCAST => self.deliver_topic(&env.topic, &env.data),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_matches_with_or_without_options() {
        assert!(subscribed("example", "example"));
        assert!(subscribed("example?options={}", "example"));
        assert!(!subscribed("examples", "example"));
        assert!(!subscribed("ex", "example"));
    }
}
