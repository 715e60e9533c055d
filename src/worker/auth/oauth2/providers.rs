//! The provider presets: each built-in provider's endpoints, scopes, display name, and how its
//! user-info answer maps onto [`AuthUser`].
//!
//! It owns that per-provider knowledge only; it makes no requests (see the parent module).

use serde_json::Value;

use super::Endpoints;

/// A provider family. `oidc`, `oidc2` and `oidc3` are all generic OpenID Connect, as in
/// PocketBase, so one collection can have several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Google,
    GitHub,
    Microsoft,
    Apple,
    GitLab,
    Discord,
    Oidc,
}

/// The user a provider signed in, with the provider's tokens.
#[derive(Debug, Clone, Default)]
pub struct AuthUser {
    pub id: String,
    pub name: String,
    pub username: String,
    pub email: String,
    /// What the provider says about the email; None when it says nothing, which must be
    /// read as "not verified" (see [`trusted_email`]).
    pub email_verified: Option<bool>,
    pub avatar_url: String,
    pub raw: Value,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
}

fn endpoints(auth: &str, token: &str, user: &str, scopes: &[&str], pkce: bool) -> Endpoints {
    Endpoints {
        auth_url: auth.into(),
        token_url: token.into(),
        user_info_url: user.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        pkce,
    }
}

/// A claim as text: strings as they are, numbers (GitHub and GitLab ids) in decimal.
fn text(raw: &Value, key: &str) -> String {
    match raw.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A boolean claim; some providers (Apple) send `"true"` as a string.
fn flag(raw: &Value, key: &str) -> Option<bool> {
    match raw.get(key) {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

impl Kind {
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "google" => Kind::Google,
            "github" => Kind::GitHub,
            "microsoft" => Kind::Microsoft,
            "apple" => Kind::Apple,
            "gitlab" => Kind::GitLab,
            "discord" => Kind::Discord,
            "oidc" | "oidc2" | "oidc3" => Kind::Oidc,
            _ => return None,
        })
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Kind::Google => "Google",
            Kind::GitHub => "GitHub",
            Kind::Microsoft => "Microsoft",
            Kind::Apple => "Apple",
            Kind::GitLab => "GitLab",
            Kind::Discord => "Discord",
            Kind::Oidc => "OpenID Connect",
        }
    }

    /// The provider's public endpoints and default scopes. Generic OIDC has none: they come
    /// from the collection options or the issuer's discovery document.
    pub fn preset(self) -> Endpoints {
        match self {
            Kind::Google => endpoints(
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                "https://www.googleapis.com/oauth2/v3/userinfo",
                &["openid", "profile", "email"],
                true,
            ),
            Kind::GitHub => endpoints(
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com/user",
                &["read:user", "user:email"],
                true,
            ),
            Kind::Microsoft => endpoints(
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                "https://graph.microsoft.com/v1.0/me",
                &["User.Read"],
                true,
            ),
            // Apple has no user-info endpoint: the user comes from the id_token.
            Kind::Apple => endpoints("https://appleid.apple.com/auth/authorize", "https://appleid.apple.com/auth/token", "", &["name", "email"], true),
            Kind::GitLab => endpoints(
                "https://gitlab.com/oauth/authorize",
                "https://gitlab.com/oauth/token",
                "https://gitlab.com/api/v4/user",
                &["read_user"],
                true,
            ),
            Kind::Discord => endpoints(
                "https://discord.com/api/oauth2/authorize",
                "https://discord.com/api/oauth2/token",
                "https://discord.com/api/users/@me",
                &["identify", "email"],
                true,
            ),
            Kind::Oidc => Endpoints { scopes: vec!["openid".into(), "profile".into(), "email".into()], pkce: true, ..Endpoints::default() },
        }
    }

    /// Maps the provider's user JSON onto [`AuthUser`].
    pub fn map_user(self, raw: Value) -> AuthUser {
        let mut u = match self {
            Kind::Google | Kind::Oidc | Kind::Apple => AuthUser {
                id: text(&raw, "sub"),
                name: text(&raw, "name"),
                username: text(&raw, "preferred_username"),
                email: text(&raw, "email"),
                email_verified: flag(&raw, "email_verified"),
                avatar_url: text(&raw, "picture"),
                ..AuthUser::default()
            },
            Kind::GitHub => AuthUser {
                id: text(&raw, "id"),
                name: text(&raw, "name"),
                username: text(&raw, "login"),
                email: text(&raw, "email"),
                avatar_url: text(&raw, "avatar_url"),
                ..AuthUser::default()
            },
            // Graph's `mail` and `userPrincipalName` are set by the tenant's own admins and are
            // not verified by Microsoft ("nOAuth"): `email_verified` stays None, never trusted.
            Kind::Microsoft => {
                let mail = text(&raw, "mail");
                AuthUser {
                    id: text(&raw, "id"),
                    name: text(&raw, "displayName"),
                    email: if mail.is_empty() { text(&raw, "userPrincipalName") } else { mail },
                    ..AuthUser::default()
                }
            }
            Kind::GitLab => AuthUser {
                id: text(&raw, "id"),
                name: text(&raw, "name"),
                username: text(&raw, "username"),
                email: text(&raw, "email"),
                avatar_url: text(&raw, "avatar_url"),
                ..AuthUser::default()
            },
            Kind::Discord => {
                let (id, avatar) = (text(&raw, "id"), text(&raw, "avatar"));
                let global = text(&raw, "global_name");
                AuthUser {
                    avatar_url: if avatar.is_empty() { String::new() } else { format!("https://cdn.discordapp.com/avatars/{id}/{avatar}.png") },
                    name: if global.is_empty() { text(&raw, "username") } else { global },
                    username: text(&raw, "username"),
                    email: text(&raw, "email"),
                    email_verified: flag(&raw, "verified"),
                    id,
                    ..AuthUser::default()
                }
            }
        };
        u.raw = raw;
        u
    }
}

/// The address to use from GitHub's `/user/emails` answer, and whether GitHub verified it:
/// the profile's public address when it has one (`public`, from `/user`, which says nothing
/// about verification), else the primary address. None when the list does not hold it.
pub fn github_email(list: &Value, public: &str) -> Option<(String, bool)> {
    let entries = list.as_array()?;
    let entry = if public.is_empty() {
        entries.iter().find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))?
    } else {
        entries.iter().find(|e| e.get("email").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case(public)))?
    };
    let email = entry.get("email").and_then(Value::as_str)?.to_owned();
    Some((email, entry.get("verified").and_then(Value::as_bool).unwrap_or(false)))
}

/// The provider's email, when it may be trusted as proof that the signed-in person owns the
/// mailbox: only when the provider explicitly said it verified it. Silence is not proof
/// (GitLab, an OIDC server without `email_verified`, a GitHub address missing from
/// `/user/emails`), and Microsoft never counts (its addresses are tenant-asserted).
pub fn trusted_email(kind: Kind, user: &AuthUser) -> Option<String> {
    let trusted = kind != Kind::Microsoft && user.email_verified == Some(true) && !user.email.is_empty();
    trusted.then(|| user.email.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_provider_parses_and_maps_its_user() {
        for name in ["google", "github", "microsoft", "apple", "gitlab", "discord", "oidc", "oidc2", "oidc3"] {
            assert!(Kind::parse(name).is_some(), "{name}");
        }
        assert!(Kind::parse("myspace").is_none());
        let gh = Kind::GitHub.map_user(serde_json::json!({"id": 42, "login": "octo", "email": null}));
        assert_eq!((gh.id.as_str(), gh.username.as_str(), gh.email.as_str()), ("42", "octo", ""));
        let apple = Kind::Apple.map_user(serde_json::json!({"sub": "a.1", "email": "x@y.z", "email_verified": "true"}));
        assert_eq!(apple.email_verified, Some(true));
        let discord = Kind::Discord.map_user(serde_json::json!({"id": "9", "username": "d", "avatar": "h", "verified": false}));
        assert_eq!(discord.avatar_url, "https://cdn.discordapp.com/avatars/9/h.png");
        assert_eq!(discord.email_verified, Some(false));
        let emails = serde_json::json!([{"email": "a@x.y", "primary": false, "verified": true}, {"email": "b@x.y", "primary": true, "verified": false}]);
        assert_eq!(github_email(&emails, ""), Some(("b@x.y".to_owned(), false)));
        assert_eq!(github_email(&emails, "A@x.y"), Some(("a@x.y".to_owned(), true)), "the public address, with its own flag");
        assert_eq!(github_email(&emails, "c@x.y"), None, "a public address GitHub does not list is not known verified");
        assert_eq!(github_email(&serde_json::json!({"message": "no"}), ""), None);
    }

    #[test]
    fn only_an_explicitly_verified_email_is_trusted_and_never_microsofts() {
        let user = |verified: Option<bool>| AuthUser { email: "a@x.y".into(), email_verified: verified, ..AuthUser::default() };
        assert_eq!(trusted_email(Kind::Oidc, &user(Some(true))), Some("a@x.y".into()));
        assert_eq!(trusted_email(Kind::Oidc, &user(None)), None, "silence is not verification");
        assert_eq!(trusted_email(Kind::Oidc, &user(Some(false))), None);
        assert_eq!(trusted_email(Kind::Microsoft, &user(Some(true))), None);
        let ms = Kind::Microsoft.map_user(serde_json::json!({"id": "m", "userPrincipalName": "ceo@victim.example"}));
        assert_eq!((ms.email.as_str(), trusted_email(Kind::Microsoft, &ms)), ("ceo@victim.example", None));
        let gitlab = Kind::GitLab.map_user(serde_json::json!({"id": 7, "email": "g@x.y"}));
        assert_eq!(trusted_email(Kind::GitLab, &gitlab), None);
        let oidc = Kind::Oidc.map_user(serde_json::json!({"sub": "s", "email": "o@x.y"}));
        assert_eq!(trusted_email(Kind::Oidc, &oidc), None);
    }
}
