//! The supervisor's side of a cluster restore (the conversation is in
//! `shared::backup::protocol`): pause every worker, wait until each has closed its database
//! connections, swap the files, resume every worker, then answer the worker that asked.
//!
//! The original's bug was a restore that reopened only the worker that took the request, the
//! others serving the old (renamed) file: here the swap happens only after every live worker
//! said its connections are closed, and a worker that never says so aborts the restore
//! (everyone resumes on the old files) rather than risk it. The supervisor loop is busy
//! meanwhile, so no worker is respawned half-way; hub events that are not part of the
//! conversation are handed back to the loop afterwards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::hub::{Hub, HubEvent};
use crate::shared::backup::archive::Staged;
use crate::shared::backup::protocol::{self, Payload};
use crate::shared::backup::swap;
use crate::shared::bus::{BusMsg, SUPERVISOR_ID};

/// How long every worker has to close its connections: a pause waits for the queries
/// already running, which the read deadline bounds.
pub const PAUSE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long every worker has to reopen after the swap.
pub const RESUME_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the restore `request` (from worker `from`) to its end; returns the hub events that
/// arrived meanwhile and belong to the supervisor loop.
pub async fn coordinate(hub: &Hub, events: &mut mpsc::UnboundedReceiver<HubEvent>, root: &Path, live: &[u32], from: u32, request: Payload) -> Vec<HubEvent> {
    let mut deferred = Vec::new();
    let op = request.op.clone();
    let outcome = match staged_dir(root, request.staged.as_deref()) {
        Some(dir) => run(hub, events, root, live, &op, Staged { dir }, &mut deferred).await,
        None => Err("the staged restore is not in the data dir".to_owned()),
    };
    match &outcome {
        Ok(kept) => tracing::info!(role = "supervisor", op, kept = %kept.display(), "backup restored on every worker; the previous data is kept"),
        Err(e) => tracing::error!(role = "supervisor", op, error = %e, "restore failed; workers serve the previous data"),
    }
    let done = Payload { op, staged: None, error: outcome.err() };
    send(hub, from, protocol::DONE, &done);
    deferred
}

/// The staging directory a request names (by its name in the data dir), if it is one.
fn staged_dir(root: &Path, staged: Option<&str>) -> Option<PathBuf> {
    let name = staged?;
    let plain = name.starts_with(".restore-") && !name.contains('/') && name != ".restore-";
    Some(root.join(name)).filter(|dir| plain && dir.is_dir())
}

fn send(hub: &Hub, to: u32, topic: &str, payload: &Payload) {
    let msg = BusMsg::Direct { to, from: SUPERVISOR_ID, topic: topic.to_owned(), payload: payload.to_value() };
    if !hub.send_control(to, &msg) {
        tracing::debug!(role = "supervisor", worker_id = to, topic, "worker not on the bus for a restore message");
    }
}

async fn run(
    hub: &Hub,
    events: &mut mpsc::UnboundedReceiver<HubEvent>,
    root: &Path,
    live: &[u32],
    op: &str,
    staged: Staged,
    deferred: &mut Vec<HubEvent>,
) -> Result<PathBuf, String> {
    let order = Payload { op: op.to_owned(), ..Payload::default() };
    let mut waiting: BTreeSet<u32> = live.iter().copied().chain(hub.connected()).collect();
    let mut paused: BTreeSet<u32> = BTreeSet::new();
    for &id in &waiting {
        send(hub, id, protocol::PAUSE, &order);
    }
    tracing::info!(role = "supervisor", op, workers = waiting.len(), "restore: pausing every worker");
    let all_paused = wait(root, events, &mut waiting, protocol::PAUSED, op, PAUSE_TIMEOUT, deferred, |e, waiting| {
        // A worker that joins now was spawned before the restore: it is paused like the rest.
        if let HubEvent::Joined { worker_id, .. } = e {
            if waiting.contains(worker_id) {
                send(hub, *worker_id, protocol::PAUSE, &order);
            }
        }
    }, &mut paused)
    .await;
    let swapped = if all_paused {
        let r = root.to_owned();
        let s = staged.clone();
        match tokio::task::spawn_blocking(move || swap::swap(&r, &s)).await {
            Ok(Ok(kept)) => Ok(kept),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    } else {
        Err(format!("workers {waiting:?} did not pause within {}s", PAUSE_TIMEOUT.as_secs()))
    };
    if swapped.is_err() {
        staged.discard();
    }
    // Everyone told to pause is told to resume, whether or not it answered: a late pause
    // must not leave a worker closed for good.
    let mut resuming: BTreeSet<u32> = paused.union(&waiting).copied().collect();
    for &id in &resuming {
        send(hub, id, protocol::RESUME, &order);
    }
    let mut resumed = BTreeSet::new();
    if !wait(root, events, &mut resuming, protocol::RESUMED, op, RESUME_TIMEOUT, deferred, |_, _| {}, &mut resumed).await {
        tracing::warn!(role = "supervisor", op, workers = ?resuming, "restore: some workers did not confirm the reopen in time");
    }
    swapped
}

/// Waits until every worker in `waiting` answered `topic` for `op` (moved into `answered`),
/// one left the bus (a dead process holds no connection), or `timeout` passed. Other events
/// go to `deferred` after `also` has seen them; a second restore request is refused at once.
#[allow(clippy::too_many_arguments)]
async fn wait(
    root: &Path,
    events: &mut mpsc::UnboundedReceiver<HubEvent>,
    waiting: &mut BTreeSet<u32>,
    topic: &str,
    op: &str,
    timeout: Duration,
    deferred: &mut Vec<HubEvent>,
    mut also: impl FnMut(&HubEvent, &BTreeSet<u32>),
    answered: &mut BTreeSet<u32>,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !waiting.is_empty() {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) => e,
            Ok(None) | Err(_) => return false,
        };
        match &event {
            HubEvent::Direct { from, topic: t, payload } if t == topic => {
                if Payload::from_value(payload.clone()).is_some_and(|p| p.op == op) && waiting.remove(from) {
                    answered.insert(*from);
                }
                continue;
            }
            HubEvent::Direct { from, topic: t, payload } if t == protocol::REQUEST => {
                tracing::warn!(role = "supervisor", worker_id = from, "a second restore was asked for during one; refused");
                if let Some(dir) = Payload::from_value(payload.clone()).and_then(|p| staged_dir(root, p.staged.as_deref())) {
                    Staged { dir }.discard();
                }
                // Answered by the loop afterwards: its stage is gone, so it fails cleanly.
                deferred.push(event);
                continue;
            }
            HubEvent::Left { worker_id } => {
                waiting.remove(worker_id);
            }
            _ => {}
        }
        also(&event, waiting);
        deferred.push(event);
    }
    true
}
