//! Role-agnostic building blocks used by the supervisor, the worker and one-shot CLI commands:
//! configuration, data-dir paths and lock, secrets and encryption at rest, the SQLite executor
//! and migrations, the bus protocol, start-up preparation, systemd notification and logging. Nothing here speaks HTTP
//! or knows which role it runs in beyond what its caller passes.

pub mod backup;
pub mod bootstrap;
pub mod bus;
pub mod cli;
pub mod cluster_status;
pub mod config;
pub mod data_dir;
pub mod litestream;
pub mod db;
pub mod encryption;
pub mod lock;
pub mod pb_params;
pub mod rlimit;
pub mod sdnotify;
pub mod secrets;
pub mod setup_link;
pub mod telemetry;

/// The crate version, reported by `--version`, `/_/health` and the bus handshake.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A clustered worker's exit code when its own configuration refuses the start (hook files
/// that fail to load, a failing `onBootstrap`): respawning it would only fail again, so a
/// supervisor that has not yet been ready stops the cluster with the worker's error instead
/// of crash-looping (EX_CONFIG in sysexits.h).
pub const EXIT_WORKER_REFUSED: u8 = 78;
