//! Response and request body helpers.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// The body type of every response: boxed so streaming bodies (SSE, files) fit later.
pub type ResBody = BoxBody<Bytes, std::convert::Infallible>;

/// The largest request body the server reads unless a route sets its own (PocketBase's 32 MiB).
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;

static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response from already-serialised bytes.
pub fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut res = Response::new(Full::new(body.into()).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    res
}

/// A 200 response with `body` and no content type yet (the caller sets it).
pub fn full(body: impl Into<Bytes>) -> Response<ResBody> {
    Response::new(Full::new(body.into()).boxed())
}

/// A JSON response from a serialisable value. Serialising plain data cannot fail; if it ever
/// did, the client gets a 500 rather than a panic.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<ResBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => {
            tracing::error!(error = %e, "serialising a response body");
            json_bytes(
                StatusCode::INTERNAL_SERVER_ERROR,
                &br#"{"status":500,"message":"Something went wrong while processing your request.","data":{}}"#[..],
            )
        }
    }
}

/// Reads a whole request body of at most `limit` bytes. A declared `Content-Length` over the
/// limit is refused before a byte is read; a body that grows past it mid-stream likewise.
pub async fn collect_limited(body: hyper::body::Incoming, limit: usize) -> Result<Bytes, super::error::ApiError> {
    use hyper::body::Body as _;
    use super::error::ApiError;
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::payload_too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::payload_too_large()),
        Err(_) => Err(ApiError::bad_request("Failed to read the request body.")),
    }
}
