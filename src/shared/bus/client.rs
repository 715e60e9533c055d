//! A worker's connection to the supervisor's bus hub over the Unix socket.
//!
//! [`BusClient::connect`] does the Hello → Welcome handshake, then runs a reader task (frames
//! → the returned receiver) and a writer task (a bounded queue → the socket). Sending never
//! waits: a full queue drops the message and counts it, because a request handler must never
//! stall on a slow supervisor. When the socket closes, the receiver ends: that is the worker's
//! cue that the supervisor is gone.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::codec::{self, CodecError, Frame};
use super::{BusMsg, PROTOCOL_VERSION};

/// Frames a worker may have queued for the hub before it starts dropping.
pub const OUTBOUND_QUEUE_FRAMES: usize = 4096;
/// Frames received from the hub waiting for the worker to handle them.
pub const INBOUND_QUEUE_FRAMES: usize = 4096;
/// How long the hub has to answer `Hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to the bus at {path}: {source}")]
    Connect { path: String, source: std::io::Error },
    #[error("bus handshake: {0}")]
    Codec(#[from] CodecError),
    #[error("bus handshake: the hub closed the connection (version or id refused?)")]
    Refused,
    #[error("bus handshake: expected Welcome, got {0:?}")]
    Unexpected(Box<BusMsg>),
    #[error("bus handshake timed out after {0:?}")]
    Timeout(Duration),
}

/// The sending half; cheap to clone.
#[derive(Clone)]
pub struct BusClient {
    tx: mpsc::Sender<Frame>,
    dropped: Arc<AtomicU64>,
}

/// What the hub told us in `Welcome`.
#[derive(Debug, Clone, Copy)]
pub struct Welcome {
    pub cron_leader: bool,
}

impl BusClient {
    /// Connects as `worker_id`, handshakes, and starts the reader and writer tasks.
    pub async fn connect(path: &Path, worker_id: u32) -> Result<(BusClient, Welcome, mpsc::Receiver<BusMsg>), ConnectError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ConnectError::Connect { path: path.display().to_string(), source })?;
        let (mut rd, mut wr) = stream.into_split();
        let hello = codec::encode(&BusMsg::Hello {
            worker_id,
            pid: std::process::id(),
            version: crate::shared::VERSION.to_owned(),
            proto: PROTOCOL_VERSION,
        })?;
        let welcome = async {
            wr.write_all(hello.as_bytes()).await.map_err(CodecError::from)?;
            match codec::read_frame(&mut rd).await? {
                None => Err(ConnectError::Refused),
                Some(f) => match f.decode()? {
                    BusMsg::Welcome { cron_leader } => Ok(Welcome { cron_leader }),
                    other => Err(ConnectError::Unexpected(Box::new(other))),
                },
            }
        };
        let welcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, welcome)
            .await
            .map_err(|_| ConnectError::Timeout(HANDSHAKE_TIMEOUT))??;

        let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUTBOUND_QUEUE_FRAMES);
        let (in_tx, in_rx) = mpsc::channel::<BusMsg>(INBOUND_QUEUE_FRAMES);
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if let Err(e) = wr.write_all(frame.as_bytes()).await {
                    tracing::warn!(error = %e, "bus write failed; no more messages will be sent");
                    break;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                match codec::read_frame(&mut rd).await {
                    Ok(Some(frame)) => match frame.decode() {
                        Ok(msg) => {
                            if in_tx.send(msg).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "undecodable bus frame skipped"),
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "bus read failed");
                        break;
                    }
                }
            }
            // Dropping in_tx ends the receiver: the worker treats that as "supervisor gone".
        });
        Ok((BusClient { tx: out_tx, dropped: Arc::new(AtomicU64::new(0)) }, welcome, in_rx))
    }

    /// Queues `msg` for the hub without waiting; drops and counts it if the queue is full.
    pub fn send(&self, msg: &BusMsg) {
        let frame = match codec::encode(msg) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "bus message not sent");
                return;
            }
        };
        self.send_frame(frame);
    }

    /// Queues an already encoded frame, as [`BusClient::send`] does.
    pub fn send_frame(&self, frame: Frame) {
        if let Err(e) = self.tx.try_send(frame) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(dropped_total = n, reason = %e, "bus queue full or closed; message dropped");
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
