//! What this worker tells the dashboard's cluster page: its counters (requests, bus drops,
//! write-lock waits), published to the status files every second in a cluster, and the view of
//! every worker assembled from those files and the supervisor's. Reporting only: nothing here
//! may slow or fail a request.

use serde::Serialize;
use tokio::sync::watch;

use crate::shared::cluster_status::{self, SupervisorStatus, WorkerStatus, PUBLISH_INTERVAL};
use crate::worker::state::AppState;

/// This worker's counters right now.
pub fn own_status(state: &AppState) -> WorkerStatus {
    let now_ms = cluster_status::now_ms();
    WorkerStatus {
        id: state.worker_id,
        pid: state.pid,
        started_at_s: (now_ms / 1000).saturating_sub(state.started.elapsed().as_secs()),
        requests: state.requests_started(),
        bus_drops: state.bus.dropped(),
        write_lock_waits: crate::shared::db::turns::waits(),
        updated_at_ms: now_ms,
    }
}

/// Publishes [`own_status`] every [`PUBLISH_INTERVAL`] until `stop` turns true (cluster mode).
pub async fn publish(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut failed = false;
    loop {
        match cluster_status::write_worker(&state.config.data_dir, &own_status(&state)).await {
            Ok(()) => failed = false,
            Err(e) if !failed => {
                failed = true;
                tracing::warn!(worker_id = state.worker_id, error = %e, "publishing the cluster status failed");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(PUBLISH_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One worker on the cluster page. Counters are None while unknown (a worker just respawned
/// that has not published yet, or a slot waiting for its respawn).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub id: u32,
    pub pid: Option<u32>,
    pub state: String,
    pub restarts: u64,
    pub uptime_s: Option<u64>,
    pub requests: Option<u64>,
    pub bus_drops: Option<u64>,
    pub write_lock_waits: Option<u64>,
    /// Milliseconds since the counters were published (0 for the answering worker).
    pub age_ms: Option<u64>,
    /// Whether this worker answered the request.
    pub answering: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// `cluster` or `serve`.
    pub mode: &'static str,
    pub supervisor_pid: Option<u32>,
    pub version: &'static str,
    pub workers: Vec<WorkerView>,
    pub totals: Totals,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub requests: u64,
    pub bus_drops: u64,
    pub write_lock_waits: u64,
    pub restarts: u64,
}

fn view(status: &WorkerStatus, now_ms: u64, answering: bool) -> WorkerView {
    WorkerView {
        id: status.id,
        pid: Some(status.pid),
        state: "ready".to_owned(),
        restarts: 0,
        uptime_s: Some((now_ms / 1000).saturating_sub(status.started_at_s)),
        requests: Some(status.requests),
        bus_drops: Some(status.bus_drops),
        write_lock_waits: Some(status.write_lock_waits),
        age_ms: Some(now_ms.saturating_sub(status.updated_at_ms)),
        answering,
    }
}

/// Every worker: in a cluster the supervisor's slots, each with the counters its current
/// process published (a file from an earlier process of the slot is not used); in `serve`
/// mode this one worker.
pub async fn cluster_view(state: &AppState, clustered: bool) -> ClusterView {
    let own = own_status(state);
    let now_ms = own.updated_at_ms;
    let supervisor: Option<SupervisorStatus> = if clustered { cluster_status::read_supervisor(&state.config.data_dir).await } else { None };
    let workers = match &supervisor {
        None => vec![view(&own, now_ms, true)],
        Some(sup) => {
            let mut out = Vec::with_capacity(sup.slots.len());
            for slot in &sup.slots {
                let published = if slot.id == own.id && slot.pid == Some(own.pid) {
                    Some((own.clone(), true))
                } else {
                    cluster_status::read_worker(&state.config.data_dir, slot.id).await.filter(|w| Some(w.pid) == slot.pid).map(|w| (w, false))
                };
                let mut v = match published {
                    Some((w, answering)) => view(&w, now_ms, answering),
                    None => WorkerView {
                        id: slot.id,
                        pid: slot.pid,
                        state: String::new(),
                        restarts: 0,
                        uptime_s: None,
                        requests: None,
                        bus_drops: None,
                        write_lock_waits: None,
                        age_ms: None,
                        answering: false,
                    },
                };
                v.state = slot.state.clone();
                v.restarts = slot.restarts;
                out.push(v);
            }
            out
        }
    };
    let mut totals = Totals::default();
    for w in &workers {
        totals.requests += w.requests.unwrap_or(0);
        totals.bus_drops += w.bus_drops.unwrap_or(0);
        totals.write_lock_waits += w.write_lock_waits.unwrap_or(0);
        totals.restarts += w.restarts;
    }
    ClusterView {
        mode: if clustered { "cluster" } else { "serve" },
        supervisor_pid: supervisor.map(|s| s.pid),
        version: crate::shared::VERSION,
        workers,
        totals,
    }
}
