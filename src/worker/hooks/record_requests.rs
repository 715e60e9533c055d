//! Record requests that JS hooks take part in (PocketBase's `onRecordsListRequest`,
//! `onRecordViewRequest`, `onRecord{Create,Update,Delete}Request`, the model hooks a REST save
//! fires, `onRecordEnrich`), and the after-commit hooks of writes made outside JS (batch,
//! OAuth2, account flows) through a [`Committed`] observer.
//!
//! The REST handler asks [`wants`] first — a few hash lookups, nothing when no hook is
//! registered — and only then hands the whole request to one JS thread ([`run`]): the read a
//! list or view answers, the hook chain (`record_requests.js`), and as its last link the
//! write through the same pipeline a request without hooks takes (rules, validation, uploads,
//! realtime, observers), reached from JS by `__native.requestWrite`. One hand-off per request.
//!
//! The auth request hooks of flows vaultbase runs itself ([`auth_gate`], [`auth_with_password`])
//! work the same way: the flow's rest (a [`FlowNext`] the HTTP edge builds) is the chain's
//! default action, reached by `__native.gateNext`, so code after `e.next()` sees what it did.
//!
//! It knows no HTTP (the handler builds the [`RouteRequest`] and writes the answer) and never
//! runs JS on the async runtime or inside a database closure.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rquickjs::{Ctx, Function, Object};
use serde_json::{json, Map, Value};

use super::app::{base_app, collection_json};
use super::routes::{RouteRequest, RouteResponse};
use super::{bindings, errors, Loaded};
use crate::worker::app::data::save_body;
use crate::worker::app::observe::{Committed, Observer, Pending, Source};
use crate::worker::app::pipeline::{RecordWrite, WriteError, CREATE_FAILED, DELETE_FAILED, UPDATE_FAILED};
use crate::worker::files::staged::StagedFile;
use crate::worker::records::changes::Action;
use crate::worker::records::crud::{self, CrudError, Page, Requester, Shape};
use crate::worker::records::schema::Collection;
use crate::worker::state::AppState;

const RECORD_REQUESTS_JS: &str = include_str!("record_requests.js");

/// Which record request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    List,
    View,
    Create,
    Update,
    Delete,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::View => "view",
            Kind::Create => "create",
            Kind::Update => "update",
            Kind::Delete => "delete",
        }
    }

    /// Every hook that can fire while serving this request.
    fn hooks(self) -> &'static [&'static str] {
        match self {
            Kind::List => &["onRecordsListRequest", "onRecordEnrich"],
            Kind::View => &["onRecordViewRequest", "onRecordEnrich"],
            Kind::Create => &[
                "onRecordCreateRequest", "onRecordCreate", "onRecordValidate", "onRecordCreateExecute",
                "onRecordAfterCreateSuccess", "onRecordAfterCreateError", "onRecordEnrich",
            ],
            Kind::Update => &[
                "onRecordUpdateRequest", "onRecordUpdate", "onRecordValidate", "onRecordUpdateExecute",
                "onRecordAfterUpdateSuccess", "onRecordAfterUpdateError", "onRecordEnrich",
            ],
            Kind::Delete => &["onRecordDeleteRequest", "onRecordDelete", "onRecordDeleteExecute", "onRecordAfterDeleteSuccess", "onRecordAfterDeleteError"],
        }
    }
}

/// Whether a `kind` request on `collection` (its name or id as in the URL) must go through
/// the JS thread: the hook set is loaded and some hook of this request fires for it.
pub async fn wants(state: &AppState, loaded: &Loaded, kind: Kind, collection: &str) -> Option<Arc<Collection>> {
    let registry = &loaded.registry;
    if registry.is_empty() || !kind.hooks().iter().any(|h| registry.has_any(h)) {
        return None;
    }
    // The held snapshot when it knows the collection (no database hop), else a fresh one.
    let c = state.schema.for_job(&state.db, collection, false).await.ok()?.get(collection).cloned()?;
    kind.hooks().iter().any(|h| registry.has(h, &c.id, &c.name)).then_some(c)
}

/// A list page's parameters.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub page: Page,
    pub filter: String,
    pub sort: String,
}

/// Everything a record request needs on the JS thread, read by the HTTP edge.
pub struct RecordCall {
    pub kind: Kind,
    pub request: RouteRequest,
    pub collection: Arc<Collection>,
    pub requester: Requester,
    pub shape: Shape,
    /// The record id of a view, update or delete.
    pub id: String,
    /// The submitted body of a create or update.
    pub body: Map<String, Value>,
    pub uploads: Vec<StagedFile>,
    pub list: Option<ListQuery>,
}

/// The write a request's default action makes, reachable from `__native.requestWrite`
/// while its chain runs on this thread.
struct InFlight {
    state: AppState,
    handle: tokio::runtime::Handle,
    collection: Arc<Collection>,
    requester: Requester,
    shape: Shape,
    id: String,
    uploads: Vec<StagedFile>,
}

thread_local! {
    static REQUEST: RefCell<Vec<InFlight>> = const { RefCell::new(Vec::new()) };
    /// The rest of the gated flow whose chain runs on this thread ([`auth_gate`]), taken by
    /// its default action through `__native.gateNext`.
    static GATE_NEXT: RefCell<Vec<Option<FlowNext>>> = const { RefCell::new(Vec::new()) };
}

/// What the rest of a gated flow did when its chain's default action ran it ([`FlowNext`]).
pub enum FlowDone {
    /// A sign-in: the record as stored and its token. The default action answers `{token,
    /// record, meta?}` through `onRecordAuthRequest` on this thread, as PocketBase's
    /// `RecordAuthResponse` inside the chain — or, with `mfa` (the MFA session's id, another
    /// factor being needed), 401 `{mfaId}` from `onRecordAuthRequest`'s default action.
    SignedIn { record: Map<String, Value>, token: String, method: &'static str, meta: Option<Value>, mfa: Option<String> },
    /// The flow's own answer (e.g. a confirm flow's 204), with the record it reached.
    Answered { record: Option<Map<String, Value>>, response: RouteResponse },
}

/// What a gated chain left when its default action ran: the hook's own fields and the fields
/// of `e.record` a handler changed (empty without a record).
#[derive(Debug, Default)]
pub struct Reached {
    pub extra: Map<String, Value>,
    pub changes: Map<String, Value>,
}

/// The rest of a flow vaultbase runs itself, run by its auth hook's default action (so code
/// after `e.next()` sees what it stored, as in PocketBase), given what the chain left. Runs
/// on the JS thread, blocking on the worker's runtime as `__native.requestWrite` does; its
/// error is what `e.next()` throws.
pub type FlowNext = Box<dyn FnOnce(Reached) -> Pin<Box<dyn Future<Output = Result<FlowDone, errors::Failure>>>> + Send>;

/// Installs `__native.requestWrite` and `record_requests.js` (after `app.js`).
pub fn install<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    let native: Object = ctx.globals().get("__native")?;
    native.set("requestWrite", Function::new(ctx.clone(), |ctx: Ctx<'js>, kind: String, fields: String, original: String| request_write(&ctx, &kind, &fields, &original))?)?;
    native.set("gateNext", Function::new(ctx.clone(), |ctx: Ctx<'js>, extra: String| gate_next(&ctx, &extra))?)?;
    native.set("batchWrite", Function::new(ctx.clone(), |ctx: Ctx<'js>, index: f64, kind: String, args: String| batch_write(&ctx, index.max(0.0) as usize, kind, &args))?)?;
    bindings::eval_internal(ctx, RECORD_REQUESTS_JS, "<vaultbase record requests>")?;
    Ok(())
}

/// The error envelope of a failed write, as the REST handler answers it.
fn write_failure(e: WriteError, failed: &str) -> (u16, String, Map<String, Value>) {
    match e {
        WriteError::MissingCollection => (404, "Missing collection context.".into(), Map::new()),
        WriteError::Crud(c) => crud_failure(c, failed),
        WriteError::Conflict(m) => (400, m.into(), Map::new()),
        WriteError::Refused(r) => (r.status, r.message, r.data),
        other => {
            tracing::error!(error = %other, "a hooked record write failed");
            (500, "Something went wrong while processing your request.".into(), Map::new())
        }
    }
}

fn crud_failure(e: CrudError, failed: &str) -> (u16, String, Map<String, Value>) {
    match e {
        CrudError::NotFound => (404, "The requested resource wasn't found.".into(), Map::new()),
        CrudError::SuperusersOnly => (403, "Only superusers can perform this action.".into(), Map::new()),
        CrudError::BadQuery(_) => (400, "Something went wrong while processing your request.".into(), Map::new()),
        CrudError::Invalid { errors, .. } => (400, failed.into(), errors.to_data()),
        CrudError::Refused(m) => (400, m.into(), Map::new()),
        other => {
            tracing::error!(error = %other, "a hooked record request failed");
            (500, "Something went wrong while processing your request.".into(), Map::new())
        }
    }
}

/// `__native.requestWrite(kind, fields, original)`: the REST write of the running request
/// with the record as the hooks left it (its values and its original as JSON texts, "" where
/// the write reads none); answers the record's API JSON ("" for a delete).
fn request_write<'js>(ctx: &Ctx<'js>, kind: &str, fields: &str, original: &str) -> rquickjs::Result<String> {
    let fields: Map<String, Value> = serde_json::from_str(fields).unwrap_or_default();
    let original: Option<Map<String, Value>> = serde_json::from_str(original).ok();
    let Some(p) = REQUEST.with(|r| r.borrow_mut().pop()) else {
        return Err(rquickjs::Exception::throw_message(ctx, "no record request is running"));
    };
    let result = write_now(&p, kind, &fields, original.as_ref());
    REQUEST.with(|r| r.borrow_mut().push(p));
    match result {
        Ok(text) => Ok(text),
        Err((status, message, data)) => Err(super::app::throw_with_data(ctx, status, &message, data)),
    }
}

/// `__native.gateNext({extra, changes})`: runs the rest of the gated flow of this thread's
/// chain with what the chain left ([`Reached`]); answers `{record, auth: {token, method,
/// meta}}` or `{record, response: {status, headers, body}}`, or throws the flow's error.
fn gate_next<'js>(ctx: &Ctx<'js>, args: &str) -> rquickjs::Result<String> {
    // Made by record_requests.js: anything else is a bug there, not "no changes".
    let mut args: Map<String, Value> = serde_json::from_str(args).map_err(|e| rquickjs::Exception::throw_internal(ctx, &format!("gateNext: bad arguments: {e}")))?;
    let mut take = |k: &str| match args.remove(k) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let reached = Reached { extra: take("extra"), changes: take("changes") };
    let next = GATE_NEXT.with(|g| g.borrow_mut().last_mut().and_then(Option::take));
    let (Some(next), Some(handle)) = (next, super::engine::current().and_then(|ts| ts.env.handle.clone())) else {
        return Err(rquickjs::Exception::throw_message(ctx, "no gated flow is waiting"));
    };
    match handle.block_on(next(reached)) {
        Ok(FlowDone::SignedIn { record, token, method, meta, mfa }) => {
            Ok(json!({"record": record, "auth": {"token": token, "method": method, "meta": meta, "mfaId": mfa}}).to_string())
        }
        Ok(FlowDone::Answered { record, response }) => Ok(json!({
            "record": record,
            "response": {"status": response.status, "headers": response.headers, "body": String::from_utf8_lossy(&response.body)},
        })
        .to_string()),
        Err(f) => Err(super::app::throw_with_data(ctx, f.status, &f.message, f.data)),
    }
}

fn write_now(p: &InFlight, kind: &str, fields: &Map<String, Value>, original: Option<&Map<String, Value>>) -> Result<String, (u16, String, Map<String, Value>)> {
    p.handle.block_on(write_record(p, kind, fields, original))
}

/// The REST write of a request's default action, with the record's fields as the chain left
/// them (and, for an update, as they were loaded): the API JSON text ("" for a delete).
async fn write_record(p: &InFlight, kind: &str, fields: &Map<String, Value>, original: Option<&Map<String, Value>>) -> Result<String, (u16, String, Map<String, Value>)> {
    let writes = p.state.writes();
    let w = RecordWrite { collection: &p.collection.id, requester: &p.requester, shape: &p.shape };
    match kind {
        "create" => {
            let mut body = save_body(&p.collection, fields, None);
            if let Some(Value::String(pc)) = fields.get("passwordConfirm") {
                body.insert("passwordConfirm".into(), Value::String(pc.clone()));
            }
            let bytes = writes.create(w, body, &p.uploads).await.map_err(|e| write_failure(e, CREATE_FAILED))?;
            Ok(text_of(bytes))
        }
        "update" => {
            let body = save_body(&p.collection, fields, original);
            let bytes = writes.update(w, &p.id, body, &p.uploads).await.map_err(|e| write_failure(e, UPDATE_FAILED))?;
            Ok(text_of(bytes))
        }
        "delete" => {
            writes.delete(w, &p.id).await.map_err(|e| write_failure(e, DELETE_FAILED))?;
            Ok(String::new())
        }
        other => Err((400, format!("unknown write {other}"), Map::new())),
    }
}

/// What a record request's JS dispatch came to.
enum Served {
    /// The chain's answer, written.
    Answer(RouteResponse),
    /// The chain reached its default action and left the write to the caller ([`Deferred`]).
    Write(Deferred),
}

/// A default action left for after the dispatch (`p.defer` in record_requests.js): every
/// handler of the chain called `e.next()` as its last act, so none of them can see the write
/// happen later. Made on the async side, the JS thread is free for the next request instead
/// of blocked until the write commits.
struct Deferred {
    target: InFlight,
    kind: String,
    fields: String,
    original: String,
    /// Response headers the handlers set before `e.next()`.
    headers: Vec<(String, String)>,
}

impl Deferred {
    /// Writes, and answers as the chain's default action would have: the record JSON (or 204
    /// for a delete) with the handlers' headers, or the write's error as a thrown ApiError is
    /// answered (its message made a sentence, as `ApiError` does).
    async fn write(self) -> RouteResponse {
        let fields: Map<String, Value> = serde_json::from_str(&self.fields).unwrap_or_default();
        let original: Option<Map<String, Value>> = serde_json::from_str(&self.original).ok();
        match write_record(&self.target, &self.kind, &fields, original.as_ref()).await {
            Ok(text) => {
                let mut headers = self.headers;
                let status = if self.kind == "delete" {
                    204
                } else {
                    if !headers.iter().any(|(k, _)| k == "content-type") {
                        headers.push(("content-type".into(), "application/json".into()));
                    }
                    200
                };
                RouteResponse { status, headers, body: text.into_bytes() }
            }
            Err((status, message, data)) => {
                let status = if (400..=599).contains(&status) { status } else { 400 };
                let message = crate::worker::http::error::sentenize(&message);
                let mut res = failure(status, if message.is_empty() { errors::GENERIC_MESSAGE.into() } else { message }, data);
                // As the thrown error's answer keeps them (RouteResponse::failed).
                res.headers.extend(self.headers.into_iter().filter(|(k, _)| k != "content-type"));
                res
            }
        }
    }
}

/// Whether a `kind` request on `c` may leave its write to the caller: its request hook's
/// handlers all end with `e.next()` and no other hook of the request (model, after, enrich)
/// fires for `c`.
fn may_defer(kind: Kind, c: &Collection) -> bool {
    let Some(ts) = super::engine::current() else { return false };
    let registry = &ts.env.registry;
    let (request_hook, others) = match kind {
        Kind::Create | Kind::Update | Kind::Delete => kind.hooks().split_at(1),
        Kind::List | Kind::View => return false,
    };
    let tags = [c.id.as_str(), c.name.as_str()];
    registry.all_end_with_next(request_hook[0], &tags) && !others.iter().any(|h| registry.has(h, &c.id, &c.name))
}

/// The API JSON the pipeline answered, as text (no copy when it is UTF-8, as it always is).
fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// JSON text of `v`, or `null` (a map of JSON values always serializes).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Serves `call` on a JS thread of `loaded`: the whole request, hooks and default action.
pub async fn run(state: &AppState, loaded: &Arc<Loaded>, call: RecordCall) -> RouteResponse {
    let limits = loaded.env().limits;
    let state = state.clone();
    let what = format!("{} record request", call.kind.as_str());
    let ran = loaded.run(limits.timeout, move |ctx| serve(ctx, state, call)).await;
    match ran {
        Ok((Served::Answer(res), None)) => res,
        Ok((Served::Write(deferred), None)) => deferred.write().await,
        Ok((_, Some(trap))) => RouteResponse::failure(&errors::trapped(trap, &what, "", 0, &limits)),
        Err(super::DispatchError::Saturated) => RouteResponse::failure(&errors::Failure { status: 503, message: super::SATURATED_MESSAGE.into(), data: Default::default() }),
        Err(e) => {
            tracing::error!(target: "vaultbase::hooks", error = ?e, "a record request's JS thread did not answer");
            RouteResponse::failure(&errors::Failure::internal())
        }
    }
}

fn failure(status: u16, message: String, data: Map<String, Value>) -> RouteResponse {
    RouteResponse::failure(&errors::Failure { status, message, data })
}

#[derive(serde::Deserialize)]
struct Written {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    bytes: Option<Vec<u8>>,
}

fn serve(ctx: &Ctx<'_>, state: AppState, call: RecordCall) -> Served {
    let (Some(app), Some(handle)) = (base_app(), super::engine::current().and_then(|ts| ts.env.handle.clone())) else {
        return Served::Answer(RouteResponse::failure(&errors::Failure::internal()));
    };
    let c = call.collection.clone();
    // What PocketBase loads before the chain: the page, the viewed record (under the rules),
    // or the stored record an update or delete starts from. The JSON text of `p` in
    // recordRequest, made of the JSON pieces as they are (parsed once, in the runtime).
    let payload = match call.kind {
        Kind::List => {
            let Some(q) = call.list.clone() else { return Served::Answer(RouteResponse::failure(&errors::Failure::internal())) };
            let (req, shape, lq) = (call.requester.clone(), call.shape.clone(), q.clone());
            let listed = read_job(&state, &handle, &c.id, move |conn, snap, c| crud::list(conn, snap, c, &req, &lq.page, &lq.filter, &lq.sort, &shape));
            match listed {
                Ok((items, total)) => {
                    let (total_items, total_pages) = match total {
                        Some(t) => (t as i64, t.div_ceil(u64::from(q.page.per_page.max(1))) as i64),
                        None => (-1, -1),
                    };
                    format!(
                        "{{\"page\":{{\"page\":{},\"perPage\":{},\"totalItems\":{},\"totalPages\":{},\"items\":{}}}}}",
                        q.page.page,
                        q.page.per_page,
                        total_items,
                        total_pages,
                        String::from_utf8_lossy(&items)
                    )
                }
                Err(e) => {
                    let (s, m, d) = crud_failure(e, "");
                    return Served::Answer(failure(s, m, d));
                }
            }
        }
        Kind::View => {
            let (req, shape, id) = (call.requester.clone(), call.shape.clone(), call.id.clone());
            let viewed = read_job(&state, &handle, &c.id, move |conn, snap, c| crud::view(conn, snap, c, &req, &id, &shape));
            match viewed {
                Ok(bytes) => format!("{{\"record\":{}}}", String::from_utf8_lossy(&bytes)),
                Err(e) => {
                    let (s, m, d) = crud_failure(e, "");
                    return Served::Answer(failure(s, m, d));
                }
            }
        }
        Kind::Create => format!("{{\"body\":{},\"defer\":{}}}", json_text(&call.body), may_defer(call.kind, &c)),
        Kind::Update | Kind::Delete => match app.find_by_id(&c.id, &call.id) {
            Ok(r) => format!("{{\"record\":{},\"body\":{},\"defer\":{}}}", json_text(&r.fields), json_text(&call.body), may_defer(call.kind, &c)),
            Err(_) => return Served::Answer(failure(404, "The requested resource wasn't found.".into(), Map::new())),
        },
    };
    REQUEST.with(|r| {
        r.borrow_mut().push(InFlight {
            state: state.clone(),
            handle,
            collection: c.clone(),
            requester: call.requester,
            shape: call.shape,
            id: call.id,
            uploads: call.uploads,
        })
    });
    let what = format!("{} {}", call.request.method, call.request.path);
    let result = (|| -> rquickjs::Result<Result<RouteResponse, Deferral>> {
        let r = super::routes::request_object(ctx, &call.request)?;
        // The collection's JSON crosses only when this runtime has not seen this version of it.
        let key = format!("{}@{}", c.id, c.updated);
        let cached = !super::engine::internal(ctx, "collectionCached")?.call::<_, rquickjs::Value>((key.as_str(),))?.is_null();
        let cjson = if cached { rquickjs::String::from_str(ctx.clone(), &key)?.into_value() } else { ctx.json_parse(collection_json(&c).to_string())? };
        let p = ctx.json_parse(payload)?;
        let res: rquickjs::Array = super::engine::internal(ctx, "recordRequest")?.call((call.kind.as_str(), r, cjson, p))?;
        // A response tuple starts with a boolean, a deferred write with "defer".
        if res.get::<rquickjs::Value>(0)?.is_string() {
            return Ok(Err(Deferral { kind: res.get(1)?, fields: res.get(2)?, original: res.get(3)?, headers: super::routes::header_pairs(res.get(4)?) }));
        }
        super::routes::response_of(&res).map(Ok)
    })();
    let target = REQUEST.with(|r| r.borrow_mut().pop());
    match (result, target) {
        (Ok(Ok(res)), _) => Served::Answer(res),
        (Ok(Err(d)), Some(target)) => Served::Write(Deferred { target, kind: d.kind, fields: d.fields, original: d.original, headers: d.headers }),
        (Ok(Err(_)), None) => Served::Answer(RouteResponse::failure(&errors::Failure::internal())),
        (Err(e), _) => {
            let failure = errors::failure_of(ctx, e, &what);
            Served::Answer(RouteResponse::failed(ctx, &failure))
        }
    }
}

/// The write a chain left for later, as recordRequest returned it.
struct Deferral {
    kind: String,
    fields: String,
    original: String,
    headers: Vec<(String, String)>,
}

/// Runs a read job of the REST handlers with a fresh schema snapshot, planned again once if
/// the schema moved meanwhile (as the handlers do).
fn read_job<T: Send + 'static>(
    state: &AppState,
    handle: &tokio::runtime::Handle,
    collection: &str,
    job: impl Fn(&rusqlite::Connection, &crate::worker::records::cache::Snapshot, &Collection) -> Result<T, CrudError> + Send + Sync + 'static,
) -> Result<T, CrudError> {
    let job = Arc::new(job);
    for attempt in 0..2 {
        let snap = handle.block_on(state.schema.for_job(&state.db, collection, attempt > 0)).map_err(|e| CrudError::BadQuery(e.to_string()))?;
        let Some(c) = snap.get(collection).cloned() else { return Err(CrudError::NotFound) };
        let j = job.clone();
        match handle.block_on(state.db.read(move |conn| crud::read_snapshot(conn, |conn| j(conn, &snap, &c)))) {
            Err(CrudError::Stale(_)) => state.schema.invalidate(),
            other => return other,
        }
    }
    Err(CrudError::Refused("The collection changed while the request was served; please retry."))
}

/// Fires the after-commit hooks of writes made outside JS (batch items, OAuth2 sign-ups,
/// account flows): REST writes with hooks and `$app` writes fire theirs on their JS thread.
pub struct AfterCommitHooks {
    state: AppState,
}

impl AfterCommitHooks {
    pub fn new(state: AppState) -> AfterCommitHooks {
        AfterCommitHooks { state }
    }
}

impl Observer for AfterCommitHooks {
    fn before<'a>(&'a self, _pending: &'a Pending) -> crate::worker::app::observe::BeforeFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn after(&self, committed: &Committed) {
        if matches!(committed.source, Source::Rest | Source::Hook) {
            return;
        }
        let name = match committed.action {
            Action::Create => "onRecordAfterCreateSuccess",
            Action::Update => "onRecordAfterUpdateSuccess",
            Action::Delete => "onRecordAfterDeleteSuccess",
        };
        let loaded = self.state.hooks.current();
        let Some(c) = self.state.schema.snapshot().get(&committed.collection_id).cloned() else { return };
        if !loaded.registry.has(name, &c.id, &c.name) {
            return;
        }
        let record = match committed.action {
            Action::Delete => committed.before.clone().unwrap_or_default(),
            _ => committed.after.clone().unwrap_or_default(),
        };
        let (id, action) = (committed.record_id.clone(), committed.action);
        let limits = loaded.env().limits;
        let job_loaded = loaded.clone();
        // After the answer is decided and off the committing task: the hook runs on a JS
        // thread, and its errors are logged (the write stays committed).
        tokio::spawn(async move {
            let ran = job_loaded
                .run(limits.timeout, move |ctx| -> Result<(), errors::Failure> {
                    let fields = match (action, base_app()) {
                        (Action::Delete, _) | (_, None) => record,
                        (_, Some(app)) => app.find_by_id(&c.id, &id).map(|r| r.fields).unwrap_or(record),
                    };
                    let go = || -> rquickjs::Result<()> {
                        let cjson = ctx.json_parse(collection_json(&c).to_string())?;
                        let d = ctx.json_parse(Value::Object(fields).to_string())?;
                        bindings::call_vb::<_, rquickjs::Value>(ctx, "afterCommitted", (name, cjson, d))?;
                        Ok(())
                    };
                    go().map_err(|e| errors::failure_of(ctx, e, name))
                })
                .await;
            match ran {
                Ok((Err(f), _)) => tracing::error!(target: "vaultbase::hooks", hook = name, status = f.status, message = %f.message, "hook failed"),
                Err(e) => tracing::error!(target: "vaultbase::hooks", hook = name, error = ?e, "could not run hook"),
                _ => {}
            }
        });
    }
}

/// Registers [`AfterCommitHooks`] if the loaded hooks have an after-success record hook: an
/// observer makes every write build its events, so none is registered without one. (A reload
/// that adds the first such hook takes effect for writes outside JS at the next start.)
pub fn observe_commits(state: &AppState) {
    let loaded = state.hooks.current();
    let names = ["onRecordAfterCreateSuccess", "onRecordAfterUpdateSuccess", "onRecordAfterDeleteSuccess"];
    if names.iter().any(|n| loaded.registry.has_any(n)) {
        state.observers.register(Arc::new(AfterCommitHooks::new(state.clone())));
    }
}

/// The answer of a successful authentication (password, OTP, OAuth2) when a hook takes part
/// in it (`onRecordAuthRequest`, `onRecordEnrich`): the chain with the token vaultbase signed
/// and `{token, record, meta?}` as its default (with `mfa`, 401 `{mfaId}`: another factor is
/// needed). None when no such hook fires for `c`.
#[allow(clippy::too_many_arguments)]
pub async fn auth_response(
    state: &AppState,
    c: &Arc<Collection>,
    record: &Map<String, Value>,
    token: String,
    method: &str,
    meta: Option<Value>,
    mfa: Option<String>,
    request: RouteRequest,
) -> Option<RouteResponse> {
    let loaded = state.hooks.current();
    let registry = &loaded.registry;
    if registry.is_empty() || !["onRecordAuthRequest", "onRecordEnrich"].iter().any(|h| registry.has(h, &c.id, &c.name)) {
        return None;
    }
    let (c, record, method) = (c.clone(), record.clone(), method.to_owned());
    let limits = loaded.env().limits;
    let ran = loaded
        .run(limits.timeout, move |ctx| {
            let go = || -> rquickjs::Result<String> {
                let r = super::routes::request_object(ctx, &request)?;
                let cjson = ctx.json_parse(collection_json(&c).to_string())?;
                let fields = ctx.json_parse(Value::Object(record).to_string())?;
                let meta = ctx.json_parse(meta.unwrap_or(Value::Null).to_string())?;
                bindings::call_vb(ctx, "authRequest", (r, cjson, fields, token, method, meta, mfa.unwrap_or_default()))
            };
            match go() {
                Ok(text) => match serde_json::from_str::<Written>(&text) {
                    Ok(w) => RouteResponse { status: w.status, headers: w.headers, body: w.bytes.unwrap_or_else(|| w.body.into_bytes()) },
                    Err(_) => RouteResponse::failure(&errors::Failure::internal()),
                },
                Err(e) => {
                    let failure = errors::failure_of(ctx, e, "onRecordAuthRequest");
                    RouteResponse::failed(ctx, &failure)
                }
            }
        })
        .await;
    Some(match ran {
        Ok((res, None)) => res,
        Ok((_, Some(trap))) => RouteResponse::failure(&errors::trapped(trap, "onRecordAuthRequest", "", 0, &limits)),
        Err(_) => RouteResponse::failure(&errors::Failure::internal()),
    })
}

/// Runs `onRecordAuthWithPasswordRequest` for a password sign-in on a JS thread. Its default
/// action checks `e.password` against `e.record` ("Failed to authenticate." otherwise) and
/// hands the record back — or, with `next`, runs the rest of the sign-in with it (`{extra:
/// {record}}`) and answers; Err is the answer when the chain answered.
pub async fn auth_with_password(
    loaded: &Arc<Loaded>,
    c: &Arc<Collection>,
    request: RouteRequest,
    identity: &str,
    password: &str,
    found: Option<Map<String, Value>>,
    next: Option<FlowNext>,
) -> Result<Map<String, Value>, RouteResponse> {
    let limits = loaded.env().limits;
    let (c, identity, password) = (c.clone(), identity.to_owned(), password.to_owned());
    let ran = loaded
        .run(limits.timeout, move |ctx| -> Result<Map<String, Value>, RouteResponse> {
            let has_next = next.is_some();
            GATE_NEXT.with(|g| g.borrow_mut().push(next));
            let go = || -> rquickjs::Result<String> {
                let r = super::routes::request_object(ctx, &request)?;
                let cjson = ctx.json_parse(collection_json(&c).to_string())?;
                let fields = ctx.json_parse(found.map(Value::Object).unwrap_or(Value::Null).to_string())?;
                bindings::call_vb(ctx, "authWithPassword", (r, cjson, identity, password, fields, has_next))
            };
            let out = go();
            GATE_NEXT.with(|g| g.borrow_mut().pop());
            let text = out.map_err(|e| {
                let failure = errors::failure_of(ctx, e, "onRecordAuthWithPasswordRequest");
                RouteResponse::failed(ctx, &failure)
            })?;
            #[derive(serde::Deserialize)]
            struct Outcome {
                record: Option<Map<String, Value>>,
                response: String,
            }
            let out: Outcome = serde_json::from_str(&text).map_err(|_| RouteResponse::failure(&errors::Failure::internal()))?;
            match out.record {
                Some(record) => Ok(record),
                None => match serde_json::from_str::<Written>(&out.response) {
                    Ok(w) => Err(RouteResponse { status: w.status, headers: w.headers, body: w.bytes.unwrap_or_else(|| w.body.into_bytes()) }),
                    Err(_) => Err(RouteResponse::failure(&errors::Failure::internal())),
                },
            }
        })
        .await;
    match ran {
        Ok((out, None)) => out,
        Ok((_, Some(trap))) => Err(RouteResponse::failure(&errors::trapped(trap, "onRecordAuthWithPasswordRequest", "", 0, &limits))),
        Err(_) => Err(RouteResponse::failure(&errors::Failure::internal())),
    }
}

/// How an auth gate's chain ended ([`auth_gate`]).
pub enum Gate {
    /// The default action was reached: the flow goes on, with the hook's fields as the
    /// chain left them (e.g. `password` for `onRecordRequestOTPRequest`), and the fields of
    /// `e.record` a handler changed before `e.next()` (empty without a record).
    Passed(Map<String, Value>, Map<String, Value>),
    /// A handler threw, or stopped the chain (with its answer, or an empty 200), or the
    /// default action ran the flow's [`FlowNext`] and this is the answer the chain wrote.
    Answered(RouteResponse),
}

/// An empty 200: what a chain that answered nothing leaves.
pub fn empty_answer() -> RouteResponse {
    RouteResponse { status: 200, headers: Vec::new(), body: Vec::new() }
}

/// Runs the auth request hook `name` on `c` on a JS thread, around a flow vaultbase runs in
/// Rust: `e.collection`, `e.record` (`record`, or null) and the fields of `extra` (a value
/// `{"__record": {"collection", "fields"}}` becomes a Record). With `next`, the default action
/// runs the rest of the flow itself and the chain answers; without it the default action only
/// marks the chain as passed.
pub async fn auth_gate(
    loaded: &Arc<Loaded>,
    name: &'static str,
    c: &Arc<Collection>,
    request: RouteRequest,
    record: Option<Map<String, Value>>,
    mut extra: Map<String, Value>,
    next: Option<FlowNext>,
) -> Gate {
    let limits = loaded.env().limits;
    let c = c.clone();
    if next.is_some() {
        extra.insert("__next".into(), Value::Bool(true));
    }
    let ran = loaded
        .run(limits.timeout, move |ctx| -> Gate {
            GATE_NEXT.with(|g| g.borrow_mut().push(next));
            let go = || -> rquickjs::Result<String> {
                let r = super::routes::request_object(ctx, &request)?;
                let cjson = ctx.json_parse(collection_json(&c).to_string())?;
                let fields = ctx.json_parse(record.map(Value::Object).unwrap_or(Value::Null).to_string())?;
                let extra = ctx.json_parse(Value::Object(extra).to_string())?;
                bindings::call_vb(ctx, "authGate", (name, r, cjson, fields, extra))
            };
            let out = go();
            GATE_NEXT.with(|g| g.borrow_mut().pop());
            let text = match out {
                Ok(t) => t,
                Err(e) => {
                    let failure = errors::failure_of(ctx, e, name);
                    return Gate::Answered(RouteResponse::failed(ctx, &failure));
                }
            };
            #[derive(serde::Deserialize)]
            struct Outcome {
                passed: bool,
                extra: Map<String, Value>,
                #[serde(default)]
                changes: Option<Map<String, Value>>,
                response: String,
            }
            match serde_json::from_str::<Outcome>(&text) {
                Ok(o) if o.passed => Gate::Passed(o.extra, o.changes.unwrap_or_default()),
                Ok(o) => match serde_json::from_str::<Written>(&o.response) {
                    Ok(w) => Gate::Answered(RouteResponse { status: w.status, headers: w.headers, body: w.bytes.unwrap_or_else(|| w.body.into_bytes()) }),
                    Err(_) => Gate::Answered(RouteResponse::failure(&errors::Failure::internal())),
                },
                Err(_) => Gate::Answered(RouteResponse::failure(&errors::Failure::internal())),
            }
        })
        .await;
    match ran {
        Ok((gate, None)) => gate,
        Ok((_, Some(trap))) => Gate::Answered(RouteResponse::failure(&errors::trapped(trap, name, "", 0, &limits))),
        Err(_) => Gate::Answered(RouteResponse::failure(&errors::Failure::internal())),
    }
}

/// The write of one batch item as its request hooks left the record: `(item index, "create" |
/// "update" | "delete", fields, original)` inside the batch's transaction; answers the item's
/// API JSON (empty for a delete) or the item's error envelope parts.
pub type ItemWriter = Arc<
    dyn Fn(&rusqlite::Transaction<'_>, &crate::worker::records::cache::Snapshot, &mut crate::worker::records::changes::Changes, usize, &str, Map<String, Value>, Option<Map<String, Value>>) -> Result<Vec<u8>, (u16, String, Map<String, Value>)>
        + Send
        + Sync,
>;

/// One item of a batch whose request hooks fire, as `vb.batchRequest` takes it.
#[derive(Debug, serde::Serialize)]
pub struct BatchItemCall {
    /// "create", "update", "delete" or "upsert".
    pub kind: &'static str,
    pub collection: Value,
    /// The record of an update or delete, or the `id` an upsert names.
    pub id: String,
    pub request: RouteRequest,
    pub body: Map<String, Value>,
}

thread_local! {
    static BATCH: RefCell<Vec<ItemWriter>> = const { RefCell::new(Vec::new()) };
}

/// Runs a batch whose items fire record request hooks on one JS thread, as PocketBase does:
/// one transaction (`e.app` is the transactional app, `requestInfo().context` is "batch"),
/// each item's chain with its write as the default action, in order. Ok(the items' answers),
/// or Err((failed item index, its answer)) after a rollback.
pub async fn batch(loaded: &Arc<Loaded>, items: Vec<BatchItemCall>, writer: ItemWriter) -> Result<Vec<Value>, (usize, RouteResponse)> {
    let limits = loaded.env().limits;
    let ran = loaded
        .run(limits.timeout, move |ctx| -> Result<Vec<Value>, (usize, RouteResponse)> {
            BATCH.with(|b| b.borrow_mut().push(writer));
            let go = || -> rquickjs::Result<String> {
                let list = ctx.json_parse(serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()))?;
                bindings::call_vb(ctx, "batchRequest", (list,))
            };
            let out = go();
            BATCH.with(|b| b.borrow_mut().pop());
            match out {
                Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_default()),
                Err(e) => {
                    let failure = errors::failure_of(ctx, e, "batch request");
                    let index = ctx.globals().get::<_, Object>("__vb").and_then(|vb| vb.get::<_, f64>("batchFailed")).unwrap_or(0.0);
                    Err((index.max(0.0) as usize, RouteResponse::failure(&failure)))
                }
            }
        })
        .await;
    match ran {
        Ok((out, None)) => out,
        Ok((_, Some(trap))) => Err((0, RouteResponse::failure(&errors::trapped(trap, "batch request", "", 0, &limits)))),
        Err(super::DispatchError::Saturated) => Err((0, RouteResponse::failure(&errors::Failure { status: 503, message: super::SATURATED_MESSAGE.into(), data: Default::default() }))),
        Err(_) => Err((0, RouteResponse::failure(&errors::Failure::internal()))),
    }
}

/// `__native.batchWrite(index, kind, {fields, original, tx})`: the batch item's write in the
/// batch's transaction.
fn batch_write<'js>(ctx: &Ctx<'js>, index: usize, kind: String, args: &str) -> rquickjs::Result<String> {
    let args: Map<String, Value> = serde_json::from_str(args).unwrap_or_default();
    let fields = args.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
    let original = args.get("original").and_then(Value::as_object).cloned();
    let (Some(writer), Some(app)) = (BATCH.with(|b| b.borrow().last().cloned()), super::app::app_for(&args).filter(|a| a.in_transaction())) else {
        return Err(rquickjs::Exception::throw_message(ctx, "no batch is running"));
    };
    match app.write_op(move |tx, snap, changes| Ok(writer(tx, snap, changes, index, &kind, fields, original))) {
        Ok(Ok(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(Err((status, message, data))) => Err(super::app::throw_with_data(ctx, status, &message, data)),
        Err(e) => Err(super::app::throw_data_error(ctx, e)),
    }
}
