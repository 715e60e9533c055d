//! The SQL of the job queue: enqueue, claim, lease renewal, the end of an attempt, and the
//! reads and admin actions of the API. Every function takes the connection of a transaction
//! the caller holds (writes through `db.write`, reads through `db.read`); none waits on
//! anything but SQLite.
//!
//! Exactly one holder at a time rests on this: every state change of a running job is
//! conditional on `lease_owner` and `attempts` (the attempt that claimed it), so a runner
//! whose lease ran out and was taken over can no longer finish, fail, renew or release the
//! job; its late result is dropped (its attempt row still says how it ended).
//!
//! The outbox (`_vb_outbox`) is the front of the queue for led names (webhook deliveries):
//! a record write appends there ([`outbox_insert`]), the lead's runner moves rows into
//! `_vb_jobs` in the write that claims them ([`promote`]), and the API reads both as one
//! queue. A row is in exactly one of the two tables at any commit.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::{Job, Plan};

/// Inserts a queued job; with a `key` already present, inserts nothing and answers that job.
pub fn insert(conn: &Connection, name: &str, payload: &Value, plan: &Plan, key: Option<&str>, now_ms: i64) -> rusqlite::Result<String> {
    insert_as(conn, None, name, payload, plan, key, now_ms)
}

/// [`insert`] with the id chosen by the caller (None: a fresh one, see [`super::new_job_id`]).
pub fn insert_as(conn: &Connection, id: Option<&str>, name: &str, payload: &Value, plan: &Plan, key: Option<&str>, now_ms: i64) -> rusqlite::Result<String> {
    insert_json(conn, id, name, &payload.to_string(), plan, key, now_ms)
}

/// [`insert_as`] with the payload already serialised.
fn insert_json(conn: &Connection, id: Option<&str>, name: &str, payload: &str, plan: &Plan, key: Option<&str>, now_ms: i64) -> rusqlite::Result<String> {
    let fresh;
    let id = match id {
        Some(id) => id,
        None => {
            fresh = super::new_job_id(now_ms);
            fresh.as_str()
        }
    };
    let inserted: Option<String> = conn
        .prepare_cached(
            "INSERT INTO _vb_jobs (id, name, payload, max_attempts, backoff_ms, run_at, key, created, updated)
             VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING RETURNING id",
        )?
        .query_row(params![name, payload, plan.max_attempts, plan.backoff_ms, plan.run_at_ms, key, now_ms, id], |r| r.get(0))
        .optional()?;
    match inserted {
        Some(id) => Ok(id),
        None => conn.query_row("SELECT id FROM _vb_jobs WHERE key = ?1", [key], |r| r.get(0)),
    }
}

/// Appends a job of a led name to the outbox (see the module docs), with its final id.
pub fn outbox_insert(conn: &Connection, name: &str, payload: &str, plan: &Plan, now_ms: i64) -> rusqlite::Result<()> {
    let id = super::new_job_id(now_ms);
    conn.prepare_cached("INSERT INTO _vb_outbox (id, name, payload, max_attempts, backoff_ms, run_at, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
        .execute(params![id, name, payload, plan.max_attempts, plan.backoff_ms, plan.run_at_ms, now_ms])?;
    Ok(())
}

/// The due time of the oldest outbox row named `name`. The outbox holds led names only, so
/// the first row in `seq` order is normally it: no index is needed (nor paid on every append).
pub fn outbox_head(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT run_at FROM _vb_outbox WHERE name = ?1 ORDER BY seq LIMIT 1")?.query_row([name], |r| r.get(0)).optional()
}

/// Moves up to `limit` of the oldest outbox rows named `name` into the queue, as queued jobs
/// with the ids they were listed under. Answers how many moved. Called inside the write that
/// claims, so a row is never in both tables nor in neither.
pub fn promote(conn: &Connection, name: &str, limit: usize) -> rusqlite::Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut head = conn.prepare_cached("SELECT seq, id, payload, max_attempts, backoff_ms, run_at, created FROM _vb_outbox WHERE name = ?1 ORDER BY seq LIMIT ?2")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO _vb_jobs (id, name, payload, max_attempts, backoff_ms, run_at, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?;
    let mut delete = conn.prepare_cached("DELETE FROM _vb_outbox WHERE seq = ?1")?;
    // Read first, then written: SQLite leaves a table's rows undefined to a cursor that is
    // still reading it while they are deleted.
    type Row = (i64, String, String, i64, i64, i64, i64);
    let rows: Vec<Row> = head
        .query_map(params![name, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, id, payload, max_attempts, backoff_ms, run_at, created) in &rows {
        insert.execute(params![id, name, payload, max_attempts, backoff_ms, run_at, created])?;
        delete.execute([seq])?;
    }
    Ok(rows.len())
}

/// Who claims: the process's lease owner string, and the worker id and pid for the log.
#[derive(Debug, Clone)]
pub struct Claimant {
    pub owner: String,
    pub worker: u32,
    pub pid: u32,
}

/// Settles jobs whose lease ran out: their open attempt becomes `lost`; a job that has no
/// attempt left is dead. The others stay `running` with an expired lease, which [`claim`]
/// takes as due.
pub fn settle_expired(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    let lost = conn.prepare_cached(
        "UPDATE _vb_job_attempts SET outcome = 'lost', error = 'the worker running it stopped renewing its lease',
             duration_ms = ?1 - started
         WHERE outcome = 'running' AND job IN (SELECT id FROM _vb_jobs WHERE status = 'running' AND lease_until < ?1)",
    )?
    .execute([now_ms])?;
    if lost > 0 {
        conn.prepare_cached(
            "UPDATE _vb_jobs SET status = 'dead', lease_owner = NULL, lease_until = NULL, updated = ?1,
                 last_error = 'the worker running its last attempt stopped renewing its lease'
             WHERE status = 'running' AND lease_until < ?1 AND attempts >= max_attempts",
        )?
        .execute([now_ms])?;
    }
    Ok(lost)
}

/// [`claim`]'s statement: ?1 owner, ?2 lease end, ?3 now, ?4 name, ?5 limit.
const CLAIM_SQL: &str = "UPDATE _vb_jobs SET status = 'running', attempts = attempts + 1, lease_owner = ?1, lease_until = ?2, updated = ?3
     WHERE id IN (
         SELECT id FROM (
             SELECT * FROM (SELECT id, run_at FROM _vb_jobs WHERE status = 'queued' AND run_at <= ?3 AND name = ?4 ORDER BY run_at LIMIT ?5)
             UNION ALL
             SELECT * FROM (SELECT id, run_at FROM _vb_jobs WHERE status = 'running' AND lease_until < ?3 AND name = ?4 ORDER BY lease_until LIMIT ?5)
         ) ORDER BY run_at LIMIT ?5)
     RETURNING id, name, payload, attempts, max_attempts, backoff_ms";

/// Claims up to `limit` due jobs named `name` with one conditional UPDATE: queued ones whose
/// time has come and running ones whose lease expired. SQLite's write lock makes the select
/// and the update one step, so two workers never claim the same attempt. Records an attempt
/// row per claimed job.
///
/// Each half takes its first `limit` rows in index order before they are merged: a plain
/// UNION sorted every due job, which under a backlog (tens of thousands of queued webhook
/// deliveries) cost milliseconds per claim inside the write lock, blocking every writer.
pub fn claim(conn: &Connection, who: &Claimant, name: &str, limit: usize, lease_ms: i64, now_ms: i64) -> rusqlite::Result<Vec<Job>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let jobs: Vec<Job> = conn
        .prepare_cached(CLAIM_SQL)?
        .query_map(params![who.owner, now_ms.saturating_add(lease_ms), now_ms, name, limit], |r| {
            let payload: String = r.get(2)?;
            Ok(Job {
                id: r.get(0)?,
                name: r.get(1)?,
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                attempt: r.get(3)?,
                max_attempts: r.get(4)?,
                backoff_ms: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut log = conn.prepare_cached("INSERT INTO _vb_job_attempts (job, attempt, owner, worker, pid, started) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for j in &jobs {
        log.execute(params![j.id, j.attempt, who.owner, who.worker, who.pid, now_ms])?;
    }
    Ok(jobs)
}

/// Extends the lease of an attempt still held; false if it is no longer ours (taken over,
/// cancelled).
pub fn renew(conn: &Connection, who: &Claimant, job: &Job, lease_ms: i64, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE _vb_jobs SET lease_until = ?1 WHERE id = ?2 AND lease_owner = ?3 AND attempts = ?4 AND status = 'running'")?
        .execute(params![now_ms.saturating_add(lease_ms), job.id, who.owner, job.attempt])?;
    Ok(n == 1)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
    Timeout,
    /// Stopped by the drain: the job goes back to the queue and the attempt does not count.
    Released,
    /// The lease was lost while it ran (the job was taken over or cancelled).
    Lost,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Released => "released",
            Outcome::Lost => "lost",
        }
    }

    fn error(&self) -> String {
        match self {
            Outcome::Failed(e) => super::truncate(e.clone(), super::MAX_ERROR_BYTES),
            Outcome::Timeout => "the handler did not finish within its timeout".into(),
            Outcome::Released => "released for retry by a draining worker".into(),
            Outcome::Lost => "the lease was lost while the handler ran".into(),
            Outcome::Ok => String::new(),
        }
    }
}

/// Records the end of an attempt and moves the job on: done, queued for a retry at
/// `retry_at_ms`, dead after its last attempt, or back in the queue when released. Answers
/// the job's new status, or None if the attempt no longer held the job.
pub fn finish(conn: &Connection, who: &Claimant, job: &Job, outcome: &Outcome, started_ms: i64, retry_at_ms: i64, now_ms: i64) -> rusqlite::Result<Option<&'static str>> {
    conn.prepare_cached(
        "UPDATE _vb_job_attempts SET outcome = ?1, error = ?2, duration_ms = ?3
         WHERE job = ?4 AND attempt = ?5 AND owner = ?6 AND outcome = 'running'",
    )?
    .execute(params![outcome.label(), outcome.error(), now_ms - started_ms, job.id, job.attempt, who.owner])?;
    let (status, sql) = match outcome {
        Outcome::Ok => ("done", "UPDATE _vb_jobs SET status = 'done', lease_owner = NULL, lease_until = NULL, last_error = '', updated = ?1
                                  WHERE id = ?2 AND lease_owner = ?3 AND attempts = ?4 AND status = 'running'"),
        Outcome::Released => ("queued", "UPDATE _vb_jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL, run_at = ?1, updated = ?1
                                  WHERE id = ?2 AND lease_owner = ?3 AND attempts = ?4 AND status = 'running'"),
        Outcome::Lost => return Ok(None),
        Outcome::Failed(_) | Outcome::Timeout if job.attempt >= job.max_attempts => (
            "dead",
            "UPDATE _vb_jobs SET status = 'dead', lease_owner = NULL, lease_until = NULL, last_error = ?5, updated = ?1
             WHERE id = ?2 AND lease_owner = ?3 AND attempts = ?4 AND status = 'running'",
        ),
        Outcome::Failed(_) | Outcome::Timeout => (
            "queued",
            "UPDATE _vb_jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL, last_error = ?5, run_at = ?6, updated = ?1
             WHERE id = ?2 AND lease_owner = ?3 AND attempts = ?4 AND status = 'running'",
        ),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let n = match outcome {
        Outcome::Ok | Outcome::Released => stmt.execute(params![now_ms, job.id, who.owner, job.attempt])?,
        _ if status == "dead" => stmt.execute(params![now_ms, job.id, who.owner, job.attempt, outcome.error()])?,
        _ => stmt.execute(params![now_ms, job.id, who.owner, job.attempt, outcome.error(), retry_at_ms])?,
    };
    Ok((n == 1).then_some(status))
}

/// The earliest time a job named `name` may become claimable: a queued one's due time or a
/// running one's lease end. Two seeks on the (name, time) indexes, however long the queue of
/// other names.
pub fn next_due(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT min(t) FROM (SELECT min(run_at) AS t FROM _vb_jobs WHERE status = 'queued' AND name = ?1
                             UNION ALL SELECT min(lease_until) FROM _vb_jobs WHERE status = 'running' AND name = ?1)",
    )?
    .query_row([name], |r| r.get(0))
}

/// A job as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub payload: Value,
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub backoff_ms: i64,
    pub run_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub key: Option<String>,
    pub last_error: String,
    pub created: i64,
    pub updated: i64,
}

const JOB_COLUMNS: &str = "id, name, payload, status, attempts, max_attempts, backoff_ms, run_at, lease_owner, lease_until, key, last_error, created, updated";
/// The queue as the API shows it: the jobs and, as queued jobs under their final ids, the
/// outbox rows not yet moved (see the module docs). Looking one up by id reads the outbox
/// through: an id index there would cost every append, and this is only an admin's lookup.
const QUEUE: &str = "(SELECT id, name, payload, status, attempts, max_attempts, backoff_ms, run_at, lease_owner, lease_until, key, last_error, created, updated FROM _vb_jobs
     UNION ALL
     SELECT id, name, payload, 'queued', 0, max_attempts, backoff_ms, run_at, NULL, NULL, NULL, '', created, created FROM _vb_outbox)";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let payload: String = r.get(2)?;
    Ok(JobRow {
        id: r.get(0)?,
        name: r.get(1)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        status: r.get(3)?,
        attempts: r.get(4)?,
        max_attempts: r.get(5)?,
        backoff_ms: r.get(6)?,
        run_at: r.get(7)?,
        lease_owner: r.get(8)?,
        lease_until: r.get(9)?,
        key: r.get(10)?,
        last_error: r.get(11)?,
        created: r.get(12)?,
        updated: r.get(13)?,
    })
}

/// Jobs newest first, optionally of one name and one status; with the total.
pub fn list(conn: &Connection, name: Option<&str>, status: Option<&str>, limit: i64, offset: i64) -> rusqlite::Result<(Vec<JobRow>, i64)> {
    let filter = "(?1 IS NULL OR name = ?1) AND (?2 IS NULL OR status = ?2)";
    let total = conn.query_row(&format!("SELECT count(*) FROM {QUEUE} WHERE {filter}"), params![name, status], |r| r.get(0))?;
    let items = conn
        .prepare(&format!("SELECT {JOB_COLUMNS} FROM {QUEUE} WHERE {filter} ORDER BY created DESC, id DESC LIMIT ?3 OFFSET ?4"))?
        .query_map(params![name, status, limit, offset], job_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok((items, total))
}

/// One attempt, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRow {
    pub attempt: u32,
    pub worker: u32,
    pub pid: u32,
    pub started: i64,
    pub duration_ms: Option<i64>,
    pub outcome: String,
    pub error: String,
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<(JobRow, Vec<AttemptRow>)>> {
    let Some(job) = conn.query_row(&format!("SELECT {JOB_COLUMNS} FROM {QUEUE} WHERE id = ?1"), [id], job_row).optional()? else {
        return Ok(None);
    };
    let attempts = conn
        .prepare("SELECT attempt, worker, pid, started, duration_ms, outcome, error FROM _vb_job_attempts WHERE job = ?1 ORDER BY id")?
        .query_map([id], |r| {
            Ok(AttemptRow { attempt: r.get(0)?, worker: r.get(1)?, pid: r.get(2)?, started: r.get(3)?, duration_ms: r.get(4)?, outcome: r.get(5)?, error: r.get(6)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some((job, attempts)))
}

/// Makes a dead or cancelled job run again with a fresh set of attempts, or a queued one due
/// now. False if there is no such job or it is running or done.
pub fn retry(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE _vb_jobs SET run_at = ?2, updated = ?2,
             attempts = CASE WHEN status = 'queued' THEN attempts ELSE 0 END, status = 'queued'
         WHERE id = ?1 AND status IN ('queued', 'dead', 'cancelled')",
        params![id, now_ms],
    )?;
    if n == 1 {
        return Ok(true);
    }
    // Not moved out of the outbox yet: it is queued, and becomes due now.
    Ok(conn.execute("UPDATE _vb_outbox SET run_at = min(run_at, ?2) WHERE id = ?1", params![id, now_ms])? == 1)
}

/// Cancels a queued or running job (a running handler is stopped when its runner next renews
/// the lease). False if there is no such job or it already ended.
pub fn cancel(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE _vb_jobs SET status = 'cancelled', lease_owner = NULL, lease_until = NULL, updated = ?2
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![id, now_ms],
    )?;
    if n == 1 {
        return Ok(true);
    }
    // Still in the outbox: it moves into the queue as a cancelled job, in this transaction.
    let moved = conn.execute(
        "INSERT INTO _vb_jobs (id, name, payload, status, max_attempts, backoff_ms, run_at, created, updated)
         SELECT id, name, payload, 'cancelled', max_attempts, backoff_ms, run_at, created, ?2 FROM _vb_outbox WHERE id = ?1",
        params![id, now_ms],
    )?;
    conn.execute("DELETE FROM _vb_outbox WHERE id = ?1", [id])?;
    Ok(moved == 1)
}

/// Deletes done and cancelled jobs last changed before `before_ms`, with their attempts, and
/// webhook delivery log rows older than that. Dead jobs stay until retried or cancelled: they
/// are what an operator must see. Answers the jobs removed.
pub fn prune(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM _vb_job_attempts WHERE job IN (SELECT id FROM _vb_jobs WHERE status IN ('done', 'cancelled') AND updated < ?1)",
        [before_ms],
    )?;
    let n = conn.execute("DELETE FROM _vb_jobs WHERE status IN ('done', 'cancelled') AND updated < ?1", [before_ms])?;
    conn.execute("DELETE FROM _vb_webhook_deliveries WHERE created < ?1", [before_ms])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::jobs::EnqueueOptions;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut conn).expect("migrate");
        (dir, conn)
    }

    fn who(owner: &str) -> Claimant {
        Claimant { owner: owner.into(), worker: 0, pid: 1 }
    }

    #[test]
    fn a_job_is_claimed_once_and_an_expired_lease_passes_it_on() {
        let (_d, conn) = db();
        let plan = EnqueueOptions::default().plan(100).expect("plan");
        let id = insert(&conn, "n", &Value::Null, &plan, Some("k"), 100).expect("insert");
        assert_eq!(insert(&conn, "n", &Value::Null, &plan, Some("k"), 100).expect("again"), id, "the key makes it idempotent");
        let (a, b) = (who("a"), who("b"));
        let got = claim(&conn, &a, "n", 10, 1000, 100).expect("claim");
        assert_eq!(got.len(), 1);
        assert!(claim(&conn, &b, "n", 10, 1000, 500).expect("claim").is_empty(), "held under a lease");
        settle_expired(&conn, 1200).expect("settle");
        let taken = claim(&conn, &b, "n", 10, 1000, 1200).expect("claim");
        assert_eq!(taken.len(), 1, "after the lease, another claimant takes it");
        assert_eq!(taken[0].attempt, 2);
        assert!(!renew(&conn, &a, &got[0], 1000, 1200).expect("renew"), "the first holder lost it");
        assert_eq!(finish(&conn, &a, &got[0], &Outcome::Ok, 100, 0, 1300).expect("finish"), None);
        assert_eq!(finish(&conn, &b, &taken[0], &Outcome::Ok, 1200, 0, 1300).expect("finish"), Some("done"));
        let (_, attempts) = get(&conn, &id).expect("get").expect("found");
        let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["lost", "ok"]);
    }

    #[test]
    fn a_claim_reads_a_few_rows_however_long_the_queue_is() {
        let (_d, conn) = db();
        let plan = EnqueueOptions::default().plan(0).expect("plan");
        for _ in 0..2000 {
            insert(&conn, "n", &Value::Null, &plan, None, 0).expect("insert");
        }
        let got = claim(&conn, &who("a"), "n", 4, 1000, 10).expect("claim");
        assert_eq!(got.len(), 4, "positive control: it claims");
        // A deterministic count of SQLite's steps, not a time: sorting every due job took
        // tens of thousands over this queue.
        let steps = conn.prepare_cached(CLAIM_SQL).expect("cached").get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps > 0 && steps < 2000, "the claim took {steps} steps over a queue of 2,000 jobs");
    }

    #[test]
    fn a_claim_and_the_next_due_look_skip_the_queue_of_other_names() {
        let (_d, conn) = db();
        let plan = EnqueueOptions::default().plan(0).expect("plan");
        for _ in 0..2000 {
            insert(&conn, "backlog", &Value::Null, &plan, None, 0).expect("insert");
        }
        let later = EnqueueOptions::default().plan(5).expect("plan");
        insert(&conn, "other", &Value::Null, &later, None, 5).expect("insert");
        assert_eq!(next_due(&conn, "other").expect("next"), Some(5));
        assert_eq!(next_due(&conn, "backlog").expect("next"), Some(0));
        assert_eq!(next_due(&conn, "none").expect("next"), None);
        let got = claim(&conn, &who("a"), "other", 4, 1000, 10).expect("claim");
        assert_eq!(got.len(), 1, "positive control: the one job of that name is claimed");
        // Deterministic step counts, not times: walking the 2,000 jobs queued before it under
        // another name took thousands.
        let steps = conn.prepare_cached(CLAIM_SQL).expect("cached").get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps > 0 && steps < 200, "the claim took {steps} steps behind 2,000 jobs of another name");
        assert_eq!(next_due(&conn, "other").expect("next"), Some(1010), "running: its lease end");
    }

    #[test]
    fn failures_retry_until_the_last_attempt_then_the_job_is_dead() {
        let (_d, conn) = db();
        let plan = EnqueueOptions { max_attempts: Some(2), ..Default::default() }.plan(0).expect("plan");
        let id = insert(&conn, "n", &Value::Null, &plan, None, 0).expect("insert");
        let a = who("a");
        let j = claim(&conn, &a, "n", 1, 1000, 0).expect("claim").remove(0);
        assert_eq!(finish(&conn, &a, &j, &Outcome::Failed("boom".into()), 0, 50, 10).expect("fail"), Some("queued"));
        assert!(claim(&conn, &a, "n", 1, 1000, 20).expect("claim").is_empty(), "not before its retry time");
        let j = claim(&conn, &a, "n", 1, 1000, 50).expect("claim").remove(0);
        assert_eq!(finish(&conn, &a, &j, &Outcome::Failed("boom".into()), 50, 0, 60).expect("fail"), Some("dead"));
        assert!(retry(&conn, &id, 70).expect("retry"));
        assert_eq!(claim(&conn, &a, "n", 1, 1000, 70).expect("claim").len(), 1, "a retried dead job runs again");
    }

    #[test]
    fn outbox_rows_are_queued_jobs_to_the_api_and_move_into_the_queue_once_in_order() {
        let (_d, conn) = db();
        let plan = EnqueueOptions::default().plan(10).expect("plan");
        for i in 0..5 {
            outbox_insert(&conn, "led", &format!("{{\"n\":{i}}}"), &plan, 10 + i).expect("append");
        }
        let (listed, total) = list(&conn, Some("led"), Some("queued"), 100, 0).expect("list");
        assert_eq!(total, 5, "the API counts outbox rows as queued jobs");
        let ids: Vec<String> = listed.iter().map(|j| j.id.clone()).collect();
        assert_eq!(outbox_head(&conn, "led").expect("head"), Some(10));
        assert_eq!(outbox_head(&conn, "other").expect("head"), None);
        assert_eq!(promote(&conn, "led", 2).expect("promote"), 2);
        let claimed = claim(&conn, &who("a"), "led", 10, 1000, 100).expect("claim");
        let payloads: Vec<Value> = claimed.iter().map(|j| j.payload.clone()).collect();
        assert_eq!(payloads, [serde_json::json!({"n": 0}), serde_json::json!({"n": 1})], "the oldest two, and only those");
        assert!(ids.contains(&claimed[0].id), "a moved row keeps the id it was listed under");
        let (_, total) = list(&conn, Some("led"), None, 100, 0).expect("list");
        assert_eq!(total, 5, "nothing lost or doubled by the move");
        assert_eq!(promote(&conn, "led", 10).expect("promote"), 3);
        assert_eq!(promote(&conn, "led", 10).expect("promote"), 0, "moved once");
        assert_eq!(outbox_head(&conn, "led").expect("head"), None);
    }

    #[test]
    fn an_outbox_row_can_be_viewed_retried_and_cancelled_before_it_moves() {
        let (_d, conn) = db();
        let plan = EnqueueOptions::default().plan(10).expect("plan");
        outbox_insert(&conn, "led", "{}", &plan, 10).expect("append");
        outbox_insert(&conn, "led", "{}", &plan, 11).expect("append");
        let (listed, _) = list(&conn, Some("led"), None, 100, 0).expect("list");
        let (a, b) = (listed[0].id.clone(), listed[1].id.clone());
        let (job, attempts) = get(&conn, &a).expect("get").expect("found in the outbox");
        assert_eq!((job.status.as_str(), attempts.len()), ("queued", 0));
        assert!(retry(&conn, &a, 5).expect("retry"), "a queued job can be made due now");
        assert!(cancel(&conn, &a, 20).expect("cancel"));
        assert!(!cancel(&conn, &a, 21).expect("cancel"), "cancelled once");
        assert_eq!(get(&conn, &a).expect("get").expect("found").0.status, "cancelled");
        assert!(!retry(&conn, "nope", 5).expect("retry") && !cancel(&conn, "nope", 5).expect("cancel"));
        assert_eq!(promote(&conn, "led", 10).expect("promote"), 1, "only the other row is left to move");
        let claimed = claim(&conn, &who("a"), "led", 10, 1000, 100).expect("claim");
        assert_eq!(claimed.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), [b], "positive control: the other one runs");
    }

    #[test]
    fn pruning_removes_old_finished_jobs_but_keeps_dead_ones() {
        let (_d, conn) = db();
        let plan = EnqueueOptions { max_attempts: Some(1), ..Default::default() }.plan(0).expect("plan");
        let (ok_id, dead_id) = (insert(&conn, "ok", &Value::Null, &plan, None, 0).expect("insert"), insert(&conn, "bad", &Value::Null, &plan, None, 0).expect("insert"));
        let a = who("a");
        let j = claim(&conn, &a, "ok", 1, 1000, 0).expect("claim").remove(0);
        finish(&conn, &a, &j, &Outcome::Ok, 0, 0, 10).expect("finish");
        let j = claim(&conn, &a, "bad", 1, 1000, 0).expect("claim").remove(0);
        finish(&conn, &a, &j, &Outcome::Failed("x".into()), 0, 0, 10).expect("finish");
        assert_eq!(prune(&conn, 5).expect("prune"), 0, "nothing older than the cut-off");
        assert_eq!(prune(&conn, 100).expect("prune"), 1);
        assert!(get(&conn, &ok_id).expect("get").is_none());
        assert!(get(&conn, &dead_id).expect("get").is_some(), "a dead job stays visible");
    }
}
