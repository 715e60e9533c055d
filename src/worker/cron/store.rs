//! The cron tables (`_vb_cron_claims`, `_vb_cron_runs`, made by migration `1763769620_cron`):
//! claiming a slot, pruning claims, recording and listing runs. Synchronous SQL, run inside
//! `db.write`/`db.read` closures; no awaits and no scheduling decisions here.

use rusqlite::{Connection, OptionalExtension, Transaction};

/// Claims are kept this many slots back (a day of minutes) and then pruned: long enough to
/// show what ran recently, short enough that the table stays a few thousand rows.
pub const CLAIM_KEEP_SLOTS: i64 = 24 * 60;
/// The run log keeps this many of the newest runs (all jobs together).
pub const MAX_RUN_LOG_ROWS: i64 = 5_000;

/// Inserts a claim for each of `jobs` at `slot`; true where this worker's insert won (the
/// slot was free), false where another worker had it already.
pub fn claim(tx: &Transaction<'_>, jobs: &[String], slot: i64, worker: u32, pid: u32, now_ms: i64) -> rusqlite::Result<Vec<bool>> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO _vb_cron_claims (job, slot, worker, pid, claimed) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?;
    jobs.iter().map(|job| Ok(insert.execute(rusqlite::params![job, slot, worker, pid, now_ms])? == 1)).collect()
}

/// Drops claims older than [`CLAIM_KEEP_SLOTS`] before `slot`.
pub fn prune_claims(tx: &Transaction<'_>, slot: i64) -> rusqlite::Result<usize> {
    tx.prepare_cached("DELETE FROM _vb_cron_claims WHERE slot < ?1")?.execute([slot - CLAIM_KEEP_SLOTS])
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Run {
    pub job: String,
    /// The slot it was claimed for; None for a manual run.
    pub slot: Option<i64>,
    pub worker: u32,
    pub pid: u32,
    /// When it started, as PocketBase writes datetimes (`YYYY-MM-DD HH:MM:SS.sssZ`).
    pub started: String,
    pub duration_ms: i64,
    /// None for success, else the job's error.
    pub error: Option<String>,
}

/// Appends `run` to the log and drops the oldest rows past [`MAX_RUN_LOG_ROWS`].
pub fn record_run(tx: &Transaction<'_>, run: &Run) -> rusqlite::Result<()> {
    let outcome = if run.error.is_some() { "error" } else { "ok" };
    tx.prepare_cached(
        "INSERT INTO _vb_cron_runs (job, slot, worker, pid, started, duration_ms, outcome, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(rusqlite::params![run.job, run.slot, run.worker, run.pid, run.started, run.duration_ms, outcome, run.error.as_deref().unwrap_or("")])?;
    let newest = tx.last_insert_rowid();
    tx.prepare_cached("DELETE FROM _vb_cron_runs WHERE id <= ?1")?.execute([newest - MAX_RUN_LOG_ROWS])?;
    Ok(())
}

/// A run as the run-log endpoint shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    /// Minutes since the Unix epoch (UTC) of the scheduled run; null for a manual run.
    pub slot: Option<i64>,
    pub trigger: &'static str,
    pub worker: u32,
    pub pid: u32,
    pub started: String,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: String,
}

/// The newest `limit` runs of `job`, newest first.
pub fn runs_of(conn: &Connection, job: &str, limit: i64) -> rusqlite::Result<Vec<RunRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, job, slot, worker, pid, started, duration_ms, outcome, error FROM _vb_cron_runs WHERE job = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![job, limit], |r| {
        let slot: Option<i64> = r.get(2)?;
        Ok(RunRow {
            id: r.get(0)?,
            job: r.get(1)?,
            slot,
            trigger: if slot.is_some() { "schedule" } else { "manual" },
            worker: r.get(3)?,
            pid: r.get(4)?,
            started: r.get(5)?,
            duration_ms: r.get(6)?,
            outcome: r.get(7)?,
            error: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Which worker (and pid) holds the claim for `job` at `slot`, if any.
pub fn claimant(conn: &Connection, job: &str, slot: i64) -> rusqlite::Result<Option<(u32, u32)>> {
    conn.prepare_cached("SELECT worker, pid FROM _vb_cron_claims WHERE job = ?1 AND slot = ?2")?
        .query_row(rusqlite::params![job, slot], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut conn).expect("migrate");
        (dir, conn)
    }

    #[test]
    fn a_slot_is_won_once_whoever_asks() {
        let (_dir, mut conn) = migrated();
        let jobs = vec!["a".to_owned(), "b".to_owned()];
        let tx = conn.transaction().expect("tx");
        assert_eq!(claim(&tx, &jobs, 100, 0, 10, 1).expect("claim"), [true, true]);
        assert_eq!(claim(&tx, &jobs, 100, 1, 11, 2).expect("claim"), [false, false], "a second worker loses");
        assert_eq!(claim(&tx, &jobs[..1], 101, 1, 11, 3).expect("claim"), [true], "the next slot is free again");
        assert_eq!(claimant(&tx, "a", 100).expect("claimant"), Some((0, 10)));
        assert_eq!(prune_claims(&tx, 101 + CLAIM_KEEP_SLOTS).expect("prune"), 2, "slot 100 is past the window");
        assert_eq!(claimant(&tx, "a", 101).expect("claimant"), Some((1, 11)), "positive control: 101 is kept");
        tx.commit().expect("commit");
    }

    #[test]
    fn the_run_log_is_bounded_and_newest_first() {
        let (_dir, mut conn) = migrated();
        let tx = conn.transaction().expect("tx");
        let total = MAX_RUN_LOG_ROWS + 3;
        for i in 0..total {
            let error = (i % 2 == 1).then(|| format!("failed {i}"));
            let run = Run { job: "j".into(), slot: (i > 0).then_some(i), worker: 0, pid: 1, started: "2026-01-01 00:00:00.000Z".into(), duration_ms: i, error };
            record_run(&tx, &run).expect("record");
        }
        let count: i64 = tx.query_row("SELECT count(*) FROM _vb_cron_runs", [], |r| r.get(0)).expect("count");
        assert_eq!(count, MAX_RUN_LOG_ROWS);
        let runs = runs_of(&tx, "j", 2).expect("runs");
        assert_eq!(runs[0].duration_ms, total - 1);
        assert_eq!((runs[0].outcome.as_str(), runs[1].outcome.as_str()), ("ok", "error"));
        assert_eq!(runs[1].error, format!("failed {}", total - 2));
        assert_eq!(runs[0].trigger, "schedule");
        tx.commit().expect("commit");
    }
}
