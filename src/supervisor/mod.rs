//! The supervisor of `vaultbase cluster`: owns the data dir, runs N worker processes on one
//! port, restarts the ones that die, relays the bus between them, and drains them on SIGTERM.
//!
//! It never accepts a connection and never holds a listening socket (an SO_REUSEPORT socket
//! that nobody accepts on would swallow its share of connections). It must not import the
//! worker: workers are separate processes that it starts by re-executing the binary.
//!
//! Lifecycle: prepare (lock, migrate, secret, port check) → hub → spawn all → loop
//! {child exits → respawn after backoff; Ready from every slot → READY=1; signal → drain}
//! → drain: `Drain` over the bus (SIGTERM if a worker is not on the bus), wait up to
//! `VAULTBASE_DRAIN_TIMEOUT`, SIGKILL what is left, reap all, exit 0. A second signal during
//! the drain kills every worker at once.

pub mod hub;
pub mod restore;
pub mod slots;
pub mod spawn;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::shared::bootstrap::{self, StartupError};
use crate::shared::bus::BusMsg;
use crate::shared::config::Config;
use crate::shared::data_dir::DataDir;
use crate::shared::sdnotify;
use hub::{Hub, HubError, HubEvent};
use slots::RestartPolicy;

/// After SIGKILLing stragglers, how long to wait for the kernel to let us reap them.
const REAP_AFTER_KILL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("running the JS migrations: {0}")]
    Migrations(String),
    #[error("worker {id} refused to start (its error is logged above); the cluster is not started")]
    WorkerRefused { id: u32 },
    #[error("spawning worker {id}: {source}")]
    Spawn { id: u32, source: std::io::Error },
    #[error(transparent)]
    Litestream(#[from] crate::shared::litestream::LitestreamError),
}

/// How the supervisor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every worker drained (or was killed at the deadline) and was reaped.
    Drained,
    /// A second signal cut the drain short.
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Process started, not yet `Ready`.
    Starting,
    Ready,
    /// Dead; waiting for its respawn time.
    Backoff { until: Instant },
    /// Dead for good (the cluster is draining).
    Exited,
}

struct Slot {
    id: u32,
    pid: Option<u32>,
    /// Bumped at each spawn so a late exit report of an old process is recognised.
    generation: u64,
    state: SlotState,
    policy: RestartPolicy,
}

struct ExitReport {
    id: u32,
    generation: u64,
    pid: u32,
    status: std::io::Result<ExitStatus>,
}

/// Runs the cluster until it has drained. Must be called inside a tokio runtime.
pub async fn run(cfg: Config) -> Result<Outcome, SupervisorError> {
    let prepared = bootstrap::prepare(&cfg)?;
    let data_dir = prepared.data_dir.clone();
    match spawn::run_js_migrations(&cfg, &data_dir).await {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(SupervisorError::Migrations(format!("`vaultbase migrate up` ended with {status}"))),
        Err(e) => return Err(SupervisorError::Migrations(e.to_string())),
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(SupervisorError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(SupervisorError::Signals)?;

    let (hub_tx, mut hub_rx) = mpsc::unbounded_channel();
    // Events a restore set aside go back through this, to the loop below.
    let requeue = hub_tx.clone();
    let hub = Hub::start(&data_dir.bus_socket_path(), hub_tx)?;
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<ExitReport>();

    tracing::info!(
        role = "supervisor", pid = std::process::id(), workers = cfg.workers,
        addr = %cfg.listen_addr(), data_dir = %data_dir.root().display(), version = crate::shared::VERSION,
        "cluster starting"
    );

    // Before the workers, so their first writes are replicated; stopped after their drain.
    let litestream = cfg.litestream.as_ref().map(|s| crate::shared::litestream::Litestream::start(s, data_dir.root())).transpose()?;

    let mut slots: Vec<Slot> = (0..cfg.workers as u32)
        .map(|id| Slot { id, pid: None, generation: 0, state: SlotState::Exited, policy: RestartPolicy::default() })
        .collect();
    for slot in slots.iter_mut() {
        start(slot, &cfg, &data_dir, &exit_tx)?;
    }

    let mut announced_ready = false;
    let mut refused = None;
    let mut published = None;
    loop {
        publish_slots(&slots, &data_dir, &mut published).await;
        let next_respawn = slots
            .iter()
            .filter_map(|s| match s.state {
                SlotState::Backoff { until } => Some(until),
                _ => None,
            })
            .min();
        let respawn_timer = async {
            match next_respawn {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!(role = "supervisor", signal = "SIGTERM", "draining"); break; }
            _ = sigint.recv() => { tracing::info!(role = "supervisor", signal = "SIGINT", "draining"); break; }
            Some(report) = exit_rx.recv() => {
                // Before the cluster was ever ready a refusal stops it: every worker loads the
                // same files. Later (a respawn after an edit) it is a death like any other, so a
                // running cluster is never taken down by a bad edit.
                let id = report.id;
                if on_exit(&mut slots, report, false, !announced_ready) {
                    tracing::error!(role = "supervisor", worker_id = id, "worker refused to start; stopping the cluster");
                    refused = Some(id);
                    break;
                }
            }
            Some(event) = hub_rx.recv() => {
                if let HubEvent::Direct { from, topic, payload } = &event {
                    if let Some(request) = (topic == crate::shared::backup::protocol::REQUEST).then(|| crate::shared::backup::protocol::Payload::from_value(payload.clone())).flatten() {
                        let live: Vec<u32> = slots.iter().filter(|s| matches!(s.state, SlotState::Starting | SlotState::Ready)).map(|s| s.id).collect();
                        for later in restore::coordinate(&hub, &mut hub_rx, data_dir.root(), &live, *from, request).await {
                            let _ = requeue.send(later);
                        }
                    }
                }
                if let HubEvent::Ready { worker_id } = event {
                    if let Some(slot) = slots.get_mut(worker_id as usize) {
                        if slot.state == SlotState::Starting {
                            slot.state = SlotState::Ready;
                            tracing::info!(role = "supervisor", worker_id, pid = slot.pid, "worker ready");
                        }
                    }
                    if !announced_ready && slots.iter().all(|s| s.state == SlotState::Ready) {
                        announced_ready = true;
                        sdnotify::notify("READY=1");
                        tracing::info!(role = "supervisor", workers = slots.len(), "cluster ready");
                    }
                }
            }
            _ = respawn_timer => {
                let now = Instant::now();
                for slot in slots.iter_mut() {
                    if matches!(slot.state, SlotState::Backoff { until } if until <= now) {
                        if let Err(e) = start(slot, &cfg, &data_dir, &exit_tx) {
                            // Treat a failed spawn like a death so the crash-loop guard applies.
                            tracing::error!(role = "supervisor", error = %e, "respawn failed");
                            schedule_respawn(slot, Instant::now());
                        }
                    }
                }
            }
        }
    }

    let outcome = drain(&cfg, &mut slots, &hub, &mut exit_rx, &mut sigterm, &mut sigint).await;
    if let Some(litestream) = litestream {
        litestream.stop().await;
    }
    if hub.dropped() > 0 {
        tracing::warn!(role = "supervisor", dropped_total = hub.dropped(), "bus frames dropped during this run");
    }
    drop(hub);
    drop(prepared);
    tracing::info!(role = "supervisor", ?outcome, "cluster stopped");
    match refused {
        Some(id) => Err(SupervisorError::WorkerRefused { id }),
        None => Ok(outcome),
    }
}

/// Writes the slots' pids and restart counts for the dashboard when they changed (see
/// `shared::cluster_status`); a failure only costs the report, so it is logged once per change.
async fn publish_slots(slots: &[Slot], data_dir: &DataDir, last: &mut Option<crate::shared::cluster_status::SupervisorStatus>) {
    let status = crate::shared::cluster_status::SupervisorStatus {
        pid: std::process::id(),
        slots: slots
            .iter()
            .map(|s| crate::shared::cluster_status::SlotStatus {
                id: s.id,
                pid: s.pid,
                restarts: s.generation.saturating_sub(1),
                state: match s.state {
                    SlotState::Starting => "starting",
                    SlotState::Ready => "ready",
                    SlotState::Backoff { .. } => "backoff",
                    SlotState::Exited => "exited",
                }
                .to_owned(),
            })
            .collect(),
    };
    if last.as_ref() == Some(&status) {
        return;
    }
    if let Err(e) = crate::shared::cluster_status::write_supervisor(data_dir.root(), &status).await {
        tracing::warn!(role = "supervisor", error = %e, "writing the cluster status file failed");
    }
    *last = Some(status);
}

fn start(slot: &mut Slot, cfg: &Config, data_dir: &DataDir, exits: &mpsc::UnboundedSender<ExitReport>) -> Result<(), SupervisorError> {
    let mut child = spawn::spawn_worker(slot.id, cfg, data_dir).map_err(|source| SupervisorError::Spawn { id: slot.id, source })?;
    let pid = child.id().unwrap_or(0);
    slot.generation += 1;
    slot.pid = Some(pid);
    slot.state = SlotState::Starting;
    tracing::info!(role = "supervisor", worker_id = slot.id, pid, "worker spawned");
    let (id, generation, exits) = (slot.id, slot.generation, exits.clone());
    tokio::spawn(async move {
        // Always wait: an unreaped child is a zombie, and this is where it is reaped.
        let status = child.wait().await;
        let _ = exits.send(ExitReport { id, generation, pid, status });
    });
    Ok(())
}

/// Records a worker's exit; true when the worker refused to start (its configuration is bad)
/// and `stop_on_refusal` asked for that to end the cluster rather than schedule a respawn.
fn on_exit(slots: &mut [Slot], report: ExitReport, draining: bool, stop_on_refusal: bool) -> bool {
    let Some(slot) = slots.get_mut(report.id as usize) else { return false };
    if slot.generation != report.generation {
        return false;
    }
    let refused = matches!(&report.status, Ok(s) if s.code() == Some(i32::from(crate::shared::EXIT_WORKER_REFUSED)));
    slot.pid = None;
    let status = match &report.status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    if draining {
        slot.state = SlotState::Exited;
        tracing::info!(role = "supervisor", worker_id = report.id, pid = report.pid, %status, "worker exited");
        return false;
    }
    if refused && stop_on_refusal {
        slot.state = SlotState::Exited;
        return true;
    }
    tracing::warn!(role = "supervisor", worker_id = report.id, pid = report.pid, %status, "worker died");
    schedule_respawn(slot, Instant::now());
    false
}

fn schedule_respawn(slot: &mut Slot, now: Instant) {
    let respawn = slot.policy.on_death(now);
    if respawn.crash_loop {
        tracing::error!(
            role = "supervisor", worker_id = slot.id, backoff_s = respawn.after.as_secs(),
            "CRASH LOOP: worker keeps dying; backing off before the next respawn — check the log above for its error"
        );
    } else {
        tracing::info!(role = "supervisor", worker_id = slot.id, backoff_ms = respawn.after.as_millis() as u64, "respawning");
    }
    slot.state = SlotState::Backoff { until: now + respawn.after };
}

async fn drain(
    cfg: &Config,
    slots: &mut [Slot],
    hub: &Hub,
    exit_rx: &mut mpsc::UnboundedReceiver<ExitReport>,
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
) -> Outcome {
    sdnotify::notify("STOPPING=1");
    let deadline_ms = cfg.drain_timeout.as_millis() as u64;
    for slot in slots.iter_mut() {
        match (slot.state, slot.pid) {
            (SlotState::Backoff { .. }, _) | (_, None) => slot.state = SlotState::Exited,
            (_, Some(pid)) => {
                // Over the bus, not as a signal: a worker that also got SIGTERM from systemd
                // would take a second signal as "exit now".
                if !hub.send_control(slot.id, &BusMsg::Drain { deadline_ms }) {
                    signal_worker(slot.id, pid, Signal::SIGTERM);
                }
            }
        }
    }

    let deadline = tokio::time::Instant::now() + cfg.drain_timeout;
    let mut outcome = Outcome::Drained;
    while slots.iter().any(|s| s.pid.is_some()) {
        tokio::select! {
            Some(report) = exit_rx.recv() => { on_exit(slots, report, true, false); }
            _ = tokio::time::sleep_until(deadline) => {
                for slot in slots.iter().filter(|s| s.pid.is_some()) {
                    tracing::warn!(
                        role = "supervisor", worker_id = slot.id, pid = slot.pid,
                        timeout_s = cfg.drain_timeout.as_secs(), "worker did not finish draining in time; SIGKILL"
                    );
                }
                break;
            }
            _ = sigterm.recv() => { outcome = Outcome::Forced; break; }
            _ = sigint.recv() => { outcome = Outcome::Forced; break; }
        }
    }
    if outcome == Outcome::Forced {
        tracing::warn!(role = "supervisor", "second signal: killing every worker now");
    }
    for slot in slots.iter() {
        if let Some(pid) = slot.pid {
            signal_worker(slot.id, pid, Signal::SIGKILL);
        }
    }
    let reap_deadline = tokio::time::Instant::now() + REAP_AFTER_KILL_TIMEOUT;
    while slots.iter().any(|s| s.pid.is_some()) {
        tokio::select! {
            Some(report) = exit_rx.recv() => { on_exit(slots, report, true, false); }
            _ = tokio::time::sleep_until(reap_deadline) => {
                tracing::error!(role = "supervisor", "some workers could not be reaped after SIGKILL");
                break;
            }
        }
    }
    outcome
}

/// Signals a worker's whole process group (the worker leads its own group).
fn signal_worker(worker_id: u32, pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 0 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(raw), sig) {
        tracing::warn!(role = "supervisor", worker_id, pid, signal = ?sig, error = %e, "signalling worker failed");
    }
}
