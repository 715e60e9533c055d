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
use crate::worker::api::record_hooks::Target;
use crate::worker::app::observe::Refusal;
use crate::worker::app::pipeline::{RecordWrite, WriteError, CREATE_FAILED, DELETE_FAILED, UPDATE_FAILED};
use crate::worker::api::uploads::{record_body, RecordBody};
use crate::worker::hooks::record_requests::{self, Kind};
use crate::worker::http::body::{collect_limited, json_bytes, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{list_envelope, ListParams, Query};
use crate::worker::records::cache::Snapshot;
use crate::worker::records::crud::{self, CrudError, Page, Requester, Shape};
use crate::worker::records::expand::ExpandTree;
use crate::worker::records::fields::Projection;
use crate::worker::records::query::{RequestContext, CLIENT_ERROR_MESSAGE};
use crate::worker::records::schema::Collection;
use crate::worker::records::values::{decode_form, Access};
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
        CrudError::EncryptedField(name) => {
            ApiError::bad_request(format!("Field \"{name}\" is encrypted: it cannot be used in a filter, sort or rule."))
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
    let auth = actor.auth().map(|a| a.rule_context());
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
pub(crate) fn guard_client_query(superuser: bool, filter: &str, sort: &str) -> Result<(), ApiError> {
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
    let loaded = state.hooks.current();
    if let Some(c) = record_requests::wants(state, &loaded, Kind::List, collection).await {
        return super::record_hooks::list(state, Target { loaded, collection: c, id: "" }, req, actor).await;
    }
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
    let loaded = state.hooks.current();
    if let Some(c) = record_requests::wants(state, &loaded, Kind::View, collection).await {
        return super::record_hooks::view(state, Target { loaded, collection: c, id }, req, actor).await;
    }
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

/// The answer to a write the pipeline did not make.
pub(crate) fn write_error(e: WriteError, failed: &str) -> ApiError {
    match e {
        WriteError::MissingCollection => missing_collection(),
        WriteError::Crud(c) => crud_error(c, failed),
        WriteError::Conflict(m) => ApiError::bad_request(m),
        WriteError::Refused(r) => refusal(r),
        other => ApiError::internal(other),
    }
}

/// An observer's refusal, answered as PocketBase answers a hook's thrown error.
pub(crate) fn refusal(r: Refusal) -> ApiError {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    if r.data.is_empty() {
        ApiError::new(status, r.message)
    } else {
        ApiError::validation(r.message, r.data)
    }
}

/// `POST /api/collections/{c}/records`
pub async fn create(state: &AppState, collection: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let loaded = state.hooks.current();
    if let Some(c) = record_requests::wants(state, &loaded, Kind::Create, collection).await {
        return super::record_hooks::write(state, Target { loaded, collection: c, id: "" }, req, actor).await;
    }
    let query = Query::parse(req.uri().query());
    let shape = shape(&query)?;
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    state.writes().admits(collection, &requester, None).await.map_err(|e| write_error(e, CREATE_FAILED))?;
    let RecordBody { body, uploads } = record_body(state, collection, req, CREATE_FAILED).await?;
    let no_uploads = uploads.is_empty();
    let write = |state: AppState, collection: String| async move {
        let w = RecordWrite { collection: &collection, requester: &requester, shape: &shape };
        let bytes = state.writes().create(w, body, &uploads).await.map_err(|e| write_error(e, CREATE_FAILED))?;
        Ok(json_bytes(StatusCode::OK, bytes))
    };
    if no_uploads {
        return write(state.clone(), collection.to_owned()).await;
    }
    // With files, the rest runs as its own task: files are stored before the write and
    // removed if it fails (or deleted after it commits), and a client that disconnects
    // meanwhile must not cancel that half-way and leave a file no record names.
    detached(write(state.clone(), collection.to_owned())).await
}

/// Runs a write and its file work (store before, delete or discard after the commit) to the
/// end even if the request is dropped, so storage always ends up matching the database.
async fn detached(
    work: impl std::future::Future<Output = Result<Response<ResBody>, ApiError>> + Send + 'static,
) -> Result<Response<ResBody>, ApiError> {
    tokio::spawn(work).await.map_err(ApiError::internal)?
}

/// `PATCH /api/collections/{c}/records/{id}`
pub async fn update(state: &AppState, collection: &str, id: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let loaded = state.hooks.current();
    if let Some(c) = record_requests::wants(state, &loaded, Kind::Update, collection).await {
        return super::record_hooks::write(state, Target { loaded, collection: c, id }, req, actor).await;
    }
    let query = Query::parse(req.uri().query());
    let shape = shape(&query)?;
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    state.writes().admits(collection, &requester, Some(id)).await.map_err(|e| write_error(e, UPDATE_FAILED))?;
    let RecordBody { body, uploads } = record_body(state, collection, req, UPDATE_FAILED).await?;
    // As in `create`, the store → write → delete sequence runs to its end; for updates always,
    // since a plain JSON body can drop files too (`field-`, `field: []`), which are deleted
    // only after the commit.
    let (state, collection, id) = (state.clone(), collection.to_owned(), id.to_owned());
    detached(async move {
        let w = RecordWrite { collection: &collection, requester: &requester, shape: &shape };
        let bytes = state.writes().update(w, &id, body, &uploads).await.map_err(|e| write_error(e, UPDATE_FAILED))?;
        Ok(json_bytes(StatusCode::OK, bytes))
    })
    .await
}

/// `DELETE /api/collections/{c}/records/{id}`
pub async fn delete(state: &AppState, collection: &str, id: &str, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let loaded = state.hooks.current();
    if let Some(c) = record_requests::wants(state, &loaded, Kind::Delete, collection).await {
        return super::record_hooks::delete(state, Target { loaded, collection: c, id }, req, actor).await;
    }
    let query = Query::parse(req.uri().query());
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    // Its own task, as for create/update with files: a delete that commits must also get its
    // files deleted, whether or not the client is still there.
    let (state, collection, id) = (state.clone(), collection.to_owned(), id.to_owned());
    detached(async move {
        let shape = Shape::default();
        let w = RecordWrite { collection: &collection, requester: &requester, shape: &shape };
        state.writes().delete(w, &id).await.map_err(|e| write_error(e, DELETE_FAILED))?;
        let mut res = json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
        res.headers_mut().remove(CONTENT_TYPE);
        Ok(res)
    })
    .await
}
