//! `GET /api/vb/hooks` (superusers; vaultbase's own): the hooks dir's files, the last reload
//! error and the hook cron jobs' runs, for the dashboard's hooks page. Parse → authorize (in
//! the router) → `ops::hooks_view` → answer.

use hyper::{Response, StatusCode};

use crate::worker::http::body::{json, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::state::AppState;

pub async fn get(state: &AppState) -> Result<Response<ResBody>, ApiError> {
    let view = crate::worker::ops::hooks_view::hooks_view(state).await.map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &view))
}
