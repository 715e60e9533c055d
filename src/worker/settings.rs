//! Application settings in PocketBase's shape (`GET/PATCH /api/settings`), stored in `_params`
//! and cached per worker with the same version check as collections.
//!
//! Secrets (the SMTP password, S3 secrets) are not fields of [`Settings`] at all, so no
//! serialisation of the settings can ever leak them. On a PocketBase-layout data dir (every
//! dir made since fresh dirs took that layout, and every dir PocketBase made) they are stored
//! where PocketBase keeps them, inside the `settings` row, so PocketBase still reads them;
//! on an older vaultbase dir, or whenever `VAULTBASE_ENCRYPTION_KEY` is set (then sealed,
//! which PocketBase cannot read), they are in a separate `_params` row. Only
//! the parts later features read are typed strictly; every section keeps PocketBase's keys and
//! defaults so the SDK and admin tools see the shape they expect.

use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::shared::db::{Db, DbError};
use crate::worker::versioned::{bump_version, Versioned, VersionedCache, STALE_VERSION};

/// The `_vb_versions` row for settings.
pub const SETTINGS_VERSION_KEY: &str = "settings";
/// The bus `Invalidate { what }` value for settings changes.
pub const INVALIDATE_SETTINGS: &str = "settings";
const PARAMS_ID: &str = "settings";
const SECRETS_ID: &str = "settings_secrets";

/// PocketBase's batch defaults: 50 requests, 3 s, and 0 meaning a 128 MiB body.
pub const DEFAULT_BATCH_MAX_REQUESTS: u32 = 50;
pub const DEFAULT_BATCH_TIMEOUT_SECS: u64 = 3;
pub const DEFAULT_BATCH_MAX_BODY_BYTES: u64 = 128 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    pub meta: Meta,
    pub smtp: Smtp,
    pub s3: S3,
    pub backups: Backups,
    pub logs: Logs,
    pub batch: Batch,
    pub rate_limits: RateLimits,
    pub trusted_proxy: TrustedProxy,
    #[serde(rename = "superuserIPs")]
    pub superuser_ips: Vec<String>,
    /// vaultbase's limits on password attempts and mail requests (see `limits`).
    pub account_limits: crate::worker::limits::AccountLimits,
    /// vaultbase's SQL console (`POST /api/sql`).
    pub sql: SqlConsole,
}

/// `sql: {readOnly}`: with `readOnly` the console refuses every statement that would write
/// (as SQLite judges it); reads still run. Off by default, as PocketBase allows writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SqlConsole {
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    pub app_name: String,
    #[serde(rename = "appURL")]
    pub app_url: String,
    pub sender_name: String,
    pub sender_address: String,
    pub hide_controls: bool,
    pub accent_color: String,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            app_name: "Acme".into(),
            app_url: "http://localhost:8091".into(),
            sender_name: "Support".into(),
            sender_address: "support@example.com".into(),
            hide_controls: false,
            accent_color: "#1055c9".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Smtp {
    pub enabled: bool,
    pub port: u16,
    pub host: String,
    pub username: String,
    pub auth_method: String,
    pub tls: bool,
    pub local_name: String,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp { enabled: false, port: 587, host: "smtp.example.com".into(), username: String::new(), auth_method: String::new(), tls: false, local_name: String::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct S3 {
    pub enabled: bool,
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key: String,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Backups {
    pub cron: String,
    pub cron_max_keep: u32,
    pub s3: S3,
}

impl Default for Backups {
    fn default() -> Self {
        Backups { cron: String::new(), cron_max_keep: 3, s3: S3::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Logs {
    pub max_data_size: u64,
    /// Days kept; 0 turns logging off. Signed so a negative value gets PocketBase's error.
    pub max_days: i64,
    pub min_level: i32,
    #[serde(rename = "logIP")]
    pub log_ip: bool,
    pub log_auth_id: bool,
}

impl Default for Logs {
    fn default() -> Self {
        Logs { max_data_size: 0, max_days: 5, min_level: 0, log_ip: true, log_auth_id: false }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Batch {
    pub enabled: bool,
    pub max_requests: u32,
    /// Seconds; 0 or less means [`DEFAULT_BATCH_TIMEOUT_SECS`].
    pub timeout: i64,
    /// Bytes; 0 means [`DEFAULT_BATCH_MAX_BODY_BYTES`].
    pub max_body_size: u64,
}

impl Default for Batch {
    fn default() -> Self {
        Batch { enabled: false, max_requests: DEFAULT_BATCH_MAX_REQUESTS, timeout: DEFAULT_BATCH_TIMEOUT_SECS as i64, max_body_size: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimitRule {
    pub label: String,
    pub audience: String,
    pub duration: u64,
    pub max_requests: u32,
}

impl Default for RateLimitRule {
    fn default() -> Self {
        RateLimitRule { label: String::new(), audience: String::new(), duration: 1, max_requests: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimits {
    pub rules: Vec<RateLimitRule>,
    #[serde(rename = "excludedIPs")]
    pub excluded_ips: Vec<String>,
    pub enabled: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        let rule = |label: &str, duration, max_requests| RateLimitRule { label: label.into(), audience: String::new(), duration, max_requests };
        RateLimits {
            rules: vec![rule("*:auth", 3, 2), rule("*:create", 5, 20), rule("/api/batch", 1, 3), rule("/api/", 10, 300)],
            excluded_ips: Vec::new(),
            enabled: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TrustedProxy {
    pub headers: Vec<String>,
    #[serde(rename = "useLeftmostIP")]
    pub use_leftmost_ip: bool,
}

/// Write-only values, kept out of [`Settings`] so they can never be serialised back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secrets {
    pub smtp_password: String,
    pub s3_secret: String,
    pub backups_s3_secret: String,
}

impl Batch {
    pub fn timeout_secs(&self) -> u64 {
        if self.timeout <= 0 {
            DEFAULT_BATCH_TIMEOUT_SECS
        } else {
            self.timeout as u64
        }
    }

    pub fn max_body_bytes(&self) -> u64 {
        if self.max_body_size == 0 {
            DEFAULT_BATCH_MAX_BODY_BYTES
        } else {
            self.max_body_size
        }
    }
}

/// Settings with the version they were read at.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub version: i64,
    pub settings: Settings,
}

impl Versioned for Loaded {
    fn version(&self) -> i64 {
        self.version
    }

    fn stale() -> Self {
        Loaded { version: STALE_VERSION, settings: Settings::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Values of the wrong shape, keyed like PocketBase's `data`.
    #[error("invalid settings")]
    Invalid(Map<String, Value>),
    #[error("stored settings are unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the stored secrets cannot be decrypted: {0}")]
    Sealed(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn read_row(conn: &Connection, id: &str) -> Result<Option<String>, SettingsError> {
    // PocketBase writes `value` as a BLOB; CAST reads either storage class as text.
    let text: Option<String> =
        conn.prepare_cached("SELECT CAST(value AS TEXT) FROM _params WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    match text {
        // PocketBase's `--encryptionEnv` encrypts this row (see `shared::pb_params`).
        Some(t) if id == PARAMS_ID => Ok(Some(crate::shared::pb_params::open(&t).map_err(|e| SettingsError::Sealed(e.to_string()))?)),
        other => Ok(other),
    }
}

fn write_row(tx: &Transaction<'_>, id: &str, value: &str) -> Result<(), SettingsError> {
    let sealed;
    let value = if id == PARAMS_ID {
        sealed = crate::shared::pb_params::seal(value).map_err(|e| SettingsError::Sealed(e.to_string()))?;
        sealed.as_str()
    } else {
        value
    };
    tx.execute(
        "INSERT INTO _params (id, value) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = strftime('%Y-%m-%d %H:%M:%fZ')",
        [id, value],
    )?;
    Ok(())
}

/// Reads the settings and their version in one snapshot.
pub fn load(conn: &Connection) -> Result<Loaded, SettingsError> {
    crate::shared::db::read_tx(conn, |conn| {
        let version = crate::worker::versioned::read_version(conn, SETTINGS_VERSION_KEY)?;
        let settings = match read_row(conn, PARAMS_ID)? {
            Some(text) => serde_json::from_str(&text)?,
            None => Settings::default(),
        };
        Ok(Loaded { version, settings })
    })
}

/// Reads the secrets (for the features that need them: mail, S3). On a PocketBase-layout dir
/// they are inside the settings row, where PocketBase keeps them; a value found only in
/// vaultbase's separate row (written there before) still counts.
pub fn load_secrets(conn: &Connection) -> Result<Secrets, SettingsError> {
    let separate = match read_row(conn, SECRETS_ID)? {
        Some(text) => serde_json::from_str(&open_secrets_row(&text)?)?,
        None => Secrets::default(),
    };
    if !crate::shared::db::migrate::is_pocketbase(conn)? {
        return Ok(separate);
    }
    let inline = match read_row(conn, PARAMS_ID)? {
        Some(text) => secrets_in(&serde_json::from_str(&text)?),
        None => Secrets::default(),
    };
    let pick = |a: String, b: String| if a.is_empty() { b } else { a };
    Ok(Secrets {
        smtp_password: pick(inline.smtp_password, separate.smtp_password),
        s3_secret: pick(inline.s3_secret, separate.s3_secret),
        backups_s3_secret: pick(inline.backups_s3_secret, separate.backups_s3_secret),
    })
}

/// Where PocketBase's settings JSON keeps each write-only value.
const SMTP_PASSWORD_AT: (&str, &str) = ("/smtp", "password");
const S3_SECRET_AT: (&str, &str) = ("/s3", "secret");
const BACKUPS_S3_SECRET_AT: (&str, &str) = ("/backups/s3", "secret");

/// The write-only values inside a settings JSON in PocketBase's shape.
fn secrets_in(settings: &Value) -> Secrets {
    let at = |(section, key): (&str, &str)| -> String {
        settings.pointer(section).and_then(|s| s.get(key)).and_then(Value::as_str).unwrap_or_default().to_owned()
    };
    Secrets { smtp_password: at(SMTP_PASSWORD_AT), s3_secret: at(S3_SECRET_AT), backups_s3_secret: at(BACKUPS_S3_SECRET_AT) }
}

/// Puts the write-only values into a settings JSON where PocketBase keeps them.
fn put_secrets(settings: &mut Value, secrets: &Secrets) {
    for ((section, key), value) in [
        (SMTP_PASSWORD_AT, &secrets.smtp_password),
        (S3_SECRET_AT, &secrets.s3_secret),
        (BACKUPS_S3_SECRET_AT, &secrets.backups_s3_secret),
    ] {
        if let Some(Value::Object(o)) = settings.pointer_mut(section) {
            o.insert(key.to_owned(), Value::String(value.clone()));
        }
    }
}

/// The secrets row as stored: with a key configured, the whole JSON sealed (vbenc format) and
/// kept as a JSON string; without one, the JSON itself.
fn seal_secrets_row(secrets: &Secrets) -> Result<String, SettingsError> {
    let json = serde_json::to_string(secrets)?;
    match crate::shared::encryption::keyring() {
        Some(ring) => {
            let sealed = ring.seal(json.as_bytes()).map_err(|e| SettingsError::Sealed(e.to_string()))?;
            Ok(Value::String(sealed).to_string())
        }
        None => Ok(json),
    }
}

/// The secrets JSON from a stored row, sealed or not (written before a key was set).
fn open_secrets_row(text: &str) -> Result<String, SettingsError> {
    match serde_json::from_str::<Value>(text)? {
        Value::String(sealed) if crate::shared::encryption::is_sealed(sealed.as_bytes()) => {
            let ring = crate::shared::encryption::keyring().ok_or_else(|| SettingsError::Sealed("no VAULTBASE_ENCRYPTION_KEY".into()))?;
            ring.open_text(&sealed).map_err(|e| SettingsError::Sealed(e.to_string()))
        }
        _ => Ok(text.to_owned()),
    }
}

/// Merges `patch` over `base`: objects recursively, anything else replaced (PocketBase PATCH).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Pulls the write-only keys out of a PATCH body. An absent or empty value keeps the stored one.
fn take_secrets(patch: &mut Map<String, Value>, secrets: &mut Secrets) {
    let take = |section: &mut Map<String, Value>, key: &str, slot: &mut String| {
        if let Some(Value::String(s)) = section.remove(key) {
            if !s.is_empty() {
                *slot = s;
            }
        }
    };
    if let Some(Value::Object(smtp)) = patch.get_mut("smtp") {
        take(smtp, "password", &mut secrets.smtp_password);
    }
    if let Some(Value::Object(s3)) = patch.get_mut("s3") {
        take(s3, "secret", &mut secrets.s3_secret);
    }
    if let Some(Value::Object(s3)) = patch.get_mut("backups").and_then(|b| b.get_mut("s3")) {
        take(s3, "secret", &mut secrets.backups_s3_secret);
    }
}

fn validate(s: &Settings) -> Map<String, Value> {
    let mut data = Map::new();
    let mut nested = |section: &str, key: &str, code: &str, message: &str| {
        let entry = data.entry(section.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(key.to_owned(), serde_json::json!({"code": code, "message": message}));
        }
    };
    if s.meta.app_name.trim().is_empty() {
        nested("meta", "appName", "validation_required", "Cannot be blank.");
    }
    if !(s.meta.app_url.starts_with("http://") || s.meta.app_url.starts_with("https://")) {
        nested("meta", "appURL", "validation_invalid_url", "Must be a valid URL.");
    }
    if s.smtp.enabled && s.smtp.host.trim().is_empty() {
        nested("smtp", "host", "validation_required", "Cannot be blank.");
    }
    if s.batch.enabled && s.batch.max_requests == 0 {
        nested("batch", "maxRequests", "validation_required", "Cannot be blank.");
    }
    if s.logs.max_days < 0 {
        let err = serde_json::json!({"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 0.", "params": {"threshold": 0}});
        data.insert("logs".into(), serde_json::json!({ "maxDays": err }));
    }
    let rate_limits = validate_rate_limits(&s.rate_limits);
    if !rate_limits.is_empty() {
        data.insert("rateLimits".into(), Value::Object(rate_limits));
    }
    data
}

fn field_error(code: &str, message: &str) -> Value {
    serde_json::json!({"code": code, "message": message})
}

/// PocketBase's label forms: `METHOD /path`, `/path` (a prefix when it ends in `/`),
/// `collection:tag`, `*:tag`, or a plain tag; paths of word characters, `/` and `-`.
pub fn valid_rate_limit_label(label: &str) -> bool {
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let path = |s: &str| s.starts_with('/') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '-'));
    if let Some((method, rest)) = label.split_once(' ') {
        return word(method) && path(rest);
    }
    if let Some((left, right)) = label.split_once(':') {
        return (left == "*" || word(left)) && word(right);
    }
    path(label) || word(label)
}

/// `rateLimits` checks, keyed as PocketBase keys them: per rule index and field, then label
/// conflicts (the same label for everyone and for one audience), then bad `excludedIPs`.
fn validate_rate_limits(r: &RateLimits) -> Map<String, Value> {
    let mut out = Map::new();
    let mut rules = Map::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let mut fields = Map::new();
        if rule.label.is_empty() {
            fields.insert("label".into(), field_error("validation_required", "Cannot be blank."));
        } else if !valid_rate_limit_label(&rule.label) {
            fields.insert("label".into(), field_error("validation_match_invalid", "Must be in a valid format."));
        }
        if rule.max_requests == 0 {
            fields.insert("maxRequests".into(), field_error("validation_required", "Cannot be blank."));
        }
        if rule.duration == 0 {
            fields.insert("duration".into(), field_error("validation_required", "Cannot be blank."));
        }
        if !matches!(rule.audience.as_str(), "" | "@guest" | "@auth") {
            fields.insert("audience".into(), field_error("validation_in_invalid", "Must be a valid value."));
        }
        if !fields.is_empty() {
            rules.insert(i.to_string(), Value::Object(fields));
        }
    }
    if rules.is_empty() {
        if r.enabled && r.rules.is_empty() {
            out.insert("rules".into(), field_error("validation_required", "Cannot be blank."));
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, rule) in r.rules.iter().enumerate() {
            let full = format!("{}@@{}", rule.label, rule.audience);
            if seen.iter().any(|k| k.starts_with(&full) || full.starts_with(k.as_str())) {
                let message = format!("Rate limit rule configuration with label {} already exists or conflicts with another rule.", rule.label);
                let err = serde_json::json!({"code": "validation_conflicting_rate_limit_rule", "message": message, "params": {"label": rule.label}});
                out.insert("rules".into(), serde_json::json!({ i.to_string(): {"label": err} }));
                break;
            }
            seen.push(full);
        }
    } else {
        out.insert("rules".into(), Value::Object(rules));
    }
    let mut ips = Map::new();
    for (i, entry) in r.excluded_ips.iter().enumerate() {
        if crate::worker::ratelimit::parse_subnet(entry).is_none() {
            ips.insert(i.to_string(), field_error("validation_invlaid_ip_or_subnet", "Invalid IP or CIDR subnet."));
        }
    }
    if !ips.is_empty() {
        out.insert("excludedIPs".into(), Value::Object(ips));
    }
    out
}

/// Applies a PATCH body in one write transaction; returns the new settings.
pub fn patch(tx: &Transaction<'_>, body: Map<String, Value>) -> Result<Settings, SettingsError> {
    let current: Settings = match read_row(tx, PARAMS_ID)? {
        Some(text) => serde_json::from_str(&text)?,
        None => Settings::default(),
    };
    let mut secrets = load_secrets(tx)?;
    let mut body = body;
    take_secrets(&mut body, &mut secrets);
    let mut merged = serde_json::to_value(&current)?;
    // Type errors are reported per section, as PocketBase reports per field.
    let mut errors = Map::new();
    for (key, value) in body {
        let mut candidate = merged.clone();
        merge(&mut candidate, Value::Object(Map::from_iter([(key.clone(), value.clone())])));
        if serde_json::from_value::<Settings>(candidate).is_err() {
            errors.insert(key, serde_json::json!({"code": "validation_invalid_value", "message": "Invalid value."}));
        } else {
            merge(&mut merged, Value::Object(Map::from_iter([(key, value)])));
        }
    }
    if !errors.is_empty() {
        return Err(SettingsError::Invalid(errors));
    }
    let next: Settings = serde_json::from_value(merged)?;
    let invalid = validate(&next);
    if !invalid.is_empty() {
        return Err(SettingsError::Invalid(invalid));
    }
    // With VAULTBASE_ENCRYPTION_KEY the secrets stay sealed in vaultbase's own row even on a
    // PocketBase-layout dir: sealing at rest is a vaultbase-only feature (README).
    let sealing = crate::shared::encryption::keyring().is_some();
    if !sealing && crate::shared::db::migrate::is_pocketbase(tx)? {
        // PocketBase reads the secrets from this row only (encrypted whole with its
        // --encryptionEnv key, see `write_row`), never from vaultbase's separate one.
        let mut stored = serde_json::to_value(&next)?;
        put_secrets(&mut stored, &secrets);
        write_row(tx, PARAMS_ID, &stored.to_string())?;
        tx.execute("DELETE FROM _params WHERE id = ?1", [SECRETS_ID])?;
    } else {
        write_row(tx, PARAMS_ID, &serde_json::to_string(&next)?)?;
        write_row(tx, SECRETS_ID, &seal_secrets_row(&secrets)?)?;
    }
    bump_version(tx, SETTINGS_VERSION_KEY)?;
    Ok(next)
}

/// The per-worker settings cache.
pub struct SettingsCache(VersionedCache<Loaded>);

impl Default for SettingsCache {
    fn default() -> Self {
        SettingsCache(VersionedCache::new(SETTINGS_VERSION_KEY))
    }
}

impl SettingsCache {
    pub fn invalidate(&self) {
        self.0.invalidate();
    }

    pub async fn fresh(&self, db: &Db) -> Result<std::sync::Arc<Loaded>, SettingsError> {
        self.0.fresh(db, load).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut c).expect("migrate");
        (dir, c)
    }

    #[test]
    fn defaults_match_pocketbase_shape() {
        let v = serde_json::to_value(Settings::default()).expect("json");
        assert_eq!(v["batch"], serde_json::json!({"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}));
        assert_eq!(v["meta"]["appName"], "Acme");
        assert_eq!(v["rateLimits"]["rules"].as_array().map(Vec::len), Some(4));
        assert!(v["superuserIPs"].is_array());
        assert!(v["logs"]["logIP"].as_bool().is_some());
    }

    #[test]
    fn patch_merges_keeps_secrets_out_and_bumps_the_version() {
        let (_d, mut c) = conn();
        let before = load(&c).expect("load").version;
        let tx = c.transaction().expect("tx");
        let body = serde_json::json!({"batch": {"enabled": true}, "smtp": {"password": "hunter2", "host": "mail.example.com"}, "unknown": 1});
        let next = patch(&tx, body.as_object().cloned().unwrap_or_default()).expect("patch");
        tx.commit().expect("commit");
        assert!(next.batch.enabled);
        assert_eq!(next.batch.max_requests, 50, "untouched keys keep their values");
        assert_eq!(next.smtp.host, "mail.example.com");
        let loaded = load(&c).expect("load");
        assert!(loaded.version > before);
        assert!(!serde_json::to_string(&loaded.settings).expect("json").contains("hunter2"));
        assert_eq!(load_secrets(&c).expect("secrets").smtp_password, "hunter2");
        // A new data dir has PocketBase's layout: the password is where PocketBase reads it.
        let (inline, separate): (String, i64) = c
            .query_row(
                "SELECT (SELECT value->>'$.smtp.password' FROM _params WHERE id = 'settings'), (SELECT count(*) FROM _params WHERE id = ?1)",
                [SECRETS_ID],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("query");
        assert_eq!((inline.as_str(), separate), ("hunter2", 0));
    }

    #[test]
    fn rate_limit_rules_are_validated_as_pocketbase_does() {
        for ok in ["/api/", "/api/x-y", "POST /api/collections/", "posts:list", "*:create", "tag_1", "/"] {
            assert!(valid_rate_limit_label(ok), "{ok}");
        }
        for bad in ["bad label!", "posts:", "*:*", "GET api", "/api/?x", "a:b:c"] {
            assert!(!valid_rate_limit_label(bad), "{bad}");
        }
        let rule = |label: &str, audience: &str| RateLimitRule { label: label.into(), audience: audience.into(), duration: 1, max_requests: 1 };
        let conflict = RateLimits { rules: vec![rule("a:b", ""), rule("a:b", "@guest")], excluded_ips: vec!["nope".into()], enabled: true };
        let v = Value::Object(validate_rate_limits(&conflict));
        assert_eq!(v["rules"]["1"]["label"]["code"], "validation_conflicting_rate_limit_rule");
        assert_eq!(v["excludedIPs"]["0"]["code"], "validation_invlaid_ip_or_subnet");
        let split = RateLimits { rules: vec![rule("a:b", "@guest"), rule("a:b", "@auth")], excluded_ips: vec!["10.0.0.0/8".into()], enabled: true };
        assert!(validate_rate_limits(&split).is_empty(), "@guest and @auth may share a label");
        let empty = RateLimits { rules: vec![], excluded_ips: vec![], enabled: true };
        assert_eq!(Value::Object(validate_rate_limits(&empty))["rules"]["code"], "validation_required");
        let bad = RateLimits { rules: vec![RateLimitRule { label: "x y z".into(), audience: "x".into(), duration: 0, max_requests: 0 }], excluded_ips: vec![], enabled: false };
        let v = Value::Object(validate_rate_limits(&bad));
        for (field, code) in [("label", "validation_match_invalid"), ("audience", "validation_in_invalid"), ("duration", "validation_required"), ("maxRequests", "validation_required")] {
            assert_eq!(v["rules"]["0"][field]["code"], code, "{field}");
        }
    }

    #[test]
    fn bad_values_are_refused_per_section() {
        let (_d, mut c) = conn();
        let tx = c.transaction().expect("tx");
        let body = serde_json::json!({"batch": {"maxRequests": "many"}, "meta": {"appName": ""}});
        match patch(&tx, body.as_object().cloned().unwrap_or_default()) {
            Err(SettingsError::Invalid(data)) => assert!(data.contains_key("batch"), "{data:?}"),
            other => panic!("{other:?}"),
        }
    }
}
