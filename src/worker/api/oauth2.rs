//! OAuth2 over HTTP, PocketBase-compatible: the provider list of `auth-methods` (with a fresh
//! state and PKCE pair per provider), `auth-with-oauth2` (code exchange, then sign-in, linking
//! or sign-up), and the `_externalAuths` record routes the SDK uses to list and unlink links.
//!
//! It owns account decisions for OAuth2: which record a provider identity signs in as, in
//! PocketBase's order (an existing link, then the signed-in record of the same collection,
//! then a record with the same email when the provider explicitly verified that email — an
//! unverified record found that way is taken over: verified, a random password, its other
//! links dropped — then a new record when the collection's createRule allows sign-ups, written
//! with a guest's access and verified only when its email is the provider-verified one). It
//! must not talk to a provider itself (that is `auth::oauth2`) and must not call a provider
//! inside a database transaction.
//!
//! It also answers the provider's redirect of the SDK's all-in-one flow
//! (`GET|POST /api/oauth2-redirect`): the `{state, code, error}` it carries goes to the
//! realtime client whose id is `state`, on whichever worker holds it, and the browser gets a
//! small page saying whether that worked.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::shared::db::DbError;
use crate::worker::accounts;
use crate::worker::actor::{Actor, SUPERUSERS};
use crate::worker::auth::jwt;
use crate::worker::auth::oauth2::{self, AuthUser, OAuth2Error, Resolved};
use crate::worker::auth::random;
use crate::worker::http::body::{json, json_bytes, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{json_object, Query};
use crate::worker::app::observe::Source;
use crate::worker::records::changes::{self, Action, Changes};
use crate::worker::records::crud::{CrudError, Requester, Shape};
use crate::worker::records::query::RequestContext;
use crate::worker::records::rows;
use crate::worker::records::schema::Collection;
use crate::worker::realtime::subscribe::{ClientMessage, SubscribeError};
use crate::worker::records::values::Access;
use crate::worker::records::write;
use crate::worker::state::AppState;

use super::account_flows::{self, Completed, Method};
use crate::worker::hooks::record_requests::{FlowNext, Reached};
use super::record_auth::auth_collection;

const VALIDATION: &str = "An error occurred while validating the submitted data.";
const FAILED: &str = "Failed to authenticate.";
/// The collection name the SDK uses for provider links.
pub const EXTERNAL_AUTHS: &str = "_externalAuths";
/// Its collection id: PocketBase's, the same in every PocketBase data dir (derived from the name).
pub const EXTERNAL_AUTHS_ID: &str = "pbc_2281828961";
/// Length of the random password a record created by OAuth2 sign-up gets, in characters.
const RANDOM_PASSWORD_CHARS: usize = 30;

/// The `oauth2.providers` of `auth-methods`: `(with logo, without logo)` (the legacy
/// `authProviders` key has no logo). A provider that cannot be resolved (an unreachable OIDC
/// issuer) is left out and logged rather than failing the whole answer.
pub async fn method_providers(c: &Collection) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let o = c.auth.clone().unwrap_or_default();
    let (mut with_logo, mut without) = (Vec::new(), Vec::new());
    if !o.oauth2.enabled {
        return Ok((with_logo, without));
    }
    for cfg in &o.oauth2.providers {
        let resolved = match oauth2::resolve(cfg).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(collection = %c.name, provider = %cfg.name, error = %e, "OAuth2 provider left out of auth-methods");
                continue;
            }
        };
        let state = oauth2::new_state().map_err(ApiError::internal)?;
        let pkce = if resolved.endpoints.pkce { Some(oauth2::pkce().map_err(ApiError::internal)?) } else { None };
        let url = oauth2::auth_url(&resolved, &state, pkce.as_ref());
        let entry = json!({
            "name": resolved.name,
            "displayName": resolved.display_name,
            "state": state,
            "authURL": url,
            "authUrl": url,
            "codeVerifier": pkce.as_ref().map(|p| p.verifier.clone()).unwrap_or_default(),
            "codeChallenge": pkce.as_ref().map(|p| p.challenge.clone()).unwrap_or_default(),
            "codeChallengeMethod": if pkce.is_some() { "S256" } else { "" },
        });
        without.push(entry.clone());
        let mut logo = entry;
        logo["logo"] = Value::String(String::new());
        with_logo.push(logo);
    }
    Ok((with_logo, without))
}

fn provider_error(e: OAuth2Error) -> ApiError {
    tracing::warn!(error = %e, "OAuth2 exchange failed");
    ApiError::bad_request("Failed to fetch OAuth2 token.")
}

fn field_error(key: &str, code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert(key.into(), json!({"code": code, "message": message}));
    ApiError::validation(VALIDATION, data)
}

fn meta(user: &AuthUser, is_new: bool) -> Value {
    let expiry = if user.expires_in > 0 {
        crate::worker::records::values::datetime::format_datetime(
            crate::worker::records::values::datetime::now_millis().saturating_add(user.expires_in.saturating_mul(1000)),
        )
    } else {
        String::new()
    };
    json!({
        "id": user.id, "name": user.name, "username": user.username, "email": user.email,
        "avatarURL": user.avatar_url, "avatarUrl": user.avatar_url,
        "accessToken": user.access_token, "refreshToken": user.refresh_token, "expiry": expiry,
        "rawUser": user.raw, "isNew": is_new,
    })
}

/// `POST auth-with-oauth2`
pub async fn auth_with_oauth2(state: &AppState, collection: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = account_flows::origin_of(state, &req).await;
    let query_mfa = Query::parse(req.uri().query()).get("mfaId").map(str::to_owned);
    let head = super::record_hooks::hooked_head_as(state, &c, &req, "onRecordAuthWithOAuth2Request", actor).await;
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, "An error occurred while loading the submitted data.").await?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (provider, code, verifier) = (text("provider"), text("code"), text("codeVerifier"));
    let redirect = [text("redirectURL"), text("redirectUrl")].into_iter().find(|r| !r.is_empty()).unwrap_or_default();
    let mut missing = Map::new();
    for (k, v) in [("provider", &provider), ("code", &code), ("redirectURL", &redirect)] {
        if v.is_empty() {
            missing.insert(k.into(), json!({"code": "validation_required", "message": "Cannot be blank."}));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(VALIDATION, missing));
    }
    let o = c.auth.clone().unwrap_or_default();
    if !o.oauth2.enabled {
        return Err(ApiError::forbidden("The collection is not configured to allow OAuth2 authentication."));
    }
    let Some(cfg) = o.oauth2.providers.iter().find(|p| p.name == provider) else {
        return Err(field_error("provider", "validation_invalid_provider", "Provider with name does not exist."));
    };
    let resolved = oauth2::resolve(cfg).await.map_err(provider_error)?;
    let tokens = oauth2::exchange(&resolved, &code, &verifier, &redirect).await.map_err(provider_error)?;
    let user = oauth2::user(&resolved, &tokens, jwt::unix_now()).await.map_err(provider_error)?;

    let create_data = match body.get("createData") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let signed_in = actor.auth().filter(|a| a.collection.id == c.id).map(|a| a.id().to_owned());
    let mfa_id = query_mfa.or_else(|| body.get("mfaId").and_then(Value::as_str).map(str::to_owned));
    let signing = Signing { state: state.clone(), c: c.clone(), resolved, user, signed_in, mfa_id, origin };
    // pb_hooks: onRecordAuthWithOAuth2Request (`e.providerName`, `e.oAuth2User`, `e.record` —
    // the record the sign-in will use: the linked one, else the signed-in one, else the one
    // with the provider's verified address; null for a sign-up —, `e.createData`,
    // `e.isNewRecord`). Its default action is the rest of this flow, as PocketBase's: the
    // sign-in or sign-up with `e.createData` as the handlers left it, then the answer, so code
    // after `e.next()` sees the stored `e.record`.
    if let Some(head) = head {
        let (c2, p2, uid) = (c.clone(), signing.resolved.name.clone(), signing.user.id.clone());
        let by_email = oauth2::trusted_email(signing.resolved.kind, &signing.user);
        let fallback = signing.signed_in.clone();
        let found = state
            .db
            .read(move |conn| -> Result<Option<Map<String, Value>>, DbError> {
                let id = match accounts::linked_record(conn, &c2, &p2, &uid)?.or(fallback) {
                    Some(id) => Some(id),
                    None => match by_email {
                        Some(email) => accounts::id_by_email(conn, &c2, &email)?,
                        None => None,
                    },
                };
                match id {
                    Some(id) => Ok(rows::load(conn, &c2, &id)?),
                    None => Ok(None),
                }
            })
            .await
            .map_err(ApiError::internal)?;
        let user_json = meta(&signing.user, found.is_none());
        let extra = Map::from_iter([
            ("providerName".to_owned(), Value::String(provider.clone())),
            // PocketBase's name for it; `oauth2User` is kept for hooks written against
            // earlier vaultbase versions.
            ("oAuth2User".to_owned(), user_json.clone()),
            ("oauth2User".to_owned(), user_json),
            // null when the client sent none, as PocketBase's nil map.
            ("createData".to_owned(), body.get("createData").filter(|v| v.is_object()).map_or(Value::Null, |_| Value::Object(create_data.clone()))),
            ("isNewRecord".to_owned(), Value::Bool(found.is_none())),
        ]);
        let next: FlowNext = Box::new(move |reached: Reached| {
            Box::pin(async move {
                let fields = reached.extra;
                let create_data = match fields.get("createData") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => create_data,
                };
                let (record, is_new, completed) = signing.finish(create_data).await.map_err(super::record_hooks::flow_failure)?;
                // PocketBase's meta.isNew is e.isNewRecord as the handlers left it.
                let is_new = fields.get("isNewRecord").and_then(Value::as_bool).unwrap_or(is_new);
                let meta = meta(&signing.user, is_new);
                account_flows::sign_in_done(&signing.state, &signing.c, record, Method::OAuth2, Some(meta), completed).map_err(super::record_hooks::flow_failure)
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        });
        return Ok(super::record_hooks::auth_gate_flow(state, &c, head, "onRecordAuthWithOAuth2Request", &body, found, extra, next).await);
    }
    let (record, is_new, completed) = signing.finish(create_data).await?;
    let meta = meta(&signing.user, is_new);
    account_flows::answer_completed(state, &c, record, Method::OAuth2, &signing.origin, Some(meta), completed).await
}

/// An OAuth2 sign-in once the provider answered: everything [`Signing::finish`] needs.
struct Signing {
    state: AppState,
    c: Arc<Collection>,
    resolved: Resolved,
    user: AuthUser,
    /// The record of this collection the request is signed in as (linking to it).
    signed_in: Option<String>,
    mfa_id: Option<String>,
    origin: account_flows::Origin,
}

impl Signing {
    /// Signs in or up with `create_data`, checks the authRule, and takes the MFA step:
    /// `(the record as stored, created now, how the sign-in ended)`.
    async fn finish(&self, create_data: Map<String, Value>) -> Result<(Map<String, Value>, bool, Completed), ApiError> {
        let (state, c) = (&self.state, &self.c);
        let (record_id, is_new) = sign_in_or_up(state, c, &self.resolved, &self.user, self.signed_in.clone(), create_data).await?;
        let Some(record) = state
            .db
            .read({
                let c = c.clone();
                move |conn| rows::load(conn, &c, &record_id).map_err(DbError::from)
            })
            .await
            .map_err(ApiError::internal)?
        else {
            return Err(ApiError::bad_request(FAILED));
        };
        account_flows::require_auth_rule(state, c, &record, Method::OAuth2).await?;
        let completed = account_flows::complete_auth_steps(state, c, &record, Method::OAuth2, self.mfa_id.clone(), &self.origin).await?;
        Ok((record, is_new, completed))
    }
}

/// Which record the provider identity is: `(record id, created now)`.
async fn sign_in_or_up(
    state: &AppState,
    c: &Arc<Collection>,
    provider: &Resolved,
    user: &AuthUser,
    signed_in: Option<String>,
    create_data: Map<String, Value>,
) -> Result<(String, bool), ApiError> {
    let (c2, p2, uid) = (c.clone(), provider.name.clone(), user.id.clone());
    let linked = state
        .db
        .read(move |conn| -> Result<Option<(String, bool)>, DbError> {
            let Some(id) = accounts::linked_record(conn, &c2, &p2, &uid)? else { return Ok(None) };
            let exists = rows::load(conn, &c2, &id)?.is_some();
            Ok(Some((id, exists)))
        })
        .await
        .map_err(ApiError::internal)?;
    match linked {
        Some((id, true)) => return Ok((id, false)),
        // A link to a record that is gone is no link: it must not hand its id to whichever
        // record is created with it next.
        Some((_, false)) => {
            let (c2, p2, uid) = (c.clone(), provider.name.clone(), user.id.clone());
            state
                .db
                .write(move |tx| accounts::drop_dangling_link(tx, &c2, &p2, &uid).map_err(DbError::from))
                .await
                .map_err(ApiError::internal)?;
        }
        None => {}
    }
    // Only an address the provider explicitly verified proves the mailbox; anything else
    // (unverified, unsaid, Microsoft's tenant-asserted `mail`) never links to an existing
    // account and never makes a new one verified.
    let trusted_email = oauth2::trusted_email(provider.kind, user);
    let link_id = random::new_id().map_err(ApiError::internal)?;
    if let Some(record_id) = signed_in {
        let (c2, p2, uid, rid) = (c.clone(), provider.name.clone(), user.id.clone(), record_id.clone());
        state
            .db
            .write(move |tx| accounts::link(tx, &link_id, &c2, &rid, &p2, &uid).map_err(DbError::from))
            .await
            .map_err(ApiError::internal)?;
        return Ok((record_id, false));
    }
    let by_email = match &trusted_email {
        Some(email) => {
            let (c2, email) = (c.clone(), email.clone());
            state.db.read(move |conn| accounts::id_by_email(conn, &c2, &email).map_err(DbError::from)).await.map_err(ApiError::internal)?
        }
        None => None,
    };
    if let Some(record_id) = by_email {
        // The owner of the mailbox takes over an account registered with it but never
        // verified (PocketBase): whoever registered it loses the password they chose and any
        // provider links they added. Prepared outside the transaction (argon2 is slow); used
        // only if the record is still unverified inside it.
        let (hash, token_key) = random_password_hash(state).await?;
        let (c2, p2, uid, rid) = (c.clone(), provider.name.clone(), user.id.clone(), record_id.clone());
        state
            .writes()
            .commit(Source::OAuth2, move |tx: &rusqlite::Transaction<'_>, changes: &mut Changes| -> Result<(), DbError> {
                let before = changes.before(tx, &c2, &rid)?;
                if accounts::claim_unverified(tx, &c2, &rid, &hash, &token_key)? {
                    // Realtime clients of whoever held the account lose its auth (new tokenKey).
                    changes::record_after(tx, &c2, &rid, Action::Update, before, changes)?;
                }
                accounts::link(tx, &link_id, &c2, &rid, &p2, &uid)?;
                Ok(())
            })
            .await
            .map_err(ApiError::internal)?;
        return Ok((record_id, false));
    }
    if c.name == SUPERUSERS {
        return Err(ApiError::bad_request("Superusers cannot sign up with OAuth2."));
    }
    if c.create_rule.is_none() {
        return Err(ApiError::forbidden("The collection does not allow OAuth2 sign-ups."));
    }
    // The new record: createData as the client sent it (written with a guest's access, so a
    // `verified: true` there is refused as in PocketBase), the provider's email unless
    // createData has one, and what the provider knows, mapped as configured.
    let o = c.auth.clone().unwrap_or_default();
    let mut body = create_data;
    let client_email = body.get("email").and_then(Value::as_str).is_some_and(|e| !e.trim().is_empty());
    if !client_email && !user.email.is_empty() {
        body.insert("email".into(), Value::String(user.email.clone()));
    }
    for (field, value) in [(&o.oauth2.mapped_fields.name, &user.name), (&o.oauth2.mapped_fields.username, &user.username), (&o.oauth2.mapped_fields.id, &user.id)] {
        if !field.is_empty() && !value.is_empty() && c.field(field).is_some() {
            body.entry(field.clone()).or_insert(Value::String(value.clone()));
        }
    }
    let password = random::random_string(PASSWORD_ALPHABET, RANDOM_PASSWORD_CHARS).map_err(ApiError::internal)?;
    body.insert("password".into(), Value::String(password.clone()));
    body.insert("passwordConfirm".into(), Value::String(password.clone()));
    let mut hashes = write::Passwords::new();
    hashes.insert(password.clone(), state.passwords.hash(&password).await.map_err(ApiError::internal)?);
    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    let (c2, p2, uid) = (c.clone(), provider.name.clone(), user.id.clone());
    state.writes().before(Source::OAuth2, Action::Create, c, "", None, Some(body.clone())).await.map_err(super::records::refusal)?;
    let created = state
        .writes()
        .commit(Source::OAuth2, move |tx: &rusqlite::Transaction<'_>, changes: &mut Changes| -> Result<String, CrudError> {
            let mut requester = Requester { ctx: RequestContext::new(std::time::SystemTime::now()), superuser: false };
            requester.ctx.method = "POST".into();
            requester.ctx.context = "oauth2".into();
            let bytes = write::create(tx, &snap, &c2, &mut requester, body, Access::Default, &hashes, &Shape::default(), changes, write::Uploaded::default())?;
            let json: Value = serde_json::from_slice(&bytes).map_err(|_| CrudError::Refused("Failed to create record."))?;
            let id = json.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            // Verified only when the stored address is the one the provider verified (not
            // one the client put in createData).
            if let Some(email) = &trusted_email {
                accounts::verify_if_email(tx, &c2, &id, email)?;
                // The create event shows the record as committed, verified flag included.
                if let (Some(last), Some(columns)) = (changes.last_mut(), changes::capture(tx, &c2, &id)?) {
                    last.columns = columns;
                }
            }
            accounts::link(tx, &link_id, &c2, &id, &p2, &uid)?;
            Ok(id)
        })
        .await
        .map_err(|e| super::records::crud_error(e, "Failed to create record."))?;
    Ok((created, true))
}

/// Characters of the random passwords OAuth2 gives new and taken-over accounts.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The argon2 hash of a fresh random password nobody is told, and a fresh tokenKey.
async fn random_password_hash(state: &AppState) -> Result<(String, String), ApiError> {
    let password = random::random_string(PASSWORD_ALPHABET, RANDOM_PASSWORD_CHARS).map_err(ApiError::internal)?;
    let hash = state.passwords.hash(&password).await.map_err(ApiError::internal)?;
    Ok((hash, random::new_token_key().map_err(ApiError::internal)?))
}

// ---------------------------------------------------------------------------------------------
// `_externalAuths` through the records API, as the SDK's listExternalAuths/unlinkExternalAuth
// use it. Visible only to the record that owns the link (and to superusers).

/// `recordRef` and `provider` from the SDK's filters (`recordRef = "…"`, optionally
/// `&& provider = "…"`); anything else is not a filter this route understands.
fn parse_filter(filter: &str) -> Option<(String, Option<String>)> {
    let mut record = None;
    let mut provider = None;
    for part in filter.split("&&") {
        let (key, value) = part.split_once('=')?;
        // One quoted literal and nothing else.
        let value = value.trim();
        let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let inner = value.strip_prefix(quote)?.strip_suffix(quote)?;
        if inner.contains(['"', '\'', '\\']) {
            return None;
        }
        let value = inner.to_owned();
        match key.trim() {
            "recordRef" => record = Some(value),
            "provider" => provider = Some(value),
            _ => return None,
        }
    }
    Some((record?, provider))
}

/// `GET /api/collections/_externalAuths/records`
pub async fn list_external_auths(state: &AppState, req: &Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let Some(auth) = actor.auth() else {
        return Ok(json(StatusCode::OK, &json!({"page": 1, "perPage": 30, "totalItems": 0, "totalPages": 0, "items": []})));
    };
    let Some((record_id, provider)) = parse_filter(query.get("filter").unwrap_or_default()) else {
        return Err(ApiError::bad_request("Only recordRef and provider filters are supported on _externalAuths."));
    };
    let c = auth.collection.clone();
    let own = auth.id() == record_id;
    let items: Vec<Value> = if own || auth.is_superuser() {
        let collection = if own { Some(c) } else { None };
        let rid = record_id.clone();
        let rows = state
            .db
            .read(move |conn| -> Result<Vec<(String, [String; 5])>, DbError> {
                let mut out = Vec::new();
                match collection {
                    Some(c) => {
                        for l in accounts::links_of(conn, &c, &rid)? {
                            out.push((c.id.clone(), l));
                        }
                    }
                    None => {
                        let mut stmt = conn.prepare_cached(
                            "SELECT collectionRef, id, provider, providerId, created, updated FROM _externalAuths WHERE recordRef = ?1 ORDER BY created",
                        )?;
                        let found = stmt.query_map([&rid], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?])))?;
                        for f in found {
                            out.push(f?);
                        }
                    }
                }
                Ok(out)
            })
            .await
            .map_err(ApiError::internal)?;
        rows.into_iter()
            .filter(|(_, l)| provider.as_ref().is_none_or(|p| *p == l[1]))
            .map(|(collection_ref, [id, provider, provider_id, created, updated])| {
                json!({
                    "collectionId": EXTERNAL_AUTHS_ID, "collectionName": EXTERNAL_AUTHS, "id": id,
                    "collectionRef": collection_ref, "recordRef": record_id, "provider": provider,
                    "providerId": provider_id, "created": created, "updated": updated,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    // Everything fits on page 1 (a record has one link per provider); later pages are empty,
    // which is how the SDK's getFullList knows it is done.
    let page: u64 = query.get("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1);
    let per_page: u64 = query.get("perPage").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(30);
    let total = items.len();
    let items: Vec<Value> = if page == 1 { items.into_iter().take(usize::try_from(per_page).unwrap_or(usize::MAX)).collect() } else { Vec::new() };
    Ok(json(
        StatusCode::OK,
        &json!({"page": page, "perPage": per_page, "totalItems": total, "totalPages": if total == 0 { 0 } else { 1 }, "items": items}),
    ))
}

/// `DELETE /api/collections/_externalAuths/records/{id}`: unlinks, for the owner or a superuser.
pub async fn delete_external_auth(state: &AppState, id: &str, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let Some(auth) = actor.auth() else { return Err(ApiError::not_found()) };
    let (id, owner, owner_collection, superuser) = (id.to_owned(), auth.id().to_owned(), auth.collection.id.clone(), auth.is_superuser());
    let deleted = state
        .db
        .write(move |tx| -> Result<bool, DbError> {
            let n = tx
                .prepare_cached("DELETE FROM _externalAuths WHERE id = ?1 AND (?2 OR (recordRef = ?3 AND collectionRef = ?4))")?
                .execute(rusqlite::params![id, superuser, owner, owner_collection])?;
            Ok(n == 1)
        })
        .await
        .map_err(ApiError::internal)?;
    if !deleted {
        return Err(ApiError::not_found());
    }
    let mut res = json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
    res.headers_mut().remove(hyper::header::CONTENT_TYPE);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_filters_parse_and_nothing_else_does() {
        assert_eq!(parse_filter("recordRef = \"abc\""), Some(("abc".into(), None)));
        assert_eq!(parse_filter("recordRef = 'abc' && provider = 'oidc'"), Some(("abc".into(), Some("oidc".into()))));
        assert_eq!(parse_filter("provider = 'oidc'"), None, "recordRef is required");
        assert_eq!(parse_filter("recordRef != 'abc'"), None);
        assert_eq!(parse_filter("recordRef = 'a' || 1 = 1"), None);
    }
}

/// The realtime topic the SDK's all-in-one `authWithOAuth2()` waits on.
pub const OAUTH2_TOPIC: &str = "@oauth2";

/// `{state, code, error}` as the provider sent them (`error` left out when empty, as
/// PocketBase does).
#[derive(Debug, Default)]
struct RedirectData {
    state: String,
    code: String,
    error: String,
}

impl RedirectData {
    fn from_pairs<'a>(pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>) -> RedirectData {
        let mut d = RedirectData::default();
        for (k, v) in pairs {
            match k.as_ref() {
                "state" => d.state = v.into_owned(),
                "code" => d.code = v.into_owned(),
                "error" => d.error = v.into_owned(),
                _ => {}
            }
        }
        d
    }

    fn message(&self) -> Value {
        let mut m = Map::new();
        m.insert("state".into(), Value::String(self.state.clone()));
        m.insert("code".into(), Value::String(self.code.clone()));
        if !self.error.is_empty() {
            m.insert("error".into(), Value::String(self.error.clone()));
        }
        Value::Object(m)
    }
}

/// `GET /api/oauth2-redirect?code=…&state=…` (or a `form_post` POST, as Apple sends): the
/// provider's redirect back to vaultbase in the SDK's all-in-one OAuth2 flow. `state` is the
/// realtime client id the SDK subscribed to `@oauth2`; that client gets `{state, code, error}`
/// (and loses the subscription), then signs in with `auth-with-oauth2` itself. PocketBase
/// redirects the popup to its bundled UI's success or failure page; vaultbase bundles no UI, so
/// it answers with the page itself: 200 when the message went out and carried a code, 400
/// otherwise (503 when the worker holding the client did not answer).
pub async fn redirect(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let ip = crate::worker::http::client_ip::of_request(state, &req).await.parse().ok();
    let data = if req.method() == hyper::Method::POST {
        let content_type = req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        let Ok(bytes) = crate::worker::http::body::collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await else {
            return Ok(redirect_page(StatusCode::BAD_REQUEST));
        };
        if content_type.starts_with("application/json") {
            let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&bytes) else { return Ok(redirect_page(StatusCode::BAD_REQUEST)) };
            let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            RedirectData { state: text("state"), code: text("code"), error: text("error") }
        } else {
            RedirectData::from_pairs(form_urlencoded::parse(&bytes))
        }
    } else {
        RedirectData::from_pairs(form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()))
    };
    if data.state.is_empty() {
        return Ok(redirect_page(StatusCode::BAD_REQUEST));
    }
    let msg = ClientMessage { client_id: data.state.clone(), ip, topic: OAUTH2_TOPIC.to_owned(), data: data.message() };
    let status = match state.realtime.send_to_client(msg).await {
        Ok(()) if data.error.is_empty() && !data.code.is_empty() => StatusCode::OK,
        Ok(()) => StatusCode::BAD_REQUEST,
        Err(SubscribeError::Timeout(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(e @ (SubscribeError::NotFound | SubscribeError::OtherAddress | SubscribeError::AuthMismatch)) => {
            tracing::debug!(error = %e, "OAuth2 redirect for a missing or invalid realtime client");
            StatusCode::BAD_REQUEST
        }
    };
    Ok(redirect_page(status))
}

/// The page the provider's popup ends on.
fn redirect_page(status: StatusCode) -> Response<ResBody> {
    let (title, text) = match status {
        StatusCode::OK => ("Signed in", "Authentication completed. You can close this window and go back to the app."),
        StatusCode::SERVICE_UNAVAILABLE => ("Try again", "The server could not reach your session in time. Close this window and try again."),
        _ => ("Sign-in failed", "Authentication failed or was cancelled. Close this window and try again."),
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p><script>window.close()</script></body></html>"
    );
    let mut res = crate::worker::http::body::full(html);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    res
}
