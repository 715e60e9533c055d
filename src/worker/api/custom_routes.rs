//! The HTTP edge of pb_hooks custom routes (`routerAdd`): reads the request (the body within
//! the default body limit), hands it to `worker::hooks`, which runs the whole route chain on a
//! JS thread, and writes what the chain wrote. Reached from the router after every system
//! route, before 404, so it passes through the same rate limits and server middleware; and
//! the `routerUse` middlewares around system routes when any is registered.

use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;

use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::worker::actor::Actor;
use crate::worker::hooks::routes::{Around, RouteRequest, RouteResponse};
use crate::worker::hooks::{self, RouteMatch};
use crate::worker::http::body::{collect_limited, full, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::client_ip;
use crate::worker::http::error::ApiError;
use crate::worker::server::PeerAddr;
use crate::worker::state::AppState;

/// The most form fields read from a multipart body for `requestInfo().body`.
pub const MAX_FORM_FIELDS: usize = 1000;

/// Marks a request that the `routerUse` middlewares already wrap (see [`around_system`]).
#[derive(Clone, Copy)]
pub struct GlobalsApplied;

pub async fn serve(state: &AppState, m: RouteMatch, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let globals_applied = req.extensions().get::<GlobalsApplied>().is_some();
    let (parts, body) = req.into_parts();
    let mut request = describe(state, &parts, actor).await;
    let body = collect_limited(body, DEFAULT_BODY_LIMIT_BYTES).await?;
    request.form = form_fields(&request.content_type, &body).await;
    request.body_length = body.len();
    request.body = String::from_utf8_lossy(&body).into_owned();
    request.globals_applied = globals_applied;
    Ok(respond(hooks::serve_route(m, request).await))
}

/// PocketBase's global middlewares (`routerUse`) around a system route: they run on a JS
/// thread with the request's head (the body stays with the route: `e.request.body` is empty
/// there), and `inner` — the system router — runs as the chain's last link. Headers the
/// middlewares set before `e.next()` are added to the route's answer.
pub async fn around_system<F>(state: &AppState, mut req: Request<Incoming>, actor: &Actor, inner: F) -> Response<ResBody>
where
    F: FnOnce(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<ResBody>> + Send>> + Send + 'static,
{
    let (parts, body) = req.into_parts();
    let mut request = describe(state, &parts, actor).await;
    request.body_length = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    req = Request::from_parts(parts, body);
    req.extensions_mut().insert(GlobalsApplied);
    let handle = tokio::runtime::Handle::current();
    // Runs on the JS thread (a plain std thread), which may block on the runtime.
    let run = move || handle.block_on(inner(req));
    match state.hooks.around_system(request, run).await {
        Around::Passed(mut res, headers) => {
            for (k, v) in headers {
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                    if !res.headers().contains_key(&name) {
                        res.headers_mut().append(name, value);
                    }
                }
            }
            res
        }
        Around::Answered(written) => respond(written),
    }
}

/// The request's head as the JS event sees it (body fields left empty).
async fn describe(state: &AppState, parts: &hyper::http::request::Parts, actor: &Actor) -> RouteRequest {
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let headers: Vec<(String, String)> =
        parts.headers.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
    // The peer itself: real_ip with no trusted header is exactly that, canonicalised.
    let remote_ip = client_ip::real_ip(peer, &hyper::HeaderMap::new(), &Default::default());
    // The rate limiter's cluster-coherent copy of the settings spares a database hop per
    // request (it is exact: any settings save bumps its epoch); otherwise a fresh read.
    let cached = state.rate_limiter.as_ref().map(|l| l.cached());
    let proxy = match cached {
        Some(Ok(loaded)) => loaded.settings.trusted_proxy.clone(),
        _ => match state.settings.fresh(&state.db).await {
            Ok(loaded) => {
                if let (Some(limiter), Some(Err(epoch))) = (state.rate_limiter.as_ref(), cached) {
                    limiter.remember(epoch, loaded.clone());
                }
                loaded.settings.trusted_proxy.clone()
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading trustedProxy failed; using the peer address");
                Default::default()
            }
        },
    };
    let real_ip = client_ip::real_ip(peer, &parts.headers, &proxy);
    let (auth, auth_collection) = match actor.auth() {
        Some(a) => {
            let mut record = a.record.clone();
            // The plain view until a Record class exists: never the secrets.
            record.remove("password");
            record.remove("tokenKey");
            let collection = serde_json::json!({"id": a.collection.id, "name": a.collection.name, "type": a.collection.kind});
            (Some(serde_json::Value::Object(record)), Some(collection))
        }
        None => (None, None),
    };
    RouteRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        raw_query,
        query,
        headers,
        content_type,
        body: String::new(),
        body_length: 0,
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

fn respond(written: RouteResponse) -> Response<ResBody> {
    let mut res = full(written.body);
    *res.status_mut() = StatusCode::from_u16(written.status).unwrap_or(StatusCode::OK);
    for (k, v) in written.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            res.headers_mut().append(name, value);
        }
    }
    res
}

/// The text fields of an urlencoded or multipart body (files are skipped).
async fn form_fields(content_type: &str, body: &bytes::Bytes) -> Option<Vec<(String, String)>> {
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        return Some(form_urlencoded::parse(body).into_owned().collect());
    }
    if !lower.starts_with("multipart/form-data") {
        return None;
    }
    let boundary = multer::parse_boundary(content_type).ok()?;
    let chunk = body.clone();
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(chunk) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Ok(Some(field)) = mp.next_field().await {
        if out.len() >= MAX_FORM_FIELDS {
            break;
        }
        let name = field.name().unwrap_or("").to_owned();
        if field.file_name().is_some() {
            continue;
        }
        match field.text().await {
            Ok(text) => out.push((name, text)),
            Err(_) => break,
        }
    }
    Some(out)
}
