//! The route table: (method, path) → handler, and the one place unknown routes become 404.
//!
//! A plain `match` over path segments rather than a router crate: the table is short, it
//! compiles to string comparisons, and every route is visible in one screen. The actor (who
//! is asking) is resolved only for routes that need it, so health checks never touch auth.

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response};

use super::body::ResBody;
use super::error::ApiError;
use crate::worker::actor::{self, Actor};
use crate::worker::api;
use crate::worker::http::client_ip;
use crate::worker::ratelimit;
use crate::worker::server::PeerAddr;
use crate::worker::state::AppState;

/// Routes `req` and turns any error into its envelope.
pub async fn dispatch(state: &AppState, req: Request<Incoming>, request_id: u64) -> Response<ResBody> {
    let origins = &state.config.origins;
    if let Some(preflight) = crate::worker::http::cors::preflight(origins, req.method(), req.headers()) {
        return preflight;
    }
    let origin = crate::worker::http::cors::origin_of(req.headers());
    let mut res = dispatch_routed(state, req, request_id).await;
    crate::worker::http::cors::decorate(origins, origin.as_ref(), &mut res);
    res
}

async fn dispatch_routed(state: &AppState, mut req: Request<Incoming>, request_id: u64) -> Response<ResBody> {
    let (refusal, actor) = rate_limited(state, &req).await;
    if let Some(refusal) = refusal {
        return refusal.into_response(request_id);
    }
    if let Some(actor) = actor {
        req.extensions_mut().insert(Resolved(actor));
    }
    // pb_hooks `routerUse` middlewares wrap every route (one atomic load when there are none).
    if state.hooks.wraps_system_routes() && !state.hooks.owns_path(req.method().as_str(), req.uri().path()) {
        let actor = actor_of(state, &req).await;
        req.extensions_mut().insert(Resolved(actor.clone()));
        let inner_state = state.clone();
        return api::custom_routes::around_system(state, req, &actor, move |req| {
            Box::pin(async move {
                match route(&inner_state, req, request_id).await {
                    Ok(res) => res,
                    Err(e) => e.into_response(request_id),
                }
            })
        })
        .await;
    }
    match route(state, req, request_id).await {
        Ok(res) => res,
        Err(e) => e.into_response(request_id),
    }
}

/// PocketBase's `rateLimits`, checked before routing so every request counts, unknown routes
/// included (see `worker::ratelimit`). Some(429) when over a rule's limit; also the actor, when
/// the check had to resolve it.
async fn rate_limited(state: &AppState, req: &Request<Incoming>) -> (Option<ApiError>, Option<Actor>) {
    let Some(limiter) = state.rate_limiter.as_ref() else { return (None, None) };
    let loaded = match limiter.cached() {
        Ok(loaded) => loaded,
        Err(epoch) => match state.settings.fresh(&state.db).await {
            Ok(loaded) => {
                limiter.remember(epoch, loaded.clone());
                loaded
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading rate-limit settings failed; not limiting this request");
                return (None, None);
            }
        },
    };
    let limits = &loaded.settings.rate_limits;
    if !limits.enabled {
        return (None, None);
    }
    let actor = match req.headers().contains_key(AUTHORIZATION) {
        true => Some(actor_of(state, req).await),
        false => None,
    };
    let caller = match &actor {
        None | Some(Actor::Guest) => ratelimit::Caller::Guest,
        Some(a) if a.is_superuser() => ratelimit::Caller::Superuser,
        Some(_) => ratelimit::Caller::Auth,
    };
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let client_ip = client_ip::real_ip_addr(peer, req.headers(), &loaded.settings.trusted_proxy);
    let method = req.method().as_str();
    let path = req.uri().path();
    // The held snapshot names the collection without a database hop per request (a check of
    // the schema version here cost a quarter of the view throughput); only a collection it
    // does not know yet is looked up fresh.
    let route = ratelimit::collection_route(method, path);
    let snapshot = match &route {
        Some(route) => {
            let held = state.schema.snapshot();
            match held.get(route.collection) {
                Some(_) => Some(held),
                None => state.schema.fresh(&state.db).await.ok(),
            }
        }
        None => None,
    };
    let collection = route.and_then(|r| Some((r, snapshot.as_ref()?.get(r.collection)?.name.as_str())));
    let check = ratelimit::Request { method, path, collection, caller, client_ip };
    let refusal = match ratelimit::check(limiter.table(), limits, loaded.version, &check) {
        ratelimit::Verdict::Pass => None,
        ratelimit::Verdict::Limited { label, audience } => {
            tracing::debug!(worker_id = state.worker_id, %label, %audience, client_ip = ?client_ip, "rate limit rule triggered");
            Some(ApiError::new(hyper::StatusCode::TOO_MANY_REQUESTS, "Too Many Requests."))
        }
    };
    (refusal, actor)
}

/// The actor the rate-limit check already resolved, so a route does not verify the token twice.
#[derive(Clone)]
struct Resolved(Actor);

async fn actor_of(state: &AppState, req: &Request<Incoming>) -> Actor {
    if let Some(Resolved(actor)) = req.extensions().get::<Resolved>() {
        return actor.clone();
    }
    let actor = actor::resolve(&state.schema, &state.db, &state.jwt_secret, req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())).await;
    // The request log names the caller.
    if let Some(slot) = req.extensions().get::<crate::worker::http::access::CallerSlot>() {
        slot.set(&actor);
    }
    actor
}

/// Superuser-only routes: 401 for a guest, 403 for any other record (PocketBase's words).
async fn require_superuser(state: &AppState, req: &Request<Incoming>) -> Result<Actor, ApiError> {
    let actor = actor_of(state, req).await;
    match &actor {
        Actor::Guest => Err(ApiError::unauthorized("The request requires valid record authorization token.")),
        a if !a.is_superuser() => Err(ApiError::forbidden("The authorized record is not allowed to perform this action.")),
        _ => Ok(actor),
    }
}

async fn route(state: &AppState, req: Request<Incoming>, request_id: u64) -> Result<Response<ResBody>, ApiError> {
    let method = req.method().clone();
    let is_read = matches!(method, Method::GET | Method::HEAD);
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (segments.as_slice(), &method) {
        (["_", "health"], _) if is_read => Ok(api::health::worker_health(state)),
        (["api", "health"], _) if is_read => {
            // Only a request that carries a token pays for resolving it.
            let superuser = req.headers().contains_key(AUTHORIZATION) && actor_of(state, &req).await.is_superuser();
            let real_ip = if superuser { crate::worker::http::client_ip::of_request(state, &req).await } else { String::new() };
            Ok(api::health::api_health(superuser, real_ip, req.headers(), state.db.write_failure()))
        }
        (["_", "test", "echo"], &Method::POST) if state.config.test_routes => api::test_routes::echo(req).await,
        (["_", "test", "stats"], _) if is_read && state.config.test_routes => Ok(api::test_routes::stats(state)),
        (["_", "test", "observed"], _) if is_read && state.config.test_routes => Ok(api::test_routes::observed(state)),
        (["_", "test", "panic"], _) if is_read && state.config.test_routes => api::test_routes::panic(),
        (["_", "test", "jobs"], &Method::POST) if state.config.test_routes => api::test_routes::enqueue_jobs(state, req).await,
        (["_", "test", "jobs"], _) if is_read && state.config.test_routes => Ok(api::test_routes::job_runs(state)),
        (["_", ..], _) if is_read && api::admin::dev_dir().is_some() => api::admin::serve_dev(&method, &path).await,
        (["_", ..], _) if is_read => api::admin::serve(&method, &path, req.headers()),
        (["_", "setup"], &Method::POST) => api::setup::redeem(state, req).await,

        (["api", "realtime"], &Method::GET) => api::realtime::connect(state, &req).await,
        (["api", "realtime"], &Method::POST) => api::realtime::set_subscriptions(state, req).await,
        (["realtime"], &Method::GET) => api::realtime::websocket(state, req),
        (["api", "oauth2-redirect"], &Method::GET | &Method::POST) => api::oauth2::redirect(state, req).await,

        (["api", "batch"], &Method::POST) => {
            let actor = actor_of(state, &req).await;
            api::batch::batch(state, req, &actor, request_id).await
        }
        (["api", "settings"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::settings::get(state).await
        }
        (["api", "settings"], &Method::PATCH) => {
            require_superuser(state, &req).await?;
            api::settings::patch(state, req).await
        }
        (["api", "logs"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::logs::list(state, &req).await
        }
        (["api", "logs"], &Method::DELETE) => {
            require_superuser(state, &req).await?;
            api::logs::delete(state).await
        }
        (["api", "logs", "stats"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::logs::stats(state, &req).await
        }
        (["api", "logs", id], _) if is_read => {
            require_superuser(state, &req).await?;
            api::logs::view(state, id).await
        }
        (["api", "vb", "cluster"], _) if is_read => {
            require_superuser(state, &req).await?;
            Ok(api::cluster::get(state).await)
        }
        (["api", "vb", "hooks"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::hook_files::get(state).await
        }
        (["api", "crons"], _) if is_read => {
            require_superuser(state, &req).await?;
            Ok(api::crons::list(state).await)
        }
        (["api", "crons", id], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::crons::run(state, id).await
        }
        (["api", "crons", id, "runs"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::crons::runs(state, id, &req).await
        }
        (["api", "vb", rest @ ..], _) => {
            require_superuser(state, &req).await?;
            api::jobs::dispatch(state, rest, &method, req).await
        }
        (["api", "sql"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::sql::run(state, req).await
        }
        (["api", "settings", "test", "s3"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::files::test_s3(state, req).await
        }
        (["api", "backups"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::backups::list(state).await
        }
        (["api", "backups"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::backups::create(state, req).await
        }
        (["api", "backups", "upload"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::backups::upload(state, req).await
        }
        (["api", "backups", key], _) if is_read => api::backups::download(state, key, &req).await,
        (["api", "backups", key], &Method::DELETE) => {
            require_superuser(state, &req).await?;
            api::backups::delete(state, key).await
        }
        (["api", "backups", key, "restore"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::backups::restore_backup(state, key).await
        }
        (["api", "admin", "restore"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::backups::admin_restore(state, req).await
        }
        (["api", "files", "token"], &Method::POST) => {
            let actor = actor_of(state, &req).await;
            api::files::token(state, &actor).await
        }
        (["api", "files", c, record, name], _) if is_read => api::files::download(state, c, record, name, &req).await,
        (["api", "collections"], _) if is_read => {
            require_superuser(state, &req).await?;
            api::collections::list(state, &req).await
        }
        (["api", "collections"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::collections::create(state, req).await
        }
        (["api", "collections", "import"], &Method::PUT) => {
            require_superuser(state, &req).await?;
            api::collections::import(state, req).await
        }
        (["api", "collections", "meta", "scaffolds"], _) if is_read => {
            require_superuser(state, &req).await?;
            Ok(api::collections::scaffolds())
        }
        (["api", "collections", c], _) if is_read => {
            require_superuser(state, &req).await?;
            api::collections::view(state, c).await
        }
        (["api", "collections", c], &Method::PATCH) => {
            require_superuser(state, &req).await?;
            let c = c.to_string();
            api::collections::update(state, &c, req).await
        }
        (["api", "collections", c], &Method::DELETE) => {
            require_superuser(state, &req).await?;
            api::collections::delete(state, c).await
        }
        (["api", "collections", c, "truncate"], &Method::DELETE) => {
            require_superuser(state, &req).await?;
            api::collections::truncate(state, c).await
        }

        (["api", "collections", c, "auth-methods"], _) if is_read => api::record_auth::methods(state, c).await,
        (["api", "collections", c, "auth-with-password"], &Method::POST) => {
            let c = c.to_string();
            api::record_auth::with_password(state, &c, req).await
        }
        (["api", "collections", c, "auth-refresh"], &Method::POST) => {
            let actor = actor_of(state, &req).await;
            api::record_auth::refresh(state, c, &req, &actor).await
        }
        (["api", "collections", c, "auth-with-oauth2"], &Method::POST) => {
            let actor = actor_of(state, &req).await;
            let c = c.to_string();
            api::oauth2::auth_with_oauth2(state, &c, req, &actor).await
        }
        (["api", "collections", api::oauth2::EXTERNAL_AUTHS, "records"], _) if is_read => {
            let actor = actor_of(state, &req).await;
            api::oauth2::list_external_auths(state, &req, &actor).await
        }
        (["api", "collections", api::oauth2::EXTERNAL_AUTHS, "records", id], &Method::DELETE) => {
            let actor = actor_of(state, &req).await;
            api::oauth2::delete_external_auth(state, id, &actor).await
        }
        (["api", "collections", c, "request-verification"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::request_verification(state, &c, req).await
        }
        (["api", "collections", c, "confirm-verification"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::confirm_verification(state, &c, req).await
        }
        (["api", "collections", c, "request-password-reset"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::request_password_reset(state, &c, req).await
        }
        (["api", "collections", c, "confirm-password-reset"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::confirm_password_reset(state, &c, req).await
        }
        (["api", "collections", c, "request-email-change"], &Method::POST) => {
            let actor = actor_of(state, &req).await;
            let c = c.to_string();
            api::account_flows::request_email_change(state, &c, req, &actor).await
        }
        (["api", "collections", c, "confirm-email-change"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::confirm_email_change(state, &c, req).await
        }
        (["api", "collections", c, "request-otp"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::request_otp(state, &c, req).await
        }
        (["api", "collections", c, "auth-with-otp"], &Method::POST) => {
            let c = c.to_string();
            api::account_flows::auth_with_otp(state, &c, req).await
        }
        (["api", "collections", c, "impersonate", id], &Method::POST) => {
            let actor = require_superuser(state, &req).await?;
            let (c, id) = (c.to_string(), id.to_string());
            api::account_flows::impersonate(state, &c, &id, req, &actor).await
        }
        (["api", "settings", "test", "email"], &Method::POST) => {
            require_superuser(state, &req).await?;
            api::account_flows::test_email(state, req).await
        }
        (["api", "collections", c, "records"], _) if is_read => {
            let actor = actor_of(state, &req).await;
            api::records::list(state, c, &req, &actor).await
        }
        (["api", "collections", c, "records"], &Method::POST) => {
            let actor = actor_of(state, &req).await;
            let c = c.to_string();
            api::records::create(state, &c, req, &actor).await
        }
        (["api", "collections", c, "records", id], _) if is_read => {
            let actor = actor_of(state, &req).await;
            api::records::view(state, c, id, &req, &actor).await
        }
        (["api", "collections", c, "records", id], &Method::PATCH) => {
            let actor = actor_of(state, &req).await;
            let (c, id) = (c.to_string(), id.to_string());
            api::records::update(state, &c, &id, req, &actor).await
        }
        (["api", "collections", c, "records", id], &Method::DELETE) => {
            let actor = actor_of(state, &req).await;
            api::records::delete(state, c, id, &req, &actor).await
        }
        // pb_hooks routerAdd routes: after every system route; then PocketBase's `pb_public`
        // for every other read outside its API and admin prefixes (a catch-all in PocketBase,
        // so a user route wins); then 404.
        _ => match state.hooks.match_route(method.as_str(), &path) {
            Some(crate::worker::hooks::Routed::Matched(m)) => {
                let actor = actor_of(state, &req).await;
                api::custom_routes::serve(state, m, req, &actor).await
            }
            Some(crate::worker::hooks::Routed::WrongMethod) => Err(ApiError::not_found()),
            None if is_read && !matches!(segments.first(), Some(&"api") | Some(&"_")) => api::public::serve(state, &method, &path).await,
            None => Err(ApiError::route_not_found()),
        },
    }
}
