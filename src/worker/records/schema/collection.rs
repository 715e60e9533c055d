//! [`Collection`]: a named set of fields with its API rules, in PocketBase's JSON shape, the
//! scaffolds new collections start from, whole-collection validation, and the
//! `CREATE TABLE` it maps to.
//!
//! Secrets inside auth options (token secrets, OAuth2 client secrets) are accepted on input
//! and never serialised on output: `skip_serializing` is the guard, so no handler has to
//! remember to strip them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::field::{
    AutodateOptions, BoolOptions, DomainOptions, Field, FieldKind, PasswordOptions, TextOptions,
};
use super::names::{check_collection_name, default_collection_id};
use super::{quote_ident, Invalid, SchemaErrors};
use crate::worker::auth::password::PASSWORD_MIN_CHARS_DEFAULT;

/// Token lifetimes for new auth collections, in seconds (PocketBase's defaults).
pub const AUTH_TOKEN_TTL_SECS: u64 = 432_000;
pub const VERIFICATION_TOKEN_TTL_SECS: u64 = 86_400;
pub const PASSWORD_RESET_TOKEN_TTL_SECS: u64 = 1_800;
pub const EMAIL_CHANGE_TOKEN_TTL_SECS: u64 = 1_800;
pub const FILE_TOKEN_TTL_SECS: u64 = 180;
pub const OTP_TTL_SECS: u64 = 180;
pub const OTP_LENGTH_DIGITS: u32 = 8;
pub const MFA_TTL_SECS: u64 = 1_800;

fn base_type() -> CollectionType {
    CollectionType::Base
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Base,
    Auth,
    View,
}

impl CollectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Base => "base",
            CollectionType::Auth => "auth",
            CollectionType::View => "view",
        }
    }
}

/// A collection definition, as stored in `_collections` and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `base` when omitted, as PocketBase.
    #[serde(rename = "type", default = "base_type")]
    pub kind: CollectionType,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub fields: Vec<Field>,
    #[serde(default)]
    pub indexes: Vec<String>,
    #[serde(default)]
    pub list_rule: Option<String>,
    #[serde(default)]
    pub view_rule: Option<String>,
    #[serde(default)]
    pub create_rule: Option<String>,
    #[serde(default)]
    pub update_rule: Option<String>,
    #[serde(default)]
    pub delete_rule: Option<String>,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub updated: String,
    /// Only for view collections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_query: Option<String>,
    /// Only for auth collections; its keys sit flat beside the common ones.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthOptions>,
}

/// The options of an auth collection (PocketBase's keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthOptions {
    pub auth_rule: Option<String>,
    pub manage_rule: Option<String>,
    pub auth_alert: AuthAlert,
    pub oauth2: OAuth2Options,
    pub password_auth: PasswordAuth,
    pub mfa: Mfa,
    pub otp: Otp,
    pub auth_token: TokenOptions,
    pub password_reset_token: TokenOptions,
    pub email_change_token: TokenOptions,
    pub verification_token: TokenOptions,
    pub file_token: TokenOptions,
    pub verification_template: EmailTemplate,
    pub reset_password_template: EmailTemplate,
    pub confirm_email_change_template: EmailTemplate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EmailTemplate {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthAlert {
    pub enabled: bool,
    pub email_template: EmailTemplate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OAuth2Options {
    pub enabled: bool,
    pub mapped_fields: OAuth2MappedFields,
    pub providers: Vec<OAuth2Provider>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OAuth2MappedFields {
    pub id: String,
    pub name: String,
    pub username: String,
    #[serde(rename = "avatarURL")]
    pub avatar_url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OAuth2Provider {
    pub name: String,
    pub client_id: String,
    /// Write-only.
    #[serde(skip_serializing)]
    pub client_secret: String,
    #[serde(rename = "authURL")]
    pub auth_url: String,
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    #[serde(rename = "userInfoURL")]
    pub user_info_url: String,
    pub display_name: String,
    pub pkce: Option<bool>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordAuth {
    pub enabled: bool,
    pub identity_fields: Vec<String>,
}

impl Default for PasswordAuth {
    fn default() -> Self {
        PasswordAuth { enabled: true, identity_fields: vec!["email".into()] }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Mfa {
    pub enabled: bool,
    pub duration: u64,
    pub rule: String,
}

impl Default for Mfa {
    fn default() -> Self {
        Mfa { enabled: false, duration: MFA_TTL_SECS, rule: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Otp {
    pub enabled: bool,
    pub duration: u64,
    pub length: u32,
    pub email_template: EmailTemplate,
}

impl Default for Otp {
    fn default() -> Self {
        Otp {
            enabled: false,
            duration: OTP_TTL_SECS,
            length: OTP_LENGTH_DIGITS,
            email_template: template("OTP for {APP_NAME}", "Your one-time password is {OTP}."),
        }
    }
}

/// A token kind's lifetime; `secret` may be set on input (rotation) and is never output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenOptions {
    pub duration: u64,
    #[serde(skip_serializing)]
    pub secret: String,
}

fn ttl(secs: u64) -> TokenOptions {
    TokenOptions { duration: secs, secret: String::new() }
}

fn template(subject: &str, body: &str) -> EmailTemplate {
    EmailTemplate { subject: subject.into(), body: body.into() }
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            auth_rule: Some(String::new()),
            manage_rule: None,
            auth_alert: AuthAlert {
                enabled: true,
                email_template: template(
                    "Login from a new location",
                    "<p>Hello,</p><p>Your {APP_NAME} account was just signed in to from a new location.</p><p>If this wasn't you, change your password now.</p>",
                ),
            },
            oauth2: OAuth2Options::default(),
            password_auth: PasswordAuth::default(),
            mfa: Mfa::default(),
            otp: Otp::default(),
            auth_token: ttl(AUTH_TOKEN_TTL_SECS),
            password_reset_token: ttl(PASSWORD_RESET_TOKEN_TTL_SECS),
            email_change_token: ttl(EMAIL_CHANGE_TOKEN_TTL_SECS),
            verification_token: ttl(VERIFICATION_TOKEN_TTL_SECS),
            file_token: ttl(FILE_TOKEN_TTL_SECS),
            verification_template: template(
                "Verify your {APP_NAME} email",
                "<p>Welcome to {APP_NAME}.</p><p><a href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\">Verify your email address</a></p>",
            ),
            reset_password_template: template(
                "Reset your {APP_NAME} password",
                "<p>Someone asked to reset your {APP_NAME} password.</p><p><a href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\">Choose a new password</a></p><p>If that wasn't you, ignore this email.</p>",
            ),
            confirm_email_change_template: template(
                "Confirm your new {APP_NAME} email",
                "<p><a href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\">Confirm your new email address</a></p>",
            ),
        }
    }
}

fn text(name: &str, opts: TextOptions) -> Field {
    Field::new(name, FieldKind::Text(opts))
}

/// The `id` field every base and auth collection has.
pub fn id_field() -> Field {
    let mut f = text(
        "id",
        TextOptions {
            required: true,
            min: 15,
            max: 15,
            pattern: "^[a-z0-9]+$".into(),
            autogenerate_pattern: "[a-z0-9]{15}".into(),
            primary_key: true,
            ..Default::default()
        },
    );
    f.system = true;
    f
}

fn system(mut f: Field, hidden: bool) -> Field {
    f.system = true;
    f.hidden = hidden;
    f
}

impl Collection {
    /// A blank collection of `kind` named `name`, with the system fields, indexes and options
    /// PocketBase's scaffold has. Rules start as `None` (superusers only).
    pub fn scaffold(kind: CollectionType, name: &str) -> Collection {
        let mut c = Collection {
            id: if name.is_empty() { String::new() } else { default_collection_id(kind.as_str(), name) },
            name: name.to_owned(),
            kind,
            system: false,
            fields: Vec::new(),
            indexes: Vec::new(),
            list_rule: None,
            view_rule: None,
            create_rule: None,
            update_rule: None,
            delete_rule: None,
            created: String::new(),
            updated: String::new(),
            view_query: None,
            auth: None,
        };
        match kind {
            CollectionType::Base => c.fields.push(id_field()),
            CollectionType::View => c.view_query = Some(String::new()),
            CollectionType::Auth => {
                c.fields.push(id_field());
                c.fields.push(system(
                    Field::new("password", FieldKind::Password(PasswordOptions { required: true, min: PASSWORD_MIN_CHARS_DEFAULT as u32, ..Default::default() })),
                    true,
                ));
                c.fields.push(system(
                    text("tokenKey", TextOptions { required: true, min: 30, max: 60, autogenerate_pattern: "[a-zA-Z0-9]{50}".into(), ..Default::default() }),
                    true,
                ));
                c.fields.push(system(Field::new("email", FieldKind::Email(DomainOptions { required: true, ..Default::default() })), false));
                c.fields.push(system(Field::new("emailVisibility", FieldKind::Bool(BoolOptions::default())), false));
                c.fields.push(system(Field::new("verified", FieldKind::Bool(BoolOptions::default())), false));
                c.auth = Some(AuthOptions::default());
                if !name.is_empty() {
                    c.indexes = auth_indexes(name);
                }
            }
        }
        c
    }

    /// The autodate `created` and `updated` fields new collections usually carry.
    pub fn with_timestamps(mut self) -> Collection {
        self.fields.push(Field::new("created", FieldKind::Autodate(AutodateOptions { on_create: true, ..Default::default() })));
        self.fields.push(Field::new("updated", FieldKind::Autodate(AutodateOptions { on_create: true, on_update: true, ..Default::default() })));
        self
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Brings type-dependent parts in line with the type: auth options exist exactly on auth
    /// collections, a view query exactly on views. Call after deserialising input.
    pub fn normalize(&mut self) {
        match self.kind {
            CollectionType::Auth => {
                if self.auth.is_none() {
                    self.auth = Some(AuthOptions::default());
                }
                self.view_query = None;
            }
            CollectionType::View => {
                self.auth = None;
                if self.view_query.is_none() {
                    self.view_query = Some(String::new());
                }
            }
            CollectionType::Base => {
                self.auth = None;
                self.view_query = None;
            }
        }
    }

    /// Whole-definition checks that need no database: names, field uniqueness, each field's
    /// options, required system fields, view rules. Reference checks (relation targets exist,
    /// name not taken) belong to the store.
    pub fn validate(&self) -> SchemaErrors {
        let mut errors = SchemaErrors::default();
        if let Err(e) = check_collection_name(&self.name) {
            errors.add("name", e);
        }
        if self.name.starts_with('_') && !self.system {
            errors.add("name", Invalid::new("validation_invalid_name", "Names starting with an underscore are reserved for system collections."));
        }
        let auth = self.kind == CollectionType::Auth;
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            f.validate_definition(i, auth, &mut errors);
            if !names.insert(f.name.to_ascii_lowercase()) {
                errors.add(format!("fields.{i}.name"), Invalid::new("validation_not_unique", "Duplicated or invalid field name."));
            }
            if !f.id.is_empty() && !ids.insert(f.id.as_str()) {
                errors.add(format!("fields.{i}.id"), Invalid::new("validation_not_unique", "Duplicated field id."));
            }
        }
        match self.kind {
            CollectionType::Base | CollectionType::Auth => {
                let id_ok = self.field("id").is_some_and(|f| matches!(&f.kind, FieldKind::Text(o) if o.primary_key));
                if !id_ok {
                    errors.add("fields", Invalid::new("validation_missing_id_field", "The collection must have a primary key text field named \"id\"."));
                }
                if self.fields.iter().filter(|f| matches!(&f.kind, FieldKind::Text(o) if o.primary_key)).count() > 1 {
                    errors.add("fields", Invalid::new("validation_multiple_primary_keys", "Only the \"id\" field can be a primary key."));
                }
            }
            CollectionType::View => {
                if self.view_query.as_deref().is_none_or(|q| q.trim().is_empty()) {
                    errors.add("viewQuery", Invalid::new("validation_required", "Cannot be blank."));
                }
                for (key, rule) in [("createRule", &self.create_rule), ("updateRule", &self.update_rule), ("deleteRule", &self.delete_rule)] {
                    if rule.is_some() {
                        errors.add(key, Invalid::new("validation_nil_required", "View collections are read-only: this rule must be null."));
                    }
                }
            }
        }
        if auth {
            for name in ["password", "tokenKey", "email", "emailVisibility", "verified"] {
                if self.field(name).is_none() {
                    errors.add("fields", Invalid::new("validation_missing_system_field", format!("The auth field \"{name}\" cannot be removed.")));
                }
            }
        }
        errors
    }

    /// Puts back the unique `tokenKey` and `email` indexes of an auth collection when the
    /// submitted `indexes` leave them out (or weaken them), as PocketBase re-adds them: without
    /// them two accounts could share an email, and password reset and OAuth2 linking, which
    /// look an account up by email, would pick one at random. Call before creating indexes.
    pub fn ensure_auth_indexes(&mut self) {
        if self.kind != CollectionType::Auth {
            return;
        }
        let tag = if self.id.is_empty() { self.name.clone() } else { self.id.clone() };
        let table = quote_ident(&self.name);
        for (column, partial) in [("tokenKey", false), ("email", true)] {
            if self.indexes.iter().any(|sql| is_unique_index_on(sql, column)) {
                continue;
            }
            let name = quote_ident(&format!("idx_{column}_{tag}"));
            let col = quote_ident(column);
            let filter = if partial { format!(" WHERE {col} != ''") } else { String::new() };
            self.indexes.push(format!("CREATE UNIQUE INDEX {name} ON {table} ({col}){filter}"));
        }
    }

    /// Takes over write-only secrets from `old` (the stored definition) wherever this one
    /// leaves them empty: an OAuth2 provider keeps its client secret (matched by name) and a
    /// token kind its secret. The API never shows secrets, so a definition sent back to it
    /// (a PATCH, an exported-then-imported schema) carries none and must not blank them.
    pub fn keep_secrets_from(&mut self, old: &Collection) {
        let (Some(old), Some(new)) = (&old.auth, &mut self.auth) else { return };
        for p in new.oauth2.providers.iter_mut().filter(|p| p.client_secret.is_empty()) {
            if let Some(o) = old.oauth2.providers.iter().find(|o| o.name == p.name) {
                p.client_secret.clone_from(&o.client_secret);
            }
        }
        for (n, o) in [
            (&mut new.auth_token, &old.auth_token),
            (&mut new.password_reset_token, &old.password_reset_token),
            (&mut new.email_change_token, &old.email_change_token),
            (&mut new.verification_token, &old.verification_token),
            (&mut new.file_token, &old.file_token),
        ] {
            if n.secret.is_empty() {
                n.secret.clone_from(&o.secret);
            }
        }
    }

    /// `CREATE TABLE` for a base or auth collection (views are created from their query).
    pub fn create_table_sql(&self) -> String {
        let columns: Vec<String> = self.fields.iter().map(|f| format!("{} {}", quote_ident(&f.name), f.column_type())).collect();
        format!("CREATE TABLE {} ({})", quote_ident(&self.name), columns.join(", "))
    }
}

/// Whether `sql` is a unique index over exactly `column` that holds for every row (no
/// `WHERE`, or only the `column != ''` of the default index). Quotes, case and spaces are
/// ignored; anything else (an expression, more columns, another condition) does not count.
fn is_unique_index_on(sql: &str, column: &str) -> bool {
    let flatten = |text: &str| -> String {
        text.chars().filter(|c| !c.is_whitespace() && !matches!(c, '"' | '`' | '[' | ']')).collect::<String>().to_ascii_lowercase()
    };
    let lower = sql.to_ascii_lowercase();
    let Some(on) = lower.find(" on ") else { return false };
    if !flatten(&lower[..on]).starts_with("createuniqueindex") {
        return false;
    }
    let after_on = flatten(&lower[on..]);
    let Some(open) = after_on.find('(') else { return false };
    let rest = &after_on[open + 1..];
    let Some(close) = rest.find(')') else { return false };
    let column = column.to_ascii_lowercase();
    let tail = &rest[close + 1..];
    rest[..close] == column
        && (tail.is_empty() || tail == format!("where{column}!=''") || tail == format!("where{column}<>''"))
}

/// The unique indexes every auth collection carries.
fn auth_indexes(name: &str) -> Vec<String> {
    let n = quote_ident(name);
    let base = name.to_owned();
    vec![
        format!("CREATE UNIQUE INDEX {} ON {n} (\"tokenKey\")", quote_ident(&format!("idx_tokenKey_{base}"))),
        format!("CREATE UNIQUE INDEX {} ON {n} (\"email\") WHERE \"email\" != ''", quote_ident(&format!("idx_email_{base}"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_scaffold_has_only_the_id_field() {
        let c = Collection::scaffold(CollectionType::Base, "posts");
        assert_eq!(c.fields.len(), 1);
        assert_eq!(c.fields[0].name, "id");
        assert!(c.id.starts_with("pbc_"));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(v["type"], "base");
        assert!(v["listRule"].is_null());
        assert!(v.get("authRule").is_none(), "auth keys only on auth collections");
        assert!(v.get("viewQuery").is_none());
    }

    #[test]
    fn auth_scaffold_has_system_fields_and_hides_secrets() {
        let mut c = Collection::scaffold(CollectionType::Auth, "users");
        if let Some(a) = c.auth.as_mut() {
            a.auth_token.secret = "s3cret".into();
            a.oauth2.providers.push(OAuth2Provider { name: "google".into(), client_secret: "hush".into(), ..Default::default() });
        }
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let text = serde_json::to_string(&c).expect("json");
        assert!(!text.contains("s3cret") && !text.contains("hush"), "secrets never leave: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["authToken"]["duration"], AUTH_TOKEN_TTL_SECS);
        assert_eq!(v["passwordAuth"]["identityFields"], json!(["email"]));
        let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "password", "tokenKey", "email", "emailVisibility", "verified"]);
        assert!(c.field("password").is_some_and(|f| f.hidden));
        assert_eq!(c.indexes.len(), 2);
    }

    #[test]
    fn pocketbase_collection_json_is_read() {
        let input = json!({
            "name": "posts", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "@request.auth.id != ''",
            "fields": [
                {"name": "id", "type": "text", "primaryKey": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}", "required": true, "system": true, "id": "text3208210256"},
                {"name": "title", "type": "text", "id": "text724990059"},
                {"name": "tags", "type": "select", "values": ["a", "b"], "maxSelect": 2, "id": "select1"}
            ],
            "indexes": ["CREATE INDEX idx_title ON posts (title)"]
        });
        let mut c: Collection = serde_json::from_value(input).expect("parse");
        c.normalize();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.list_rule.as_deref(), Some(""));
        assert_eq!(c.update_rule, None);
        assert_eq!(
            c.create_table_sql(),
            "CREATE TABLE \"posts\" (\"id\" TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL, \"title\" TEXT DEFAULT '' NOT NULL, \"tags\" JSON DEFAULT '[]' NOT NULL)"
        );
    }

    #[test]
    fn the_table_sql_runs_in_sqlite() {
        let c = Collection::scaffold(CollectionType::Auth, "users").with_timestamps();
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(&c.create_table_sql()).expect("create table");
        for idx in &c.indexes {
            conn.execute_batch(idx).expect("index");
        }
        conn.execute("INSERT INTO users (email, tokenKey) VALUES ('a@b.c', 'k')", []).expect("insert");
        let id: String = conn.query_row("SELECT id FROM users", [], |r| r.get(0)).expect("id");
        assert_eq!(id.len(), 15, "the default id has PocketBase's length");
        let dup = conn.execute("INSERT INTO users (email, tokenKey) VALUES ('a@b.c', 'k2')", []);
        assert!(dup.is_err(), "email is unique");
    }

    #[test]
    fn whole_collection_errors() {
        let mut c = Collection::scaffold(CollectionType::Base, "bad name");
        c.fields.push(Field::new("title", FieldKind::Bool(BoolOptions::default())));
        c.fields.push(Field::new("Title", FieldKind::Bool(BoolOptions::default())));
        let e = c.validate();
        assert!(e.0.contains_key("name"));
        assert!(e.0.contains_key("fields.2.name"), "case-insensitive duplicate: {e:?}");

        let mut no_id = Collection::scaffold(CollectionType::Base, "x");
        no_id.fields.clear();
        assert!(no_id.validate().0.contains_key("fields"));

        let mut view = Collection::scaffold(CollectionType::View, "v");
        view.create_rule = Some(String::new());
        let e = view.validate();
        assert!(e.0.contains_key("viewQuery") && e.0.contains_key("createRule"), "{e:?}");

        let mut auth = Collection::scaffold(CollectionType::Auth, "members");
        auth.fields.retain(|f| f.name != "tokenKey");
        assert!(auth.validate().0.contains_key("fields"));

        let underscored = Collection::scaffold(CollectionType::Base, "_secret");
        assert!(underscored.validate().0.contains_key("name"));
    }

    #[test]
    fn auth_indexes_are_put_back_when_left_out_or_weakened() {
        let mut c = Collection::scaffold(CollectionType::Auth, "members");
        c.id = "pbc_1".into();
        c.indexes = vec!["CREATE INDEX idx_v ON members (verified)".into()];
        c.ensure_auth_indexes();
        assert_eq!(c.indexes.len(), 3, "{:?}", c.indexes);
        assert!(c.indexes[2].contains("\"idx_email_pbc_1\" ON \"members\" (\"email\") WHERE"));
        let before = c.indexes.clone();
        c.ensure_auth_indexes();
        assert_eq!(c.indexes, before, "idempotent");
        // A user's own spelling of the unique indexes counts; a weaker one does not.
        c.indexes = vec![
            "create unique index my_tk on `members` ( `tokenKey` )".into(),
            "CREATE UNIQUE INDEX e ON members (email) WHERE verified = 1".into(),
        ];
        c.ensure_auth_indexes();
        assert_eq!(c.indexes.len(), 3, "{:?}", c.indexes);
        assert!(is_unique_index_on("CREATE UNIQUE INDEX x ON t (\"email\") WHERE \"email\" != ''", "email"));
        assert!(is_unique_index_on("CREATE UNIQUE INDEX idx_on_x ON t (Email)", "email"));
        for weak in ["CREATE INDEX x ON t (email)", "CREATE UNIQUE INDEX x ON t (email, name)", "CREATE UNIQUE INDEX x ON t (lower(email))"] {
            assert!(!is_unique_index_on(weak, "email"), "{weak}");
        }
        let mut base = Collection::scaffold(CollectionType::Base, "posts");
        base.ensure_auth_indexes();
        assert!(base.indexes.is_empty());
    }

    #[test]
    fn normalize_keeps_type_specific_parts_consistent() {
        let mut c: Collection = serde_json::from_value(json!({"name": "x", "type": "base", "authRule": ""})).expect("parse");
        c.normalize();
        assert!(c.auth.is_none());
        let mut a: Collection = serde_json::from_value(json!({"name": "u", "type": "auth"})).expect("parse");
        a.normalize();
        assert!(a.auth.is_some());
    }
}
