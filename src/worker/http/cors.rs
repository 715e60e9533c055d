//! CORS as PocketBase answers it (`--origins`, default `*`): `Vary: Origin` on every response,
//! `Access-Control-Allow-Origin` when the request's `Origin` is allowed (`*` when every origin
//! is, else the origin itself), and preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) answered 204 before routing, with the methods PocketBase
//! lists and the requested headers echoed.
//!
//! It owns those headers only; it must not decide anything about authorization (CORS is a
//! browser's read permission, not access control).

use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::{Method, Response, StatusCode};

use crate::worker::http::body::{full, ResBody};

/// The methods a preflight allows: PocketBase's list.
const ALLOWED_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";

/// The `Access-Control-Allow-Origin` value for a request from `origin`, or None when it is not
/// allowed (or the request has no `Origin`).
fn allowed_origin(origins: &[String], request: &HeaderMap) -> Option<HeaderValue> {
    allowed(origins, request.get(ORIGIN)?)
}

fn allowed(origins: &[String], origin: &HeaderValue) -> Option<HeaderValue> {
    if origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let text = origin.to_str().ok()?;
    origins.iter().any(|o| o.eq_ignore_ascii_case(text)).then(|| origin.clone())
}

/// The 204 answer to a preflight, or None when `method`/`request` is not one.
pub fn preflight(origins: &[String], method: &Method, request: &HeaderMap) -> Option<Response<ResBody>> {
    if method != Method::OPTIONS || !request.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let mut res = full(Vec::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(allowed) = allowed_origin(origins, request) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
        if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.append(VARY, HeaderValue::from_static("Access-Control-Request-Method"));
        h.append(VARY, HeaderValue::from_static("Access-Control-Request-Headers"));
    }
    Some(res)
}

/// The request's `Origin`, kept (cheaply) past the point where the request is consumed.
pub fn origin_of(request: &HeaderMap) -> Option<HeaderValue> {
    request.get(ORIGIN).cloned()
}

/// Adds the CORS headers of an ordinary response, for a request from `origin`.
pub fn decorate(origins: &[String], origin: Option<&HeaderValue>, response: &mut Response<ResBody>) {
    let h = response.headers_mut();
    h.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(allowed) = origin.and_then(|o| allowed(origins, o)) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins_are_allowed_as_pocketbase_allows_them() {
        let any = vec!["*".to_owned()];
        let some = vec!["http://a.test".to_owned()];
        let from_a = headers(&[("origin", "http://a.test")]);
        let from_c = headers(&[("origin", "http://c.test")]);
        assert_eq!(allowed_origin(&any, &from_c).as_ref().map(|v| v.as_bytes()), Some(&b"*"[..]));
        assert_eq!(allowed_origin(&some, &from_a).as_ref().map(|v| v.as_bytes()), Some(&b"http://a.test"[..]));
        assert!(allowed_origin(&some, &from_c).is_none());
        assert!(allowed_origin(&any, &HeaderMap::new()).is_none(), "no Origin, no header");
        let pre = headers(&[("origin", "http://a.test"), ("access-control-request-method", "POST"), ("access-control-request-headers", "content-type")]);
        let res = preflight(&some, &Method::OPTIONS, &pre).expect("a preflight");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert!(preflight(&some, &Method::OPTIONS, &from_a).is_none(), "OPTIONS without the request method is routed");
    }
}
