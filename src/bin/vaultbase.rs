//! The `vaultbase` binary: parse the command line, validate configuration, build the runtime
//! the role needs, run it, and map the result to an exit code (2 = bad usage or
//! configuration, 1 = failed start or forced stop, 0 = clean stop). No logic lives here.

use std::process::ExitCode;

use vaultbase::shared::cli::{self, Command};
use vaultbase::shared::config::{Config, Flags, Mode};
use vaultbase::shared::{bootstrap, encryption, telemetry, VERSION};
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
        Command::EncryptionRotate { flags, batch_rows } => encryption_rotate(&flags, batch_rows),
        Command::Logs(args) => logs(&args),
        Command::Backup { to, gzip, quiet, flags } => backup_command(&flags, quiet, |cfg| vaultbase::shared::backup::command::backup(cfg, &to, gzip)),
        Command::Restore { file, flags } => backup_command(&flags, false, |cfg| vaultbase::shared::backup::command::restore(cfg, &file)),
        Command::Migrate { action, flags } => migrate(action, &flags),
    };
    // Log lines still queued for the log thread are written before the process ends.
    telemetry::flush();
    code
}

fn config(mode: Mode, flags: &Flags) -> Result<Config, ExitCode> {
    match Config::from_env(mode, flags) {
        Ok(cfg) => {
            // Workers keep application log lines (`$app.logger()`) in `_logs` as well.
            let app_logs = matches!(mode, Mode::Serve | Mode::Worker).then(worker::ops::logs::layer::filtered);
            telemetry::init_with(cfg.log_level, app_logs);
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

fn encryption_rotate(flags: &Flags, batch_rows: Option<usize>) -> ExitCode {
    let cfg = match Config::from_env(Mode::Serve, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultbase: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(ring) = cfg.encryption.as_ref() else {
        eprintln!("vaultbase: {}", encryption::rotate::RotateError::NoNewKey);
        return ExitCode::from(EXIT_USAGE);
    };
    match encryption::rotate::run(&cfg.data_dir, ring, batch_rows.unwrap_or(encryption::rotate::ROTATE_BATCH_ROWS)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vaultbase: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn logs(args: &cli::LogsArgs) -> ExitCode {
    use std::io::Write;
    let cfg = match Config::from_env(Mode::Serve, &args.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultbase: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let dir = worker::ops::logs::archive_dir(&cfg.data_dir);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // A closed pipe (`| head`) ends the output, not the process with a panic.
    let found = worker::ops::logs::archive::search(&dir, args.since.as_deref(), args.until.as_deref(), &args.filter, |line| {
        let _ = writeln!(out, "{line}");
    });
    let _ = out.flush();
    match found {
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ (worker::ops::logs::archive::SearchError::BadFilter(_) | worker::ops::logs::archive::SearchError::BadTime { .. })) => {
            eprintln!("vaultbase: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("vaultbase: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `backup` / `restore`: 0 done, 1 failed, 2 bad usage (as the original's backup script).
fn backup_command(
    flags: &Flags,
    quiet: bool,
    run: impl FnOnce(&Config) -> Result<String, vaultbase::shared::backup::command::CommandError>,
) -> ExitCode {
    let cfg = match Config::from_env(Mode::Serve, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultbase: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&cfg) {
        Ok(message) => {
            if !quiet {
                println!("{message}");
            }
            ExitCode::SUCCESS
        }
        Err(e @ vaultbase::shared::backup::command::CommandError::Usage(_)) => {
            eprintln!("vaultbase: {e}");
            ExitCode::from(EXIT_USAGE)
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
        Err(e @ worker::WorkerError::Hooks(_)) => {
            fail("worker refused to start", &e);
            ExitCode::from(vaultbase::shared::EXIT_WORKER_REFUSED)
        }
        Err(e) => fail("worker failed", &e),
    }
}
