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
/// data dir, oldest first; 409 when the observer is off (`VAULTBASE_TEST_OBSERVER` unset), so
/// a test that forgot it fails on that instead of on an empty list.
pub fn observed(state: &AppState) -> Response<ResBody> {
    match state.recorder.as_ref() {
        Some(r) => json(StatusCode::OK, &serde_json::json!({ "events": r.events() })),
        None => json(StatusCode::CONFLICT, &serde_json::json!({ "message": "the test observer is off: start the server with VAULTBASE_TEST_OBSERVER=1" })),
    }
}

/// `GET /_/test/panic`: a handler bug, to prove a panic still gets an answer (500).
pub fn panic() -> Result<Response<ResBody>, ApiError> {
    panic!("a deliberate handler panic (test route)")
}

/// `POST /_/test/jobs` `{"name"?, "payload"?, "options"?, "count"?, "rollback"?}`: enqueues
/// `count` jobs (default 1, of the test handler by default) in one write transaction and
/// answers their ids; with `"rollback": true` the transaction then fails, so nothing should
/// ever run, and the answer is 409.
pub async fn enqueue_jobs(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    use crate::worker::jobs::{self, EnqueueFailure, EnqueueOptions};
    let bytes = collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await?;
    let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("Invalid JSON body."))?;
    let name = body.get("name").and_then(serde_json::Value::as_str).unwrap_or(jobs::testing::TEST_JOB).to_owned();
    let payload = body.get("payload").cloned().unwrap_or(serde_json::Value::Null);
    let options: EnqueueOptions = match body.get("options") {
        Some(o) => serde_json::from_value(o.clone()).map_err(|e| ApiError::bad_request(format!("Invalid options: {e}")))?,
        None => EnqueueOptions::default(),
    };
    let count = body.get("count").and_then(serde_json::Value::as_u64).unwrap_or(1).min(10_000);
    let rollback = body.get("rollback").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let now = jobs::now_ms();
    let written = state
        .db
        .write(move |tx| -> Result<Vec<String>, EnqueueFailure> {
            let ids = (0..count).map(|_| jobs::enqueue(tx, &name, &payload, &options, now)).collect::<Result<Vec<_>, _>>()?;
            if rollback {
                return Err(EnqueueFailure::Invalid(jobs::EnqueueError::EmptyName));
            }
            Ok(ids)
        })
        .await;
    match written {
        Ok(ids) => {
            state.jobs.wake();
            Ok(json(StatusCode::OK, &serde_json::json!({ "ids": ids })))
        }
        Err(_) if rollback => Ok(json(StatusCode::CONFLICT, &serde_json::json!({ "rolledBack": true }))),
        Err(EnqueueFailure::Invalid(e)) => Err(ApiError::bad_request(e.to_string())),
        Err(EnqueueFailure::Db(e)) => Err(ApiError::internal(e)),
    }
}

/// `GET /_/test/jobs`: every attempt line the test job handler wrote, on every worker.
pub fn job_runs(state: &AppState) -> Response<ResBody> {
    json(StatusCode::OK, &serde_json::json!({ "lines": crate::worker::jobs::testing::lines(&state.config.data_dir) }))
}
