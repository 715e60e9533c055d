//! Setting an SSE client's subscriptions (PocketBase's `POST /api/realtime`), wherever the
//! POST lands. The owner worker (named by the client id) applies it: finds the client, checks
//! the address, resolves and binds the auth, replaces the subscription set. A POST that lands
//! on another worker is forwarded to the owner as a bus `Direct` request and answered only
//! once the owner acknowledged, so the subscription is in force before the 204.
//!
//! It owns the request/answer protocol and its timeout; it must not know HTTP (the handler
//! maps [`SubscribeError`] to PocketBase's responses).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::topic::Topic;
use super::Realtime;
use crate::shared::bus::{Bus, BusMsg, UNDELIVERABLE};
use crate::worker::actor::{self, Actor};
use crate::worker::state::AppState;

/// How long a forwarded subscription waits for the owner worker's answer.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// `Direct` topic of a forwarded subscription request.
pub const SUBSCRIBE: &str = "realtime.subscribe";
/// `Direct` topic of its answer.
pub const SUBSCRIBE_ACK: &str = "realtime.subscribe.ack";

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
}

impl Realtime {
    /// Applies `req` on the owner of its client, locally or through the bus.
    pub async fn set_subscriptions(&self, state: &AppState, req: SubscribeRequest) -> Result<(), SubscribeError> {
        let owner = super::client::owner_of(&req.client_id).ok_or(SubscribeError::NotFound)?;
        let outcome = if owner == self.worker_id {
            apply_local(state, req).await
        } else if let Bus::Local(_) = self.bus {
            // `serve` has no other worker: the id cannot be one of ours.
            Outcome::NotFound
        } else {
            self.forward(owner, req).await?
        };
        match outcome {
            Outcome::Ok => Ok(()),
            Outcome::NotFound => Err(SubscribeError::NotFound),
            Outcome::OtherAddress => Err(SubscribeError::OtherAddress),
            Outcome::AuthMismatch => Err(SubscribeError::AuthMismatch),
        }
    }

    async fn forward(&self, owner: u32, req: SubscribeRequest) -> Result<Outcome, SubscribeError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let payload = serde_json::to_value(Forwarded { id, request: Some(req), outcome: None }).unwrap_or_default();
        self.bus.send(&BusMsg::Direct { to: owner, from: self.worker_id, topic: SUBSCRIBE.to_owned(), payload });
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
    pub fn on_direct(&self, state: &AppState, from: u32, topic: &str, payload: serde_json::Value) {
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
                    let payload = serde_json::to_value(Forwarded { id, request: None, outcome: Some(outcome) }).unwrap_or_default();
                    rt.bus.send(&BusMsg::Direct { to: from, from: rt.worker_id, topic: SUBSCRIBE_ACK.to_owned(), payload });
                });
            }
            SUBSCRIBE_ACK => answer(msg.outcome.unwrap_or(Outcome::NotFound)),
            // The owner is not connected (dead or restarting): its clients are gone.
            UNDELIVERABLE => answer(Outcome::NotFound),
            _ => {}
        }
    }
}

/// Whether the bus `Direct` topic belongs to realtime.
pub fn is_realtime_direct(topic: &str, payload: &serde_json::Value) -> bool {
    topic == SUBSCRIBE || topic == SUBSCRIBE_ACK || (topic == UNDELIVERABLE && payload.get("id").is_some())
}

/// Applies a subscription change to a client of this worker.
pub async fn apply_local(state: &AppState, req: SubscribeRequest) -> Outcome {
    let Some(client) = state.realtime.registry.get(&req.client_id) else { return Outcome::NotFound };
    if let (Some(stream_ip), Some(post_ip)) = (client.ip, req.ip) {
        if stream_ip != post_ip {
            return Outcome::OtherAddress;
        }
    }
    let actor = actor::resolve(state, req.authorization.as_deref().map(str::as_bytes)).await;
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
