//! Setting an SSE client's subscriptions (PocketBase's `POST /api/realtime`), wherever the
//! POST lands. The owner worker (named by the client id) applies it: finds the client, checks
//! the address, resolves and binds the auth, replaces the subscription set. A POST that lands
//! on another worker is forwarded to the owner as a bus `Direct` request and answered only
//! once the owner acknowledged, so the subscription is in force before the 204.
//!
//! The same forwarding carries a message for one client on a free-form topic it subscribed
//! to — PocketBase's `@oauth2`, which `GET|POST /api/oauth2-redirect` sends to the client
//! whose id is the OAuth2 `state` ([`Realtime::send_to_client`]): the owner checks the
//! subscription and the address, queues the message and drops the subscription (one message
//! per subscription, as PocketBase).
//!
//! It owns the request/answer protocol and its timeout; it must not know HTTP (the handlers
//! map [`SubscribeError`] to PocketBase's responses).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::Transport;
use super::topic::Topic;
use super::Realtime;
use crate::shared::bus::{Bus, BusMsg, UNDELIVERABLE};
use crate::worker::actor::Actor;
use super::Host;

/// How long a forwarded subscription waits for the owner worker's answer.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// `Direct` topic of a forwarded subscription request.
pub const SUBSCRIBE: &str = "realtime.subscribe";
/// `Direct` topic of its answer (and of the answer to a forwarded [`ClientMessage`]).
pub const SUBSCRIBE_ACK: &str = "realtime.subscribe.ack";
/// `Direct` topic of a forwarded [`ClientMessage`].
pub const MESSAGE: &str = "realtime.message";

/// A message for one client on a free-form topic it subscribed to (`@oauth2`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientMessage {
    pub client_id: String,
    /// The sender's address, which must be the stream's when both are known.
    pub ip: Option<std::net::IpAddr>,
    /// The topic the client must be subscribed to (with or without `?options=`); the
    /// subscription is dropped once the message is queued.
    pub topic: String,
    pub data: serde_json::Value,
}

/// A subscription change as the POST carried it; also the forwarded request's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub client_id: String,
    /// The POST's `Authorization` header, resolved by the owner.
    pub authorization: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub subscriptions: Vec<String>,
}

/// The owner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    NotFound,
    OtherAddress,
    AuthMismatch,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("no such realtime client")]
    NotFound,
    #[error("the request comes from another address than the stream")]
    OtherAddress,
    #[error("the client is bound to another auth record")]
    AuthMismatch,
    #[error("the worker holding the client did not answer within {0:?}")]
    Timeout(Duration),
}

#[derive(Serialize, Deserialize)]
struct Forwarded {
    id: u64,
    #[serde(default)]
    request: Option<SubscribeRequest>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    message: Option<ClientMessage>,
}

impl Realtime {
    /// Applies `req` on the owner of its client, locally or through the bus.
    pub async fn set_subscriptions(&self, state: &impl Host, req: SubscribeRequest) -> Result<(), SubscribeError> {
        let owner = super::client::owner_of(&req.client_id).ok_or(SubscribeError::NotFound)?;
        let outcome = if owner == self.worker_id {
            apply_local(state, req).await
        } else if let Bus::Local(_) = self.bus {
            // `serve` has no other worker: the id cannot be one of ours.
            Outcome::NotFound
        } else {
            self.forward(owner, SUBSCRIBE, Forwarded { id: 0, request: Some(req), outcome: None, message: None }).await?
        };
        outcome_result(outcome)
    }

    /// Queues `msg` for its client, on this worker or its owner; `NotFound` also when the
    /// client is not subscribed to the topic.
    pub async fn send_to_client(&self, msg: ClientMessage) -> Result<(), SubscribeError> {
        let owner = super::client::owner_of(&msg.client_id).ok_or(SubscribeError::NotFound)?;
        let outcome = if owner == self.worker_id {
            message_local(self, msg)
        } else if let Bus::Local(_) = self.bus {
            Outcome::NotFound
        } else {
            self.forward(owner, MESSAGE, Forwarded { id: 0, request: None, outcome: None, message: Some(msg) }).await?
        };
        outcome_result(outcome)
    }
}

fn outcome_result(outcome: Outcome) -> Result<(), SubscribeError> {
    match outcome {
        Outcome::Ok => Ok(()),
        Outcome::NotFound => Err(SubscribeError::NotFound),
        Outcome::OtherAddress => Err(SubscribeError::OtherAddress),
        Outcome::AuthMismatch => Err(SubscribeError::AuthMismatch),
    }
}

impl Realtime {
    /// Sends `fwd` (its id filled in here) to `owner` on `topic` and waits for the answer.
    async fn forward(&self, owner: u32, topic: &str, mut fwd: Forwarded) -> Result<Outcome, SubscribeError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        fwd.id = id;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let payload = serde_json::to_value(fwd).unwrap_or_default();
        self.bus.send(&BusMsg::Direct { to: owner, from: self.worker_id, topic: topic.to_owned(), payload });
        let answer = tokio::time::timeout(FORWARD_TIMEOUT, rx).await;
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        match answer {
            Ok(Ok(outcome)) => Ok(outcome),
            // The sender vanished without an answer: the worker is shutting down.
            Ok(Err(_)) => Err(SubscribeError::Timeout(FORWARD_TIMEOUT)),
            Err(_) => Err(SubscribeError::Timeout(FORWARD_TIMEOUT)),
        }
    }

    /// A `Direct` bus message for realtime: a forwarded request (applied here, then answered),
    /// an answer to one of ours, or one of ours bounced because its owner is gone.
    pub fn on_direct(&self, state: &impl Host, from: u32, topic: &str, payload: serde_json::Value) {
        let Ok(msg) = serde_json::from_value::<Forwarded>(payload) else {
            tracing::warn!(from, topic, "undecodable realtime Direct message; skipped");
            return;
        };
        let answer = |outcome: Outcome| {
            if let Some(tx) = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&msg.id) {
                let _ = tx.send(outcome);
            }
        };
        match topic {
            SUBSCRIBE => {
                let Some(req) = msg.request else { return };
                let (state, rt, id) = (state.clone(), self.clone(), msg.id);
                tokio::spawn(async move {
                    let outcome = apply_local(&state, req).await;
                    rt.acknowledge(from, id, outcome);
                });
            }
            MESSAGE => {
                let Some(m) = msg.message else { return };
                self.acknowledge(from, msg.id, message_local(self, m));
            }
            SUBSCRIBE_ACK => answer(msg.outcome.unwrap_or(Outcome::NotFound)),
            // The owner is not connected (dead or restarting): its clients are gone.
            UNDELIVERABLE => answer(Outcome::NotFound),
            _ => {}
        }
    }
}

impl Realtime {
    fn acknowledge(&self, to: u32, id: u64, outcome: Outcome) {
        let payload = serde_json::to_value(Forwarded { id, request: None, outcome: Some(outcome), message: None }).unwrap_or_default();
        self.bus.send(&BusMsg::Direct { to, from: self.worker_id, topic: SUBSCRIBE_ACK.to_owned(), payload });
    }
}

/// Whether the bus `Direct` topic belongs to realtime.
pub fn is_realtime_direct(topic: &str, payload: &serde_json::Value) -> bool {
    topic == SUBSCRIBE || topic == SUBSCRIBE_ACK || topic == MESSAGE || (topic == UNDELIVERABLE && payload.get("id").is_some())
}

/// Queues a message for a client of this worker: it must hold a subscription to the topic
/// (which it then loses) and, when both are known, have the sender's address.
fn message_local(rt: &Realtime, msg: ClientMessage) -> Outcome {
    let Some(client) = rt.registry.get(&msg.client_id) else { return Outcome::NotFound };
    if let (Some(stream_ip), Some(sender_ip)) = (client.ip, msg.ip) {
        if stream_ip != sender_ip {
            return Outcome::OtherAddress;
        }
    }
    let is_topic = |raw: &str| raw == msg.topic || raw.strip_prefix(msg.topic.as_str()).is_some_and(|rest| rest.starts_with('?'));
    let subscription = {
        let mut st = client.state();
        let Some(i) = st.subs.iter().position(|s| is_topic(&s.raw)) else { return Outcome::NotFound };
        st.subs.remove(i).raw.clone()
    };
    let data = msg.data.to_string();
    let alive = match client.transport {
        // The event name is the subscription string, as for record events.
        Transport::Sse => client.push_sse(&subscription, data.as_bytes()),
        Transport::Ws => {
            let m = serde_json::json!({"type": "message", "topic": subscription, "data": msg.data});
            client.push_ws(bytes::Bytes::from(m.to_string()))
        }
    };
    if !alive {
        rt.cut_off(&client);
    }
    Outcome::Ok
}

/// Applies a subscription change to a client of this worker.
pub async fn apply_local(state: &impl Host, req: SubscribeRequest) -> Outcome {
    let Some(client) = state.realtime().registry.get(&req.client_id) else { return Outcome::NotFound };
    if let (Some(stream_ip), Some(post_ip)) = (client.ip, req.ip) {
        if stream_ip != post_ip {
            return Outcome::OtherAddress;
        }
    }
    let actor = state.resolve_actor(req.authorization.as_deref().map(str::as_bytes)).await;
    let subs: Vec<Arc<Topic>> = dedup(req.subscriptions).iter().map(|s| Arc::new(Topic::parse(s))).collect();
    let mut st = client.state();
    if let Actor::Auth(bound) = &st.actor {
        // Only a guest → auth upgrade is allowed; the same record may refresh its state.
        let same = actor.auth().is_some_and(|a| a.collection.id == bound.collection.id && a.id() == bound.id());
        if !same {
            return Outcome::AuthMismatch;
        }
    }
    st.actor = actor;
    st.subs = subs;
    Outcome::Ok
}

/// The subscription list without repeats, first occurrence kept.
pub fn dedup(subs: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    subs.into_iter().filter(|s| seen.insert(s.clone())).collect()
}
