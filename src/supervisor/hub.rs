//! The bus hub: a Unix socket in the data dir that every worker connects to. Each `Publish` or
//! `Invalidate` frame from one worker is forwarded, byte for byte, to every *other* connected
//! worker exactly once; a `Direct` frame goes to the one worker it names (or back to its sender
//! as undeliverable), or to the supervisor loop when it names [`SUPERVISOR_ID`]; `Ready`
//! frames become [`HubEvent`]s for the supervisor loop.
//!
//! Each worker has its own bounded outbound queue, so a stalled worker only loses its own
//! messages (counted and logged) and never slows the rest. Control frames (`Drain`) travel on
//! a separate, unbounded queue that the writer always serves first, so they are never dropped.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::shared::bus::codec::{self, Frame, KIND_DIRECT, KIND_INVALIDATE, KIND_PUBLISH, KIND_READY};
use crate::shared::bus::{BusMsg, PROTOCOL_VERSION, SUPERVISOR_ID, UNDELIVERABLE};

/// Frames queued for one worker before the hub starts dropping that worker's messages.
pub const PEER_QUEUE_FRAMES: usize = 8192;
/// How long a new connection has to send `Hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The worker that runs cluster-wide singletons (cron). A respawned worker keeps its id, so
/// leadership moves with the slot, never to two processes at once.
pub const CRON_LEADER_ID: u32 = 0;

/// What the hub tells the supervisor loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    Joined { worker_id: u32, pid: u32 },
    Ready { worker_id: u32 },
    Left { worker_id: u32 },
    /// A `Direct` frame addressed to the supervisor ([`SUPERVISOR_ID`]).
    Direct { from: u32, topic: String, payload: serde_json::Value },
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("bus socket path {0} is too long for a Unix socket (max 107 bytes); use a shorter data dir path")]
    PathTooLong(String),
    #[error("binding the bus socket {path}: {source}")]
    Bind { path: String, source: std::io::Error },
}

struct Peer {
    conn: u64,
    data: mpsc::Sender<Frame>,
    control: mpsc::UnboundedSender<Frame>,
}

#[derive(Default)]
struct Shared {
    peers: Mutex<HashMap<u32, Peer>>,
    dropped: AtomicU64,
    next_conn: AtomicU64,
}

impl Shared {
    fn peers(&self) -> MutexGuard<'_, HashMap<u32, Peer>> {
        // A panic while holding this lock leaves a consistent map (every mutation is a single
        // insert or remove), so a poisoned lock is safe to keep using.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running hub. Dropping it stops accepting and removes the socket file.
pub struct Hub {
    shared: Arc<Shared>,
    path: PathBuf,
    accept: JoinHandle<()>,
}

impl Hub {
    /// Binds `path` (removing a stale socket first), makes it 0600, and starts accepting.
    pub fn start(path: &Path, events: mpsc::UnboundedSender<HubEvent>) -> Result<Hub, HubError> {
        let shown = path.display().to_string();
        if path.as_os_str().len() > 107 {
            return Err(HubError::PathTooLong(shown));
        }
        // The data-dir lock is held, so a socket file here is a leftover of a dead supervisor.
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|source| HubError::Bind { path: shown.clone(), source })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| HubError::Bind { path: shown, source })?;
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_peer(stream, accept_shared.clone(), events.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bus accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Hub { shared, path: path.to_owned(), accept })
    }

    /// Sends a control message (e.g. `Drain`) to one worker. False if it is not connected.
    pub fn send_control(&self, worker_id: u32, msg: &BusMsg) -> bool {
        let Ok(frame) = codec::encode(msg) else { return false };
        match self.shared.peers().get(&worker_id) {
            Some(peer) => peer.control.send(frame).is_ok(),
            None => false,
        }
    }

    /// The workers connected now.
    pub fn connected(&self) -> Vec<u32> {
        self.shared.peers().keys().copied().collect()
    }

    /// Frames dropped because a worker's queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_peer(stream: UnixStream, shared: Arc<Shared>, events: mpsc::UnboundedSender<HubEvent>) {
    let (mut rd, mut wr) = stream.into_split();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, codec::read_frame(&mut rd)).await {
        Ok(Ok(Some(f))) => f.decode(),
        Ok(Ok(None)) => return,
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::warn!("bus peer sent no Hello in time; closing");
            return;
        }
    };
    let (worker_id, pid) = match hello {
        Ok(BusMsg::Hello { worker_id, pid, version, proto }) => {
            if proto != PROTOCOL_VERSION || version != crate::shared::VERSION {
                tracing::error!(
                    worker_id, pid, peer_version = %version, peer_proto = proto,
                    "refusing a worker of another version (binary replaced while running? restart the service)"
                );
                return;
            }
            (worker_id, pid)
        }
        Ok(other) => {
            tracing::warn!(?other, "bus peer's first frame was not Hello; closing");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "bad Hello on the bus; closing");
            return;
        }
    };

    let welcome = match codec::encode(&BusMsg::Welcome { cron_leader: worker_id == CRON_LEADER_ID }) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "encoding Welcome");
            return;
        }
    };
    if wr.write_all(welcome.as_bytes()).await.is_err() {
        return;
    }

    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (data_tx, mut data_rx) = mpsc::channel::<Frame>(PEER_QUEUE_FRAMES);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Frame>();
    // A reconnect under the same id replaces the old entry; the old connection's exit then
    // leaves the new one alone (see the `conn` check below).
    shared.peers().insert(worker_id, Peer { conn, data: data_tx, control: control_tx });
    let _ = events.send(HubEvent::Joined { worker_id, pid });

    let writer = tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                biased;
                f = control_rx.recv() => f,
                f = data_rx.recv() => f,
            };
            let Some(frame) = frame else { break };
            if wr.write_all(frame.as_bytes()).await.is_err() {
                break;
            }
        }
    });

    loop {
        let frame = match codec::read_frame(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(worker_id, error = %e, "bus read from worker failed");
                break;
            }
        };
        match frame.kind() {
            KIND_PUBLISH | KIND_INVALIDATE => fan_out(&shared, worker_id, &frame),
            KIND_DIRECT => route_direct(&shared, worker_id, &frame, &events),
            KIND_READY => {
                let _ = events.send(HubEvent::Ready { worker_id });
            }
            kind => tracing::warn!(worker_id, kind, "unexpected frame kind from a worker; ignored"),
        }
    }

    {
        let mut peers = shared.peers();
        if peers.get(&worker_id).map(|p| p.conn) == Some(conn) {
            peers.remove(&worker_id);
        }
    }
    writer.abort();
    let _ = events.send(HubEvent::Left { worker_id });
}

fn fan_out(shared: &Shared, origin: u32, frame: &Frame) {
    let peers = shared.peers();
    for (&id, peer) in peers.iter() {
        if id == origin {
            continue;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = peer.data.try_send(frame.clone()) {
            let n = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(worker_id = id, dropped_total = n, "worker's bus queue is full; message dropped");
            }
        }
    }
}

/// Delivers a `Direct` frame to the worker it names. Direct frames are small requests and
/// answers, so decoding one to read its target costs little. A target that is not connected
/// (dead, restarting) gets the frame bounced to its sender as [`UNDELIVERABLE`], so a waiting
/// request fails at once instead of at its timeout.
fn route_direct(shared: &Shared, origin: u32, frame: &Frame, events: &mpsc::UnboundedSender<HubEvent>) {
    let (to, topic, payload) = match frame.decode() {
        Ok(BusMsg::Direct { to, topic, payload, .. }) => (to, topic, payload),
        Ok(_) | Err(_) => {
            tracing::warn!(worker_id = origin, "undecodable Direct frame from a worker; dropped");
            return;
        }
    };
    if to == SUPERVISOR_ID {
        let _ = events.send(HubEvent::Direct { from: origin, topic, payload });
        return;
    }
    let peers = shared.peers();
    if let Some(peer) = peers.get(&to) {
        if peer.data.try_send(frame.clone()).is_ok() {
            return;
        }
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
    tracing::debug!(from = origin, to, %topic, "Direct frame undeliverable; bounced");
    let bounce = BusMsg::Direct { to: origin, from: to, topic: UNDELIVERABLE.to_owned(), payload };
    if let (Some(sender), Ok(f)) = (peers.get(&origin), codec::encode(&bounce)) {
        let _ = sender.data.try_send(f);
    }
}
