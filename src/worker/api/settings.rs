//! `GET/PATCH /api/settings` (superusers): PocketBase's settings shape. Secrets are write-only
//! and never appear in a response. A PATCH tells the other workers over the bus; their version
//! check makes it take effect there on the next request in any case.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::shared::bus::BusMsg;
use crate::worker::http::body::{json, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::json_object;
use crate::worker::settings::{self, SettingsError, INVALIDATE_SETTINGS};
use crate::worker::state::AppState;

fn settings_error(e: SettingsError) -> ApiError {
    match e {
        SettingsError::Invalid(data) => ApiError::validation("An error occurred while validating the submitted data.", data),
        other => ApiError::internal(other),
    }
}

/// `GET /api/settings`
pub async fn get(state: &AppState) -> Result<Response<ResBody>, ApiError> {
    let loaded = state.settings.fresh(&state.db).await.map_err(settings_error)?;
    Ok(json(StatusCode::OK, &loaded.settings))
}

/// `PATCH /api/settings`
pub async fn patch(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, "Failed to load the submitted data due to invalid formatting.").await?;
    let next = state.db.write(move |tx| settings::patch(tx, body)).await.map_err(settings_error)?;
    state.settings.invalidate();
    if let Some(limiter) = &state.rate_limiter {
        limiter.settings_changed();
    }
    state.bus.send(&BusMsg::Invalidate { origin: state.worker_id, what: INVALIDATE_SETTINGS.to_owned() });
    crate::worker::ops::backups::sync_schedule(state).await;
    Ok(json(StatusCode::OK, &next))
}
