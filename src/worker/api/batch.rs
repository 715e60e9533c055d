//! `POST /api/batch`: several record writes in one transaction, all or nothing, with
//! PocketBase's request and response shapes (off until `settings.batch.enabled`).
//!
//! Each item runs the same write path as a single request (rules, validation, relation checks,
//! cascades), in order, inside one `BEGIN IMMEDIATE` on the writer thread, under the outer
//! request's auth with `@request.context = "batch"`. Passwords are hashed before the
//! transaction. The first failing item rolls everything back and is reported under
//! `data.requests.<index>`.

use std::collections::HashMap;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::records::{access, crud_error, requester, shape};
use crate::worker::actor::Actor;
use crate::worker::files;
use crate::worker::http::body::{collect_limited, json_bytes, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::Query;
use crate::worker::records::changes::{self, Changes, Stamped};
use crate::worker::records::crud::{self, CrudError};
use crate::worker::records::write::{self, plain_passwords, Hashes};
use crate::worker::state::AppState;

/// Longest item URL PocketBase accepts.
pub const MAX_ITEM_URL_CHARS: usize = 2000;

#[derive(Debug, Deserialize)]
struct BatchBody {
    #[serde(default)]
    requests: Vec<BatchItem>,
}

#[derive(Debug, Deserialize)]
struct BatchItem {
    #[serde(default)]
    method: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Delete,
    Upsert,
}

/// A failed batch: the item's index (none when the transaction itself failed) and why.
struct ItemError(Option<usize>, CrudError);

impl From<crate::shared::db::DbError> for ItemError {
    fn from(e: crate::shared::db::DbError) -> Self {
        ItemError(None, CrudError::Db(e))
    }
}

/// One item, understood.
struct Action {
    kind: Kind,
    collection: String,
    id: Option<String>,
    query: Query,
    headers: HeaderMap,
    body: Map<String, Value>,
    /// `expand`/`fields` from the item's URL, applied to its response.
    shape: crate::worker::records::crud::Shape,
}

fn invalid_batch(code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert("requests".into(), json!({"code": code, "message": message}));
    ApiError::validation("Invalid batch request data.", data)
}

fn failed_item(index: usize, err: ApiError, request_id: u64) -> ApiError {
    let (_, envelope) = err.envelope(request_id);
    let mut requests = Map::new();
    requests.insert(index.to_string(), json!({"code": "batch_request_failed", "message": "Batch request failed.", "response": envelope}));
    let mut data = Map::new();
    data.insert("requests".into(), Value::Object(requests));
    ApiError::validation("Batch transaction failed.", data)
}

/// Maps an item's method and URL to an action, as PocketBase's four allowed patterns.
fn parse_action(item: BatchItem) -> Result<Action, ApiError> {
    if item.url.chars().count() > MAX_ITEM_URL_CHARS {
        return Err(ApiError::bad_request("The batch request URL is too long."));
    }
    let (path, raw_query) = match item.url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (item.url.as_str(), None),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = item.method.to_ascii_uppercase();
    let (kind, collection, id) = match (method.as_str(), segments.as_slice()) {
        ("POST", ["api", "collections", c, "records"]) => (Kind::Create, c.to_string(), None),
        ("PUT", ["api", "collections", c, "records"]) => (Kind::Upsert, c.to_string(), None),
        ("PATCH", ["api", "collections", c, "records", id]) => (Kind::Update, c.to_string(), Some(id.to_string())),
        ("DELETE", ["api", "collections", c, "records", id]) => (Kind::Delete, c.to_string(), Some(id.to_string())),
        _ => return Err(ApiError::bad_request(format!("Invalid batch request action {} {}.", item.method, path))),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in item.headers {
        // The outer request's auth applies to every item.
        if k.eq_ignore_ascii_case("authorization") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_str(&v)) {
            headers.insert(name, value);
        }
    }
    let query = Query::parse(raw_query);
    let shape = shape(&query)?;
    Ok(Action { kind, collection, id, query, headers, body: item.body.unwrap_or_default(), shape })
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<BatchBody, ApiError> {
    // Only the media type is case-insensitive; the multipart boundary is not.
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bad = || ApiError::bad_request("Failed to load the submitted data due to invalid formatting.");
    let bytes = collect_limited(req.into_body(), limit).await?;
    let payload = if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(&content_type).map_err(|_| bad())?;
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut payload = None;
        while let Some(field) = multipart.next_field().await.map_err(|_| bad())? {
            if field.file_name().is_some() {
                return Err(ApiError::bad_request("File uploads in batch requests are not supported by this server yet."));
            }
            if field.name() == Some("@jsonPayload") {
                payload = Some(field.bytes().await.map_err(|_| bad())?);
            }
        }
        payload.ok_or_else(bad)?
    } else {
        bytes
    };
    serde_json::from_slice(&payload).map_err(|_| bad())
}

/// `POST /api/batch`
pub async fn batch(state: &AppState, req: Request<Incoming>, actor: &Actor, request_id: u64) -> Result<Response<ResBody>, ApiError> {
    let settings = state.settings.fresh(&state.db).await.map_err(ApiError::internal)?;
    let config = settings.settings.batch.clone();
    if !config.enabled {
        return Err(ApiError::forbidden("Batch requests are not allowed."));
    }
    let method = req.method().clone();
    let limit = usize::try_from(config.max_body_bytes()).unwrap_or(usize::MAX);
    let body = read_body(req, limit).await?;
    if body.requests.is_empty() {
        return Err(invalid_batch("validation_required", "Cannot be blank."));
    }
    if body.requests.len() > config.max_requests as usize {
        return Err(invalid_batch("validation_length_too_long", &format!("The length must be no more than {}.", config.max_requests)));
    }
    let mut actions = Vec::with_capacity(body.requests.len());
    for (i, item) in body.requests.into_iter().enumerate() {
        actions.push(parse_action(item).map_err(|e| failed_item(i, e, request_id))?);
    }

    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    // Hash every plain password up front: argon2 must not run on the writer thread.
    let mut hashes = Hashes::new();
    for a in &actions {
        if let Some(c) = snap.get(&a.collection) {
            for plain in plain_passwords(c, &a.body) {
                if let std::collections::hash_map::Entry::Vacant(slot) = hashes.entry(plain) {
                    let hash = state.passwords.hash(slot.key()).await.map_err(ApiError::internal)?;
                    slot.insert(hash);
                }
            }
        }
    }
    let requesters: Vec<_> = actions
        .iter()
        .map(|a| {
            let mut r = requester(actor, &method, &a.query, &a.headers, Map::new());
            r.ctx.context = "batch".into();
            r
        })
        .collect();
    let access = access(actor);
    let job_snap = snap.clone();
    let realtime = state.realtime.clone();
    // The batch's changes are released once, after its single COMMIT; a failed batch rolls
    // back and releases nothing.
    let job = state.db.write_then(move |tx| -> Result<(Vec<Value>, FileCleanup, Stamped), ItemError> {
        let snap = job_snap;
        let mut out = Vec::with_capacity(actions.len());
        let mut cleanup = FileCleanup::default();
        let mut changes = Changes::new();
        for (i, (a, mut req)) in actions.into_iter().zip(requesters).enumerate() {
            let fail = |e| ItemError(Some(i), e);
            let c = snap.get(&a.collection).cloned().ok_or(ItemError(Some(i), CrudError::NotFound))?;
            // Files an update drops are found by comparing the record before and after it.
            let has_files = c.fields.iter().any(|f| matches!(f.kind, crate::worker::records::schema::FieldKind::File(_)));
            let target = a.id.clone().or_else(|| a.body.get("id").and_then(Value::as_str).map(str::to_owned));
            let before = match (&target, has_files, a.kind) {
                (Some(id), true, Kind::Update | Kind::Upsert) => crud::existing(tx, &c, id).map_err(fail)?,
                _ => None,
            };
            let item = match (a.kind, a.id) {
                (Kind::Create, _) => write::create(tx, &snap, &c, &mut req, a.body, access, &hashes, &a.shape, &mut changes).map(Some),
                (Kind::Update, Some(id)) => write::update(tx, &snap, &c, &mut req, &id, a.body, access, &hashes, &a.shape, &mut changes).map(Some),
                (Kind::Delete, Some(id)) => crud::delete(tx, &snap, &c, &req, &id, &mut changes).map(|deleted| {
                    cleanup.records.extend(deleted);
                    None
                }),
                (Kind::Upsert, _) => {
                    let id = a.body.get("id").and_then(Value::as_str).map(str::to_owned);
                    let exists = match &id {
                        Some(id) => crud::existing(tx, &c, id).map_err(fail)?.is_some(),
                        None => false,
                    };
                    match id.filter(|_| exists) {
                        Some(id) => write::update(tx, &snap, &c, &mut req, &id, a.body, access, &hashes, &a.shape, &mut changes).map(Some),
                        None => write::create(tx, &snap, &c, &mut req, a.body, access, &hashes, &a.shape, &mut changes).map(Some),
                    }
                }
                _ => Err(CrudError::NotFound),
            }
            .map_err(fail)?;
            if let (Some(before), Some(id)) = (before, &target) {
                if let Some(after) = crud::existing(tx, &c, id).map_err(fail)? {
                    let dropped = files::record::removed(&c, &before, &after);
                    if !dropped.is_empty() {
                        cleanup.names.push((c.id.clone(), id.clone(), dropped));
                    }
                }
            }
            out.push(match item {
                Some(bytes) => json!({"status": 200, "body": serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null)}),
                None => json!({"status": 204, "body": null}),
            });
        }
        let stamped = changes::stamp(tx, changes).map_err(|e| ItemError(None, CrudError::Sqlite(e)))?;
        Ok((out, cleanup, stamped))
    }, move |(_, _, changes)| realtime.publish(std::mem::take(changes)));
    let timeout = Duration::from_secs(config.timeout_secs());
    let result = match tokio::time::timeout(timeout, job).await {
        Ok(r) => r,
        // The transaction itself still completes or rolls back on the writer thread; the
        // client is told the batch failed, as PocketBase does on its timeout.
        Err(_) => return Err(ApiError::bad_request("Batch transaction failed.")),
    };
    match result {
        Ok((items, cleanup, _)) => {
            cleanup.run(state, &snap).await;
            Ok(json_bytes(StatusCode::OK, serde_json::to_vec(&items).map_err(ApiError::internal)?))
        }
        Err(ItemError(None, e)) => Err(ApiError::internal(e)),
        Err(ItemError(Some(i), e)) => {
            let failed = match e {
                CrudError::Invalid { message, .. } => message,
                _ => "Failed to process the batch item.",
            };
            Err(failed_item(i, crud_error(e, failed), request_id))
        }
    }
}

/// Files a committed batch no longer references: every file of its deleted records (cascades
/// included) and the names its updates dropped. Deleted only after the commit.
#[derive(Default)]
struct FileCleanup {
    records: Vec<(String, String)>,
    names: Vec<(String, String, Vec<String>)>,
}

impl FileCleanup {
    async fn run(self, state: &AppState, snap: &crate::worker::records::cache::Snapshot) {
        let with_files = |cid: &str| snap.get(cid).is_some_and(|c| c.fields.iter().any(|f| matches!(f.kind, crate::worker::records::schema::FieldKind::File(_))));
        let records: Vec<(String, String)> = self.records.into_iter().filter(|(cid, _)| with_files(cid)).collect();
        if records.is_empty() && self.names.is_empty() {
            return;
        }
        match files::storage(state).await {
            Ok(storage) => {
                files::record::delete_records(&storage, &records).await;
                for (cid, rid, names) in &self.names {
                    files::record::delete_names(&storage, cid, rid, names).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "no storage to delete the files a batch dropped"),
        }
    }
}
