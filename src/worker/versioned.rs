//! [`VersionedCache`]: a per-worker copy of definitions (collections, settings) kept coherent
//! across workers by a counter row in `_vb_versions`.
//!
//! Every change bumps its row in the same transaction as the change. Before trusting its copy,
//! a worker reads the row (one indexed read) and reloads only if the number moved, so a change
//! made through any worker is in force everywhere on the very next request; the bus
//! `Invalidate` only makes a worker reload before it is asked. The lock guards a pointer swap
//! and is never held across an `.await`.

use std::sync::{Arc, RwLock};

use rusqlite::{Connection, Transaction};

use crate::shared::db::{Db, DbError};

/// A version no database holds: the next [`VersionedCache::fresh`] reloads.
pub const STALE_VERSION: i64 = -1;

/// A cached value that knows the version it was read at.
pub trait Versioned: Send + Sync + 'static {
    fn version(&self) -> i64;
    /// An empty value at [`STALE_VERSION`].
    fn stale() -> Self;
}

/// Reads the counter of `key`.
pub fn read_version(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT version FROM _vb_versions WHERE name = ?1")?.query_row([key], |r| r.get(0))
}

/// Bumps the counter of `key`; call it inside the transaction that makes the change.
pub fn bump_version(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<()> {
    tx.execute("UPDATE _vb_versions SET version = version + 1 WHERE name = ?1", [key])?;
    Ok(())
}

pub struct VersionedCache<T> {
    key: &'static str,
    current: RwLock<Arc<T>>,
}

impl<T: Versioned> VersionedCache<T> {
    pub fn new(key: &'static str) -> VersionedCache<T> {
        VersionedCache { key, current: RwLock::new(Arc::new(T::stale())) }
    }

    /// The value held now, possibly stale.
    pub fn current(&self) -> Arc<T> {
        self.current.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Drops the held value (a bus `Invalidate` arrived); the next `fresh` reloads.
    pub fn invalidate(&self) {
        self.install(Arc::new(T::stale()));
    }

    fn install(&self, value: Arc<T>) {
        match self.current.write() {
            Ok(mut g) => *g = value,
            Err(p) => *p.into_inner() = value,
        }
    }

    /// The value at the database's current version: one version read, and `load` (which must
    /// read the version and the data in one snapshot) only when it moved.
    pub async fn fresh<E>(&self, db: &Db, load: fn(&Connection) -> Result<T, E>) -> Result<Arc<T>, E>
    where
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
    {
        let held = self.current();
        let (key, version) = (self.key, held.version());
        let loaded = db
            .read(move |conn| -> Result<Option<T>, E> {
                if read_version(conn, key)? == version {
                    return Ok(None);
                }
                load(conn).map(Some)
            })
            .await?;
        let Some(value) = loaded else { return Ok(held) };
        let value = Arc::new(value);
        // Never replace a newer value installed concurrently by another request.
        let newer = self.current();
        if newer.version() > value.version() {
            return Ok(newer);
        }
        self.install(value.clone());
        Ok(value)
    }
}
