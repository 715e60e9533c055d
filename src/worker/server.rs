//! The accept loop: one task per connection, served by hyper-util's auto builder (HTTP/1.1 and
//! h2c) with a header-read timeout, each connection watched for graceful shutdown.
//!
//! When `stop` fires the loop returns, dropping the listener (so siblings take new connections
//! at once), and hands back the [`GracefulShutdown`] for the caller to await with its deadline:
//! in-flight requests finish, idle keep-alive connections close.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::http::router;
use super::state::AppState;

/// The TCP peer of the connection a request arrived on (before any proxy header).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// A client must send its complete request head within this time (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after an accept error such as EMFILE, so a full fd table is not a busy loop.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts until `stop` changes, then returns the handle that drains open connections.
pub async fn serve(listener: TcpListener, state: AppState, mut stop: watch::Receiver<bool>) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());

    loop {
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
        let service = service_fn(move |mut req: Request<Incoming>| {
            let state = conn_state.clone();
            req.extensions_mut().insert(PeerAddr(peer));
            async move { Ok::<_, Infallible>(handle(state, req).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
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

async fn handle(state: AppState, req: Request<Incoming>) -> hyper::Response<super::http::body::ResBody> {
    let started = Instant::now();
    let request_id = state.next_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // A panic below must still answer: unanswered, the client would only see the
    // connection drop.
    let res = match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(router::dispatch(&state, req, request_id))).await {
        Ok(res) => res,
        Err(_) => super::http::error::ApiError::Internal("the request handler panicked".into()).into_response(request_id),
    };
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
