//! The `vaultbase` binary: parse the command line, validate configuration, build the runtime
//! the role needs, run it, and map the result to an exit code (2 = bad usage or
//! configuration, 1 = failed start or forced stop, 0 = clean stop). No logic lives here.

use std::process::ExitCode;

use vaultbase::shared::cli::{self, Command};
use vaultbase::shared::config::{Config, Flags, Mode};
use vaultbase::shared::{bootstrap, telemetry, VERSION};
use vaultbase::{supervisor, worker};

const EXIT_USAGE: u8 = 2;
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultbase: {e}\n\n{}", cli::help_text());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match command {
        Command::Help => {
            print!("{}", cli::help_text());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("vaultbase {VERSION}");
            ExitCode::SUCCESS
        }
        Command::Serve(flags) => serve(&flags),
        Command::Cluster(flags) => cluster(&flags),
        Command::Worker { id, flags } => run_worker(id, &flags),
        Command::Superuser { action, flags } => superuser(action, &flags),
        Command::Migrate { action, flags } => migrate(action, &flags),
    };
    // Log lines still queued for the log thread are written before the process ends.
    telemetry::flush();
    code
}

fn config(mode: Mode, flags: &Flags) -> Result<Config, ExitCode> {
    match Config::from_env(mode, flags) {
        Ok(cfg) => {
            telemetry::init(cfg.log_level);
            Ok(cfg)
        }
        Err(e) => {
            eprintln!("vaultbase: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!(error = %e, "{what}");
    eprintln!("vaultbase: {e}");
    ExitCode::from(EXIT_FAILURE)
}

fn multi_thread_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn serve(flags: &Flags) -> ExitCode {
    let cfg = match config(Mode::Serve, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let prepared = match bootstrap::prepare(&cfg) {
        Ok(p) => p,
        Err(e) => return fail("start-up failed", &e),
    };
    if let Err(e) = worker::pb_migrations::apply_at_start(&prepared.data_dir, cfg.migrations_dir.as_deref()) {
        return fail("JS migrations failed", &e);
    }
    let runtime = match multi_thread_runtime(cpus()) {
        Ok(r) => r,
        Err(e) => return fail("building the runtime failed", &e),
    };
    match runtime.block_on(worker::run(cfg, worker::Role::Standalone(prepared))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("server failed", &e),
    }
}

fn cluster(flags: &Flags) -> ExitCode {
    let cfg = match config(Mode::Cluster, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The supervisor only waits on children, signals and a socket: one thread is plenty.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail("building the runtime failed", &e),
    };
    match runtime.block_on(supervisor::run(cfg)) {
        Ok(supervisor::Outcome::Drained) => ExitCode::SUCCESS,
        Ok(supervisor::Outcome::Forced) => ExitCode::from(EXIT_FAILURE),
        Err(e) => fail("cluster failed", &e),
    }
}

fn superuser(action: cli::SuperuserAction, flags: &Flags) -> ExitCode {
    let cfg = match Config::from_env(Mode::Serve, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultbase: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match worker::superuser_cli::run(&cfg, action) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vaultbase: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn migrate(action: cli::MigrateAction, flags: &Flags) -> ExitCode {
    let cfg = match config(Mode::Serve, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match worker::pb_migrations::cli::run(&cfg, action) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("migrate failed", &e),
    }
}

fn run_worker(id: u32, flags: &Flags) -> ExitCode {
    let cfg = match config(Mode::Worker, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Share the cores among the workers instead of giving each a thread per core.
    let threads = cpus().div_ceil(cfg.workers.max(1));
    let runtime = match multi_thread_runtime(threads) {
        Ok(r) => r,
        Err(e) => return fail("building the runtime failed", &e),
    };
    match runtime.block_on(worker::run(cfg, worker::Role::Clustered { id })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("worker failed", &e),
    }
}
