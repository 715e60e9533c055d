//! A worker: one process that serves HTTP on the shared port. In `serve` mode it is the whole
//! server (with the in-process bus); in a cluster it is one of N processes started by the
//! supervisor, which it must never import — it knows the supervisor only through the bus.
//!
//! Lifecycle: (cluster) connect to the bus → open the database (refusing to start if
//! migrations are pending: only the data-dir owner migrates) → bind → Ready → serve until a
//! drain cause (SIGTERM/SIGINT, a bus `Drain`, or the bus closing because the supervisor died)
//! → stop accepting, finish in-flight requests within the deadline, checkpoint and close
//! SQLite, exit 0. Drain is idempotent; a second signal exits at once. A watchdog thread
//! ends the process if the drain itself hangs.

pub mod accounts;
pub mod actor;
pub mod api;
pub mod app;
pub mod auth;
pub mod cron;
pub mod files;
pub mod hooks;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod ratelimit;
pub mod listener;
pub mod mail;
pub mod ops;
pub mod pb_migrations;
pub mod realtime;
pub mod records;
pub mod server;
pub mod settings;
pub mod state;
pub mod superuser_cli;
pub mod versioned;

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::shared::bootstrap::Prepared;
use crate::shared::bus::{Bus, BusClient, BusMsg, ConnectError};
use crate::shared::config::Config;
use crate::shared::data_dir::DataDir;
use crate::shared::db::{migrate, Db, DbError, DbOptions};
use crate::shared::sdnotify;
use crate::shared::secrets::{self, SecretError};
use state::AppState;

/// When the supervisor is gone there is nobody to wait for: finish what is in flight quickly.
pub const ORPHAN_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// In a cluster the supervisor enforces the drain deadline with SIGKILL; the worker's own
/// deadline is this much later so the two never race.
pub const CLUSTER_DRAIN_GRACE: Duration = Duration::from_secs(5);
/// The watchdog fires this long after the drain deadline, whatever the drain is stuck on.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(5);
/// Exit code after a forced exit (second signal, watchdog).
pub const FORCED_EXIT_CODE: i32 = 1;

/// How this worker came to be.
pub enum Role {
    /// `vaultbase serve`: this process prepared the data dir and holds its lock.
    Standalone(Prepared),
    /// Started by the supervisor as worker `id`.
    Clustered { id: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("opening data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Bus(#[from] ConnectError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("opening the database: {0}")]
    Db(#[from] DbError),
    #[error("the database has pending migrations ({0}); only the supervisor or `serve` migrates")]
    Unmigrated(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("loading the hooks: {0}")]
    Hooks(#[from] hooks::LoadError),
    #[error("the server task failed: {0}")]
    Server(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Litestream(#[from] crate::shared::litestream::LitestreamError),
}

enum DrainCause {
    Signal(&'static str),
    BusDrain,
    BusClosed,
}

impl DrainCause {
    fn describe(&self) -> &'static str {
        match self {
            DrainCause::Signal(name) => name,
            DrainCause::BusDrain => "drain requested by the supervisor",
            DrainCause::BusClosed => "bus closed (supervisor gone)",
        }
    }
}

/// Runs the worker until it has drained.
pub async fn run(cfg: Config, role: Role) -> Result<(), WorkerError> {
    // Before anything reads a record: the output writer opens sealed values with this ring.
    crate::shared::encryption::install(cfg.encryption.clone());
    crate::shared::pb_params::install_from_env(cfg.encryption_env.as_deref());
    let mut sigterm = signal(SignalKind::terminate()).map_err(WorkerError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(WorkerError::Signals)?;

    // `lock` is Some in `serve`: held (not used) until this function returns.
    let (worker_id, data_dir, secret, bus, mut incoming, lock) = match role {
        Role::Standalone(prepared) => {
            let (bus, incoming) = Bus::local();
            (0, prepared.data_dir, prepared.secret, bus, incoming, Some(prepared.lock))
        }
        Role::Clustered { id } => {
            let data_dir = DataDir::open(&cfg.data_dir)
                .map_err(|source| WorkerError::DataDir { path: cfg.data_dir.display().to_string(), source })?;
            let (client, welcome, incoming) = BusClient::connect(&data_dir.bus_socket_path(), id).await?;
            tracing::debug!(worker_id = id, cron_leader = welcome.cron_leader, "joined the bus");
            let secret = secrets::load(cfg.jwt_secret.as_deref(), &data_dir.secret_path())?;
            (id, data_dir, secret, Bus::Unix(client), incoming, None)
        }
    };
    let clustered = lock.is_none();

    let db_path = data_dir.db_path();
    let readers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8);
    let turns_path = clustered.then(|| data_dir.write_turns_path());
    let db_options = DbOptions { read_deadline: cfg.query_timeout, app_checkpoints: cfg.litestream.is_none(), ..DbOptions::default() };
    let db = tokio::task::spawn_blocking(move || -> Result<Db, WorkerError> {
        Ok(Db::open_with(&db_path, readers, turns_path.as_deref(), db_options)?)
    })
    .await??;
    let pending = db.read(|c| -> Result<_, DbError> { Ok(migrate::pending(c)?) }).await?;
    if !pending.is_empty() {
        return Err(WorkerError::Unmigrated(pending.join(", ")));
    }

    // `serve` owns the data dir, so it runs the replicator (a cluster's supervisor does).
    let litestream = match (&cfg.litestream, clustered) {
        (Some(settings), false) => Some(crate::shared::litestream::Litestream::start(settings, data_dir.root())?),
        _ => None,
    };

    let nofile = crate::shared::rlimit::raise_nofile();
    let addr = cfg.listen_addr();
    let listener = listener::bind(addr, clustered).map_err(|source| WorkerError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| WorkerError::Bind { addr, source })?;
    let state = AppState::new(worker_id, cfg.clone(), db.clone(), bus.clone(), secret);
    if db.read(|c| -> Result<_, DbError> { Ok(migrate::is_pocketbase(c)?) }).await? {
        // Keep PocketBase able to verify every password written here (see `auth::password`).
        state.passwords.set_scheme(crate::worker::auth::password::HashScheme::Bcrypt);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Err(e) = state.schema.fresh(&state.db).await {
        tracing::error!(worker_id, error = %e, "loading collections at start failed; will retry on first use");
    }
    // Before serving: a hook file that does not load refuses the start, as PocketBase. The
    // loader and pool are std threads; building them blocks this task only at start.
    let starting = state.clone();
    tokio::task::spawn_blocking(move || starting.hooks.start(&starting)).await??;
    state.realtime.set_message_filter(std::sync::Arc::new(hooks::realtime_js::MessageHook::new(state.clone())));
    hooks::record_requests::observe_commits(&state);
    if let Some(rx) = state.realtime.take_receiver() {
        tokio::spawn(realtime::deliver::run(state.clone(), rx));
    }
    if let Some(rx) = state.realtime.take_relay_receiver() {
        tokio::spawn(state.realtime.clone().relay(rx));
    }
    let max_connections = cfg.max_connections.unwrap_or_else(|| server::default_max_connections(nofile));
    tokio::spawn(cron::scheduler::run(state.clone(), stop_rx.clone()));
    tokio::spawn(ops::backups::keep_schedule_in_sync(state.clone(), stop_rx.clone()));
    let jobs_runner = jobs::runner::spawn(state.clone(), stop_rx.clone());
    if clustered {
        tokio::spawn(ops::cluster::publish(state.clone(), stop_rx.clone()));
    }
    let server = tokio::spawn(server::serve(listener, state.clone(), stop_rx, max_connections));

    bus.send(&BusMsg::Ready { worker_id });
    if !clustered {
        sdnotify::notify("READY=1");
    }
    tracing::info!(
        role = if clustered { "worker" } else { "serve" }, worker_id, pid = std::process::id(),
        addr = %local, version = crate::shared::VERSION, max_open_files = nofile,
        max_connections, "listening"
    );

    let cause = loop {
        tokio::select! {
            _ = sigterm.recv() => break DrainCause::Signal("SIGTERM"),
            _ = sigint.recv() => break DrainCause::Signal("SIGINT"),
            msg = incoming.recv() => match msg {
                None => break DrainCause::BusClosed,
                Some(BusMsg::Drain { .. }) => break DrainCause::BusDrain,
                Some(other) => on_bus_message(&state, other),
            },
        }
    };

    let deadline = match cause {
        DrainCause::BusClosed => ORPHAN_DRAIN_TIMEOUT,
        _ if clustered => cfg.drain_timeout + CLUSTER_DRAIN_GRACE,
        _ => cfg.drain_timeout,
    };
    if !clustered {
        sdnotify::notify("STOPPING=1");
    }
    start_watchdog(deadline + WATCHDOG_GRACE);
    let _ = stop_tx.send(true);
    let graceful = server.await?;
    // Open streams would hold the drain until its deadline: end them now with a final frame,
    // so their clients reconnect to a sibling while this worker finishes what is in flight.
    state.realtime.drain();
    // Logged once the listener is closed: from here on, new connections go to siblings.
    tracing::info!(
        worker_id, pid = std::process::id(), cause = cause.describe(), deadline_s = deadline.as_secs_f64(),
        in_flight = graceful.count(), "draining"
    );
    let drained = tokio::select! {
        _ = graceful.shutdown() => true,
        _ = tokio::time::sleep(deadline) => false,
        _ = sigterm.recv() => forced_exit(worker_id, "SIGTERM"),
        _ = sigint.recv() => forced_exit(worker_id, "SIGINT"),
    };
    if !drained {
        tracing::warn!(worker_id, "connections still open at the drain deadline; closing them");
    }
    // Running jobs finish within the drain budget or are released for retry (the runner's own
    // budget ends before this one).
    if tokio::time::timeout(deadline, jobs_runner).await.is_err() {
        tracing::warn!(worker_id, "the job runner did not drain in time");
    }
    let terminating = state.clone();
    let _ = tokio::task::spawn_blocking(move || terminating.hooks.terminate()).await;
    // Every finished request is in the logs queue now: write it out before exiting.
    let _ = tokio::task::spawn_blocking(ops::logs::flush).await;
    let logs = state.clone();
    let _ = tokio::task::spawn_blocking(move || logs.logs.close()).await;
    let closing = db.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    if let Some(litestream) = litestream {
        litestream.stop().await;
    }
    if bus.dropped() > 0 {
        tracing::warn!(worker_id, dropped_total = bus.dropped(), "bus messages dropped during this run");
    }
    tracing::info!(worker_id, pid = std::process::id(), "drained; exiting");
    drop(lock);
    Ok(())
}

fn on_bus_message(state: &AppState, msg: BusMsg) {
    match msg {
        BusMsg::Invalidate { .. } if state.config.test_ignore_invalidate => {}
        BusMsg::Invalidate { what, .. } if what == records::cache::INVALIDATE_COLLECTIONS => state.schema.invalidate(),
        BusMsg::Invalidate { what, .. } if what == settings::INVALIDATE_SETTINGS => {
            state.settings.invalidate();
            let state = state.clone();
            tokio::spawn(async move { ops::backups::sync_schedule(&state).await });
        }
        BusMsg::Publish { topic, payload, .. } if topic == jobs::BUS_WAKE_TOPIC => state.jobs.heard(&payload),
        BusMsg::Publish { topic, payload, .. } if topic == realtime::BUS_TOPIC => state.realtime.on_bus_publish(payload),
        BusMsg::Publish { origin, seq, topic, payload } if topic == realtime::parts::BUS_PART_TOPIC => state.realtime.on_bus_part(origin, seq, payload),
        BusMsg::Direct { from, topic, payload, .. } if from == crate::shared::bus::SUPERVISOR_ID && crate::shared::backup::protocol::is_restore_topic(&topic) => {
            ops::restore::on_direct(state, &topic, payload)
        }
        BusMsg::Publish { origin, topic, payload, .. } if realtime::custom::is_custom_topic(&topic) => state.realtime.on_custom(origin, &topic, payload),
        BusMsg::Direct { from, topic, payload, .. } if realtime::custom::is_custom_topic(&topic) => state.realtime.on_custom(from, &topic, payload),
        BusMsg::Direct { from, topic, payload, .. } if realtime::subscribe::is_realtime_direct(&topic, &payload) => {
            state.realtime.on_direct(state, from, &topic, payload)
        }
        other => tracing::debug!(worker_id = state.worker_id, msg = ?other, "bus message"),
    }
}

fn forced_exit(worker_id: u32, signal: &str) -> ! {
    tracing::warn!(worker_id, signal, "second signal during drain: exiting now");
    crate::shared::telemetry::flush();
    std::process::exit(FORCED_EXIT_CODE)
}

/// A plain thread, not a task: it must fire even if the runtime is wedged.
fn start_watchdog(after: Duration) {
    let spawned = std::thread::Builder::new().name("vb-drain-watchdog".into()).spawn(move || {
        std::thread::sleep(after);
        // Not `eprintln!`: it panics when stderr cannot be written (a full disk), and this
        // thread must reach the exit below.
        crate::shared::telemetry::flush();
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("vaultbase: drain did not complete within {after:?}; exiting\n").as_bytes());
        std::process::exit(FORCED_EXIT_CODE);
    });
    if let Err(e) = spawned {
        // The drain still has its own deadline; only the backstop for a wedged runtime is lost.
        tracing::error!(error = %e, "starting the drain watchdog failed");
    }
}

