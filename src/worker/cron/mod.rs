//! Cron jobs: the registry every worker keeps (`AppState::crons`), the ticker that runs due jobs
//! once cluster-wide, the run log, and PocketBase's system jobs.
//!
//! Every worker registers the same jobs (the system ones here, JS `cronAdd` ones from the
//! hooks loader), so `GET /api/crons` lists the same thing on any worker. Each worker ticks at
//! every UTC minute :00; before running a due job it claims the (job, minute) slot with one
//! conditional insert in SQLite and runs the job only if its insert won (see `scheduler`). No
//! leader, no lease: a worker that dies after claiming loses that one run (at most once per
//! slot, never twice), and the next slot is claimed afresh by whoever is alive.
//!
//! This module owns scheduling, claiming and the run log. It knows no HTTP (`api/crons.rs`
//! answers the routes) and runs jobs on the runtime as tasks; a job that blocks must move its
//! work off the runtime itself (`db.read`/`db.write`, a thread pool).

pub mod schedule;
pub mod scheduler;
pub mod store;
pub mod system;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::worker::state::AppState;
pub use schedule::Schedule;

/// What a job runs: handed the worker's state, it returns a future that reports an error as
/// text (logged and kept in the run log; never retried). Jobs may be long: the ticker never
/// waits for one.
pub type JobFn = Arc<dyn Fn(AppState) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Wraps an async function as a [`JobFn`].
pub fn job_fn<F, Fut>(f: F) -> JobFn
where
    F: Fn(AppState) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |state| Box::pin(f(state)))
}

/// Ids starting with this are PocketBase's own jobs, listed after the user's.
pub const SYSTEM_PREFIX: &str = "__pb";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    #[error("invalid cron expression {expression:?}: {why}")]
    InvalidExpression { expression: String, why: String },
    #[error("a cron job id must not be empty")]
    EmptyId,
    #[error("no cron job with id {0:?}")]
    NotFound(String),
}

/// One registered job.
#[derive(Clone)]
pub struct Job {
    pub id: String,
    pub schedule: Schedule,
    pub run: JobFn,
}

/// A job as `GET /api/crons` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobInfo {
    pub id: String,
    pub expression: String,
}

/// This worker's jobs, in registration order (a replaced job moves to the end, as in
/// PocketBase). A plain mutex: held only to copy or edit the list, never across an await.
#[derive(Default)]
pub struct Crons {
    jobs: Mutex<Vec<Job>>,
}

impl Crons {
    /// Registers `run` under `id` on `expression` (5 fields or a macro, UTC); a job with the
    /// same id is replaced.
    pub fn add(&self, id: &str, expression: &str, run: JobFn) -> Result<(), CronError> {
        if id.is_empty() {
            return Err(CronError::EmptyId);
        }
        let schedule = Schedule::parse(expression)
            .map_err(|why| CronError::InvalidExpression { expression: expression.to_owned(), why })?;
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.retain(|j| j.id != id);
        jobs.push(Job { id: id.to_owned(), schedule, run });
        Ok(())
    }

    /// Unregisters `id`; true if it was there.
    pub fn remove(&self, id: &str) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let before = jobs.len();
        jobs.retain(|j| j.id != id);
        jobs.len() != before
    }

    /// The jobs as PocketBase lists them: user jobs sorted by id (byte order), then the
    /// `__pb…` jobs in registration order.
    pub fn list(&self) -> Vec<JobInfo> {
        let jobs = self.snapshot();
        let (mut user, system): (Vec<_>, Vec<_>) = jobs.iter().partition(|j| !j.id.starts_with(SYSTEM_PREFIX));
        user.sort_by(|a, b| a.id.cmp(&b.id));
        user.into_iter()
            .chain(system)
            .map(|j| JobInfo { id: j.id.clone(), expression: j.schedule.expression().to_owned() })
            .collect()
    }

    /// One job, if registered.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).iter().find(|j| j.id == id).cloned()
    }

    /// A copy of every job, for the ticker (which must not hold the lock while it runs them).
    pub fn snapshot(&self) -> Vec<Job> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Runs `id` now on this worker, in the background (no slot is claimed: a manual run is
    /// one run wherever it was asked for); the run goes in the run log like a scheduled one.
    pub fn run_now(&self, state: &AppState, id: &str) -> Result<(), CronError> {
        let job = self.get(id).ok_or_else(|| CronError::NotFound(id.to_owned()))?;
        scheduler::spawn_run(state.clone(), job, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> JobFn {
        job_fn(|_| async { Ok(()) })
    }

    #[test]
    fn listing_sorts_user_jobs_first_and_keeps_system_jobs_in_order() {
        let crons = Crons::default();
        for (id, expr) in [("__pbDBOptimize__", "0 0 * * *"), ("zeta", "*/5 * * * *"), ("__pbMFACleanup__", "@hourly"), ("Beta", "@weekly"), ("alpha", "@daily")] {
            crons.add(id, expr, noop()).expect(id);
        }
        let ids: Vec<String> = crons.list().into_iter().map(|j| j.id).collect();
        assert_eq!(ids, ["Beta", "alpha", "zeta", "__pbDBOptimize__", "__pbMFACleanup__"]);
        assert_eq!(crons.list()[0].expression, "0 0 * * 0", "macros are listed expanded");
    }

    #[test]
    fn same_id_replaces_and_remove_unregisters() {
        let crons = Crons::default();
        crons.add("a", "* * * * *", noop()).expect("add");
        crons.add("a", "@hourly", noop()).expect("replace");
        assert_eq!(crons.list(), [JobInfo { id: "a".into(), expression: "0 * * * *".into() }]);
        assert!(crons.remove("a"));
        assert!(!crons.remove("a"));
        assert!(crons.list().is_empty());
    }

    #[test]
    fn an_invalid_expression_is_an_error_and_keeps_the_old_job() {
        let crons = Crons::default();
        crons.add("a", "@daily", noop()).expect("add");
        let err = crons.add("a", "* * *", noop()).expect_err("invalid");
        assert!(matches!(err, CronError::InvalidExpression { .. }), "{err}");
        assert!(err.to_string().contains("5 space separated"), "{err}");
        assert_eq!(crons.list()[0].expression, "0 0 * * *");
        assert_eq!(crons.add("", "@daily", noop()), Err(CronError::EmptyId));
    }
}
