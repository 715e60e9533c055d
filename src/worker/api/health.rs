//! Health endpoints: `/_/health` (vaultbase's own: which worker answered, for load balancers
//! and for seeing the kernel's balancing work) and `/api/health` (PocketBase's shape).

use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::worker::http::body::{json, json_bytes, ResBody};
use crate::worker::state::AppState;

#[derive(Serialize)]
struct WorkerHealth {
    status: &'static str,
    worker_id: u32,
    pid: u32,
    uptime_s: u64,
    version: &'static str,
}

/// `GET /_/health`
pub fn worker_health(state: &AppState) -> Response<ResBody> {
    json(
        StatusCode::OK,
        &WorkerHealth {
            status: "ok",
            worker_id: state.worker_id,
            pid: state.pid,
            uptime_s: state.started.elapsed().as_secs(),
            version: crate::shared::VERSION,
        },
    )
}

/// `GET /api/health`, exactly as PocketBase answers a guest.
pub fn api_health() -> Response<ResBody> {
    json_bytes(StatusCode::OK, &br#"{"message":"API is healthy.","code":200,"data":{}}"#[..])
}
