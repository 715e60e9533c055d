//! Realtime: PocketBase's SSE at `/api/realtime` and vaultbase's WebSocket at `/realtime`,
//! fed by committed record changes from this worker's writer and, over the bus, from every
//! other worker.
//!
//! [`Realtime`] is the worker's handle. The writer thread calls [`Realtime::publish`] right
//! after a COMMIT (see `Db::write_then`): it only pushes onto unbounded channels (to the
//! dispatcher, and to the bus relay task that encodes and sends them to the other workers), so
//! a write never waits for delivery. A job's changes too large for one bus frame travel in
//! [`parts`], reassembled by each receiver. Each job's changes carry a cluster-wide
//! sequence number bumped inside its transaction (`records::changes::stamp`), and the
//! dispatcher task ([`deliver`]) puts what it hears — its own and the bus's — back into that
//! commit order before delivering, so the order holds across workers too. Per batch of changes
//! it then does the rest: match subscriptions,
//! group subscribers into variants, check rules and render payloads on a reader thread once
//! per variant, and append frames to each client's bounded outbox ([`client`]), which the
//! stream ([`sse`]) or session ([`ws`]) drains in one write per wake-up. Subscription POSTs
//! for a client owned by another worker are forwarded over the bus ([`subscribe`]).
//!
//! It must not import hyper (the HTTP handlers in `api::realtime` do the upgrade and the
//! framing of responses), must not run SQLite on async threads, and must never make the
//! writer wait. It knows the worker it runs in only as a [`Host`]: the handles it needs,
//! never the worker's state itself.

pub mod client;
pub mod custom;
pub mod deliver;
pub mod order;
pub mod parts;
pub mod sse;
pub mod subscribe;
pub mod topic;
pub mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::shared::bus::codec::{self, CodecError};
use crate::shared::bus::{Bus, BusMsg};
use crate::worker::records::changes::Stamped;
use client::{Client, End, Registry, Transport};

/// Bytes of text values in a change set: a cheap lower bound of its JSON size.
fn text_bytes(stamped: &Stamped) -> usize {
    stamped
        .changes
        .iter()
        .flat_map(|c| c.columns.iter())
        .map(|(_, v)| match v {
            crate::worker::records::sql_value::SqlValue::Text(t) => t.len(),
            _ => 0,
        })
        .sum()
}

/// What realtime needs from the worker it runs in. The worker's state implements it; realtime
/// never imports that state, so the dependency points one way only.
pub trait Host: Clone + Send + Sync + 'static {
    fn worker_id(&self) -> u32;
    fn db(&self) -> &crate::shared::db::Db;
    fn schema(&self) -> &crate::worker::records::cache::SchemaCache;
    fn realtime(&self) -> &Realtime;
    /// How long a stream may stay silent before it is closed.
    fn idle_timeout(&self) -> std::time::Duration;
    /// How long a stream or session may live at most.
    fn max_lifetime(&self) -> std::time::Duration;
    /// Who a token (an `Authorization` header value) belongs to.
    fn resolve_actor<'a>(&'a self, authorization: Option<&'a [u8]>) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::worker::actor::Actor> + Send + 'a>>;
}

/// The bus `Publish` topic that carries committed changes between workers.
pub const BUS_TOPIC: &str = "realtime";

/// The worker's realtime handle; cheap to clone.
#[derive(Clone)]
pub struct Realtime(Arc<Inner>);

pub struct Inner {
    pub worker_id: u32,
    pub registry: Registry,
    bus: Bus,
    changes: mpsc::UnboundedSender<Arc<Stamped>>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Arc<Stamped>>>>,
    /// To the bus relay task; `None` in `serve`, which has no other workers.
    relay: Option<mpsc::UnboundedSender<Arc<Stamped>>>,
    relay_receiver: Mutex<Option<mpsc::UnboundedReceiver<Arc<Stamped>>>>,
    /// Forwarded subscription requests waiting for their owner's answer, by request id.
    pending: Mutex<HashMap<u64, oneshot::Sender<subscribe::Outcome>>>,
    next_request: AtomicU64,
    /// Other workers' change sets arriving in parts.
    assembler: Mutex<parts::Assembler>,
    /// Split change sets that never arrived whole, since start.
    lost_sets: AtomicU64,
    /// Client listings for hooks waiting on other workers' answers ([`custom`]).
    custom: custom::Gathers,
    /// `onRealtimeMessageSend`, installed at start when hooks exist ([`custom::MessageFilter`]).
    filter: std::sync::OnceLock<(Arc<dyn custom::MessageFilter>, tokio::runtime::Handle)>,
}

impl std::ops::Deref for Realtime {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Realtime {
    pub fn new(worker_id: u32, bus: Bus) -> Realtime {
        let (tx, rx) = mpsc::unbounded_channel();
        let (relay, relay_receiver) = match bus {
            Bus::Unix(_) => {
                let (t, r) = mpsc::unbounded_channel();
                (Some(t), Some(r))
            }
            Bus::Local(_) => (None, None),
        };
        Realtime(Arc::new(Inner {
            worker_id,
            registry: Registry::default(),
            bus,
            changes: tx,
            receiver: Mutex::new(Some(rx)),
            relay,
            relay_receiver: Mutex::new(relay_receiver),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            assembler: Mutex::new(parts::Assembler::default()),
            lost_sets: AtomicU64::new(0),
            custom: custom::Gathers::default(),
            filter: std::sync::OnceLock::new(),
        }))
    }

    /// The dispatcher's end of the change channel; `None` after the first call.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Arc<Stamped>>> {
        self.receiver.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Releases the changes of one committed write job: to this worker's dispatcher, and to
    /// the bus relay that sends them to every other worker. Runs on the writer thread right
    /// after COMMIT, so it only pushes onto two unbounded channels (the JSON encoding for the
    /// bus happens on the relay task, off the writer). Order does not depend on when either
    /// side runs: every receiver restores it from the sequence numbers.
    pub fn publish(&self, stamped: Stamped) {
        if stamped.changes.is_empty() {
            return;
        }
        let stamped = Arc::new(stamped);
        if let Some(relay) = &self.relay {
            let _ = relay.send(stamped.clone());
        }
        // Fails only once the dispatcher is gone (the worker is exiting).
        let _ = self.changes.send(stamped);
    }

    /// The bus relay's end; `None` after the first call or in `serve` (no other workers).
    pub fn take_relay_receiver(&self) -> Option<mpsc::UnboundedReceiver<Arc<Stamped>>> {
        self.relay_receiver.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Sends this worker's committed changes to the other workers: one bus frame per write
    /// job, or, for a job too large for a frame (a multi-megabyte field), its JSON text cut
    /// into [`parts`] that each receiver reassembles.
    pub async fn relay(self, mut rx: mpsc::UnboundedReceiver<Arc<Stamped>>) {
        while let Some(stamped) = rx.recv().await {
            // A set whose text alone nears the frame limit goes straight to parts: one
            // serialisation instead of three, so its receivers' reorder wait stays short.
            if text_bytes(&stamped) > codec::MAX_FRAME_BYTES / 2 {
                match serde_json::to_string(&*stamped) {
                    Ok(text) => self.send_parts(stamped.seq, &text, text.len()),
                    Err(e) => tracing::error!(error = %e, seq = stamped.seq, "encoding realtime changes for the bus; other workers will not deliver them"),
                }
                continue;
            }
            let payload = match serde_json::to_value(&*stamped) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, seq = stamped.seq, "encoding realtime changes for the bus; other workers will not deliver them");
                    continue;
                }
            };
            let msg = BusMsg::Publish { origin: self.worker_id, seq: stamped.seq, topic: BUS_TOPIC.to_owned(), payload };
            match codec::encode(&msg) {
                Ok(frame) => self.bus.send_frame(frame),
                Err(CodecError::TooLarge(bytes)) => {
                    if let BusMsg::Publish { payload, .. } = msg {
                        self.send_parts(stamped.seq, &payload.to_string(), bytes);
                    }
                }
                Err(e) => tracing::error!(error = %e, seq = stamped.seq, "encoding realtime changes for the bus; other workers will not deliver them"),
            }
        }
    }

    fn send_parts(&self, seq: u64, text: &str, frame_bytes: usize) {
        let pieces = parts::split(text);
        let n = pieces.len();
        if n > parts::MAX_PARTS {
            tracing::warn!(seq, bytes = text.len(), parts = n, max_parts = parts::MAX_PARTS, "realtime change set too large even in parts; other workers will not deliver it");
            return;
        }
        tracing::debug!(seq, frame_bytes, parts = n, "realtime change set sent in parts");
        for (i, piece) in pieces.into_iter().enumerate() {
            let part = parts::Part { part: i, parts: n, text: piece.to_owned() };
            let payload = match serde_json::to_value(&part) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, seq, "encoding a realtime part; other workers will not deliver the set");
                    return;
                }
            };
            self.bus.send(&BusMsg::Publish { origin: self.worker_id, seq, topic: parts::BUS_PART_TOPIC.to_owned(), payload });
        }
    }

    /// Changes another worker committed, from the bus.
    pub fn on_bus_publish(&self, payload: serde_json::Value) {
        match serde_json::from_value::<Stamped>(payload) {
            Ok(stamped) => self.accept(stamped),
            Err(e) => tracing::warn!(error = %e, "undecodable realtime changes on the bus; skipped"),
        }
    }

    /// One part of a change set another worker committed; the set goes on once whole.
    pub fn on_bus_part(&self, origin: u32, seq: u64, payload: serde_json::Value) {
        let part = match serde_json::from_value::<parts::Part>(payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, origin, seq, "undecodable realtime part on the bus; its change set is lost");
                return;
            }
        };
        let pushed = self.assembler.lock().unwrap_or_else(|p| p.into_inner()).push(origin, seq, part, std::time::Instant::now());
        if let Some(e) = pushed.lost {
            self.report_lost(&e);
        }
        if let Some(text) = pushed.done {
            match serde_json::from_str::<Stamped>(&text) {
                Ok(stamped) => self.accept(stamped),
                Err(e) => tracing::warn!(error = %e, origin, seq, "undecodable reassembled realtime changes; skipped"),
            }
        }
    }

    /// Whether a set numbered within `gap` is arriving in parts (the dispatcher then keeps
    /// waiting for it); reports sets that took too long as lost.
    pub fn arriving(&self, gap: std::ops::Range<u64>) -> bool {
        let (arriving, lost) = self.assembler.lock().unwrap_or_else(|p| p.into_inner()).arriving(gap, std::time::Instant::now());
        for e in &lost {
            self.report_lost(e);
        }
        arriving
    }

    fn report_lost(&self, e: &parts::PartError) {
        let lost_total = self.lost_sets.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(error = %e, lost_total, "a realtime change set split into parts did not arrive whole; its events are lost");
    }

    fn accept(&self, stamped: Stamped) {
        if !stamped.changes.is_empty() {
            let _ = self.changes.send(Arc::new(stamped));
        }
    }

    /// A new local client, registered. Its first frame (SSE `PB_CONNECT`, WS `connected`) is
    /// queued by the caller.
    pub fn connect(&self, transport: Transport, ip: Option<std::net::IpAddr>) -> Result<Arc<Client>, crate::worker::auth::random::RandomError> {
        let client = Arc::new(Client::new(client::new_client_id(self.worker_id)?, transport, ip));
        self.registry.insert(client.clone());
        Ok(client)
    }

    /// Ends a client that overflowed its outbox and forgets it at once: its stream may never
    /// be polled again (the peer stopped reading, so hyper stops asking the body for data),
    /// and it must not wait in the registry — costing a rule check per event — until the
    /// connection finally dies.
    pub fn cut_off(&self, client: &Client) {
        client.end(End::Overflow, None);
        self.registry.remove(&client.id);
    }

    /// Drain: every stream gets a final frame and ends, so clients reconnect to a sibling.
    pub fn drain(&self) {
        for c in self.registry.all() {
            let last = match c.transport {
                Transport::Sse => format!("id:{}\nevent:VB_DRAIN\ndata:{{\"clientId\":\"{}\",\"reason\":\"server draining; reconnect\"}}\n\n", c.id, c.id),
                Transport::Ws => r#"{"type":"draining","reason":"server draining; reconnect"}"#.to_owned(),
            };
            c.end(End::Drain, Some(last.as_bytes()));
        }
    }
}
