//! Making a backup and unpacking one for restore.
//!
//! A snapshot is `VACUUM INTO` on a read-only connection: one read transaction in WAL mode,
//! so it sees one consistent state and never blocks a writer (of this or another process).
//! The zip has PocketBase's layout — `data.db`, `auxiliary.db` when it exists, and the local
//! `storage/` tree — so either server restores the other's backups. Unpacking takes only
//! those entries, by their sanitised names, and checks `data.db` before anything is swapped.
//!
//! PocketBase opens a vaultbase `data.db` only if its own system migrations are recorded as
//! applied (its first one creates `_params`, which vaultbase already has): the snapshot in
//! the zip — never the live file — gets them in its `_migrations` ledger.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use zip::write::SimpleFileOptions;

use super::{BackupError, AUXILIARY_DB, BACKUPS_DIR, DATA_DB};
use crate::shared::data_dir::STORAGE_DIR;
use crate::shared::db::{migrate, open};

/// How long a snapshot waits for a lock it cannot do without (only a WAL recovery takes one).
const SNAPSHOT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// PocketBase's migration of `auxiliary.db` (its `_logs`), recorded in `data.db`'s ledger.
const POCKETBASE_AUX_MIGRATION: &str = "1640988000_aux_init.go";
/// Copy buffer for zip entries.
const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// Writes a consistent, self-contained copy of the database `src` to `dest` (which must not
/// exist), without blocking writers.
pub fn snapshot_db(src: &Path, dest: &Path) -> Result<(), BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(src, flags).map_err(BackupError::sqlite(format!("opening {}", src.display())))?;
    conn.busy_timeout(SNAPSHOT_BUSY_TIMEOUT).map_err(BackupError::sqlite("setting the busy timeout"))?;
    let target = dest.to_str().ok_or_else(|| BackupError::Invalid(format!("{} is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(BackupError::sqlite(format!("snapshotting {}", src.display())))?;
    Ok(())
}

/// Writes a backup zip of the data dir `root` to `dest`: written beside it under a hidden
/// name first and renamed at the end, so a listing never shows half a backup.
pub fn write_zip(root: &Path, dest: &Path) -> Result<u64, BackupError> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("backup.zip");
    let parent = dest.parent().unwrap_or(root);
    let partial = parent.join(format!(".{name}.{}.partial", super::stamp()));
    let scratch = root.join(format!(".backup-{}", super::stamp()));
    let made = (|| {
        std::fs::create_dir_all(&scratch).map_err(BackupError::io("creating the snapshot directory"))?;
        let data = snapshot_into(root, &scratch, DATA_DB)?;
        let mut entries = vec![(DATA_DB.to_owned(), data.clone())];
        let mut aux_has_logs = false;
        if root.join(AUXILIARY_DB).exists() {
            let aux = snapshot_into(root, &scratch, AUXILIARY_DB)?;
            aux_has_logs = has_table(&aux, "_logs");
            entries.push((AUXILIARY_DB.to_owned(), aux));
        }
        mark_pocketbase_ledger(&data, aux_has_logs)?;
        collect_files(&root.join(STORAGE_DIR), STORAGE_DIR, &mut entries)?;
        let file = File::create(&partial).map_err(BackupError::io(format!("creating {}", partial.display())))?;
        let mut zip = zip::ZipWriter::new(BufWriter::new(file));
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true)
            .last_modified_time(zip_now());
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        for (entry, path) in &entries {
            // A stored file deleted since the walk is simply not in this backup.
            let Ok(mut src) = File::open(path) else { continue };
            zip.start_file(entry.as_str(), options)?;
            copy(&mut src, &mut zip, &mut buf).map_err(BackupError::io(format!("adding {entry}")))?;
        }
        let mut out = zip.finish()?;
        out.flush().map_err(BackupError::io("writing the zip"))?;
        let file = out.into_inner().map_err(|e| BackupError::Io { what: "writing the zip".into(), source: e.into_error() })?;
        file.sync_all().map_err(BackupError::io("syncing the zip"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&partial, dest).map_err(BackupError::io(format!("renaming into {}", dest.display())))?;
        Ok(size)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made
}

/// Records PocketBase's system migrations as applied in the snapshot at `db` (see the module
/// doc); the auxiliary one only when the backup carries a `_logs` table for it.
fn mark_pocketbase_ledger(db: &Path, aux_has_logs: bool) -> Result<(), BackupError> {
    let conn = Connection::open(db).map_err(BackupError::sqlite("opening the snapshot"))?;
    let aux = aux_has_logs.then_some(POCKETBASE_AUX_MIGRATION);
    // PocketBase 0.40.6's system migrations of `data.db` (the same list fresh dirs record),
    // whose tables vaultbase's schema already has in PocketBase's layout.
    let data = crate::shared::db::migrate::POCKETBASE_SYSTEM_MIGRATIONS.iter().copied().filter(|n| *n != POCKETBASE_AUX_MIGRATION);
    for name in data.chain(aux) {
        conn.execute("INSERT OR IGNORE INTO _migrations (file, applied) VALUES (?1, CAST(strftime('%s','now') AS INTEGER) * 1000000)", [name])
            .map_err(BackupError::sqlite("marking PocketBase's migrations in the snapshot"))?;
    }
    Ok(())
}

fn has_table(db: &Path, table: &str) -> bool {
    Connection::open(db)
        .and_then(|c| c.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)", [table], |r| r.get(0)))
        .unwrap_or(false)
}

/// Now, as a zip entry time (UTC; a zip stores no zone).
fn zip_now() -> zip::DateTime {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let part = |v: i64| u8::try_from(v).unwrap_or(0);
    zip::DateTime::from_date_and_time(u16::try_from(y).unwrap_or(1980), part(m), part(d), part(rem / 3600), part(rem % 3600 / 60), part(rem % 60))
        .unwrap_or_default()
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn snapshot_into(root: &Path, scratch: &Path, name: &str) -> Result<PathBuf, BackupError> {
    let dest = scratch.join(name);
    snapshot_db(&root.join(name), &dest)?;
    Ok(dest)
}

fn copy(src: &mut impl Read, dest: &mut impl Write, buf: &mut [u8]) -> std::io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match src.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dest.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Every regular file under `dir`, as (`prefix/relative/path`, path). Symlinks are not
/// followed: a backup holds what the data dir holds, nothing it points at.
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BackupError::Io { what: format!("listing {}", dir.display()), source: e }),
    };
    for entry in entries {
        let entry = entry.map_err(BackupError::io(format!("listing {}", dir.display())))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            collect_files(&path, &format!("{prefix}/{name}"), out)?;
        } else if kind.is_file() {
            out.push((format!("{prefix}/{name}"), path));
        }
    }
    Ok(())
}

/// A backup unpacked and checked, ready to be swapped in: `dir` holds `data.db` (migrated to
/// this version), and `auxiliary.db` and `storage/` when the backup had them.
#[derive(Debug, Clone)]
pub struct Staged {
    pub dir: PathBuf,
}

impl Staged {
    pub fn data_db(&self) -> PathBuf {
        self.dir.join(DATA_DB)
    }

    /// Removes the staging directory (after a swap it holds only what was left unused).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh staging directory inside the data dir (same filesystem, so the swap is renames).
pub fn staging_dir(root: &Path) -> Result<PathBuf, BackupError> {
    let dir = root.join(format!(".restore-{}", super::stamp()));
    std::fs::create_dir_all(&dir).map_err(BackupError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Unpacks the backup zip `zip_path` into a new staging directory under `root` and prepares
/// its database. Entries other than the two databases and `storage/…` are ignored (a
/// PocketBase backup also carries e.g. `types.d.ts`).
pub fn stage_zip(root: &Path, zip_path: &Path) -> Result<Staged, BackupError> {
    let dir = staging_dir(root)?;
    let staged = Staged { dir };
    let done = (|| {
        let file = File::open(zip_path).map_err(BackupError::io(format!("opening {}", zip_path.display())))?;
        let mut archive = zip::ZipArchive::new(BufReader::new(file))?;
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i)?;
            if !entry.is_file() {
                continue;
            }
            // `enclosed_name` refuses absolute paths and `..`: nothing lands outside the stage.
            let Some(rel) = entry.enclosed_name() else { continue };
            let wanted = rel == Path::new(DATA_DB)
                || rel == Path::new(AUXILIARY_DB)
                || (rel.starts_with(STORAGE_DIR) && rel != Path::new(STORAGE_DIR));
            if !wanted || rel.starts_with(BACKUPS_DIR) {
                continue;
            }
            let dest = staged.dir.join(&rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(BackupError::io(format!("creating {}", parent.display())))?;
            }
            let mut out = File::create(&dest).map_err(BackupError::io(format!("creating {}", dest.display())))?;
            copy(&mut entry, &mut out, &mut buf).map_err(BackupError::io(format!("unpacking {}", rel.display())))?;
        }
        if !staged.data_db().exists() {
            return Err(BackupError::Invalid("the backup has no data.db".into()));
        }
        prepare_db(&staged.data_db())
    })();
    match done {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    }
}

/// Stages a lone database file (`vaultbase backup`'s output, or `POST /api/admin/restore`'s
/// body), gzipped or not, as a restore that keeps the current `storage/` and `auxiliary.db`.
pub fn stage_db(root: &Path, db_file: &Path) -> Result<Staged, BackupError> {
    let dir = staging_dir(root)?;
    let staged = Staged { dir };
    let done = (|| {
        let mut src = File::open(db_file).map_err(BackupError::io(format!("opening {}", db_file.display())))?;
        let mut magic = [0u8; 2];
        let gz = src.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        let src = File::open(db_file).map_err(BackupError::io(format!("opening {}", db_file.display())))?;
        let mut reader: Box<dyn Read> = if gz { Box::new(flate2::read::GzDecoder::new(BufReader::new(src))) } else { Box::new(BufReader::new(src)) };
        let mut out = File::create(staged.data_db()).map_err(BackupError::io("creating the staged database"))?;
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        copy(&mut reader, &mut out, &mut buf).map_err(BackupError::io("copying the database"))?;
        prepare_db(&staged.data_db())
    })();
    match done {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    }
}

/// The 16 bytes every SQLite database file starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Checks that `path` is an SQLite database with collections (vaultbase's or PocketBase's)
/// and brings it to this version's schema, so workers can open it the moment it is swapped
/// in. Leaves no `-wal` beside it.
pub fn prepare_db(path: &Path) -> Result<(), BackupError> {
    let mut head = [0u8; 16];
    let is_sqlite = File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == SQLITE_MAGIC;
    if !is_sqlite {
        return Err(BackupError::Invalid("data.db is not an SQLite database".into()));
    }
    let mut conn = open::open(path, open::Role::Writer).map_err(BackupError::sqlite("opening the restored database"))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| BackupError::Invalid(format!("the restored database is damaged: {e}")))?;
    if check != "ok" {
        return Err(BackupError::Invalid(format!("the restored database is damaged: {check}")));
    }
    let has_collections: bool = conn
        .query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_collections')", [], |r| r.get(0))
        .map_err(BackupError::sqlite("reading the restored database"))?;
    if !has_collections {
        return Err(BackupError::Invalid("data.db has no _collections table: not a vaultbase or PocketBase database".into()));
    }
    migrate::run(&mut conn).map_err(BackupError::sqlite("migrating the restored database"))?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(BackupError::sqlite("checkpointing the restored database"))?;
    // The last connection to close removes the WAL.
    conn.close().map_err(|(_, e)| BackupError::Sqlite { what: "closing the restored database".into(), source: e })?;
    Ok(())
}

/// Gzips `src` into `dest` (for `vaultbase backup --gzip`).
pub fn gzip_file(src: &Path, dest: &Path) -> Result<(), BackupError> {
    let mut input = BufReader::new(File::open(src).map_err(BackupError::io(format!("opening {}", src.display())))?);
    let out = File::create(dest).map_err(BackupError::io(format!("creating {}", dest.display())))?;
    let mut gz = flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::best());
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    copy(&mut input, &mut gz, &mut buf).map_err(BackupError::io("compressing"))?;
    let mut out = gz.finish().map_err(BackupError::io("compressing"))?;
    out.flush().map_err(BackupError::io("writing"))?;
    Ok(())
}
