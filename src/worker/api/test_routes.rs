//! Routes that exist only when `VAULTBASE_TEST_ROUTES=1`, for the integration tests that need a
//! request with a real body in flight (drain tests), a counter no API shows, or what the test
//! write observer saw. Off by default; nothing here touches data.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::worker::http::body::{collect_limited, json, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::state::AppState;

/// `POST /_/test/echo`: reads the whole body (within the body limit) and answers its length.
pub async fn echo(req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let bytes = collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "bytes": bytes.len() })))
}

/// `GET /_/test/stats`: this worker's internal counters.
pub fn stats(state: &AppState) -> Response<ResBody> {
    json(StatusCode::OK, &serde_json::json!({ "passwordJobs": state.passwords.started(), "realtimeClients": state.realtime.registry.len(), "thumbWaits": state.files.thumbs.waited() }))
}

/// `GET /_/test/observed`: every write event the test observer saw, on every worker of the
/// data dir, oldest first.
pub fn observed(state: &AppState) -> Response<ResBody> {
    let events = state.recorder.as_ref().map(|r| r.events()).unwrap_or_default();
    json(StatusCode::OK, &serde_json::json!({ "events": events }))
}

/// `GET /_/test/panic`: a handler bug, to prove a panic still gets an answer (500).
pub fn panic() -> Result<Response<ResBody>, ApiError> {
    panic!("a deliberate handler panic (test route)")
}
