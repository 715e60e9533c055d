//! The account flows of auth collections, PocketBase-compatible: request/confirm verification,
//! password reset and email change, OTP request and login, MFA, impersonation, login alerts,
//! the settings test mail, and the abuse limits on password attempts and mail requests.
//!
//! It owns the HTTP side of those flows: parsing, PocketBase's answers and status codes, and
//! the order of effects — a flow's database change commits first, mail goes out after, so a
//! dead mail server can never lose or half-apply an account change. It must not send mail
//! inside a write closure, must not answer differently (or measurably slower) for an unknown
//! email than for a known one where PocketBase answers the same, and must not compare secrets
//! with `==` (tokens are HMAC-verified, OTPs argon2-verified).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::shared::db::DbError;
use crate::worker::accounts::{self, Set};
use crate::worker::actor::{Actor, SUPERUSERS};
use crate::worker::auth::jwt::{self, Claims, TokenKind, TokenType};
use crate::worker::auth::random;
use crate::worker::http::body::{collect_limited, json, json_bytes, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::Query;
use crate::worker::limits::{self, Limit};
use crate::worker::hooks::mailer::{self, RecordMail, RecordMailKind};
use crate::worker::mail::{self, templates, Mail};
use crate::worker::app::observe::Source;
use crate::worker::records::changes::Changes;
use crate::worker::records::cache::Snapshot;
use crate::worker::records::crud::{self, CrudError, Requester, Shape};
use crate::worker::records::query::RequestContext;
use crate::worker::records::rows;
use crate::worker::records::values::Access;
use crate::worker::records::write;
use crate::worker::records::schema::collection::{AuthOptions, EmailTemplate};
use crate::worker::records::schema::{Collection, FieldKind};
use crate::worker::records::values::checks::is_email;
use crate::worker::state::AppState;

use super::record_auth::auth_collection;
use super::record_hooks;
use crate::worker::hooks::record_requests::{FlowDone, FlowNext, Reached};
use crate::worker::hooks::routes::{RouteRequest, RouteResponse};

const BAD_FORMAT: &str = "An error occurred while loading the submitted data.";
const VALIDATION: &str = "An error occurred while validating the submitted data.";
const TOO_MANY: &str = "Too Many Requests.";
/// PocketBase's `data.token` message for a token that is bad, expired, spent or for
/// another purpose.
const INVALID_TOKEN: &str = "Invalid or expired token.";
const INVALID_OTP: &str = "Invalid or expired OTP.";
const INVALID_MFA: &str = "Invalid or expired MFA session.";

/// The login method a factor was proven with (PocketBase's names, stored in `_mfas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Password,
    Otp,
    OAuth2,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Otp => "otp",
            Method::OAuth2 => "oauth2",
        }
    }
}

/// Where a request comes from: the client IP (the key of per-IP limits; behind a proxy, from
/// the `trustedProxy` headers) and its user agent (with the IP, the login fingerprint for
/// alerts).
#[derive(Debug, Clone)]
pub struct Origin {
    pub ip: String,
    pub user_agent: String,
}

/// The [`Origin`] of `req`. The future does not borrow `req` (it is read before any await).
pub fn origin_of(state: &AppState, req: &Request<Incoming>) -> impl std::future::Future<Output = Origin> + Send + 'static {
    let ip = crate::worker::http::client_ip::of_request(state, req);
    let user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    async move { Origin { ip: ip.await, user_agent } }
}

fn db_error(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::internal(e)
}

fn field_error(key: &str, code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert(key.into(), json!({"code": code, "message": message}));
    ApiError::validation(VALIDATION, data)
}

/// PocketBase's answer to a bad single-purpose token: a validation error on `token`.
fn invalid_token() -> ApiError {
    field_error("token", "validation_invalid_token", INVALID_TOKEN)
}

fn options(c: &Collection) -> AuthOptions {
    c.auth.clone().unwrap_or_default()
}

/// The write of a confirm flow, through the write pipeline: spends the single-use `token` and
/// sets `sets` on the auth record, under the tokenKey the token was checked against, in one
/// transaction, with what the flow's request hook changed on `e.record` (`hooked`; `failed`
/// is the message when those changes do not validate). `done_already` may find there is
/// nothing to do (answered as applied, the token not spent, the hook's changes not stored, as
/// PocketBase saves nothing then). `false`: the token was spent meanwhile, or the record's key
/// changed.
#[allow(clippy::too_many_arguments)]
async fn spend_and_update<F>(
    state: &AppState,
    c: &Arc<Collection>,
    record: &Map<String, Value>,
    claims: &Claims,
    token: String,
    sets: Vec<(&'static str, Set)>,
    hooked: HookWrites,
    failed: &'static str,
    done_already: F,
) -> Result<bool, ApiError>
where
    F: FnOnce(&rusqlite::Transaction<'_>, &Collection, &str, &str) -> rusqlite::Result<bool> + Send + 'static,
{
    let (c, id, key, exp) = (c.clone(), claims.id.clone(), str_of(record, "tokenKey").to_owned(), claims.exp);
    state
        .writes()
        .commit(Source::AccountFlow, move |tx: &rusqlite::Transaction<'_>, changes: &mut Changes| -> Result<bool, CrudError> {
            if done_already(tx, &c, &id, &key)? {
                return Ok(true);
            }
            if !accounts::spend_token(tx, &token, exp, jwt::unix_now())? {
                return Ok(false);
            }
            if !accounts::update_record(tx, &c, &id, &key, &sets, changes)? {
                return Ok(false);
            }
            hooked.write(tx, &c, &id, changes)?;
            Ok(true)
        })
        .await
        .map_err(|e| super::records::crud_error(e, failed))
}

/// Fields a hook's change to `e.record` in an account flow never writes: the id, the system
/// fields, and the secrets that need hashing or end sessions (a hook that wants those calls
/// `$app.save` itself).
const HOOK_UNWRITABLE_FIELDS: &[&str] =
    &["id", "collectionId", "collectionName", "created", "updated", "password", "passwordConfirm", "oldPassword", "tokenKey", "expand"];

/// What an account flow's request hook changed on `e.record` before `e.next()`, to store in
/// the flow's own transaction (PocketBase's default action saves `e.record`). The flow's own
/// fields win: its default action sets them after the handlers ran.
#[derive(Default)]
struct HookWrites {
    fields: Map<String, Value>,
    snap: Option<Arc<Snapshot>>,
}

impl HookWrites {
    async fn of(state: &AppState, mut changes: Map<String, Value>, own: &[&str]) -> Result<HookWrites, ApiError> {
        changes.retain(|k, _| !HOOK_UNWRITABLE_FIELDS.contains(&k.as_str()) && !own.contains(&k.as_str()));
        if changes.is_empty() {
            return Ok(HookWrites::default());
        }
        let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
        Ok(HookWrites { fields: changes, snap: Some(snap) })
    }

    /// Validates and stores the fields as `$app.save` would (a superuser's write, the model's
    /// checks), inside the caller's transaction: a field that does not validate rolls the
    /// whole flow back.
    fn write(self, tx: &rusqlite::Transaction<'_>, c: &Collection, id: &str, changes: &mut Changes) -> Result<(), CrudError> {
        let Some(snap) = self.snap.filter(|_| !self.fields.is_empty()) else { return Ok(()) };
        let mut requester = Requester { ctx: RequestContext::new(std::time::SystemTime::now()), superuser: true };
        write::update(tx, &snap, c, &mut requester, id, self.fields, Access::Superuser, &write::Passwords::new(), &Shape::default(), changes, write::Uploaded::default())?;
        Ok(())
    }
}

/// The answer PocketBase's confirm flows end with (`e.NoContent(204)`), as a chain writes it.
fn no_content_route() -> RouteResponse {
    RouteResponse { status: StatusCode::NO_CONTENT.as_u16(), headers: Vec::new(), body: Vec::new() }
}

/// What `e.record` is after `e.next()` in a flow run by [`gated_no_content`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The record as the flow stored it (the confirm flows save it).
    Stored,
    /// `e.record` as the handlers left it (the request flows only mail).
    AsLeft,
}

/// Runs `tail`, the rest of an account flow that answers 204, as the default action of `hook`
/// when a handler of it is registered (`head`): then code after `e.next()` runs once the flow
/// did its work (`after` says what `e.record` is then), as in PocketBase, and the chain's
/// answer is the flow's (or a handler's, or the error `e.next()` threw). Without one, `tail`
/// runs directly with nothing changed.
#[allow(clippy::too_many_arguments)]
async fn gated_no_content<F, Fut>(
    state: &AppState,
    c: &Arc<Collection>,
    head: Option<RouteRequest>,
    hook: &'static str,
    body: &Map<String, Value>,
    record: Map<String, Value>,
    extra: Map<String, Value>,
    after: After,
    tail: F,
) -> Result<Response<ResBody>, ApiError>
where
    F: FnOnce(Reached) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let Some(head) = head else {
        tail(Reached::default()).await?;
        return Ok(no_content());
    };
    let (state2, c2, id) = (state.clone(), c.clone(), str_of(&record, "id").to_owned());
    let next: FlowNext = Box::new(move |reached: Reached| {
        Box::pin(async move {
            tail(reached).await.map_err(record_hooks::flow_failure)?;
            let record = match after {
                After::Stored => load_record(&state2, &c2, id).await.map_err(record_hooks::flow_failure)?,
                After::AsLeft => None,
            };
            Ok(FlowDone::Answered { record, response: no_content_route() })
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
    });
    Ok(record_hooks::auth_gate_flow(state, c, head, hook, body, Some(record), extra, next).await)
}

/// `record` with what a request hook changed on `e.record` (what the request flows' default
/// action reads, as PocketBase's reads `e.record`).
fn with_changes(mut record: Map<String, Value>, changes: &Map<String, Value>) -> Map<String, Value> {
    for (k, v) in changes {
        record.insert(k.clone(), v.clone());
    }
    record
}

/// Sends `mail` on its own task and only logs the outcome: for flows whose answer must not
/// depend on whether (or how fast) mail went out, so it cannot tell which accounts exist.
/// The mail's hooks (`onMailerRecord…Send`, `onMailerSend`) run first, with `about`.
fn send_in_background(state: &AppState, mail: Mail, what: &'static str, about: RecordMail) {
    let state = state.clone();
    tokio::spawn(async move {
        let to = mail.to.clone();
        match mailer::send(&state, mail.into(), Some(about)).await {
            Ok(()) => tracing::info!(what, to = %to, "mail sent"),
            Err(e) => tracing::error!(what, to = %to, error = %e, "sending mail failed"),
        }
    });
}

fn no_content() -> Response<ResBody> {
    let mut res = json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
    res.headers_mut().remove(hyper::header::CONTENT_TYPE);
    res
}

/// A JSON object body; an empty body counts as `{}` (impersonate may be called without one).
async fn body_object(req: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let bytes = collect_limited(req.into_body(), DEFAULT_BODY_LIMIT_BYTES).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request(BAD_FORMAT)),
    }
}

fn text(body: &Map<String, Value>, key: &str) -> String {
    body.get(key).and_then(Value::as_str).unwrap_or_default().trim().to_owned()
}

/// The `email` of a request body: required and well-formed, else PocketBase's field errors.
fn email_field(body: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    let email = text(body, key);
    if email.is_empty() {
        return Err(field_error(key, "validation_required", "Cannot be blank."));
    }
    if !is_email(&email) {
        return Err(field_error(key, "validation_is_email", "Must be a valid email address."));
    }
    Ok(email)
}

async fn load_record(state: &AppState, c: &Arc<Collection>, id: String) -> Result<Option<Map<String, Value>>, ApiError> {
    let c = c.clone();
    state.db.read(move |conn| rows::load(conn, &c, &id).map_err(DbError::from)).await.map_err(db_error)
}

async fn record_by_email(state: &AppState, c: &Arc<Collection>, email: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    let (c2, email) = (c.clone(), email.to_owned());
    state
        .db
        .read(move |conn| -> Result<_, DbError> {
            match accounts::id_by_email(conn, &c2, &email)? {
                Some(id) => Ok(rows::load(conn, &c2, &id)?),
                None => Ok(None),
            }
        })
        .await
        .map_err(db_error)
}

/// Length of the random passwords the flows give accounts nobody may sign in to with the
/// old password any more, in characters.
const RANDOM_PASSWORD_CHARS: usize = 30;

/// The argon2 hash of a random password nobody is told, and a fresh tokenKey to go with it.
async fn random_password(state: &AppState) -> Result<(String, String), ApiError> {
    let password = random::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", RANDOM_PASSWORD_CHARS).map_err(ApiError::internal)?;
    let hash = state.passwords.hash(&password).await.map_err(ApiError::internal)?;
    Ok((hash, random::new_token_key().map_err(ApiError::internal)?))
}

fn str_of<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn is_verified(record: &Map<String, Value>) -> bool {
    record.get("verified").and_then(Value::as_bool).unwrap_or(false)
}

async fn template_vars(state: &AppState) -> templates::Vars {
    match state.settings.fresh(&state.db).await {
        Ok(loaded) => templates::Vars {
            app_name: loaded.settings.meta.app_name.clone(),
            app_url: loaded.settings.meta.app_url.clone(),
            ..Default::default()
        },
        Err(e) => {
            tracing::warn!(error = %e, "reading settings for a mail template failed; using blanks");
            templates::Vars::default()
        }
    }
}

/// A mail carrying a token link to the record's address (verification, password reset).
struct TokenMail<'a> {
    kind: RecordMailKind,
    ttl_secs: u64,
    template: &'a EmailTemplate,
    /// For the log of a failed send.
    what: &'static str,
}

impl TokenMail<'_> {
    /// Signs the token (`token_kind` of the address it goes to) and sends the mail in the
    /// background, through the mailer hooks.
    async fn send(self, state: &AppState, c: &Arc<Collection>, record: Map<String, Value>, token_kind: impl FnOnce(String) -> TokenKind) -> Result<(), ApiError> {
        let to = str_of(&record, "email").to_owned();
        let token = sign(state, c, &record, token_kind(to.clone()), self.ttl_secs)?;
        let mail = compose(state, self.template, &to, &token, "").await;
        let about = RecordMail { kind: self.kind, collection: c.clone(), record, meta: json!({"token": token}) };
        send_in_background(state, mail, self.what, about);
        Ok(())
    }
}

async fn compose(state: &AppState, template: &EmailTemplate, to: &str, token: &str, otp: &str) -> Mail {
    let mut vars = template_vars(state).await;
    vars.token = token.to_owned();
    vars.otp = otp.to_owned();
    let (subject, html) = templates::render(template, &vars);
    Mail { to: to.to_owned(), subject, html }
}

fn sign(state: &AppState, c: &Collection, record: &Map<String, Value>, kind: TokenKind, ttl_secs: u64) -> Result<String, ApiError> {
    let claims = Claims {
        id: str_of(record, "id").to_owned(),
        collection_id: c.id.clone(),
        kind,
        exp: jwt::expires_at(jwt::unix_now(), std::time::Duration::from_secs(ttl_secs)),
    };
    let collection_secret = crate::worker::actor::token_secret(c, claims.token_type());
    jwt::sign_for(&state.jwt_secret, collection_secret, &claims, str_of(record, "tokenKey")).map_err(ApiError::internal)
}

/// Verifies a single-purpose token of `c`: the record it names, with its claims. None for
/// anything wrong (shape, type, collection, signature, expiry, unknown record).
async fn verify_token(state: &AppState, c: &Arc<Collection>, token: &str, expected: TokenType) -> Result<Option<(Map<String, Value>, Claims)>, ApiError> {
    let now = jwt::unix_now();
    let Ok(peeked) = jwt::peek(token) else { return Ok(None) };
    if peeked.token_type != expected || peeked.collection_id != c.id || peeked.is_expired(now) {
        return Ok(None);
    }
    let Some(record) = load_record(state, c, peeked.id).await? else { return Ok(None) };
    let collection_secret = crate::worker::actor::token_secret(c, expected);
    match jwt::verify_for(&state.jwt_secret, collection_secret, token, expected, &c.id, str_of(&record, "tokenKey"), now) {
        Ok(claims) => Ok(Some((record, claims))),
        Err(_) => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

/// Counts one mail request from this IP (429 when over) and tells whether this account may get
/// another mail of `kind` now (false means: answer as usual, send nothing), charging the
/// account's allowance when it may. For a flow whose request hook ran already.
async fn mail_allowed(state: &AppState, c: &Collection, kind: &'static str, email: &str, origin: &Origin) -> Result<bool, ApiError> {
    Ok(mail_room(state, c, kind, email, origin).await? && charge_mail(state, c, kind, email).await?)
}

/// Counts one mail request from this IP (429 when over) and tells whether this account has
/// room for another mail of `kind`, without using it up: a request hook may still refuse the
/// request, and in PocketBase a refused request does not start the resend throttle (its
/// default action does). Then [`charge_mail`] once the mail is really going out.
async fn mail_room(state: &AppState, c: &Collection, kind: &'static str, email: &str, origin: &Origin) -> Result<bool, ApiError> {
    let cfg = state.settings.fresh(&state.db).await.map_err(db_error)?.settings.account_limits.clone();
    let ip_key = limits::ip_key("mail", &origin.ip);
    let account_key = limits::account_key(&format!("mail-{kind}"), &c.id, email);
    let now = jwt::unix_now();
    let (ip_ok, account_ok) = state
        .db
        .write(move |tx| -> Result<(bool, bool), DbError> {
            let ip_ok = limits::hit(tx, &ip_key, cfg.mail_per_ip, now)?;
            let account_ok = ip_ok && limits::has_room(tx, &account_key, cfg.mail_per_account, now)?;
            Ok((ip_ok, account_ok))
        })
        .await
        .map_err(db_error)?;
    if !ip_ok {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    if !account_ok {
        tracing::info!(kind, collection = %c.name, "mail to this account is throttled; not sending");
    }
    Ok(account_ok)
}

/// Uses one of this account's mails of `kind`: false when another request took the last one
/// meanwhile (then nothing is sent).
async fn charge_mail(state: &AppState, c: &Collection, kind: &'static str, email: &str) -> Result<bool, ApiError> {
    let cfg = state.settings.fresh(&state.db).await.map_err(db_error)?.settings.account_limits.clone();
    let account_key = limits::account_key(&format!("mail-{kind}"), &c.id, email);
    let now = jwt::unix_now();
    let ok = state.db.write(move |tx| limits::hit(tx, &account_key, cfg.mail_per_account, now).map_err(DbError::from)).await.map_err(db_error)?;
    if !ok {
        tracing::info!(kind, collection = %c.name, "mail to this account is throttled; not sending");
    }
    Ok(ok)
}

/// The counters a password attempt was charged to, to refund when it succeeds.
pub struct PasswordAttempt {
    keys: [String; 2],
}

/// Charges one password attempt to this IP, and to this identity from this IP, before any
/// password is checked; 429 when either is over its limit. Charged up front (not after a
/// failure) so that parallel attempts across workers cannot all slip under the limit before
/// any of them is counted. The identity's counter is per IP, so wrong guesses from elsewhere
/// never refuse the owner's right password.
pub async fn charge_password_attempt(state: &AppState, c: &Collection, identity: &str, origin: &Origin) -> Result<PasswordAttempt, ApiError> {
    let cfg = state.settings.fresh(&state.db).await.map_err(db_error)?.settings.account_limits.clone();
    let keys = [limits::ip_key("password", &origin.ip), limits::ip_account_key("password", &c.id, &origin.ip, identity)];
    let charged = keys.clone();
    let now = jwt::unix_now();
    let ok = state
        .db
        .write(move |tx| -> Result<bool, DbError> {
            let ip_ok = limits::hit(tx, &charged[0], cfg.password_per_ip, now)?;
            let account_ok = limits::hit(tx, &charged[1], cfg.password_per_account, now)?;
            Ok(ip_ok && account_ok)
        })
        .await
        .map_err(db_error)?;
    if !ok {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed authentication attempts, try again later."));
    }
    Ok(PasswordAttempt { keys })
}

impl PasswordAttempt {
    /// The password was right: the attempt was not an attack, so it does not count.
    pub async fn succeeded(self, state: &AppState) {
        let keys = self.keys;
        let refunded = state
            .db
            .write(move |tx| -> Result<(), DbError> {
                for k in &keys {
                    limits::refund(tx, k)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = refunded {
            tracing::warn!(error = %e, "refunding a successful password attempt failed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Completing an authentication: auth rule, MFA, login alert, response.

/// The `{token, record}` response with a fresh token of `ttl_secs` (the collection default
/// when None).
pub fn token_response(state: &AppState, c: &Collection, record: &Map<String, Value>, refreshable: bool, ttl_secs: Option<u64>, meta: Option<Value>) -> Result<Response<ResBody>, ApiError> {
    let ttl = ttl_secs.unwrap_or(options(c).auth_token.duration);
    let token = sign(state, c, record, TokenKind::Auth { refreshable }, ttl)?;
    let public = rows::public_auth_record(c, record, c.name == SUPERUSERS);
    let mut body = json!({"token": token, "record": public});
    if let Some(meta) = meta {
        body["meta"] = meta;
    }
    Ok(json(StatusCode::OK, &body))
}

/// Whether `rule` (the collection's authRule, or the MFA rule) admits `record`.
async fn rule_admits(state: &AppState, c: &Arc<Collection>, record: &Map<String, Value>, rule: Option<String>, method: &str) -> Result<bool, ApiError> {
    let requester = Requester::signing_in(c, record, method);
    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    let (c2, id) = (c.clone(), str_of(record, "id").to_owned());
    state
        .db
        .read(move |conn| match rule {
            None => crud::auth_rule_allows(conn, &snap, &c2, &requester, &id),
            Some(rule) => crud::passes(conn, &snap, &c2, &requester, &id, Some(&rule)),
        })
        .await
        .map_err(|e| super::records::crud_error(e, "Failed to authenticate."))
}

/// The authRule check every sign-in makes once its factor was proven: 403 unless the
/// collection's authRule admits `record` (as `@request.auth`, context `method`).
pub async fn require_auth_rule(state: &AppState, c: &Arc<Collection>, record: &Map<String, Value>, method: Method) -> Result<(), ApiError> {
    if rule_admits(state, c, record, None, method.as_str()).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden("The request doesn't satisfy the collection requirements to authenticate."))
    }
}

/// How a sign-in ended once its factor was proven ([`complete_auth_steps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Another factor is needed: answer 401 `{"mfaId"}` (the SDK reads it from the body).
    Mfa(String),
    /// Signed in: answer the token and the record.
    SignedIn,
}

/// The answer of a sign-in that ended as `completed`: the MFA 401, or `{token, record, meta?}`
/// (through `onRecordAuthRequest` / `onRecordEnrich` when such a hook fires).
pub async fn answer_completed(
    state: &AppState,
    c: &Arc<Collection>,
    record: Map<String, Value>,
    method: Method,
    origin: &Origin,
    meta: Option<Value>,
    completed: Completed,
) -> Result<Response<ResBody>, ApiError> {
    let mfa = match completed {
        Completed::Mfa(id) => Some(id),
        Completed::SignedIn => None,
    };
    // pb_hooks: onRecordAuthRequest / onRecordEnrich take part in the answer when registered
    // (for an MFA step too: PocketBase's onRecordAuthRequest default action answers its 401).
    if let Some(res) = super::record_hooks::auth_answer(state, c, &record, method.as_str(), origin, meta.clone(), mfa.clone()).await? {
        return Ok(res);
    }
    if let Some(id) = mfa {
        // Not the error envelope: the SDK reads `mfaId` from the 401 body itself.
        return Ok(json(StatusCode::UNAUTHORIZED, &json!({"mfaId": id})));
    }
    token_response(state, c, &record, true, None, meta)
}

/// The steps of a sign-in once its factor was proven (the caller has checked the authRule
/// where it applies), before its answer ([`answer_completed`]): the MFA step (which may end
/// the sign-in with [`Completed::Mfa`]), then the login alert and the sign-in webhook event.
pub async fn complete_auth_steps(
    state: &AppState,
    c: &Arc<Collection>,
    record: &Map<String, Value>,
    method: Method,
    mfa_id: Option<String>,
    origin: &Origin,
) -> Result<Completed, ApiError> {
    let o = options(c);
    let record_id = str_of(record, "id").to_owned();
    let mfa_rule = (!o.mfa.rule.trim().is_empty()).then(|| o.mfa.rule.clone());
    let needs_mfa = o.mfa.enabled
        && match mfa_rule {
            None => true,
            Some(rule) => rule_admits(state, c, record, Some(rule), method.as_str()).await?,
        };
    if needs_mfa {
        let now = jwt::unix_now();
        match mfa_id.filter(|m| !m.is_empty()) {
            None => {
                let id = random::new_id().map_err(ApiError::internal)?;
                let expires = now.saturating_add(i64::try_from(o.mfa.duration).unwrap_or(i64::MAX));
                let (c2, id2, rid) = (c.clone(), id.clone(), record_id.clone());
                state
                    .db
                    .write(move |tx| accounts::insert_mfa(tx, &id2, &c2, &rid, method.as_str(), expires, now).map_err(DbError::from))
                    .await
                    .map_err(db_error)?;
                return Ok(Completed::Mfa(id));
            }
            Some(mfa_id) => {
                let (c2, id2) = (c.clone(), mfa_id.clone());
                let row = state
                    .db
                    .read(move |conn| accounts::load_mfa(conn, &c2, &id2).map_err(DbError::from))
                    .await
                    .map_err(db_error)?;
                let Some(row) = row.filter(|r| r.record_id == record_id && r.expires > now) else {
                    return Err(ApiError::bad_request(INVALID_MFA));
                };
                if row.method == method.as_str() {
                    return Err(ApiError::bad_request("A different authentication method is required."));
                }
                let deleted = state.db.write(move |tx| accounts::delete_mfa(tx, &mfa_id).map_err(DbError::from)).await.map_err(db_error)?;
                if !deleted {
                    return Err(ApiError::bad_request(INVALID_MFA));
                }
            }
        }
    }
    if o.auth_alert.enabled {
        login_alert(state, c, record, origin, &o.auth_alert.email_template).await;
    }
    crate::worker::jobs::webhooks::auth_event(state, &c.name, rows::public_auth_record(c, record, false), method.as_str()).await;
    Ok(Completed::SignedIn)
}

/// Remembers this login's origin and, when it is new for a record that has logged in before,
/// mails an alert after the commit. Never fails the login: a problem here is only logged.
async fn login_alert(state: &AppState, c: &Arc<Collection>, record: &Map<String, Value>, origin: &Origin, template: &EmailTemplate) {
    let fingerprint = accounts::sha256_hex(&format!("{}\n{}", origin.ip, origin.user_agent));
    let Ok(id) = random::new_id() else { return };
    let (c2, rid) = (c.clone(), str_of(record, "id").to_owned());
    let fresh = state
        .db
        .write(move |tx| accounts::note_origin(tx, &id, &c2, &rid, &fingerprint).map_err(DbError::from))
        .await;
    match fresh {
        Ok(true) if mail::enabled(&state.settings, &state.db).await => {
            let mail = compose(state, template, str_of(record, "email"), "", "").await;
            let about = RecordMail { kind: RecordMailKind::AuthAlert, collection: c.clone(), record: record.clone(), meta: json!({}) };
            send_in_background(state, mail, "login alert", about);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "recording the login origin failed"),
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

/// `POST request-verification`: 204 whatever the email (no enumeration); mail goes out in the
/// background for an existing, unverified account.
pub async fn request_verification(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = origin_of(state, &req).await;
    let head = record_hooks::hooked_head(state, &c, &req, "onRecordRequestVerificationRequest").await;
    let body = body_object(req).await?;
    let email = email_field(&body, "email")?;
    if c.name == SUPERUSERS {
        return Err(ApiError::bad_request("Superusers are always verified."));
    }
    // A throttled account gets its 204 before the hook, as PocketBase's resend throttle.
    if !mail_room(state, &c, "verification", &email, &origin).await? {
        return Ok(no_content());
    }
    // An unknown address gets its 204 without the hook, as in PocketBase (so with such a
    // hook a known address answers later by the hook's run time, as there).
    let Some(record) = record_by_email(state, &c, &email).await? else { return Ok(no_content()) };
    // pb_hooks: onRecordRequestVerificationRequest (`e.record`, verified or not); its default
    // action mails an unverified record (as the handlers left `e.record`) and answers 204.
    let (st, c2, rec) = (state.clone(), c.clone(), record.clone());
    gated_no_content(state, &c, head, "onRecordRequestVerificationRequest", &body, record, Map::new(), After::AsLeft, move |reached| async move {
        let (state, c) = (&st, &c2);
        let record = with_changes(rec, &reached.changes);
        // Only a mail that goes out uses up the account's allowance (not a request a hook
        // refused, nor one for a verified account), as in PocketBase.
        if is_verified(&record) || !charge_mail(state, c, "verification", &email).await? {
            return Ok(());
        }
        let o = options(c);
        let link = TokenMail { kind: RecordMailKind::Verification, ttl_secs: o.verification_token.duration, template: &o.verification_template, what: "verification" };
        link.send(state, c, record, |email| TokenKind::Verification { email }).await
    })
    .await
}

/// `POST confirm-verification`. As in PocketBase, confirming an account that is already
/// verified (the same token again, say) answers 204 and changes nothing.
pub async fn confirm_verification(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let head = record_hooks::hooked_head(state, &c, &req, "onRecordConfirmVerificationRequest").await;
    let body = body_object(req).await?;
    let token = text(&body, "token");
    if token.is_empty() {
        return Err(field_error("token", "validation_required", "Cannot be blank."));
    }
    if jwt::peek(&token).is_err() {
        // Not a token at all, so it has no email claim (PocketBase's first check).
        return Err(field_error("token", "validation_invalid_token_claims", "Missing email token claim."));
    }
    let Some((record, claims)) = verify_token(state, &c, &token, TokenType::Verification).await? else {
        return Err(invalid_token());
    };
    let TokenKind::Verification { email } = &claims.kind else { return Err(invalid_token()) };
    if !email.eq_ignore_ascii_case(str_of(&record, "email")) {
        return Err(invalid_token());
    }
    // pb_hooks: onRecordConfirmVerificationRequest (`e.record`) once the token is proven; its
    // default action is the rest of the flow. What a handler changes on `e.record` before
    // `e.next()` is stored with the verified state (not when the record was verified already:
    // then nothing is saved, as in PocketBase); after `e.next()` `e.record` is as stored.
    let (st, c2, rec) = (state.clone(), c.clone(), record.clone());
    gated_no_content(state, &c, head, "onRecordConfirmVerificationRequest", &body, record, Map::new(), After::Stored, move |reached| async move {
        let (state, c, record) = (&st, &c2, &rec);
        let hooked = HookWrites::of(state, reached.changes, &["verified"]).await?;
        // With password auth off, the password the account was registered with must not
        // survive the proof of the mailbox (PocketBase): a random one, and a new tokenKey,
        // which ends every session of whoever registered it.
        let reset_password = if !options(c).password_auth.enabled && !is_verified(record) { Some(random_password(state).await?) } else { None };
        let mut sets = vec![("verified", Set::Bool(true))];
        if let Some((hash, new_key)) = reset_password {
            sets.push(("password", Set::Text(hash)));
            sets.push(("tokenKey", Set::Text(new_key)));
        }
        // Already verified (under the key the token was checked against): nothing to do, and
        // the token is not spent by a no-op.
        let already = |tx: &rusqlite::Transaction<'_>, c: &Collection, id: &str, key: &str| -> rusqlite::Result<bool> {
            Ok(accounts::verified_under_key(tx, c, id, key)? == Some(true))
        };
        let applied = spend_and_update(state, c, record, &claims, token, sets, hooked, "An error occurred while saving the verified state.", already).await?;
        if !applied {
            return Err(invalid_token());
        }
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Password reset

/// `POST request-password-reset`: 204 whatever the email; mail in the background.
pub async fn request_password_reset(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = origin_of(state, &req).await;
    let head = record_hooks::hooked_head(state, &c, &req, "onRecordRequestPasswordResetRequest").await;
    let body = body_object(req).await?;
    let email = email_field(&body, "email")?;
    let o = options(&c);
    if !o.password_auth.enabled {
        return Err(ApiError::bad_request("The collection is not configured to allow password authentication."));
    }
    // A throttled account gets its 204 before the hook, as PocketBase's resend throttle.
    if !mail_room(state, &c, "password-reset", &email, &origin).await? {
        return Ok(no_content());
    }
    // An unknown address gets its 204 without the hook, as in PocketBase.
    let Some(record) = record_by_email(state, &c, &email).await? else { return Ok(no_content()) };
    // pb_hooks: onRecordRequestPasswordResetRequest (`e.record`); its default action mails (to
    // `e.record` as the handlers left it) and answers 204.
    let (st, c2, rec) = (state.clone(), c.clone(), record.clone());
    gated_no_content(state, &c, head, "onRecordRequestPasswordResetRequest", &body, record, Map::new(), After::AsLeft, move |reached| async move {
        let (state, c) = (&st, &c2);
        let record = with_changes(rec, &reached.changes);
        // Only a mail that goes out uses up the account's allowance, as in PocketBase.
        if !charge_mail(state, c, "password-reset", &email).await? {
            return Ok(());
        }
        let link = TokenMail { kind: RecordMailKind::PasswordReset, ttl_secs: o.password_reset_token.duration, template: &o.reset_password_template, what: "password reset" };
        link.send(state, c, record, |email| TokenKind::PasswordReset { email }).await
    })
    .await
}

/// The collection's password rules applied to a new password, as field errors.
fn check_new_password(c: &Collection, body: &Map<String, Value>) -> Result<String, Map<String, Value>> {
    let password = body.get("password").and_then(Value::as_str).unwrap_or_default().to_owned();
    let confirm = body.get("passwordConfirm").and_then(Value::as_str).unwrap_or_default();
    let mut data = Map::new();
    let (min, max, pattern) = match c.field("password").map(|f| &f.kind) {
        Some(FieldKind::Password(p)) => (p.min as usize, p.max as usize, p.pattern.clone()),
        _ => (crate::worker::auth::password::PASSWORD_MIN_CHARS_DEFAULT, 0, String::new()),
    };
    if password.is_empty() {
        data.insert("password".into(), json!({"code": "validation_required", "message": "Cannot be blank."}));
    } else if !crate::worker::auth::password::length_ok(&password, min, max) {
        let max = if max == 0 { crate::worker::auth::password::PASSWORD_MAX_CHARS_LIMIT } else { max };
        data.insert(
            "password".into(),
            json!({"code": "validation_length_out_of_range", "message": format!("The length must be between {min} and {max}.")}),
        );
    } else if !pattern.is_empty() && !regex::Regex::new(&pattern).map(|r| r.is_match(&password)).unwrap_or(true) {
        data.insert("password".into(), json!({"code": "validation_invalid_format", "message": "Invalid value format."}));
    }
    if confirm.is_empty() {
        data.insert("passwordConfirm".into(), json!({"code": "validation_required", "message": "Cannot be blank."}));
    } else if confirm != password {
        data.insert("passwordConfirm".into(), json!({"code": "validation_values_mismatch", "message": "Values don't match."}));
    }
    if !data.is_empty() {
        return Err(data);
    }
    Ok(password)
}

/// `POST confirm-password-reset`: sets the new password (which rotates the tokenKey, so every
/// older token of the record, this one included, stops working).
pub async fn confirm_password_reset(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let head = record_hooks::hooked_head(state, &c, &req, "onRecordConfirmPasswordResetRequest").await;
    let body = body_object(req).await?;
    let token = text(&body, "token");
    if token.is_empty() {
        return Err(field_error("token", "validation_required", "Cannot be blank."));
    }
    // Token and password errors are reported together, as PocketBase validates the form.
    let checked = check_new_password(&c, &body);
    let verified = verify_token(state, &c, &token, TokenType::PasswordReset)
        .await?
        .filter(|(_, claims)| matches!(claims.kind, TokenKind::PasswordReset { .. }));
    let (password, (record, claims)) = match (checked, verified) {
        (Ok(password), Some(found)) => (password, found),
        (checked, found) => {
            let mut data = checked.err().unwrap_or_default();
            if found.is_none() {
                data.insert("token".into(), json!({"code": "validation_invalid_token", "message": INVALID_TOKEN}));
            }
            return Err(ApiError::validation(VALIDATION, data));
        }
    };
    let TokenKind::PasswordReset { email } = &claims.kind else { return Err(invalid_token()) };
    let verify_too = email.eq_ignore_ascii_case(str_of(&record, "email"));
    // pb_hooks: onRecordConfirmPasswordResetRequest (`e.record`) once the token and the new
    // password are checked; its default action is the rest of the flow. What a handler changes
    // on `e.record` before `e.next()` is stored with the password; after it `e.record` is as
    // stored (the new password validates).
    let (st, c2, rec) = (state.clone(), c.clone(), record.clone());
    gated_no_content(state, &c, head, "onRecordConfirmPasswordResetRequest", &body, record, Map::new(), After::Stored, move |reached| async move {
        let (state, c, record) = (&st, &c2, &rec);
        let hooked = HookWrites::of(state, reached.changes, if verify_too { &["verified"] } else { &[] }).await?;
        let hash = state.passwords.hash(&password).await.map_err(ApiError::internal)?;
        let new_key = random::new_token_key().map_err(ApiError::internal)?;
        let mut sets = vec![("password", Set::Text(hash)), ("tokenKey", Set::Text(new_key))];
        if verify_too {
            sets.push(("verified", Set::Bool(true)));
        }
        let never_done = |_: &rusqlite::Transaction<'_>, _: &Collection, _: &str, _: &str| Ok(false);
        let applied = spend_and_update(state, c, record, &claims, token, sets, hooked, "Failed to set new password.", never_done).await?;
        if !applied {
            return Err(invalid_token());
        }
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Email change

/// `POST request-email-change` (auth of this collection required). The user asked for this
/// mail and the answer cannot reveal anything new to them, so it is sent before answering and
/// a mail failure is a clear 400.
pub async fn request_email_change(state: &AppState, collection: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let Some(auth) = actor.auth() else {
        return Err(ApiError::unauthorized("The request requires valid record authorization token."));
    };
    if auth.collection.id != c.id {
        return Err(ApiError::forbidden("The authorized record is not allowed to perform this action."));
    }
    if c.name == SUPERUSERS {
        return Err(ApiError::bad_request("Superusers change their email directly."));
    }
    let origin = origin_of(state, &req).await;
    let head = record_hooks::hooked_head_as(state, &c, &req, "onRecordRequestEmailChangeRequest", actor).await;
    let body = body_object(req).await?;
    let new_email = email_field(&body, "newEmail")?;
    let current = str_of(&auth.record, "email").to_owned();
    let (c2, e2, id) = (c.clone(), new_email.clone(), auth.id().to_owned());
    let taken = state
        .db
        .read(move |conn| accounts::email_taken(conn, &c2, &e2, &id).map_err(DbError::from))
        .await
        .map_err(db_error)?;
    if taken || new_email.eq_ignore_ascii_case(&current) {
        return Err(field_error("newEmail", "validation_invalid_new_email", "Invalid new email address."));
    }
    // pb_hooks: onRecordRequestEmailChangeRequest (`e.record` the signed-in record,
    // `e.newEmail`, which a handler may replace) before the mail; its default action mails
    // the confirmation to `e.newEmail` and answers 204.
    let mut new_email = new_email;
    if head.is_some() {
        let extra = Map::from_iter([("newEmail".to_owned(), Value::String(new_email.clone()))]);
        match record_hooks::auth_gate_record(state, &c, head, "onRecordRequestEmailChangeRequest", &body, Some(auth.record.clone()), extra).await {
            Ok(passed) => {
                if let Some(e) = passed.extra.get("newEmail").and_then(Value::as_str) {
                    new_email = e.trim().to_owned();
                }
            }
            Err(answer) => return Ok(answer),
        }
        if !is_email(&new_email) {
            return Err(ApiError::bad_request("Failed to request email change."));
        }
    }
    if !mail_allowed(state, &c, "email-change", &current, &origin).await? {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    let o = options(&c);
    let kind = TokenKind::EmailChange { email: current, new_email: new_email.clone() };
    let token = sign(state, &c, &auth.record, kind, o.email_change_token.duration)?;
    let mail = compose(state, &o.confirm_email_change_template, &new_email, &token, "").await;
    let about = RecordMail {
        kind: RecordMailKind::EmailChange,
        collection: c.clone(),
        record: auth.record.clone(),
        meta: json!({"token": token, "newEmail": new_email}),
    };
    if let Err(e) = mailer::send(state, mail.into(), Some(about)).await {
        tracing::error!(what = "email change", error = %e, "sending mail failed");
        return Err(ApiError::bad_request("Failed to request email change."));
    }
    Ok(no_content())
}

/// `POST confirm-email-change`: needs the token and the account's password (an attempt
/// counted by the password limits, like a login).
pub async fn confirm_email_change(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = origin_of(state, &req).await;
    let head = record_hooks::hooked_head(state, &c, &req, "onRecordConfirmEmailChangeRequest").await;
    let body = body_object(req).await?;
    let token = text(&body, "token");
    let password = body.get("password").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut missing = Map::new();
    for (k, v) in [("token", &token), ("password", &password)] {
        if v.is_empty() {
            missing.insert(k.into(), json!({"code": "validation_required", "message": "Cannot be blank."}));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(VALIDATION, missing));
    }
    let Some((record, claims)) = verify_token(state, &c, &token, TokenType::EmailChange).await? else {
        return Err(bad_email_change_token());
    };
    let TokenKind::EmailChange { email, new_email } = claims.kind.clone() else {
        return Err(bad_email_change_token());
    };
    if !email.eq_ignore_ascii_case(str_of(&record, "email")) {
        return Err(bad_email_change_token());
    }
    let attempt = charge_password_attempt(state, &c, str_of(&record, "email"), &origin).await?;
    let hash = str_of(&record, "password").to_owned();
    if !state.passwords.verify_or_dummy(Some(hash), &password).await {
        return Err(field_error("password", "validation_invalid_password", "Missing or invalid auth record password."));
    }
    attempt.succeeded(state).await;
    // pb_hooks: onRecordConfirmEmailChangeRequest (`e.record`, `e.newEmail`, which a handler
    // may replace) once the token and the password are proven; its default action is the rest
    // of the flow. What a handler changes on `e.record` before `e.next()` is stored with the
    // new email; after it `e.record` is as stored.
    let extra = Map::from_iter([("newEmail".to_owned(), Value::String(new_email.clone()))]);
    let (st, c2) = (state.clone(), c.clone());
    gated_no_content(state, &c, head, "onRecordConfirmEmailChangeRequest", &body, record.clone(), extra, After::Stored, move |reached| async move {
        let (state, c) = (&st, &c2);
        let new_email = match reached.extra.get("newEmail").and_then(Value::as_str).map(str::trim).filter(|e| is_email(e)) {
            Some(e) => e.to_owned(),
            None => new_email,
        };
        let hooked = HookWrites::of(state, reached.changes, &["email", "verified"]).await?;
        let new_key = random::new_token_key().map_err(ApiError::internal)?;
        let (c2, id, key, exp) = (c.clone(), claims.id.clone(), str_of(&record, "tokenKey").to_owned(), claims.exp);
        let outcome = state
            .writes()
            .commit(Source::AccountFlow, move |tx: &rusqlite::Transaction<'_>, changes: &mut Changes| -> Result<Result<(), &'static str>, CrudError> {
                if accounts::email_taken(tx, &c2, &new_email, &id)? {
                    return Ok(Err("taken"));
                }
                if !accounts::spend_token(tx, &token, exp, jwt::unix_now())? {
                    return Ok(Err("spent"));
                }
                let sets = [("email", Set::Text(new_email)), ("verified", Set::Bool(true)), ("tokenKey", Set::Text(new_key))];
                if !accounts::update_record(tx, &c2, &id, &key, &sets, changes)? {
                    return Ok(Err("changed"));
                }
                hooked.write(tx, &c2, &id, changes)?;
                Ok(Ok(()))
            })
            .await
            .map_err(|e| super::records::crud_error(e, "Failed to confirm email change."))?;
        match outcome {
            Ok(()) => Ok(()),
            Err("taken") => Err(field_error("newEmail", "validation_invalid_new_email", "Invalid new email address.")),
            Err(_) => Err(bad_email_change_token()),
        }
    })
    .await
}

/// A bad token of `confirm-email-change`: PocketBase cannot check the password without the
/// token's record, so it fails both fields.
fn bad_email_change_token() -> ApiError {
    let mut data = Map::new();
    data.insert("token".into(), json!({"code": "validation_invalid_token", "message": INVALID_TOKEN}));
    data.insert("password".into(), json!({"code": "validation_invalid_password", "message": "Missing or invalid auth record password."}));
    ApiError::validation(VALIDATION, data)
}

// ---------------------------------------------------------------------------------------------
// OTP

/// `POST request-otp`: 200 `{otpId}`; an unknown email gets a fake id after the same work.
pub async fn request_otp(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = origin_of(state, &req).await;
    let head = super::record_hooks::hooked_head(state, &c, &req, "onRecordRequestOTPRequest").await;
    let body = body_object(req).await?;
    let email = email_field(&body, "email")?;
    let o = options(&c);
    if !o.otp.enabled {
        return Err(ApiError::forbidden("The collection is not configured to allow OTP authentication."));
    }
    // The per-IP limit first: a refused request must not cost an argon2 hash, or one client
    // could keep the shared password pool busy with requests that are refused anyway.
    // The account's allowance is used only once the OTP goes out (below): a request a hook
    // refuses stores and sends nothing, so it must not count (PocketBase counts stored OTPs).
    let allowed = mail_room(state, &c, "otp", &email, &origin).await?;
    let otp_id = random::new_id().map_err(ApiError::internal)?;
    let digits = usize::try_from(o.otp.length.clamp(4, 32)).unwrap_or(8);
    let code = random::random_string(b"0123456789", digits).map_err(ApiError::internal)?;
    // Hashed whether or not the account exists (or its mails are throttled): the answer takes
    // the same time either way.
    let hash = state.passwords.hash(&code).await.map_err(ApiError::internal)?;
    let record = record_by_email(state, &c, &email).await?;
    let answer = json!({"otpId": otp_id});
    let pending = PendingOtp { state: state.clone(), c: c.clone(), email, record: record.clone(), allowed, otp_id, code, hash };
    // pb_hooks: onRecordRequestOTPRequest (`e.record`, null for an unknown address, and
    // `e.password`, the code, which a handler may replace); its default action stores and
    // mails the OTP and answers, so code after `e.next()` finds the stored OTP.
    let Some(head) = head else {
        pending.send(None).await?;
        return Ok(json(StatusCode::OK, &answer));
    };
    let extra = Map::from_iter([("password".to_owned(), Value::String(pending.code.clone()))]);
    let next: FlowNext = Box::new(move |reached: Reached| {
        Box::pin(async move {
            let replaced = reached.extra.get("password").and_then(Value::as_str).map(str::to_owned);
            pending.send(replaced).await.map_err(record_hooks::flow_failure)?;
            let response = RouteResponse {
                status: StatusCode::OK.as_u16(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: answer.to_string().into_bytes(),
            };
            Ok(FlowDone::Answered { record: None, response })
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
    });
    Ok(record_hooks::auth_gate_flow(state, &c, head, "onRecordRequestOTPRequest", &body, record, extra, next).await)
}

/// An OTP `request-otp` made: stored and mailed by [`PendingOtp::send`] (the request's
/// default action).
struct PendingOtp {
    state: AppState,
    c: Arc<Collection>,
    email: String,
    /// The account with that address, if any.
    record: Option<Map<String, Value>>,
    /// Whether the account had room for another OTP mail before the hook.
    allowed: bool,
    otp_id: String,
    code: String,
    hash: String,
}

impl PendingOtp {
    /// Stores the OTP (with `replaced`, a code a hook put in `e.password`, if any) and mails
    /// it — unless there is no such account or its mails are throttled: then nothing, and
    /// the answer is the same.
    async fn send(self, replaced: Option<String>) -> Result<(), ApiError> {
        let PendingOtp { state, c, email, record, allowed, otp_id, mut code, mut hash } = self;
        let state = &state;
        if let Some(p) = replaced.filter(|p| !p.is_empty() && *p != code) {
            code = p;
            hash = state.passwords.hash(&code).await.map_err(ApiError::internal)?;
        }
        let Some(record) = record.filter(|_| allowed) else { return Ok(()) };
        if !charge_mail(state, &c, "otp", &email).await? {
            return Ok(());
        }
        let o = options(&c);
        let to = str_of(&record, "email").to_owned();
        let now = jwt::unix_now();
        let row = accounts::OtpRow {
            record_id: str_of(&record, "id").to_owned(),
            hash,
            sent_to: to.clone(),
            expires: now.saturating_add(i64::try_from(o.otp.duration).unwrap_or(i64::MAX)),
        };
        let (c2, id2) = (c.clone(), otp_id.clone());
        state
            .db
            .write(move |tx| accounts::insert_otp(tx, &id2, &c2, &row, now).map_err(DbError::from))
            .await
            .map_err(db_error)?;
        let mail = compose(state, &o.otp.email_template, &to, "", &code).await;
        let about = RecordMail { kind: RecordMailKind::Otp, collection: c.clone(), record, meta: json!({"otpId": otp_id, "password": code}) };
        send_in_background(state, mail, "otp", about);
        Ok(())
    }
}

/// `POST auth-with-otp`
pub async fn auth_with_otp(state: &AppState, collection: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let origin = origin_of(state, &req).await;
    let query_mfa = Query::parse(req.uri().query()).get("mfaId").map(str::to_owned);
    let head = super::record_hooks::hooked_head(state, &c, &req, "onRecordAuthWithOTPRequest").await;
    let body = body_object(req).await?;
    let (otp_id, password) = (text(&body, "otpId"), text(&body, "password"));
    let mut missing = Map::new();
    for (k, v) in [("otpId", &otp_id), ("password", &password)] {
        if v.is_empty() {
            missing.insert(k.into(), json!({"code": "validation_required", "message": "Cannot be blank."}));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(VALIDATION, missing));
    }
    let o = options(&c);
    if !o.otp.enabled {
        return Err(ApiError::forbidden("The collection is not configured to allow OTP authentication."));
    }
    let key = format!("otp-attempt:{}:{otp_id}", c.id);
    let now = jwt::unix_now();
    let attempt_ok = state
        .db
        .write(move |tx| {
            limits::hit(tx, &key, Limit { max: limits::OTP_ATTEMPTS_MAX, duration: limits::OTP_ATTEMPTS_WINDOW_SECS }, now).map_err(DbError::from)
        })
        .await
        .map_err(db_error)?;
    if !attempt_ok {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    let (c2, id2) = (c.clone(), otp_id.clone());
    let row = state.db.read(move |conn| accounts::load_otp(conn, &c2, &id2).map_err(DbError::from)).await.map_err(db_error)?;
    let live = row.filter(|r| r.expires > now);
    let hash = live.as_ref().map(|r| r.hash.clone());
    // Unknown and expired ids cost the same argon2 work as a wrong code.
    if !state.passwords.verify_or_dummy(hash, &password).await {
        return Err(ApiError::bad_request(INVALID_OTP));
    }
    let Some(row) = live else { return Err(ApiError::bad_request(INVALID_OTP)) };
    let Some(record) = load_record(state, &c, row.record_id.clone()).await? else {
        return Err(ApiError::bad_request(INVALID_OTP));
    };
    let mfa_id = query_mfa.or_else(|| body.get("mfaId").and_then(Value::as_str).map(str::to_owned));
    let sign_in = OtpSignIn { state: state.clone(), c: c.clone(), otp_id, sent_to: row.sent_to.clone(), record: record.clone(), mfa_id, origin: origin.clone() };
    // pb_hooks: onRecordAuthWithOTPRequest (`e.record`, `e.otp`) once the code is proven; its
    // default action is the rest of the sign-in (the OTP spent, the mailbox verified, the
    // answer), so code after `e.next()` sees `e.record` as stored.
    let Some(head) = head else {
        let (record, completed) = sign_in.finish().await?;
        return answer_completed(state, &c, record, Method::Otp, &origin, None, completed).await;
    };
    let otp = json!({"id": sign_in.otp_id, "collectionRef": c.id, "recordRef": row.record_id, "sentTo": row.sent_to});
    let extra = Map::from_iter([("otp".to_owned(), otp)]);
    let next: FlowNext = Box::new(move |_reached: Reached| {
        Box::pin(async move {
            let (record, completed) = sign_in.finish().await.map_err(record_hooks::flow_failure)?;
            sign_in_done(&sign_in.state, &sign_in.c, record, Method::Otp, None, completed).map_err(record_hooks::flow_failure)
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
    });
    Ok(record_hooks::auth_gate_flow(state, &c, head, "onRecordAuthWithOTPRequest", &body, Some(record), extra, next).await)
}

/// What a gated sign-in's default action hands back once the sign-in `completed`: the record
/// and its token for the chain to answer with through `onRecordAuthRequest` — its 401
/// `{mfaId}` when another factor is needed, as PocketBase's.
pub fn sign_in_done(state: &AppState, c: &Collection, record: Map<String, Value>, method: Method, meta: Option<Value>, completed: Completed) -> Result<FlowDone, ApiError> {
    let token = super::record_auth::new_token(state, c, &record)?;
    let mfa = match completed {
        Completed::Mfa(id) => Some(id),
        Completed::SignedIn => None,
    };
    Ok(FlowDone::SignedIn { record, token, method: method.as_str(), meta, mfa })
}

/// An OTP sign-in once the code is proven: everything [`OtpSignIn::finish`] needs.
struct OtpSignIn {
    state: AppState,
    c: Arc<Collection>,
    otp_id: String,
    /// The address the OTP was sent to.
    sent_to: String,
    record: Map<String, Value>,
    mfa_id: Option<String>,
    origin: Origin,
}

impl OtpSignIn {
    /// Spends the OTP (verifying the mailbox it proved), checks the authRule and takes the MFA
    /// step: `(the record as stored, how the sign-in ended)`.
    async fn finish(&self) -> Result<(Map<String, Value>, Completed), ApiError> {
        let (state, c, record) = (&self.state, &self.c, &self.record);
        let o = options(c);
        // Proving the mailbox verifies it. An unverified account proven this way without MFA
        // also loses whatever password it had, so nobody who pre-registered that address
        // keeps access.
        let verify = !is_verified(record) && self.sent_to.eq_ignore_ascii_case(str_of(record, "email"));
        let reset_password = if verify && !o.mfa.enabled { Some(random_password(state).await?) } else { None };
        let record_id = str_of(record, "id").to_owned();
        let (c2, rid, key, otp_id) = (c.clone(), record_id.clone(), str_of(record, "tokenKey").to_owned(), self.otp_id.clone());
        let used = state
            .writes()
            .commit(Source::AccountFlow, move |tx: &rusqlite::Transaction<'_>, changes: &mut Changes| -> Result<bool, DbError> {
                if !accounts::delete_otp(tx, &otp_id)? {
                    return Ok(false);
                }
                let mut sets = Vec::new();
                if verify {
                    sets.push(("verified", Set::Bool(true)));
                }
                if let Some((hash, new_key)) = reset_password {
                    sets.push(("password", Set::Text(hash)));
                    sets.push(("tokenKey", Set::Text(new_key)));
                }
                if !sets.is_empty() {
                    accounts::update_record(tx, &c2, &rid, &key, &sets, changes)?;
                }
                Ok(true)
            })
            .await
            .map_err(db_error)?;
        if !used {
            return Err(ApiError::bad_request(INVALID_OTP));
        }
        let Some(record) = load_record(state, c, record_id).await? else { return Err(ApiError::bad_request(INVALID_OTP)) };
        require_auth_rule(state, c, &record, Method::Otp).await?;
        let completed = complete_auth_steps(state, c, &record, Method::Otp, self.mfa_id.clone(), &self.origin).await?;
        Ok((record, completed))
    }
}

// ---------------------------------------------------------------------------------------------
// Impersonation and the settings test mail

/// `POST impersonate/{id}` (superusers): a non-refreshable token for the record, valid for
/// `duration` seconds (0 or absent: the collection's auth token duration).
pub async fn impersonate(state: &AppState, collection: &str, id: &str, req: Request<Incoming>, actor: &Actor) -> Result<Response<ResBody>, ApiError> {
    let c = auth_collection(state, collection).await?;
    let head = record_hooks::auth_answer_head(state, &c, &req, actor).await;
    let body = body_object(req).await?;
    let duration = match body.get("duration") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(d) => d,
            None => return Err(field_error("duration", "validation_min_greater_equal_than_required", "Must be no less than 0.")),
        },
    };
    let Some(record) = load_record(state, &c, id.to_owned()).await? else { return Err(ApiError::not_found()) };
    let ttl = if duration == 0 { None } else { Some(duration) };
    // pb_hooks: onRecordAuthRequest (`e.authMethod` "", as in PocketBase) shapes the answer.
    if head.is_some() {
        let token = sign(state, &c, &record, TokenKind::Auth { refreshable: false }, ttl.unwrap_or(options(&c).auth_token.duration))?;
        if let Some(res) = record_hooks::auth_answer_with(state, &c, &record, token, "", head).await {
            return Ok(res);
        }
    }
    token_response(state, &c, &record, false, ttl, None)
}

/// `POST /api/settings/test/email` (superusers): `{email, template, collection?}`. The sender
/// waits for the mail server and a failure is reported, which is the point of the test.
pub async fn test_email(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = body_object(req).await?;
    let email = email_field(&body, "email")?;
    let collection = text(&body, "collection");
    let c = auth_collection(state, if collection.is_empty() { SUPERUSERS } else { &collection }).await?;
    let o = options(&c);
    let template = match text(&body, "template").as_str() {
        "verification" => o.verification_template.clone(),
        "password-reset" => o.reset_password_template.clone(),
        "email-change" => o.confirm_email_change_template.clone(),
        "otp" => o.otp.email_template.clone(),
        "login-alert" => o.auth_alert.email_template.clone(),
        _ => return Err(field_error("template", "validation_in_invalid", "Must be a valid value.")),
    };
    let mail = compose(state, &template, &email, "TEST_TOKEN", "123456").await;
    if let Err(e) = mailer::send(state, mail.into(), None).await {
        tracing::error!(what = "test email", error = %e, "sending mail failed");
        return Err(ApiError::bad_request(format!("Failed to send the test email: {e}")));
    }
    Ok(no_content())
}
