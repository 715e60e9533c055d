//! The HTTP edge of pb_hooks custom routes (`routerAdd`): reads the request (the body within
//! the default body limit), hands it to `worker::hooks`, which runs the whole route chain on a
//! JS thread, and writes what the chain wrote. Reached from the router after every system
//! route, before 404, so it passes through the same rate limits and server middleware.

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::worker::actor::Actor;
use crate::worker::hooks::{self, routes::RouteRequest, RouteMatch};
use crate::worker::http::body::{collect_limited, full, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::client_ip;
use crate::worker::http::error::ApiError;
use crate::worker::server::PeerAddr;
use crate::worker::state::AppState;

/// The most form fields read from a multipart body for `requestInfo().body`.
pub const MAX_FORM_FIELDS: usize = 1000;

pub async fn serve(state: &AppState, m: RouteMatch, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    // The peer itself: real_ip with no trusted header is exactly that, canonicalised.
    let remote_ip = client_ip::real_ip(peer, &hyper::HeaderMap::new(), &Default::default());
    let real_ip = client_ip::of_request(state, &req).await;
    let body = collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await?;
    let form = form_fields(&content_type, &body).await;
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
    let request = RouteRequest {
        method,
        path,
        raw_query,
        query,
        headers,
        content_type,
        body_length: body.len(),
        body: String::from_utf8_lossy(&body).into_owned(),
        form,
        path_values: Default::default(),
        auth,
        auth_collection,
        superuser: actor.is_superuser(),
        real_ip,
        remote_ip,
    };
    let written = hooks::serve_route(m, request).await;
    let mut res = full(written.body);
    *res.status_mut() = StatusCode::from_u16(written.status).unwrap_or(StatusCode::OK);
    for (k, v) in written.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            res.headers_mut().append(name, value);
        }
    }
    Ok(res)
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
