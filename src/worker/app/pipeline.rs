//! The one record write pipeline. Every record create, update and delete goes through here —
//! REST, batch items, OAuth2 sign-ups, links and takeovers, the account-flow confirms, and the
//! relation cascades they set off — so what attaches to writes (observers today; hooks, jobs
//! and webhooks later) attaches once. The stages, in order:
//!
//! ```text
//! plan (schema snapshot, stored record) → API rule (before validation, as PocketBase)
//!   → validate → argon2 and old-password checks (password pool, never the writer thread)
//!   → before-write observers (may refuse) → store uploads
//!   → one transaction: write, cascades, re-checked rule, webhook deliveries enqueued (the
//!     outbox), stamp the changes → COMMIT
//!   → after-commit effects, in order: realtime publish (on the writer, in commit order),
//!     file cleanup, after-write observers
//! ```
//!
//! It owns that order and the retries a write needs when the schema or a record's files
//! change under it. It knows no HTTP: callers build the [`Requester`] and map [`WriteError`]
//! to their answer. It must not run anything slow on the writer thread (argon2, storage,
//! observers), and nothing with an effect outside SQLite may happen before the COMMIT except
//! storing uploads, which are removed again if the write does not commit.

use std::sync::Arc;

use rusqlite::Transaction;
use serde_json::{Map, Value};

use super::observe::{columns_map, Observers, Pending, Refusal, Source};
use crate::shared::db::{Db, DbError};
use crate::worker::auth::password::{PasswordError, PasswordPool};
use crate::worker::files::storage::StorageError;
use crate::worker::files::{self, staged::StagedFile, FilesError, StorageSource};
use crate::worker::jobs::{webhooks, Jobs};
use crate::worker::realtime::Realtime;
use crate::worker::records::cache::{CacheError, SchemaCache, Snapshot};
use crate::worker::records::changes::{self, Action, Change, Changes, Stamped};
use crate::worker::records::crud::{self, CrudError, Requester, Shape};
use crate::worker::records::schema::{Collection, CollectionType, FieldKind, Invalid, SchemaErrors};
use crate::worker::records::sql_value::SqlValue;
use crate::worker::records::values::{self, check_record, resolve_input, Access, PasswordInput, Rejected, WriteOptions};
use crate::worker::records::webhooks_collection;
use crate::worker::settings::SettingsCache;

/// Planning attempts when the schema changes under a write (once stale, then fresh).
const STALE_REPLANS: usize = 1;
/// Re-plans allowed when concurrent updates keep changing a record's files under an update.
const ROW_CHANGE_REPLANS: usize = 8;

/// The handles a write needs, borrowed from the worker's state.
#[derive(Clone, Copy)]
pub struct Writes<'a> {
    pub db: &'a Db,
    pub schema: &'a SchemaCache,
    pub settings: &'a SettingsCache,
    pub files: &'a files::Files,
    pub passwords: &'a PasswordPool,
    pub realtime: &'a Realtime,
    pub observers: &'a Observers,
    /// Woken after a commit that enqueued jobs (webhook deliveries).
    pub jobs: &'a Arc<Jobs>,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No collection by that name or id.
    #[error("missing collection")]
    MissingCollection,
    /// Refused, not found, invalid or failed in SQLite: the record layer's answer.
    #[error(transparent)]
    Crud(#[from] CrudError),
    /// The schema or the record's files kept changing while the write was planned.
    #[error("{0}")]
    Conflict(&'static str),
    /// A before-write observer refused it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("hashing a password: {0}")]
    Password(#[from] PasswordError),
    #[error("file storage: {0}")]
    Storage(#[from] FilesError),
    #[error("storing an upload: {0}")]
    Store(#[from] StorageError),
    #[error("loading collections: {0}")]
    Schema(#[from] CacheError),
}

impl From<DbError> for WriteError {
    fn from(e: DbError) -> Self {
        WriteError::Crud(CrudError::Db(e))
    }
}

/// A create, update or delete as the client asked for it.
pub struct RecordWrite<'r> {
    pub collection: &'r str,
    /// Who asks, with `@request.*` (its `ctx.body` is set here to the resolved input).
    pub requester: &'r Requester,
    pub shape: &'r Shape,
}

/// What a committed write leaves for the effects after it: its changes (kept only when an
/// observer will be told) and where they came from.
#[must_use = "the after-commit observers run only when the effects are finished"]
pub struct Effects {
    source: Source,
    changes: Vec<Change>,
}

impl Effects {
    /// The last after-commit stage: tells the observers about every committed change.
    pub fn finish(self, observers: &Observers) {
        if !self.changes.is_empty() {
            observers.after(self.source, &self.changes);
        }
    }
}

/// Why one planning attempt ended without an outcome.
enum Attempt {
    /// The held schema snapshot was stale: plan again with a fresh one.
    Stale,
    /// The record's file fields changed between the plan's read and the write.
    RowChanged,
    Failed(WriteError),
}

impl From<WriteError> for Attempt {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Crud(CrudError::Stale(_)) => Attempt::Stale,
            other => Attempt::Failed(other),
        }
    }
}

/// Every error a stage can end with becomes an attempt's end the same way.
macro_rules! attempt_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Attempt {
            fn from(e: $t) -> Self {
                Attempt::from(WriteError::from(e))
            }
        }
    )*};
}
attempt_from!(CrudError, DbError, PasswordError, FilesError, StorageError, Refusal, CacheError);

fn base_access(req: &Requester) -> Access {
    if req.superuser {
        Access::Superuser
    } else {
        Access::Default
    }
}

fn with_body(req: &Requester, body: Map<String, Value>) -> Requester {
    let mut r = req.clone();
    r.ctx.body = body;
    r
}

/// Which job runners a committed write wakes: none, the lead's only (it enqueued webhook
/// deliveries), or every worker's (a hook staged jobs).
enum Wake {
    None,
    Led,
    All,
}

impl<'a> Writes<'a> {
    pub fn storage_source(&self) -> StorageSource<'a> {
        StorageSource { files: self.files, settings: self.settings, db: self.db }
    }

    /// The transaction stage of any record write: runs `f` in a write transaction, stamps the
    /// changes it records into the cluster-wide commit order, and once it committed publishes
    /// them to realtime (on the writer thread, so events leave in commit order). The caller
    /// runs its own after-commit work, then [`Effects::finish`].
    pub async fn transact<T, E, F>(&self, source: Source, f: F) -> Result<(T, Effects), E>
    where
        T: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut Changes) -> Result<T, E> + Send + 'static,
    {
        let realtime = self.realtime.clone();
        let observed = !self.observers.is_empty();
        let jobs = self.jobs.clone();
        let outbox = self.jobs.clone();
        // Jobs a record hook enqueued for this write (JS threads, which poll this future
        // themselves): inserted by its transaction, so they exist only if it commits.
        let staged = crate::worker::jobs::take_staged();
        let restage = (!staged.is_empty()).then(|| staged.clone());
        let written = self
            .db
            .write_then(
                move |tx| -> Result<(T, Stamped, Vec<Change>, Wake), E> {
                    // Checked in this transaction, so a webhook created a moment ago on another
                    // worker already counts (see `ActiveCache`); an update's previous record is
                    // kept for them.
                    let hooks = outbox.webhooks.get(tx)?;
                    let mut changes = if observed || !hooks.is_empty() { Changes::keeping_before() } else { Changes::new() };
                    let out = f(tx, &mut changes)?;
                    // A write to the webhook definitions: every worker reloads its active set
                    // before its next write (announced inside this transaction, see `ActiveCache`).
                    if changes.iter().any(|c| c.collection_id == webhooks_collection::ID) {
                        outbox.webhooks.changed();
                    }
                    // The outbox: deliveries commit or roll back with the write itself.
                    let now = crate::worker::jobs::now_ms();
                    let enqueued = webhooks::outbox(tx, &outbox.webhooks, &hooks, &changes, now)?;
                    crate::worker::jobs::insert_staged(tx, &staged, now)?;
                    let stamped = changes::stamp(tx, changes)?;
                    let wake = if !staged.is_empty() {
                        Wake::All
                    } else if enqueued > 0 {
                        Wake::Led
                    } else {
                        Wake::None
                    };
                    Ok((out, stamped, Vec::new(), wake))
                },
                move |(_, stamped, kept, wake): &mut (T, Stamped, Vec<Change>, Wake)| {
                    match wake {
                        Wake::All => jobs.wake(),
                        Wake::Led => jobs.wake_led(),
                        Wake::None => {}
                    }
                    if observed {
                        kept.clone_from(&stamped.changes);
                    }
                    realtime.publish(std::mem::take(stamped));
                },
            )
            .await;
        if let (Err(_), Some(jobs)) = (&written, restage) {
            // A write that is planned again (stale schema, files changed) takes them again.
            crate::worker::jobs::stage(jobs);
        }
        let (out, _, changes, _) = written?;
        Ok((out, Effects { source, changes }))
    }

    /// [`Self::transact`] for writes with no after-commit work of their own.
    pub async fn commit<T, E, F>(&self, source: Source, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut Changes) -> Result<T, E> + Send + 'static,
    {
        let (out, effects) = self.transact(source, f).await?;
        effects.finish(self.observers);
        Ok(out)
    }

    /// The before-write stage: every observer sees the write as planned; one may refuse it.
    pub async fn before(&self, source: Source, action: Action, c: &Collection, record_id: &str, before: Option<Map<String, Value>>, after: Option<Map<String, Value>>) -> Result<(), Refusal> {
        if self.observers.is_empty() {
            return Ok(());
        }
        let pending = Pending {
            source,
            action,
            collection_id: c.id.clone(),
            collection_name: c.name.clone(),
            record_id: record_id.to_owned(),
            before,
            after,
        };
        self.observers.before(&pending).await
    }

    async fn snapshot(&self, collection: &str, fresh: bool) -> Result<(Arc<Snapshot>, Arc<Collection>), WriteError> {
        let snap = self.schema.for_job(self.db, collection, fresh).await?;
        let c = snap.get(collection).cloned().ok_or(WriteError::MissingCollection)?;
        Ok((snap, c))
    }

    /// Runs `once` with the held snapshot, again with a fresh one if that was stale, and again
    /// while a record's files changed under it (a bounded number of times).
    async fn replanned<T, F, Fut>(&self, once: F) -> Result<T, WriteError>
    where
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let (mut stale, mut row_changes) = (0, 0);
        loop {
            match once(stale > 0).await {
                Ok(v) => return Ok(v),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Stale) if stale < STALE_REPLANS => {
                    self.schema.invalidate();
                    stale += 1;
                }
                Err(Attempt::Stale) => return Err(WriteError::Conflict("The collection changed while the record was being written; please retry.")),
                Err(Attempt::RowChanged) if row_changes < ROW_CHANGE_REPLANS => row_changes += 1,
                Err(Attempt::RowChanged) => return Err(WriteError::Conflict("The record's files kept changing while it was being updated; please retry.")),
            }
        }
    }

    /// Hashes validated plain passwords into their columns (argon2 on the bounded pool).
    async fn hash_into(&self, columns: &mut Vec<(String, SqlValue)>, passwords: Vec<(String, PasswordInput)>) -> Result<(), WriteError> {
        for (field, PasswordInput::Plain(plain)) in passwords {
            let hash = self.passwords.hash(&plain).await?;
            columns.push((field, SqlValue::Text(hash)));
        }
        Ok(())
    }

    /// A rejected body as the record layer reports it: its field errors plus its missing
    /// related records (that check reads the database, so it runs here, off the writer).
    async fn rejection(&self, snap: Arc<Snapshot>, rejected: Rejected, message: &'static str) -> WriteError {
        let Rejected { mut errors, relations, .. } = rejected;
        if !relations.is_empty() {
            match self.db.read(move |conn| crud::missing_relations(conn, &snap, &relations)).await {
                Ok(missing) => errors.0.extend(missing.0),
                Err(e) => return e.into(),
            }
        }
        WriteError::Crud(CrudError::Invalid { message, errors })
    }

    /// Whether a create (`update_of` None) or an update of record `update_of` may be tried at
    /// all, decided before its body is read, so a refused client cannot make the server read
    /// and stage up to the body limit: the collection exists and is no view, and its rule is
    /// not null for a non-superuser (an update of a missing record is still a 404 first, as
    /// PocketBase answers). The write itself checks all of this again.
    pub async fn admits(&self, collection: &str, requester: &Requester, update_of: Option<&str>) -> Result<(), WriteError> {
        let (_, c) = self.snapshot(collection, false).await?;
        if c.kind == CollectionType::View {
            return Err(CrudError::Refused("Unsupported collection type.").into());
        }
        if requester.superuser {
            return Ok(());
        }
        match update_of {
            None if c.create_rule.is_none() => Err(CrudError::SuperusersOnly.into()),
            Some(id) if c.update_rule.is_none() => {
                let id = id.to_owned();
                let found = self.db.read(move |conn| crud::existing(conn, &c, &id)).await?;
                Err(if found.is_some() { CrudError::SuperusersOnly } else { CrudError::NotFound }.into())
            }
            _ => Ok(()),
        }
    }

    /// Creates a record from `body` (with `uploads` for its file fields); answers its JSON.
    pub async fn create(&self, w: RecordWrite<'_>, body: Map<String, Value>, uploads: &[StagedFile]) -> Result<Vec<u8>, WriteError> {
        self.replanned(|fresh| self.create_once(&w, body.clone(), uploads, fresh)).await
    }

    async fn create_once(&self, w: &RecordWrite<'_>, body: Map<String, Value>, uploads: &[StagedFile], fresh: bool) -> Result<Vec<u8>, Attempt> {
        let (snap, c) = self.snapshot(w.collection, fresh).await?;
        let superuser = w.requester.superuser;
        if c.kind == CollectionType::View {
            return Err(CrudError::Refused("Unsupported collection type.").into());
        }
        if c.create_rule.is_none() && !superuser {
            return Err(CrudError::SuperusersOnly.into());
        }
        let access = base_access(w.requester);
        let input = resolve_input(&c, None, body, access);
        let new_files = files::record::upload_names(uploads);
        let opts = WriteOptions { existing: None, access, now_millis: values::datetime::now_millis(), new_files: &new_files };
        let checked = check_record(&c, &input, &opts);
        // PocketBase checks the create rule before it validates, on the record as submitted,
        // so a client the rule refuses gets the bare 400 and learns nothing from field errors
        // (such as whether an email or a related id exists). The insert checks it again.
        if !superuser && c.create_rule.as_deref().is_some_and(|r| !r.trim().is_empty()) {
            let columns = match &checked {
                Ok(v) => v.columns.clone(),
                Err(r) => r.columns.clone(),
            };
            let (rule_snap, rule_c, rule_req) = (snap.clone(), c.clone(), with_body(w.requester, input.clone()));
            let admitted = self
                .db
                .read(move |conn| crud::read_snapshot(conn, |conn| crud::create_rule_admits(conn, &rule_snap, &rule_c, &rule_req, &columns)))
                .await?;
            if !admitted {
                return Err(CrudError::Refused(CREATE_FAILED).into());
            }
        }
        let validated = match checked {
            Ok(v) => v,
            Err(rejected) => return Err(Attempt::Failed(self.rejection(snap, rejected, CREATE_FAILED).await)),
        };
        let mut columns = validated.columns;
        self.hash_into(&mut columns, validated.passwords).await?;
        let record_id = columns.iter().find(|(n, _)| n == "id").map(|(_, v)| v.to_text()).unwrap_or_default();
        if !self.observers.is_empty() {
            self.before(Source::Rest, Action::Create, &c, &record_id, None, Some(columns_map(&columns))).await?;
        }
        // Uploads go to storage before the commit and are removed again if it does not happen.
        let keep = files::record::kept(&input, uploads);
        let stored = if keep.is_empty() {
            None
        } else {
            let storage = files::storage(self.storage_source()).await?;
            let written = files::record::store(&storage, &c.id, &record_id, &keep).await?;
            Some((storage, written))
        };
        let requester = with_body(w.requester, input);
        let (relations, shape) = (validated.relations, w.shape.clone());
        let result = self
            .transact(Source::Rest, move |tx, changes| {
                let bytes = crud::create(tx, &snap, &c, &requester, &columns, &relations, &shape, changes)?;
                Ok::<_, CrudError>(webhooks_collection::reveal_secret(&c, &columns, bytes))
            })
            .await;
        if let (Err(_), Some((storage, written))) = (&result, &stored) {
            files::record::discard(storage, written).await;
        }
        let (bytes, effects) = result?;
        effects.finish(self.observers);
        Ok(bytes)
    }

    /// Updates record `id` from `body` (with `uploads`); answers its JSON.
    pub async fn update(&self, w: RecordWrite<'_>, id: &str, body: Map<String, Value>, uploads: &[StagedFile]) -> Result<Vec<u8>, WriteError> {
        self.replanned(|fresh| self.update_once(&w, id, body.clone(), uploads, fresh)).await
    }

    async fn update_once(&self, w: &RecordWrite<'_>, id: &str, body: Map<String, Value>, uploads: &[StagedFile], fresh: bool) -> Result<Vec<u8>, Attempt> {
        let (snap, c) = self.snapshot(w.collection, fresh).await?;
        let superuser = w.requester.superuser;
        if c.update_rule.is_none() && !superuser {
            // PocketBase answers a missing record first, so look before refusing.
            let (lookup_c, lookup_id) = (c.clone(), id.to_owned());
            let found = self.db.read(move |conn| crud::existing(conn, &lookup_c, &lookup_id)).await?;
            return Err(match found {
                None => CrudError::NotFound,
                Some(_) => CrudError::SuperusersOnly,
            }
            .into());
        }
        // As in PocketBase the update rule is checked before the body is validated: a client
        // it refuses gets the 404 whatever it sent. The write re-checks it in its transaction.
        let base = base_access(w.requester);
        let mut plan_req = w.requester.clone();
        let (plan_snap, plan_c, plan_id) = (snap.clone(), c.clone(), id.to_owned());
        let plan = self
            .db
            .read(move |conn| {
                crud::read_snapshot(conn, |conn| {
                    plan_snap.check(conn)?;
                    let Some(existing) = crud::existing(conn, &plan_c, &plan_id)? else { return Ok(None) };
                    // A requester passing the auth collection's manageRule writes as a manager.
                    let access = if base == Access::Default && crud::manages(conn, &plan_snap, &plan_c, &plan_req, &plan_id)? { Access::Manager } else { base };
                    let input = resolve_input(&plan_c, Some(&existing), body, access);
                    plan_req.ctx.body = input.clone();
                    let allowed = crud::can_update(conn, &plan_snap, &plan_c, &plan_req, &plan_id)?;
                    Ok(Some(UpdatePlan { existing, access, input, allowed }))
                })
            })
            .await?;
        let Some(UpdatePlan { existing, access, input, allowed }) = plan else { return Err(CrudError::NotFound.into()) };
        if !allowed {
            return Err(CrudError::NotFound.into());
        }
        let new_files = files::record::upload_names(uploads);
        let opts = WriteOptions { existing: Some(&existing), access, now_millis: values::datetime::now_millis(), new_files: &new_files };
        let validated = match check_record(&c, &input, &opts) {
            Ok(v) => v,
            Err(rejected) => return Err(Attempt::Failed(self.rejection(snap, rejected, UPDATE_FAILED).await)),
        };
        if let Some(PasswordInput::Plain(old)) = &validated.old_password {
            let hash = existing.get("password").and_then(Value::as_str).map(str::to_owned);
            if !self.passwords.verify_or_dummy(hash, old).await {
                return Err(CrudError::Invalid { message: UPDATE_FAILED, errors: invalid_old_password() }.into());
            }
        }
        let mut columns = validated.columns;
        self.hash_into(&mut columns, validated.passwords).await?;
        if !self.observers.is_empty() {
            let mut after = existing.clone();
            after.extend(columns_map(&columns));
            self.before(Source::Rest, Action::Update, &c, id, Some(existing.clone()), Some(after)).await?;
        }
        // New uploads are stored before the commit (removed again if it fails); the files the
        // update drops are deleted only after it committed.
        let keep = files::record::kept(&input, uploads);
        // The file fields this update sets: their new value was computed from `existing`, so
        // the write goes ahead only if they still hold what was read (else another update
        // changed them meanwhile, and writing this value would re-name a file it deleted or
        // drop one it added: plan again). The files to delete are those of the row as the
        // write finds it.
        let file_fields: Vec<String> =
            c.fields.iter().filter(|f| matches!(f.kind, FieldKind::File(_)) && input.contains_key(&f.name)).map(|f| f.name.clone()).collect();
        let storage = if keep.is_empty() && file_fields.is_empty() { None } else { Some(files::storage(self.storage_source()).await?) };
        let collection_id = c.id.clone();
        let written = match &storage {
            Some(s) if !keep.is_empty() => files::record::store(s, &collection_id, id, &keep).await?,
            _ => Vec::new(),
        };
        let file_input: Map<String, Value> = file_fields.iter().filter_map(|f| input.get(f).map(|v| (f.clone(), v.clone()))).collect();
        let requester = with_body(w.requester, input);
        let (relations, shape, record_id) = (validated.relations, w.shape.clone(), id.to_owned());
        let result = self
            .transact(Source::Rest, move |tx, changes| -> Result<UpdateOutcome, CrudError> {
                let mut dropped = Vec::new();
                if !file_fields.is_empty() {
                    let Some(current) = crud::existing(tx, &c, &record_id)? else { return Err(CrudError::NotFound) };
                    if file_fields.iter().any(|f| current.get(f) != existing.get(f)) {
                        return Ok(None);
                    }
                    dropped = files::record::removed(&c, &current, &file_input);
                }
                let bytes = crud::update(tx, &snap, &c, &requester, &record_id, &columns, &relations, &shape, changes)?;
                Ok(Some((bytes, dropped)))
            })
            .await;
        match (&storage, &result) {
            (Some(s), Ok((Some((_, dropped)), _))) => files::record::delete_names(s, &collection_id, id, dropped).await,
            (Some(s), _) => files::record::discard(s, &written).await,
            (None, _) => {}
        }
        let (outcome, effects) = result?;
        effects.finish(self.observers);
        match outcome {
            Some((bytes, _)) => Ok(bytes),
            None => Err(Attempt::RowChanged),
        }
    }

    /// Deletes record `id` (and what its relations cascade to), then the files of every
    /// deleted record.
    pub async fn delete(&self, w: RecordWrite<'_>, id: &str) -> Result<(), WriteError> {
        self.replanned(|fresh| self.delete_once(&w, id, fresh)).await
    }

    async fn delete_once(&self, w: &RecordWrite<'_>, id: &str, fresh: bool) -> Result<(), Attempt> {
        let (snap, c) = self.snapshot(w.collection, fresh).await?;
        if !self.observers.is_empty() {
            let (lookup_c, lookup_id) = (c.clone(), id.to_owned());
            if let Some(existing) = self.db.read(move |conn| crud::existing(conn, &lookup_c, &lookup_id)).await? {
                self.before(Source::Rest, Action::Delete, &c, id, Some(existing), None).await?;
            }
        }
        let (job_snap, requester, record_id) = (snap.clone(), w.requester.clone(), id.to_owned());
        let (deleted, effects) =
            self.transact(Source::Rest, move |tx, changes| crud::delete(tx, &job_snap, &c, &requester, &record_id, changes)).await.map_err(Attempt::from)?;
        self.delete_files_of(&snap, deleted).await;
        effects.finish(self.observers);
        Ok(())
    }

    /// After a committed delete: removes the files of every deleted record (cascades
    /// included) whose collection has file fields. Never fails the write; problems are logged.
    pub async fn delete_files_of(&self, snap: &Snapshot, deleted: Vec<(String, String)>) {
        let with_files: Vec<(String, String)> =
            deleted.into_iter().filter(|(cid, _)| snap.get(cid).is_some_and(|c| c.fields.iter().any(|f| matches!(f.kind, FieldKind::File(_))))).collect();
        if with_files.is_empty() {
            return;
        }
        match files::storage(self.storage_source()).await {
            Ok(storage) => files::record::delete_records(&storage, &with_files).await,
            Err(e) => tracing::warn!(error = %e, "no storage to delete the files of deleted records"),
        }
    }
}

/// The messages PocketBase answers a failed write with.
pub const CREATE_FAILED: &str = "Failed to create record.";
pub const UPDATE_FAILED: &str = "Failed to update record.";
pub const DELETE_FAILED: &str = "Failed to delete record.";

/// PocketBase's field error for a wrong `oldPassword`.
pub fn invalid_old_password() -> SchemaErrors {
    let mut errors = SchemaErrors::default();
    errors.add("oldPassword", Invalid::new("validation_invalid_old_password", "Missing or invalid old password."));
    errors
}

/// What an update's transaction did: the updated record's JSON and the stored names it
/// dropped, or None when the record's files changed since the plan (nothing written).
type UpdateOutcome = Option<(Vec<u8>, Vec<String>)>;

/// What an update needs decided before validation, read in one job: the stored record, the
/// writer's access (manageRule) and its resolved input, and whether the update rule admits it.
struct UpdatePlan {
    existing: Map<String, Value>,
    access: Access,
    input: Map<String, Value>,
    allowed: bool,
}
