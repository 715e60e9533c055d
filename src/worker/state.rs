//! [`AppState`]: what every request handler can reach, cloned per connection as one `Arc`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::shared::bus::Bus;
use crate::shared::config::Config;
use crate::shared::db::Db;
use crate::shared::secrets::JwtSecret;
use crate::worker::app::observe::{Observers, Recorder};
use crate::worker::app::pipeline::Writes;
use crate::worker::auth::password::PasswordPool;
use crate::worker::files::StorageSource;
use crate::worker::records::cache::SchemaCache;
use crate::worker::settings::SettingsCache;

/// Shared, read-mostly state of one worker process.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub worker_id: u32,
    pub pid: u32,
    pub started: Instant,
    pub config: Config,
    pub db: Db,
    pub bus: Bus,
    pub jwt_secret: JwtSecret,
    /// Collection definitions, coherent across workers (see `records::cache`).
    pub schema: SchemaCache,
    /// Application settings, coherent across workers the same way.
    pub settings: SettingsCache,
    /// argon2 work, bounded so a login flood cannot starve the runtime.
    pub passwords: PasswordPool,
    /// The file storage backend for the current settings, and thumbnail bookkeeping.
    pub files: crate::worker::files::Files,
    /// Realtime clients of this worker and the relay of committed changes.
    pub realtime: crate::worker::realtime::Realtime,
    /// Who is told about record writes (hooks; the test recorder).
    pub observers: Observers,
    /// The test-only observer, registered with `VAULTBASE_TEST_OBSERVER=1`.
    pub recorder: Option<Arc<Recorder>>,
    /// The cluster-wide rate-limit counters; None if the file could not be mapped (then rate
    /// limits are not enforced, and that was logged at start).
    pub rate_limiter: Option<crate::worker::ratelimit::RateLimiter>,
    /// Reads of the request and application logs in `auxiliary.db` (see `ops::logs`).
    pub logs: crate::worker::ops::logs::LogStore,
    /// Restores this worker asked the supervisor for, waiting for its answer.
    pub restores: crate::worker::ops::restore::Restores,
    /// pb_hooks: the loaded hook set and its JS threads (empty until `Hooks::start`).
    pub hooks: crate::worker::hooks::Hooks,
    /// This worker's cron jobs (system jobs registered at start; see `worker::cron`).
    pub crons: Arc<crate::worker::cron::Crons>,
    /// This worker's background job handlers (see `worker::jobs`).
    pub jobs: Arc<crate::worker::jobs::Jobs>,
    next_request: AtomicU64,
}

impl AppState {
    pub fn new(worker_id: u32, config: Config, db: Db, bus: Bus, jwt_secret: JwtSecret) -> AppState {
        let files = crate::worker::files::Files::new(&config.data_dir);
        let observers = Observers::default();
        let rate_path = crate::shared::data_dir::rate_limits_path(&config.data_dir);
        let rate_limiter = match crate::shared::db::rate_table::RateTable::open(&rate_path) {
            Ok(t) => Some(crate::worker::ratelimit::RateLimiter::new(t)),
            Err(e) => {
                tracing::error!(worker_id, error = %e, "mapping the rate-limits file failed; rate limits are not enforced");
                None
            }
        };
        let recorder = config.test_observer.then(|| Arc::new(Recorder::new(&config.data_dir)));
        crate::worker::ops::logs::start(&config.data_dir, worker_id);
        let logs = crate::worker::ops::logs::LogStore::new(&config.data_dir);
        if let Some(r) = &recorder {
            observers.register(r.clone());
        }
        let crons = Arc::new(crate::worker::cron::Crons::default());
        if let Err(e) = crate::worker::cron::system::register(&crons, &config) {
            tracing::error!(worker_id, error = %e, "registering the system cron jobs failed");
        }
        let jobs = Arc::new(crate::worker::jobs::Jobs::new(worker_id, Some(bus.clone())));
        crate::worker::jobs::register_builtin(&jobs, &config);
        AppState(Arc::new(Inner {
            worker_id,
            pid: std::process::id(),
            started: Instant::now(),
            config,
            db,
            realtime: crate::worker::realtime::Realtime::new(worker_id, bus.clone()),
            bus,
            jwt_secret,
            schema: SchemaCache::new(),
            settings: SettingsCache::default(),
            passwords: PasswordPool::sized_to_cpus(),
            files,
            observers,
            recorder,
            rate_limiter,
            logs,
            restores: Default::default(),
            hooks: crate::worker::hooks::Hooks::new(),
            crons,
            jobs,
            next_request: AtomicU64::new(1),
        }))
    }

    /// The record write pipeline, over this worker's handles.
    pub fn writes(&self) -> Writes<'_> {
        Writes {
            db: &self.db,
            schema: &self.schema,
            settings: &self.settings,
            files: &self.files,
            passwords: &self.passwords,
            realtime: &self.realtime,
            observers: &self.observers,
            jobs: &self.jobs,
        }
    }

    /// Where the file storage backend is found.
    pub fn storage_source(&self) -> StorageSource<'_> {
        StorageSource { files: &self.files, settings: &self.settings, db: &self.db }
    }

    /// Requests this worker has started (ids handed out so far), for the cluster page.
    pub fn requests_started(&self) -> u64 {
        self.0.next_request.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// A request id unique within the cluster: worker id and a per-worker counter.
    pub fn next_request_id(&self) -> u64 {
        self.0.next_request.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl crate::worker::realtime::Host for AppState {
    fn worker_id(&self) -> u32 {
        self.worker_id
    }

    fn db(&self) -> &Db {
        &self.db
    }

    fn schema(&self) -> &SchemaCache {
        &self.schema
    }

    fn realtime(&self) -> &crate::worker::realtime::Realtime {
        &self.realtime
    }

    fn idle_timeout(&self) -> std::time::Duration {
        self.config.realtime_idle_timeout
    }

    fn max_lifetime(&self) -> std::time::Duration {
        self.config.realtime_max_lifetime
    }

    fn resolve_actor<'a>(&'a self, authorization: Option<&'a [u8]>) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::worker::actor::Actor> + Send + 'a>> {
        Box::pin(crate::worker::actor::resolve(&self.schema, &self.db, &self.jwt_secret, authorization))
    }
}
