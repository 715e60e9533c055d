//! Persisting collections: the `_collections` rows and the real tables behind them, changed
//! together in the caller's write transaction, with the `collections` version bumped in that
//! same transaction so every worker's cache notices (see [`super::cache`]).
//!
//! Every function here runs on the writer thread inside `Db::write` (or on a reader for
//! loads) and is synchronous; none of them may await, send mail or publish events. Changes
//! that would lose data (a field changing type, a multi-value field becoming single while a
//! record holds several values) are refused with a validation error instead of migrated, and
//! so is a definition the record queries could not serve (an API rule that does not compile
//! against the fields, a name SQLite cannot use as a bare alias). [`filter_ids`] answers
//! `GET /api/collections?filter=` with the records query compiler over `_collections`. With
//! `VAULTBASE_ENCRYPTION_KEY` set, the secrets kept in `options` are stored sealed and opened
//! on load; encrypted fields are checked and their data migrated here (`super::encrypted`).

use rusqlite::{Connection, Transaction};
use serde_json::{Map, Value};

use super::schema::names::{check_collection_name, default_field_id};
use super::schema::{quote_ident, Collection, CollectionType, FieldKind, Invalid, SchemaErrors};

/// The `_vb_versions` row that counts collection changes.
pub const COLLECTIONS_VERSION_KEY: &str = "collections";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The definition is invalid; `data` for the 400 response.
    #[error("invalid collection definition")]
    Invalid(SchemaErrors),
    /// A refused operation with PocketBase's message (400).
    #[error("{0}")]
    Refused(String),
    /// System collections cannot be deleted.
    #[error("system collections cannot be deleted")]
    SystemCollection,
    /// A `?filter=` over collections that does not parse or compile (400, PocketBase's
    /// generic message; the reason is for logs).
    #[error("bad collections filter: {0}")]
    BadFilter(String),
    #[error("the stored secrets of collection {id} cannot be decrypted: {reason}")]
    Sealed { id: String, reason: String },
    #[error("collection row {id} is unreadable: {source}")]
    Corrupt { id: String, source: serde_json::Error },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Db(#[from] crate::shared::db::DbError),
}

fn invalid(path: &str, code: &'static str, message: &str) -> StoreError {
    let mut e = SchemaErrors::default();
    e.add(path, Invalid::new(code, message));
    StoreError::Invalid(e)
}

const COMMON_KEYS: &[&str] = &[
    "id", "name", "type", "system", "fields", "indexes", "listRule", "viewRule", "createRule", "updateRule",
    "deleteRule", "created", "updated",
];

/// The current collections version.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    crate::worker::versioned::read_version(conn, COLLECTIONS_VERSION_KEY)
}

fn bump_version(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    crate::worker::versioned::bump_version(tx, COLLECTIONS_VERSION_KEY)
}

/// The `_collections` table seen as a collection, so the records filter language can select
/// collections: the columns PocketBase lets `GET /api/collections?filter=` use.
fn collections_table_model() -> Collection {
    use super::schema::field::{AutodateOptions, BoolOptions, TextOptions};
    use super::schema::Field;
    let mut c = Collection::scaffold(CollectionType::Base, "_collections");
    c.system = true;
    for name in ["name", "type", "listRule", "viewRule", "createRule", "updateRule", "deleteRule"] {
        c.fields.push(Field::new(name, FieldKind::Text(TextOptions::default())));
    }
    c.fields.push(Field::new("system", FieldKind::Bool(BoolOptions::default())));
    c.fields.push(Field::new("created", FieldKind::Autodate(AutodateOptions { on_create: true, ..Default::default() })));
    c.fields.push(Field::new("updated", FieldKind::Autodate(AutodateOptions { on_create: true, on_update: true, ..Default::default() })));
    c
}

/// The ids of the collections `filter_text` (PocketBase's filter language over `id`, `name`,
/// `type`, `system`, the five rules, `created` and `updated`) selects, compiled by the records
/// query compiler into one SELECT on `_collections`.
pub fn filter_ids(conn: &Connection, filter_text: &str) -> Result<std::collections::HashSet<String>, StoreError> {
    use super::query::{QueryBuilder, RequestContext, DEFAULT_BASE_ALIAS};
    let model = collections_table_model();
    let (_, schema) = read_all(conn)?;
    let ctx = RequestContext::new(std::time::SystemTime::now());
    let expr = super::filter::parse(filter_text).map_err(|e| StoreError::BadFilter(e.to_string()))?;
    let compiled = QueryBuilder::new(&model, &schema, &ctx, DEFAULT_BASE_ALIAS)
        .and_then(|qb| qb.filter(&expr, true))
        .map_err(|e| StoreError::BadFilter(e.to_string()))?
        .finish();
    let sql = format!("SELECT {DEFAULT_BASE_ALIAS}.\"id\" FROM _collections AS {DEFAULT_BASE_ALIAS} WHERE {}", compiled.standalone_where());
    let mut stmt = conn.prepare(&sql)?;
    let ids = stmt.query_map(rusqlite::params_from_iter(compiled.params.iter()), |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Every collection, in creation order, with the version they were read at. Opens its own
/// read transaction so the version and the rows are one snapshot.
pub fn load_all(conn: &Connection) -> Result<(i64, Vec<Collection>), StoreError> {
    crate::shared::db::read_tx(conn, read_all)
}

/// Reads the version and every collection in whatever transaction the caller holds.
pub(crate) fn read_all(conn: &Connection) -> Result<(i64, Vec<Collection>), StoreError> {
    let v = version(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, type, system, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule,
                options, created, updated
         FROM _collections ORDER BY rowid",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let corrupt = |source| StoreError::Corrupt { id: id.clone(), source };
        let mut obj: Map<String, Value> = match serde_json::from_str::<Value>(&r.get::<_, String>(11)?).map_err(corrupt)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        open_secrets(&id, &mut obj)?;
        obj.insert("id".into(), Value::String(id.clone()));
        obj.insert("name".into(), Value::String(r.get(1)?));
        obj.insert("type".into(), Value::String(r.get(2)?));
        obj.insert("system".into(), Value::Bool(r.get(3)?));
        obj.insert("fields".into(), serde_json::from_str(&r.get::<_, String>(4)?).map_err(corrupt)?);
        obj.insert("indexes".into(), serde_json::from_str(&r.get::<_, String>(5)?).map_err(corrupt)?);
        for (i, key) in ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"].iter().enumerate() {
            let rule: Option<String> = r.get(6 + i)?;
            obj.insert((*key).into(), rule.map(Value::String).unwrap_or(Value::Null));
        }
        obj.insert("created".into(), Value::String(r.get(12)?));
        obj.insert("updated".into(), Value::String(r.get(13)?));
        let mut c: Collection = serde_json::from_value(Value::Object(obj)).map_err(corrupt)?;
        c.normalize();
        out.push(c);
    }
    Ok((v, out))
}

/// The `options` JSON stored for a collection: its type-specific keys, secrets included
/// (they are write-only on the API, so serde skips them and they are added back here).
fn options_json(c: &Collection) -> Result<String, StoreError> {
    let mut v = match serde_json::to_value(c) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for k in COMMON_KEYS {
        v.remove(*k);
    }
    if let Some(auth) = &c.auth {
        let tokens = [
            ("authToken", &auth.auth_token),
            ("passwordResetToken", &auth.password_reset_token),
            ("emailChangeToken", &auth.email_change_token),
            ("verificationToken", &auth.verification_token),
            ("fileToken", &auth.file_token),
        ];
        for (key, t) in tokens {
            if let Some(Value::Object(o)) = v.get_mut(key) {
                o.insert("secret".into(), Value::String(seal_secret(&t.secret)?));
            }
        }
        if let Some(Value::Array(providers)) = v.get_mut("oauth2").and_then(|o| o.get_mut("providers")) {
            for (p, src) in providers.iter_mut().zip(&auth.oauth2.providers) {
                if let Value::Object(o) = p {
                    o.insert("clientSecret".into(), Value::String(seal_secret(&src.client_secret)?));
                }
            }
        }
    }
    Ok(Value::Object(v).to_string())
}

/// A token or client secret as stored: sealed when a key is configured (vbenc format), else as it is.
fn seal_secret(secret: &str) -> Result<String, StoreError> {
    match crate::shared::encryption::keyring() {
        Some(ring) if !secret.is_empty() => ring.seal(secret.as_bytes()).map_err(|e| StoreError::Refused(e.to_string())),
        _ => Ok(secret.to_owned()),
    }
}

/// Opens, in place, the sealed secrets (token secrets, OAuth2 client secrets) of a stored
/// `options` object: every string in it that is in the sealed format.
fn open_secrets(id: &str, options: &mut Map<String, Value>) -> Result<(), StoreError> {
    for v in options.values_mut() {
        open_sealed_strings(id, v)?;
    }
    Ok(())
}

fn open_sealed_strings(id: &str, v: &mut Value) -> Result<(), StoreError> {
    match v {
        Value::String(s) if crate::shared::encryption::is_sealed(s.as_bytes()) => {
            let sealed = |reason: String| StoreError::Sealed { id: id.to_owned(), reason };
            let ring = crate::shared::encryption::keyring().ok_or_else(|| sealed("no VAULTBASE_ENCRYPTION_KEY".into()))?;
            *s = ring.open_text(s).map_err(|e| sealed(e.to_string()))?;
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| open_sealed_strings(id, i))?,
        Value::Object(map) => map.values_mut().try_for_each(|i| open_sealed_strings(id, i))?,
        _ => {}
    }
    Ok(())
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Gives every field without an id PocketBase's default id, unique within the collection.
fn assign_field_ids(c: &mut Collection) {
    let mut taken: std::collections::HashSet<String> = c.fields.iter().map(|f| f.id.clone()).collect();
    for f in c.fields.iter_mut().filter(|f| f.id.is_empty()) {
        let base = default_field_id(f.kind.type_name(), &f.name);
        let mut id = base.clone();
        let mut n = 1;
        while taken.contains(&id) {
            n += 1;
            id = format!("{base}{n}");
        }
        taken.insert(id.clone());
        f.id = id;
    }
}

/// Checks that need the database: the name is free, relation targets exist.
fn check_against_db(tx: &Transaction<'_>, c: &Collection, errors: &mut SchemaErrors) -> rusqlite::Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM _collections WHERE lower(name) = lower(?1) AND id != ?2)
             OR EXISTS(SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?1)
                       AND name NOT IN (SELECT name FROM _collections WHERE id = ?2))",
        [&c.name, &c.id],
        |r| r.get(0),
    )?;
    if taken {
        errors.add("name", Invalid::new("validation_collection_name_exists", "Collection name must be unique (case insensitive)."));
    }
    if check_collection_name(&c.name).is_ok() && !usable_as_alias(tx, &c.name) {
        errors.add("name", Invalid::new("validation_invalid_name", "The name is an SQL keyword; choose another name."));
    }
    for (i, f) in c.fields.iter().enumerate() {
        if let FieldKind::Relation(o) = &f.kind {
            if o.collection_id.is_empty() {
                continue;
            }
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM _collections WHERE id = ?1)",
                [&o.collection_id],
                |r| r.get(0),
            )?;
            // A collection may relate to itself, before it exists.
            if !exists && o.collection_id != c.id {
                errors.add(format!("fields.{i}.collectionId"), Invalid::new("validation_missing_collection", "The related collection doesn't exist."));
            }
        }
    }
    Ok(())
}

/// Whether SQLite reads `name` as a bare table alias, as the record queries use it
/// (`FROM "t" AS "t" … WHERE t."col"`): false for keywords such as `order` or `select`.
/// Asking SQLite itself keeps this exact without a keyword list. `name` must already have
/// passed [`check_collection_name`] (`^\w+$`), which is what makes splicing it safe.
fn usable_as_alias(conn: &Connection, name: &str) -> bool {
    conn.prepare(&format!("SELECT {name}.x FROM (SELECT 1 AS x) AS {name}")).is_ok()
}

/// Rewrites an index statement onto `table`, accepting only
/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON anything (…) [WHERE …]` with no `;`.
fn normalize_index(sql: &str, table: &str) -> Option<String> {
    if sql.contains(';') {
        return None;
    }
    let mut rest = sql.trim();
    let mut take = |word: &str| -> bool {
        let t = rest.trim_start();
        if t.len() >= word.len() && t.is_char_boundary(word.len()) && t[..word.len()].eq_ignore_ascii_case(word) {
            let after = &t[word.len()..];
            if after.is_empty() || after.starts_with(|ch: char| ch.is_whitespace() || ch == '(' || ch == '"' || ch == '`' || ch == '[') {
                rest = after;
                return true;
            }
        }
        false
    };
    if !take("CREATE") {
        return None;
    }
    let unique = take("UNIQUE");
    if !take("INDEX") {
        return None;
    }
    let if_not_exists = take("IF") && take("NOT") && take("EXISTS");
    let t = rest.trim_start();
    let on = t.to_ascii_uppercase().find(" ON ")?;
    let name = t[..on].trim();
    let after_on = t[on + 4..].trim_start();
    let paren = after_on.find('(')?;
    let columns = &after_on[paren..];
    if name.is_empty() {
        return None;
    }
    // Already on this table, in whatever quoting: keep the text as written (PocketBase stores
    // index statements as given, and a save that changes nothing must not rewrite them).
    let written = after_on[..paren].trim();
    let unquoted = match (written.chars().next(), written.chars().last()) {
        (Some('"'), Some('"')) | (Some('`'), Some('`')) | (Some('['), Some(']')) if written.len() >= 2 => &written[1..written.len() - 1],
        _ => written,
    };
    if unquoted.eq_ignore_ascii_case(table) {
        return Some(sql.trim().to_owned());
    }
    Some(format!(
        "CREATE {}INDEX {}{} ON {} {}",
        if unique { "UNIQUE " } else { "" },
        if if_not_exists { "IF NOT EXISTS " } else { "" },
        name,
        quote_ident(table),
        columns
    ))
}

fn create_indexes(tx: &Transaction<'_>, c: &mut Collection) -> Result<(), StoreError> {
    let mut errors = SchemaErrors::default();
    let mut normalized = Vec::with_capacity(c.indexes.len());
    for (i, sql) in c.indexes.iter().enumerate() {
        match normalize_index(sql, &c.name) {
            None => errors.add(format!("indexes.{i}"), Invalid::new("validation_invalid_index_expression", "Invalid CREATE INDEX expression.")),
            Some(n) => match tx.execute_batch(&n) {
                Ok(()) => normalized.push(n),
                Err(e) => errors.add(format!("indexes.{i}"), Invalid::new("validation_invalid_index_expression", format!("Failed to create index: {e}."))),
            },
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    c.indexes = normalized;
    Ok(())
}

fn drop_indexes(tx: &Transaction<'_>, table: &str) -> rusqlite::Result<()> {
    let names: Vec<String> = tx
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for n in names {
        tx.execute_batch(&format!("DROP INDEX {}", quote_ident(&n)))?;
    }
    Ok(())
}

fn insert_row(tx: &Transaction<'_>, c: &Collection) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule, options)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        rusqlite::params![
            c.id, c.system, c.kind.as_str(), c.name, json_text(&c.fields), json_text(&c.indexes),
            c.list_rule, c.view_rule, c.create_rule, c.update_rule, c.delete_rule, options_json(c)?
        ],
    )?;
    Ok(())
}

/// The scaffold for `kind`/`name` with `body` merged over it; system fields missing from a
/// sent `fields` array are put back in front, as PocketBase's scaffold merge does.
/// Write-only secrets are not in `base`'s JSON, so a PATCH that does not resend them would
/// blank them: [`Collection::keep_secrets_from`] keeps the stored ones.
pub fn merged(base: &Collection, body: Map<String, Value>) -> Result<Collection, StoreError> {
    let mut obj = match serde_json::to_value(base) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut body = body;
    if let Some(fields) = body.get_mut("fields") {
        crate::worker::records::encrypted::keep_encrypted_flags(base, fields);
    }
    for (k, v) in body {
        merge_value(obj.entry(k).or_insert(Value::Null), v);
    }
    let mut c: Collection = serde_json::from_value(Value::Object(obj)).map_err(|e| {
        let mut errors = SchemaErrors::default();
        errors.add("fields", Invalid::new("validation_invalid_value", format!("Invalid collection data: {e}.")));
        StoreError::Invalid(errors)
    })?;
    c.keep_secrets_from(base);
    let missing: Vec<_> = base.fields.iter().filter(|f| f.system && !c.fields.iter().any(|x| x.name == f.name || x.id == f.id)).cloned().collect();
    if !missing.is_empty() {
        let rest = std::mem::take(&mut c.fields);
        c.fields = missing.into_iter().chain(rest).collect();
    }
    Ok(c)
}

/// Merges `patch` over `base` as Go's JSON decoding into an existing value does (PocketBase):
/// objects key by key, recursively (so `{"authToken": {"secret": …}}` keeps the duration);
/// arrays, scalars and null replace.
fn merge_value(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge_value(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Reads one collection by id or name inside the transaction.
pub fn find(tx: &Transaction<'_>, id_or_name: &str) -> Result<Option<Collection>, StoreError> {
    let (_, all) = read_all(tx)?;
    Ok(all.into_iter().find(|c| c.id == id_or_name || c.name.eq_ignore_ascii_case(id_or_name)))
}

/// Creates a base or auth collection: validates, creates its table and indexes, stores the
/// row, bumps the version. Returns the stored definition (ids assigned, indexes normalised).
pub fn create(tx: &Transaction<'_>, mut c: Collection) -> Result<Collection, StoreError> {
    c.normalize();
    let id_taken = |id: &str| -> rusqlite::Result<bool> {
        tx.query_row("SELECT EXISTS(SELECT 1 FROM _collections WHERE id = ?1)", [id], |r| r.get(0))
    };
    if c.id.is_empty() && !c.name.is_empty() {
        // The default id is derived from the name, so it is taken when the name is (or when
        // a collection that once had this name was renamed). Like PocketBase, a generated id
        // never fails the create: it gets the first free numeric suffix, and a duplicate
        // name is reported as such by the name check.
        let base = super::schema::names::default_collection_id(c.kind.as_str(), &c.name);
        c.id = base.clone();
        let mut n = 1;
        while id_taken(&c.id)? {
            n += 1;
            c.id = format!("{base}{n}");
        }
    }
    assign_field_ids(&mut c);
    let mut errors = c.validate();
    check_against_db(tx, &c, &mut errors)?;
    if id_taken(&c.id)? {
        errors.add("id", Invalid::new("validation_not_unique", "The collection id is already in use."));
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    if c.kind == CollectionType::Auth && crate::shared::db::migrate::is_pocketbase(tx)? {
        give_token_secrets(&mut c)?;
    }
    match c.kind {
        CollectionType::View => create_view(tx, &mut c)?,
        _ => {
            c.ensure_auth_indexes();
            tx.execute_batch(&c.create_table_sql())?;
            create_indexes(tx, &mut c)?;
        }
    }
    check_encryption(&c)?;
    check_rules(tx, &c)?;
    insert_row(tx, &c)?;
    bump_version(tx)?;
    stamp(tx, &mut c)?;
    Ok(c)
}

/// Gives every token kind of a new auth collection without a secret a random one, as
/// PocketBase does: on a PocketBase-layout dir PocketBase must be able to sign and verify the
/// collection's tokens, and it signs with `tokenKey ‖ secret` only.
fn give_token_secrets(c: &mut Collection) -> Result<(), StoreError> {
    let Some(auth) = c.auth.as_mut() else { return Ok(()) };
    for t in [
        &mut auth.auth_token,
        &mut auth.password_reset_token,
        &mut auth.email_change_token,
        &mut auth.verification_token,
        &mut auth.file_token,
    ] {
        if t.secret.is_empty() {
            t.secret = crate::worker::auth::random::new_token_key().map_err(|e| StoreError::Refused(e.to_string()))?;
        }
    }
    Ok(())
}

/// Creates (or re-creates) the SQL view of a view collection and derives its fields from the
/// query and the stored collections as PocketBase does (see [`super::schema::view`]). Every way
/// the query can fail — more than one statement, SQL SQLite refuses (unknown table or column,
/// syntax), no `id` column — is a 400 on `viewQuery` in PocketBase's words, never a 500.
fn create_view(tx: &Transaction<'_>, c: &mut Collection) -> Result<(), StoreError> {
    use super::schema::sql_lex::{tokens, Kind};
    let raw = c.view_query.clone().unwrap_or_default();
    // A trailing `;` is harmless (PocketBase trims it); any other one starts a second statement.
    let query = raw.trim().trim_end_matches(|ch: char| ch == ';' || ch.is_whitespace()).to_owned();
    if tokens(&query).iter().any(|t| t.kind == Kind::Punct && t.text == ";") {
        return Err(invalid_view_query("multiple statements are not supported"));
    }
    // Prepared alone first, so SQLite's message is about the user's text, not our wrapper.
    tx.prepare(&query).map_err(|e| invalid_view_query(&sqlite_reason(&e)))?;
    tx.execute_batch(&format!("CREATE VIEW {} AS {}", quote_ident(&c.name), query))
        .map_err(|e| invalid_view_query(&sqlite_reason(&e)))?;
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut stmt| stmt.query_map([&c.name], |r| r.get(0))?.collect())
        .map_err(|e| invalid_view_query(&sqlite_reason(&e)))?;
    if !columns.iter().any(|n| n == "id") {
        return Err(invalid_view_query("missing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)"));
    }
    if let Some(bad) = columns.iter().find(|n| *n != "id" && super::schema::names::check_field_name(n, false).is_err()) {
        return Err(invalid("viewQuery", "validation_invalid_view_column", &format!("Column \"{bad}\" is not a valid field name; alias it.")));
    }
    let (_, stored) = read_all(tx)?;
    let previous = std::mem::take(&mut c.fields);
    c.fields = super::schema::view::infer_fields(&query, &columns, &stored);
    // Keep the id (and so the identity) of a column that was already there as the same type.
    for field in &mut c.fields {
        if let Some(old) = previous.iter().find(|f| f.name == field.name && f.kind.type_name() == field.kind.type_name()) {
            field.id = old.id.clone();
        }
    }
    Ok(())
}

/// PocketBase's refusal of a view query: `Invalid query - <reason>.` on `viewQuery`.
fn invalid_view_query(reason: &str) -> StoreError {
    invalid("viewQuery", "validation_invalid_view_query", &format!("Invalid query - {reason}."))
}

/// SQLite's complaint as PocketBase's driver words it: `SQL logic error: no such column: x (1)`.
fn sqlite_reason(e: &rusqlite::Error) -> String {
    let (code, message) = match e {
        rusqlite::Error::SqliteFailure(err, msg) => (err.extended_code, msg.clone().unwrap_or_else(|| err.to_string())),
        rusqlite::Error::SqlInputError { error, msg, .. } => (error.extended_code, msg.clone()),
        other => return other.to_string(),
    };
    // sqlite3_errstr's wording for the primary codes a query can fail with.
    let kind = match code & 0xff {
        1 => "SQL logic error",
        5 => "database is locked",
        6 => "database table is locked",
        9 => "interrupted",
        18 => "string or blob too big",
        _ => "SQL error",
    };
    format!("{kind}: {message} ({code})")
}

/// Compiles every API rule of `c` (list, view, create, update, delete, and an auth
/// collection's auth and manage rules) against its fields and the other stored collections,
/// as PocketBase does on save: a rule naming an unknown field, or one that does not parse,
/// is refused now instead of failing every request it guards. Blank and null rules need no
/// compiling. Call once `c.fields` are final (for a view, after its query is read).
fn check_rules(tx: &Transaction<'_>, c: &Collection) -> Result<(), StoreError> {
    use super::filter::{self, Limits};
    use super::query::{QueryBuilder, RequestContext, DEFAULT_BASE_ALIAS, MAX_RULE_LEN_BYTES};
    let (_, mut schema) = read_all(tx)?;
    schema.retain(|o| o.id != c.id);
    schema.push(c.clone());
    let ctx = RequestContext::new(std::time::UNIX_EPOCH);
    let limits = Limits { max_len_bytes: MAX_RULE_LEN_BYTES, ..Limits::CLIENT_FILTER };
    let auth = c.auth.as_ref();
    let rules = [
        ("listRule", c.list_rule.as_deref()),
        ("viewRule", c.view_rule.as_deref()),
        ("createRule", c.create_rule.as_deref()),
        ("updateRule", c.update_rule.as_deref()),
        ("deleteRule", c.delete_rule.as_deref()),
        ("authRule", auth.and_then(|a| a.auth_rule.as_deref())),
        ("manageRule", auth.and_then(|a| a.manage_rule.as_deref())),
    ];
    let mut errors = SchemaErrors::default();
    for (key, rule) in rules {
        let Some(rule) = rule.filter(|r| !r.trim().is_empty()) else { continue };
        let outcome = filter::parse_with_limits(rule, limits).map_err(|e| e.to_string()).and_then(|expr| {
            QueryBuilder::new(c, &schema, &ctx, DEFAULT_BASE_ALIAS)
                .and_then(|qb| qb.filter(&expr, true))
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(reason) = outcome {
            errors.add(key, Invalid::new("validation_invalid_rule", format!("Invalid rule. Raw error: {reason}.")));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// Encrypted fields need a key and no unique index (see `records::encrypted`).
fn check_encryption(c: &Collection) -> Result<(), StoreError> {
    let mut errors = SchemaErrors::default();
    super::encrypted::check_definition(c, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

fn stamp(tx: &Transaction<'_>, c: &mut Collection) -> rusqlite::Result<()> {
    let (created, updated): (String, String) =
        tx.query_row("SELECT created, updated FROM _collections WHERE id = ?1", [&c.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    c.created = created;
    c.updated = updated;
    Ok(())
}

/// Applies `new` over the stored `old` (same id): renames the table, adds, renames and drops
/// columns, converts single/multi values, rebuilds indexes, stores the row, bumps the version.
pub fn update(tx: &Transaction<'_>, old: &Collection, mut new: Collection) -> Result<Collection, StoreError> {
    new.id = old.id.clone();
    new.system = old.system;
    new.normalize();
    assign_field_ids(&mut new);
    let mut errors = new.validate();
    if new.kind != old.kind {
        errors.add("type", Invalid::new("validation_collection_type_change", "Collection type cannot be changed."));
    }
    if old.system && new.name != old.name {
        errors.add("name", Invalid::new("validation_collection_system_name_change", "System collection name cannot be changed."));
    }
    check_against_db(tx, &new, &mut errors)?;
    for (i, nf) in new.fields.iter().enumerate() {
        let Some(of) = old.fields.iter().find(|f| f.id == nf.id) else { continue };
        if of.kind.type_name() != nf.kind.type_name() {
            errors.add(format!("fields.{i}.type"), Invalid::new("validation_field_type_change", "The type of an existing field cannot be changed; add a new field and copy the data."));
        }
        if of.system && of.name != nf.name {
            errors.add(format!("fields.{i}.name"), Invalid::new("validation_system_field_name_change", "System field name cannot be changed."));
        }
        if let (FieldKind::Relation(a), FieldKind::Relation(b)) = (&of.kind, &nf.kind) {
            if a.collection_id != b.collection_id {
                errors.add(format!("fields.{i}.collectionId"), Invalid::new("validation_field_collection_change", "The related collection cannot be changed."));
            }
        }
    }
    for of in old.fields.iter().filter(|f| f.system) {
        if !new.fields.iter().any(|f| f.id == of.id) {
            errors.add("fields", Invalid::new("validation_system_field_removal", format!("System field \"{}\" cannot be removed.", of.name)));
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    if new.kind == CollectionType::View {
        tx.execute_batch(&format!("DROP VIEW IF EXISTS {}", quote_ident(&old.name)))?;
        new.fields = old.fields.clone();
        create_view(tx, &mut new)?;
    } else {
        new.ensure_auth_indexes();
        migrate_table(tx, old, &mut new)?;
    }
    check_encryption(&new)?;
    check_rules(tx, &new)?;
    tx.execute(
        "UPDATE _collections SET name = ?2, fields = ?3, indexes = ?4, listRule = ?5, viewRule = ?6, createRule = ?7,
                updateRule = ?8, deleteRule = ?9, options = ?10, updated = strftime('%Y-%m-%d %H:%M:%fZ') WHERE id = ?1",
        rusqlite::params![
            new.id, new.name, json_text(&new.fields), json_text(&new.indexes), new.list_rule, new.view_rule,
            new.create_rule, new.update_rule, new.delete_rule, options_json(&new)?
        ],
    )?;
    bump_version(tx)?;
    stamp(tx, &mut new)?;
    Ok(new)
}

/// Replaces the uses of the column `from` in the part of an index statement after its
/// `ON table`, so indexes follow renamed fields as in PocketBase. Identifiers are found by
/// the SQL lexer, so every SQLite quoting (bare, `"x"`, `` `x` ``, `[x]`) is recognised and
/// replaced whole by the new name double-quoted; string literals, function names (a word
/// before `(`) and collation names are left alone. Matching is ASCII case-insensitive, as
/// SQLite matches column names.
fn rename_index_column(sql: &str, from: &str, to: &str) -> String {
    use super::schema::sql_lex::{tokens, Kind};
    let toks = tokens(sql);
    let next_solid = |i: usize| toks[i + 1..].iter().find(|t| !matches!(t.kind, Kind::Space | Kind::Comment));
    let mut out = String::with_capacity(sql.len() + 8);
    let mut seen_on = false;
    let mut in_columns = false;
    let mut prev_solid: Option<usize> = None;
    for (i, t) in toks.iter().enumerate() {
        if !seen_on && t.is_keyword("ON") {
            seen_on = true;
        } else if seen_on && !in_columns && t.is_punct('(') {
            in_columns = true;
        }
        let is_column = in_columns
            && t.kind == Kind::Ident
            && t.name().eq_ignore_ascii_case(from)
            && !next_solid(i).is_some_and(|n| n.is_punct('('))
            && !prev_solid.is_some_and(|p: usize| toks[p].is_keyword("COLLATE"));
        if is_column {
            out.push_str(&quote_ident(to));
        } else {
            out.push_str(t.text);
        }
        if !matches!(t.kind, Kind::Space | Kind::Comment) {
            prev_solid = Some(i);
        }
    }
    out
}

fn migrate_table(tx: &Transaction<'_>, old: &Collection, new: &mut Collection) -> Result<(), StoreError> {
    drop_indexes(tx, &old.name)?;
    for nf in &new.fields {
        if let Some(of) = old.fields.iter().find(|f| f.id == nf.id && f.name != nf.name) {
            for idx in new.indexes.iter_mut() {
                *idx = rename_index_column(idx, &of.name, &nf.name);
            }
        }
    }
    if new.name != old.name {
        tx.execute_batch(&format!("ALTER TABLE {} RENAME TO {}", quote_ident(&old.name), quote_ident(&new.name)))?;
    }
    let table = quote_ident(&new.name);
    // Drops first, so a new field may reuse a removed field's name.
    for of in &old.fields {
        if !new.fields.iter().any(|f| f.id == of.id) {
            // A view selecting the column makes SQLite refuse the drop: the user's to fix (400).
            tx.execute_batch(&format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(&of.name))).map_err(|e| {
                StoreError::Refused(format!("Failed to update collection. Raw error: \nfailed to drop column {} - {}.", of.name, sqlite_reason(&e)))
            })?;
        }
    }
    for (i, nf) in new.fields.iter().enumerate() {
        match old.fields.iter().find(|f| f.id == nf.id) {
            None => tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {} {}", quote_ident(&nf.name), nf.column_type()))?,
            Some(of) => {
                if of.name != nf.name {
                    tx.execute_batch(&format!("ALTER TABLE {table} RENAME COLUMN {} TO {}", quote_ident(&of.name), quote_ident(&nf.name)))?;
                }
                let col = quote_ident(&nf.name);
                match (of.is_multiple(), nf.is_multiple()) {
                    (false, true) => {
                        tx.execute_batch(&format!(
                            "UPDATE {table} SET {col} = CASE WHEN {col} IS NULL OR {col} = '' THEN '[]' ELSE json_array({col}) END"
                        ))?;
                    }
                    (true, false) => {
                        let crowded: bool = tx.query_row(
                            &format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE json_valid({col}) AND json_array_length({col}) > 1)"),
                            [],
                            |r| r.get(0),
                        )?;
                        if crowded {
                            return Err(invalid(
                                &format!("fields.{i}.maxSelect"),
                                "validation_data_loss",
                                "Some records hold more than one value; making this field single-valued would lose data.",
                            ));
                        }
                        tx.execute_batch(&format!(
                            "UPDATE {table} SET {col} = CASE WHEN json_valid({col}) THEN COALESCE({col}->>0, '') ELSE {col} END"
                        ))?;
                    }
                    _ => {}
                }
                if of.encrypted != nf.encrypted {
                    // Existing values follow the definition in the same transaction: sealed
                    // when the option is turned on, opened when it is turned off.
                    if nf.encrypted && !nf.can_be_encrypted() {
                        continue;
                    }
                    super::encrypted::migrate_column(tx, &new.name, &nf.name, nf.encrypted).map_err(|e| match e {
                        super::encrypted::MigrateError::Sqlite(e) => StoreError::Sqlite(e),
                        super::encrypted::MigrateError::Crypto(e) => invalid(&format!("fields.{i}.encrypted"), "validation_encryption_failed", &e.to_string()),
                    })?;
                }
            }
        }
    }
    create_indexes(tx, new)
}

/// Deletes a collection and its table. System collections and collections that other
/// collections still reference are refused.
pub fn delete(tx: &Transaction<'_>, c: &Collection) -> Result<(), StoreError> {
    if c.system {
        return Err(StoreError::SystemCollection);
    }
    let (_, all) = read_all(tx)?;
    let referencing: Vec<&str> = all
        .iter()
        .filter(|o| o.id != c.id)
        .filter(|o| o.fields.iter().any(|f| matches!(&f.kind, FieldKind::Relation(r) if r.collection_id == c.id)))
        .map(|o| o.name.as_str())
        .collect();
    if !referencing.is_empty() {
        return Err(StoreError::Refused(format!(
            "Failed to delete collection probably due to existing reference in {}.",
            referencing.join(", ")
        )));
    }
    let what = if c.kind == CollectionType::View { "VIEW" } else { "TABLE" };
    // SQLite lets a table or view go while a view still selects from it; every read of that
    // view would then fail, so the delete is refused instead, as in PocketBase. The savepoint
    // undoes the drop at once, so a caller that goes on (an import) sees the table still there.
    tx.execute_batch(&format!("SAVEPOINT vb_collection_delete; DROP {what} IF EXISTS {}", quote_ident(&c.name)))?;
    let broken = all
        .iter()
        .filter(|o| o.id != c.id && o.kind == CollectionType::View)
        .find(|view| tx.prepare(&format!("SELECT 1 FROM {} LIMIT 0", quote_ident(&view.name))).is_err());
    if let Some(view) = broken {
        tx.execute_batch("ROLLBACK TO vb_collection_delete; RELEASE vb_collection_delete")?;
        return Err(StoreError::Refused(format!("Failed to delete collection: the view collection \"{}\" selects from it.", view.name)));
    }
    tx.execute_batch("RELEASE vb_collection_delete")?;
    tx.execute("DELETE FROM _collections WHERE id = ?1", [&c.id])?;
    crate::worker::accounts::forget_collection(tx, &c.id)?;
    bump_version(tx)?;
    Ok(())
}

/// Deletes every record of a base or auth collection. (Cascades to relations arrive with the
/// record write path.)
pub fn truncate(tx: &Transaction<'_>, c: &Collection) -> Result<(), StoreError> {
    if c.kind == CollectionType::View {
        return Err(StoreError::Refused("View collections cannot be truncated.".into()));
    }
    tx.execute_batch(&format!("DELETE FROM {}", quote_ident(&c.name)))?;
    crate::worker::accounts::forget_collection(tx, &c.id)?;
    Ok(())
}

/// `PUT /api/collections/import`: every definition created or updated in one transaction,
/// matched to stored collections by id, then by name. With `delete_missing`, non-system
/// collections absent from the import are deleted too. Errors are keyed
/// `collections.<index>.<key>` so the caller can point at the definition at fault.
pub fn import(tx: &Transaction<'_>, incoming: Vec<Collection>, delete_missing: bool) -> Result<(), StoreError> {
    let nest = |i: usize, e: StoreError| match e {
        StoreError::Invalid(errors) => {
            let mut nested = SchemaErrors::default();
            for (path, err) in errors.0 {
                nested.add(format!("collections.{i}.{path}"), err);
            }
            StoreError::Invalid(nested)
        }
        other => other,
    };
    let mut kept = std::collections::HashSet::new();
    for (i, mut c) in incoming.into_iter().enumerate() {
        let (_, stored) = read_all(tx)?;
        let existing = stored
            .into_iter()
            .find(|o| (!c.id.is_empty() && o.id == c.id) || o.name.eq_ignore_ascii_case(&c.name));
        let id = match existing {
            Some(old) => {
                // An exported schema carries no secrets (the API never shows them).
                c.keep_secrets_from(&old);
                // Keep the stored system fields when the import leaves them out.
                for f in old.fields.iter().filter(|f| f.system) {
                    if !c.fields.iter().any(|x| x.id == f.id || x.name == f.name) {
                        c.fields.insert(0, f.clone());
                    }
                }
                update(tx, &old, c).map_err(|e| nest(i, e))?.id
            }
            None => {
                let base = Collection::scaffold(c.kind, &c.name);
                for f in base.fields.iter().filter(|f| f.system).rev() {
                    if !c.fields.iter().any(|x| x.name == f.name) {
                        c.fields.insert(0, f.clone());
                    }
                }
                create(tx, c).map_err(|e| nest(i, e))?.id
            }
        };
        kept.insert(id);
    }
    if delete_missing {
        let (_, stored) = read_all(tx)?;
        // Delete dependants first: a collection others still relate to would be refused.
        let mut doomed: Vec<Collection> = stored.into_iter().filter(|c| !c.system && !kept.contains(&c.id)).collect();
        while !doomed.is_empty() {
            let before = doomed.len();
            let mut remaining = Vec::new();
            for c in doomed {
                match delete(tx, &c) {
                    Ok(()) => {}
                    Err(StoreError::Refused(_)) => remaining.push(c),
                    Err(e) => return Err(e),
                }
            }
            if remaining.len() == before {
                return Err(StoreError::Refused("Failed to import collections: some collections to delete are still referenced.".into()));
            }
            doomed = remaining;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::db::{migrate, open};
    use crate::worker::records::schema::collection::OAuth2Provider;
    use crate::worker::records::schema::field::*;
    use crate::worker::records::schema::Field;
    use serde_json::json;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open::open(&dir.path().join("data.db"), open::Role::Writer).expect("open");
        migrate::run(&mut conn).expect("migrate");
        (dir, conn)
    }

    fn write<T>(conn: &mut Connection, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn posts() -> Collection {
        let mut c = Collection::scaffold(CollectionType::Base, "posts").with_timestamps();
        c.fields.push(Field::new("title", FieldKind::Text(TextOptions::default())));
        c.fields.push(Field::new("tags", FieldKind::Select(SelectOptions { values: vec!["a".into(), "b".into()], max_select: 1, ..Default::default() })));
        c.indexes.push("CREATE INDEX idx_title ON anything (title)".into());
        c.list_rule = Some(String::new());
        c
    }

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn the_webhooks_migration_matches_the_schema_model() {
        let (_d, conn) = db();
        let (_, all) = load_all(&conn).expect("load");
        let hooks = all.iter().find(|c| c.name == "_webhooks").expect("_webhooks exists from the first start");
        let want = crate::worker::records::webhooks_collection::definition();
        assert_eq!(hooks.fields, want.fields);
        assert_eq!((hooks.id.as_str(), hooks.system), (crate::worker::records::webhooks_collection::ID, true));
        assert_eq!(want.id, crate::worker::records::webhooks_collection::ID, "PocketBase's default id for the name");
        assert!(hooks.list_rule.is_none() && hooks.create_rule.is_none() && hooks.delete_rule.is_none(), "superusers only");
        assert_eq!(want.create_table_sql(), migrate::WEBHOOKS_DDL, "regenerate the migration's DDL from the model");
        assert!(hooks.validate().is_empty(), "{:?}", hooks.validate());
    }

    #[test]
    fn the_superusers_migration_matches_the_schema_model() {
        let (_d, conn) = db();
        let (v, all) = load_all(&conn).expect("load");
        assert!(v >= 1);
        let su = all.iter().find(|c| c.name == "_superusers").expect("_superusers exists from the first start");
        let mut want = Collection::scaffold(CollectionType::Auth, "_superusers").with_timestamps();
        want.system = true;
        // A fresh dir is in PocketBase's layout: its `_superusers` timestamps are system fields.
        for f in want.fields.iter_mut().filter(|f| f.name == "created" || f.name == "updated") {
            f.system = true;
        }
        assert_eq!(su.fields, want.fields);
        let auth = su.auth.as_ref().expect("auth options");
        assert_eq!(auth.auth_token.duration, 86_400);
        assert!(!auth.auth_token.secret.is_empty(), "a fresh dir has its own token secret");
        assert_eq!(su.id, want.id);
        assert_eq!(want.create_table_sql(), migrate::SUPERUSERS_DDL, "regenerate the migration's DDL from the model");
        assert!(su.validate().is_empty(), "{:?}", su.validate());
    }

    #[test]
    fn the_default_users_collection_matches_pocketbase_and_the_schema_model() {
        let (_d, conn) = db();
        let (_, all) = load_all(&conn).expect("load");
        let users = all.iter().find(|c| c.name == "users").expect("users exists from the first start");
        let mut want = Collection::scaffold(CollectionType::Auth, "users");
        want.id = "_pb_users_auth_".into();
        want.fields.push(Field::new("name", FieldKind::Text(TextOptions { max: 255, ..Default::default() })));
        want.fields.push(Field::new(
            "avatar",
            FieldKind::File(FileOptions {
                max_select: 1,
                mime_types: ["image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"].map(String::from).to_vec(),
                ..Default::default()
            }),
        ));
        let mut want = want.with_timestamps();
        for f in &mut want.fields {
            if f.id.is_empty() {
                f.id = default_field_id(f.kind.type_name(), &f.name);
            }
        }
        if let Some(a) = want.auth.as_mut() {
            a.oauth2.mapped_fields.name = "name".into();
            a.oauth2.mapped_fields.avatar_url = "avatar".into();
        }
        assert_eq!(users.fields, want.fields);
        // PocketBase's own options (its mail templates, fresh token secrets): the parts vaultbase
        // relies on are checked; the texts are PocketBase's.
        let (got, model) = (users.auth.as_ref().expect("auth"), want.auth.as_ref().expect("auth"));
        assert_eq!(got.oauth2.mapped_fields, model.oauth2.mapped_fields);
        assert_eq!(got.password_auth, model.password_auth);
        assert_eq!(got.auth_token.duration, model.auth_token.duration);
        for t in [&got.auth_token, &got.password_reset_token, &got.email_change_token, &got.verification_token, &got.file_token] {
            assert!(!t.secret.is_empty(), "a fresh dir has its own token secrets");
        }
        assert_eq!(users.id, "_pb_users_auth_");
        assert!(!users.system, "PocketBase's users collection is not a system one");
        let owner = Some("id = @request.auth.id".to_owned());
        assert_eq!([&users.list_rule, &users.view_rule, &users.update_rule, &users.delete_rule], [&owner; 4]);
        assert_eq!(users.create_rule.as_deref(), Some(""));
        assert_eq!(want.create_table_sql(), migrate::USERS_DDL, "regenerate the migration's DDL from the model");
        assert!(users.validate().is_empty(), "{:?}", users.validate());
        let email_unique = conn.execute_batch(
            "INSERT INTO users (id, email, tokenKey) VALUES ('a', 'x@y.z', 'k1'); INSERT INTO users (id, email, tokenKey) VALUES ('b', 'x@y.z', 'k2');",
        );
        assert!(email_unique.is_err(), "the unique email index exists");
    }

    #[test]
    fn create_makes_the_table_indexes_and_row_and_bumps_the_version() {
        let (_d, mut conn) = db();
        let before = version(&conn).expect("version");
        let c = write(&mut conn, |tx| create(tx, posts())).expect("create");
        assert!(version(&conn).expect("version") > before);
        assert_eq!(columns(&conn, "posts"), ["id", "created", "updated", "title", "tags"]);
        assert_eq!(c.indexes, ["CREATE INDEX idx_title ON \"posts\" (title)"]);
        assert!(!c.created.is_empty());
        let (_, all) = load_all(&conn).expect("load");
        let stored = all.iter().find(|x| x.name == "posts").expect("stored");
        assert_eq!(stored.fields, c.fields);
        assert_eq!(stored.list_rule.as_deref(), Some(""));
        assert_eq!(stored.view_rule, None);
    }

    #[test]
    fn names_are_unique_case_insensitively_and_relations_must_point_somewhere() {
        let (_d, mut conn) = db();
        write(&mut conn, |tx| create(tx, posts())).expect("create");
        let mut dup = Collection::scaffold(CollectionType::Base, "POSTS");
        dup.id = "other".into();
        match write(&mut conn, |tx| create(tx, dup)) {
            Err(StoreError::Invalid(e)) => assert_eq!(e.0["name"].code, "validation_collection_name_exists"),
            other => panic!("{other:?}"),
        }
        let mut clash = Collection::scaffold(CollectionType::Base, "_params_x");
        clash.name = "sqlite_master".into();
        assert!(write(&mut conn, |tx| create(tx, clash)).is_err());
        let mut rel = Collection::scaffold(CollectionType::Base, "comments");
        rel.fields.push(Field::new("post", FieldKind::Relation(RelationOptions { collection_id: "nope".into(), max_select: 1, ..Default::default() })));
        match write(&mut conn, |tx| create(tx, rel)) {
            Err(StoreError::Invalid(e)) => assert_eq!(e.0["fields.1.collectionId"].code, "validation_missing_collection"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_generated_id_that_is_taken_gets_a_suffix_and_a_chosen_one_is_refused() {
        let (_d, mut conn) = db();
        let first = write(&mut conn, |tx| create(tx, posts())).expect("create");
        let mut renamed = first.clone();
        renamed.name = "articles".into();
        write(&mut conn, |tx| update(tx, &first, renamed)).expect("rename");
        // The name is free again but its default id is still the renamed collection's.
        let mut again = posts();
        again.id.clear();
        again.indexes.clear(); // index names are global; idx_title went along with the rename
        let second = write(&mut conn, |tx| create(tx, again)).expect("create again");
        assert_eq!(second.id, format!("{}2", first.id));
        // Same name again: reported as the name, not as the id it derives.
        let mut dup = posts();
        dup.id.clear();
        match write(&mut conn, |tx| create(tx, dup)) {
            Err(StoreError::Invalid(e)) => {
                assert_eq!(e.0["name"].code, "validation_collection_name_exists");
                assert!(!e.0.contains_key("id"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        let mut chosen = Collection::scaffold(CollectionType::Base, "other");
        chosen.id = first.id.clone();
        match write(&mut conn, |tx| create(tx, chosen)) {
            Err(StoreError::Invalid(e)) => assert_eq!(e.0["id"].code, "validation_not_unique"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_index_sql_is_refused_and_nothing_is_left_behind() {
        let (_d, mut conn) = db();
        let mut c = posts();
        c.indexes = vec!["CREATE INDEX x ON posts (title); DROP TABLE _collections".into()];
        assert!(matches!(write(&mut conn, |tx| create(tx, c)), Err(StoreError::Invalid(_))));
        assert!(columns(&conn, "posts").is_empty(), "the failed create rolled back");
        assert!(columns(&conn, "_collections").contains(&"name".to_owned()));
    }

    #[test]
    fn updates_migrate_the_table_and_keep_the_data() {
        let (_d, mut conn) = db();
        let old = write(&mut conn, |tx| create(tx, posts())).expect("create");
        conn.execute("INSERT INTO posts (id, title, tags) VALUES ('r1', 'hello', 'a')", []).expect("insert");

        let mut new = old.clone();
        new.name = "articles".into();
        if let Some(f) = new.fields.iter_mut().find(|f| f.name == "title") {
            f.name = "headline".into();
        }
        if let Some(FieldKind::Select(o)) = new.fields.iter_mut().find(|f| f.name == "tags").map(|f| &mut f.kind) {
            o.max_select = 2;
        }
        new.fields.push(Field::new("views", FieldKind::Number(NumberOptions::default())));
        let updated = write(&mut conn, |tx| update(tx, &old, new)).expect("update");
        assert_eq!(columns(&conn, "articles"), ["id", "created", "updated", "headline", "tags", "views"]);
        let (headline, tags): (String, String) =
            conn.query_row("SELECT headline, tags FROM articles WHERE id = 'r1'", [], |r| Ok((r.get(0)?, r.get(1)?))).expect("row");
        assert_eq!(headline, "hello", "renamed column kept its data");
        assert_eq!(tags, "[\"a\"]", "single → multi wraps the value");
        assert_eq!(updated.indexes, ["CREATE INDEX idx_title ON \"articles\" (\"headline\")"], "the index follows the rename");

        let mut back = updated.clone();
        if let Some(FieldKind::Select(o)) = back.fields.iter_mut().find(|f| f.name == "tags").map(|f| &mut f.kind) {
            o.max_select = 1;
        }
        conn.execute("UPDATE articles SET tags = '[\"a\",\"b\"]'", []).expect("two values");
        match write(&mut conn, |tx| update(tx, &updated, back.clone())) {
            Err(StoreError::Invalid(e)) => assert_eq!(e.0["fields.4.maxSelect"].code, "validation_data_loss"),
            other => panic!("multi → single with two values must be refused: {other:?}"),
        }
        conn.execute("UPDATE articles SET tags = '[\"b\"]'", []).expect("one value");
        write(&mut conn, |tx| update(tx, &updated, back)).expect("now it is safe");
        let tags: String = conn.query_row("SELECT tags FROM articles", [], |r| r.get(0)).expect("row");
        assert_eq!(tags, "b");
    }

    #[test]
    fn type_changes_and_system_changes_are_refused() {
        let (_d, mut conn) = db();
        let old = write(&mut conn, |tx| create(tx, posts())).expect("create");
        let mut new = old.clone();
        if let Some(f) = new.fields.iter_mut().find(|f| f.name == "title") {
            f.kind = FieldKind::Number(NumberOptions::default());
        }
        assert!(matches!(write(&mut conn, |tx| update(tx, &old, new)), Err(StoreError::Invalid(e)) if e.0.contains_key("fields.3.type")));

        let (_, all) = load_all(&conn).expect("load");
        let su = all.into_iter().find(|c| c.name == "_superusers").expect("su");
        let mut renamed = su.clone();
        renamed.name = "admins".into();
        assert!(write(&mut conn, |tx| update(tx, &su, renamed)).is_err());
        let mut stripped = su.clone();
        stripped.fields.retain(|f| f.name != "email");
        assert!(write(&mut conn, |tx| update(tx, &su, stripped)).is_err());
        assert!(matches!(write(&mut conn, |tx| delete(tx, &su)), Err(StoreError::SystemCollection)));
    }

    #[test]
    fn delete_refuses_referenced_collections_then_drops_the_table() {
        let (_d, mut conn) = db();
        let p = write(&mut conn, |tx| create(tx, posts())).expect("posts");
        let mut comments = Collection::scaffold(CollectionType::Base, "comments");
        comments.fields.push(Field::new("post", FieldKind::Relation(RelationOptions { collection_id: p.id.clone(), max_select: 1, ..Default::default() })));
        let comments = write(&mut conn, |tx| create(tx, comments)).expect("comments");
        match write(&mut conn, |tx| delete(tx, &p)) {
            Err(StoreError::Refused(m)) => assert!(m.contains("comments"), "{m}"),
            other => panic!("{other:?}"),
        }
        write(&mut conn, |tx| delete(tx, &comments)).expect("delete comments");
        write(&mut conn, |tx| delete(tx, &p)).expect("delete posts");
        assert!(columns(&conn, "posts").is_empty());
        assert!(load_all(&conn).expect("load").1.iter().all(|c| c.name != "posts"));
    }

    #[test]
    fn secrets_are_stored_but_never_serialised() {
        let (_d, mut conn) = db();
        let mut users = Collection::scaffold(CollectionType::Auth, "members");
        if let Some(a) = users.auth.as_mut() {
            a.oauth2.providers.push(OAuth2Provider { name: "github".into(), client_id: "id".into(), client_secret: "hush".into(), ..Default::default() });
        }
        write(&mut conn, |tx| create(tx, users)).expect("create");
        let (_, all) = load_all(&conn).expect("load");
        let users = all.iter().find(|c| c.name == "members").expect("members");
        assert_eq!(users.auth.as_ref().map(|a| a.oauth2.providers[0].client_secret.as_str()), Some("hush"));
        let out = serde_json::to_value(users).expect("json");
        assert_eq!(out["oauth2"]["providers"][0]["clientId"], json!("id"));
        assert!(!out.to_string().contains("hush"));
    }

    #[test]
    fn sql_keywords_and_unqueryable_names_are_refused() {
        let (_d, mut conn) = db();
        for name in ["order", "select", "1abc", &"x".repeat(65)] {
            let c = Collection::scaffold(CollectionType::Base, name);
            match write(&mut conn, |tx| create(tx, c)) {
                Err(StoreError::Invalid(e)) => assert!(e.0.contains_key("name"), "{name}: {e:?}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // Keywords SQLite also accepts as plain names stay usable (positive control).
        for name in ["key", "action", "abc_1"] {
            write(&mut conn, |tx| create(tx, Collection::scaffold(CollectionType::Base, name))).expect(name);
        }
    }

    #[test]
    fn rules_are_compiled_against_the_fields_on_create_update_and_import() {
        let (_d, mut conn) = db();
        let mut c = posts();
        c.list_rule = Some("nosuchfield = 1".into());
        c.view_rule = Some("title = 'x' && (".into());
        match write(&mut conn, |tx| create(tx, c)) {
            Err(StoreError::Invalid(e)) => {
                assert_eq!(e.0["listRule"].code, "validation_invalid_rule");
                assert!(e.0["listRule"].message.contains("nosuchfield"), "{e:?}");
                assert_eq!(e.0["viewRule"].code, "validation_invalid_rule");
            }
            other => panic!("{other:?}"),
        }
        assert!(columns(&conn, "posts").is_empty(), "rolled back");
        let mut good = posts();
        good.update_rule = Some("title != '' && @request.auth.id != '' && tags ?= 'a'".into());
        let stored = write(&mut conn, |tx| create(tx, good)).expect("valid rules pass");
        let mut bad = stored.clone();
        bad.delete_rule = Some("nosuchfield = 1".into());
        assert!(matches!(write(&mut conn, |tx| update(tx, &stored, bad)), Err(StoreError::Invalid(e)) if e.0.contains_key("deleteRule")));
        let mut auth = Collection::scaffold(CollectionType::Auth, "members");
        if let Some(a) = auth.auth.as_mut() {
            a.manage_rule = Some("nosuch.field = 1".into());
        }
        match write(&mut conn, |tx| import(tx, vec![auth], false)) {
            Err(StoreError::Invalid(e)) => assert_eq!(e.0["collections.0.manageRule"].code, "validation_invalid_rule", "{e:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn custom_indexes_cannot_drop_the_unique_auth_indexes() {
        let (_d, mut conn) = db();
        let mut m = Collection::scaffold(CollectionType::Auth, "members");
        m.indexes = vec!["CREATE INDEX idx_v ON members (verified)".into()];
        let created = write(&mut conn, |tx| create(tx, m)).expect("create");
        assert_eq!(created.indexes.len(), 3, "{:?}", created.indexes);
        let mut stripped = created.clone();
        stripped.indexes.clear();
        let updated = write(&mut conn, |tx| update(tx, &created, stripped)).expect("update");
        assert_eq!(updated.indexes.len(), 2, "{:?}", updated.indexes);
        conn.execute("INSERT INTO members (id, email, tokenKey) VALUES ('a', 'x@y.z', 'k1')", []).expect("first");
        assert!(conn.execute("INSERT INTO members (id, email, tokenKey) VALUES ('b', 'x@y.z', 'k2')", []).is_err(), "email stays unique");
        assert!(conn.execute("INSERT INTO members (id, email, tokenKey) VALUES ('c', 'other@y.z', 'k1')", []).is_err(), "tokenKey stays unique");
    }

    #[test]
    fn import_keeps_stored_oauth2_and_token_secrets() {
        let (_d, mut conn) = db();
        let mut m = Collection::scaffold(CollectionType::Auth, "members");
        if let Some(a) = m.auth.as_mut() {
            a.oauth2.providers.push(OAuth2Provider { name: "github".into(), client_id: "id".into(), client_secret: "hush".into(), ..Default::default() });
            a.auth_token.secret = "tok".into();
        }
        let stored = write(&mut conn, |tx| create(tx, m)).expect("create");
        // What an export gives: the API's JSON, without secrets.
        let exported: Collection = serde_json::from_value(serde_json::to_value(&stored).expect("json")).expect("parse");
        write(&mut conn, |tx| import(tx, vec![exported], false)).expect("import");
        let (_, all) = load_all(&conn).expect("load");
        let after = all.iter().find(|c| c.name == "members").and_then(|c| c.auth.clone()).expect("members");
        assert_eq!(after.oauth2.providers[0].client_secret, "hush");
        assert_eq!(after.auth_token.secret, "tok");
        // A secret the import does send replaces the stored one (positive control).
        let mut rotated: Collection = serde_json::from_value(serde_json::to_value(&stored).expect("json")).expect("parse");
        if let Some(a) = rotated.auth.as_mut() {
            a.oauth2.providers[0].client_secret = "new".into();
        }
        write(&mut conn, |tx| import(tx, vec![rotated], false)).expect("import");
        let (_, all) = load_all(&conn).expect("load");
        let after = all.iter().find(|c| c.name == "members").and_then(|c| c.auth.clone()).expect("members");
        assert_eq!(after.oauth2.providers[0].client_secret, "new");
    }

    #[test]
    fn collections_are_filtered_with_the_records_filter_language() {
        let (_d, mut conn) = db();
        write(&mut conn, |tx| create(tx, posts())).expect("posts");
        let (_, all) = load_all(&conn).expect("load");
        let id_of = |n: &str| all.iter().find(|c| c.name == n).map(|c| c.id.clone()).expect(n);
        let names = |f: &str| -> Vec<String> {
            let ids = filter_ids(&conn, f).expect(f);
            all.iter().filter(|c| ids.contains(&c.id)).map(|c| c.name.clone()).collect()
        };
        assert_eq!(names("type = 'auth'"), ["_superusers", "users"]);
        assert_eq!(names("type = 'auth' && system = false"), ["users"]);
        assert_eq!(names("name ~ 'post' || id = '_pb_users_auth_'"), ["users", "posts"]);
        assert_eq!(names(&format!("id = '{}'", id_of("posts"))), ["posts"]);
        assert_eq!(names("listRule ~ '@request.auth.id'"), ["_mfas", "_otps", "_externalAuths", "_authOrigins", "users"]);
        assert_eq!(names("created > '2000-01-01'").len(), all.len());
        for bad in ["nosuch = 1", "name = ", "fields.x = 1"] {
            assert!(matches!(filter_ids(&conn, bad), Err(StoreError::BadFilter(_))), "{bad}");
        }
    }

    #[test]
    fn views_are_created_from_their_query() {
        let (_d, mut conn) = db();
        write(&mut conn, |tx| create(tx, posts())).expect("posts");
        let mut v = Collection::scaffold(CollectionType::View, "titles");
        v.view_query = Some("SELECT id, title FROM posts".into());
        let v = write(&mut conn, |tx| create(tx, v)).expect("view");
        conn.query_row("SELECT count(*) FROM titles", [], |r| r.get::<_, i64>(0)).expect("view is queryable");
        let fields: Vec<(&str, &str)> = v.fields.iter().map(|f| (f.name.as_str(), f.kind.type_name())).collect();
        assert_eq!(fields, [("id", "text"), ("title", "text")], "fields come from the view's columns");
        let mut no_id = Collection::scaffold(CollectionType::View, "noid");
        no_id.view_query = Some("SELECT title FROM posts".into());
        assert!(matches!(write(&mut conn, |tx| create(tx, no_id)), Err(StoreError::Invalid(e)) if e.0.contains_key("viewQuery")));
        let mut bad = Collection::scaffold(CollectionType::View, "bad");
        bad.view_query = Some("SELECT 1; DROP TABLE posts".into());
        assert!(write(&mut conn, |tx| create(tx, bad)).is_err());
    }

    #[test]
    fn renamed_columns_are_rewritten_in_index_statements() {
        let sql = "CREATE INDEX i ON \"t\" (title, \"title\", subtitle) WHERE title != 'title' AND title_x = 1";
        assert_eq!(
            rename_index_column(sql, "title", "headline"),
            "CREATE INDEX i ON \"t\" (\"headline\", \"headline\", subtitle) WHERE \"headline\" != 'title' AND title_x = 1"
        );
    }

    #[test]
    fn renamed_columns_are_rewritten_in_every_identifier_quoting() {
        let cases = [
            ("CREATE INDEX `idx_a` ON \"t9\" (`title`)", "CREATE INDEX `idx_a` ON \"t9\" (\"headline\")"),
            ("CREATE INDEX i ON \"t\" ([title] DESC, Title, `title` COLLATE nocase)", "CREATE INDEX i ON \"t\" (\"headline\" DESC, \"headline\", \"headline\" COLLATE nocase)"),
            ("CREATE INDEX i ON \"t\" (lower(title), \"titles\", `x`)", "CREATE INDEX i ON \"t\" (lower(\"headline\"), \"titles\", `x`)"),
            // A function or collation that happens to share the name is not a column.
            ("CREATE INDEX i ON \"t\" (a COLLATE title, title(b))", "CREATE INDEX i ON \"t\" (a COLLATE title, title(b))"),
        ];
        for (sql, want) in cases {
            assert_eq!(rename_index_column(sql, "title", "headline"), want, "{sql}");
        }
    }

    #[test]
    fn index_statements_are_normalised_onto_the_table() {
        assert_eq!(normalize_index("create unique index idx on x (a, b) where a != ''", "t").as_deref(), Some("CREATE UNIQUE INDEX idx ON \"t\" (a, b) where a != ''"));
        assert_eq!(normalize_index("CREATE INDEX IF NOT EXISTS i ON `x` (a)", "t").as_deref(), Some("CREATE INDEX IF NOT EXISTS i ON \"t\" (a)"));
        // A statement already on the table keeps its text, whatever its quoting.
        for same in ["CREATE UNIQUE INDEX `i` ON `t` (`a`) WHERE `a` != ''", "CREATE INDEX i ON T(a)", "CREATE INDEX i ON [t] (a)"] {
            assert_eq!(normalize_index(same, "t").as_deref(), Some(same));
        }
        for bad in ["", "DROP TABLE x", "CREATE TABLE x (a)", "CREATE INDEX ON x (a)", "CREATE INDEX i ON x (a); DROP TABLE y", "CREATE INDEX i x"] {
            assert!(normalize_index(bad, "t").is_none(), "{bad}");
        }
    }
}
