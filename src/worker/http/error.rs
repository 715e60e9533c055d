//! [`ApiError`]: the one error type at the HTTP edge, rendered in PocketBase's envelope
//! `{"status", "message", "data"}`. Mapping into it is explicit at each call site (no blanket
//! `From`), so an internal error can never leak its text by accident: `Internal` is logged
//! with the request id and answered with the generic 500 message.

use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

use super::body::{json, ResBody};

#[derive(Debug)]
pub enum ApiError {
    /// A client-facing error with PocketBase's status, message and `data` map.
    Public { status: StatusCode, message: String, data: Map<String, Value> },
    /// Anything unexpected; the source is logged, never returned.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::Public { status, message: message.into(), data: Map::new() }
    }

    /// 404 for a route that does not exist (the message PocketBase 0.40 answers with).
    pub fn route_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "File not found.")
    }

    pub fn payload_too_large() -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 with PocketBase's validation map under `data`.
    pub fn validation(message: impl Into<String>, data: Map<String, Value>) -> ApiError {
        ApiError::Public { status: StatusCode::BAD_REQUEST, message: message.into(), data }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "The requested resource wasn't found.")
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError::Internal(Box::new(e))
    }

    /// The status and JSON envelope this error answers with (an internal error is logged
    /// here and gets the generic 500 body).
    pub fn envelope(self, request_id: u64) -> (StatusCode, Value) {
        match self {
            ApiError::Public { status, message, data } => {
                (status, serde_json::json!({"status": status.as_u16(), "message": sentenize(&message), "data": data}))
            }
            ApiError::Internal(source) => {
                tracing::error!(request_id, error = %source, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"status": 500, "message": "Something went wrong while processing your request.", "data": {}}),
                )
            }
        }
    }

    /// Renders the envelope. `request_id` ties a 500 to its log line.
    pub fn into_response(self, request_id: u64) -> Response<ResBody> {
        let (status, body) = self.envelope(request_id);
        json(status, &body)
    }
}

/// Upper-cases the first letter and ends the text with a full stop, as PocketBase does.
pub fn sentenize(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut chars = text.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentenize_matches_pocketbase() {
        assert_eq!(sentenize("file not found"), "File not found.");
        assert_eq!(sentenize("Already done!"), "Already done!");
        assert_eq!(sentenize(""), "");
    }
}
