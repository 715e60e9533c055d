//! Starting a worker: re-execute our own binary with the hidden `worker --id N` role, never
//! `fork()` (this process has a tokio runtime, and a forked child would inherit its threads'
//! locks in whatever state they were in).
//!
//! Linux: exec `/proc/self/exe`, which names the inode we are running even if the file on disk
//! was replaced by an upgrade; the bus handshake also compares versions. Each worker gets its
//! own process group, so a terminal's Ctrl-C reaches only the supervisor, which then drains
//! the workers in order. The validated configuration travels as environment variables, so a
//! worker sees exactly what the supervisor validated, flags included.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::shared::config::Config;
use crate::shared::data_dir::DataDir;

fn own_executable() -> std::io::Result<PathBuf> {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe);
    }
    std::env::current_exe()
}

/// Spawns worker `id`. Its stdout and stderr are ours, so its log lines join our stream.
pub fn spawn_worker(id: u32, cfg: &Config, data_dir: &DataDir) -> std::io::Result<Child> {
    let mut cmd = Command::new(own_executable()?);
    cmd.arg("worker")
        .arg("--id")
        .arg(id.to_string())
        .env("VAULTBASE_HOST", cfg.host.to_string())
        .env("VAULTBASE_PORT", cfg.port.to_string())
        .env("VAULTBASE_DATA_DIR", data_dir.root())
        .env("VAULTBASE_PUBLIC_DIR", &cfg.public_dir)
        .env("VAULTBASE_INDEX_FALLBACK", cfg.index_fallback.to_string())
        .env("VAULTBASE_ORIGINS", cfg.origins.join(","))
        .env("VAULTBASE_ENCRYPTION_ENV", cfg.encryption_env.as_deref().unwrap_or_default())
        .env("VAULTBASE_DRAIN_TIMEOUT", cfg.drain_timeout.as_secs().to_string())
        .env("VAULTBASE_WORKERS", cfg.workers.to_string())
        // The hook flags reach workers as their variables (--hooksDir, --hooksWatch, --hooksPool).
        .env("VAULTBASE_HOOKS_WATCH", if cfg.hooks.watch { "1" } else { "0" })
        .env("VAULTBASE_HOOKS_POOL", cfg.hooks.pool.to_string())
        // Only the main process talks to systemd (NotifyAccess=main).
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &cfg.hooks.dir {
        cmd.env("VAULTBASE_HOOKS_DIR", dir);
    }
    cmd.spawn()
}

/// Runs `vaultbase migrate up` for the data dir and waits for it: the JS migrations
/// (`pb_migrations`) run in a child because they need the worker's code, which the supervisor
/// must not link against. The child accepts our data-dir lock because we are its parent.
pub async fn run_js_migrations(cfg: &Config, data_dir: &DataDir) -> std::io::Result<std::process::ExitStatus> {
    let mut cmd = Command::new(own_executable()?);
    cmd.arg("migrate").arg("up").arg("--dir").arg(data_dir.root());
    if let Some(dir) = &cfg.migrations_dir {
        cmd.arg("--migrationsDir").arg(dir);
    }
    cmd.env_remove("NOTIFY_SOCKET").stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit()).kill_on_drop(true);
    cmd.status().await
}
