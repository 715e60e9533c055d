//! [`ApiError`]: the one error type at the HTTP edge, rendered in PocketBase's envelope
//! `{"status", "message", "data"}`. Mapping into it is explicit at each call site (no blanket
//! `From`), so an internal error can never leak its text by accident: `Internal` is logged
//! with the request id and answered with the generic 500 message.
//!
//! The one exception to "internal means 500": a database [`Refusal`] anywhere in an internal
//! error's chain is something the client can act on, so [`ApiError::internal`] answers it with
//! its own status — 507 for a full disk, 400 for a query past its deadline, 503 with
//! `Retry-After` for a full queue — wherever in the code the error was wrapped.

use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

use super::body::{json, ResBody};
use crate::shared::db::{refusal_in, Refusal};

/// What a write answers while the disk is full.
pub const DISK_FULL_MESSAGE: &str = "The server's disk is full; the change was not saved. Try again later.";
/// What a read answers when it ran past the query deadline.
pub const QUERY_TIMEOUT_MESSAGE: &str = "The query took too long to run; narrow the filter or the collection's view query.";
/// What a request answers when the database queue is full.
pub const OVERLOADED_MESSAGE: &str = "The server is overloaded; try again shortly.";
/// What a request answers when it waited too long for a restore to finish.
pub const RESTORING_MESSAGE: &str = "A backup is being restored; try again shortly.";
/// The `Retry-After` of a 503 for a full queue, in seconds: queues drain in milliseconds.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug)]
pub enum ApiError {
    /// A client-facing error with PocketBase's status, message and `data` map.
    Public { status: StatusCode, message: String, data: Map<String, Value>, retry_after_secs: Option<u64> },
    /// Anything unexpected; the source is logged, never returned.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::Public { status, message: message.into(), data: Map::new(), retry_after_secs: None }
    }

    /// The answer to a database [`Refusal`].
    pub fn refused(r: Refusal) -> ApiError {
        match r {
            Refusal::DiskFull => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, DISK_FULL_MESSAGE),
            Refusal::Timeout => ApiError::new(StatusCode::BAD_REQUEST, QUERY_TIMEOUT_MESSAGE),
            Refusal::Busy => ApiError::Public {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: OVERLOADED_MESSAGE.to_owned(),
                data: Map::new(),
                retry_after_secs: Some(OVERLOADED_RETRY_AFTER_SECS),
            },
            Refusal::Restoring => ApiError::Public {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: RESTORING_MESSAGE.to_owned(),
                data: Map::new(),
                retry_after_secs: Some(OVERLOADED_RETRY_AFTER_SECS),
            },
        }
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
        ApiError::Public { status: StatusCode::BAD_REQUEST, message: message.into(), data, retry_after_secs: None }
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

    /// An unexpected error — unless a database [`Refusal`] is in its chain, which gets its own
    /// answer (logged here, since its source is not returned).
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        if let Some(r) = refusal_in(&e) {
            tracing::warn!(error = %e, "request refused by the database");
            return ApiError::refused(r);
        }
        ApiError::Internal(Box::new(e))
    }

    /// The status and JSON envelope this error answers with (an internal error is logged
    /// here and gets the generic 500 body).
    pub fn envelope(self, request_id: u64) -> (StatusCode, Value) {
        match self {
            ApiError::Public { status, message, data, .. } => {
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

    /// What the request log records of this error: PocketBase's `error` (the message) and
    /// `details` (the validation map as plain messages, the cause of an internal error —
    /// visible only to superusers, through the logs API — or null).
    pub fn failure(&self) -> Failure {
        match self {
            ApiError::Public { message, data, .. } => {
                Failure { error: sentenize(message), details: if data.is_empty() { Value::Null } else { plain_messages(&Value::Object(data.clone())) } }
            }
            ApiError::Internal(source) => Failure { error: "Something went wrong while processing your request.".into(), details: Value::from(source.to_string()) },
        }
    }

    /// Renders the envelope. `request_id` ties a 500 to its log line.
    pub fn into_response(self, request_id: u64) -> Response<ResBody> {
        let retry_after = match &self {
            ApiError::Public { retry_after_secs, .. } => *retry_after_secs,
            ApiError::Internal(_) => None,
        };
        let failure = self.failure();
        let (status, body) = self.envelope(request_id);
        let mut res = json(status, &body);
        res.extensions_mut().insert(failure);
        if let Some(secs) = retry_after {
            res.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(secs));
        }
        res
    }
}

/// The `error` and `details` of a failed request, carried on its response for the request log.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    pub details: Value,
}

/// `{"title": {"code": …, "message": "Cannot be blank."}}` as PocketBase's log shows it:
/// `{"title": "cannot be blank"}` (the validator's own wording, before the API dressed it).
fn plain_messages(v: &Value) -> Value {
    match v {
        Value::Object(m) => match (m.get("code"), m.get("message")) {
            (Some(Value::String(_)), Some(Value::String(message))) => {
                let bare = message.trim_end_matches('.');
                let mut chars = bare.chars();
                let first: String = chars.next().map(|c| c.to_lowercase().collect()).unwrap_or_default();
                Value::from(first + chars.as_str())
            }
            _ => Value::Object(m.iter().map(|(k, v)| (k.clone(), plain_messages(v))).collect()),
        },
        other => other.clone(),
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

    #[derive(Debug, thiserror::Error)]
    enum Wrapper {
        #[error(transparent)]
        Db(#[from] crate::shared::db::DbError),
    }

    #[test]
    fn database_refusals_get_their_own_status_through_any_wrapping() {
        let cases = [
            (Refusal::DiskFull, 507, None),
            (Refusal::Timeout, 400, None),
            (Refusal::Busy, 503, Some("1")),
            (Refusal::Restoring, 503, Some("1")),
        ];
        for (r, status, retry_after) in cases {
            // `transparent` hides the DbError itself from the chain; the Refusal stays visible.
            let e = ApiError::internal(Wrapper::Db(crate::shared::db::DbError::Refused(r)));
            let res = e.into_response(1);
            assert_eq!(res.status().as_u16(), status, "{r:?}");
            assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), retry_after, "{r:?}");
        }
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert_eq!(ApiError::internal(Wrapper::Db(full.into())).envelope(1).0, StatusCode::INSUFFICIENT_STORAGE);
        let interrupted = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT), None);
        let (status, body) = ApiError::internal(interrupted).envelope(1);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], QUERY_TIMEOUT_MESSAGE);
        // Positive control: anything else stays a generic 500.
        let other = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), None);
        assert_eq!(ApiError::internal(other).envelope(1).0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn failures_carry_plain_validation_messages() {
        let data = serde_json::json!({"title": {"code": "validation_required", "message": "Cannot be blank."}});
        let f = ApiError::validation("Failed to create record.", data.as_object().cloned().unwrap_or_default()).failure();
        assert_eq!(f, Failure { error: "Failed to create record.".into(), details: serde_json::json!({"title": "cannot be blank"}) });
        assert_eq!(ApiError::route_not_found().failure().details, Value::Null);
        let res = ApiError::not_found().into_response(1);
        assert_eq!(res.extensions().get::<Failure>().map(|f| f.error.as_str()), Some("The requested resource wasn't found."));
    }

    #[test]
    fn sentenize_matches_pocketbase() {
        assert_eq!(sentenize("file not found"), "File not found.");
        assert_eq!(sentenize("Already done!"), "Already done!");
        assert_eq!(sentenize(""), "");
    }
}
