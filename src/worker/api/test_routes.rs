//! Routes that exist only when `VAULTBASE_TEST_ROUTES=1`, for the integration tests that need a
//! request with a real body in flight (drain tests). Off by default; nothing here touches data.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::worker::http::body::{json, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;

/// `POST /_/test/echo`: reads the whole body (within the body limit) and answers its length.
pub async fn echo(req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = Limited::new(req.into_body(), DEFAULT_BODY_LIMIT_BYTES);
    let collected = body.collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError::payload_too_large()
        } else {
            ApiError::bad_request("Failed to read the request body.")
        }
    })?;
    let bytes = collected.to_bytes();
    Ok(json(StatusCode::OK, &serde_json::json!({ "bytes": bytes.len() })))
}
