//! What the dashboard's hooks page shows: the files of the hooks dir (name, size, text), the
//! error of the last reload that failed (file and line; the previous hooks keep running), and
//! the run history of the cron jobs the hook files registered. Read-only; it never loads or
//! runs hook code itself.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::shared::db::DbError;
use crate::worker::cron::store::{self, RunRow};
use crate::worker::hooks::loader::LoadError;
use crate::worker::hooks::HooksConfig;
use crate::worker::state::AppState;

/// Files larger than this are listed without their text.
pub const MAX_FILE_TEXT_BYTES: u64 = 256 * 1024;
/// Files listed at most (a hooks dir with a vendored library in it stays answerable).
pub const MAX_FILES: usize = 200;
/// Directory levels below the hooks dir that are listed.
const MAX_DEPTH: usize = 4;
/// Runs shown per cron job.
pub const RUNS_PER_JOB: i64 = 20;

/// The error of the last reload on this worker, cleared by a reload that succeeds. Every worker
/// watches the same files, so each holds the same answer.
static LAST_RELOAD_ERROR: Mutex<Option<LoadFailure>> = Mutex::new(None);

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadFailure {
    pub file: String,
    pub line: u32,
    pub message: String,
    /// Unix milliseconds of the failed reload.
    pub at_ms: u64,
}

/// Called by the hooks watcher after each reload.
pub fn note_reload(result: &Result<(), LoadError>) {
    let next = result.as_ref().err().map(|e| LoadFailure {
        file: e.file.clone(),
        line: e.line,
        message: e.message.clone(),
        at_ms: crate::shared::cluster_status::now_ms(),
    });
    match LAST_RELOAD_ERROR.lock() {
        Ok(mut g) => *g = next,
        Err(poisoned) => *poisoned.into_inner() = next,
    }
}

fn last_reload_error() -> Option<LoadFailure> {
    match LAST_RELOAD_ERROR.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookFile {
    /// Path below the hooks dir, `/`-separated.
    pub name: String,
    pub size: u64,
    /// None when too large or not UTF-8.
    pub content: Option<String>,
    /// Whether the current set loaded it (`*.pb.js` at the top level).
    pub loaded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CronView {
    pub id: String,
    pub expression: String,
    pub runs: Vec<RunRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HooksView {
    pub dir: String,
    pub watch: bool,
    pub files: Vec<HookFile>,
    /// True when the dir holds more than [`MAX_FILES`] files.
    pub truncated: bool,
    pub errors: Vec<LoadFailure>,
    pub crons: Vec<CronView>,
}

fn list_files(root: &Path) -> (Vec<(String, PathBuf, u64)>, bool) {
    fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "node_modules" {
                continue;
            }
            // symlink_metadata: a link is listed as what it is, never followed out of the dir.
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
            if meta.is_dir() {
                if depth < MAX_DEPTH {
                    walk(root, &e.path(), depth + 1, out);
                }
            } else if meta.is_file() {
                let rel = e.path().strip_prefix(root).map(|p| p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/"));
                if let Ok(rel) = rel {
                    out.push((rel, e.path(), meta.len()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, 0, &mut out);
    out.sort();
    let truncated = out.len() > MAX_FILES;
    out.truncate(MAX_FILES);
    (out, truncated)
}

/// Reads the hooks dir (on a blocking thread) and the cron runs (on a read connection).
pub async fn hooks_view(state: &AppState) -> Result<HooksView, DbError> {
    let cfg = HooksConfig::from_config(&state.config);
    let loaded = state.hooks.current();
    let loaded_files: Vec<PathBuf> = loaded.registry.files.clone();
    let dir = cfg.dir.clone();
    let files = tokio::task::spawn_blocking(move || {
        let (list, truncated) = list_files(&dir);
        let files = list
            .into_iter()
            .map(|(name, path, size)| {
                let content = if size <= MAX_FILE_TEXT_BYTES { std::fs::read(&path).ok().and_then(|b| String::from_utf8(b).ok()) } else { None };
                let loaded = loaded_files.contains(&path);
                HookFile { name, size, content, loaded }
            })
            .collect::<Vec<_>>();
        (files, truncated)
    })
    .await
    .unwrap_or_default();
    let jobs: Vec<(String, String)> = loaded.registry.crons.iter().map(|c| (c.id.clone(), c.expr.clone())).collect();
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    let mut runs = state
        .db
        .read(move |c| -> Result<Vec<Vec<RunRow>>, DbError> { ids.iter().map(|id| Ok(store::runs_of(c, id, RUNS_PER_JOB)?)).collect() })
        .await?;
    runs.resize_with(jobs.len(), Vec::new);
    let crons = jobs.into_iter().zip(runs).map(|((id, expression), runs)| CronView { id, expression, runs }).collect();
    Ok(HooksView {
        dir: cfg.dir.display().to_string(),
        watch: cfg.watch,
        files: files.0,
        truncated: files.1,
        errors: last_reload_error().into_iter().collect(),
        crons,
    })
}
