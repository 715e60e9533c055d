//! [`Actor`]: who is making a request, resolved from its `Authorization` header the way
//! PocketBase does it — peek at the token's claims, load that record, verify the signature
//! with the record's tokenKey. Anything wrong (no header, garbage, expired, unknown record,
//! bad signature, a non-auth token type) makes the request a guest's, never an error.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::worker::auth::jwt::{self, TokenType};
use crate::worker::records::crud::{self, CrudError};
use crate::worker::records::rows;
use crate::worker::records::schema::{Collection, CollectionType};
use crate::shared::db::Db;
use crate::shared::secrets::JwtSecret;
use crate::worker::records::cache::SchemaCache;

/// The `_superusers` collection's name.
pub const SUPERUSERS: &str = "_superusers";

/// An authenticated auth record.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    pub collection: Arc<Collection>,
    /// Every stored field, typed (hidden ones included).
    pub record: Map<String, Value>,
    /// From the verified token: false for impersonation tokens, which refresh to themselves.
    pub refreshable: bool,
    /// The verified token itself, returned as is by auth-refresh when not refreshable.
    pub token: String,
}

impl AuthRecord {
    /// This record as `@request.auth` for rules and filters (no password hash, no tokenKey).
    pub fn rule_context(&self) -> crate::worker::records::query::AuthContext {
        crate::worker::records::query::AuthContext::of_record(&self.collection.id, &self.collection.name, &self.record)
    }

    pub fn id(&self) -> &str {
        self.record.get("id").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn token_key(&self) -> &str {
        self.record.get("tokenKey").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn is_superuser(&self) -> bool {
        self.collection.name == SUPERUSERS
    }
}

/// Who the request is from.
#[derive(Debug, Clone, Default)]
pub enum Actor {
    #[default]
    Guest,
    Auth(Arc<AuthRecord>),
}

impl Actor {
    pub fn is_superuser(&self) -> bool {
        matches!(self, Actor::Auth(a) if a.is_superuser())
    }

    pub fn auth(&self) -> Option<&AuthRecord> {
        match self {
            Actor::Guest => None,
            Actor::Auth(a) => Some(a),
        }
    }
}

/// Resolves the actor of a request from its `Authorization` header value, with the worker's
/// collection cache, database and token secret.
pub async fn resolve(schema: &SchemaCache, db: &Db, secret: &JwtSecret, authorization: Option<&[u8]>) -> Actor {
    let Some(token) = authorization.and_then(jwt::token_from_authorization) else { return Actor::Guest };
    let Ok(claims) = jwt::peek(token) else { return Actor::Guest };
    let now = jwt::unix_now();
    if claims.token_type != TokenType::Auth || claims.is_expired(now) {
        return Actor::Guest;
    }
    let mut loaded = None;
    for retry in [false, true] {
        // The held snapshot usually knows the collection; the load checks its version in the
        // same read transaction and a stale plan is retried once with a fresh snapshot.
        let Ok(snap) = schema.for_job(db, &claims.collection_id, retry).await else { return Actor::Guest };
        let Some(collection) = snap.get(&claims.collection_id).cloned() else { return Actor::Guest };
        if collection.kind != CollectionType::Auth || collection.id != claims.collection_id {
            return Actor::Guest;
        }
        let (c, id) = (collection.clone(), claims.id.clone());
        let job = db
            .read(move |conn| {
                crud::read_snapshot(conn, |conn| {
                    snap.check(conn)?;
                    Ok(rows::load(conn, &c, &id)?)
                })
            })
            .await;
        match job {
            Ok(Some(record)) => {
                loaded = Some((collection, record));
                break;
            }
            Ok(None) => return Actor::Guest,
            Err(CrudError::Stale(_)) => schema.invalidate(),
            Err(e) => {
                tracing::warn!(error = %e, "loading the auth record of a token failed; treating as guest");
                return Actor::Guest;
            }
        }
    }
    let Some((collection, record)) = loaded else { return Actor::Guest };
    let mut auth = AuthRecord { collection, record, refreshable: false, token: token.to_owned() };
    let collection_secret = token_secret(&auth.collection, TokenType::Auth);
    match jwt::verify_for(secret, collection_secret, token, TokenType::Auth, &auth.collection.id, auth.token_key(), now) {
        Ok(claims) => {
            auth.refreshable = matches!(claims.kind, jwt::TokenKind::Auth { refreshable: true });
            Actor::Auth(Arc::new(auth))
        }
        Err(_) => Actor::Guest,
    }
}

/// The collection's own secret for tokens of `t` (PocketBase's `authToken.secret`, …); empty
/// when it has none and tokens use the key derived from the data dir's secret (`auth::jwt`).
pub fn token_secret(c: &Collection, t: TokenType) -> &str {
    let Some(a) = c.auth.as_ref() else { return "" };
    match t {
        TokenType::Auth => &a.auth_token.secret,
        TokenType::Verification => &a.verification_token.secret,
        TokenType::PasswordReset => &a.password_reset_token.secret,
        TokenType::EmailChange => &a.email_change_token.secret,
        TokenType::File => &a.file_token.secret,
    }
}
