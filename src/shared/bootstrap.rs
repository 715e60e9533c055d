//! Start-up preparation done exactly once per data dir, by the process that will own it (the
//! supervisor, or `serve`), before any worker starts: create the data dir, take its lock, run
//! the system migrations (which also puts the file in WAL mode), check encrypted data against
//! the configured key, make sure the JWT secret exists, and check that the port is free.
//!
//! The port check is a plain bind without SO_REUSEPORT: it fails if anything listens there —
//! including another cluster's workers, which SO_REUSEPORT would otherwise let us join.

use std::net::SocketAddr;

use super::config::Config;
use super::data_dir::DataDir;
use super::db::{migrate, open};
use super::encryption::startup::{self as encryption_check, StartupCheckError};
use super::lock::{DirLock, LockError};
use super::secrets::{self, JwtSecret, SecretError};
use super::setup_link::{self, SetupLinkError};

/// A failed start-up step. `Display` is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("creating data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("migrating {path}: {source}")]
    Migrate { path: String, source: rusqlite::Error },
    #[error(transparent)]
    PbParams(#[from] super::pb_params::ParamsError),
    /// A PocketBase data dir with a `_collections` row vaultbase cannot read; nothing written.
    #[error("opening the PocketBase data dir {path}: {message}; nothing was changed — fix the row (or open the dir in PocketBase) and start again")]
    DamagedCollection { path: String, message: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Encryption(#[from] StartupCheckError),
    #[error(transparent)]
    SetupLink(#[from] SetupLinkError),
    #[error("port {addr} is already in use by another process; stop it or choose another with --http / VAULTBASE_PORT")]
    PortInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// What the owner of the data dir holds for the rest of its life.
pub struct Prepared {
    pub data_dir: DataDir,
    pub secret: JwtSecret,
    /// Dropping this releases the data dir.
    pub lock: DirLock,
}

/// Runs every step in order; the first failure stops start-up.
pub fn prepare(cfg: &Config) -> Result<Prepared, StartupError> {
    let data_dir = DataDir::create(&cfg.data_dir)
        .map_err(|source| StartupError::DataDir { path: cfg.data_dir.display().to_string(), source })?;
    let lock = DirLock::acquire(&data_dir.lock_path(), data_dir.root())?;

    let db_path = data_dir.db_path();
    let migrate_err = |source| StartupError::Migrate { path: db_path.display().to_string(), source };
    let mut conn = open::open(&db_path, open::Role::Writer).map_err(migrate_err)?;
    if let Some(message) = migrate::damaged_collection(&conn).map_err(migrate_err)? {
        return Err(StartupError::DamagedCollection { path: db_path.display().to_string(), message });
    }
    let applied = migrate::run(&mut conn).map_err(migrate_err)?;
    for name in &applied {
        tracing::info!(migration = name, "migration applied");
    }
    // Installed before anything in this process can read or write a record.
    super::encryption::install(cfg.encryption.clone());
    encryption_check::check(&conn, cfg.encryption.as_ref())?;
    super::pb_params::install_from_env(cfg.encryption_env.as_deref());
    super::pb_params::check(&conn)?;
    if setup_link::no_superuser(&conn).map_err(migrate_err)? {
        let token = setup_link::mint(&conn)?;
        let url = setup_url(cfg.listen_addr(), &token);
        // On stdout, plainly, where an operator starting the server by hand looks; the log
        // line says how to get a fresh link without printing the token into log files.
        println!(
            "No superuser exists yet. Open this link within {} minutes to create the first one:\n  {url}\n(or run: vaultbase superuser upsert EMAIL PASSWORD --dir {})",
            setup_link::SETUP_LINK_TTL.as_secs() / 60,
            data_dir.root().display()
        );
        tracing::warn!(
            data_dir = %data_dir.root().display(),
            "no superuser exists yet; a one-time setup link is printed on stdout (restart for a new one), or run: vaultbase superuser upsert EMAIL PASSWORD"
        );
    }
    drop(conn);
    clear_staged_uploads(&data_dir.uploads_path());
    super::backup::remove_leftovers(data_dir.root());
    // Counters a previous cluster left (perhaps mid-turn) would make the first writers wait
    // for a stalled turn; no worker runs yet, so a fresh zeroed file is safe.
    if let Err(e) = std::fs::remove_file(data_dir.write_turns_path()) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "removing the old write-turns file");
        }
    }
    // Rate-limit counters start empty with every start, as PocketBase's in-memory ones do.
    if let Err(e) = std::fs::remove_file(data_dir.rate_limits_path()) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "removing the old rate-limits file");
        }
    }

    let secret = secrets::load_or_create(cfg.jwt_secret.as_deref(), &data_dir.secret_path())?;
    check_port_free(cfg.listen_addr())?;
    Ok(Prepared { data_dir, secret, lock })
}

/// The admin UI address an operator can open on this machine: a wildcard listen address is
/// reached through loopback.
fn setup_url(addr: SocketAddr, token: &str) -> String {
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{}/_/#/setup/{token}", addr.port())
}

/// Removes uploads a previous run staged and never finished (it was killed mid-request). Only
/// the owner of the data dir does this, before any worker runs, so none can be in use. A
/// failure is logged, not fatal: a leftover temp file costs disk, not correctness.
fn clear_staged_uploads(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "removing a stale staged upload");
        }
    }
}

/// Fails if anything listens on `addr`. Port 0 always passes.
pub fn check_port_free(addr: SocketAddr) -> Result<(), StartupError> {
    if addr.port() == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind(addr) {
        Ok(l) => {
            drop(l);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(StartupError::PortInUse { addr }),
        Err(source) => Err(StartupError::Bind { addr, source }),
    }
}
