//! [`SchemaCache`]: every collection definition in memory, kept coherent across workers.
//!
//! Two mechanisms, as DESIGN §3 asks. A change bumps the `collections` row of `_vb_versions`
//! in its own transaction, and a worker compares that version before trusting its snapshot
//! ([`SchemaCache::fresh`], or [`Snapshot::check`] inside a query job so the check costs no
//! extra thread hop); this alone makes a change made on worker A in force on worker B for the
//! very next request. The bus `Invalidate` that the writer also sends only makes B reload
//! early. A lost message can therefore never leave a worker stale.
//!
//! The mechanism is [`crate::worker::versioned`]'s, shared with the settings cache.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;

use super::schema::Collection;
use super::store::{self, StoreError};
use crate::shared::db::{Db, DbError};
use crate::worker::versioned::{Versioned, VersionedCache, STALE_VERSION};

/// The bus `Invalidate { what }` value for collection changes.
pub const INVALIDATE_COLLECTIONS: &str = "collections";

/// An immutable set of collections read at one version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    collections: Vec<Arc<Collection>>,
    /// Lower-cased name and id → index into `collections`.
    index: HashMap<String, usize>,
}

/// The snapshot was read at an older version than the database now has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("collections changed since this snapshot (v{held} → v{current})")]
pub struct Stale {
    pub held: i64,
    pub current: i64,
}

impl Snapshot {
    pub(crate) fn new(version: i64, collections: Vec<Collection>) -> Snapshot {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let mut index = HashMap::with_capacity(collections.len() * 2);
        for (i, c) in collections.iter().enumerate() {
            index.insert(c.id.to_ascii_lowercase(), i);
            index.insert(c.name.to_ascii_lowercase(), i);
        }
        Snapshot { version, collections, index }
    }

    /// A collection by id or name (names are case-insensitive, like SQLite's tables).
    pub fn get(&self, id_or_name: &str) -> Option<&Arc<Collection>> {
        self.index.get(&id_or_name.to_ascii_lowercase()).and_then(|&i| self.collections.get(i))
    }

    pub fn all(&self) -> &[Arc<Collection>] {
        &self.collections
    }

    /// Fails with [`Stale`] if the database has moved on. Call it first inside a query job,
    /// on the same connection, so the check and the query see one state.
    pub fn check(&self, conn: &Connection) -> Result<(), CheckError> {
        let current = store::version(conn)?;
        if current != self.version {
            return Err(CheckError::Stale(Stale { held: self.version, current }));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Stale(Stale),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("loading collections: {0}")]
    Store(#[from] StoreError),
}

impl From<DbError> for CacheError {
    fn from(e: DbError) -> Self {
        CacheError::Store(StoreError::Db(e))
    }
}

impl From<rusqlite::Error> for CacheError {
    fn from(e: rusqlite::Error) -> Self {
        CacheError::Store(StoreError::Sqlite(e))
    }
}

impl Versioned for Snapshot {
    fn version(&self) -> i64 {
        self.version
    }

    fn stale() -> Self {
        Snapshot { version: STALE_VERSION, ..Default::default() }
    }
}

/// The per-worker cache of collection definitions.
pub struct SchemaCache(VersionedCache<Snapshot>);

impl Default for SchemaCache {
    fn default() -> Self {
        SchemaCache::new()
    }
}

impl SchemaCache {
    pub fn new() -> SchemaCache {
        SchemaCache(VersionedCache::new(store::COLLECTIONS_VERSION_KEY))
    }

    /// The snapshot held now, possibly stale; pair it with [`Snapshot::check`].
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.current()
    }

    /// Drops the snapshot (a bus `Invalidate` arrived); the next `fresh` reloads.
    pub fn invalidate(&self) {
        self.0.invalidate();
    }

    /// A snapshot to plan a job on `collection` with: the one already held when it knows the
    /// collection (the job then checks the version itself, in its own transaction, and a stale
    /// plan comes back as [`Stale`]), else — or when `retry` after a stale plan — a fresh one.
    /// Saves the thread hop of a version read on the common path.
    pub async fn for_job(&self, db: &Db, collection: &str, retry: bool) -> Result<Arc<Snapshot>, CacheError> {
        let held = self.snapshot();
        if !retry && held.version != STALE_VERSION && held.get(collection).is_some() {
            return Ok(held);
        }
        self.fresh(db).await
    }

    /// A snapshot at the database's current version.
    pub async fn fresh(&self, db: &Db) -> Result<Arc<Snapshot>, CacheError> {
        self.0
            .fresh(db, |conn| {
                let (version, collections) = store::load_all(conn)?;
                Ok(Snapshot::new(version, collections))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::records::schema::{Collection, CollectionType};

    async fn setup() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.db");
        let mut conn = crate::shared::db::open::open(&path, crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut conn).expect("migrate");
        drop(conn);
        let db = Db::open(&path, 2).expect("db");
        (dir, db)
    }

    #[tokio::test]
    async fn a_change_through_another_connection_is_seen_on_the_next_use() {
        let (dir, db) = setup().await;
        let cache = SchemaCache::new();
        let first = cache.fresh(&db).await.expect("load");
        assert!(first.get("_superusers").is_some());
        assert!(first.get("posts").is_none());

        // Another process (a second Db on the same file) creates a collection.
        let other = Db::open(&dir.path().join("data.db"), 1).expect("second db");
        other.write(|tx| store::create(tx, Collection::scaffold(CollectionType::Base, "posts"))).await.expect("create");

        // No Invalidate was delivered: the version check alone catches it.
        let held = cache.snapshot();
        let stale = db.read(move |c| Ok::<_, DbError>(held.check(c).is_err())).await.expect("check");
        assert!(stale, "the held snapshot reports itself stale");
        let next = cache.fresh(&db).await.expect("reload");
        assert!(next.get("POSTS").is_some(), "names are case-insensitive");
        assert!(next.version > first.version);
        let same = cache.fresh(&db).await.expect("no reload");
        assert!(Arc::ptr_eq(&same, &next), "an unchanged version reuses the snapshot");
    }

    #[tokio::test]
    async fn invalidate_forces_a_reload() {
        let (_dir, db) = setup().await;
        let cache = SchemaCache::new();
        let a = cache.fresh(&db).await.expect("load");
        cache.invalidate();
        let b = cache.fresh(&db).await.expect("reload");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.version, b.version);
    }
}
