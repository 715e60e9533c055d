//! Realtime over HTTP: `GET /api/realtime` (PocketBase's SSE stream), `POST /api/realtime`
//! (set the stream's subscriptions, on whichever worker it lands) and `GET /realtime` (the
//! WebSocket upgrade). Parse → call `worker::realtime` → respond; the streams themselves live
//! in the domain.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Map};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::worker::hooks::realtime_js::{self, Decision, ON_CONNECT, ON_SUBSCRIBE};
use crate::worker::hooks::routes::{RouteRequest, RouteResponse};
use crate::worker::http::body::{collect_limited, full, ResBody};
use crate::worker::http::client_ip;
use crate::worker::http::error::ApiError;
use crate::worker::realtime::client::Transport;
use crate::worker::realtime::custom::ClientInfo;
use crate::worker::realtime::Host;
use crate::worker::realtime::sse::SseBody;
use crate::worker::realtime::subscribe::{SubscribeError, SubscribeRequest};
use crate::worker::realtime::topic::{option_sets, MAX_OPTION_SETS_PER_CLIENT, MAX_SUBSCRIPTIONS, MAX_TOPIC_CHARS};
use crate::worker::realtime::ws;
use crate::worker::server::PeerAddr;
use crate::worker::state::AppState;

/// Largest subscription POST body, in bytes: 1,000 topics of 2,500 characters fit.
pub const SUBSCRIBE_BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// Longest client id accepted in a POST (PocketBase's validation), in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 255;

/// The client's address as PocketBase's RealIP sees it (the trusted proxy's header, if set):
/// a subscription POST must come from the same one as its stream.
async fn client_ip(state: &AppState, req: &Request<Incoming>) -> Option<std::net::IpAddr> {
    client_ip::of_request(state, req).await.parse().ok()
}

/// `GET /api/realtime`
pub async fn connect(state: &AppState, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let ip = client_ip(state, req).await;
    let client = state.realtime.connect(Transport::Sse, ip).map_err(ApiError::internal)?;
    if realtime_js::registered(state, ON_CONNECT) {
        let request = hook_request(state, HookHead::of(req), String::new()).await;
        let info = ClientInfo { id: client.id.clone(), subscriptions: Vec::new(), auth: serde_json::Value::Null };
        if let Decision::Answer(res) = realtime_js::request_hook(state, ON_CONNECT, request, info, None).await {
            state.realtime.registry.remove(&client.id);
            return Ok(route_response(res));
        }
    }
    client.push_sse("PB_CONNECT", json!({"clientId": client.id}).to_string().as_bytes());
    let mut res = Response::new(SseBody::new(client, state.realtime.clone(), state.config.realtime_idle_timeout, state.config.realtime_max_lifetime).boxed());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

#[derive(Deserialize)]
struct SubscribeBody {
    #[serde(default, rename = "clientId")]
    client_id: String,
    #[serde(default)]
    subscriptions: Vec<String>,
}

fn invalid(field: &str, code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert(field.to_owned(), json!({"code": code, "message": message}));
    ApiError::validation("An error occurred while validating the submitted data.", data)
}

/// `POST /api/realtime`
pub async fn set_subscriptions(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let ip = client_ip(state, &req).await;
    let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let head = realtime_js::registered(state, ON_SUBSCRIBE).then(|| HookHead::of(&req));
    let bytes = collect_limited(req.into_body(), SUBSCRIBE_BODY_LIMIT_BYTES).await?;
    let bad = || ApiError::bad_request("Failed to load the submitted data due to invalid formatting.");
    let body: SubscribeBody = if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut b = SubscribeBody { client_id: String::new(), subscriptions: Vec::new() };
        for (k, v) in form_urlencoded::parse(&bytes) {
            match k.as_ref() {
                "clientId" => b.client_id = v.into_owned(),
                "subscriptions" => b.subscriptions.push(v.into_owned()),
                _ => {}
            }
        }
        b
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        SubscribeBody { client_id: String::new(), subscriptions: Vec::new() }
    } else {
        serde_json::from_slice(&bytes).map_err(|_| bad())?
    };
    if body.client_id.is_empty() {
        return Err(invalid("clientId", "validation_required", "Cannot be blank."));
    }
    if body.client_id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(invalid("clientId", "validation_length_out_of_range", "The length must be between 1 and 255."));
    }
    if body.subscriptions.len() > MAX_SUBSCRIPTIONS {
        return Err(invalid("subscriptions", "validation_length_too_long", "The length must be no more than 1000."));
    }
    if option_sets(body.subscriptions.iter().map(String::as_str)) > MAX_OPTION_SETS_PER_CLIENT {
        return Err(invalid(
            "subscriptions",
            "validation_too_many_options",
            &format!("At most {MAX_OPTION_SETS_PER_CLIENT} different subscription options per client."),
        ));
    }
    if let Some(i) = body.subscriptions.iter().position(|s| s.chars().count() > MAX_TOPIC_CHARS || s.contains(['\n', '\r'])) {
        let mut data = Map::new();
        data.insert(
            "subscriptions".into(),
            json!({ i.to_string(): {"code": "validation_length_too_long", "message": "The length must be no more than 2500."} }),
        );
        return Err(ApiError::validation("An error occurred while validating the submitted data.", data));
    }
    let mut subscriptions = body.subscriptions;
    if let Some(head) = head {
        let request = hook_request(state, head, String::from_utf8_lossy(&bytes).into_owned()).await;
        let info = state
            .realtime
            .local_clients_by_id(&body.client_id)
            .unwrap_or_else(|| ClientInfo { id: body.client_id.clone(), subscriptions: Vec::new(), auth: serde_json::Value::Null });
        match realtime_js::request_hook(state, ON_SUBSCRIBE, request, info, Some(subscriptions)).await {
            Decision::Proceed(subs) => subscriptions = subs,
            Decision::Answer(res) => return Ok(route_response(res)),
        }
    }
    let request = SubscribeRequest { client_id: body.client_id, authorization, ip, subscriptions };
    state.realtime.set_subscriptions(state, request).await.map_err(subscribe_error)?;
    let mut res = full(bytes::Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

/// What a realtime request hook's event needs of the request, taken before its body is read.
struct HookHead {
    method: String,
    path: String,
    raw_query: String,
    headers: Vec<(String, String)>,
    content_type: String,
    authorization: Option<String>,
    remote_ip: String,
}

impl HookHead {
    fn of(req: &Request<Incoming>) -> HookHead {
        let header = |name: hyper::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        HookHead {
            method: req.method().as_str().to_owned(),
            path: req.uri().path().to_owned(),
            raw_query: req.uri().query().unwrap_or("").to_owned(),
            headers: req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
            content_type: header(CONTENT_TYPE).unwrap_or_default(),
            authorization: header(AUTHORIZATION),
            remote_ip: crate::worker::http::client_ip::real_ip(peer, &hyper::HeaderMap::new(), &Default::default()),
        }
    }
}

/// The request as a realtime hook's event sees it (only built when a hook is registered).
async fn hook_request(state: &AppState, head: HookHead, body: String) -> RouteRequest {
    let actor = state.resolve_actor(head.authorization.as_deref().map(str::as_bytes)).await;
    let (auth, auth_collection) = match actor.auth() {
        Some(a) => {
            let mut record = a.record.clone();
            record.remove("password");
            record.remove("tokenKey");
            (Some(serde_json::Value::Object(record)), Some(json!({"id": a.collection.id, "name": a.collection.name, "type": a.collection.kind})))
        }
        None => (None, None),
    };
    RouteRequest {
        query: form_urlencoded::parse(head.raw_query.as_bytes()).into_owned().collect(),
        method: head.method,
        path: head.path,
        raw_query: head.raw_query,
        headers: head.headers,
        content_type: head.content_type,
        body_length: body.len(),
        body,
        form: None,
        path_values: Default::default(),
        auth,
        auth_collection,
        superuser: actor.is_superuser(),
        real_ip: head.remote_ip.clone(),
        remote_ip: head.remote_ip,
        globals_applied: false,
    }
}

/// A hook's answer as the HTTP response.
fn route_response(written: RouteResponse) -> Response<ResBody> {
    let mut res = full(written.body);
    *res.status_mut() = StatusCode::from_u16(written.status).unwrap_or(StatusCode::OK);
    for (k, v) in written.headers {
        if let (Ok(name), Ok(value)) = (hyper::header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            res.headers_mut().append(name, value);
        }
    }
    res
}

fn subscribe_error(e: SubscribeError) -> ApiError {
    match e {
        SubscribeError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid client id."),
        SubscribeError::OtherAddress => ApiError::bad_request("Invalid realtime client."),
        SubscribeError::AuthMismatch => ApiError::forbidden("The current and the previous request authorization don't match."),
        SubscribeError::Timeout(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server worker holding this realtime connection did not answer in time; reconnect and subscribe again.",
        ),
    }
}

/// `GET /realtime`: the WebSocket upgrade. The session runs on its own task once hyper hands
/// over the connection.
pub fn websocket(state: &AppState, mut req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let upgrade_ok = header(UPGRADE.as_str()).split(',').any(|p| p.trim() == "websocket")
        && header(CONNECTION.as_str()).split(',').any(|p| p.trim() == "upgrade")
        && header("sec-websocket-version") == "13";
    let Some(key) = req.headers().get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes())).filter(|_| upgrade_ok) else {
        return Err(ApiError::bad_request("Expected a WebSocket upgrade (version 13)."));
    };
    let ip = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let upgrade = hyper::upgrade::on(&mut req);
    let state = state.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig { max_message_size: Some(ws::MAX_CLIENT_MESSAGE_BYTES), ..WebSocketConfig::default() };
                let stream = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                ws::run(state, stream, ip).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut res = full(bytes::Bytes::new());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert("sec-websocket-accept", v);
    }
    Ok(res)
}
