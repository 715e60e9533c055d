//! Swapping a staged backup in for the live files. The caller guarantees nobody has the old
//! files open (every worker paused, or the data-dir lock held offline).
//!
//! Each file moves by `rename` within the data dir. The previous `data.db` (with its `-wal` and
//! `-shm`), `auxiliary.db` and `storage/` are kept in `.pre-restore-<stamp>/` beside them, so a
//! wrong restore can be undone by hand; a failure half-way moves back what had moved.
//!
//! The cache counters of `_vb_versions` carry over from the old database and move forward:
//! a worker's cache remembers a version number, and the restored file may hold the same
//! number for different definitions. The realtime sequence continues exactly where the old
//! file left it, so workers waiting for the next number are not held at a gap.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::archive::Staged;
use super::{BackupError, AUXILIARY_DB, DATA_DB};
use crate::shared::data_dir::STORAGE_DIR;
use crate::shared::db::open;

/// The `_vb_versions` row whose number must continue without a gap.
const SEQUENCE_ROW: &str = "realtime";
/// The sidecars SQLite keeps beside a database file.
const SIDECARS: [&str; 3] = ["", "-wal", "-shm"];

/// Swaps `staged` in under `root`; returns where the previous files were kept.
pub fn swap(root: &Path, staged: &Staged) -> Result<PathBuf, BackupError> {
    let old_versions = read_versions(&root.join(DATA_DB));
    carry_versions(&staged.data_db(), &old_versions)?;
    let kept = root.join(format!(".pre-restore-{}", super::stamp()));
    std::fs::create_dir_all(&kept).map_err(BackupError::io(format!("creating {}", kept.display())))?;
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut plan: Vec<(PathBuf, PathBuf)> = Vec::new();
    // Out first: the old database with its sidecars (a WAL not yet copied back belongs to it).
    for name in [DATA_DB, AUXILIARY_DB] {
        let replaced = name == DATA_DB || staged.dir.join(name).exists();
        if !replaced {
            continue;
        }
        for suffix in SIDECARS {
            plan.push((root.join(format!("{name}{suffix}")), kept.join(format!("{name}{suffix}"))));
        }
    }
    if staged.dir.join(STORAGE_DIR).exists() {
        plan.push((root.join(STORAGE_DIR), kept.join(STORAGE_DIR)));
    }
    // Then in.
    for name in [DATA_DB, AUXILIARY_DB, STORAGE_DIR] {
        let from = staged.dir.join(name);
        if from.exists() {
            plan.push((from, root.join(name)));
        }
    }
    for (from, to) in plan {
        if !from.exists() {
            continue;
        }
        if let Err(e) = std::fs::rename(&from, &to) {
            for (back_from, back_to) in moves.iter().rev() {
                let _ = std::fs::rename(back_to, back_from);
            }
            return Err(BackupError::Io { what: format!("moving {} to {}", from.display(), to.display()), source: e });
        }
        moves.push((from, to));
    }
    staged.discard();
    Ok(kept)
}

/// The `_vb_versions` counters of the database at `path` (none if it cannot be read).
fn read_versions(path: &Path) -> HashMap<String, i64> {
    let read = || -> rusqlite::Result<HashMap<String, i64>> {
        let conn = open::open(path, open::Role::Reader)?;
        let mut stmt = conn.prepare("SELECT name, version FROM _vb_versions")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.collect()
    };
    if !path.exists() {
        return HashMap::new();
    }
    read().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading the cache counters of the database being replaced failed; caches rely on the reload at reopen");
        HashMap::new()
    })
}

/// Moves the counters of the staged database past `old` (the sequence row: onto it).
fn carry_versions(staged_db: &Path, old: &HashMap<String, i64>) -> Result<(), BackupError> {
    let mut conn = Connection::open(staged_db).map_err(BackupError::sqlite("opening the staged database"))?;
    let tx = conn.transaction().map_err(BackupError::sqlite("carrying the cache counters"))?;
    for (name, version) in old {
        let sql = if name == SEQUENCE_ROW {
            "INSERT INTO _vb_versions (name, version) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET version = excluded.version"
        } else {
            "INSERT INTO _vb_versions (name, version) VALUES (?1, ?2 + 1)
             ON CONFLICT (name) DO UPDATE SET version = max(version, excluded.version - 1) + 1"
        };
        tx.execute(sql, rusqlite::params![name, version]).map_err(BackupError::sqlite("carrying the cache counters"))?;
    }
    tx.commit().map_err(BackupError::sqlite("carrying the cache counters"))?;
    conn.close().map_err(|(_, e)| BackupError::Sqlite { what: "closing the staged database".into(), source: e })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with(path: &Path, versions: &[(&str, i64)], marker: &str) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch("CREATE TABLE _vb_versions (name TEXT PRIMARY KEY NOT NULL, version INTEGER DEFAULT 0 NOT NULL); CREATE TABLE m (v TEXT);")
            .expect("schema");
        for (n, v) in versions {
            conn.execute("INSERT INTO _vb_versions VALUES (?1, ?2)", rusqlite::params![n, v]).expect("version");
        }
        conn.execute("INSERT INTO m VALUES (?1)", [marker]).expect("marker");
    }

    #[test]
    fn swaps_keeps_the_old_files_and_moves_counters_forward() {
        let root = tempfile::tempdir().expect("tempdir");
        db_with(&root.path().join(DATA_DB), &[("collections", 7), ("settings", 2), ("realtime", 40)], "old");
        std::fs::create_dir_all(root.path().join("storage/c/r")).expect("storage");
        std::fs::write(root.path().join("storage/c/r/old.txt"), "old").expect("file");
        let stage = super::super::archive::staging_dir(root.path()).expect("stage");
        db_with(&stage.join(DATA_DB), &[("collections", 3), ("settings", 9), ("realtime", 5)], "new");
        std::fs::create_dir_all(stage.join("storage/c/r")).expect("storage");
        std::fs::write(stage.join("storage/c/r/new.txt"), "new").expect("file");

        let kept = swap(root.path(), &Staged { dir: stage.clone() }).expect("swap");
        let conn = Connection::open(root.path().join(DATA_DB)).expect("open");
        let marker: String = conn.query_row("SELECT v FROM m", [], |r| r.get(0)).expect("marker");
        assert_eq!(marker, "new");
        let v = |n: &str| -> i64 { conn.query_row("SELECT version FROM _vb_versions WHERE name = ?1", [n], |r| r.get(0)).expect("v") };
        assert_eq!(v("collections"), 8, "past the old number");
        assert_eq!(v("settings"), 10, "past both");
        assert_eq!(v("realtime"), 40, "the sequence continues where the old file left it");
        assert!(root.path().join("storage/c/r/new.txt").exists());
        assert!(!root.path().join("storage/c/r/old.txt").exists());
        assert!(kept.join("storage/c/r/old.txt").exists(), "the previous storage is kept");
        let old = Connection::open(kept.join(DATA_DB)).expect("kept db");
        let marker: String = old.query_row("SELECT v FROM m", [], |r| r.get(0)).expect("marker");
        assert_eq!(marker, "old");
        assert!(!stage.exists(), "the stage is gone");
    }
}
