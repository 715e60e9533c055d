//! `GET /api/vb/cluster` (superusers; vaultbase's own, PocketBase has no such page): the
//! workers of this server with their pids, uptime, restarts and counters. Parse → authorize
//! (in the router) → `ops::cluster` → answer.

use hyper::{Response, StatusCode};

use crate::shared::bus::Bus;
use crate::worker::http::body::{json, ResBody};
use crate::worker::state::AppState;

pub async fn get(state: &AppState) -> Response<ResBody> {
    // Only a worker started by the supervisor has the bus socket; `serve` has a local bus.
    let clustered = matches!(state.bus, Bus::Unix(_));
    json(StatusCode::OK, &crate::worker::ops::cluster::cluster_view(state, clustered).await)
}
