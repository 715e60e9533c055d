//! Record tokens: PocketBase-shaped HS256 JWTs (`auth`, `verification`, `passwordReset`,
//! `emailChange`, `file`), how they are signed, peeked at and verified.
//!
//! It owns the claim sets, the signing-key derivation and the checks on a presented token
//! (shape, algorithm, signature, type, collection, expiry). It must not load records, read
//! collection options or know about HTTP: the caller peeks at a token, loads the record named by
//! `collectionId` + `id`, and hands this module that record's `tokenKey` to verify with — the
//! order PocketBase's `FindAuthRecordByToken` uses. Durations here are PocketBase's defaults;
//! per-collection durations come from the caller.
//!
//! # Signing key
//!
//! `HMAC-SHA256(key = data-dir JWT secret, msg = label ‖ len ‖ type ‖ len ‖ collectionId)`
//! (lengths as 8-byte big-endian; 32 bytes out), then the record's `tokenKey` appended.
//! Binding the type and collection into the key means a token of one type or collection never
//! verifies as another even if a claim check were forgotten; appending the tokenKey means
//! rotating it (password or email change) revokes every token the record holds. The derived
//! half has a fixed length, so the concatenation is unambiguous.
//!
//! PocketBase keeps a random 50-character secret per collection and type instead (the
//! collection options' `authToken.secret`, …) and signs with `tokenKey ‖ secret`. When a
//! collection has that secret (every collection of a PocketBase data dir does) the key is
//! PocketBase's exactly, so tokens cross the switch both ways and changing the secret revokes
//! the collection's tokens. A collection without one (vaultbase's default) uses the derived
//! key above, which needs no secret in the database. The caller passes the secret it read.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::shared::secrets::JwtSecret;

// Token lifetimes are collection options (`authToken.duration`, …); their defaults live in
// `records::schema::collection`.

/// Seconds a token is still accepted after its `exp`. Zero: every worker of a cluster runs on
/// the same machine and clock, so there is no skew to forgive.
pub const EXP_LEEWAY_SECS: i64 = 0;

/// The longest token looked at, in bytes. Real tokens are 200–600 bytes (an `emailChange`
/// token carries two addresses); the cap keeps a hostile header from costing a large base64
/// decode and JSON parse before the signature fails. `sign` refuses to issue anything longer.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Domain-separation label of the key derivation. A new scheme takes a new label, which
/// retires every outstanding token at once.
const KEY_DERIVATION_LABEL: &[u8] = b"vaultbase jwt signing key v1";

/// The case-insensitive scheme prefix PocketBase accepts before a token (since v0.36.4).
const BEARER_PREFIX: &str = "bearer ";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is {len} bytes, over the {MAX_TOKEN_BYTES}-byte limit")]
    TooLong { len: usize },
    #[error("the token is not three non-empty base64url segments")]
    Shape,
    #[error("decoding the token header or claims: {0}")]
    Decode(#[source] jsonwebtoken::errors::Error),
    #[error("the token is not signed with HS256")]
    Algorithm,
    #[error("the token has an unknown type claim")]
    UnknownType,
    #[error("the token's {0} claim is empty")]
    EmptyClaim(&'static str),
    #[error("the token's claims do not match the claim set of a {0} token")]
    ClaimSet(TokenType),
    #[error("the record has an empty tokenKey")]
    EmptyTokenKey,
    #[error("deriving the signing key from the JWT secret")]
    KeyDerivation,
    #[error("the token signature does not match")]
    Signature,
    #[error("expected a {expected} token, got a {found} token")]
    WrongType { expected: TokenType, found: TokenType },
    #[error("the token belongs to another collection")]
    WrongCollection,
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("signing the token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The `type` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    Auth,
    Verification,
    PasswordReset,
    EmailChange,
    File,
}

impl TokenType {
    /// The wire spelling of the `type` claim.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::Auth => "auth",
            TokenType::Verification => "verification",
            TokenType::PasswordReset => "passwordReset",
            TokenType::EmailChange => "emailChange",
            TokenType::File => "file",
        }
    }

    /// The type named by a `type` claim; exact, case-sensitive match as in PocketBase.
    pub fn parse(claim: &str) -> Option<TokenType> {
        [TokenType::Auth, TokenType::Verification, TokenType::PasswordReset, TokenType::EmailChange, TokenType::File]
            .into_iter()
            .find(|t| t.as_str() == claim)
    }
}

impl std::fmt::Display for TokenType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token says beyond `id`, `collectionId` and `exp`: one variant per type, so a claim
/// set that PocketBase would never issue (an `auth` token without `refreshable`, an
/// `emailChange` token without `newEmail`) cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// `refreshable: false` for impersonation and static tokens: auth-refresh returns them as is.
    Auth { refreshable: bool },
    Verification { email: String },
    PasswordReset { email: String },
    EmailChange { email: String, new_email: String },
    File,
}

impl TokenKind {
    pub fn token_type(&self) -> TokenType {
        match self {
            TokenKind::Auth { .. } => TokenType::Auth,
            TokenKind::Verification { .. } => TokenType::Verification,
            TokenKind::PasswordReset { .. } => TokenType::PasswordReset,
            TokenKind::EmailChange { .. } => TokenType::EmailChange,
            TokenKind::File => TokenType::File,
        }
    }
}

/// The claims of a verified (or to-be-signed) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The record id.
    pub id: String,
    /// The id (not the name) of the record's collection.
    pub collection_id: String,
    pub kind: TokenKind,
    /// Expiry, unix seconds.
    pub exp: i64,
}

impl Claims {
    pub fn token_type(&self) -> TokenType {
        self.kind.token_type()
    }
}

/// What an unverified token claims: enough to find the record whose tokenKey verifies it, and
/// nothing else. Never act on these values before [`verify`] succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedClaims {
    pub id: String,
    pub collection_id: String,
    pub token_type: TokenType,
    /// Expiry, unix seconds.
    pub exp: i64,
}

impl UnverifiedClaims {
    /// Lets the caller skip the record lookup for a token that would fail [`verify`] anyway.
    pub fn is_expired(&self, now: i64) -> bool {
        is_expired(self.exp, now)
    }
}

/// The JSON payload. Fields in alphabetical order, as Go's encoding/json writes PocketBase's
/// claim map. `exp` is an integer: a string or float `exp` fails deserialisation instead of
/// being mistaken for an absent claim.
#[derive(Serialize, Deserialize)]
struct WireClaims<'a> {
    #[serde(rename = "collectionId")]
    collection_id: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<Cow<'a, str>>,
    exp: i64,
    id: Cow<'a, str>,
    #[serde(rename = "newEmail", default, skip_serializing_if = "Option::is_none")]
    new_email: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refreshable: Option<bool>,
    #[serde(rename = "type")]
    token_type: Cow<'a, str>,
}

impl<'a> WireClaims<'a> {
    fn from_claims(c: &'a Claims) -> WireClaims<'a> {
        let (refreshable, email, new_email) = match &c.kind {
            TokenKind::Auth { refreshable } => (Some(*refreshable), None, None),
            TokenKind::Verification { email } | TokenKind::PasswordReset { email } => (None, Some(email), None),
            TokenKind::EmailChange { email, new_email } => (None, Some(email), Some(new_email)),
            TokenKind::File => (None, None, None),
        };
        WireClaims {
            collection_id: Cow::Borrowed(&c.collection_id),
            email: email.map(|e| Cow::Borrowed(e.as_str())),
            exp: c.exp,
            id: Cow::Borrowed(&c.id),
            new_email: new_email.map(|e| Cow::Borrowed(e.as_str())),
            refreshable,
            token_type: Cow::Borrowed(c.token_type().as_str()),
        }
    }

    /// Checks the claim set against the type (PocketBase requires `id`, `collectionId` and
    /// `type`; the rest must be exactly what that type carries).
    fn into_claims(self) -> Result<Claims, TokenError> {
        let token_type = TokenType::parse(&self.token_type).ok_or(TokenError::UnknownType)?;
        if self.id.is_empty() {
            return Err(TokenError::EmptyClaim("id"));
        }
        if self.collection_id.is_empty() {
            return Err(TokenError::EmptyClaim("collectionId"));
        }
        let kind = match (token_type, self.refreshable, self.email, self.new_email) {
            (TokenType::Auth, Some(refreshable), None, None) => TokenKind::Auth { refreshable },
            (TokenType::Verification, None, Some(email), None) => {
                TokenKind::Verification { email: email.into_owned() }
            }
            (TokenType::PasswordReset, None, Some(email), None) => {
                TokenKind::PasswordReset { email: email.into_owned() }
            }
            (TokenType::EmailChange, None, Some(email), Some(new_email)) => {
                TokenKind::EmailChange { email: email.into_owned(), new_email: new_email.into_owned() }
            }
            (TokenType::File, None, None, None) => TokenKind::File,
            (other, ..) => return Err(TokenError::ClaimSet(other)),
        };
        Ok(Claims { id: self.id.into_owned(), collection_id: self.collection_id.into_owned(), kind, exp: self.exp })
    }
}

/// HS256 and nothing else; the library's own time checks are off because `verify` checks
/// `exp` against the caller's clock (testable, and one rule instead of two).
static HS256_ONLY: LazyLock<Validation> = LazyLock::new(|| {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    v
});

/// Signs `claims` for the record whose `tokenKey` is `token_key`, with the derived key (a
/// collection without its own token secret).
pub fn sign(secret: &JwtSecret, claims: &Claims, token_key: &str) -> Result<String, TokenError> {
    sign_for(secret, "", claims, token_key)
}

/// [`sign`] for a collection whose token secret of this type is `collection_secret` (empty:
/// none, the derived key).
pub fn sign_for(secret: &JwtSecret, collection_secret: &str, claims: &Claims, token_key: &str) -> Result<String, TokenError> {
    // Refuse to issue what `verify` would refuse to accept.
    if claims.id.is_empty() {
        return Err(TokenError::EmptyClaim("id"));
    }
    if claims.collection_id.is_empty() {
        return Err(TokenError::EmptyClaim("collectionId"));
    }
    let key = signing_key(secret, collection_secret, &claims.collection_id, claims.token_type(), token_key)?;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &WireClaims::from_claims(claims),
        &EncodingKey::from_secret(&key),
    )
    .map_err(TokenError::Sign)?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong { len: token.len() });
    }
    Ok(token)
}

/// Reads a token's claims WITHOUT checking its signature, so the caller can load the record
/// that holds the tokenKey for [`verify`]. Rejects anything that is not a well-formed HS256
/// token with a known type and its claim set.
pub fn peek(token: &str) -> Result<UnverifiedClaims, TokenError> {
    check_shape(token)?;
    let header = jsonwebtoken::decode_header(token).map_err(decode_error)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Algorithm);
    }
    let wire: WireClaims<'static> = jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(decode_error)?;
    let claims = wire.into_claims()?;
    Ok(UnverifiedClaims {
        token_type: claims.token_type(),
        id: claims.id,
        collection_id: claims.collection_id,
        exp: claims.exp,
    })
}

/// Verifies `token` as an `expected` token of the record in `collection_id` whose tokenKey is
/// `token_key`, at `now` (unix seconds): shape, HS256, signature, claim set, type, collection,
/// expiry — the signature first, so nothing unsigned is ever trusted.
///
/// `collection_id` is the collection of the record the caller loaded, not the token's claim:
/// the key is derived from it, so a token naming another collection fails the signature.
pub fn verify(
    secret: &JwtSecret,
    token: &str,
    expected: TokenType,
    collection_id: &str,
    token_key: &str,
    now: i64,
) -> Result<Claims, TokenError> {
    verify_for(secret, "", token, expected, collection_id, token_key, now)
}

/// [`verify`] for a collection whose token secret of type `expected` is `collection_secret`
/// (empty: none, the derived key).
pub fn verify_for(
    secret: &JwtSecret,
    collection_secret: &str,
    token: &str,
    expected: TokenType,
    collection_id: &str,
    token_key: &str,
    now: i64,
) -> Result<Claims, TokenError> {
    check_shape(token)?;
    let key = signing_key(secret, collection_secret, collection_id, expected, token_key)?;
    let data = jsonwebtoken::decode::<WireClaims<'static>>(token, &DecodingKey::from_secret(&key), &HS256_ONLY)
        .map_err(decode_error)?;
    let claims = data.claims.into_claims()?;
    // With the type and collection in the key these cannot differ after a good signature;
    // checked anyway so that a future change to the derivation cannot silently open a hole.
    if claims.token_type() != expected {
        return Err(TokenError::WrongType { expected, found: claims.token_type() });
    }
    if claims.collection_id != collection_id {
        return Err(TokenError::WrongCollection);
    }
    if is_expired(claims.exp, now) {
        return Err(TokenError::Expired { exp: claims.exp, now });
    }
    Ok(claims)
}

/// The token in an `Authorization` header value, or None for a guest.
///
/// PocketBase accepts the raw token (what both official SDKs send) or `Bearer <token>` with
/// the scheme in any case. An empty or blank value (the Python SDK sends `""`), a bare
/// `Bearer`, and a value that is not UTF-8 all mean "no token": an unusable header makes the
/// request a guest's, never an error.
pub fn token_from_authorization(header_value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(header_value).ok()?.trim_matches([' ', '\t']);
    let token = match value.get(..BEARER_PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(BEARER_PREFIX) => {
            value.get(BEARER_PREFIX.len()..)?.trim_start_matches([' ', '\t'])
        }
        _ if value.eq_ignore_ascii_case(BEARER_PREFIX.trim_end()) => "",
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// Now, in unix seconds. A clock before 1970 reads as 0 (every token then looks unexpired to
/// the clock check, but such a machine has bigger problems and the signature still holds).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The `exp` for a token issued at `now` (unix seconds) that lives for `ttl`; saturates
/// instead of overflowing.
pub fn expires_at(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
}

/// RFC 7519: the token is valid only while now is before `exp` (+ the leeway).
fn is_expired(exp: i64, now: i64) -> bool {
    now >= exp.saturating_add(EXP_LEEWAY_SECS)
}

/// Cheap structural checks before any decoding: bounded length, exactly three non-empty
/// segments of unpadded base64url. Rejects `alg: none` tokens with an empty signature here.
fn check_shape(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong { len: token.len() });
    }
    let mut segments = 0usize;
    for segment in token.split('.') {
        segments += 1;
        let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if segments > 3 || segment.is_empty() || !segment.bytes().all(base64url) {
            return Err(TokenError::Shape);
        }
    }
    if segments == 3 {
        Ok(())
    } else {
        Err(TokenError::Shape)
    }
}

fn decode_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            TokenError::Algorithm
        }
        _ => TokenError::Decode(e),
    }
}

/// The HS256 key for tokens of `token_type` in `collection_id` held by a record with
/// `token_key` (see the module docs): PocketBase's `tokenKey ‖ collection_secret` when the
/// collection has a secret, else the derived key.
fn signing_key(
    secret: &JwtSecret,
    collection_secret: &str,
    collection_id: &str,
    token_type: TokenType,
    token_key: &str,
) -> Result<Vec<u8>, TokenError> {
    if token_key.is_empty() {
        // A record always has one; an empty one means the caller did not load it, and signing
        // with the derived half alone would make every such record's tokens interchangeable.
        return Err(TokenError::EmptyTokenKey);
    }
    if !collection_secret.is_empty() {
        return Ok([token_key.as_bytes(), collection_secret.as_bytes()].concat());
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|_| TokenError::KeyDerivation)?;
    mac.update(KEY_DERIVATION_LABEL);
    // Length-prefixed, so ("ab", "c") and ("a", "bc") are different inputs.
    for part in [token_type.as_str().as_bytes(), collection_id.as_bytes()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    let derived = mac.finalize().into_bytes();
    let mut key = Vec::with_capacity(derived.len() + token_key.len());
    key.extend_from_slice(&derived);
    key.extend_from_slice(token_key.as_bytes());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const NOW: i64 = 1_750_000_000;
    const USERS: &str = "_pb_users_auth_";
    const SUPERUSERS: &str = "pbc_3142635823";
    const KEY: &str = "Qm9vb2tLZXlGb3JUZXN0aW5nT25seTAxMjM0NTY3ODlhYmNkZWZn";

    fn secret() -> JwtSecret {
        secret_of("s".repeat(40).as_str())
    }

    fn secret_of(s: &str) -> JwtSecret {
        crate::shared::secrets::load(Some(s), std::path::Path::new("/nonexistent")).expect("configured secret")
    }

    fn claims(kind: TokenKind) -> Claims {
        Claims { id: "abcdefghij12345".into(), collection_id: USERS.into(), kind, exp: NOW + 60 }
    }

    fn auth() -> Claims {
        claims(TokenKind::Auth { refreshable: true })
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn payload_json(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).expect("payload segment");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64");
        serde_json::from_slice(&raw).expect("json")
    }

    /// A token signed with the right key but built by hand, to test what `verify` does with
    /// payloads and headers that `sign` would never produce.
    fn forge(alg: Algorithm, payload: &serde_json::Value, collection_id: &str, t: TokenType) -> String {
        let key = signing_key(&secret(), "", collection_id, t, KEY).expect("key");
        jsonwebtoken::encode(&Header::new(alg), payload, &EncodingKey::from_secret(&key)).expect("encode")
    }

    #[test]
    fn every_type_round_trips() {
        let kinds = [
            TokenKind::Auth { refreshable: true },
            TokenKind::Auth { refreshable: false },
            TokenKind::Verification { email: "a@example.com".into() },
            TokenKind::PasswordReset { email: "a@example.com".into() },
            TokenKind::EmailChange { email: "a@example.com".into(), new_email: "b@example.com".into() },
            TokenKind::File,
        ];
        for kind in kinds {
            let c = claims(kind);
            let token = sign(&secret(), &c, KEY).expect("sign");
            let back = verify(&secret(), &token, c.token_type(), USERS, KEY, NOW).expect("verify");
            assert_eq!(back, c);
            let peeked = peek(&token).expect("peek");
            assert_eq!(
                peeked,
                UnverifiedClaims {
                    id: c.id.clone(),
                    collection_id: USERS.into(),
                    token_type: c.token_type(),
                    exp: c.exp
                }
            );
        }
    }

    #[test]
    fn wire_format_matches_pocketbase() {
        let token = sign(&secret(), &auth(), KEY).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(
            payload_json(&token),
            serde_json::json!({"collectionId": USERS, "exp": NOW + 60, "id": "abcdefghij12345",
                               "refreshable": true, "type": "auth"})
        );
        let change = claims(TokenKind::EmailChange { email: "a@x.io".into(), new_email: "b@x.io".into() });
        let token = sign(&secret(), &change, KEY).expect("sign");
        assert_eq!(
            payload_json(&token),
            serde_json::json!({"collectionId": USERS, "email": "a@x.io", "exp": NOW + 60,
                               "id": "abcdefghij12345", "newEmail": "b@x.io", "type": "emailChange"})
        );
        let file = sign(&secret(), &claims(TokenKind::File), KEY).expect("sign");
        assert_eq!(
            payload_json(&file),
            serde_json::json!({"collectionId": USERS, "exp": NOW + 60, "id": "abcdefghij12345", "type": "file"})
        );
    }

    #[test]
    fn wrong_type_is_rejected_by_the_key_itself() {
        let reset = claims(TokenKind::PasswordReset { email: "a@example.com".into() });
        let token = sign(&secret(), &reset, KEY).expect("sign");
        for other in [TokenType::Auth, TokenType::Verification, TokenType::EmailChange, TokenType::File] {
            let err = verify(&secret(), &token, other, USERS, KEY, NOW).expect_err("wrong type");
            assert!(matches!(err, TokenError::Signature), "{other}: {err}");
        }
    }

    #[test]
    fn wrong_collection_is_rejected() {
        let token = sign(&secret(), &auth(), KEY).expect("sign");
        let err = verify(&secret(), &token, TokenType::Auth, SUPERUSERS, KEY, NOW).expect_err("other collection");
        assert!(matches!(err, TokenError::Signature), "{err}");
        // Even signed with the other collection's key, a mismatching claim is refused.
        let mut payload = payload_json(&token);
        payload["collectionId"] = USERS.into();
        let forged = forge(Algorithm::HS256, &payload, SUPERUSERS, TokenType::Auth);
        let err = verify(&secret(), &forged, TokenType::Auth, SUPERUSERS, KEY, NOW).expect_err("claim mismatch");
        assert!(matches!(err, TokenError::WrongCollection), "{err}");
    }

    #[test]
    fn wrong_token_key_or_secret_is_rejected() {
        let token = sign(&secret(), &auth(), KEY).expect("sign");
        let rotated = "x".repeat(50);
        let err = verify(&secret(), &token, TokenType::Auth, USERS, &rotated, NOW).expect_err("rotated tokenKey");
        assert!(matches!(err, TokenError::Signature), "{err}");
        let other = secret_of("t".repeat(40).as_str());
        let err = verify(&other, &token, TokenType::Auth, USERS, KEY, NOW).expect_err("other data dir");
        assert!(matches!(err, TokenError::Signature), "{err}");
        assert!(matches!(sign(&secret(), &auth(), ""), Err(TokenError::EmptyTokenKey)));
        assert!(matches!(verify(&secret(), &token, TokenType::Auth, USERS, "", NOW), Err(TokenError::EmptyTokenKey)));
    }

    #[test]
    fn expiry_is_exclusive_with_no_leeway() {
        let token = sign(&secret(), &auth(), KEY).expect("sign");
        let exp = NOW + 60;
        assert!(verify(&secret(), &token, TokenType::Auth, USERS, KEY, exp - 1).is_ok());
        let err = verify(&secret(), &token, TokenType::Auth, USERS, KEY, exp).expect_err("at exp");
        assert!(matches!(err, TokenError::Expired { .. }), "{err}");
        assert!(verify(&secret(), &token, TokenType::Auth, USERS, KEY, exp + 86_400).is_err());
        assert!(peek(&token).expect("peek").is_expired(exp));
        assert!(!peek(&token).expect("peek").is_expired(exp - 1));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let token = sign(&secret(), &auth(), KEY).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let changes = [("id", serde_json::json!("zzzzzzzzzzzzzzz")), ("exp", serde_json::json!(NOW + 999_999))];
        for (field, value) in changes {
            let mut payload = payload_json(&token);
            payload[field] = value;
            let body = b64(&serde_json::to_vec(&payload).expect("json"));
            let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
            let err = verify(&secret(), &tampered, TokenType::Auth, USERS, KEY, NOW).expect_err("tampered");
            assert!(matches!(err, TokenError::Signature), "{field}: {err}");
        }
        // One flipped signature character.
        let mut sig = parts[2].to_owned();
        let last = if sig.ends_with('A') { "B" } else { "A" };
        sig.replace_range(sig.len() - 1.., last);
        let flipped = format!("{}.{}.{}", parts[0], parts[1], sig);
        assert!(verify(&secret(), &flipped, TokenType::Auth, USERS, KEY, NOW).is_err());
    }

    #[test]
    fn alg_none_and_other_algorithms_are_rejected() {
        let token = sign(&secret(), &auth(), KEY).expect("sign");
        let payload = token.split('.').nth(1).expect("payload");
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#, r#"{"typ":"JWT"}"#] {
            let h = b64(header.as_bytes());
            for t in [format!("{h}.{payload}."), format!("{h}.{payload}.c2ln")] {
                assert!(verify(&secret(), &t, TokenType::Auth, USERS, KEY, NOW).is_err(), "{header}");
                assert!(peek(&t).is_err(), "{header}");
            }
        }
        // HS512 and HS384 with the right key: refused for the algorithm, not accepted.
        let payload = payload_json(&token);
        for alg in [Algorithm::HS512, Algorithm::HS384] {
            let t = forge(alg, &payload, USERS, TokenType::Auth);
            let err = verify(&secret(), &t, TokenType::Auth, USERS, KEY, NOW).expect_err("other alg");
            assert!(matches!(err, TokenError::Algorithm), "{alg:?}: {err}");
            assert!(matches!(peek(&t), Err(TokenError::Algorithm)));
        }
    }

    #[test]
    fn claims_outside_the_type_set_or_mistyped_are_rejected_even_when_signed() {
        let base = serde_json::json!({"collectionId": USERS, "exp": NOW + 60, "id": "abcdefghij12345", "type": "auth"});
        let cases: Vec<(serde_json::Value, TokenType)> = vec![
            // exp as a string, a float, or missing: never "valid forever".
            (serde_json::json!({"exp": "never", "refreshable": true}), TokenType::Auth),
            (serde_json::json!({"exp": 1.9e9, "refreshable": true}), TokenType::Auth),
            (serde_json::json!({"exp": null, "refreshable": true}), TokenType::Auth),
            // auth without refreshable; auth with an email; file with refreshable.
            (serde_json::json!({}), TokenType::Auth),
            (serde_json::json!({"refreshable": true, "email": "a@b.c"}), TokenType::Auth),
            (serde_json::json!({"type": "file", "refreshable": true}), TokenType::File),
            // emailChange without newEmail; unknown or mis-cased type; empty id.
            (serde_json::json!({"type": "emailChange", "email": "a@b.c"}), TokenType::EmailChange),
            (serde_json::json!({"type": "Auth", "refreshable": true}), TokenType::Auth),
            (serde_json::json!({"id": "", "refreshable": true}), TokenType::Auth),
        ];
        for (patch, t) in cases {
            let mut payload = base.clone();
            for (k, v) in patch.as_object().expect("object") {
                payload[k] = v.clone();
            }
            if payload["exp"].is_null() {
                payload.as_object_mut().expect("object").remove("exp");
            }
            let token = forge(Algorithm::HS256, &payload, USERS, t);
            assert!(verify(&secret(), &token, t, USERS, KEY, NOW).is_err(), "{payload}");
            assert!(peek(&token).is_err(), "{payload}");
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let huge = format!("{}.{}.{}", "e".repeat(1 << 20), "e".repeat(1 << 20), "e");
        let inputs = [
            "", ".", "..", "...", "a.b", "a.b.c", "a.b.c.d", "a..c", ".b.c", "é.é.é", "\0.\0.\0",
            "eyJhbGciOiJIUzI1NiJ9.!!!.sig", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9.W10.sig",
            "eyJhbGciOiJIUzI1NiJ9.bnVsbA.sig", "e30=.e30=.e30=", "Bearer x.y.z", long.as_str(), huge.as_str(),
        ];
        for input in inputs {
            assert!(peek(input).is_err(), "{input:.40}");
            assert!(verify(&secret(), input, TokenType::Auth, USERS, KEY, NOW).is_err(), "{input:.40}");
        }
        assert!(matches!(peek(&long), Err(TokenError::TooLong { .. })));
        // Random bytes in every segment, valid base64url or not.
        let mut raw = [0u8; 96];
        for _ in 0..2_000 {
            getrandom::getrandom(&mut raw).expect("random");
            let s = String::from_utf8_lossy(&raw);
            let _ = peek(&s);
            let dotted = format!("{}.{}.{}", b64(&raw[..32]), b64(&raw[32..64]), b64(&raw[64..]));
            assert!(peek(&dotted).is_err());
            assert!(verify(&secret(), &dotted, TokenType::File, USERS, KEY, NOW).is_err());
        }
    }

    #[test]
    fn sign_refuses_empty_ids_and_oversized_tokens() {
        let mut c = auth();
        c.id.clear();
        assert!(matches!(sign(&secret(), &c, KEY), Err(TokenError::EmptyClaim("id"))));
        let mut c = auth();
        c.collection_id.clear();
        assert!(matches!(sign(&secret(), &c, KEY), Err(TokenError::EmptyClaim("collectionId"))));
        let big = claims(TokenKind::Verification { email: "a".repeat(MAX_TOKEN_BYTES) });
        assert!(matches!(sign(&secret(), &big, KEY), Err(TokenError::TooLong { .. })));
    }

    #[test]
    fn a_collection_secret_signs_as_pocketbase_and_rotating_it_revokes() {
        // Issued by PocketBase 0.40.6 (users, tokenKey and authToken.secret below), exp 2027.
        let claims = Claims { id: "u1".into(), collection_id: USERS.into(), kind: TokenKind::Auth { refreshable: true }, exp: NOW + 60 };
        let token = sign_for(&secret(), "pb-secret", &claims, KEY).expect("sign");
        // PocketBase's key is exactly tokenKey ‖ secret: verify with that key directly.
        let key = [KEY.as_bytes(), b"pb-secret"].concat();
        jsonwebtoken::decode::<serde_json::Value>(&token, &DecodingKey::from_secret(&key), &HS256_ONLY).expect("PocketBase's key verifies it");
        assert!(verify_for(&secret(), "pb-secret", &token, TokenType::Auth, USERS, KEY, NOW).is_ok());
        assert!(verify_for(&secret(), "rotated", &token, TokenType::Auth, USERS, KEY, NOW).is_err(), "a new secret revokes");
        assert!(verify(&secret(), &token, TokenType::Auth, USERS, KEY, NOW).is_err(), "not the derived key");
    }

    #[test]
    fn signing_keys_are_separated_by_type_collection_and_token_key() {
        let base = signing_key(&secret(), "", USERS, TokenType::Auth, KEY).expect("key");
        assert_eq!(base.len(), 32 + KEY.len());
        assert!(base.ends_with(KEY.as_bytes()));
        assert_ne!(base, signing_key(&secret(), "", USERS, TokenType::File, KEY).expect("key"));
        assert_ne!(base, signing_key(&secret(), "", SUPERUSERS, TokenType::Auth, KEY).expect("key"));
        // The derived half ignores the tokenKey: rotating it changes only the tail.
        let other = signing_key(&secret(), "", USERS, TokenType::Auth, "k").expect("key");
        assert_eq!(base[..32], other[..32]);
    }

    #[test]
    fn authorization_header_values() {
        let t = "aaa.bbb.ccc";
        assert_eq!(token_from_authorization(b"aaa.bbb.ccc"), Some(t));
        assert_eq!(token_from_authorization(b"Bearer aaa.bbb.ccc"), Some(t));
        assert_eq!(token_from_authorization(b"bearer aaa.bbb.ccc"), Some(t));
        assert_eq!(token_from_authorization(b"BEARER   aaa.bbb.ccc "), Some(t));
        assert_eq!(token_from_authorization(b"bEaReR aaa.bbb.ccc"), Some(t));
        assert_eq!(token_from_authorization(b" aaa.bbb.ccc\t"), Some(t));
        for none in [&b""[..], b" ", b"\t", b"Bearer", b"bearer ", b"Bearer    ", b"\xff\xfe", b"Bearer \xc3"] {
            assert_eq!(token_from_authorization(none), None, "{none:?}");
        }
        // Not the scheme: passed through, and then simply fails verification.
        assert_eq!(token_from_authorization(b"Bearerx.y.z"), Some("Bearerx.y.z"));
        assert_eq!(token_from_authorization("é".as_bytes()), Some("é"));
        assert_eq!(token_from_authorization("Béarer x".as_bytes()), Some("Béarer x"));
    }

    #[test]
    fn expiry_arithmetic_saturates() {
        assert_eq!(expires_at(NOW, Duration::from_secs(180)), NOW + 180);
        assert_eq!(expires_at(i64::MAX - 1, Duration::from_secs(432_000)), i64::MAX);
        assert_eq!(expires_at(NOW, Duration::MAX), i64::MAX);
        assert!(unix_now() > NOW);
        let all = [TokenType::Auth, TokenType::Verification, TokenType::PasswordReset, TokenType::EmailChange];
        for t in all.into_iter().chain([TokenType::File]) {
            assert_eq!(TokenType::parse(t.as_str()), Some(t));
        }
        assert_eq!(TokenType::parse("AUTH"), None);
    }
}
