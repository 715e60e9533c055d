//! Configuration: raw values from the environment and flags → validated → typed [`Config`].
//!
//! Precedence, lowest first: the `DEFAULT_*` constants, `VAULTBASE_*` environment variables,
//! then command-line flags (`--http`, `--dir`). Every invalid value is a [`ConfigError`] naming
//! the variable and what it accepts; the binary turns it into exit code 2. This module reads
//! the environment through a caller-supplied lookup so that tests never touch process state.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default TCP port, as the TypeScript original (PocketBase uses 8090).
pub const DEFAULT_PORT: u16 = 8091;
/// Default listen address: every interface, as a VPS deployment expects.
pub const DEFAULT_HOST: &str = "0.0.0.0";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./vaultbase_data";
/// How long a drain may take before what is left is killed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for `VAULTBASE_DRAIN_TIMEOUT`: beyond an hour a stop is a hang, not a drain.
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// Upper bound for `VAULTBASE_WORKERS`; more processes than this on one SQLite file only contend.
pub const MAX_WORKERS: usize = 256;

/// How long a realtime stream may go without delivering anything (PocketBase: 5 minutes).
pub const DEFAULT_REALTIME_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long an SSE stream or a WebSocket lives at most (PocketBase: 30 minutes for SSE); the
/// client reconnects.
pub const DEFAULT_REALTIME_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long one read query may run before it is interrupted: generous to any legitimate query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for `VAULTBASE_QUERY_TIMEOUT_MS`: an hour-long query is a hang, not a query.
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(3600);
/// A client must send its first complete request head within this time (slowloris protection,
/// HTTP/1 and HTTP/2 alike).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for `VAULTBASE_HEADER_TIMEOUT_MS`.
pub const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound for `VAULTBASE_LOG_ARCHIVE_DAYS` (a century).
pub const MAX_LOG_ARCHIVE_DAYS: u32 = 36_500;
/// Upper bound for `VAULTBASE_MAX_CONNECTIONS`.
pub const MAX_CONNECTIONS_LIMIT: usize = 10_000_000;

/// One environment variable the binary reads, for `--help` and the README.
pub struct EnvVar {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every environment variable, with its default. `--help` prints this table.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar { name: "VAULTBASE_HOST", default: DEFAULT_HOST, help: "IP address to listen on (flag --http HOST:PORT)" },
    EnvVar { name: "VAULTBASE_PORT", default: "8091", help: "TCP port, 1-65535 (0 = any free port, serve only)" },
    EnvVar { name: "VAULTBASE_DATA_DIR", default: DEFAULT_DATA_DIR, help: "data directory, created 0700 if missing (flag --dir)" },
    EnvVar { name: "VAULTBASE_PUBLIC_DIR", default: "pb_public beside the data dir", help: "static files served at / (flag --publicDir)" },
    EnvVar { name: "VAULTBASE_INDEX_FALLBACK", default: "true", help: "serve index.html for missing public paths, for SPAs (flag --indexFallback)" },
    EnvVar { name: "VAULTBASE_ORIGINS", default: "*", help: "CORS allowed origins, comma-separated (flag --origins)" },
    EnvVar { name: "VAULTBASE_ENCRYPTION_ENV", default: "unset", help: "name of the variable holding PocketBase's 32-byte settings key (flag --encryptionEnv)" },
    EnvVar { name: "VAULTBASE_WORKERS", default: "number of CPUs", help: "worker processes in cluster mode, 1-256" },
    EnvVar { name: "VAULTBASE_DRAIN_TIMEOUT", default: "30", help: "seconds a drain may take before workers are killed, 1-3600" },
    EnvVar { name: "VAULTBASE_JWT_SECRET", default: "generated into <data>/.secret", help: "secret that signs auth tokens; at least 32 characters" },
    EnvVar {
        name: "VAULTBASE_ENCRYPTION_KEY",
        default: "unset",
        help: "key for encrypted fields and settings secrets: base64 or 64 hex digits of 32 bytes, or 32 characters",
    },
    EnvVar {
        name: "VAULTBASE_ENCRYPTION_NEW_KEY",
        default: "unset",
        help: "during a key rotation: the new key (it encrypts; the old key still decrypts)",
    },
    EnvVar {
        name: "VAULTBASE_MIGRATIONS_DIR",
        default: "<data dir>/../pb_migrations",
        help: "JS migrations (pb_migrations/*.js), applied once at start (flag --migrationsDir)",
    },
    EnvVar { name: "VAULTBASE_LOG_LEVEL", default: "info", help: "error, warn, info, debug or trace" },
    EnvVar {
        name: "VAULTBASE_QUERY_TIMEOUT_MS",
        default: "30000",
        help: "ms one read query may run before it is interrupted (400), 1-3600000; writes have no deadline",
    },
    EnvVar {
        name: "VAULTBASE_MAX_CONNECTIONS",
        default: "80% of the open-file limit",
        help: "open connections per worker; past it new ones wait in the kernel's backlog",
    },
    EnvVar {
        name: "VAULTBASE_LOG_ARCHIVE_DAYS",
        default: "0",
        help: "days the JSONL log archive (<data>/logs/) is kept, 0-36500; 0 keeps it until an operator removes it",
    },
    EnvVar { name: "VAULTBASE_HEADER_TIMEOUT_MS", default: "30000", help: "ms a new connection has to send its first request head, 1-300000" },
    EnvVar { name: "VAULTBASE_HOOKS_DIR", default: "<data dir>/../pb_hooks", help: "directory of the pb_hooks/*.pb.js files (flag --hooksDir)" },
    EnvVar { name: "VAULTBASE_HOOKS_WATCH", default: "1", help: "1 reloads the hooks when their files change (flag --hooksWatch)" },
    EnvVar { name: "VAULTBASE_HOOKS_POOL", default: "15", help: "JS threads started per worker for hooks, 1-1024 (flag --hooksPool)" },
    EnvVar { name: "VAULTBASE_HOOKS_TIMEOUT", default: "30", help: "seconds one hook or route may run before it is interrupted (500), 1-3600" },
    EnvVar { name: "VAULTBASE_HOOKS_MEMORY", default: "64", help: "MiB of memory per JS runtime, 8-4096" },
    EnvVar { name: "VAULTBASE_HOOKS_ALLOW_EXEC", default: "0", help: "1 lets hooks run programs with $os.cmd" },
    EnvVar {
        name: "VAULTBASE_JOBS_LEASE_MS",
        default: "30000",
        help: "ms a worker holds a claimed background job before another may retry it (renewed while it runs), 1-3600000",
    },
    EnvVar {
        name: "VAULTBASE_WEBHOOKS_ALLOW_PRIVATE",
        default: "0",
        help: "1 lets webhooks deliver to loopback, private, link-local and metadata addresses (refused by default)",
    },
    EnvVar { name: "VAULTBASE_TEST_ROUTES", default: "0", help: "1 enables the /_/test/ routes and the test write observer (for the test suite only)" },
    EnvVar {
        name: "VAULTBASE_TEST_IGNORE_INVALIDATE",
        default: "0",
        help: "1 makes workers ignore bus cache invalidations (for the test suite only)",
    },
    EnvVar {
        name: "VAULTBASE_TEST_PAUSE_AFTER_STORE",
        default: "unset",
        help: "PATH holds a write after storing its uploads until PATH exists (for the test suite only)",
    },
    EnvVar {
        name: "VAULTBASE_TEST_ROTATE_PAUSE",
        default: "unset",
        help: "PATH holds `encryption rotate` after its first batch until PATH exists (for the test suite only)",
    },
    EnvVar {
        name: "VAULTBASE_TEST_THUMB_WAITERS",
        default: "unset",
        help: "N holds a thumbnail generation until N requests wait for it (for the test suite only)",
    },
    EnvVar {
        name: "VAULTBASE_REALTIME_IDLE_TIMEOUT_MS",
        default: "300000",
        help: "ms a realtime stream may stay idle, 1-300000 (for the test suite only)",
    },
    EnvVar {
        name: "VAULTBASE_REALTIME_MAX_LIFETIME_MS",
        default: "1800000",
        help: "ms an SSE stream or WebSocket lives at most, 1-1800000 (for the test suite only)",
    },
    EnvVar { name: "VAULTBASE_TEST_CRON_SECOND_TICKS", default: "0", help: "1 makes every second a cron slot (for the test suite only)" },
    EnvVar { name: "VAULTBASE_LITESTREAM_URL", default: "unset", help: "s3://BUCKET[/PREFIX] turns on managed Litestream replication" },
    EnvVar { name: "VAULTBASE_LITESTREAM_ENDPOINT", default: "AWS_ENDPOINT_URL_S3, else AWS", help: "http(s):// endpoint of an S3-compatible store" },
    EnvVar { name: "VAULTBASE_LITESTREAM_SYNC_INTERVAL_MS", default: "1000", help: "ms between Litestream's uploads, 1-3600000" },
    EnvVar { name: "VAULTBASE_LITESTREAM_BIN", default: "litestream", help: "the Litestream executable (name on PATH or path)" },
];

/// Minimum length of a configured JWT secret: HS256 wants at least 256 bits of key.
pub const MIN_JWT_SECRET_CHARS: usize = 32;

/// A value that cannot be used. The `Display` text names the variable and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub accepts: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: expected {}", self.variable, self.value, self.accepts)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(variable: &str, value: &str, accepts: &str) -> ConfigError {
    ConfigError { variable: variable.to_owned(), value: value.to_owned(), accepts: accepts.to_owned() }
}

/// How the process runs; decides which values are legal (port 0 is only for one process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Cluster,
    /// A worker spawned by the supervisor; its configuration was validated there.
    Worker,
}

/// Log verbosity, parsed from `VAULTBASE_LOG_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// The public dir and index fallback: flag, else variable, else PocketBase's defaults
/// (`pb_public` beside the data dir; fallback on).
fn public_files(flags: &Flags, data_dir: &std::path::Path, env: &impl Fn(&str) -> Option<String>) -> Result<(PathBuf, bool), ConfigError> {
    let public_dir = match flags.public_dir.clone().or_else(|| env("VAULTBASE_PUBLIC_DIR")) {
        Some(d) if d.is_empty() => return Err(invalid("--publicDir", &d, "a directory path")),
        Some(d) => PathBuf::from(d),
        None => data_dir.parent().unwrap_or(std::path::Path::new(".")).join("pb_public"),
    };
    let fallback = match flags.index_fallback.clone().or_else(|| env("VAULTBASE_INDEX_FALLBACK")).as_deref() {
        None | Some("1") | Some("true") => true,
        Some("0") | Some("false") => false,
        Some(other) => return Err(invalid("--indexFallback", other, "true or false")),
    };
    Ok((public_dir, fallback))
}

/// Flags given on the command line; they override the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--http HOST:PORT`
    pub http: Option<String>,
    /// `--dir DIR`
    pub dir: Option<String>,
    /// `--migrationsDir DIR` (PocketBase's spelling)
    pub migrations_dir: Option<String>,
    /// `--hooksDir`, `--hooksWatch`, `--hooksPool` (PocketBase's spellings).
    pub hooks: HookFlags,
    /// `--publicDir DIR` (PocketBase's flag)
    pub public_dir: Option<String>,
    /// `--indexFallback[=BOOL]` (PocketBase's flag)
    pub index_fallback: Option<String>,
    /// `--origins A,B` (PocketBase's flag: CORS allowed origins)
    pub origins: Option<String>,
    /// `--encryptionEnv NAME` (PocketBase's flag: the variable holding the settings key)
    pub encryption_env: Option<String>,
}

/// PocketBase's hook flags, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookFlags {
    pub dir: Option<String>,
    pub watch: Option<String>,
    pub pool: Option<String>,
}

/// Server-side JavaScript settings (see `worker::hooks`).
#[derive(Debug, Clone)]
pub struct HooksSettings {
    /// None: `<data dir>/../pb_hooks`, as PocketBase.
    pub dir: Option<PathBuf>,
    pub watch: bool,
    pub pool: usize,
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub allow_exec: bool,
}

/// Default deadline of one hook dispatch.
pub const DEFAULT_HOOKS_TIMEOUT: Duration = Duration::from_secs(30);
/// Default memory limit of one JS runtime.
pub const DEFAULT_HOOKS_MEMORY_MIB: usize = 64;
/// PocketBase's default `--hooksPool`.
pub const DEFAULT_HOOKS_POOL: usize = 15;
/// A background job's lease, unless `VAULTBASE_JOBS_LEASE_MS` says otherwise, and its ceiling.
pub const DEFAULT_JOBS_LEASE: Duration = Duration::from_secs(30);
pub const MAX_JOBS_LEASE: Duration = Duration::from_secs(3600);

/// The validated configuration every role runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Static files served at `/` (PocketBase's `pb_public`; see `worker::api::public`).
    pub public_dir: PathBuf,
    /// Whether a missing public path answers `index.html` (PocketBase's `--indexFallback`).
    pub index_fallback: bool,
    /// CORS allowed origins (PocketBase's `--origins`; `*` = any).
    pub origins: Vec<String>,
    /// The environment variable holding PocketBase's settings key (`--encryptionEnv`); its
    /// value was checked to be 32 bytes. See `shared::pb_params`.
    pub encryption_env: Option<String>,
    pub workers: usize,
    pub drain_timeout: Duration,
    pub jwt_secret: Option<String>,
    pub log_level: LogLevel,
    pub test_routes: bool,
    /// The test write observer (`VAULTBASE_TEST_OBSERVER=1`, see `app::observe::Recorder`):
    /// apart from the test routes so that benchmarks using those routes do not pay for a file
    /// append per write event.
    pub test_observer: bool,
    /// A realtime stream (SSE or WS) that delivered nothing for this long is closed.
    pub realtime_idle_timeout: Duration,
    /// An SSE stream or WebSocket is closed after this long in any case.
    pub realtime_max_lifetime: Duration,
    /// A read query still running after this long is interrupted and answered 400.
    pub query_timeout: Duration,
    /// Open connections per worker; `None` derives it from the open-file limit at start.
    pub max_connections: Option<usize>,
    /// A new connection must send its first complete request head within this time.
    pub header_read_timeout: Duration,
    /// Days of the JSONL log archive kept by the logs retention job; 0 keeps every file.
    pub log_archive_days: u32,
    /// Test-only: bus `Invalidate` messages are ignored, so only the version checks keep
    /// caches fresh (the tests prove those alone suffice).
    pub test_ignore_invalidate: bool,
    /// The keys of encrypted fields and settings secrets; `None` without
    /// `VAULTBASE_ENCRYPTION_KEY` (and `VAULTBASE_ENCRYPTION_NEW_KEY`).
    pub encryption: Option<crate::shared::encryption::Keyring>,
    /// `pb_migrations` JS files; `None` means PocketBase's default, `<data dir>/../pb_migrations`.
    pub migrations_dir: Option<PathBuf>,
    /// pb_hooks: dir, watch, pool and limits.
    pub hooks: HooksSettings,
    /// Test-only: the cron scheduler ticks every second and treats each second as a slot
    /// (`VAULTBASE_TEST_CRON_SECOND_TICKS=1`), so cluster tests see many slots quickly.
    pub test_cron_second_ticks: bool,
    /// Managed Litestream replication (`VAULTBASE_LITESTREAM_URL` and friends); None = off.
    pub litestream: Option<crate::shared::litestream::Settings>,
    /// How long a claimed background job's lease lasts before another worker may take it over
    /// (`VAULTBASE_JOBS_LEASE_MS`; shortened by the fault tests). Renewed while the job runs.
    pub jobs_lease: Duration,
    /// `VAULTBASE_WEBHOOKS_ALLOW_PRIVATE=1`: webhook deliveries may go to loopback, private,
    /// link-local and metadata addresses (refused by default).
    pub webhooks_allow_private: bool,
}

impl Config {
    /// Reads the process environment and `flags`.
    pub fn from_env(mode: Mode, flags: &Flags) -> Result<Config, ConfigError> {
        Config::load(mode, flags, |name| std::env::var(name).ok())
    }

    /// Builds a configuration from `lookup` (an environment) and `flags`.
    pub fn load(mode: Mode, flags: &Flags, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = |name: &str| lookup(name).filter(|v| !v.is_empty());

        let mut host = match env("VAULTBASE_HOST") {
            Some(v) => parse_host("VAULTBASE_HOST", &v)?,
            None => parse_host("VAULTBASE_HOST", DEFAULT_HOST)?,
        };
        let mut port = match env("VAULTBASE_PORT") {
            Some(v) => parse_port("VAULTBASE_PORT", &v)?,
            None => DEFAULT_PORT,
        };
        if let Some(http) = &flags.http {
            let (h, p) = parse_http_flag(http)?;
            host = h;
            port = p;
        }

        let data_dir = match (&flags.dir, env("VAULTBASE_DATA_DIR")) {
            (Some(d), _) if d.is_empty() => return Err(invalid("--dir", d, "a directory path")),
            (Some(d), _) => PathBuf::from(d),
            (None, Some(d)) => PathBuf::from(d),
            (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
        };

        let (public_dir, index_fallback) = public_files(flags, &data_dir, &env)?;
        let origins: Vec<String> = flags
            .origins
            .clone()
            .or_else(|| env("VAULTBASE_ORIGINS"))
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        let encryption_env = match flags.encryption_env.clone().or_else(|| env("VAULTBASE_ENCRYPTION_ENV")) {
            None => None,
            Some(var) => match lookup(&var) {
                Some(k) if k.len() == crate::shared::pb_params::KEY_BYTES => Some(var),
                // The value is secret: name the variable, never echo it.
                _ => return Err(invalid("--encryptionEnv", &var, "the name of a set environment variable holding a 32-byte key")),
            },
        };

        let workers = match env("VAULTBASE_WORKERS") {
            Some(v) => parse_workers(&v)?,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(MAX_WORKERS),
        };

        let drain_timeout = match env("VAULTBASE_DRAIN_TIMEOUT") {
            Some(v) => parse_drain_timeout(&v)?,
            None => DEFAULT_DRAIN_TIMEOUT,
        };

        let jwt_secret = match lookup("VAULTBASE_JWT_SECRET") {
            None => None,
            Some(s) if s.chars().count() >= MIN_JWT_SECRET_CHARS => Some(s),
            // The value itself is secret: never echo it back.
            Some(_) => return Err(invalid("VAULTBASE_JWT_SECRET", "<hidden>", "at least 32 characters")),
        };

        let encryption = parse_encryption_keys(&env)?;

        let log_level = match env("VAULTBASE_LOG_LEVEL") {
            Some(v) => parse_log_level(&v)?,
            None => LogLevel::Info,
        };

        let test_routes = match env("VAULTBASE_TEST_ROUTES").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(invalid("VAULTBASE_TEST_ROUTES", other, "0 or 1")),
        };
        let test_observer = match env("VAULTBASE_TEST_OBSERVER").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(invalid("VAULTBASE_TEST_OBSERVER", other, "0 or 1")),
        };

        // Only ever shortened, by tests that watch a stream end: PocketBase's values are the
        // longest a client expects a quiet stream to stay open.
        let realtime_idle_timeout = match env("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS") {
            Some(v) => parse_millis("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", &v, DEFAULT_REALTIME_IDLE_TIMEOUT)?,
            None => DEFAULT_REALTIME_IDLE_TIMEOUT,
        };
        let realtime_max_lifetime = match env("VAULTBASE_REALTIME_MAX_LIFETIME_MS") {
            Some(v) => parse_millis("VAULTBASE_REALTIME_MAX_LIFETIME_MS", &v, DEFAULT_REALTIME_MAX_LIFETIME)?,
            None => DEFAULT_REALTIME_MAX_LIFETIME,
        };

        let query_timeout = match env("VAULTBASE_QUERY_TIMEOUT_MS") {
            Some(v) => parse_millis("VAULTBASE_QUERY_TIMEOUT_MS", &v, MAX_QUERY_TIMEOUT)?,
            None => DEFAULT_QUERY_TIMEOUT,
        };
        let max_connections = match env("VAULTBASE_MAX_CONNECTIONS") {
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_CONNECTIONS_LIMIT).contains(&n) => Some(n),
                _ => return Err(invalid("VAULTBASE_MAX_CONNECTIONS", &v, "a whole number of connections from 1 to 10000000")),
            },
            None => None,
        };
        let header_read_timeout = match env("VAULTBASE_HEADER_TIMEOUT_MS") {
            Some(v) => parse_millis("VAULTBASE_HEADER_TIMEOUT_MS", &v, MAX_HEADER_READ_TIMEOUT)?,
            None => DEFAULT_HEADER_READ_TIMEOUT,
        };
        let log_archive_days = match env("VAULTBASE_LOG_ARCHIVE_DAYS") {
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n <= MAX_LOG_ARCHIVE_DAYS => n,
                _ => return Err(invalid("VAULTBASE_LOG_ARCHIVE_DAYS", &v, "a whole number of days from 0 to 36500")),
            },
            None => 0,
        };
        let test_ignore_invalidate = match env("VAULTBASE_TEST_IGNORE_INVALIDATE").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(invalid("VAULTBASE_TEST_IGNORE_INVALIDATE", other, "0 or 1")),
        };
        let litestream = crate::shared::litestream::Settings::from_env(env)?;
        let test_cron_second_ticks = match env("VAULTBASE_TEST_CRON_SECOND_TICKS").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(invalid("VAULTBASE_TEST_CRON_SECOND_TICKS", other, "0 or 1")),
        };

        let migrations_dir = match (&flags.migrations_dir, env("VAULTBASE_MIGRATIONS_DIR")) {
            (Some(d), _) if d.is_empty() => return Err(invalid("--migrationsDir", d, "a directory path")),
            (Some(d), _) => Some(PathBuf::from(d)),
            (None, d) => d.map(PathBuf::from),
        };
        let hooks = hooks_settings(&env, &flags.hooks)?;
        let jobs_lease = match env("VAULTBASE_JOBS_LEASE_MS") {
            Some(v) => parse_millis("VAULTBASE_JOBS_LEASE_MS", &v, MAX_JOBS_LEASE)?,
            None => DEFAULT_JOBS_LEASE,
        };
        let webhooks_allow_private = match env("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(invalid("VAULTBASE_WEBHOOKS_ALLOW_PRIVATE", other, "0 or 1")),
        };

        if mode == Mode::Cluster && port == 0 {
            return Err(invalid(
                "VAULTBASE_PORT",
                "0",
                "a concrete port in cluster mode (with port 0 every worker would get a different port)",
            ));
        }

        Ok(Config {
            host,
            port,
            data_dir,
            public_dir,
            index_fallback,
            origins,
            encryption_env,
            workers,
            drain_timeout,
            jwt_secret,
            log_level,
            test_routes,
            test_observer,
            realtime_idle_timeout,
            realtime_max_lifetime,
            query_timeout,
            max_connections,
            header_read_timeout,
            log_archive_days,
            test_ignore_invalidate,
            encryption,
            migrations_dir,
            hooks,
            test_cron_second_ticks,
            litestream,
            jobs_lease,
            webhooks_allow_private,
        })
    }

    /// The socket address to bind.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// The encryption key ring from its two variables. The values are secret: never echoed back.
fn parse_encryption_keys(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<crate::shared::encryption::Keyring>, ConfigError> {
    use crate::shared::encryption::{Key, Keyring, KEY_FORMATS};
    let key = |name: &str| -> Result<Option<Key>, ConfigError> {
        match env(name) {
            None => Ok(None),
            Some(v) => Key::parse(&v).map(Some).ok_or_else(|| invalid(name, "<hidden>", KEY_FORMATS)),
        }
    };
    let current = key("VAULTBASE_ENCRYPTION_KEY")?;
    let next = key("VAULTBASE_ENCRYPTION_NEW_KEY")?;
    if next.is_some() && current.is_none() {
        return Err(invalid("VAULTBASE_ENCRYPTION_NEW_KEY", "<hidden>", "VAULTBASE_ENCRYPTION_KEY to be set too (the key the data is under now)"));
    }
    Ok(Keyring::new(current, next))
}

fn parse_bool(variable: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "1" | "true" | "t" | "TRUE" | "True" => Ok(true),
        "0" | "false" | "f" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(variable, value, "true or false (1 or 0)")),
    }
}

fn hooks_settings(env: &impl Fn(&str) -> Option<String>, flags: &HookFlags) -> Result<HooksSettings, ConfigError> {
    let dir = match (&flags.dir, env("VAULTBASE_HOOKS_DIR")) {
        (Some(d), _) if d.is_empty() => return Err(invalid("--hooksDir", d, "a directory path")),
        (Some(d), _) => Some(PathBuf::from(d)),
        (None, d) => d.map(PathBuf::from),
    };
    let watch = match (&flags.watch, env("VAULTBASE_HOOKS_WATCH")) {
        (Some(v), _) => parse_bool("--hooksWatch", v)?,
        (None, Some(v)) => parse_bool("VAULTBASE_HOOKS_WATCH", &v)?,
        (None, None) => true,
    };
    let pool = match (&flags.pool, env("VAULTBASE_HOOKS_POOL")) {
        (Some(v), _) => Some(("--hooksPool", v.clone())),
        (None, Some(v)) => Some(("VAULTBASE_HOOKS_POOL", v)),
        (None, None) => None,
    };
    let pool = match pool {
        None => DEFAULT_HOOKS_POOL,
        Some((name, v)) => match v.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => n,
            _ => return Err(invalid(name, &v, "a whole number of JS threads from 1 to 1024")),
        },
    };
    let timeout = match env("VAULTBASE_HOOKS_TIMEOUT") {
        None => DEFAULT_HOOKS_TIMEOUT,
        Some(v) => match v.strip_suffix('s').unwrap_or(&v).parse::<u64>() {
            Ok(n) if (1..=3600).contains(&n) => Duration::from_secs(n),
            _ => return Err(invalid("VAULTBASE_HOOKS_TIMEOUT", &v, "whole seconds from 1 to 3600")),
        },
    };
    let memory_bytes = match env("VAULTBASE_HOOKS_MEMORY") {
        None => DEFAULT_HOOKS_MEMORY_MIB << 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (8..=4096).contains(&n) => n << 20,
            _ => return Err(invalid("VAULTBASE_HOOKS_MEMORY", &v, "whole MiB from 8 to 4096")),
        },
    };
    let allow_exec = match env("VAULTBASE_HOOKS_ALLOW_EXEC") {
        None => false,
        Some(v) => parse_bool("VAULTBASE_HOOKS_ALLOW_EXEC", &v)?,
    };
    Ok(HooksSettings { dir, watch, pool, timeout, memory_bytes, allow_exec })
}

fn parse_host(variable: &str, value: &str) -> Result<IpAddr, ConfigError> {
    let trimmed = value.trim_start_matches('[').trim_end_matches(']');
    if value == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    trimmed
        .parse()
        .map_err(|_| invalid(variable, value, "an IP address such as 0.0.0.0, 127.0.0.1 or ::"))
}

fn parse_port(variable: &str, value: &str) -> Result<u16, ConfigError> {
    value.parse::<u16>().map_err(|_| invalid(variable, value, "a port number from 0 to 65535"))
}

fn parse_http_flag(value: &str) -> Result<(IpAddr, u16), ConfigError> {
    let bad = || invalid("--http", value, "HOST:PORT such as 127.0.0.1:8091 or [::1]:8091");
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    let host = parse_host("--http", host).map_err(|_| bad())?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok((host, port))
}

fn parse_workers(value: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(invalid("VAULTBASE_WORKERS", value, "a whole number of worker processes from 1 to 256")),
    }
}

fn parse_drain_timeout(value: &str) -> Result<Duration, ConfigError> {
    let digits = value.strip_suffix('s').unwrap_or(value);
    match digits.parse::<u64>() {
        Ok(n) if n >= 1 && Duration::from_secs(n) <= MAX_DRAIN_TIMEOUT => Ok(Duration::from_secs(n)),
        _ => Err(invalid("VAULTBASE_DRAIN_TIMEOUT", value, "whole seconds from 1 to 3600, e.g. 30")),
    }
}

/// Whole milliseconds from 1 to `max`.
fn parse_millis(variable: &str, value: &str, max: Duration) -> Result<Duration, ConfigError> {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    match value.parse::<u64>() {
        Ok(n) if (1..=max_ms).contains(&n) => Ok(Duration::from_millis(n)),
        _ => Err(invalid(variable, value, &format!("whole milliseconds from 1 to {max_ms}"))),
    }
}

fn parse_log_level(value: &str) -> Result<LogLevel, ConfigError> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "error" => LogLevel::Error,
        "warn" | "warning" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return Err(invalid("VAULTBASE_LOG_LEVEL", value, "one of error, warn, info, debug, trace")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(mode: Mode, flags: &Flags, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load(mode, flags, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cfg = load(Mode::Serve, &Flags::default(), &[]).expect("defaults are valid");
        assert_eq!(cfg.port, 8091);
        assert_eq!(cfg.host.to_string(), "0.0.0.0");
        assert_eq!(cfg.data_dir, PathBuf::from("./vaultbase_data"));
        assert_eq!(cfg.drain_timeout, Duration::from_secs(30));
        assert_eq!(cfg.realtime_idle_timeout, Duration::from_secs(300));
        assert_eq!(cfg.realtime_max_lifetime, Duration::from_secs(1800));
        assert_eq!(cfg.query_timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_connections, None);
        assert_eq!(cfg.header_read_timeout, Duration::from_secs(30));
        assert!(!cfg.test_ignore_invalidate);
        assert!(cfg.workers >= 1);
    }

    #[test]
    fn flags_override_environment() {
        let flags = Flags { http: Some("127.0.0.1:9000".into()), dir: Some("/tmp/x".into()), ..Default::default() };
        let cfg = load(Mode::Serve, &flags, &[("VAULTBASE_PORT", "1234"), ("VAULTBASE_DATA_DIR", "/tmp/y")])
            .expect("valid");
        assert_eq!(cfg.port, 9000);
        assert_eq!(cfg.host.to_string(), "127.0.0.1");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn ipv6_http_flag_is_accepted() {
        let flags = Flags { http: Some("[::1]:8091".into()), dir: None, ..Default::default() };
        let cfg = load(Mode::Serve, &flags, &[]).expect("valid");
        assert_eq!(cfg.host.to_string(), "::1");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: &[(Mode, &[(&str, &str)], &str)] = &[
            (Mode::Serve, &[("VAULTBASE_PORT", "abc")], "VAULTBASE_PORT"),
            (Mode::Serve, &[("VAULTBASE_PORT", "70000")], "VAULTBASE_PORT"),
            (Mode::Cluster, &[("VAULTBASE_WORKERS", "0")], "VAULTBASE_WORKERS"),
            (Mode::Cluster, &[("VAULTBASE_WORKERS", "-1")], "VAULTBASE_WORKERS"),
            (Mode::Cluster, &[("VAULTBASE_PORT", "0")], "VAULTBASE_PORT"),
            (Mode::Serve, &[("VAULTBASE_HOST", "not-an-ip")], "VAULTBASE_HOST"),
            (Mode::Serve, &[("VAULTBASE_DRAIN_TIMEOUT", "0")], "VAULTBASE_DRAIN_TIMEOUT"),
            (Mode::Serve, &[("VAULTBASE_DRAIN_TIMEOUT", "soon")], "VAULTBASE_DRAIN_TIMEOUT"),
            (Mode::Serve, &[("VAULTBASE_JWT_SECRET", "short")], "VAULTBASE_JWT_SECRET"),
            (Mode::Serve, &[("VAULTBASE_LOG_LEVEL", "loud")], "VAULTBASE_LOG_LEVEL"),
            (Mode::Serve, &[("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", "0")], "VAULTBASE_REALTIME_IDLE_TIMEOUT_MS"),
            (Mode::Serve, &[("VAULTBASE_REALTIME_IDLE_TIMEOUT_MS", "300001")], "VAULTBASE_REALTIME_IDLE_TIMEOUT_MS"),
            (Mode::Serve, &[("VAULTBASE_REALTIME_MAX_LIFETIME_MS", "5s")], "VAULTBASE_REALTIME_MAX_LIFETIME_MS"),
            (Mode::Serve, &[("VAULTBASE_REALTIME_MAX_LIFETIME_MS", "1800001")], "VAULTBASE_REALTIME_MAX_LIFETIME_MS"),
            (Mode::Serve, &[("VAULTBASE_QUERY_TIMEOUT_MS", "0")], "VAULTBASE_QUERY_TIMEOUT_MS"),
            (Mode::Serve, &[("VAULTBASE_LOG_ARCHIVE_DAYS", "-1")], "VAULTBASE_LOG_ARCHIVE_DAYS"),
            (Mode::Serve, &[("VAULTBASE_LOG_ARCHIVE_DAYS", "36501")], "VAULTBASE_LOG_ARCHIVE_DAYS"),
            (Mode::Serve, &[("VAULTBASE_QUERY_TIMEOUT_MS", "3600001")], "VAULTBASE_QUERY_TIMEOUT_MS"),
            (Mode::Serve, &[("VAULTBASE_QUERY_TIMEOUT_MS", "30s")], "VAULTBASE_QUERY_TIMEOUT_MS"),
            (Mode::Serve, &[("VAULTBASE_MAX_CONNECTIONS", "0")], "VAULTBASE_MAX_CONNECTIONS"),
            (Mode::Serve, &[("VAULTBASE_MAX_CONNECTIONS", "many")], "VAULTBASE_MAX_CONNECTIONS"),
            (Mode::Serve, &[("VAULTBASE_HEADER_TIMEOUT_MS", "0")], "VAULTBASE_HEADER_TIMEOUT_MS"),
            (Mode::Serve, &[("VAULTBASE_TEST_IGNORE_INVALIDATE", "yes")], "VAULTBASE_TEST_IGNORE_INVALIDATE"),
            (Mode::Serve, &[("VAULTBASE_ENCRYPTION_KEY", "too short")], "VAULTBASE_ENCRYPTION_KEY"),
            (Mode::Serve, &[("VAULTBASE_ENCRYPTION_KEY", "an-encryption-key-of-32-letters!"), ("VAULTBASE_ENCRYPTION_NEW_KEY", "x")], "VAULTBASE_ENCRYPTION_NEW_KEY"),
            (Mode::Serve, &[("VAULTBASE_ENCRYPTION_NEW_KEY", "an-encryption-key-of-32-letters!")], "VAULTBASE_ENCRYPTION_NEW_KEY"),
            (Mode::Serve, &[("VAULTBASE_HOOKS_WATCH", "sometimes")], "VAULTBASE_HOOKS_WATCH"),
            (Mode::Serve, &[("VAULTBASE_HOOKS_POOL", "0")], "VAULTBASE_HOOKS_POOL"),
            (Mode::Serve, &[("VAULTBASE_HOOKS_TIMEOUT", "0")], "VAULTBASE_HOOKS_TIMEOUT"),
            (Mode::Serve, &[("VAULTBASE_HOOKS_MEMORY", "4")], "VAULTBASE_HOOKS_MEMORY"),
            (Mode::Serve, &[("VAULTBASE_HOOKS_ALLOW_EXEC", "yes")], "VAULTBASE_HOOKS_ALLOW_EXEC"),
        ];
        for (mode, vars, variable) in cases {
            let err = load(*mode, &Flags::default(), vars).expect_err("must be rejected");
            assert_eq!(err.variable, *variable);
            assert!(err.to_string().contains(variable), "{err}");
        }
    }

    #[test]
    fn encryption_keys_are_never_echoed_and_the_new_key_seals() {
        let err = load(Mode::Serve, &Flags::default(), &[("VAULTBASE_ENCRYPTION_KEY", "hunter2")]).expect_err("short");
        assert!(!err.to_string().contains("hunter2"));
        let both = [("VAULTBASE_ENCRYPTION_KEY", "a".repeat(32)), ("VAULTBASE_ENCRYPTION_NEW_KEY", "b".repeat(32))];
        let vars: Vec<(&str, &str)> = both.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let ring = load(Mode::Serve, &Flags::default(), &vars).expect("valid").encryption.expect("a ring");
        assert_eq!(ring.ids().len(), 2);
        let sealed = ring.seal(b"x").expect("seal");
        assert!(sealed.contains(&format!(":{}:", ring.ids()[0])), "the new key (listed first) seals");
        assert!(format!("{ring:?}").contains("hidden"));
    }

    #[test]
    fn jwt_secret_is_never_echoed() {
        let err = load(Mode::Serve, &Flags::default(), &[("VAULTBASE_JWT_SECRET", "hunter2")]).expect_err("short");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn bad_http_flag_is_rejected() {
        for bad in ["nonsense", "127.0.0.1:", "127.0.0.1:port", "999.1.1.1:80"] {
            let flags = Flags { http: Some(bad.into()), dir: None, ..Default::default() };
            let err = load(Mode::Serve, &flags, &[]).expect_err(bad);
            assert_eq!(err.variable, "--http");
        }
    }

    #[test]
    fn hook_flags_override_their_variables() {
        let cfg = load(Mode::Serve, &Flags::default(), &[]).expect("defaults");
        assert_eq!((cfg.hooks.dir.clone(), cfg.hooks.watch, cfg.hooks.pool), (None, true, 15));
        assert_eq!((cfg.hooks.timeout, cfg.hooks.memory_bytes, cfg.hooks.allow_exec), (Duration::from_secs(30), 64 << 20, false));
        let flags = Flags {
            hooks: HookFlags { dir: Some("/h".into()), watch: Some("false".into()), pool: Some("3".into()) },
            ..Default::default()
        };
        let vars = [("VAULTBASE_HOOKS_DIR", "/env"), ("VAULTBASE_HOOKS_WATCH", "1"), ("VAULTBASE_HOOKS_POOL", "9"), ("VAULTBASE_HOOKS_TIMEOUT", "5")];
        let cfg = load(Mode::Serve, &flags, &vars).expect("valid");
        assert_eq!((cfg.hooks.dir, cfg.hooks.watch, cfg.hooks.pool), (Some(PathBuf::from("/h")), false, 3));
        assert_eq!(cfg.hooks.timeout, Duration::from_secs(5));
        let err = load(Mode::Serve, &Flags { hooks: HookFlags { pool: Some("x".into()), ..Default::default() }, ..Default::default() }, &[]);
        assert_eq!(err.expect_err("bad pool").variable, "--hooksPool");
    }

    #[test]
    fn port_zero_is_fine_for_serve() {
        let cfg = load(Mode::Serve, &Flags::default(), &[("VAULTBASE_PORT", "0")]).expect("valid");
        assert_eq!(cfg.port, 0);
    }
}
