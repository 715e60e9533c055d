//! The accept loop: one task per connection, served by hyper-util's auto builder (HTTP/1.1 and
//! h2c) with a header-read timeout, each connection watched for graceful shutdown.
//!
//! Two bounds hold whatever the clients do. A connection that has not sent a complete request
//! head within the header timeout is closed, for HTTP/2 as for HTTP/1 (hyper's timeout covers
//! only HTTP/1 heads, and neither protocol detection nor an h2c preface followed by silence
//! would otherwise ever time out). And at most `max_connections` are open at once: at the cap
//! the loop stops accepting until one closes, so new connections wait in the kernel's backlog
//! instead of costing a descriptor each (an fd table that still fills up, say through storage,
//! makes `accept` fail with EMFILE, which is backed off, never spun on).
//!
//! When `stop` fires the loop returns, dropping the listener (so siblings take new connections
//! at once), and hands back the [`GracefulShutdown`] for the caller to await with its deadline:
//! in-flight requests finish, idle keep-alive connections close.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::http::router;
use super::state::AppState;

/// The TCP peer of the connection a request arrived on (before any proxy header).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Share of the open-file limit that connections may take by default; the rest is for SQLite,
/// storage, the bus and logs.
pub const DEFAULT_CONNECTIONS_PERCENT_OF_NOFILE: u64 = 80;
/// The connection cap when the open-file limit cannot be read.
pub const FALLBACK_MAX_CONNECTIONS: usize = 10_000;
/// The smallest derived cap, so a tiny open-file limit still serves a few clients.
const MIN_DERIVED_MAX_CONNECTIONS: usize = 16;
/// At most one "cap reached" warning per this interval, however often the cap is hit.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Pause after an accept error such as EMFILE, so a full fd table is not a busy loop.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// The connection cap from the open-file limit in force (`VAULTBASE_MAX_CONNECTIONS` unset).
pub fn default_max_connections(nofile: Option<u64>) -> usize {
    match nofile {
        None => FALLBACK_MAX_CONNECTIONS,
        Some(n) => usize::try_from(n.saturating_mul(DEFAULT_CONNECTIONS_PERCENT_OF_NOFILE) / 100)
            .unwrap_or(usize::MAX)
            .max(MIN_DERIVED_MAX_CONNECTIONS),
    }
}

/// Accepts until `stop` changes, then returns the handle that drains open connections.
pub async fn serve(listener: TcpListener, state: AppState, mut stop: watch::Receiver<bool>, max_connections: usize) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let header_timeout = state.config.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    // Pings find peers that vanished without a FIN; an idle HTTP/1 connection is ended by its
    // header timeout instead.
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(header_timeout).keep_alive_timeout(header_timeout);
    let slots = Arc::new(Semaphore::new(max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut last_cap_warning: Option<Instant> = None;

    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if last_cap_warning.is_none_or(|at: Instant| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    last_cap_warning = Some(Instant::now());
                    tracing::warn!(worker_id = state.worker_id, max_connections, "connection cap reached; accepting again when one closes");
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, peer)) => (stream, peer),
            Err(e) => {
                if is_per_connection_error(&e) {
                    continue;
                }
                tracing::warn!(worker_id = state.worker_id, error = %e, "accept failed; backing off");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let conn_state = state.clone();
        let started = Arc::new(AtomicBool::new(false));
        let conn_started = started.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            conn_started.store(true, Ordering::Release);
            let state = conn_state.clone();
            req.extensions_mut().insert(PeerAddr(peer));
            async move { Ok::<_, Infallible>(handle(state, req).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            // Held for the connection's life: its place under the cap.
            let _slot = slot;
            tokio::pin!(watched);
            let ended = tokio::select! {
                ended = &mut watched => Some(ended),
                _ = tokio::time::sleep(header_timeout) => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None if !started.load(Ordering::Acquire) => {
                    // Dropping the connection closes the socket.
                    tracing::debug!(peer = %peer, "no complete request head within the header timeout; closing");
                    return;
                }
                None => watched.await,
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful
}

/// Errors that concern one half-open connection, not the listener.
fn is_per_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock)
}

async fn handle(state: AppState, mut req: Request<Incoming>) -> hyper::Response<super::http::body::ResBody> {
    let started = Instant::now();
    let request_id = state.next_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let logged = super::http::access::begin(&state, &mut req).await;
    // A panic below must still answer: unanswered, the client would only see the
    // connection drop.
    let mut res = match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(router::dispatch(&state, req, request_id))).await {
        Ok(res) => res,
        Err(_) => super::http::error::ApiError::Internal("the request handler panicked".into()).into_response(request_id),
    };
    // The request log (auxiliary.db and the archive) is written by the logs thread; the line
    // below goes to stderr through the `vb-log` thread's batches. Neither writes here.
    if let Some(capture) = logged {
        super::http::access::finish(capture, &mut res, started.elapsed());
    }
    tracing::info!(
        worker_id = state.worker_id,
        request_id,
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        "request"
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_descriptors_for_everything_else() {
        assert_eq!(default_max_connections(Some(1_048_576)), 838_860);
        assert_eq!(default_max_connections(Some(1024)), 819);
        assert_eq!(default_max_connections(Some(4)), MIN_DERIVED_MAX_CONNECTIONS);
        assert_eq!(default_max_connections(None), FALLBACK_MAX_CONNECTIONS);
    }
}
