//! `/api/files/…` and `POST /api/settings/test/s3`: downloads of record files (Content-Type
//! from the sniffed bytes, `Content-Disposition`, ETag/Last-Modified with 304, one HTTP
//! Range with 206/416, thumbnails), file tokens for protected fields, and the S3 check.
//!
//! A download is found only through a record that names the file in one of its file fields,
//! so a URL can never reach another record's file or anything outside storage: the key is
//! built from the collection's id, the stored record id and the stored name. Every failure
//! to find or to be allowed a file is the same 404 (PocketBase), so probing learns nothing.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::worker::actor::{Actor, AuthRecord};
use crate::worker::auth::jwt::{self, Claims, TokenKind, TokenType};
use crate::worker::files::storage::{ObjectInfo, Storage, StorageError};
use crate::worker::files::{self, names, sniff, thumbs, FilesError};
use crate::worker::http::body::{json as json_response, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{json_object, Query};
use crate::worker::records::cache::Snapshot;
use crate::worker::records::crud::{self, CrudError, Requester};
use crate::worker::records::schema::field::FileOptions;
use crate::worker::records::schema::{Collection, CollectionType, FieldKind};
use crate::worker::records::values::to_string_list;
use crate::worker::settings::{self as app_settings, SettingsError};
use crate::worker::state::AppState;

/// `Cache-Control` of public files (PocketBase: 30 days, revalidate in the background a day).
const PUBLIC_CACHE_CONTROL: &str = "max-age=2592000, stale-while-revalidate=86400";
/// Protected files are fetched with a short-lived token: never stored by shared caches.
const PROTECTED_CACHE_CONTROL: &str = "private, no-store";
/// PocketBase's sandbox for served files, so an uploaded HTML or SVG cannot run script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";
/// `@request.context` while a protected file's view rule is checked (PocketBase's name).
const PROTECTED_FILE_CONTEXT: &str = "protectedFile";
/// Chunks buffered between the storage stream and the connection (backpressure, bounded
/// memory per download).
const STREAM_CHUNKS_BUFFERED: usize = 4;

fn missing_collection() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid collection context.")
}

fn files_error(e: FilesError) -> ApiError {
    ApiError::internal(e)
}

fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found(),
        other => ApiError::internal(other),
    }
}

/// What a download needs from the database: the file field holding the name, if any.
struct Found {
    options: FileOptions,
}

/// `GET|HEAD /api/files/{collection}/{record}/{filename}`
pub async fn download(state: &AppState, collection: &str, record_id: &str, filename: &str, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    if !names::safe_segment(record_id) || !names::safe_segment(filename) {
        return Err(ApiError::not_found());
    }
    let actor = match query.get("token").filter(|t| !t.is_empty()) {
        Some(token) => file_token_actor(state, token).await,
        None => Actor::Guest,
    };
    let mut requester = super::records::requester(&actor, req.method(), &query, req.headers(), Map::new());
    requester.ctx.context = PROTECTED_FILE_CONTEXT.into();
    let mut looked_up = None;
    for retry in [false, true] {
        // The held snapshot plans the lookup; the job checks its version in the same read
        // transaction, so a field made protected through another worker is in force here for
        // the very next request, whether or not that worker's bus message has arrived.
        let snap = state.schema.for_job(&state.db, collection, retry).await.map_err(ApiError::internal)?;
        let c = snap.get(collection).cloned().ok_or_else(missing_collection)?;
        if c.kind == CollectionType::View {
            // A view's files live with their source records, which this build does not resolve.
            return Err(ApiError::not_found());
        }
        let (job_c, job_id, job_name, job_req) = (c.clone(), record_id.to_owned(), filename.to_owned(), requester.clone());
        let job = state
            .db
            .read(move |conn| -> Result<Option<Found>, CrudError> {
                crud::read_snapshot(conn, |conn| {
                    snap.check(conn)?;
                    find_allowed(conn, &snap, &job_c, &job_req, &job_id, &job_name)
                })
            })
            .await;
        match job {
            Err(CrudError::Stale(_)) if !retry => state.schema.invalidate(),
            other => {
                looked_up = Some((c, other.map_err(|e| super::records::crud_error(e, ""))?));
                break;
            }
        }
    }
    let Some((c, found)) = looked_up else { return Err(ApiError::not_found()) };
    let Some(found) = found else { return Err(ApiError::not_found()) };
    let key = names::original_key(&c.id, record_id, filename).ok_or_else(ApiError::not_found)?;
    let storage = files::storage(state.storage_source()).await.map_err(files_error)?;
    let Some(info) = storage.head(&key).await.map_err(storage_error)? else { return Err(ApiError::not_found()) };
    let head = storage.get_range(&key, 0..info.size.min(sniff::SNIFF_BYTES as u64)).await.map_err(storage_error)?;
    let mime = sniff::sniff(&head);

    let mut served = (key.clone(), info);
    if let Some(asked) = query.get("thumb").filter(|t| !t.is_empty() && served.1.size <= thumbs::MAX_SOURCE_BYTES) {
        if let (Some(spec), Some(format)) = (thumbs::parse(asked), thumbs::format_of(mime)) {
            if thumbs::allowed(&found.options.thumbs, asked) {
                match ensure_thumb(state, &storage, &key, (&c.id, record_id, filename), asked, spec, format).await {
                    Ok(Some(thumb)) => served = thumb,
                    Ok(None) => {}
                    // PocketBase serves the original when a thumbnail cannot be made.
                    Err(e) => tracing::warn!(key, thumb = asked, error = %e, "thumbnail failed; serving the original"),
                }
            }
        }
    }
    let download = matches!(query.get("download"), Some("1" | "true" | "t" | "True" | "TRUE"));
    let public = !found.options.protected;
    serve(&storage, req.method(), req.headers(), &served.0, &served.1, filename, mime, download, public).await
}

/// The file field of record `record_id` that holds `filename`, if the requester may read it.
fn find_allowed(conn: &rusqlite::Connection, snap: &Snapshot, c: &Collection, requester: &Requester, record_id: &str, filename: &str) -> Result<Option<Found>, CrudError> {
    let Some(record) = crud::existing(conn, c, record_id)? else { return Ok(None) };
    let field = c.fields.iter().find_map(|f| match &f.kind {
        FieldKind::File(o) if record.get(&f.name).map(to_string_list).is_some_and(|l| l.iter().any(|n| n == filename)) => Some(o.clone()),
        _ => None,
    });
    let Some(options) = field else { return Ok(None) };
    if options.protected && !requester.superuser {
        // As PocketBase: the view rule decides, with the file token's record as
        // `@request.auth` (a guest without one); a null rule admits superusers only.
        let allowed = match c.view_rule.as_deref() {
            None => false,
            Some(rule) => crud::passes(conn, snap, c, requester, record_id, Some(rule).filter(|r| !r.trim().is_empty()))?,
        };
        if !allowed {
            return Ok(None);
        }
    }
    Ok(Some(Found { options }))
}

#[derive(Debug, thiserror::Error)]
enum ThumbFailure {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Image(#[from] thumbs::ThumbError),
    #[error("thumbnail job: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("thumbnail gate closed")]
    Closed(#[from] tokio::sync::AcquireError),
}

/// The thumbnail's key and info, generating it first if needed: one generation per key at a
/// time in this process (later requests wait and then find it stored), at most CPUs + 2 at
/// once, the image work on the blocking pool.
async fn ensure_thumb(
    state: &AppState,
    storage: &Storage,
    original_key: &str,
    (collection_id, record_id, name): (&str, &str, &str),
    asked: &str,
    spec: thumbs::Spec,
    format: image::ImageFormat,
) -> Result<Option<(String, ObjectInfo)>, ThumbFailure> {
    let Some(key) = names::thumb_key(collection_id, record_id, name, asked) else { return Ok(None) };
    if let Some(info) = storage.head(&key).await? {
        return Ok(Some((key, info)));
    }
    let lock = state.files.thumbs.locks.get(&key);
    let result = async {
        let _one_at_a_time = match lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                state.files.thumbs.note_wait();
                lock.lock().await
            }
        };
        if let Some(info) = storage.head(&key).await? {
            return Ok(Some((key.clone(), info)));
        }
        let _permit = state.files.thumbs.permits.acquire().await?;
        state.files.thumbs.test_pause().await;
        let source = storage.get_all(original_key).await?;
        let bytes = tokio::task::spawn_blocking(move || thumbs::generate(&source, format, spec)).await??;
        storage.put_bytes(&key, Bytes::from(bytes)).await?;
        tracing::info!(key, "thumbnail generated");
        Ok(storage.head(&key).await?.map(|info| (key.clone(), info)))
    }
    .await;
    state.files.thumbs.locks.release(&key, lock);
    result
}

/// Resolves a `?token=` file token to its auth record; anything wrong is a guest.
pub(crate) async fn file_token_actor(state: &AppState, token: &str) -> Actor {
    let Ok(claims) = jwt::peek(token) else { return Actor::Guest };
    let now = jwt::unix_now();
    if claims.token_type != TokenType::File || claims.is_expired(now) {
        return Actor::Guest;
    }
    let mut loaded = None;
    for retry in [false, true] {
        // As for bearer tokens: the load checks the snapshot's version in its own transaction.
        let Ok(snap) = state.schema.for_job(&state.db, &claims.collection_id, retry).await else { return Actor::Guest };
        let Some(collection) = snap.get(&claims.collection_id).cloned() else { return Actor::Guest };
        if collection.kind != CollectionType::Auth || collection.id != claims.collection_id {
            return Actor::Guest;
        }
        let (c, id) = (collection.clone(), claims.id.clone());
        let job = state
            .db
            .read(move |conn| {
                crud::read_snapshot(conn, |conn| {
                    snap.check(conn)?;
                    crud::existing(conn, &c, &id)
                })
            })
            .await;
        match job {
            Ok(Some(record)) => {
                loaded = Some((collection, record));
                break;
            }
            Err(CrudError::Stale(_)) if !retry => state.schema.invalidate(),
            _ => return Actor::Guest,
        }
    }
    let Some((collection, record)) = loaded else { return Actor::Guest };
    let auth = AuthRecord { collection, record, refreshable: false, token: token.to_owned() };
    let collection_secret = crate::worker::actor::token_secret(&auth.collection, TokenType::File);
    match jwt::verify_for(&state.jwt_secret, collection_secret, token, TokenType::File, &auth.collection.id, auth.token_key(), now) {
        Ok(_) => Actor::Auth(Arc::new(auth)),
        Err(_) => Actor::Guest,
    }
}

/// `POST /api/files/token`: a short-lived file token for the authenticated record.
pub async fn token(state: &AppState, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let Some(auth) = actor.auth() else {
        return Err(ApiError::unauthorized("The request requires valid record authorization token."));
    };
    let ttl_secs = auth.collection.auth.as_ref().map(|a| a.file_token.duration).filter(|d| *d > 0);
    let ttl = Duration::from_secs(ttl_secs.unwrap_or(crate::worker::records::schema::collection::FILE_TOKEN_TTL_SECS));
    let claims = Claims {
        id: auth.id().to_owned(),
        collection_id: auth.collection.id.clone(),
        kind: TokenKind::File,
        exp: jwt::expires_at(jwt::unix_now(), ttl),
    };
    let collection_secret = crate::worker::actor::token_secret(&auth.collection, TokenType::File);
    let token = jwt::sign_for(&state.jwt_secret, collection_secret, &claims, auth.token_key()).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, &json!({ "token": token })))
}

/// `POST /api/settings/test/s3` (superusers): `{filesystem: "storage"|"backups"}`; 204 when
/// a probe object can be written, read and deleted with the saved settings.
pub async fn test_s3(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, "Failed to load the submitted data due to invalid formatting.").await?;
    let filesystem = body.get("filesystem").and_then(Value::as_str).unwrap_or_default().to_owned();
    if filesystem != "storage" && filesystem != "backups" {
        let mut data = Map::new();
        data.insert("filesystem".into(), json!({"code": "validation_in_invalid", "message": "Must be a valid value."}));
        return Err(ApiError::validation("An error occurred while validating the submitted data.", data));
    }
    let loaded = state.settings.fresh(&state.db).await.map_err(ApiError::internal)?;
    let secrets = state.db.read(app_settings::load_secrets).await.map_err(|e: SettingsError| ApiError::internal(e))?;
    let (cfg, secret) = if filesystem == "storage" {
        (loaded.settings.s3.clone(), secrets.s3_secret)
    } else {
        (loaded.settings.backups.s3.clone(), secrets.backups_s3_secret)
    };
    if !cfg.enabled {
        return Err(ApiError::bad_request("S3 storage filesystem is not enabled."));
    }
    let probe_key = format!(".vaultbase_s3_test_{}", crate::worker::auth::random::new_id().map_err(ApiError::internal)?);
    let checked = match files::build(state.files.data_dir(), &cfg, &secret).await {
        Ok(storage) => storage.probe(&probe_key).await.map_err(FilesError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        // The backend's message names the endpoint and the failure, never the secret.
        return Err(ApiError::bad_request(format!("Failed to initialize the S3 storage. Raw error: {e}")));
    }
    let mut res = Response::new(http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed());
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

/// A single byte range asked for with `Range`, resolved against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable single range: the whole object (a multi-range or malformed header is
    /// ignored, as RFC 9110 allows).
    Full,
    /// Inclusive first and last byte.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Resolves a `Range` header value for an object of `size` bytes.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.map(str::trim).and_then(|h| h.strip_prefix("bytes=")) else { return RangeAsk::Full };
    if spec.contains(',') {
        return RangeAsk::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeAsk::Full };
    let num = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    match (first.trim(), last.trim()) {
        ("", suffix) => match num(suffix) {
            None => RangeAsk::Full,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(size.saturating_sub(n), size - 1),
        },
        (a, "") => match num(a) {
            None => RangeAsk::Full,
            Some(a) if a >= size => RangeAsk::Unsatisfiable,
            Some(a) => RangeAsk::Part(a, size - 1),
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Part(a, b.min(size - 1))
                }
            }
            _ => RangeAsk::Full,
        },
    }
}

fn quoted_etag(info: &ObjectInfo) -> String {
    match &info.etag {
        Some(t) if !t.is_empty() => format!("\"{}\"", t.replace('"', "")),
        _ => {
            let nanos = info.modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            format!("\"{:x}-{:x}\"", info.size, nanos)
        }
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, `*` matches anything).
fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").trim_matches('"').to_owned();
    let ours = bare(etag);
    header.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return none_match(inm, etag);
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| seconds(modified) <= seconds(since))
}

/// `If-Range` allows the range only while the validator it carries is current.
fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag || v.trim() == last_modified,
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    storage: &Storage,
    method: &Method,
    req_headers: &HeaderMap,
    key: &str,
    info: &ObjectInfo,
    filename: &str,
    mime: &str,
    download: bool,
    public: bool,
) -> Result<Response<ResBody>, ApiError> {
    let etag = quoted_etag(info);
    let last_modified = httpdate::fmt_http_date(info.modified);
    let mut res = Response::new(http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed());
    {
        let h = res.headers_mut();
        h.insert(header::ETAG, header_value(&etag));
        h.insert(header::LAST_MODIFIED, header_value(&last_modified));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if public { PUBLIC_CACHE_CONTROL } else { PROTECTED_CACHE_CONTROL }));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if not_modified(req_headers, &etag, info.modified) {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(res);
    }
    let served_type = sniff::served_type(filename, mime);
    let disposition = if download || !sniff::is_inline(&served_type) { "attachment" } else { "inline" };
    {
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, header_value(&served_type));
        // Stored names never hold quotes or backslashes; dropped anyway so no name can break
        // out of the quoted string.
        let quoted: String = filename.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control()).collect();
        h.insert(header::CONTENT_DISPOSITION, header_value(&format!("{disposition}; filename=\"{quoted}\"")));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    }
    let size = info.size;
    let asked = req_headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = if if_range_holds(req_headers, &etag, &last_modified) { parse_range(asked, size) } else { RangeAsk::Full };
    let (status, start, len) = match range {
        RangeAsk::Full => (StatusCode::OK, 0, size),
        RangeAsk::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        RangeAsk::Unsatisfiable => {
            *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            res.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            res.headers_mut().remove(header::CONTENT_DISPOSITION);
            return Ok(res);
        }
    };
    *res.status_mut() = status;
    if status == StatusCode::PARTIAL_CONTENT {
        res.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes {start}-{}/{size}", start + len - 1)));
    }
    res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method == Method::HEAD || len == 0 {
        return Ok(res);
    }
    let range = (start != 0 || len != size).then_some(start..start + len);
    let mut stream = storage.stream(key, range).await.map_err(storage_error)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHUNKS_BUFFERED);
    let key_for_log = key.to_owned();
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    // Ending early leaves the response short of its Content-Length, which
                    // closes the connection: the client sees a failed download, not bad bytes.
                    tracing::warn!(key = key_for_log, error = %e, "reading a file for download failed");
                    return;
                }
            }
        }
    });
    *res.body_mut() = ChannelBody { rx, remaining: len }.boxed();
    Ok(res)
}

/// A response body fed by a bounded channel from the task reading storage.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(bytes)) => {
                self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 1000), RangeAsk::Full);
        assert_eq!(parse_range(Some("bytes=0-99"), 1000), RangeAsk::Part(0, 99));
        assert_eq!(parse_range(Some("bytes=900-"), 1000), RangeAsk::Part(900, 999));
        assert_eq!(parse_range(Some("bytes=-100"), 1000), RangeAsk::Part(900, 999));
        assert_eq!(parse_range(Some("bytes=-5000"), 1000), RangeAsk::Part(0, 999));
        assert_eq!(parse_range(Some("bytes=990-5000"), 1000), RangeAsk::Part(990, 999));
        assert_eq!(parse_range(Some("bytes=1000-"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=1000-1001"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 1000), RangeAsk::Full);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 1000), RangeAsk::Full);
        assert_eq!(parse_range(Some("items=0-1"), 1000), RangeAsk::Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 1000), RangeAsk::Full);
    }

    #[test]
    fn conditionals() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\", \"x\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
        let info = ObjectInfo { size: 3, modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000), etag: None };
        let tag = quoted_etag(&info);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        let mut h = HeaderMap::new();
        h.insert(header::IF_MODIFIED_SINCE, header_value(&httpdate::fmt_http_date(info.modified)));
        assert!(not_modified(&h, &tag, info.modified));
        assert!(!not_modified(&h, &tag, info.modified + Duration::from_secs(5)));
    }
}
