//! The route table: (method, path) → handler, and the one place unknown routes become 404.
//!
//! A plain `match` rather than a router crate: the table is short, it compiles to string
//! comparisons, and every route is visible in one screen.

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::body::ResBody;
use super::error::ApiError;
use crate::worker::api;
use crate::worker::state::AppState;

/// Routes `req` and turns any error into its envelope.
pub async fn dispatch(state: &AppState, req: Request<Incoming>, request_id: u64) -> Response<ResBody> {
    let result = route(state, req).await;
    match result {
        Ok(res) => res,
        Err(e) => e.into_response(request_id),
    }
}

async fn route(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
    match req.uri().path() {
        "/_/health" if is_read => Ok(api::health::worker_health(state)),
        "/api/health" if is_read => Ok(api::health::api_health()),
        "/_/test/echo" if state.config.test_routes && req.method() == Method::POST => {
            api::test_routes::echo(req).await
        }
        _ => Err(ApiError::route_not_found()),
    }
}
