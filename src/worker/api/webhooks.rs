//! `/api/vb/webhooks/{id}/…` (superusers only; the paths are listed in `api::jobs`): what a
//! webhook offers beyond its CRUD, which is the records API of the `_webhooks` system
//! collection. Parse → call `worker::jobs::webhooks` or the write pipeline → answer.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::shared::db::DbError;
use crate::worker::app::pipeline::{RecordWrite, UPDATE_FAILED};
use crate::worker::http::body::{json, json_bytes, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::jobs::{now_ms, webhooks, EnqueueFailure};
use crate::worker::records::crud::{Requester, Shape};
use crate::worker::records::query::RequestContext;
use crate::worker::records::webhooks_collection;
use crate::worker::state::AppState;

/// Routes `/api/vb/webhooks/{rest…}`.
pub async fn dispatch(state: &AppState, rest: &[&str], method: &Method, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let is_read = matches!(*method, Method::GET | Method::HEAD);
    match (rest, method) {
        ([id, "deliveries"], _) if is_read => {
            let limit = super::jobs::paging(req.uri().query().unwrap_or_default())?.limit;
            let id = (*id).to_owned();
            let items = state
                .db
                .read(move |c| -> Result<_, DbError> { if webhooks::exists(c, &id)? { Ok(Some(webhooks::deliveries(c, &id, limit)?)) } else { Ok(None) } })
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(missing)?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        ([id, "test"], &Method::POST) => {
            let id = (*id).to_owned();
            let queued = state.db.write(move |tx| webhooks::enqueue_test(tx, &id, now_ms())).await.map_err(|e: EnqueueFailure| ApiError::internal(e))?;
            let (job, event) = queued.ok_or_else(missing)?;
            state.jobs.wake();
            Ok(json(StatusCode::OK, &serde_json::json!({ "jobId": job, "eventId": event })))
        }
        ([id, "resume"], &Method::POST) => resume(state, id).await,
        _ => Err(ApiError::not_found()),
    }
}

/// Makes a paused webhook active again through the write pipeline (the same write as a PATCH
/// of `{"active": true}`, which clears the failure count and pause reason): answers the record.
async fn resume(state: &AppState, id: &str) -> Result<Response<ResBody>, ApiError> {
    let requester = Requester { ctx: RequestContext::new(std::time::SystemTime::now()), superuser: true };
    let shape = Shape::default();
    let w = RecordWrite { collection: webhooks_collection::NAME, requester: &requester, shape: &shape };
    let mut body = Map::new();
    body.insert("active".into(), Value::Bool(true));
    let bytes = state.writes().update(w, id, body, &[]).await.map_err(|e| super::records::write_error(e, UPDATE_FAILED))?;
    Ok(json_bytes(StatusCode::OK, bytes))
}

fn missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The requested webhook wasn't found.")
}
