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

/// Headers that suggest a reverse proxy in front (PocketBase's list), reported to
/// superusers so they can configure `trustedProxy`.
const PROXY_HEADERS: &[&str] = &["CF-Connecting-IP", "Fly-Client-IP", "X-Real-IP", "X-Forwarded-For"];

/// `GET /api/health`, exactly as PocketBase answers: `data` is empty for everyone but
/// superusers, who also get `canBackup`, `realIP` and `possibleProxyHeader`.
/// `real_ip` is the client IP under the `trustedProxy` settings (only needed for superusers).
pub fn api_health(superuser: bool, real_ip: String, headers: &hyper::HeaderMap) -> Response<ResBody> {
    if !superuser {
        return json_bytes(StatusCode::OK, &br#"{"message":"API is healthy.","code":200,"data":{}}"#[..]);
    }
    let proxy = PROXY_HEADERS.iter().find(|h| headers.contains_key(**h)).copied().unwrap_or_default();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "message": "API is healthy.",
            "code": 200,
            "data": {
                // No backup can be running yet: backups are a later feature.
                "canBackup": true,
                "realIP": real_ip,
                "possibleProxyHeader": proxy,
            },
        }),
    )
}
