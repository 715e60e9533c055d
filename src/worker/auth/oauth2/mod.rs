//! OAuth2 sign-in against external providers: the built-in provider presets (Google, GitHub,
//! Microsoft, Apple, GitLab, Discord) and generic OpenID Connect found by its issuer URL, PKCE,
//! the authorization URL handed to clients, the code-for-token exchange and the user lookup.
//!
//! It owns the provider protocol and nothing else. It must not touch the database or decide
//! about accounts (linking and sign-up are the handler's), must not know routes or status codes
//! ([`OAuth2Error`] is mapped at the HTTP edge), and must not hold a lock across an await (the
//! discovery cache is a plain mutex taken only around map lookups). Every outbound request has
//! a timeout and a response-size cap: a slow or hostile provider cannot hold a request or
//! memory for long.

pub mod providers;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::worker::auth::random;
use crate::worker::records::schema::collection::OAuth2Provider;
pub use providers::{trusted_email, AuthUser, Kind};

/// One outbound request to a provider may take this long, in seconds.
pub const HTTP_TIMEOUT_SECS: u64 = 15;
/// The largest provider response read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// How long a discovered OIDC configuration is reused, in seconds.
pub const DISCOVERY_TTL_SECS: u64 = 3_600;
/// After a failed discovery, how long the failure is remembered, in seconds: `auth-methods`
/// is public, and must not wait on an unreachable issuer's timeout for every caller.
pub const DISCOVERY_FAILURE_TTL_SECS: u64 = 60;
/// PKCE verifier length, in characters (RFC 7636 allows 43–128).
pub const PKCE_VERIFIER_CHARS: usize = 64;
/// Length of the `state` value handed to clients, in characters.
pub const STATE_CHARS: usize = 30;

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
/// Where GitHub lists a user's addresses (private ones included, each with its `verified`
/// flag), relative to the user-info URL: `https://api.github.com/user` + this, and the same
/// under a GitHub Enterprise (or test) `userInfoURL`.
const GITHUB_EMAILS_SUFFIX: &str = "/emails";
/// Some providers (GitHub) refuse requests without a user agent.
const USER_AGENT: &str = concat!("vaultbase/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum OAuth2Error {
    #[error("unknown OAuth2 provider {0:?}")]
    UnknownProvider(String),
    #[error("the provider {0:?} has no {1} configured")]
    NotConfigured(String, &'static str),
    #[error("randomness: {0}")]
    Random(#[from] random::RandomError),
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("request to the provider failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the provider answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the provider's answer is over {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the provider's answer is not what OAuth2 expects: {0}")]
    Malformed(String),
}

/// Where a provider's endpoints are, and how to talk to it.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub auth_url: String,
    pub token_url: String,
    pub user_info_url: String,
    pub scopes: Vec<String>,
    pub pkce: bool,
}

/// A configured provider with every endpoint known.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub kind: Kind,
    pub name: String,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub endpoints: Endpoints,
    /// For OIDC: the issuer the id_token must name (empty: not checked).
    pub issuer: String,
}

/// A PKCE pair: the verifier the client keeps, the S256 challenge sent with the authorization.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Result<Pkce, OAuth2Error> {
    let verifier = random::random_string(UNRESERVED, PKCE_VERIFIER_CHARS)?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Ok(Pkce { verifier, challenge })
}

pub fn new_state() -> Result<String, OAuth2Error> {
    Ok(random::random_string(&UNRESERVED[..62], STATE_CHARS)?)
}

fn client() -> Result<&'static reqwest::Client, OAuth2Error> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(HTTP_TIMEOUT_SECS))
                .user_agent(USER_AGENT)
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| OAuth2Error::Client(e.clone()))
}

/// Reads a JSON answer, at most [`MAX_RESPONSE_BYTES`]; a non-2xx status is an error that
/// carries the start of the body (providers explain refusals there).
async fn read_json(mut res: reqwest::Response) -> Result<Value, OAuth2Error> {
    let status = res.status();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(OAuth2Error::TooLarge);
        }
    }
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(OAuth2Error::Status { status: status.as_u16(), body: text });
    }
    serde_json::from_slice(&body).map_err(|e| OAuth2Error::Malformed(e.to_string()))
}

/// A discovery outcome: the endpoints, or the failure's text (remembered briefly).
type Discovered = Result<Endpoints, String>;

fn discovery_cache() -> &'static Mutex<HashMap<String, (Instant, Discovered)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, Discovered)>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The endpoints an OIDC issuer publishes at `/.well-known/openid-configuration`, cached (a
/// failure for a short while, a success for longer).
async fn discover(issuer: &str) -> Result<Endpoints, OAuth2Error> {
    let key = issuer.trim_end_matches('/').to_owned();
    if let Ok(cache) = discovery_cache().lock() {
        if let Some((at, found)) = cache.get(&key) {
            let ttl = if found.is_ok() { DISCOVERY_TTL_SECS } else { DISCOVERY_FAILURE_TTL_SECS };
            if at.elapsed() < Duration::from_secs(ttl) {
                return found.clone().map_err(OAuth2Error::Malformed);
            }
        }
    }
    let found = fetch_discovery(&key).await;
    if let Ok(mut cache) = discovery_cache().lock() {
        cache.insert(key, (Instant::now(), found.as_ref().map(Endpoints::clone).map_err(ToString::to_string)));
    }
    found
}

async fn fetch_discovery(key: &str) -> Result<Endpoints, OAuth2Error> {
    let url = format!("{key}/.well-known/openid-configuration");
    let doc = read_json(client()?.get(&url).header("Accept", "application/json").send().await?).await?;
    let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let endpoints = Endpoints {
        auth_url: field("authorization_endpoint"),
        token_url: field("token_endpoint"),
        user_info_url: field("userinfo_endpoint"),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        pkce: true,
    };
    if endpoints.auth_url.is_empty() || endpoints.token_url.is_empty() {
        return Err(OAuth2Error::Malformed(format!("{url} lacks authorization_endpoint or token_endpoint")));
    }
    Ok(endpoints)
}

/// Fills in a configured provider: the preset's endpoints, overridden by any URL set in the
/// collection options; for OIDC without explicit URLs, the issuer's discovery document
/// (`extra.issuer`, vaultbase's addition to PocketBase's options).
pub async fn resolve(cfg: &OAuth2Provider) -> Result<Resolved, OAuth2Error> {
    let kind = Kind::parse(&cfg.name).ok_or_else(|| OAuth2Error::UnknownProvider(cfg.name.clone()))?;
    let issuer = cfg.extra.get("issuer").and_then(Value::as_str).unwrap_or_default().trim_end_matches('/').to_owned();
    let mut endpoints = kind.preset();
    if kind == Kind::Oidc && cfg.auth_url.is_empty() && !issuer.is_empty() {
        endpoints = discover(&issuer).await?;
    }
    for (slot, configured) in [
        (&mut endpoints.auth_url, &cfg.auth_url),
        (&mut endpoints.token_url, &cfg.token_url),
        (&mut endpoints.user_info_url, &cfg.user_info_url),
    ] {
        if !configured.is_empty() {
            slot.clone_from(configured);
        }
    }
    if let Some(pkce) = cfg.pkce {
        endpoints.pkce = pkce;
    }
    if endpoints.auth_url.is_empty() {
        return Err(OAuth2Error::NotConfigured(cfg.name.clone(), "authURL (or extra.issuer)"));
    }
    if endpoints.token_url.is_empty() {
        return Err(OAuth2Error::NotConfigured(cfg.name.clone(), "tokenURL"));
    }
    let display_name = if cfg.display_name.is_empty() { kind.display_name().to_owned() } else { cfg.display_name.clone() };
    Ok(Resolved {
        kind,
        name: cfg.name.clone(),
        display_name,
        client_id: cfg.client_id.clone(),
        client_secret: cfg.client_secret.clone(),
        endpoints,
        issuer,
    })
}

/// The authorization URL for a client, ending in `&redirect_uri=` so the client appends its
/// own redirect URL (PocketBase's convention, which the SDKs rely on).
pub fn auth_url(p: &Resolved, state: &str, pkce: Option<&Pkce>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", &p.client_id).append_pair("response_type", "code").append_pair("state", state);
    if !p.endpoints.scopes.is_empty() {
        q.append_pair("scope", &p.endpoints.scopes.join(" "));
    }
    if p.kind == Kind::Apple {
        // Apple sends the name and email only with a form_post response.
        q.append_pair("response_mode", "form_post");
    }
    if let Some(pkce) = pkce {
        q.append_pair("code_challenge", &pkce.challenge).append_pair("code_challenge_method", "S256");
    }
    let sep = if p.endpoints.auth_url.contains('?') { '&' } else { '?' };
    format!("{}{sep}{}&redirect_uri=", p.endpoints.auth_url, q.finish())
}

/// What the token endpoint gave back.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires (0: not said).
    pub expires_in: i64,
    pub id_token: String,
}

/// Exchanges an authorization `code` (with the PKCE `verifier` when used) for tokens.
pub async fn exchange(p: &Resolved, code: &str, verifier: &str, redirect_url: &str) -> Result<Tokens, OAuth2Error> {
    // Built in its own scope: the serializer is not Send and must not live across an await.
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_url)
            .append_pair("client_id", &p.client_id)
            .append_pair("client_secret", &p.client_secret);
        if !verifier.is_empty() {
            form.append_pair("code_verifier", verifier);
        }
        form.finish()
    };
    let res = client()?
        .post(&p.endpoints.token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(form)
        .send()
        .await?;
    let v = read_json(res).await?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let tokens = Tokens {
        access_token: text("access_token"),
        refresh_token: text("refresh_token"),
        expires_in: v.get("expires_in").and_then(|e| e.as_i64().or_else(|| e.as_str().and_then(|s| s.parse().ok()))).unwrap_or(0),
        id_token: text("id_token"),
    };
    if tokens.access_token.is_empty() && tokens.id_token.is_empty() {
        return Err(OAuth2Error::Malformed("no access_token in the token response".into()));
    }
    Ok(tokens)
}

/// The claims of an id_token. Its signature is not checked: the token came straight from the
/// provider's token endpoint over the back channel in answer to our client credentials, which
/// OpenID Connect Core §3.1.3.7 accepts in place of a signature check. Audience, issuer and
/// expiry are still checked.
pub fn id_token_claims(p: &Resolved, id_token: &str, now: i64) -> Result<Value, OAuth2Error> {
    let payload = id_token.split('.').nth(1).ok_or_else(|| OAuth2Error::Malformed("id_token is not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).map_err(|e| OAuth2Error::Malformed(e.to_string()))?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|e| OAuth2Error::Malformed(e.to_string()))?;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == p.client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(p.client_id.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(OAuth2Error::Malformed("id_token audience is not this client".into()));
    }
    if !p.issuer.is_empty() && claims.get("iss").and_then(Value::as_str).map(|i| i.trim_end_matches('/')) != Some(p.issuer.as_str()) {
        return Err(OAuth2Error::Malformed("id_token issuer does not match".into()));
    }
    if claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp <= now) {
        return Err(OAuth2Error::Malformed("id_token expired".into()));
    }
    Ok(claims)
}

/// The signed-in user, from the user-info endpoint (or the id_token where there is none).
pub async fn user(p: &Resolved, tokens: &Tokens, now: i64) -> Result<AuthUser, OAuth2Error> {
    let raw = if !p.endpoints.user_info_url.is_empty() && !tokens.access_token.is_empty() {
        let res = client()?
            .get(&p.endpoints.user_info_url)
            .bearer_auth(&tokens.access_token)
            .header("Accept", "application/json")
            .send()
            .await?;
        read_json(res).await?
    } else if !tokens.id_token.is_empty() {
        id_token_claims(p, &tokens.id_token, now)?
    } else {
        return Err(OAuth2Error::NotConfigured(p.name.clone(), "userInfoURL"));
    };
    let mut user = p.kind.map_user(raw);
    if p.kind == Kind::GitHub && !tokens.access_token.is_empty() && !p.endpoints.user_info_url.is_empty() {
        // `/user` says nothing about whether its (public) email is verified, and a private
        // email is not there at all: both come from `/user/emails` (the `user:email` scope).
        // Without that answer the email stays unverified.
        let url = format!("{}{GITHUB_EMAILS_SUFFIX}", p.endpoints.user_info_url.trim_end_matches('/'));
        let listed = match client()?.get(&url).bearer_auth(&tokens.access_token).header("Accept", "application/json").send().await {
            Ok(res) => read_json(res).await.ok(),
            Err(e) => {
                tracing::warn!(error = %e, "reading GitHub's /user/emails failed; the email counts as unverified");
                None
            }
        };
        match listed.as_ref().and_then(|l| providers::github_email(l, &user.email)) {
            Some((email, verified)) => {
                user.email = email;
                user.email_verified = Some(verified);
            }
            None => user.email_verified = None,
        }
    }
    if user.id.is_empty() {
        return Err(OAuth2Error::Malformed("the provider's user has no id".into()));
    }
    user.access_token.clone_from(&tokens.access_token);
    user.refresh_token.clone_from(&tokens.refresh_token);
    user.expires_in = tokens.expires_in;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let p = pkce().expect("pkce");
        assert_eq!(p.verifier.len(), PKCE_VERIFIER_CHARS);
        assert_eq!(p.challenge, URL_SAFE_NO_PAD.encode(Sha256::digest(p.verifier.as_bytes())));
        // RFC 7636 appendix B.
        let rfc = URL_SAFE_NO_PAD.encode(Sha256::digest(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(rfc, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn auth_url_ends_with_an_empty_redirect_uri() {
        let p = Resolved {
            kind: Kind::GitHub,
            name: "github".into(),
            display_name: "GitHub".into(),
            client_id: "id 1".into(),
            client_secret: String::new(),
            endpoints: Kind::GitHub.preset(),
            issuer: String::new(),
        };
        let url = auth_url(&p, "st", None);
        assert!(url.starts_with("https://github.com/login/oauth/authorize?client_id=id+1&response_type=code&state=st"), "{url}");
        assert!(url.ends_with("&redirect_uri="));
    }

    #[test]
    fn id_token_audience_and_issuer_are_checked() {
        let p = Resolved {
            kind: Kind::Oidc,
            name: "oidc".into(),
            display_name: String::new(),
            client_id: "me".into(),
            client_secret: String::new(),
            endpoints: Endpoints::default(),
            issuer: "http://idp".into(),
        };
        let token = |claims: Value| format!("x.{}.y", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let good = serde_json::json!({"aud": "me", "iss": "http://idp/", "exp": 100, "sub": "u"});
        assert!(id_token_claims(&p, &token(good), 50).is_ok());
        assert!(id_token_claims(&p, &token(serde_json::json!({"aud": "other", "iss": "http://idp"})), 50).is_err());
        assert!(id_token_claims(&p, &token(serde_json::json!({"aud": ["me"], "iss": "http://evil"})), 50).is_err());
        assert!(id_token_claims(&p, &token(serde_json::json!({"aud": "me", "iss": "http://idp", "exp": 10})), 50).is_err());
    }
}
