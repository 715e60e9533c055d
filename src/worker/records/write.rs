//! The synchronous middle of a record write, shared by single requests and batches: resolve
//! the body's modifiers against the stored record, validate, put in the password hashes that
//! were computed beforehand, then create or update through [`super::crud`] — all inside the
//! caller's write transaction, so a batch item sees what earlier items of the same batch wrote.
//!
//! Files reach storage before the transaction (the writer thread never does storage I/O): the
//! caller passes their stored names in ([`Uploaded`]) so validation accepts them.
//!
//! Password hashing and checking are argon2 work that must not run on the writer thread, so
//! callers hash every plain password of the body first ([`plain_passwords`]) and check every
//! `oldPassword` against the stored hash ([`Passwords::checked`]) and pass the results in.

use std::collections::HashMap;

use rusqlite::Transaction;
use serde_json::{Map, Value};

use super::cache::Snapshot;
use super::changes::Changes;
use super::crud::{self, CrudError, Requester, Shape};
use super::schema::{Collection, FieldKind, Invalid, SchemaErrors};
use super::sql_value::SqlValue;
use super::values::{check_record, datetime, resolve_input, unchecked_record, Access, PasswordInput, Rejected, Validated, WriteOptions};

/// The argon2 work a write needs, done before its transaction: plain password → its hash,
/// and (stored hash, `oldPassword`) → whether they match.
#[derive(Debug, Default)]
pub struct Passwords {
    hashes: HashMap<String, String>,
    checked: HashMap<(String, String), bool>,
}

impl Passwords {
    pub fn new() -> Passwords {
        Passwords::default()
    }

    /// Whether `plain` still needs hashing.
    pub fn needs_hash(&self, plain: &str) -> bool {
        !self.hashes.contains_key(plain)
    }

    pub fn insert(&mut self, plain: String, hash: String) {
        self.hashes.insert(plain, hash);
    }

    /// Records the outcome of checking `old` against the stored hash `stored`.
    pub fn checked(&mut self, stored: String, old: String, matches: bool) {
        self.checked.insert((stored, old), matches);
    }

    /// Whether `old` is the password behind `stored`, from the work done beforehand: a check
    /// made against that hash, or — for a hash an earlier item of the same batch set — the
    /// plain password it was made from. Anything else (the stored password changed since the
    /// check) counts as a wrong old password; the client retries.
    fn old_password_matches(&self, stored: &str, old: &str) -> bool {
        if let Some(ok) = self.checked.get(&(stored.to_owned(), old.to_owned())) {
            return *ok;
        }
        self.hashes.iter().any(|(plain, hash)| hash == stored && plain == old)
    }
}

/// The `oldPassword` a body sends for an auth collection, if any (to check beforehand).
pub fn old_password<'b>(c: &Collection, body: &'b Map<String, Value>) -> Option<&'b str> {
    if c.kind != super::schema::CollectionType::Auth {
        return None;
    }
    body.get("oldPassword").and_then(Value::as_str).filter(|p| !p.is_empty())
}

/// The files that came with a write, already in storage before its transaction (a batch
/// stores them first: object storage must not be written from the writer thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Uploaded<'a> {
    /// Stored names of the uploads: accepted in file fields like names already stored.
    pub names: &'a [String],
    /// The id a create must take when the body names none: the uploads were stored under it.
    pub id: Option<&'a str>,
}

/// The plain passwords a body may set on `c`: the values under its password fields' names.
pub fn plain_passwords(c: &Collection, body: &Map<String, Value>) -> Vec<String> {
    c.fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Password(_)))
        .filter_map(|f| body.get(&f.name).and_then(Value::as_str))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn hashed(columns: &mut Vec<(String, SqlValue)>, passwords: Vec<(String, PasswordInput)>, hashes: &Passwords) -> Result<(), CrudError> {
    for (field, PasswordInput::Plain(plain)) in passwords {
        let hash = hashes.hashes.get(&plain).ok_or(CrudError::Refused("Failed to hash the password."))?;
        columns.push((field, SqlValue::Text(hash.clone())));
    }
    Ok(())
}

/// Validation failed: the field errors plus any missing related ids, as single requests do.
fn rejected(tx: &Transaction<'_>, snap: &Snapshot, r: Rejected, message: &'static str) -> CrudError {
    let Rejected { mut errors, relations, .. } = r;
    if !relations.is_empty() {
        match crud::missing_relations(tx, snap, &relations) {
            Ok(missing) => errors.0.extend(missing.0),
            Err(e) => return e,
        }
    }
    CrudError::Invalid { message, errors }
}

/// Creates the record from `body` in the order single requests use: the create rule first (on
/// the record as submitted, so a refused client learns nothing from field errors), then
/// validation, then the insert (which checks the rule again). `req.ctx.body` becomes the
/// resolved input. Files stored beforehand come in `uploaded` ([`Uploaded`]).
#[allow(clippy::too_many_arguments)]
pub fn create(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &mut Requester,
    body: Map<String, Value>,
    access: Access,
    hashes: &Passwords,
    shape: &Shape,
    changes: &mut Changes,
    uploaded: Uploaded<'_>,
) -> Result<Vec<u8>, CrudError> {
    create_as(Check::Validate, tx, snap, c, req, body, access, hashes, shape, changes, uploaded)
}

/// Whether a write validates its fields ([`check_record`]) or stores them as coerced
/// ([`unchecked_record`], PocketBase's `saveNoValidate`). Rules and relations apply either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Validate,
    Skip,
}

impl Check {
    fn run(self, c: &Collection, input: &Map<String, Value>, opts: &WriteOptions<'_>) -> Result<Validated, Rejected> {
        match self {
            Check::Validate => check_record(c, input, opts),
            Check::Skip => unchecked_record(c, input, opts),
        }
    }
}

/// [`create`] with the given [`Check`].
#[allow(clippy::too_many_arguments)]
pub fn create_as(
    check: Check,
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &mut Requester,
    body: Map<String, Value>,
    access: Access,
    hashes: &Passwords,
    shape: &Shape,
    changes: &mut Changes,
    uploaded: Uploaded<'_>,
) -> Result<Vec<u8>, CrudError> {
    if c.create_rule.is_none() && !req.superuser {
        return Err(CrudError::SuperusersOnly);
    }
    let input = resolve_input(c, None, body, access);
    let opts = WriteOptions { existing: None, access, now_millis: datetime::now_millis(), new_files: uploaded.names };
    // The preset id is validated like a submitted one, but rules see the body as sent.
    let checked = match uploaded.id.filter(|_| input.get("id").and_then(Value::as_str).is_none_or(str::is_empty)) {
        Some(id) => {
            let mut with_id = input.clone();
            with_id.insert("id".into(), Value::String(id.to_owned()));
            check.run(c, &with_id, &opts)
        }
        None => check.run(c, &input, &opts),
    };
    req.ctx.body = input;
    let columns = match &checked {
        Ok(v) => &v.columns,
        Err(r) => &r.columns,
    };
    if !crud::create_rule_admits(tx, snap, c, req, columns)? {
        return Err(CrudError::Refused("Failed to create record."));
    }
    let validated = checked.map_err(|r| rejected(tx, snap, r, "Failed to create record."))?;
    let mut columns = validated.columns;
    hashed(&mut columns, validated.passwords, hashes)?;
    let bytes = crud::create(tx, snap, c, req, &columns, &validated.relations, shape, changes)?;
    Ok(super::webhooks_collection::reveal_secret(c, &columns, bytes))
}

/// Updates record `id` from `body` in the order single requests use: the update rule first
/// (a refused client gets the 404 whatever it sent), then validation and the old password,
/// then the write (which checks the rule again). `uploaded.names` are the files stored for it
/// beforehand (its `id` is not used).
#[allow(clippy::too_many_arguments)]
pub fn update(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &mut Requester,
    id: &str,
    body: Map<String, Value>,
    access: Access,
    hashes: &Passwords,
    shape: &Shape,
    changes: &mut Changes,
    uploaded: Uploaded<'_>,
) -> Result<Vec<u8>, CrudError> {
    update_as(Check::Validate, tx, snap, c, req, id, body, access, hashes, shape, changes, uploaded)
}

/// [`update`] with the given [`Check`].
#[allow(clippy::too_many_arguments)]
pub fn update_as(
    check: Check,
    tx: &Transaction<'_>,
    snap: &Snapshot,
    c: &Collection,
    req: &mut Requester,
    id: &str,
    body: Map<String, Value>,
    access: Access,
    hashes: &Passwords,
    shape: &Shape,
    changes: &mut Changes,
    uploaded: Uploaded<'_>,
) -> Result<Vec<u8>, CrudError> {
    let existing = crud::existing(tx, c, id)?.ok_or(CrudError::NotFound)?;
    if c.update_rule.is_none() && !req.superuser {
        return Err(CrudError::SuperusersOnly);
    }
    let access = if access == Access::Default && crud::manages(tx, snap, c, req, id)? { Access::Manager } else { access };
    let input = resolve_input(c, Some(&existing), body, access);
    req.ctx.body = input.clone();
    if !crud::can_update(tx, snap, c, req, id)? {
        return Err(CrudError::NotFound);
    }
    let opts = WriteOptions { existing: Some(&existing), access, now_millis: datetime::now_millis(), new_files: uploaded.names };
    let validated = check.run(c, &input, &opts).map_err(|r| rejected(tx, snap, r, "Failed to update record."))?;
    if let Some(PasswordInput::Plain(old)) = &validated.old_password {
        let stored = existing.get("password").and_then(Value::as_str).unwrap_or_default();
        if !hashes.old_password_matches(stored, old) {
            let mut errors = SchemaErrors::default();
            errors.add("oldPassword", Invalid::new("validation_invalid_old_password", "Missing or invalid old password."));
            return Err(CrudError::Invalid { message: "Failed to update record.", errors });
        }
    }
    let mut columns = validated.columns;
    hashed(&mut columns, validated.passwords, hashes)?;
    crud::update(tx, snap, c, req, id, &columns, &validated.relations, shape, changes)
}
