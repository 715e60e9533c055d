//! `vaultbase migrate up | down [N] | create NAME | collections | history-sync`, as
//! PocketBase's `migrate` command, without its interactive confirmations.
//!
//! `up`, `down` and `history-sync` change the database, so they need the data dir to
//! themselves: they take its lock (and run the system migrations first, so a fresh dir
//! works). The one exception is the supervisor of a cluster, which holds the lock and runs
//! `migrate up` as its child before any worker starts: a lock held by our parent process is
//! accepted. Against a running server they refuse — a server applies pending migrations when
//! it starts, so stop it, migrate, start it. `create` and `collections` only write files.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{resolve_dir, MigrationError};
use crate::shared::cli::MigrateAction;
use crate::shared::config::Config;
use crate::shared::data_dir::DataDir;
use crate::shared::db::{migrate, open};
use crate::shared::lock::{DirLock, LockError};
use crate::worker::records::store;

#[derive(Debug, thiserror::Error)]
pub enum MigrateCliError {
    #[error("opening data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("data dir {dir} is in use by a running vaultbase (pid {pid}), which applies pending migrations when it starts; stop it before `migrate {action}`")]
    InUse { dir: String, pid: String, action: &'static str },
    #[error(transparent)]
    Lock(LockError),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("reading the collections: {0}")]
    Collections(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("invalid migration name {0:?}: use letters, digits, spaces, '-' or '_'")]
    BadName(String),
}

/// Runs the command; returns the lines to print on success.
pub fn run(cfg: &Config, action: MigrateAction) -> Result<Vec<String>, MigrateCliError> {
    let dir = DataDir::create(&cfg.data_dir)
        .map_err(|source| MigrateCliError::DataDir { path: cfg.data_dir.display().to_string(), source })?;
    let migrations = resolve_dir(cfg.migrations_dir.as_deref(), dir.root());
    match action {
        MigrateAction::Create(name) => create(&migrations, &name).map(|p| vec![format!("Created {}", p.display())]),
        MigrateAction::Collections => {
            let conn = open::open(&dir.db_path(), open::Role::Reader)?;
            snapshot(&conn, &migrations).map(|p| vec![format!("Created {}", p.display())])
        }
        MigrateAction::Up => {
            let (_lock, mut conn) = exclusive(&dir, "up")?;
            let applied = super::up(&mut conn, &migrations)?;
            if applied.is_empty() {
                return Ok(vec!["No new migrations to apply.".into()]);
            }
            Ok(applied.into_iter().map(|f| format!("Applied {f}")).collect())
        }
        MigrateAction::Down(n) => {
            let (_lock, mut conn) = exclusive(&dir, "down")?;
            let reverted = super::down(&mut conn, &migrations, n)?;
            if reverted.is_empty() {
                return Ok(vec!["No applied migrations to revert.".into()]);
            }
            Ok(reverted.into_iter().map(|f| format!("Reverted {f}")).collect())
        }
        MigrateAction::HistorySync => {
            let (_lock, conn) = exclusive(&dir, "history-sync")?;
            let gone = super::history_sync(&conn, &migrations)?;
            Ok(vec![format!("Removed {} applied migration(s) without a file.", gone.len())])
        }
    }
}

/// The data dir's lock (or our parent's, see the module doc) and a migrated connection.
fn exclusive(dir: &DataDir, action: &'static str) -> Result<(Option<DirLock>, Connection), MigrateCliError> {
    let lock = match DirLock::acquire(&dir.lock_path(), dir.root()) {
        Ok(lock) => Some(lock),
        Err(LockError::Held { pid, .. }) if pid == std::os::unix::process::parent_id().to_string() => None,
        Err(LockError::Held { pid, dir }) => return Err(MigrateCliError::InUse { dir, pid, action }),
        Err(e) => return Err(MigrateCliError::Lock(e)),
    };
    let mut conn = open::open(&dir.db_path(), open::Role::Writer)?;
    migrate::run(&mut conn)?;
    Ok((lock, conn))
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `AddPosts table` → `add_posts_table`: PocketBase's snake-cased file name part.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for ch in name.trim().chars() {
        if ch.is_ascii_alphanumeric() {
            if ch.is_ascii_uppercase() && prev_lower && !out.ends_with('_') {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
            prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    out.trim_matches('_').to_owned()
}

fn write_new(dir: &Path, file: &str, body: &str) -> Result<PathBuf, MigrateCliError> {
    let path = dir.join(file);
    let fail = |source| MigrateCliError::Write { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(fail)?;
    f.write_all(body.as_bytes()).map_err(fail)?;
    Ok(path)
}

fn create(dir: &Path, name: &str) -> Result<PathBuf, MigrateCliError> {
    let snake = snake_case(name);
    if snake.is_empty() || name.chars().any(|c| !(c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '_')) {
        return Err(MigrateCliError::BadName(name.to_owned()));
    }
    let body = "migrate((app) => {\n  // changes to apply\n}, (app) => {\n  // how to undo them (optional)\n})\n";
    write_new(dir, &format!("{}_{snake}.js", unix_seconds()), body)
}

fn snapshot(conn: &Connection, dir: &Path) -> Result<PathBuf, MigrateCliError> {
    let (_, all) = store::load_all(conn).map_err(|e| MigrateCliError::Collections(e.to_string()))?;
    let json = serde_json::to_string_pretty(&all).map_err(|e| MigrateCliError::Collections(e.to_string()))?;
    let indented = json.lines().collect::<Vec<_>>().join("\n  ");
    let body = format!(
        "migrate((app) => {{\n  const snapshot = {indented};\n\n  return app.importCollections(snapshot, false);\n}}, (app) => {{\n  return null;\n}})\n"
    );
    write_new(dir, &format!("{}_collections_snapshot.js", unix_seconds()), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_cased() {
        assert_eq!(snake_case("add stuff"), "add_stuff");
        assert_eq!(snake_case("AddPosts table"), "add_posts_table");
        assert_eq!(snake_case("  x--y  "), "x_y");
    }
}
