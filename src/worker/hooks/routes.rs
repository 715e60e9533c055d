//! Custom routes (`routerAdd`/`routerUse`): which route a request matches, the check that a
//! custom route never claims a path vaultbase serves, and the run of the whole route chain on
//! a JS thread. HTTP-free: the edge (`api::custom_routes`) converts to and from hyper.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use rquickjs::{Array, Ctx, Object};
use serde::Serialize;

use super::engine;
use super::errors;
use super::pattern::Pattern;
use super::registry::{Middleware, Registry};

/// The system routes a custom route may not overlap (method list empty = any method). Kept
/// in step with `http/router.rs` and the /api families other modules serve; root catch-alls
/// (`/{path...}`) stay allowed, since system routes are matched first.
pub const SYSTEM_ROUTES: &[(&[&str], &str)] = &[
    (&[], "/_/"),
    (&[], "/_"),
    (&[], "/api/health"),
    (&[], "/api/realtime"),
    (&[], "/realtime"),
    (&[], "/api/oauth2-redirect"),
    (&[], "/api/batch"),
    (&[], "/api/settings"),
    (&[], "/api/settings/"),
    (&[], "/api/sql"),
    (&[], "/api/files/"),
    (&[], "/api/logs"),
    (&[], "/api/logs/"),
    (&[], "/api/crons"),
    (&[], "/api/crons/"),
    (&[], "/api/backups"),
    (&[], "/api/backups/"),
    (&[], "/api/collections"),
    (&["PUT"], "/api/collections/import"),
    (&["GET"], "/api/collections/meta/scaffolds"),
    (&["GET", "PATCH", "DELETE"], "/api/collections/{c}"),
    (&["DELETE"], "/api/collections/{c}/truncate"),
    (&["GET"], "/api/collections/{c}/auth-methods"),
    (&["POST"], "/api/collections/{c}/auth-with-password"),
    (&["POST"], "/api/collections/{c}/auth-refresh"),
    (&["POST"], "/api/collections/{c}/auth-with-oauth2"),
    (&["POST"], "/api/collections/{c}/request-verification"),
    (&["POST"], "/api/collections/{c}/confirm-verification"),
    (&["POST"], "/api/collections/{c}/request-password-reset"),
    (&["POST"], "/api/collections/{c}/confirm-password-reset"),
    (&["POST"], "/api/collections/{c}/request-email-change"),
    (&["POST"], "/api/collections/{c}/confirm-email-change"),
    (&["POST"], "/api/collections/{c}/request-otp"),
    (&["POST"], "/api/collections/{c}/auth-with-otp"),
    (&["POST"], "/api/collections/{c}/impersonate/{id}"),
    (&["GET", "POST"], "/api/collections/{c}/records"),
    (&["GET", "PATCH", "DELETE"], "/api/collections/{c}/records/{id}"),
];

/// Refuses a custom route that overlaps a system route for some method.
pub fn check_not_system(method: Option<&str>, pattern: &Pattern) -> Result<(), String> {
    if pattern.is_root_catch_all() {
        return Ok(());
    }
    for (methods, sys) in SYSTEM_ROUTES {
        let Ok(sys_pattern) = Pattern::parse(sys) else { continue };
        let methods_overlap = match method {
            None => true,
            Some(m) => methods.is_empty() || methods.contains(&m) || (m == "HEAD" && methods.contains(&"GET")),
        };
        if methods_overlap && pattern.overlaps(&sys_pattern) {
            return Err(format!(
                "the route {} {} collides with vaultbase's own route {sys}; custom routes cannot replace system routes",
                method.unwrap_or("*"),
                pattern.text
            ));
        }
    }
    Ok(())
}

/// The route `method path` matches, with its path values: the most specific pattern wins;
/// a route with a method beats a method-less one; GET routes also answer HEAD.
pub fn match_route(registry: &Registry, method: &str, path: &str) -> Option<(usize, Vec<(String, String)>)> {
    let mut best: Option<(usize, Vec<(String, String)>)> = None;
    for (i, route) in registry.routes.iter().enumerate() {
        let method_ok = match &route.method {
            None => true,
            Some(m) => m == method || (method == "HEAD" && m == "GET"),
        };
        if !method_ok {
            continue;
        }
        let Some(values) = route.pattern.matches(path) else { continue };
        let better = match &best {
            None => true,
            Some((j, _)) => {
                let other = &registry.routes[*j];
                match route.pattern.specificity_cmp(&other.pattern) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Equal => route.method.is_some() && other.method.is_none(),
                }
            }
        };
        if better {
            best = Some((i, values));
        }
    }
    best
}

/// The request as the JS event sees it (serialised to JSON, built into `e` by prelude.js).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRequest {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: String,
    pub body_length: usize,
    /// Parsed urlencoded or multipart text fields, when the body was a form.
    pub form: Option<Vec<(String, String)>>,
    pub path_values: BTreeMap<String, String>,
    pub auth: Option<serde_json::Value>,
    pub auth_collection: Option<serde_json::Value>,
    pub superuser: bool,
    #[serde(rename = "realIP")]
    pub real_ip: String,
    #[serde(rename = "remoteIP")]
    pub remote_ip: String,
    /// The `routerUse` middlewares already ran around this request (a custom route reached
    /// through the system router while they wrap it): the route chain leaves them out.
    #[serde(skip)]
    pub globals_applied: bool,
}

/// `req` as the JS object prelude.js builds the event from (`__vb.requestOf`): a JSON text
/// parsed in the runtime, or keys set one by one from here, looked every name up again per
/// dispatch, most of a small route's time on its JS thread.
pub fn request_object<'js>(ctx: &Ctx<'js>, req: &RouteRequest) -> rquickjs::Result<rquickjs::Value<'js>> {
    fn pairs<'js>(ctx: &Ctx<'js>, list: &[(String, String)]) -> rquickjs::Result<Array<'js>> {
        let out = Array::new(ctx.clone())?;
        for (i, (k, v)) in list.iter().enumerate() {
            let pair = Array::new(ctx.clone())?;
            pair.set(0, k.as_str())?;
            pair.set(1, v.as_str())?;
            out.set(i, pair)?;
        }
        Ok(out)
    }
    let json = |v: &Option<serde_json::Value>| -> rquickjs::Result<rquickjs::Value<'js>> {
        match v {
            Some(v) => ctx.json_parse(v.to_string()),
            None => Ok(rquickjs::Value::new_null(ctx.clone())),
        }
    };
    let form = match &req.form {
        Some(form) => pairs(ctx, form)?.into_value(),
        None => rquickjs::Value::new_null(ctx.clone()),
    };
    let path_values = Object::new(ctx.clone())?;
    for (k, v) in &req.path_values {
        path_values.set(k.as_str(), v.as_str())?;
    }
    let mut args = rquickjs::function::Args::new(ctx.clone(), 15);
    args.push_arg(req.method.as_str())?;
    args.push_arg(req.path.as_str())?;
    args.push_arg(req.raw_query.as_str())?;
    args.push_arg(pairs(ctx, &req.query)?)?;
    args.push_arg(pairs(ctx, &req.headers)?)?;
    args.push_arg(req.content_type.as_str())?;
    args.push_arg(req.body.as_str())?;
    args.push_arg(i64::try_from(req.body_length).unwrap_or(i64::MAX))?;
    args.push_arg(form)?;
    args.push_arg(path_values)?;
    args.push_arg(json(&req.auth)?)?;
    args.push_arg(json(&req.auth_collection)?)?;
    args.push_arg(req.superuser)?;
    args.push_arg(req.real_ip.as_str())?;
    args.push_arg(req.remote_ip.as_str())?;
    engine::internal(ctx, "requestOf")?.call_arg(args)
}

/// What the route chain wrote.
#[derive(Debug, Clone)]
pub struct RouteResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RouteResponse {
    pub fn failure(f: &errors::Failure) -> RouteResponse {
        RouteResponse {
            status: f.status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: f.to_json().to_string().into_bytes(),
        }
    }

    /// [`RouteResponse::failure`] for a chain that threw, with the response headers its
    /// handlers set before the throw: PocketBase's error answer keeps them (they were set on
    /// the response writer its error handler writes to). Call after [`errors::failure_of`].
    pub fn failed(ctx: &Ctx<'_>, f: &errors::Failure) -> RouteResponse {
        let mut res = RouteResponse::failure(f);
        res.headers.extend(take_failed_headers(ctx).into_iter().filter(|(k, _)| k != "content-type"));
        res
    }
}

/// The headers the last failed chain had set (`vb.takeFailedHeaders`), which also forgets
/// them. None when the runtime cannot even run this (past its deadline, out of memory): the
/// answer is then the internal error alone.
fn take_failed_headers(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    header_pairs(engine::internal(ctx, "takeFailedHeaders").and_then(|t| t.call(())).unwrap_or_default())
}

/// Response headers as JS keeps them (`[[name, value], …]`); a malformed pair is skipped.
pub fn header_pairs(pairs: Vec<Vec<String>>) -> Vec<(String, String)> {
    pairs.into_iter().filter_map(|pair| <[String; 2]>::try_from(pair).ok().map(|[k, v]| (k, v))).collect()
}

/// What a route chain wrote: `e.__response` of prelude.js, read field by field.
struct Written {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    bytes: Option<Vec<u8>>,
    /// `$apis.static`: a file (already resolved inside its dir) to answer with.
    file: Option<String>,
}

/// Reads `e.__response` as `__vb.responseTuple` gives it; an unwritten response is an
/// empty 200.
fn written_of(res: &Array<'_>) -> rquickjs::Result<Written> {
    let written: bool = res.get::<Option<bool>>(0)?.unwrap_or(false);
    let status = if written { res.get::<Option<f64>>(1)?.unwrap_or(200.0) } else { 200.0 };
    let headers: Vec<Vec<String>> = res.get(2)?;
    Ok(Written {
        status: if (0.0..=65535.0).contains(&status) { status as u16 } else { 0 },
        headers: header_pairs(headers),
        body: res.get::<Option<String>>(3)?.unwrap_or_default(),
        bytes: res.get(4)?,
        file: res.get(5)?,
    })
}

/// A response tuple (`__vb.responseTuple`) of a chain that cannot answer a file.
pub fn response_of(res: &Array<'_>) -> rquickjs::Result<RouteResponse> {
    let mut w = written_of(res)?;
    w.file = None;
    Ok(w.into_response())
}

impl Written {
    fn into_response(self) -> RouteResponse {
        let body = match (&self.file, self.bytes) {
            (Some(path), _) => match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(target: "vaultbase::hooks", path = %path, error = %e, "$apis.static could not read a file");
                    return RouteResponse::failure(&errors::Failure { status: 404, message: "The requested resource wasn't found.".into(), data: Default::default() });
                }
            },
            (None, Some(bytes)) => bytes,
            (None, None) => self.body.into_bytes(),
        };
        RouteResponse { status: if (100..=999).contains(&self.status) { self.status } else { 200 }, headers: self.headers, body }
    }
}

/// Runs route `index` for `req` on this JS thread (the whole chain: global and route
/// middlewares by priority, then the handler). Never fails: errors become their answer.
pub fn run<'js>(ctx: &Ctx<'js>, registry: &Registry, index: usize, req: &RouteRequest) -> RouteResponse {
    let route = &registry.routes[index];
    let result = (|| -> rquickjs::Result<Written> {
        let mws = Array::new(ctx.clone())?;
        let globals: &[Middleware] = if req.globals_applied { &[] } else { &registry.global_middlewares };
        let all = globals.iter().chain(route.middlewares.iter());
        for (i, mw) in all.enumerate() {
            mws.set(i, middleware(ctx, mw)?)?;
        }
        let handler = engine::handler(ctx, route.handler)?;
        let r = request_object(ctx, req)?;
        let res: Array = engine::internal(ctx, "runRoute")?.call((r, mws, handler))?;
        written_of(&res)
    })();
    match result {
        Ok(w) => w.into_response(),
        Err(e) => {
            let what = format!("{} {}", route.method.as_deref().unwrap_or("*"), route.pattern.text);
            RouteResponse::failed(ctx, &errors::failure_of(ctx, e, &what))
        }
    }
}

/// What a `routerUse` chain around a system route came to.
pub enum Around<R> {
    /// The chain reached the system route: its answer, plus the response headers the
    /// middlewares set before `e.next()`.
    Passed(R, Vec<(String, String)>),
    /// A middleware answered (or threw) without reaching it.
    Answered(RouteResponse),
}

/// Runs the global middlewares around a system route on this JS thread; `inner` (the system
/// route itself) runs where the chain's last link is, if it is reached.
pub fn run_around<'js, R: 'static>(ctx: &Ctx<'js>, registry: &Registry, req: &RouteRequest, inner: impl FnOnce() -> R + 'static) -> Around<R> {
    let slot: Rc<RefCell<Option<R>>> = Rc::new(RefCell::new(None));
    let filled = slot.clone();
    let result = (|| -> rquickjs::Result<Written> {
        let mws = Array::new(ctx.clone())?;
        for (i, mw) in registry.global_middlewares.iter().enumerate() {
            mws.set(i, middleware(ctx, mw)?)?;
        }
        let link = super::chain::rust_link(ctx, move |_ctx, _e| {
            *filled.borrow_mut() = Some(inner());
            Ok(())
        })?;
        let r = request_object(ctx, req)?;
        let res: Array = engine::internal(ctx, "runRoute")?.call((r, mws, link))?;
        written_of(&res)
    })();
    let reached = slot.borrow_mut().take();
    match (result, reached) {
        (Ok(w), Some(answer)) => Around::Passed(answer, w.headers),
        (Ok(w), None) => Around::Answered(w.into_response()),
        (Err(e), Some(answer)) => {
            // The system route already answered; a middleware failing after e.next() is logged.
            errors::failure_of(ctx, e, "routerUse");
            take_failed_headers(ctx);
            Around::Passed(answer, Vec::new())
        }
        (Err(e), None) => {
            let failure = errors::failure_of(ctx, e, "routerUse");
            Around::Answered(RouteResponse::failed(ctx, &failure))
        }
    }
}

fn middleware<'js>(ctx: &Ctx<'js>, mw: &Middleware) -> rquickjs::Result<Object<'js>> {
    let o = Object::new(ctx.clone())?;
    o.set("fn", engine::handler(ctx, mw.handler)?)?;
    o.set("priority", mw.priority)?;
    o.set("id", mw.id.as_str())?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid")
    }

    #[test]
    fn system_routes_are_refused_catch_alls_and_new_paths_are_not() {
        assert!(check_not_system(Some("GET"), &p("/api/health")).is_err());
        assert!(check_not_system(Some("POST"), &p("/api/collections/{c}/records")).is_err());
        assert!(check_not_system(None, &p("/api/collections/{x}/records/{y}")).is_err());
        assert!(check_not_system(Some("GET"), &p("/api/")).is_err());
        assert!(check_not_system(Some("GET"), &p("/api/hello")).is_ok());
        assert!(check_not_system(Some("GET"), &p("/api/collections/{c}/stats")).is_ok());
        assert!(check_not_system(Some("GET"), &p("/{path...}")).is_ok());
        assert!(check_not_system(Some("POST"), &p("/api/collections/{c}/auth-methods")).is_ok(), "auth-methods is GET only");
    }
}
