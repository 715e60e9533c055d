//! Health endpoints: `/_/health` (vaultbase's own: which worker answered, for load balancers
//! and for seeing the kernel's balancing work) and `/api/health` (PocketBase's shape).
//!
//! Both stay 200 while writes fail (reads still work, so a load balancer must not take the
//! worker out), but say so: `/_/health` answers `status: "degraded"`, `writes: "failing"` and
//! the reason; `/api/health` adds `writes` and `writesError` to its `data`.

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
    /// `"ok"`, or `"failing"` while writes fail (a full disk).
    writes: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    writes_error: Option<String>,
}

/// `GET /_/health`
pub fn worker_health(state: &AppState) -> Response<ResBody> {
    let failure = state.db.write_failure();
    json(
        StatusCode::OK,
        &WorkerHealth {
            status: if failure.is_some() { "degraded" } else { "ok" },
            worker_id: state.worker_id,
            pid: state.pid,
            uptime_s: state.started.elapsed().as_secs(),
            version: crate::shared::VERSION,
            writes: if failure.is_some() { "failing" } else { "ok" },
            writes_error: failure,
        },
    )
}

/// Headers that suggest a reverse proxy in front (PocketBase's list), reported to
/// superusers so they can configure `trustedProxy`.
const PROXY_HEADERS: &[&str] = &["CF-Connecting-IP", "Fly-Client-IP", "X-Real-IP", "X-Forwarded-For"];

/// `GET /api/health`, exactly as PocketBase answers: `data` is empty for everyone but
/// superusers, who also get `canBackup`, `realIP` and `possibleProxyHeader`.
/// `real_ip` is the client IP under the `trustedProxy` settings (only needed for superusers).
/// `write_failure` (see [`crate::shared::db::Db::write_failure`]) adds `writes: "failing"` and
/// `writesError` to `data`, for everyone.
pub fn api_health(superuser: bool, real_ip: String, headers: &hyper::HeaderMap, write_failure: Option<String>) -> Response<ResBody> {
    if !superuser && write_failure.is_none() {
        return json_bytes(StatusCode::OK, &br#"{"message":"API is healthy.","code":200,"data":{}}"#[..]);
    }
    let mut data = serde_json::Map::new();
    if superuser {
        let proxy = PROXY_HEADERS.iter().find(|h| headers.contains_key(**h)).copied().unwrap_or_default();
        // No backup can be running yet: backups are a later feature.
        data.insert("canBackup".into(), true.into());
        data.insert("realIP".into(), real_ip.into());
        data.insert("possibleProxyHeader".into(), proxy.into());
    }
    if let Some(why) = write_failure {
        data.insert("writes".into(), "failing".into());
        data.insert("writesError".into(), why.into());
    }
    json(StatusCode::OK, &serde_json::json!({"message": "API is healthy.", "code": 200, "data": data}))
}
