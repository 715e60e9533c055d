//! Routes that exist only when `VAULTBASE_TEST_ROUTES=1`, for the integration tests that need a
//! request with a real body in flight (drain tests) or a counter no API shows. Off by default;
//! nothing here touches data.

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
    json(StatusCode::OK, &serde_json::json!({ "passwordJobs": state.passwords.started(), "thumbWaits": state.files.thumbs.waited() }))
}
