//! `/api/crons` (PocketBase's, superusers only) and vaultbase's run log of a job
//! (`GET /api/crons/{id}/runs`, which PocketBase has not). Parse → call `worker::cron` → answer.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::shared::db::DbError;
use crate::worker::cron::store;
use crate::worker::http::body::{json, json_bytes, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::state::AppState;

/// Runs listed when `limit` is not given, and the most one request may ask for.
pub const DEFAULT_RUNS_LIMIT: i64 = 50;
pub const MAX_RUNS_LIMIT: i64 = 500;

/// `GET /api/crons`: `[{"id","expression"}]`, user jobs by id, then the `__pb…` ones.
pub async fn list(state: &AppState) -> Response<ResBody> {
    settings_jobs_current(state).await;
    json(StatusCode::OK, &state.crons.list())
}

/// `POST /api/crons/{id}`: starts the job on this worker and answers 204 at once.
pub async fn run(state: &AppState, raw_id: &str) -> Result<Response<ResBody>, ApiError> {
    let id = decode_segment(raw_id).ok_or_else(missing)?;
    settings_jobs_current(state).await;
    state.crons.run_now(state, &id).map_err(|_| missing())?;
    let mut res = json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
    res.headers_mut().remove(hyper::header::CONTENT_TYPE);
    Ok(res)
}

/// Jobs that follow the settings (`__pbAutoBackup__`) are brought up to date before answering:
/// a settings change through another worker reaches this one by a bus message that may still
/// be on its way, and the very next request must see it.
async fn settings_jobs_current(state: &AppState) {
    crate::worker::ops::backups::sync_schedule(state).await;
}

/// `GET /api/crons/{id}/runs?limit=N`: `{"items":[…]}`, the job's newest runs first (also of a
/// job no longer registered, while its runs are still in the bounded log).
pub async fn runs(state: &AppState, raw_id: &str, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let id = decode_segment(raw_id).ok_or_else(missing)?;
    let mut limit = DEFAULT_RUNS_LIMIT;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        if k == "limit" {
            limit = match v.parse::<i64>() {
                Ok(n) if (1..=MAX_RUNS_LIMIT).contains(&n) => n,
                _ => return Err(ApiError::bad_request(format!("limit must be a number from 1 to {MAX_RUNS_LIMIT}."))),
            };
        }
    }
    let items = state
        .db
        .read(move |c| -> Result<_, DbError> { Ok(store::runs_of(c, &id, limit)?) })
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
}

fn missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid cron job.")
}

/// A path segment with its %XX escapes decoded (the SDK encodes ids with
/// `encodeURIComponent`); None when the escapes or the UTF-8 are malformed.
pub(crate) fn decode_segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decode_segment;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(decode_segment("my%20job%2Fx").as_deref(), Some("my job/x"));
        assert_eq!(decode_segment("__pbDBOptimize__").as_deref(), Some("__pbDBOptimize__"));
        assert_eq!(decode_segment("bad%2"), None);
        assert_eq!(decode_segment("bad%zz"), None);
        assert_eq!(decode_segment("%ff"), None, "not UTF-8");
    }
}
