//! The request log's view of one request: what it captures before routing (method, target,
//! referer, user agent, client IPs, a slot for the caller), and the entry it hands to the
//! logs thread after the answer is ready (status, time taken, the caller, the error).
//!
//! It runs on every request, so it reads the settings the rate limiter already holds (no
//! database hop while no worker saved settings) and does no I/O and no JSON: the entry is
//! copied as bytes into this thread's log buffer (`ops::logs`) and turned into a row on the
//! logs thread. With `logs.maxDays = 0` nothing is captured at all.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper::header::{REFERER, USER_AGENT};
use hyper::{Method, Request, Response};

use super::body::ResBody;
use super::error::Failure;
use crate::worker::actor::Actor;
use crate::worker::ops::logs::{self, Policy, RequestEntry, RequestText};
use crate::worker::server::PeerAddr;
use crate::worker::settings::Loaded;
use crate::worker::state::AppState;

/// Who made the request, as the route resolved it: `(collection name, record id)`.
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<(String, String)>>);

impl CallerSlot {
    /// Records the resolved caller (the first resolution wins; later ones are the same).
    pub fn set(&self, actor: &Actor) {
        if let Some(a) = actor.auth() {
            let _ = self.0.set((a.collection.name.clone(), a.id().to_owned()));
        }
    }
}

/// What is known before routing.
pub struct Capture {
    created: SystemTime,
    method: Cow<'static, str>,
    text: RequestText,
    ips: Option<(Option<IpAddr>, Option<IpAddr>)>,
    caller: CallerSlot,
    policy: Policy,
}

/// The settings the request path reads: the rate limiter's copy when it is current.
async fn settings(state: &AppState) -> Option<Arc<Loaded>> {
    if let Some(limiter) = state.rate_limiter.as_ref() {
        match limiter.cached() {
            Ok(loaded) => return Some(loaded),
            Err(epoch) => {
                let loaded = state.settings.fresh(&state.db).await.ok()?;
                limiter.remember(epoch, loaded.clone());
                return Some(loaded);
            }
        }
    }
    state.settings.fresh(&state.db).await.ok()
}

/// Starts the record of `req`, or `None` when request logging is off.
pub async fn begin(state: &AppState, req: &mut Request<Incoming>) -> Option<Capture> {
    let loaded = settings(state).await?;
    let policy = Policy::of(&loaded.settings.logs);
    logs::note_policy(policy);
    // Every request is at least info; below that nothing is kept either way.
    if !policy.enabled || logs::LEVEL_ERROR < policy.min_level {
        return None;
    }
    let header = |name| req.headers().get(name).and_then(|v: &hyper::header::HeaderValue| v.to_str().ok()).unwrap_or_default();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    // Addresses, not text: the log thread formats them.
    let ips = policy.log_ip.then(|| {
        let user = super::client_ip::real_ip_addr(peer, req.headers(), &loaded.settings.trusted_proxy);
        let remote = super::client_ip::real_ip_addr(peer, &hyper::HeaderMap::new(), &Default::default());
        (user, remote)
    });
    let url = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or_else(|| req.uri().path());
    let capture = Capture {
        created: SystemTime::now(),
        method: method_text(req.method()),
        text: RequestText::new(url, header(REFERER), header(USER_AGENT)),
        ips,
        caller: CallerSlot::default(),
        policy,
    };
    req.extensions_mut().insert(capture.caller.clone());
    Some(capture)
}

/// Hands the finished request to the logs thread, as PocketBase logs it: every request but a
/// successful call to the logs API itself.
pub fn finish(capture: Capture, res: &mut Response<ResBody>, exec_time: Duration) {
    let status = res.status().as_u16();
    let failure = res.extensions_mut().remove::<Failure>();
    if status < 400 && is_logs_api(capture.text.url()) {
        return;
    }
    let failure = (status >= 400).then(|| match failure {
        Some(f) => (f.error, f.details),
        None => (res.status().canonical_reason().unwrap_or_default().to_owned(), serde_json::Value::Null),
    });
    let (auth, auth_id) = match capture.caller.0.get() {
        Some((collection, id)) => (collection.clone(), capture.policy.log_auth_id.then(|| id.clone())),
        None => (String::new(), None),
    };
    let entry = RequestEntry {
        created: capture.created,
        method: capture.method,
        text: capture.text,
        status,
        exec_time,
        auth,
        auth_id,
        ips: capture.ips,
        failure,
    };
    if capture.policy.keeps(entry.level()) {
        logs::record_request(&entry);
    }
}

/// The method's name, borrowed for the standard ones (no allocation per request).
fn method_text(m: &Method) -> Cow<'static, str> {
    match m.as_str() {
        "GET" => Cow::Borrowed("GET"),
        "POST" => Cow::Borrowed("POST"),
        "PATCH" => Cow::Borrowed("PATCH"),
        "DELETE" => Cow::Borrowed("DELETE"),
        "PUT" => Cow::Borrowed("PUT"),
        "HEAD" => Cow::Borrowed("HEAD"),
        "OPTIONS" => Cow::Borrowed("OPTIONS"),
        other => Cow::Owned(other.to_owned()),
    }
}

fn is_logs_api(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url);
    path == "/api/logs" || path.starts_with("/api/logs/")
}
