//! PocketBase's JS migrations: `pb_migrations/*.js` files calling `migrate(up, down)`,
//! applied once each, in file name order, each in its own `BEGIN IMMEDIATE` transaction with
//! its row in `_migrations` (`file`, `applied` in unix microseconds, as PocketBase records
//! it), so a data dir keeps PocketBase's ledger.
//!
//! vaultbase's own schema steps share that table, as PocketBase's Go migrations do; they are
//! told apart by name: a JS migration's `file` ends in `.js`, a system one never does, and
//! only `.js` rows are ever reverted or forgotten here.
//!
//! Only the process that owns the data dir runs this (`serve` before it serves; in a cluster
//! a `vaultbase migrate up` child the supervisor waits for before spawning any worker), so
//! workers never race over a migration. Nothing here writes migration files on its own:
//! `--automigrate` is accepted but vaultbase does not generate files from admin changes.

pub mod cli;
mod js;
mod ops;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

pub use js::Direction;

/// The migrations directory PocketBase uses when none is given: beside the data dir.
pub const DEFAULT_DIR_NAME: &str = "pb_migrations";

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("reading migrations dir {path}: {source}")]
    Dir { path: String, source: std::io::Error },
    #[error("reading migration {file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("migration {file} failed: {message}")]
    Failed { file: String, message: String },
    #[error("migration {file} is recorded as applied but its file is missing from {dir}")]
    MissingFile { file: String, dir: String },
    #[error("starting the JS thread for {file}: {source}")]
    Thread { file: String, source: std::io::Error },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// `dir` if given, else `<data dir>/../pb_migrations`.
pub fn resolve_dir(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    match configured {
        Some(d) => d.to_path_buf(),
        None => data_dir.parent().unwrap_or(data_dir).join(DEFAULT_DIR_NAME),
    }
}

/// The `*.js` file names in `dir`, sorted; a missing dir has none.
pub fn files(dir: &Path) -> Result<Vec<String>, MigrationError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(MigrationError::Dir { path: dir.display().to_string(), source }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| MigrationError::Dir { path: dir.display().to_string(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// PocketBase's ledger `_migrations`, in its layout. vaultbase's own schema steps are recorded
/// in `_vb_migrations`, so on a data dir vaultbase made this table appears with the first JS
/// migration run (every start runs `up`), as PocketBase has it.
const CREATE_POCKETBASE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS _migrations (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)";

fn ensure_ledger(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(CREATE_POCKETBASE_LEDGER)
}

fn applied_set(conn: &Connection) -> rusqlite::Result<std::collections::HashSet<String>> {
    ensure_ledger(conn)?;
    let mut stmt = conn.prepare("SELECT file FROM _migrations WHERE file LIKE '%.js'")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Applies every file of `dir` not yet in `_migrations`, in name order; stops at the first
/// failure (its transaction rolled back, the earlier ones kept). Returns the files applied.
/// The system migrations must have run on `conn` already.
pub fn up(conn: &mut Connection, dir: &Path) -> Result<Vec<String>, MigrationError> {
    let done = applied_set(conn)?;
    let mut applied = Vec::new();
    for file in files(dir)? {
        if done.contains(&file) {
            continue;
        }
        run_one(conn, dir, &file, Direction::Up)?;
        tracing::info!(migration = %file, "migration applied");
        applied.push(file);
    }
    Ok(applied)
}

/// Reverts the last `n` applied JS migrations (newest first), running each file's `down`
/// and deleting its `_migrations` row in one transaction. Returns the files reverted.
pub fn down(conn: &mut Connection, dir: &Path, n: usize) -> Result<Vec<String>, MigrationError> {
    ensure_ledger(conn)?;
    let last: Vec<String> = {
        let mut stmt = conn.prepare("SELECT file FROM _migrations WHERE file LIKE '%.js' ORDER BY applied DESC, file DESC LIMIT ?1")?;
        let rows = stmt.query_map([i64::try_from(n).unwrap_or(i64::MAX)], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut reverted = Vec::new();
    for file in last {
        if !dir.join(&file).is_file() {
            return Err(MigrationError::MissingFile { file, dir: dir.display().to_string() });
        }
        run_one(conn, dir, &file, Direction::Down)?;
        tracing::info!(migration = %file, "migration reverted");
        reverted.push(file);
    }
    Ok(reverted)
}

/// What `serve` runs after the start-up preparation and before it serves: every pending
/// migration of the configured dir. Returns the files applied.
pub fn apply_at_start(data_dir: &crate::shared::data_dir::DataDir, configured: Option<&Path>) -> Result<Vec<String>, MigrationError> {
    let dir = resolve_dir(configured, data_dir.root());
    let mut conn = crate::shared::db::open::open(&data_dir.db_path(), crate::shared::db::open::Role::Writer)?;
    up(&mut conn, &dir)
}

/// Forgets applied JS migrations whose file is gone. Returns the rows removed.
pub fn history_sync(conn: &Connection, dir: &Path) -> Result<Vec<String>, MigrationError> {
    let present: std::collections::HashSet<String> = files(dir)?.into_iter().collect();
    let mut gone: Vec<String> = applied_set(conn)?.into_iter().filter(|f| !present.contains(f)).collect();
    gone.sort();
    for file in &gone {
        conn.execute("DELETE FROM _migrations WHERE file = ?1", [file])?;
    }
    Ok(gone)
}

/// Runs one file's `up` or `down` in one write transaction, with the ledger change in the
/// same transaction: all of it commits, or none.
fn run_one(conn: &mut Connection, dir: &Path, file: &str, direction: Direction) -> Result<(), MigrationError> {
    let source = std::fs::read_to_string(dir.join(file)).map_err(|source| MigrationError::Read { file: file.to_owned(), source })?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (calls, handle) =
        js::start(file.to_owned(), source, direction).map_err(|source| MigrationError::Thread { file: file.to_owned(), source })?;
    for call in calls {
        let answer = match serde_json::from_str(&call.payload) {
            Ok(payload) => match ops::dispatch(&tx, file, &call.op, payload) {
                Ok(v) => serde_json::json!({ "ok": v }),
                Err(e) => serde_json::json!({ "error": ops::describe(&e) }),
            },
            Err(e) => serde_json::json!({ "error": format!("bad payload: {e}") }),
        };
        let _ = call.reply.send(answer.to_string());
    }
    let outcome = handle.join().unwrap_or_else(|_| Err("the migration's JS thread panicked".into()));
    if let Err(message) = outcome {
        // Dropping the transaction rolls back every step of this file.
        return Err(MigrationError::Failed { file: file.to_owned(), message });
    }
    match direction {
        Direction::Up => {
            tx.execute(
                "INSERT INTO _migrations (file, applied) VALUES (?1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))",
                [file],
            )?;
        }
        Direction::Down => {
            tx.execute("DELETE FROM _migrations WHERE file = ?1", [file])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::db::{migrate, open};

    fn db(dir: &Path) -> Connection {
        let mut conn = open::open(&dir.join("data.db"), open::Role::Writer).expect("open");
        migrate::run(&mut conn).expect("system migrations");
        conn
    }

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join(name), body).expect("write");
    }

    const COUNTER: &str = r#"migrate((app) => {
        app.db().newQuery("CREATE TABLE IF NOT EXISTS hits (n INTEGER)").execute();
        app.db().newQuery("INSERT INTO hits (n) VALUES ({:n})").bind({n: 1}).execute();
    }, (app) => {
        app.db().newQuery("DELETE FROM hits").execute();
    })"#;

    #[test]
    fn applied_once_in_order_and_reverted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut conn = db(tmp.path());
        let dir = tmp.path().join("m");
        write(&dir, "2_second.js", r#"migrate((app) => { app.db().newQuery("INSERT INTO hits (n) VALUES (2)").execute(); }, (app) => { app.db().newQuery("DELETE FROM hits WHERE n = 2").execute(); })"#);
        write(&dir, "1_first.js", COUNTER);
        write(&dir, "notes.txt", "not a migration");
        assert_eq!(up(&mut conn, &dir).expect("up"), ["1_first.js", "2_second.js"]);
        assert!(up(&mut conn, &dir).expect("again").is_empty(), "a second run applies nothing");
        let rows: Vec<i64> = conn.prepare("SELECT n FROM hits ORDER BY rowid").expect("prep").query_map([], |r| r.get(0)).expect("q").collect::<Result<_, _>>().expect("rows");
        assert_eq!(rows, [1, 2], "in file name order, each once");
        assert_eq!(down(&mut conn, &dir, 1).expect("down"), ["2_second.js"]);
        let left: i64 = conn.query_row("SELECT count(*) FROM hits", [], |r| r.get(0)).expect("count");
        assert_eq!(left, 1);
        let ledger: i64 = conn.query_row("SELECT count(*) FROM _migrations WHERE file LIKE '%.js'", [], |r| r.get(0)).expect("ledger");
        assert_eq!(ledger, 1);
        // history-sync forgets an applied file that is gone, and only JS rows.
        let system_before: i64 = conn.query_row("SELECT count(*) FROM _migrations WHERE file NOT LIKE '%.js'", [], |r| r.get(0)).expect("count");
        assert!(history_sync(&conn, &dir).expect("sync").is_empty(), "positive control: every applied file still exists");
        std::fs::remove_file(dir.join("1_first.js")).expect("rm");
        assert_eq!(history_sync(&conn, &dir).expect("sync"), ["1_first.js"]);
        let system_after: i64 = conn.query_row("SELECT count(*) FROM _migrations WHERE file NOT LIKE '%.js'", [], |r| r.get(0)).expect("count");
        assert_eq!(system_before, system_after);
    }

    #[test]
    fn a_failing_migration_rolls_back_all_of_its_steps() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut conn = db(tmp.path());
        let dir = tmp.path().join("m");
        write(&dir, "1_ok.js", COUNTER);
        write(&dir, "2_bad.js", r#"migrate((app) => {
            app.db().newQuery("INSERT INTO hits (n) VALUES (99)").execute();
            app.save(new Collection({name: "has space"}));
        })"#);
        let err = up(&mut conn, &dir).expect_err("must fail");
        assert!(err.to_string().contains("2_bad.js"), "{err}");
        let n99: i64 = conn.query_row("SELECT count(*) FROM hits WHERE n = 99", [], |r| r.get(0)).expect("count");
        assert_eq!(n99, 0, "the failed file's first step was rolled back");
        let n1: i64 = conn.query_row("SELECT count(*) FROM hits WHERE n = 1", [], |r| r.get(0)).expect("count");
        assert_eq!(n1, 1, "positive control: the file before it stays applied");
    }

    #[test]
    fn seed_records_go_through_record_validation() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut conn = db(tmp.path());
        let dir = tmp.path().join("m");
        write(&dir, "1_seed.js", r#"migrate((app) => {
            const c = new Collection({ name: "posts", fields: [{ name: "title", type: "text", required: true }] });
            app.save(c);
            const r = new Record(c, { title: "first" });
            app.save(r);
            const again = app.findRecordById("posts", r.id);
            again.set("title", again.getString("title") + "!");
            app.save(again);
            const users = app.findCollectionByNameOrId("users");
            const u = new Record(users);
            u.setEmail("seed@example.com");
            u.setPassword("a long password");
            u.setVerified(true);
            app.save(u);
        })"#);
        write(&dir, "2_invalid.js", r#"migrate((app) => { app.save(new Record(app.findCollectionByNameOrId("posts"), {})); })"#);
        let err = up(&mut conn, &dir).expect_err("the second file misses a required field");
        assert!(err.to_string().contains("title"), "{err}");
        let title: String = conn.query_row("SELECT title FROM posts", [], |r| r.get(0)).expect("seeded");
        assert_eq!(title, "first!");
        let hash: String = conn.query_row("SELECT password FROM users WHERE email = 'seed@example.com'", [], |r| r.get(0)).expect("user");
        assert!(hash.starts_with("$argon2id$"), "the password is hashed: {hash}");
    }

    #[test]
    fn default_dir_is_beside_the_data_dir() {
        assert_eq!(resolve_dir(None, Path::new("/srv/app/pb_data")), PathBuf::from("/srv/app/pb_migrations"));
        assert_eq!(resolve_dir(Some(Path::new("/m")), Path::new("/srv/app/pb_data")), PathBuf::from("/m"));
    }
}
