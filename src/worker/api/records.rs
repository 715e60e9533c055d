//! `/api/collections/{c}/records…`: list, view, create, update, delete, PocketBase-compatible.
//! Each handler: parse (query, body) → build the requester (actor + request data for
//! `@request.*`) → plan with the schema snapshot → run the domain job on a database thread →
//! respond. A job that finds its snapshot stale is re-planned once with a fresh one.
//! `?expand=` and `?fields=` are parsed here into a [`Shape`] for every endpoint that answers
//! with records (list, view, create, update); a malformed `fields` is refused before anything
//! runs or is written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::worker::actor::Actor;
use crate::worker::api::uploads::{record_body, RecordBody};
use crate::worker::files::{self, staged::StagedFile};
use crate::worker::http::body::{collect_limited, json_bytes, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{list_envelope, ListParams, Query};
use crate::worker::records::cache::Snapshot;
use crate::worker::records::changes::{self, Changes, Stamped};
use crate::worker::records::crud::{self, CrudError, Page, Requester, Shape};
use crate::worker::records::expand::ExpandTree;
use crate::worker::records::fields::Projection;
use crate::worker::records::query::{AuthContext, RequestContext, CLIENT_ERROR_MESSAGE};
use crate::worker::records::schema::{Collection, FieldKind};
use crate::worker::records::sql_value::SqlValue;
use crate::worker::records::values::{self, check_record, decode_form, resolve_input, Access, PasswordInput, Rejected, WriteOptions};
use crate::worker::state::AppState;

/// Planning attempts when the schema changes under a request (once stale, then fresh).
const PLAN_ATTEMPTS: usize = 2;

fn missing_collection() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Missing collection context.")
}

pub(crate) fn crud_error(e: CrudError, failed: &str) -> ApiError {
    match e {
        CrudError::NotFound => ApiError::not_found(),
        CrudError::SuperusersOnly => ApiError::forbidden("Only superusers can perform this action."),
        CrudError::BadQuery(detail) => {
            tracing::debug!(%detail, "bad filter, sort or rule");
            ApiError::bad_request(CLIENT_ERROR_MESSAGE)
        }
        CrudError::Invalid { errors, .. } => ApiError::validation(failed, errors.to_data()),
        CrudError::Refused(m) => ApiError::bad_request(m),
        other => ApiError::internal(other),
    }
}

/// Headers as `@request.headers.*` sees them: lower-cased, `-` → `_`, first value only.
fn header_map(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (name, value) in headers {
        if let Ok(v) = value.to_str() {
            out.entry(name.as_str().to_ascii_lowercase().replace('-', "_")).or_insert_with(|| v.to_owned());
        }
    }
    out
}

pub(crate) fn requester(actor: &Actor, method: &Method, query: &Query, headers: &HeaderMap, body: Map<String, Value>) -> Requester {
    let auth = actor.auth().map(|a| AuthContext {
        collection_id: a.collection.id.clone(),
        collection_name: a.collection.name.clone(),
        record: a.record.iter().filter(|(k, _)| k.as_str() != "password" && k.as_str() != "tokenKey").map(|(k, v)| (k.clone(), v.clone())).collect(),
    });
    let mut ctx = RequestContext::new(SystemTime::now());
    ctx.auth = auth;
    ctx.body = body;
    ctx.query = query.pairs().iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
    ctx.headers = header_map(headers);
    ctx.method = method.as_str().to_owned();
    Requester { ctx, superuser: actor.is_superuser() }
}

/// Runs a read job with a fresh snapshot, re-planning once if the schema moved meanwhile.
async fn with_snapshot<T, F>(state: &AppState, collection: &str, job: F) -> Result<T, Result<CrudError, ApiError>>
where
    T: Send + 'static,
    F: Fn(Arc<Snapshot>, Arc<Collection>) -> JobFuture<T>,
{
    let mut last = None;
    for attempt in 0..PLAN_ATTEMPTS {
        // The job checks the snapshot's version in the same read transaction as its query.
        let snap = state.schema.for_job(&state.db, collection, attempt > 0).await.map_err(|e| Err(ApiError::internal(e)))?;
        let Some(c) = snap.get(collection).cloned() else { return Err(Err(missing_collection())) };
        match job(snap, c).await {
            Err(CrudError::Stale(s)) => {
                state.schema.invalidate();
                last = Some(CrudError::Stale(s));
            }
            other => return other.map_err(Ok),
        }
    }
    Err(Ok(last.unwrap_or(CrudError::NotFound)))
}

type JobFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CrudError>> + Send>>;

fn finish<T>(r: Result<T, Result<CrudError, ApiError>>, failed: &str) -> Result<T, ApiError> {
    r.map_err(|e| match e {
        Ok(c) => crud_error(c, failed),
        Err(api) => api,
    })
}

/// The response shape from `expand` and `fields`. PocketBase ignores unknown expand paths and
/// fields; a malformed `fields` expression (bad modifier, unbalanced parenthesis) makes it
/// send the 2xx status with an empty body. vaultbase answers 400 instead, before doing
/// anything, so that a create or update is never applied with its answer lost.
pub(crate) fn shape(query: &Query) -> Result<Shape, ApiError> {
    let fields = Projection::parse(query.get("fields").unwrap_or_default()).map_err(|e| {
        tracing::debug!(error = %e, "bad fields parameter");
        ApiError::bad_request(CLIENT_ERROR_MESSAGE)
    })?;
    Ok(Shape { expand: ExpandTree::parse(query.get("expand").unwrap_or_default()), fields })
}

/// PocketBase refuses `@collection.` / `@request.` in a non-superuser's filter or sort.
fn guard_client_query(superuser: bool, filter: &str, sort: &str) -> Result<(), ApiError> {
    if superuser {
        return Ok(());
    }
    for needle in ["@collection.", "@request."] {
        if filter.contains(needle) || sort.contains(needle) {
            return Err(ApiError::forbidden(format!("Only superusers can filter by {needle}")));
        }
    }
    Ok(())
}

/// `GET /api/collections/{c}/records`
pub async fn list(state: &AppState, collection: &str, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let params = ListParams::from_query(&query)?;
    if let Some(v) = query.get("skipTotal") {
        if !matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True" | "0" | "f" | "F" | "false" | "FALSE" | "False") {
            return Err(ApiError::bad_request(""));
        }
    }
    guard_client_query(actor.is_superuser(), &params.filter, &params.sort)?;
    let shape = Arc::new(shape(&query)?);
    let requester = Arc::new(requester(actor, req.method(), &query, req.headers(), Map::new()));
    let page = Page { page: params.page, per_page: params.per_page, skip_total: params.skip_total };
    let (filter, sort) = (Arc::new(params.filter.clone()), Arc::new(params.sort.clone()));
    let result = with_snapshot(state, collection, |snap, c| {
        let (db, requester, page, filter, sort, shape) =
            (state.db.clone(), requester.clone(), page.clone(), filter.clone(), sort.clone(), shape.clone());
        Box::pin(async move { db.read(move |conn| crud::read_snapshot(conn, |conn| crud::list(conn, &snap, &c, &requester, &page, &filter, &sort, &shape))).await })
    })
    .await;
    let (items, total) = finish(result, "")?;
    Ok(json_bytes(StatusCode::OK, list_envelope(&params, total, &items)))
}

/// `GET /api/collections/{c}/records/{id}`
pub async fn view(state: &AppState, collection: &str, id: &str, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let shape = Arc::new(shape(&query)?);
    let requester = Arc::new(requester(actor, req.method(), &query, req.headers(), Map::new()));
    let id = Arc::new(id.to_owned());
    let result = with_snapshot(state, collection, |snap, c| {
        let (db, requester, id, shape) = (state.db.clone(), requester.clone(), id.clone(), shape.clone());
        Box::pin(async move { db.read(move |conn| crud::read_snapshot(conn, |conn| crud::view(conn, &snap, &c, &requester, &id, &shape))).await })
    })
    .await;
    Ok(json_bytes(StatusCode::OK, finish(result, "")?))
}

/// Reads a JSON or urlencoded body into a map (PocketBase's decoding, §1.4).
pub(crate) async fn body_map(req: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    // PocketBase answers an unreadable record body (bad JSON, a non-object, broken multipart)
    // with its generic 400, not the "invalid formatting" message of other routes.
    let bad = || ApiError::bad_request(CLIENT_ERROR_MESSAGE);
    // Multipart bodies (which may carry files) are read by `api::uploads`, never here.
    if content_type.starts_with("multipart/form-data") {
        return Err(bad());
    }
    let bytes = collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        return decode_form(pairs).map_err(|_| bad());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad()),
    }
}

pub(crate) fn access(actor: &Actor) -> Access {
    if actor.is_superuser() {
        Access::Superuser
    } else {
        Access::Default
    }
}

/// Hashes validated plain passwords into their columns (argon2 on the bounded pool).
async fn hash_passwords(state: &AppState, columns: &mut Vec<(String, SqlValue)>, passwords: Vec<(String, PasswordInput)>) -> Result<(), ApiError> {
    for (field, PasswordInput::Plain(plain)) in passwords {
        let hash = state.passwords.hash(&plain).await.map_err(ApiError::internal)?;
        columns.push((field, SqlValue::Text(hash)));
    }
    Ok(())
}

/// The 400 for a rejected body, with its missing related records added to the other field
/// errors as PocketBase reports them (that check reads the database, so it runs only here or
/// in the write transaction).
async fn rejection(state: &AppState, snap: Arc<Snapshot>, rejected: Rejected, message: &str) -> ApiError {
    let Rejected { mut errors, relations, .. } = rejected;
    if !relations.is_empty() {
        match state.db.read(move |conn| crud::missing_relations(conn, &snap, &relations)).await {
            Ok(missing) => errors.0.extend(missing.0),
            Err(e) => return crud_error(e, message),
        }
    }
    ApiError::validation(message, errors.to_data())
}

/// Why one planning attempt of a write ended without an answer.
enum Attempt {
    /// The held schema snapshot was stale: plan again with a fresh one.
    Stale,
    /// The record's file fields changed between the plan's read and the write: plan again
    /// from the record as it is now.
    RowChanged,
    Failed(ApiError),
}

/// Re-plans allowed when concurrent updates keep changing a record's files under an update.
const ROW_CHANGE_REPLANS: usize = 8;

/// What an update's write did: the updated record's JSON and the stored names it dropped, or
/// None when the record's files changed since the plan (nothing written; plan again).
type UpdateOutcome = Option<(Vec<u8>, Vec<String>)>;

impl From<ApiError> for Attempt {
    fn from(e: ApiError) -> Self {
        Attempt::Failed(e)
    }
}

fn attempt_error(e: CrudError, failed: &str) -> Attempt {
    match e {
        CrudError::Stale(_) => Attempt::Stale,
        other => Attempt::Failed(crud_error(other, failed)),
    }
}

/// Runs `once` with the held snapshot, and once more with a fresh one if that was stale.
async fn with_replan<F, Fut>(state: &AppState, once: F) -> Result<Response<ResBody>, ApiError>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<Response<ResBody>, Attempt>>,
{
    let (mut retry, mut row_changes) = (false, 0);
    loop {
        match once(retry).await {
            Ok(res) => return Ok(res),
            Err(Attempt::Failed(e)) => return Err(e),
            Err(Attempt::Stale) if !retry => {
                state.schema.invalidate();
                retry = true;
            }
            Err(Attempt::Stale) => return Err(ApiError::bad_request("The collection changed while the record was being written; please retry.")),
            Err(Attempt::RowChanged) if row_changes < ROW_CHANGE_REPLANS => row_changes += 1,
            Err(Attempt::RowChanged) => return Err(ApiError::bad_request("The record's files kept changing while it was being updated; please retry.")),
        }
    }
}

/// `POST /api/collections/{c}/records`
pub async fn create(state: &AppState, collection: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let (method, query, headers) = (req.method().clone(), Query::parse(req.uri().query()), req.headers().clone());
    let shape = shape(&query)?;
    let RecordBody { body, uploads } = record_body(state, collection, req, "Failed to create record.").await?;
    if uploads.is_empty() {
        let req_parts = (&method, &query, &headers);
        return with_replan(state, |retry| create_once(state, collection, actor, req_parts, &shape, body.clone(), &uploads, retry)).await;
    }
    // With files, the rest runs as its own task: files are stored before the write and
    // removed if it fails (or deleted after it commits), and a client that disconnects
    // meanwhile must not cancel that half-way and leave a file no record names.
    let (state, collection, actor) = (state.clone(), collection.to_owned(), actor.clone());
    detached(async move {
        let req_parts = (&method, &query, &headers);
        with_replan(&state, |retry| create_once(&state, &collection, &actor, req_parts, &shape, body.clone(), &uploads, retry)).await
    })
    .await
}

/// Runs a write and its file work (store before, delete or discard after the commit) to the
/// end even if the request is dropped, so storage always ends up matching the database.
async fn detached(
    work: impl std::future::Future<Output = Result<Response<ResBody>, ApiError>> + Send + 'static,
) -> Result<Response<ResBody>, ApiError> {
    tokio::spawn(work).await.map_err(ApiError::internal)?
}

#[allow(clippy::too_many_arguments)]
async fn create_once(
    state: &AppState,
    collection: &str,
    actor: &Actor,
    (method, query, headers): (&Method, &Query, &HeaderMap),
    shape: &Shape,
    body: Map<String, Value>,
    uploads: &[StagedFile],
    retry: bool,
) -> Result<Response<ResBody>, Attempt> {
    const FAILED: &str = "Failed to create record.";
    let snap = state.schema.for_job(&state.db, collection, retry).await.map_err(ApiError::internal)?;
    let c = snap.get(collection).cloned().ok_or_else(missing_collection)?;
    if c.kind == crate::worker::records::schema::CollectionType::View {
        return Err(ApiError::bad_request("Unsupported collection type.").into());
    }
    if c.create_rule.is_none() && !actor.is_superuser() {
        return Err(ApiError::forbidden("Only superusers can perform this action.").into());
    }
    let input = resolve_input(&c, None, body, access(actor));
    let new_files = files::record::upload_names(uploads);
    let opts = WriteOptions { existing: None, access: access(actor), now_millis: values::datetime::now_millis(), new_files: &new_files };
    let checked = check_record(&c, &input, &opts);
    // PocketBase checks the create rule before it validates, on the record as submitted, so
    // a client the rule refuses gets the bare 400 and learns nothing from field errors (such
    // as whether an email or a related id exists). The insert checks the rule again.
    if !actor.is_superuser() && c.create_rule.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        let columns = match &checked {
            Ok(v) => v.columns.clone(),
            Err(r) => r.columns.clone(),
        };
        let (rule_snap, rule_c) = (snap.clone(), c.clone());
        let rule_requester = requester(actor, method, query, headers, input.clone());
        let admitted = state
            .db
            .read(move |conn| crud::read_snapshot(conn, |conn| crud::create_rule_admits(conn, &rule_snap, &rule_c, &rule_requester, &columns)))
            .await
            .map_err(|e| attempt_error(e, FAILED))?;
        if !admitted {
            return Err(ApiError::bad_request(FAILED).into());
        }
    }
    let validated = match checked {
        Ok(v) => v,
        Err(rejected) => return Err(rejection(state, snap, rejected, FAILED).await.into()),
    };
    let mut columns = validated.columns;
    hash_passwords(state, &mut columns, validated.passwords).await?;
    // Uploads go to storage before the commit and are removed again if it does not happen.
    let keep = files::record::kept(&input, uploads);
    let stored = if keep.is_empty() {
        None
    } else {
        let record_id = columns.iter().find(|(n, _)| n == "id").map(|(_, v)| v.to_text()).unwrap_or_default();
        let storage = files::storage(state).await.map_err(ApiError::internal)?;
        let written = files::record::store(&storage, &c.id, &record_id, &keep).await.map_err(ApiError::internal)?;
        Some((storage, written))
    };
    let requester = requester(actor, method, query, headers, input);
    let (relations, shape) = (validated.relations, shape.clone());
    let realtime = state.realtime.clone();
    let result = state
        .db
        .write_then(
            move |tx| {
                let mut changes = Changes::new();
                let bytes = crud::create(tx, &snap, &c, &requester, &columns, &relations, &shape, &mut changes)?;
                Ok((bytes, changes::stamp(tx, changes)?))
            },
            move |(_, changes)| realtime.publish(std::mem::take(changes)),
        )
        .await
        .map(|(bytes, _)| bytes);
    if let (Err(_), Some((storage, written))) = (&result, &stored) {
        files::record::discard(storage, written).await;
    }
    let bytes = result.map_err(|e| attempt_error(e, FAILED))?;
    Ok(json_bytes(StatusCode::OK, bytes))
}

/// `PATCH /api/collections/{c}/records/{id}`
pub async fn update(state: &AppState, collection: &str, id: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let (method, query, headers) = (req.method().clone(), Query::parse(req.uri().query()), req.headers().clone());
    let shape = shape(&query)?;
    let RecordBody { body, uploads } = record_body(state, collection, req, "Failed to update record.").await?;
    // As in `create`, the store → write → delete sequence runs to its end; for updates always,
    // since a plain JSON body can drop files too (`field-`, `field: []`), which are deleted
    // only after the commit.
    let (state, collection, id, actor) = (state.clone(), collection.to_owned(), id.to_owned(), actor.clone());
    detached(async move {
        let req_parts = (&method, &query, &headers);
        with_replan(&state, |retry| update_once(&state, &collection, &id, &actor, req_parts, &shape, body.clone(), &uploads, retry)).await
    })
    .await
}

/// What an update needs decided before validation, read in one job: the stored record, the
/// writer's access (manageRule) and its resolved input, and whether the update rule admits it.
struct UpdatePlan {
    existing: Map<String, Value>,
    access: Access,
    input: Map<String, Value>,
    allowed: bool,
}

#[allow(clippy::too_many_arguments)]
async fn update_once(
    state: &AppState,
    collection: &str,
    id: &str,
    actor: &Actor,
    (method, query, headers): (&Method, &Query, &HeaderMap),
    shape: &Shape,
    body: Map<String, Value>,
    uploads: &[StagedFile],
    retry: bool,
) -> Result<Response<ResBody>, Attempt> {
    const FAILED: &str = "Failed to update record.";
    let snap = state.schema.for_job(&state.db, collection, retry).await.map_err(ApiError::internal)?;
    let c = snap.get(collection).cloned().ok_or_else(missing_collection)?;
    if c.update_rule.is_none() && !actor.is_superuser() {
        // PocketBase answers a missing record first, so look before refusing.
        let (lookup_c, lookup_id) = (c.clone(), id.to_owned());
        let found = state.db.read(move |conn| crud::existing(conn, &lookup_c, &lookup_id)).await.map_err(|e| attempt_error(e, FAILED))?;
        return Err(match found {
            None => ApiError::not_found(),
            Some(_) => ApiError::forbidden("Only superusers can perform this action."),
        }
        .into());
    }
    // As in PocketBase the update rule is checked before the body is validated: a client it
    // refuses gets the 404 whatever it sent. The write re-checks it in its transaction.
    let base_access = access(actor);
    let mut plan_req = requester(actor, method, query, headers, Map::new());
    let (plan_snap, plan_c, plan_id) = (snap.clone(), c.clone(), id.to_owned());
    let plan = state
        .db
        .read(move |conn| {
            crud::read_snapshot(conn, |conn| {
                plan_snap.check(conn)?;
                let Some(existing) = crud::existing(conn, &plan_c, &plan_id)? else { return Ok(None) };
                // A requester passing the auth collection's manageRule writes as a manager.
                let access = if base_access == Access::Default && crud::manages(conn, &plan_snap, &plan_c, &plan_req, &plan_id)? {
                    Access::Manager
                } else {
                    base_access
                };
                let input = resolve_input(&plan_c, Some(&existing), body, access);
                plan_req.ctx.body = input.clone();
                let allowed = crud::can_update(conn, &plan_snap, &plan_c, &plan_req, &plan_id)?;
                Ok(Some(UpdatePlan { existing, access, input, allowed }))
            })
        })
        .await
        .map_err(|e| attempt_error(e, FAILED))?;
    let Some(UpdatePlan { existing, access, input, allowed }) = plan else { return Err(ApiError::not_found().into()) };
    if !allowed {
        return Err(ApiError::not_found().into());
    }
    let new_files = files::record::upload_names(uploads);
    let opts = WriteOptions { existing: Some(&existing), access, now_millis: values::datetime::now_millis(), new_files: &new_files };
    let validated = match check_record(&c, &input, &opts) {
        Ok(v) => v,
        Err(rejected) => return Err(rejection(state, snap, rejected, FAILED).await.into()),
    };
    if let Some(PasswordInput::Plain(old)) = &validated.old_password {
        let hash = existing.get("password").and_then(Value::as_str).map(str::to_owned);
        if !state.passwords.verify_or_dummy(hash, old).await {
            let mut data = Map::new();
            data.insert("oldPassword".into(), serde_json::json!({"code": "validation_invalid_old_password", "message": "Missing or invalid old password."}));
            return Err(ApiError::validation(FAILED, data).into());
        }
    }
    let mut columns = validated.columns;
    hash_passwords(state, &mut columns, validated.passwords).await?;
    // New uploads are stored before the commit (removed again if it fails); the files the
    // update drops are deleted only after it committed.
    let keep = files::record::kept(&input, uploads);
    // The file fields this update sets: their new value was computed from `existing`, so the
    // write goes ahead only if they still hold what was read (else another update changed
    // them meanwhile, and writing this value would re-name a file it deleted or drop one it
    // added: plan again). The files to delete are those of the row as the write finds it.
    let file_fields: Vec<String> =
        c.fields.iter().filter(|f| matches!(f.kind, FieldKind::File(_)) && input.contains_key(&f.name)).map(|f| f.name.clone()).collect();
    let storage = if keep.is_empty() && file_fields.is_empty() { None } else { Some(files::storage(state).await.map_err(ApiError::internal)?) };
    let collection_id = c.id.clone();
    let written = match &storage {
        Some(s) if !keep.is_empty() => files::record::store(s, &collection_id, id, &keep).await.map_err(ApiError::internal)?,
        _ => Vec::new(),
    };
    let file_input: Map<String, Value> = file_fields.iter().filter_map(|f| input.get(f).map(|v| (f.clone(), v.clone()))).collect();
    let requester = requester(actor, method, query, headers, input);
    let (relations, shape, record_id) = (validated.relations, shape.clone(), id.to_owned());
    let realtime = state.realtime.clone();
    let result = state
        .db
        .write_then(
            move |tx| -> Result<(UpdateOutcome, Stamped), CrudError> {
                let mut dropped = Vec::new();
                if !file_fields.is_empty() {
                    let Some(current) = crud::existing(tx, &c, &record_id)? else { return Err(CrudError::NotFound) };
                    if file_fields.iter().any(|f| current.get(f) != existing.get(f)) {
                        return Ok((None, Stamped::default()));
                    }
                    dropped = files::record::removed(&c, &current, &file_input);
                }
                let mut changes = Changes::new();
                let bytes = crud::update(tx, &snap, &c, &requester, &record_id, &columns, &relations, &shape, &mut changes)?;
                Ok((Some((bytes, dropped)), changes::stamp(tx, changes)?))
            },
            move |(_, stamped)| realtime.publish(std::mem::take(stamped)),
        )
        .await
        .map(|(outcome, _)| outcome);
    match (&storage, &result) {
        (Some(s), Ok(Some((_, dropped)))) => files::record::delete_names(s, &collection_id, id, dropped).await,
        (Some(s), _) => files::record::discard(s, &written).await,
        (None, _) => {}
    }
    match result.map_err(|e| attempt_error(e, FAILED))? {
        Some((bytes, _)) => Ok(json_bytes(StatusCode::OK, bytes)),
        None => Err(Attempt::RowChanged),
    }
}

/// `DELETE /api/collections/{c}/records/{id}`
pub async fn delete(state: &AppState, collection: &str, id: &str, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let requester = Arc::new(requester(actor, req.method(), &query, req.headers(), Map::new()));
    let id = Arc::new(id.to_owned());
    // Its own task, as for create/update with files: a delete that commits must also get its
    // files deleted, whether or not the client is still there.
    let (state, collection) = (state.clone(), collection.to_owned());
    detached(async move { delete_detached(&state, &collection, requester, id).await }).await
}

async fn delete_detached(state: &AppState, collection: &str, requester: Arc<Requester>, id: Arc<String>) -> Result<Response<ResBody>, ApiError> {
    let result = with_snapshot(state, collection, |snap, c| {
        let (db, requester, id, realtime) = (state.db.clone(), requester.clone(), id.clone(), state.realtime.clone());
        Box::pin(async move {
            db.write_then(
                move |tx| {
                    let mut changes = Changes::new();
                    let deleted = crud::delete(tx, &snap, &c, &requester, &id, &mut changes)?;
                    Ok((deleted, changes::stamp(tx, changes)?))
                },
                move |(_, changes)| realtime.publish(std::mem::take(changes)),
            )
            .await
            .map(|(deleted, _)| deleted)
        })
    })
    .await;
    let deleted = finish(result, "Failed to delete record.")?;
    delete_files_of(state, collection, deleted).await;
    let mut res = json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
    res.headers_mut().remove(CONTENT_TYPE);
    Ok(res)
}

/// After a committed delete: removes the files of every deleted record (cascades included)
/// whose collection has file fields. Never fails the request; problems are logged.
async fn delete_files_of(state: &AppState, collection: &str, deleted: Vec<(String, String)>) {
    let Ok(snap) = state.schema.for_job(&state.db, collection, false).await else { return };
    let with_files: Vec<(String, String)> = deleted
        .into_iter()
        .filter(|(cid, _)| snap.get(cid).is_some_and(|c| c.fields.iter().any(|f| matches!(f.kind, crate::worker::records::schema::FieldKind::File(_)))))
        .collect();
    if with_files.is_empty() {
        return;
    }
    match files::storage(state).await {
        Ok(storage) => files::record::delete_records(&storage, &with_files).await,
        Err(e) => tracing::warn!(error = %e, "no storage to delete the files of deleted records"),
    }
}
