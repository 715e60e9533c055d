//! Auth endpoints of auth collections (`/api/collections/{c}/auth-*`), PocketBase-compatible:
//! `auth-methods`, `auth-with-password`, `auth-refresh`. Wrong credentials and unknown
//! identities get the same answer after the same argon2 work, so neither the status nor the
//! timing tells whether an account exists.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::shared::db::DbError;
use crate::worker::actor::{Actor, AuthRecord};
use crate::worker::auth::jwt::{self, Claims, TokenKind};
use crate::worker::http::body::{json, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use super::account_flows::{Completed, Method, Origin, PasswordAttempt};
use crate::worker::hooks::record_requests::{FlowDone, FlowNext, Reached};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::json_object;
use crate::worker::records::rows;
use crate::worker::records::schema::collection::AuthOptions;
use crate::worker::records::schema::{quote_ident, Collection, CollectionType};
use crate::worker::state::AppState;

/// PocketBase's answer to an auth body that is not a JSON object.
const BAD_FORMAT: &str = "An error occurred while loading the submitted data.";
const FAILED: &str = "Failed to authenticate.";

/// The auth collection named in the path, or PocketBase's 404.
pub async fn auth_collection(state: &AppState, id_or_name: &str) -> Result<Arc<Collection>, ApiError> {
    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    match snap.get(id_or_name) {
        Some(c) if c.kind == CollectionType::Auth => Ok(c.clone()),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid auth collection context.")),
    }
}

fn options(c: &Collection) -> AuthOptions {
    c.auth.clone().unwrap_or_default()
}

/// `GET auth-methods`
pub async fn methods(state: &AppState, collection: &str) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let o = options(&c);
    let duration = |enabled: bool, secs: u64| if enabled { secs } else { 0 };
    let identity = &o.password_auth.identity_fields;
    let (providers, legacy_providers) = super::oauth2::method_providers(&c).await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "password": {"enabled": o.password_auth.enabled, "identityFields": identity},
            "oauth2": {"enabled": o.oauth2.enabled, "providers": providers},
            "mfa": {"enabled": o.mfa.enabled, "duration": duration(o.mfa.enabled, o.mfa.duration)},
            "otp": {"enabled": o.otp.enabled, "duration": duration(o.otp.enabled, o.otp.duration)},
            "authProviders": legacy_providers,
            "usernamePassword": o.password_auth.enabled && identity.iter().any(|f| f == "username"),
            "emailPassword": o.password_auth.enabled && identity.iter().any(|f| f == "email"),
        }),
    ))
}

/// A fresh refreshable auth token for `record`, of the collection's duration.
pub(super) fn new_token(state: &AppState, c: &Collection, record: &Map<String, Value>) -> Result<String, ApiError> {
    let id = record.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let token_key = record.get("tokenKey").and_then(Value::as_str).unwrap_or_default();
    let ttl = std::time::Duration::from_secs(options(c).auth_token.duration);
    let claims = Claims {
        id,
        collection_id: c.id.clone(),
        kind: TokenKind::Auth { refreshable: true },
        exp: jwt::expires_at(jwt::unix_now(), ttl),
    };
    let collection_secret = crate::worker::actor::token_secret(c, jwt::TokenType::Auth);
    jwt::sign_for(&state.jwt_secret, collection_secret, &claims, token_key).map_err(ApiError::internal)
}

/// The `{token, record}` auth response, with `token` or else a new refreshable one.
fn auth_response(state: &AppState, c: &Collection, record: &Map<String, Value>, token: Option<String>) -> Result<Response<ResBody>, ApiError> {
    let token = match token {
        Some(t) => t,
        None => new_token(state, c, record)?,
    };
    let superuser = c.name == crate::worker::actor::SUPERUSERS;
    let public = rows::public_auth_record(c, record, superuser);
    Ok(json(StatusCode::OK, &json!({"token": token, "record": public})))
}

/// `POST auth-with-password`
pub async fn with_password(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = super::account_flows::origin_of(state, &req).await;
    // pb_hooks: the request as onRecordAuthWithPasswordRequest sees it, read before the body.
    let hook_head = super::record_hooks::hooked_head(state, &c, &req, "onRecordAuthWithPasswordRequest").await;
    let query_mfa = crate::worker::http::request::Query::parse(req.uri().query()).get("mfaId").map(str::to_owned);
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, BAD_FORMAT).await?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mfa_id = query_mfa.or_else(|| body.get("mfaId").and_then(Value::as_str).map(str::to_owned));
    let (identity, password, identity_field) = (text("identity"), text("password"), text("identityField"));
    let mut errors = Map::new();
    for (key, value) in [("identity", &identity), ("password", &password)] {
        if value.is_empty() {
            errors.insert(key.into(), json!({"code": "validation_required", "message": "Cannot be blank."}));
        }
    }
    let o = options(&c);
    if !identity_field.is_empty() && !o.password_auth.identity_fields.contains(&identity_field) {
        errors.insert("identityField".into(), json!({"code": "validation_in_invalid", "message": "Must be a valid value."}));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation("An error occurred while validating the submitted data.", errors));
    }
    if !o.password_auth.enabled {
        return Err(ApiError::forbidden("The collection is not configured to allow password authentication."));
    }
    // Charged before any lookup or hashing; refunded below when the password is right.
    let attempt = super::account_flows::charge_password_attempt(state, &c, &identity, &origin).await?;
    // Which fields to try: the one asked for, else every identity field; `email` only when
    // the identity looks like one (PocketBase's order).
    let fields: Vec<String> = if identity_field.is_empty() {
        let mut f: Vec<String> = o.password_auth.identity_fields.clone();
        if !identity.contains('@') {
            f.retain(|x| x != "email");
        }
        f
    } else {
        vec![identity_field]
    };
    let fields: Vec<String> = fields.into_iter().filter(|f| c.field(f).is_some()).collect();
    let (lookup_c, lookup_identity) = (c.clone(), identity.clone());
    let found = state
        .db
        .read(move |conn| -> Result<Option<Map<String, Value>>, DbError> {
            for f in &fields {
                let sql = format!("SELECT id FROM {} WHERE {} = ?1 LIMIT 1", quote_ident(&lookup_c.name), quote_ident(f));
                let id: Option<String> = rusqlite::OptionalExtension::optional(
                    conn.prepare_cached(&sql)?.query_row([&lookup_identity], |r| r.get(0)),
                )?;
                if let Some(id) = id {
                    return Ok(rows::load(conn, &lookup_c, &id)?);
                }
            }
            Ok(None)
        })
        .await
        .map_err(ApiError::internal)?;
    let record = match hook_head {
        // The hook chain decides: its default action checks the password, then signs in
        // (authRule, MFA, the answer through onRecordAuthRequest) as PocketBase's does, so
        // code after `e.next()` runs once the answer is made. A hook that wrote an answer or
        // threw ends the request there.
        Some(head) => {
            let (st, c2, origin) = (state.clone(), c.clone(), origin.clone());
            let next: FlowNext = Box::new(move |reached: Reached| {
                Box::pin(async move {
                    let Some(Value::Object(record)) = reached.extra.get("record").cloned() else {
                        return Err(super::record_hooks::flow_failure(ApiError::bad_request(FAILED)));
                    };
                    let completed = signed_in_with_password(&st, &c2, &record, attempt, mfa_id, &origin).await.map_err(super::record_hooks::flow_failure)?;
                    super::account_flows::sign_in_done(&st, &c2, record, Method::Password, None, completed).map_err(super::record_hooks::flow_failure)
                }) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
            });
            return match super::record_hooks::auth_with_password(state, &c, head, &identity, &password, found, Some(next)).await? {
                Err(answer) => Ok(answer),
                // Not reached: with `next` the default action answers.
                Ok(_) => Err(ApiError::bad_request(FAILED)),
            };
        }
        None => {
            let hash = found.as_ref().and_then(|r| r.get("password")).and_then(Value::as_str).map(str::to_owned);
            // Always one argon2 verification, known account or not.
            let ok = state.passwords.verify_or_dummy(hash, &password).await;
            let Some(record) = found.filter(|_| ok) else { return Err(ApiError::bad_request(FAILED)) };
            record
        }
    };
    let completed = signed_in_with_password(state, &c, &record, attempt, mfa_id, &origin).await?;
    super::account_flows::answer_completed(state, &c, record, Method::Password, &origin, None, completed).await
}

/// A password that proved right for `record`: the attempt is refunded, the authRule checked,
/// then the MFA step.
async fn signed_in_with_password(
    state: &AppState,
    c: &Arc<Collection>,
    record: &Map<String, Value>,
    attempt: PasswordAttempt,
    mfa_id: Option<String>,
    origin: &Origin,
) -> Result<Completed, ApiError> {
    attempt.succeeded(state).await;
    super::account_flows::require_auth_rule(state, c, record, Method::Password).await?;
    super::account_flows::complete_auth_steps(state, c, record, Method::Password, mfa_id, origin).await
}

/// `POST auth-refresh`
pub async fn refresh(state: &AppState, collection: &str, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let Some(auth): Option<&AuthRecord> = actor.auth() else {
        return Err(ApiError::unauthorized("The request requires valid record authorization token."));
    };
    if auth.collection.id != c.id {
        return Err(ApiError::forbidden(format!("The request requires auth record from {} collection.", c.name)));
    }
    let same = (!auth.refreshable).then(|| auth.token.clone());
    // pb_hooks: onRecordAuthRefreshRequest (`e.collection`, `e.record`); its default action
    // answers (through onRecordAuthRequest, `e.authMethod` ""), as PocketBase's.
    if let Some(head) = super::record_hooks::hooked_head_as(state, &c, req, "onRecordAuthRefreshRequest", actor).await {
        let (st, c2, record) = (state.clone(), c.clone(), auth.record.clone());
        let next: FlowNext = Box::new(move |_reached: Reached| {
            Box::pin(async move {
                let token = match same {
                    Some(t) => t,
                    None => new_token(&st, &c2, &record).map_err(super::record_hooks::flow_failure)?,
                };
                Ok(FlowDone::SignedIn { record, token, method: "", meta: None, mfa: None })
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        });
        return Ok(super::record_hooks::auth_gate_flow(state, &c, head, "onRecordAuthRefreshRequest", &Map::new(), Some(auth.record.clone()), Map::new(), next).await);
    }
    // pb_hooks: onRecordAuthRequest (`e.authMethod` "", as in PocketBase) shapes the answer.
    if let Some(head) = super::record_hooks::auth_answer_head(state, &c, req, actor).await {
        let token = match &same {
            Some(t) => t.clone(),
            None => new_token(state, &c, &auth.record)?,
        };
        if let Some(res) = super::record_hooks::auth_answer_with(state, &c, &auth.record, token, "", Some(head)).await {
            return Ok(res);
        }
    }
    auth_response(state, &c, &auth.record, same)
}
