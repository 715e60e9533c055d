//! `/api/backups` (PocketBase's backups API) and `POST /api/admin/restore` (vaultbase's:
//! restore from a bare database file). Parse, authorize (the router checks superusers; the
//! download checks its file token here), call `ops::backups` / `ops::restore`, respond.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::shared::backup::{self, archive};
use crate::worker::actor::Actor;
use crate::worker::http::body::{json as json_response, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{json_object, Query};
use crate::worker::ops::backups::{self as ops, BackupsError};
use crate::worker::ops::restore;
use crate::worker::records::values::datetime::format_datetime;
use crate::worker::state::AppState;

/// PocketBase's words when a second backup or restore is asked for.
pub const BUSY_MESSAGE: &str = "Try again later - another backup/restore operation has already been started.";
/// An uploaded backup or restore body, at most (PocketBase has no limit; this is a sanity cap).
pub const MAX_UPLOAD_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// The key in a path, `%XX` escapes decoded (the SDK encodes it: automatic backups start with
/// `@`). A malformed escape yields a key no backup has.
fn decoded(raw: &str) -> String {
    super::crons::decode_segment(raw).unwrap_or_default()
}

fn no_content() -> Response<ResBody> {
    let mut res = crate::worker::http::body::full(Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

fn field_error(field: &str, code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert(field.to_owned(), json!({ "code": code, "message": message }));
    ApiError::validation("An error occurred while validating the submitted data.", data)
}

fn ops_error(e: BackupsError) -> ApiError {
    match e {
        BackupsError::Busy => ApiError::bad_request(BUSY_MESSAGE),
        BackupsError::NotFound => ApiError::not_found(),
        BackupsError::Exists => field_error("name", "validation_backup_name_exists", "The backup file name is invalid or already exists."),
        BackupsError::Backup(backup::BackupError::Invalid(why)) => ApiError::bad_request(format!("Invalid backup: {why}.")),
        BackupsError::Restore(restore::RestoreError::Failed(why)) => {
            tracing::error!(error = %why, "restore failed");
            ApiError::bad_request("The restore failed; the previous data is still in place.")
        }
        other => ApiError::internal(other),
    }
}

/// `GET /api/backups`.
pub async fn list(state: &AppState) -> Result<Response<ResBody>, ApiError> {
    let listed = ops::list(state).await.map_err(ops_error)?;
    let items: Vec<Value> = listed
        .into_iter()
        .map(|b| {
            let ms = b.modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
            json!({ "key": b.key, "size": b.size, "modified": format_datetime(ms) })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &items))
}

/// `POST /api/backups` `{name?}`.
pub async fn create(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, "Failed to load the submitted data due to invalid formatting.").await?;
    let name = match body.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(field_error("name", "validation_invalid_string", "Must be a valid string.")),
    };
    let name = if name.is_empty() {
        let loaded = state.settings.fresh(&state.db).await.map_err(ApiError::internal)?;
        ops::generated_name("pb_backup_", &loaded.settings.meta.app_name, std::time::SystemTime::now())
    } else if ops::valid_name(&name) {
        name
    } else {
        return Err(field_error("name", "validation_match_invalid", "Must be in a valid format."));
    };
    let guard = ops::begin(state).await.map_err(ops_error)?;
    ops::create(state, &name, &guard).await.map_err(ops_error)?;
    Ok(no_content())
}

/// Receives the multipart part `file` into a temporary file in the data dir; returns it with
/// the part's file name.
async fn receive_file(state: &AppState, req: Request<Incoming>, field: &str) -> Result<Option<(PathBuf, String)>, ApiError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bad = || ApiError::bad_request("Failed to load the submitted data due to invalid formatting.");
    let boundary = multer::parse_boundary(&content_type).map_err(|_| bad())?;
    let over = Arc::new(AtomicBool::new(false));
    let stream = super::uploads::counted(req.into_body(), MAX_UPLOAD_BYTES, over.clone());
    let mut multipart = multer::Multipart::new(stream, boundary);
    let multer_error = |_: multer::Error| if over.load(Ordering::Relaxed) { ApiError::payload_too_large() } else { bad() };
    while let Some(mut part) = multipart.next_field().await.map_err(multer_error)? {
        if part.name() != Some(field) {
            while part.chunk().await.map_err(multer_error)?.is_some() {}
            continue;
        }
        let name = part.file_name().unwrap_or("blob").rsplit(['/', '\\']).next().unwrap_or("blob").to_owned();
        let path = state.config.data_dir.join(format!(".upload-{}", backup::stamp()));
        let mut out = tokio::fs::File::create(&path).await.map_err(ApiError::internal)?;
        let written = async {
            while let Some(chunk) = part.chunk().await.map_err(multer_error)? {
                out.write_all(&chunk).await.map_err(ApiError::internal)?;
            }
            out.flush().await.map_err(ApiError::internal)
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        return Ok(Some((path, name)));
    }
    Ok(None)
}

/// Whether the file at `path` starts like a zip archive.
async fn is_zip(path: &std::path::Path) -> bool {
    let mut head = [0u8; 4];
    match tokio::fs::File::open(path).await {
        Ok(mut f) => tokio::io::AsyncReadExt::read_exact(&mut f, &mut head).await.is_ok() && head == *b"PK\x03\x04",
        Err(_) => false,
    }
}

/// `POST /api/backups/upload` (multipart `file`).
pub async fn upload(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let Some((path, name)) = receive_file(state, req, "file").await? else {
        return Err(field_error("file", "validation_required", "Cannot be blank."));
    };
    let stored = async {
        if !is_zip(&path).await {
            return Err(field_error("file", "validation_invalid_mime_type", &format!("\"{name}\" mime type must be one of: application/zip.")));
        }
        if !ops::safe_key(&name) {
            return Err(field_error("file", "validation_invalid_name", "The file name is invalid."));
        }
        ops::store_upload(state, &name, &path).await.map_err(|e| match e {
            BackupsError::Exists => field_error("file", "validation_backup_name_exists", "Backup file with the specified name already exists."),
            other => ops_error(other),
        })
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    stored.map(|()| no_content())
}

/// `GET /api/backups/{key}?token=` — a superuser's file token, no Authorization needed.
pub async fn download(state: &AppState, key: &str, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let key = &decoded(key);
    let query = Query::parse(req.uri().query());
    let actor = match query.get("token").filter(|t| !t.is_empty()) {
        Some(token) => super::files::file_token_actor(state, token).await,
        None => Actor::Guest,
    };
    if !actor.is_superuser() {
        return Err(ApiError::forbidden("Insufficient permissions to access the resource."));
    }
    if !ops::safe_key(key) {
        return Err(ApiError::not_found());
    }
    let storage = ops::store(state).await.map_err(ops_error)?;
    let Some(info) = storage.head(key).await.map_err(|e| ops_error(e.into()))? else { return Err(ApiError::not_found()) };
    let mut stream = storage.stream(key, None).await.map_err(|e| ops_error(e.into()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>(8);
    let shown = key.to_owned();
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(Ok(hyper::body::Frame::data(bytes))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Short of its Content-Length, the response ends the connection: a failed
                    // download, never a truncated file taken for a whole one.
                    tracing::warn!(key = shown, error = %e, "reading a backup for download failed");
                    return;
                }
            }
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream_of(rx));
    let mut res = Response::new(http_body_util::BodyExt::boxed(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    let quoted: String = key.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control()).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{quoted}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

fn tokio_stream_of<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `DELETE /api/backups/{key}`.
pub async fn delete(state: &AppState, key: &str) -> Result<Response<ResBody>, ApiError> {
    let key = &decoded(key);
    // A backup being restored from is in use: the operation lock says one is running.
    let _guard = ops::begin(state).await.map_err(ops_error)?;
    match ops::delete(state, key).await {
        Ok(()) => Ok(no_content()),
        Err(BackupsError::NotFound) => Err(ApiError::bad_request("Invalid or already deleted backup file.")),
        Err(e) => Err(ops_error(e)),
    }
}

/// `POST /api/backups/{key}/restore`: answered once every worker serves the restored data.
pub async fn restore_backup(state: &AppState, key: &str) -> Result<Response<ResBody>, ApiError> {
    let key = &decoded(key);
    let _guard = ops::begin(state).await.map_err(ops_error)?;
    let staged = match ops::stage(state, key).await {
        Ok(s) => s,
        Err(BackupsError::NotFound) => return Err(ApiError::bad_request("Missing or invalid backup file.")),
        Err(e) => return Err(ops_error(e)),
    };
    restore::run(state, staged).await.map_err(|e| ops_error(e.into()))?;
    Ok(no_content())
}

/// `POST /api/admin/restore`: the body is a database file (raw, gzipped, or the multipart
/// part `file`), as `vaultbase backup` writes it. The current `storage/` is kept.
pub async fn admin_restore(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let _guard = ops::begin(state).await.map_err(ops_error)?;
    let multipart = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let path = if multipart {
        match receive_file(state, req, "file").await? {
            Some((path, _)) => path,
            None => return Err(field_error("file", "validation_required", "Cannot be blank.")),
        }
    } else {
        let path = state.config.data_dir.join(format!(".upload-{}", backup::stamp()));
        let over = Arc::new(AtomicBool::new(false));
        let mut stream = Box::pin(super::uploads::counted(req.into_body(), MAX_UPLOAD_BYTES, over));
        let mut out = tokio::fs::File::create(&path).await.map_err(ApiError::internal)?;
        let written = async {
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk.map_err(|_| ApiError::bad_request("Failed to read the request body."))?).await.map_err(ApiError::internal)?;
            }
            out.flush().await.map_err(ApiError::internal)
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        path
    };
    let root = state.config.data_dir.clone();
    let p = path.clone();
    let staged = tokio::task::spawn_blocking(move || archive::stage_db(&root, &p)).await;
    let _ = tokio::fs::remove_file(&path).await;
    let staged = staged.map_err(ApiError::internal)?.map_err(|e| ops_error(e.into()))?;
    restore::run(state, staged).await.map_err(|e| ops_error(e.into()))?;
    Ok(json_response(StatusCode::OK, &json!({ "message": "Restore complete. Existing tokens are still valid." })))
}
