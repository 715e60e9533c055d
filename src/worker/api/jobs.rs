//! vaultbase's own superuser API for background jobs and webhooks, under `/api/vb/` (next to
//! PocketBase's paths, which have no such resources). Parse → call `worker::jobs` → answer.
//!
//! ```text
//! GET    /api/vb/jobs?name=&status=&limit=&offset=   {"items":[…],"totalItems":N}, newest first
//! GET    /api/vb/jobs/{id}                           the job with "attempts":[…]
//! POST   /api/vb/jobs/{id}/retry                     dead/cancelled → queued (fresh attempts); queued → due now
//! POST   /api/vb/jobs/{id}/cancel                    queued/running → cancelled
//! GET    /api/vb/webhooks/{id}/deliveries?limit=     the delivery log, newest first
//! POST   /api/vb/webhooks/{id}/test                  enqueues a `test` event delivery
//! POST   /api/vb/webhooks/{id}/resume                active again, failure count cleared
//! ```
//! Webhooks themselves are records of the `_webhooks` system collection
//! (`/api/collections/_webhooks/records`); only what is not CRUD lives here.
//! The caller (the router) has already checked that the request comes from a superuser.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::shared::db::DbError;
use crate::worker::http::body::{json, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::jobs::{now_ms, store};
use crate::worker::state::AppState;

/// Listed when `limit` is not given, and the most one request may ask for.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// The statuses a job can have (a filter must name one).
const STATUSES: [&str; 5] = ["queued", "running", "done", "dead", "cancelled"];

/// Routes `/api/vb/{rest…}`.
pub async fn dispatch(state: &AppState, rest: &[&str], method: &Method, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let is_read = matches!(*method, Method::GET | Method::HEAD);
    match (rest, method) {
        (["jobs"], _) if is_read => list(state, &req).await,
        (["jobs", id], _) if is_read => view(state, id).await,
        (["jobs", id, "retry"], &Method::POST) => act(state, id, store::retry).await,
        (["jobs", id, "cancel"], &Method::POST) => act(state, id, store::cancel).await,
        (["webhooks", ..], _) => super::webhooks::dispatch(state, &rest[1..], method, req).await,
        _ => Err(ApiError::not_found()),
    }
}

/// A query string's `limit` and `offset`, checked, and its other parameters.
pub struct Paging {
    pub limit: i64,
    pub offset: i64,
    pub rest: Vec<(String, String)>,
}

pub fn paging(query: &str) -> Result<Paging, ApiError> {
    let (mut limit, mut offset, mut rest) = (DEFAULT_LIMIT, 0, Vec::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "limit" => {
                limit = match v.parse::<i64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                    _ => return Err(ApiError::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}."))),
                }
            }
            "offset" => {
                offset = match v.parse::<i64>() {
                    Ok(n) if n >= 0 => n,
                    _ => return Err(ApiError::bad_request("offset must be a number from 0.")),
                }
            }
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    Ok(Paging { limit, offset, rest })
}

async fn list(state: &AppState, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let Paging { limit, offset, rest } = paging(req.uri().query().unwrap_or_default())?;
    let (mut name, mut status) = (None, None);
    for (k, v) in rest {
        match k.as_str() {
            "name" => name = Some(v),
            "status" if STATUSES.contains(&v.as_str()) => status = Some(v),
            "status" => return Err(ApiError::bad_request(format!("status must be one of {}.", STATUSES.join(", ")))),
            _ => {}
        }
    }
    let (items, total) = state
        .db
        .read(move |c| -> Result<_, DbError> { Ok(store::list(c, name.as_deref(), status.as_deref(), limit, offset)?) })
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items, "totalItems": total, "limit": limit, "offset": offset })))
}

async fn view(state: &AppState, id: &str) -> Result<Response<ResBody>, ApiError> {
    let id = id.to_owned();
    let found = state.db.read(move |c| -> Result<_, DbError> { Ok(store::get(c, &id)?) }).await.map_err(ApiError::internal)?;
    let (job, attempts) = found.ok_or_else(missing)?;
    let mut v = serde_json::to_value(job).map_err(ApiError::internal)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("attempts".into(), serde_json::to_value(attempts).map_err(ApiError::internal)?);
    }
    Ok(json(StatusCode::OK, &v))
}

async fn act(state: &AppState, id: &str, f: fn(&rusqlite::Connection, &str, i64) -> rusqlite::Result<bool>) -> Result<Response<ResBody>, ApiError> {
    let id = id.to_owned();
    let done = state.db.write(move |tx| -> Result<_, DbError> { Ok(f(tx, &id, now_ms())?) }).await.map_err(ApiError::internal)?;
    if !done {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "No such job in a state that allows this action."));
    }
    state.jobs.wake();
    Ok(no_content())
}

pub fn no_content() -> Response<ResBody> {
    let mut res = crate::worker::http::body::json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
    res.headers_mut().remove(hyper::header::CONTENT_TYPE);
    res
}

fn missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The requested job wasn't found.")
}
