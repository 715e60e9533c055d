//! `POST /api/batch`: several record writes in one transaction, all or nothing, with
//! PocketBase's request and response shapes (off until `settings.batch.enabled`).
//!
//! Each item runs the same write path as a single request (rules, validation, relation checks,
//! cascades), in order, inside one `BEGIN IMMEDIATE` on the writer thread, under the outer
//! request's auth with `@request.context = "batch"`. Passwords are hashed before the
//! transaction. The first failing item rolls everything back and is reported under
//! `data.requests.<index>`.
//!
//! Files come as multipart parts named `requests.N.<key>` or `requests[N].<key>` beside the
//! `@jsonPayload` (the JS SDK sends the files first, so they are staged to temp files before
//! the items are known, and checked against their field's `maxSize` and `mimeTypes` once they
//! are). The whole body counts against `batch.maxBodySize` (413 past it). Uploads reach storage
//! before the transaction (object storage is never written from the writer thread), under the
//! id their record will have; a create without an id gets one chosen here. If the batch does
//! not commit, every stored upload is removed; once it commits, the files its updates dropped,
//! its uploads no record kept and the files of its deleted records are deleted. That phase
//! runs in its own task, so a timeout or a client gone mid-batch still ends with storage
//! matching the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use super::records::{access, crud_error, refusal, requester, shape};
use super::uploads::{counted, file_target, max_size, stage_error, FormLimits};
use crate::worker::actor::Actor;
use crate::worker::files::names::stored_name;
use crate::worker::files::sniff::{extension_for, mime_matches};
use crate::worker::files::staged::{StagedFile, Stager};
use crate::worker::files::{self, FilesError};
use crate::worker::http::body::{collect_limited, json_bytes, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::Query;
use crate::worker::records::cache::Snapshot;
use crate::worker::app::observe::Source;
use crate::worker::records::changes::{Action as ChangeAction, Changes};
use crate::worker::records::crud::{self, CrudError};
use crate::worker::records::schema::{Collection, FieldKind, Invalid, SchemaErrors};
use crate::worker::records::values::{autogen, to_string_list};
use crate::worker::records::write::{self, plain_passwords, Passwords, Uploaded};
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
pub(super) enum Kind {
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

impl From<rusqlite::Error> for ItemError {
    fn from(e: rusqlite::Error) -> Self {
        ItemError(None, CrudError::Sqlite(e))
    }
}

/// One item, understood.
pub(super) struct Action {
    pub(super) kind: Kind,
    pub(super) collection: String,
    pub(super) id: Option<String>,
    pub(super) query: Query,
    pub(super) headers: HeaderMap,
    pub(super) body: Map<String, Value>,
    /// `expand`/`fields` from the item's URL, applied to its response.
    pub(super) shape: crate::worker::records::crud::Shape,
    /// The files sent for this item that address one of its collection's file fields.
    pub(super) uploads: Vec<StagedFile>,
    /// The first upload that broke its field's `maxSize` or `mimeTypes`: the item fails with
    /// it when the transaction reaches it, as a single request would have.
    pub(super) file_error: Option<CrudError>,
    /// The id chosen for a create that brings files but names no id.
    pub(super) preset_id: Option<String>,
}

impl Action {
    /// The record this item writes, when known before it runs.
    pub(super) fn record_id(&self) -> Option<&str> {
        self.id.as_deref().or_else(|| self.body.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())).or(self.preset_id.as_deref())
    }

    fn failed_message(&self) -> &'static str {
        match self.kind {
            Kind::Update => "Failed to update record.",
            _ => "Failed to create record.",
        }
    }
}

fn invalid_batch(code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert("requests".into(), json!({"code": code, "message": message}));
    ApiError::validation("Invalid batch request data.", data)
}

pub(super) fn failed_item(index: usize, err: ApiError, request_id: u64) -> ApiError {
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
    Ok(Action {
        kind,
        collection,
        id,
        query,
        headers,
        body: item.body.unwrap_or_default(),
        shape,
        uploads: Vec::new(),
        file_error: None,
        preset_id: None,
    })
}

/// The item index and field key of a batch file part: `requests.N.<key>` or
/// `requests[N].<key>` (PocketBase matches these prefixes with N written plainly).
fn file_part_key(name: &str) -> Option<(usize, &str)> {
    let (index, key) = if let Some(rest) = name.strip_prefix("requests.") {
        rest.split_once('.')?
    } else {
        let (index, rest) = name.strip_prefix("requests[")?.split_once(']')?;
        (index, rest.strip_prefix('.')?)
    };
    let n: usize = index.parse().ok()?;
    (!key.is_empty() && n.to_string() == index).then_some((n, key))
}

/// A batch body: the items, and the file parts staged on disk with their item index.
struct Received {
    body: BatchBody,
    uploads: Vec<(usize, StagedFile)>,
}

async fn read_body(state: &AppState, req: Request<Incoming>, limit: u64) -> Result<Received, ApiError> {
    // Only the media type is case-insensitive; the multipart boundary is not.
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bad = || ApiError::bad_request("Failed to load the submitted data due to invalid formatting.");
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let bytes = collect_limited(req.into_body(), usize::try_from(limit).unwrap_or(usize::MAX)).await?;
        let body = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        return Ok(Received { body, uploads: Vec::new() });
    }
    let boundary = multer::parse_boundary(&content_type).map_err(|_| bad())?;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large());
    }
    let over = Arc::new(AtomicBool::new(false));
    let mut multipart = multer::Multipart::new(counted(req.into_body(), limit, over.clone()), boundary);
    let multer_error = |_: multer::Error| if over.load(Ordering::Relaxed) { ApiError::payload_too_large() } else { bad() };
    let mut payload = None;
    let mut uploads = Vec::new();
    let mut limits = FormLimits::default();
    while let Some(mut part) = multipart.next_field().await.map_err(multer_error)? {
        limits.part()?;
        let name = part.name().unwrap_or_default().to_owned();
        // A part with an empty file name (an empty file input) is not a file, as in Go.
        let original = part.file_name().filter(|n| !n.is_empty()).map(str::to_owned);
        match (original, file_part_key(&name)) {
            (None, _) if name == "@jsonPayload" => payload = Some(limits.text(&mut part, multer_error).await?),
            (Some(original), Some((index, key))) => {
                // The items (and so the field's limits) are usually not known yet: the SDK
                // sends `@jsonPayload` last. The batch limit bounds what is staged.
                let mut stager = Stager::create(state.files.data_dir()).await.map_err(stage_error)?;
                while let Some(chunk) = part.chunk().await.map_err(multer_error)? {
                    stager.write(&chunk).await.map_err(stage_error)?;
                }
                let name_for = original.clone();
                // PocketBase names a batch upload twice (the batch names it, then the item's
                // write names that name again): `My Photo.PNG` → `my_photo_<rand>_<rand>.PNG`.
                let name_twice = |mime| {
                    let once = stored_name(&name_for, extension_for(mime))?;
                    Ok(stored_name(&once, extension_for(mime))?)
                };
                let staged = stager
                    .finish(key.to_owned(), String::new(), original, name_twice)
                    .await
                    .map_err(stage_error)?;
                uploads.push((index, staged));
            }
            // Other parts are ignored, but still count against the limit.
            _ => while part.chunk().await.map_err(multer_error)?.is_some() {},
        }
    }
    let body = serde_json::from_slice(&payload.ok_or_else(bad)?).map_err(|_| bad())?;
    Ok(Received { body, uploads })
}

fn file_invalid(message: &'static str, field: &str, code: &'static str, detail: String) -> CrudError {
    let mut errors = SchemaErrors::default();
    errors.add(field, Invalid::new(code, detail));
    CrudError::Invalid { message, errors }
}

/// Gives each create/update/upsert item the staged files addressed to one of its collection's
/// file fields (others are dropped), checks them against the field's `maxSize` and
/// `mimeTypes`, puts their names into the item's body under their keys and, for a create
/// without an id, chooses the id they will be stored under.
fn attach(actions: &mut [Action], uploads: Vec<(usize, StagedFile)>, snap: &Snapshot) -> Result<(), ApiError> {
    for (index, mut file) in uploads {
        let Some(a) = actions.get_mut(index).filter(|a| a.kind != Kind::Delete) else { continue };
        let Some(c) = snap.get(&a.collection) else { continue };
        let Some((field, opts)) = file_target(c, &file.key) else { continue };
        file.field = field.to_owned();
        let max = max_size(opts);
        if a.file_error.is_none() {
            if file.size > max {
                let detail = format!("Failed to upload {:?} - the maximum allowed file size is {max} bytes.", file.original);
                a.file_error = Some(file_invalid(a.failed_message(), field, "validation_file_size_limit", detail));
            } else if !opts.mime_types.is_empty() && !opts.mime_types.iter().any(|m| mime_matches(file.mime, m)) {
                let detail = format!("Failed to upload {:?} due to unsupported file type.", file.original);
                a.file_error = Some(file_invalid(a.failed_message(), field, "validation_invalid_mime_type", detail));
            }
        }
        a.uploads.push(file);
        if a.kind != Kind::Update && a.record_id().is_none() {
            a.preset_id = Some(new_id(c).map_err(ApiError::internal)?);
        }
    }
    for a in actions.iter_mut().filter(|a| !a.uploads.is_empty()) {
        // The files replace whatever the item's JSON body had under the same key (unlike a
        // single multipart request, where plain names sent with the key stay in front).
        for u in &a.uploads {
            a.body.remove(&u.key);
        }
        files::record::merge_uploads(&mut a.body, &a.uploads);
    }
    Ok(())
}

/// PocketBase's default id pattern, for a collection whose id field has none.
const DEFAULT_ID_PATTERN: &str = "[a-z0-9]{15}";

/// A fresh id for a record of `c`, from its id field's pattern.
fn new_id(c: &Collection) -> Result<String, autogen::AutogenError> {
    let pattern = match c.field("id").map(|f| &f.kind) {
        Some(FieldKind::Text(o)) if !o.autogenerate_pattern.is_empty() => o.autogenerate_pattern.as_str(),
        _ => DEFAULT_ID_PATTERN,
    };
    autogen::generate(pattern)
}

/// `POST /api/batch`
pub async fn batch(state: &AppState, req: Request<Incoming>, actor: &Actor, request_id: u64) -> Result<Response<ResBody>, ApiError> {
    let settings = state.settings.fresh(&state.db).await.map_err(ApiError::internal)?;
    let config = settings.settings.batch.clone();
    if !config.enabled {
        return Err(ApiError::forbidden("Batch requests are not allowed."));
    }
    let method = req.method().clone();
    // pb_hooks: the outer request as the items' request events start from, when a record
    // request hook is registered at all (read before the body is consumed).
    let hooked_head = super::batch_hooks::head(state, &req, actor).await;
    let Received { body, uploads } = read_body(state, req, config.max_body_bytes()).await?;
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
    attach(&mut actions, uploads, &snap)?;
    // Every plain password hashed and every oldPassword checked up front: argon2 must not run
    // on the writer thread.
    let mut hashes = Passwords::new();
    for a in &actions {
        let Some(c) = snap.get(&a.collection) else { continue };
        for plain in plain_passwords(c, &a.body) {
            if hashes.needs_hash(&plain) {
                let hash = state.passwords.hash(&plain).await.map_err(ApiError::internal)?;
                hashes.insert(plain, hash);
            }
        }
        if let (Some(old), Some(id)) = (write::old_password(c, &a.body), a.record_id()) {
            let (lookup_c, lookup_id) = (c.clone(), id.to_owned());
            let stored = state.db.read(move |conn| crud::existing(conn, &lookup_c, &lookup_id)).await.map_err(ApiError::internal)?;
            if let Some(stored) = stored.as_ref().and_then(|r| r.get("password")).and_then(Value::as_str) {
                let matches = state.passwords.verify(stored.to_owned(), old).await.unwrap_or(false);
                hashes.checked(stored.to_owned(), old.to_owned(), matches);
            }
        }
    }
    // The before-write observers see each item as submitted (items are validated in the
    // transaction, where they see what earlier items wrote); one refusal fails the batch.
    if !state.observers.is_empty() {
        for (i, a) in actions.iter().enumerate() {
            let Some(c) = snap.get(&a.collection) else { continue };
            let id = a.record_id().unwrap_or_default().to_owned();
            let stored = if id.is_empty() || a.kind == Kind::Create {
                None
            } else {
                let (lookup_c, lookup_id) = (c.clone(), id.clone());
                state.db.read(move |conn| crud::existing(conn, &lookup_c, &lookup_id)).await.map_err(ApiError::internal)?
            };
            let (action, after) = match a.kind {
                Kind::Delete => (ChangeAction::Delete, None),
                Kind::Update => (ChangeAction::Update, Some(a.body.clone())),
                Kind::Create => (ChangeAction::Create, Some(a.body.clone())),
                Kind::Upsert if stored.is_some() => (ChangeAction::Update, Some(a.body.clone())),
                Kind::Upsert => (ChangeAction::Create, Some(a.body.clone())),
            };
            state.writes().before(Source::Batch, action, c, &id, stored, after).await.map_err(|r| failed_item(i, refusal(r), request_id))?;
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
    let prepared = Prepared { actions, requesters, hashes, access: access(actor) };
    if let Some(head) = hooked_head.filter(|_| super::batch_hooks::fires(state, &snap, &prepared.actions)) {
        return super::batch_hooks::run(state, snap, prepared, head, request_id).await;
    }
    let timeout = Duration::from_secs(config.timeout_secs());
    // Once uploads may be in storage, the rest runs in its own task: whatever happens to this
    // request (a timeout, the client leaving), the task ends with storage matching the
    // database. Its answer comes back on the channel.
    let (reply, answer) = oneshot::channel();
    tokio::spawn(run(state.clone(), snap, prepared, timeout, reply));
    let outcome = answer.await.unwrap_or(Err(Failure::Lost));
    match outcome {
        Ok(items) => Ok(json_bytes(StatusCode::OK, serde_json::to_vec(&items).map_err(ApiError::internal)?)),
        // The client is told the batch failed, as PocketBase does on its timeout; the task
        // still settles storage once the transaction ends.
        Err(Failure::TimedOut) => Err(ApiError::bad_request("Batch transaction failed.")),
        Err(Failure::Storage(e)) => Err(ApiError::internal(e)),
        Err(Failure::Lost) => Err(ApiError::internal(TaskLost)),
        Err(Failure::Item(ItemError(None, e))) => Err(ApiError::internal(e)),
        Err(Failure::Item(ItemError(Some(i), e))) => {
            let failed = match e {
                CrudError::Invalid { message, .. } => message,
                _ => "Failed to process the batch item.",
            };
            Err(failed_item(i, crud_error(e, failed), request_id))
        }
    }
}

/// Everything the transaction needs, decided before it.
pub(super) struct Prepared {
    pub(super) actions: Vec<Action>,
    pub(super) requesters: Vec<crud::Requester>,
    pub(super) hashes: Passwords,
    pub(super) access: crate::worker::records::values::Access,
}

/// The batch task ended without answering: it panicked.
#[derive(Debug, thiserror::Error)]
#[error("the batch task ended without an answer")]
struct TaskLost;

/// Why a batch did not answer with its items.
enum Failure {
    Item(ItemError),
    /// Storing an upload failed (before the transaction).
    Storage(FilesError),
    TimedOut,
    /// The task ended without answering (it panicked).
    Lost,
}

/// Stores the uploads, runs the transaction and settles storage with its outcome: the stored
/// uploads are removed if it did not commit; after a commit the files it dropped are deleted.
/// The answer is sent once known — before the settling on a timeout, after it otherwise (so a
/// client reading storage after the answer finds it settled).
async fn run(state: AppState, snap: Arc<Snapshot>, prepared: Prepared, timeout: Duration, reply: oneshot::Sender<Result<Vec<Value>, Failure>>) {
    let Prepared { actions, requesters, hashes, access } = prepared;
    // An item whose upload broke its field's limits fails the batch, so nothing is stored.
    let doomed = actions.iter().any(|a| a.file_error.is_some());
    let mut stored: Vec<String> = Vec::new();
    let mut storage = None;
    if !doomed && actions.iter().any(|a| !a.uploads.is_empty()) {
        match store_uploads(&state, &snap, &actions, &mut stored).await {
            Ok(s) => storage = Some(s),
            Err(e) => {
                let _ = reply.send(Err(Failure::Storage(e)));
                return;
            }
        }
    }
    // The staged temp files are no longer needed: the job gets the actions without them.
    let mut items = Vec::with_capacity(actions.len());
    for mut a in actions {
        let names = files::record::upload_names(&a.uploads);
        a.uploads.clear();
        items.push((a, names));
    }
    let job_snap = snap.clone();
    // The batch's changes are released once, after its single COMMIT; a failed batch rolls
    // back and releases nothing.
    let writes = state.writes();
    let job = writes.transact(Source::Batch, move |tx, changes| transaction(tx, &job_snap, items, requesters, &hashes, access, changes));
    tokio::pin!(job);
    let mut reply = Some(reply);
    let result = match tokio::time::timeout(timeout, &mut job).await {
        Ok(r) => r,
        Err(_) => {
            if let Some(reply) = reply.take() {
                let _ = reply.send(Err(Failure::TimedOut));
            }
            job.await
        }
    };
    let answer = match result {
        Ok(((items, cleanup), effects)) => {
            cleanup.run(&state, &snap).await;
            effects.finish(&state.observers);
            Ok(items)
        }
        Err(e) => {
            if let Some(storage) = &storage {
                files::record::discard(storage, &stored).await;
            }
            Err(Failure::Item(e))
        }
    };
    if let Some(reply) = reply {
        let _ = reply.send(answer);
    }
}

/// Puts every item's uploads into storage under its record; `stored` collects the keys
/// written (all removed again here if one fails).
pub(super) async fn store_uploads(state: &AppState, snap: &Snapshot, actions: &[Action], stored: &mut Vec<String>) -> Result<Arc<files::storage::Storage>, FilesError> {
    let storage = files::storage(state.storage_source()).await?;
    for a in actions.iter().filter(|a| !a.uploads.is_empty()) {
        let (Some(c), Some(record_id)) = (snap.get(&a.collection), a.record_id()) else { continue };
        let refs: Vec<&StagedFile> = a.uploads.iter().collect();
        match files::record::store(&storage, &c.id, record_id, &refs).await {
            Ok(keys) => stored.extend(keys),
            Err(e) => {
                files::record::discard(&storage, stored).await;
                return Err(e.into());
            }
        }
    }
    Ok(storage)
}

/// The batch's transaction: each item in order, on the writer thread.
fn transaction(
    tx: &rusqlite::Transaction<'_>,
    snap: &Snapshot,
    items: Vec<(Action, Vec<String>)>,
    requesters: Vec<crud::Requester>,
    hashes: &Passwords,
    access: crate::worker::records::values::Access,
    changes: &mut Changes,
) -> Result<(Vec<Value>, FileCleanup), ItemError> {
    let mut out = Vec::with_capacity(items.len());
    let mut cleanup = FileCleanup::default();
    for (i, ((mut a, names), mut req)) in items.into_iter().zip(requesters).enumerate() {
        let fail = |e| ItemError(Some(i), e);
        let c = snap.get(&a.collection).cloned().ok_or(ItemError(Some(i), CrudError::NotFound))?;
        if let Some(e) = a.file_error.take() {
            return Err(fail(e));
        }
        // Files an update drops are found by comparing the record before and after it; the
        // uploads an item brought but its record does not keep (a single field keeps its last
        // upload, `field-` may drop one just added) by looking at it after.
        let has_files = c.fields.iter().any(|f| matches!(f.kind, FieldKind::File(_)));
        let target = a.record_id().map(str::to_owned);
        let before = match (&target, has_files, a.kind) {
            (Some(id), true, Kind::Update | Kind::Upsert) => crud::existing(tx, &c, id).map_err(fail)?,
            _ => None,
        };
        let uploaded = Uploaded { names: &names, id: a.preset_id.as_deref() };
        let item = match (a.kind, a.id) {
            (Kind::Create, _) => write::create(tx, snap, &c, &mut req, a.body, access, hashes, &a.shape, changes, uploaded).map(Some),
            (Kind::Update, Some(id)) => write::update(tx, snap, &c, &mut req, &id, a.body, access, hashes, &a.shape, changes, uploaded).map(Some),
            (Kind::Delete, Some(id)) => crud::delete(tx, snap, &c, &req, &id, changes).map(|deleted| {
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
                    Some(id) => write::update(tx, snap, &c, &mut req, &id, a.body, access, hashes, &a.shape, changes, uploaded).map(Some),
                    None => write::create(tx, snap, &c, &mut req, a.body, access, hashes, &a.shape, changes, uploaded).map(Some),
                }
            }
            _ => Err(CrudError::NotFound),
        }
        .map_err(fail)?;
        if let Some(id) = target.filter(|_| before.is_some() || !names.is_empty()) {
            let after = crud::existing(tx, &c, &id).map_err(fail)?.unwrap_or_default();
            let mut dropped = match &before {
                Some(before) => files::record::removed(&c, before, &after),
                None => Vec::new(),
            };
            let held: Vec<String> = c.fields.iter().filter(|f| matches!(f.kind, FieldKind::File(_))).filter_map(|f| after.get(&f.name)).flat_map(to_string_list).collect();
            dropped.extend(names.iter().filter(|n| !held.contains(n)).cloned());
            if !dropped.is_empty() {
                cleanup.names.push((c.id.clone(), id, dropped));
            }
        }
        out.push(match item {
            Some(bytes) => json!({"status": 200, "body": serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null)}),
            None => json!({"status": 204, "body": null}),
        });
    }
    cleanup.recreated(tx, snap, changes).map_err(|e| ItemError(None, e))?;
    Ok((out, cleanup))
}

fn file_fields(c: &Collection) -> impl Iterator<Item = &crate::worker::records::schema::Field> {
    c.fields.iter().filter(|f| matches!(f.kind, FieldKind::File(_)))
}

/// The names a stored file column holds: one name, or a JSON array of names.
fn stored_names(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) if s.trim_start().starts_with('[') => serde_json::from_str::<Vec<String>>(s).unwrap_or_default(),
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        other => to_string_list(other),
    }
}

/// Files a committed batch no longer references: every file of its deleted records (cascades
/// included), the names its updates dropped and the uploads no record kept. Deleted only
/// after the commit.
#[derive(Default)]
pub(super) struct FileCleanup {
    pub(super) records: Vec<(String, String)>,
    pub(super) names: Vec<(String, String, Vec<String>)>,
}

impl FileCleanup {
    /// A record the batch deleted and then created again under the same id (inside this
    /// transaction) keeps its directory: only the deleted record's files that the new one does
    /// not hold are deleted, not every file stored under the id (which would take the new
    /// record's uploads with them).
    fn recreated(&mut self, tx: &rusqlite::Transaction<'_>, snap: &Snapshot, changes: &Changes) -> Result<(), CrudError> {
        let mut gone = Vec::with_capacity(self.records.len());
        for (cid, rid) in std::mem::take(&mut self.records) {
            let Some(c) = snap.get(&cid).filter(|c| c.fields.iter().any(|f| matches!(f.kind, FieldKind::File(_)))) else {
                gone.push((cid, rid));
                continue;
            };
            let Some(now) = crud::existing(tx, c, &rid)? else {
                gone.push((cid, rid));
                continue;
            };
            let held: Vec<String> = file_fields(c).filter_map(|f| now.get(&f.name)).flat_map(to_string_list).collect();
            // The record as it was when first deleted in this batch.
            let old: Vec<String> = changes
                .iter()
                .find(|ch| ch.action == ChangeAction::Delete && ch.collection_id == cid && ch.record_id == rid)
                .map(|ch| {
                    let map = crate::worker::app::observe::columns_map(&ch.columns);
                    file_fields(c).filter_map(|f| map.get(&f.name)).flat_map(stored_names).collect()
                })
                .unwrap_or_default();
            let dropped: Vec<String> = old.into_iter().filter(|n| !held.contains(n)).collect();
            if !dropped.is_empty() {
                self.names.push((cid, rid, dropped));
            }
        }
        self.records = gone;
        Ok(())
    }

    pub(super) async fn run(self, state: &AppState, snap: &Snapshot) {
        let with_files = |cid: &str| snap.get(cid).is_some_and(|c| c.fields.iter().any(|f| matches!(f.kind, FieldKind::File(_))));
        let records: Vec<(String, String)> = self.records.into_iter().filter(|(cid, _)| with_files(cid)).collect();
        if records.is_empty() && self.names.is_empty() {
            return;
        }
        match files::storage(state.storage_source()).await {
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

#[cfg(test)]
mod tests {
    use super::file_part_key;

    #[test]
    fn file_parts_are_addressed_as_pocketbase_does() {
        assert_eq!(file_part_key("requests.0.docs"), Some((0, "docs")));
        assert_eq!(file_part_key("requests.12.docs+"), Some((12, "docs+")));
        assert_eq!(file_part_key("requests[3].+docs"), Some((3, "+docs")));
        assert_eq!(file_part_key("requests.1.a.b"), Some((1, "a.b")));
        for not_a_file_part in ["docs", "requests.0.", "requests..docs", "requests.01.docs", "requests[1]docs", "requests[-1].docs", "requests.x.docs", "@jsonPayload"] {
            assert_eq!(file_part_key(not_a_file_part), None, "{not_a_file_part}");
        }
    }
}
