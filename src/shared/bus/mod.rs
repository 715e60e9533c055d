//! The bus between workers: message types ([`BusMsg`]), framing ([`codec`]) and the worker-side
//! handle ([`Bus`]) with its two transports — the supervisor's Unix socket ([`client`]) and,
//! for `vaultbase serve`, an in-process bus with no peers.
//!
//! The hub that fans frames out lives in the supervisor; this module must not depend on it.
//! Later features (realtime relay, cache invalidation, cron leadership) talk to [`Bus`] only.

pub mod client;
pub mod codec;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use client::{BusClient, ConnectError};

/// Bumped whenever a message's meaning or shape changes; the hub refuses a mismatch, so a
/// worker re-executed from a replaced binary cannot join an old supervisor's bus.
pub const PROTOCOL_VERSION: u32 = 2;

/// Every message on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BusMsg {
    /// worker → hub, first frame.
    Hello { worker_id: u32, pid: u32, version: String, proto: u32 },
    /// hub → worker, the answer to `Hello`.
    Welcome { cron_leader: bool },
    /// worker → hub: listening and able to serve.
    Ready { worker_id: u32 },
    /// worker → every other worker, once each (the origin has delivered it locally already).
    Publish { origin: u32, seq: u64, topic: String, payload: serde_json::Value },
    /// worker → every other worker: drop a cache (`what` names it).
    Invalidate { origin: u32, what: String },
    /// hub → worker: stop accepting and drain within `deadline_ms`.
    Drain { deadline_ms: u64 },
    /// worker → one other worker (`to`), routed by the hub; a request/answer pair is two of
    /// these matched by an id inside `payload`. If `to` is not connected the hub sends the
    /// frame back to `from` with `topic` [`UNDELIVERABLE`], so the sender can fail at once.
    Direct { to: u32, from: u32, topic: String, payload: serde_json::Value },
}

/// The address of the supervisor in a [`BusMsg::Direct`]: the hub hands such frames to the
/// supervisor instead of a worker (the restore conversation, `shared::backup::protocol`).
pub const SUPERVISOR_ID: u32 = u32::MAX;

/// The topic of a [`BusMsg::Direct`] bounced by the hub because its target is not connected.
pub const UNDELIVERABLE: &str = "bus.undeliverable";

impl BusMsg {
    /// The one-byte kind written before the JSON, so the hub routes frames without parsing.
    pub fn kind(&self) -> u8 {
        match self {
            BusMsg::Hello { .. } => codec::KIND_HELLO,
            BusMsg::Welcome { .. } => codec::KIND_WELCOME,
            BusMsg::Ready { .. } => codec::KIND_READY,
            BusMsg::Publish { .. } => codec::KIND_PUBLISH,
            BusMsg::Invalidate { .. } => codec::KIND_INVALIDATE,
            BusMsg::Drain { .. } => codec::KIND_DRAIN,
            BusMsg::Direct { .. } => codec::KIND_DIRECT,
        }
    }
}

/// The worker's handle on the bus, whichever transport is underneath.
#[derive(Clone)]
pub enum Bus {
    /// `vaultbase serve`: there are no other workers, so outgoing messages go nowhere.
    Local(LocalBus),
    /// A cluster worker connected to the supervisor's hub.
    Unix(BusClient),
}

/// The in-process bus. It owns the sender of the worker's incoming side, so that side stays
/// open for as long as the worker holds its `Bus`: a closed incoming side means "the
/// supervisor is gone", which can never be true without one.
#[derive(Clone)]
pub struct LocalBus {
    _incoming: mpsc::Sender<BusMsg>,
}

impl Bus {
    /// An in-process bus and its incoming side, which stays silent.
    pub fn local() -> (Bus, mpsc::Receiver<BusMsg>) {
        let (tx, rx) = mpsc::channel(1);
        (Bus::Local(LocalBus { _incoming: tx }), rx)
    }

    /// Sends `msg` to the other workers. Never waits; a full queue drops and counts.
    pub fn send(&self, msg: &BusMsg) {
        match self {
            Bus::Local(_) => {}
            Bus::Unix(client) => client.send(msg),
        }
    }

    /// Sends a frame encoded by the caller (who wanted to see [`codec::CodecError::TooLarge`]
    /// before sending). Never waits; a full queue drops and counts.
    pub fn send_frame(&self, frame: codec::Frame) {
        match self {
            Bus::Local(_) => {}
            Bus::Unix(client) => client.send_frame(frame),
        }
    }

    /// Messages this worker could not send because its queue was full.
    pub fn dropped(&self) -> u64 {
        match self {
            Bus::Local(_) => 0,
            Bus::Unix(client) => client.dropped(),
        }
    }
}
