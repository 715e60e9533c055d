//! `/api/vb/webhooks…` (superusers only; the paths are listed in `api::jobs`). Parse → call
//! `worker::jobs::webhooks` → answer. A webhook's secret appears in the answer to its create
//! and never again.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::shared::db::DbError;
use crate::worker::http::body::{collect_limited, json, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::jobs::{now_ms, webhooks, EnqueueFailure};
use crate::worker::state::AppState;

/// Routes `/api/vb/webhooks/{rest…}`.
pub async fn dispatch(state: &AppState, rest: &[&str], method: &Method, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let is_read = matches!(*method, Method::GET | Method::HEAD);
    match (rest, method) {
        ([], _) if is_read => {
            let items = state.db.read(|c| -> Result<_, DbError> { Ok(webhooks::list(c)?) }).await.map_err(ApiError::internal)?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        ([], &Method::POST) => create(state, req).await,
        ([id], _) if is_read => Ok(json(StatusCode::OK, &view(state, id).await?)),
        ([id], &Method::PATCH) => update(state, id, req).await,
        ([id], &Method::DELETE) => {
            let id = (*id).to_owned();
            let jobs = state.jobs.clone();
            let gone = state.db.write(move |tx| -> Result<_, DbError> { Ok(webhooks::delete(tx, &jobs.webhooks, &id)?) }).await.map_err(ApiError::internal)?;
            if gone { Ok(super::jobs::no_content()) } else { Err(missing()) }
        }
        ([id, "deliveries"], _) if is_read => {
            view(state, id).await?;
            let limit = super::jobs::paging(req.uri().query().unwrap_or_default())?.limit;
            let id = (*id).to_owned();
            let items = state.db.read(move |c| -> Result<_, DbError> { Ok(webhooks::deliveries(c, &id, limit)?) }).await.map_err(ApiError::internal)?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        ([id, "test"], &Method::POST) => {
            let id = (*id).to_owned();
            let queued = state.db.write(move |tx| webhooks::enqueue_test(tx, &id, now_ms())).await.map_err(|e: EnqueueFailure| ApiError::internal(e))?;
            let (job, event) = queued.ok_or_else(missing)?;
            state.jobs.wake();
            Ok(json(StatusCode::OK, &serde_json::json!({ "jobId": job, "eventId": event })))
        }
        _ => Err(ApiError::not_found()),
    }
}

async fn view(state: &AppState, id: &str) -> Result<webhooks::WebhookRow, ApiError> {
    let id = id.to_owned();
    state.db.read(move |c| -> Result<_, DbError> { Ok(webhooks::get(c, &id)?) }).await.map_err(ApiError::internal)?.ok_or_else(missing)
}

async fn body_of(req: Request<Incoming>, creating: bool) -> Result<webhooks::Input, ApiError> {
    let bytes = collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await?;
    let body: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("Invalid JSON body."))?;
    webhooks::parse_input(&body, creating).map_err(|errors| {
        let data = errors
            .into_iter()
            .map(|(field, message)| (field.to_owned(), serde_json::json!({ "code": "validation_invalid_value", "message": message })))
            .collect();
        ApiError::validation("Failed to validate the webhook.", data)
    })
}

async fn create(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let input = body_of(req, true).await?;
    let jobs = state.jobs.clone();
    let (id, secret) = state.db.write(move |tx| -> Result<_, DbError> { Ok(webhooks::create(tx, &jobs.webhooks, &input)?) }).await.map_err(ApiError::internal)?;
    let mut v = serde_json::to_value(view(state, &id).await?).map_err(ApiError::internal)?;
    if let Some(m) = v.as_object_mut() {
        // The one time the secret is shown.
        m.insert("secret".into(), Value::String(secret));
    }
    Ok(json(StatusCode::OK, &v))
}

async fn update(state: &AppState, id: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let input = body_of(req, false).await?;
    let key = id.to_owned();
    let jobs = state.jobs.clone();
    let found = state.db.write(move |tx| -> Result<_, DbError> { Ok(webhooks::update(tx, &jobs.webhooks, &key, &input)?) }).await.map_err(ApiError::internal)?;
    if !found {
        return Err(missing());
    }
    Ok(json(StatusCode::OK, &view(state, id).await?))
}

fn missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The requested webhook wasn't found.")
}
