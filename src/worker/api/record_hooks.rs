//! The HTTP edge of record requests that JS hooks take part in: `records.rs` asks
//! [`hooks::record_requests::wants`] and, only when a hook fires for the request, comes here.
//! Parses and admits the request as `records.rs` does (query, `fields`/`expand`, the client's
//! filter guard, the create/update pre-checks, the body with its uploads), hands it to one JS
//! thread ([`hooks::record_requests::run`]) and writes what the chain wrote.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::records::{guard_client_query, requester, shape, write_error};
use super::uploads::{record_body, RecordBody};
use crate::worker::actor::Actor;
use crate::worker::auth::jwt;
use crate::worker::app::pipeline::{CREATE_FAILED, UPDATE_FAILED};
use crate::worker::hooks::record_requests::{self, Kind, ListQuery, RecordCall};
use crate::worker::hooks::routes::RouteRequest;
use crate::worker::hooks::Loaded;
use crate::worker::http::body::{full, ResBody};
use crate::worker::http::client_ip;
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{ListParams, Query};
use crate::worker::records::crud::Page;
use crate::worker::records::schema::Collection;
use crate::worker::server::PeerAddr;
use crate::worker::state::AppState;

/// The request as the JS event sees it; `body` is the parsed record body as JSON.
async fn route_request(state: &AppState, req: &Request<Incoming>, actor: &Actor, body: &Map<String, Value>) -> RouteRequest {
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let remote_ip = client_ip::real_ip(peer, &hyper::HeaderMap::new(), &Default::default());
    // The rate limiter's coherent copy of the settings spares a database hop (as custom routes).
    let real_ip = match state.rate_limiter.as_ref().and_then(|l| l.cached().ok()) {
        Some(loaded) => client_ip::real_ip(peer, req.headers(), &loaded.settings.trusted_proxy),
        None => client_ip::of_request(state, req).await,
    };
    let (auth, auth_collection) = match actor.auth() {
        Some(a) => (Some(Value::Object(a.record.clone())), Some(crate::worker::hooks::app::collection_json(&a.collection))),
        None => (None, None),
    };
    let body = Value::Object(body.clone()).to_string();
    RouteRequest {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        raw_query,
        query,
        headers,
        content_type: "application/json".into(),
        body_length: body.len(),
        body,
        form: None,
        path_values: Default::default(),
        auth,
        auth_collection,
        superuser: actor.is_superuser(),
        real_ip,
        remote_ip,
        globals_applied: false,
    }
}

fn respond(written: crate::worker::hooks::routes::RouteResponse) -> Response<ResBody> {
    let mut res = full(written.body);
    *res.status_mut() = StatusCode::from_u16(written.status).unwrap_or(StatusCode::OK);
    for (k, v) in written.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            res.headers_mut().append(name, value);
        }
    }
    res
}

/// Which record, with the parts every kind shares.
pub struct Target<'a> {
    pub loaded: Arc<Loaded>,
    pub collection: Arc<Collection>,
    pub id: &'a str,
}

/// `GET …/records` with hooks.
pub async fn list(state: &AppState, t: Target<'_>, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let params = ListParams::from_query(&query)?;
    guard_client_query(actor.is_superuser(), &params.filter, &params.sort)?;
    let shape = shape(&query)?;
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    let request = route_request(state, req, actor, &Map::new()).await;
    let list = ListQuery { page: Page { page: params.page, per_page: params.per_page, skip_total: params.skip_total }, filter: params.filter, sort: params.sort };
    let call = RecordCall { kind: Kind::List, request, collection: t.collection, requester, shape, id: String::new(), body: Map::new(), uploads: Vec::new(), list: Some(list) };
    Ok(respond(record_requests::run(state, &t.loaded, call).await))
}

/// `GET …/records/{id}` with hooks.
pub async fn view(state: &AppState, t: Target<'_>, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let shape = shape(&query)?;
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    let request = route_request(state, req, actor, &Map::new()).await;
    let call = RecordCall { kind: Kind::View, request, collection: t.collection, requester, shape, id: t.id.to_owned(), body: Map::new(), uploads: Vec::new(), list: None };
    Ok(respond(record_requests::run(state, &t.loaded, call).await))
}

/// `POST …/records` (`id` empty) or `PATCH …/records/{id}` with hooks.
pub async fn write(state: &AppState, t: Target<'_>, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let (kind, failed, update_of) = if t.id.is_empty() { (Kind::Create, CREATE_FAILED, None) } else { (Kind::Update, UPDATE_FAILED, Some(t.id)) };
    let query = Query::parse(req.uri().query());
    let shape = shape(&query)?;
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    state.writes().admits(&t.collection.id, &requester, update_of).await.map_err(|e| write_error(e, failed))?;
    // The event's request data is read before the body is consumed.
    let head = route_request(state, &req, actor, &Map::new()).await;
    let RecordBody { body, uploads } = record_body(state, &t.collection.id, req, failed).await?;
    let text = Value::Object(body.clone()).to_string();
    let request = RouteRequest { body_length: text.len(), body: text, ..head };
    let call = RecordCall { kind, request, collection: t.collection, requester, shape, id: t.id.to_owned(), body, uploads, list: None };
    // Its own task, as the plain write: a write that stored files runs to its end.
    let (state, loaded) = (state.clone(), t.loaded);
    let written = tokio::spawn(async move { record_requests::run(&state, &loaded, call).await }).await.map_err(ApiError::internal)?;
    Ok(respond(written))
}

/// `DELETE …/records/{id}` with hooks.
pub async fn delete(state: &AppState, t: Target<'_>, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let requester = requester(actor, req.method(), &query, req.headers(), Map::new());
    let request = route_request(state, req, actor, &Map::new()).await;
    let call = RecordCall {
        kind: Kind::Delete,
        request,
        collection: t.collection,
        requester,
        shape: Default::default(),
        id: t.id.to_owned(),
        body: Map::new(),
        uploads: Vec::new(),
        list: None,
    };
    let (state, loaded) = (state.clone(), t.loaded);
    let written = tokio::spawn(async move { record_requests::run(&state, &loaded, call).await }).await.map_err(ApiError::internal)?;
    Ok(respond(written))
}

/// The answer of a successful authentication when `onRecordAuthRequest` or `onRecordEnrich`
/// fires for `c` (None otherwise: the caller answers as usual); with `mfa`, the chain's 401
/// `{mfaId}` of an MFA step. The event's request carries what the auth flow kept of it: the
/// method, the path and the client's origin.
pub async fn auth_answer(
    state: &AppState,
    c: &Arc<Collection>,
    record: &Map<String, Value>,
    method: &str,
    origin: &super::account_flows::Origin,
    meta: Option<Value>,
    mfa: Option<String>,
) -> Result<Option<Response<ResBody>>, ApiError> {
    if !auth_answer_hooked(state, c) {
        return Ok(None);
    }
    let str_of = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let ttl = std::time::Duration::from_secs(c.auth.clone().unwrap_or_default().auth_token.duration);
    let claims = jwt::Claims {
        id: str_of("id"),
        collection_id: c.id.clone(),
        kind: jwt::TokenKind::Auth { refreshable: true },
        exp: jwt::expires_at(jwt::unix_now(), ttl),
    };
    let collection_secret = crate::worker::actor::token_secret(c, jwt::TokenType::Auth);
    let token = jwt::sign_for(&state.jwt_secret, collection_secret, &claims, &str_of("tokenKey")).map_err(ApiError::internal)?;
    let request = RouteRequest {
        method: "POST".into(),
        path: format!("/api/collections/{}/auth-with-{method}", c.name),
        raw_query: String::new(),
        query: Vec::new(),
        headers: vec![("user-agent".into(), origin.user_agent.clone())],
        content_type: "application/json".into(),
        body: String::new(),
        body_length: 0,
        form: None,
        path_values: Default::default(),
        auth: None,
        auth_collection: None,
        superuser: false,
        real_ip: origin.ip.clone(),
        remote_ip: origin.ip.clone(),
        globals_applied: false,
    };
    Ok(record_requests::auth_response(state, c, record, token, method, meta, mfa, request).await.map(respond))
}

/// Whether an auth answer for `c` goes through JS (`onRecordAuthRequest` or `onRecordEnrich`).
fn auth_answer_hooked(state: &AppState, c: &Collection) -> bool {
    let loaded = state.hooks.current();
    let registry = &loaded.registry;
    !registry.is_empty() && ["onRecordAuthRequest", "onRecordEnrich"].iter().any(|h| registry.has(h, &c.id, &c.name))
}

/// The request an auth answer made with [`auth_answer_with`] will show its hooks, read from
/// `req`'s head before its body is consumed; None when no such hook fires for `c`.
pub async fn auth_answer_head(state: &AppState, c: &Collection, req: &Request<Incoming>, actor: &Actor) -> Option<RouteRequest> {
    if !auth_answer_hooked(state, c) {
        return None;
    }
    Some(route_request(state, req, actor, &Map::new()).await)
}

/// The answer `{token, record}` with a token the endpoint made itself (auth-refresh keeps a
/// non-refreshable one, impersonate makes a static one) through `onRecordAuthRequest`, whose
/// `e.authMethod` is `method` ("" for both, as in PocketBase). None without `head` (no such
/// hook): the caller answers as usual.
pub async fn auth_answer_with(state: &AppState, c: &Arc<Collection>, record: &Map<String, Value>, token: String, method: &str, head: Option<RouteRequest>) -> Option<Response<ResBody>> {
    let head = head?;
    record_requests::auth_response(state, c, record, token, method, None, None, head).await.map(respond)
}

/// The request as a hook on `c` named `hook` would see it, if such a hook is registered (read
/// from the head: the auth endpoints consume the body themselves).
pub async fn hooked_head(state: &AppState, c: &Collection, req: &Request<Incoming>, hook: &str) -> Option<RouteRequest> {
    hooked_head_as(state, c, req, hook, &Actor::Guest).await
}

/// [`hooked_head`] with the request's auth (`e.auth`).
pub async fn hooked_head_as(state: &AppState, c: &Collection, req: &Request<Incoming>, hook: &str, actor: &Actor) -> Option<RouteRequest> {
    let loaded = state.hooks.current();
    if loaded.registry.is_empty() || !loaded.registry.has(hook, &c.id, &c.name) {
        return None;
    }
    Some(route_request(state, req, actor, &Map::new()).await)
}

/// `onRecordAuthWithPasswordRequest` (`e.identity`, `e.password`, `e.record` — null when no
/// record has that identity): Ok(record) when the chain's default action authenticated it (the
/// auth flow then goes on: authRule, MFA, the answer with `onRecordAuthRequest`), Err(answer)
/// when a hook wrote an answer, threw, or the password was wrong.
pub async fn auth_with_password(
    state: &AppState,
    c: &Arc<Collection>,
    mut head: RouteRequest,
    identity: &str,
    password: &str,
    found: Option<Map<String, Value>>,
    next: Option<record_requests::FlowNext>,
) -> Result<Result<Map<String, Value>, Response<ResBody>>, ApiError> {
    let body = serde_json::json!({"identity": identity, "password": password}).to_string();
    head.body_length = body.len();
    head.body = body;
    let loaded = state.hooks.current();
    match record_requests::auth_with_password(&loaded, c, head, identity, password, found, next).await {
        Ok(record) => Ok(Ok(record)),
        Err(answer) => Ok(Err(respond(answer))),
    }
}

/// What an [`auth_gate_record`] chain left when it reached its default action.
#[derive(Debug, Default)]
pub struct Passed {
    /// The hook's own fields as the chain left them.
    pub extra: Map<String, Value>,
    /// The fields of `e.record` a handler changed before `e.next()`.
    pub changes: Map<String, Value>,
}

/// An auth request hook around a flow vaultbase goes on with after the chain (the email
/// change request, whose mail goes out through the mail hooks): Ok(what the chain left) when
/// its default action was reached and the flow goes on; Err(answer) when a handler threw or
/// ended the chain. `head` comes from [`hooked_head`] (None: no such hook, the flow goes on
/// untouched); `body` is what the request submitted, for `e.requestInfo().body`. The other
/// gated flows run from their default action ([`auth_gate_flow`]).
pub async fn auth_gate_record(
    state: &AppState,
    c: &Arc<Collection>,
    head: Option<RouteRequest>,
    hook: &'static str,
    body: &Map<String, Value>,
    record: Option<Map<String, Value>>,
    extra: Map<String, Value>,
) -> Result<Passed, Response<ResBody>> {
    let Some(mut head) = head else {
        return Ok(Passed { extra, changes: Map::new() });
    };
    let text = Value::Object(body.clone()).to_string();
    head.body_length = text.len();
    head.body = text;
    let loaded = state.hooks.current();
    match record_requests::auth_gate(&loaded, hook, c, head, record, extra, None).await {
        record_requests::Gate::Passed(extra, changes) => Ok(Passed { extra, changes }),
        record_requests::Gate::Answered(answer) => Err(respond(answer)),
    }
}

/// An auth request hook whose default action runs the rest of the flow itself (`next`), as
/// PocketBase's does: code after `e.next()` sees the record the flow stored, and the answer is
/// what the chain wrote (the flow's, or a handler's, or its error). `head` as for
/// [`auth_gate`], but required: without such a hook the caller runs the flow directly.
#[allow(clippy::too_many_arguments)]
pub async fn auth_gate_flow(
    state: &AppState,
    c: &Arc<Collection>,
    mut head: RouteRequest,
    hook: &'static str,
    body: &Map<String, Value>,
    record: Option<Map<String, Value>>,
    extra: Map<String, Value>,
    next: record_requests::FlowNext,
) -> Response<ResBody> {
    let text = Value::Object(body.clone()).to_string();
    head.body_length = text.len();
    head.body = text;
    let loaded = state.hooks.current();
    match record_requests::auth_gate(&loaded, hook, c, head, record, extra, Some(next)).await {
        record_requests::Gate::Answered(answer) => respond(answer),
        // Not reached: the default action always runs the flow, which answers.
        record_requests::Gate::Passed(..) => respond(record_requests::empty_answer()),
    }
}

/// The [`Failure`](crate::worker::hooks::errors::Failure) a gated flow's error is when
/// `e.next()` throws it (an internal error is logged here and stays generic).
pub fn flow_failure(e: ApiError) -> crate::worker::hooks::errors::Failure {
    match e {
        ApiError::Public { status, message, data, .. } => crate::worker::hooks::errors::Failure { status: status.as_u16(), message, data },
        ApiError::Internal(source) => {
            tracing::error!(error = %source, "a hooked auth flow failed");
            crate::worker::hooks::errors::Failure::internal()
        }
    }
}

/// The request as the events of a batch's items start from (their method, path and body are
/// the item's own).
pub async fn request_head(state: &AppState, req: &Request<Incoming>, actor: &Actor) -> RouteRequest {
    route_request(state, req, actor, &Map::new()).await
}
