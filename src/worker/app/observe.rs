//! Observers of record writes: what the write pipeline ([`super::pipeline`]) tells before a
//! write's transaction and after its COMMIT, and the registry holding them. Server-side hooks
//! register here; so does the test-only [`Recorder`].
//!
//! It owns the event shapes and the order observers are called in (registration order). It
//! must not write anything itself, and an observer must not block: `before` is awaited on the
//! request's task (a slow one delays only its own write), `after` runs on the task that
//! committed, after the answer is decided and never on the writer thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::worker::records::changes::{Action, Change};
use crate::worker::records::sql_value::SqlValue;

/// Which entry point a write came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// `POST|PATCH|DELETE /api/collections/{c}/records…`
    Rest,
    /// One item of `POST /api/batch`.
    Batch,
    /// An OAuth2 sign-up, link or the takeover of an unverified account.
    #[serde(rename = "oauth2")]
    OAuth2,
    /// `confirm-verification`, `confirm-password-reset`, `confirm-email-change`, an OTP sign-in.
    AccountFlow,
    /// The first superuser, created through the one-time setup link (`POST /_/setup`).
    Setup,
    /// Server-side JavaScript (`$app.save`, `$app.delete`, raw SQL through `$app.db()`).
    Hook,
    /// A write vaultbase makes on its own, no client asking: the webhook delivery runner
    /// pausing a webhook that keeps failing. No before-write observer is asked (nobody could
    /// be answered a refusal); after-commit observers are told as for any write.
    System,
}

/// A write about to run: the record as it is stored (`before`; None for a create) and as the
/// write will leave it (`after`; None for a delete), both with every field by name.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub source: Source,
    pub action: Action,
    #[serde(rename = "collectionId")]
    pub collection_id: String,
    #[serde(rename = "collectionName")]
    pub collection_name: String,
    /// Empty for a create whose id is chosen by the insert.
    #[serde(rename = "recordId")]
    pub record_id: String,
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
}

/// A record change that committed: every record a write touched, cascades included.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub source: Source,
    pub action: Action,
    #[serde(rename = "collectionId")]
    pub collection_id: String,
    #[serde(rename = "recordId")]
    pub record_id: String,
    /// None for a create.
    pub before: Option<Map<String, Value>>,
    /// None for a delete.
    pub after: Option<Map<String, Value>>,
}

impl Committed {
    pub fn of(source: Source, change: &Change) -> Committed {
        let (before, after) = match change.action {
            Action::Create => (None, Some(columns_map(&change.columns))),
            Action::Update => (change.before.as_deref().map(columns_map), Some(columns_map(&change.columns))),
            Action::Delete => (Some(columns_map(&change.columns)), None),
        };
        Committed { source, action: change.action, collection_id: change.collection_id.clone(), record_id: change.record_id.clone(), before, after }
    }
}

/// Stored columns as a JSON object (values as stored: text, numbers, null).
pub fn columns_map(columns: &[(String, SqlValue)]) -> Map<String, Value> {
    columns
        .iter()
        .map(|(k, v)| {
            let value = match v {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::from(*i),
                SqlValue::Real(f) => Value::from(*f),
                SqlValue::Text(t) => Value::String(t.clone()),
            };
            (k.clone(), value)
        })
        .collect()
}

/// Why an observer refused a write: answered to the client as PocketBase answers a hook's
/// thrown error (status, message, data).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub data: Map<String, Value>,
}

pub type BeforeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send + 'a>>;

/// One party interested in record writes.
pub trait Observer: Send + Sync + 'static {
    /// Before the transaction of a create, update or delete the client asked for; an error
    /// refuses the write (nothing is written, no file is stored).
    fn before<'a>(&'a self, pending: &'a Pending) -> BeforeFuture<'a>;
    /// After the COMMIT, once per record the write changed.
    fn after(&self, committed: &Committed);
}

/// The registered observers, in registration order. Cheap to ask when empty (the common
/// case): the pipeline then builds no event at all.
#[derive(Default)]
pub struct Observers {
    list: RwLock<Vec<Arc<dyn Observer>>>,
}

impl Observers {
    pub fn register(&self, o: Arc<dyn Observer>) {
        self.list.write().unwrap_or_else(|p| p.into_inner()).push(o);
    }

    fn snapshot(&self) -> Vec<Arc<dyn Observer>> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.list.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Runs every observer's `before`; the first refusal wins.
    pub async fn before(&self, pending: &Pending) -> Result<(), Refusal> {
        for o in self.snapshot() {
            o.before(pending).await?;
        }
        Ok(())
    }

    /// Tells every observer about each committed change, in commit order.
    pub fn after(&self, source: Source, changes: &[Change]) {
        let list = self.snapshot();
        if list.is_empty() {
            return;
        }
        for change in changes {
            let committed = Committed::of(source, change);
            for o in &list {
                // An observer's panic must not take the request (or the next observers) down.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.after(&committed))).is_err() {
                    tracing::error!(collection = %committed.collection_id, record = %committed.record_id, "an after-commit observer panicked");
                }
            }
        }
    }
}

/// The test-only observer (`VAULTBASE_TEST_ROUTES=1`): appends every event as one JSON line
/// to a file in the data dir, so a test sees the events of every worker of a cluster in one
/// place (`GET /_/test/observed`). Each line is one `write(2)` on an `O_APPEND` descriptor, so
/// workers never interleave. It refuses a write whose planned record has the field
/// `observerVeto` set to `"refuse"`, so tests can prove a refusal stops the write.
pub struct Recorder {
    path: std::path::PathBuf,
}

/// The field value that makes the [`Recorder`] refuse a write.
pub const RECORDER_VETO: &str = "refuse";
/// The recorder's file, in the data dir.
pub const RECORDER_FILE: &str = ".test-observed.jsonl";

impl Recorder {
    pub fn new(data_dir: &std::path::Path) -> Recorder {
        Recorder { path: data_dir.join(RECORDER_FILE) }
    }

    /// Every event so far (`{"stage": "before"|"after", …}`), oldest first.
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn push(&self, stage: &str, event: Value) {
        use std::io::Write;
        let mut v = event;
        if let Value::Object(m) = &mut v {
            m.insert("stage".into(), Value::String(stage.to_owned()));
        }
        let mut line = v.to_string();
        line.push('\n');
        let written = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, "the test observer could not record an event");
        }
    }
}

impl Observer for Recorder {
    fn before<'a>(&'a self, pending: &'a Pending) -> BeforeFuture<'a> {
        Box::pin(async move {
            self.push("before", serde_json::to_value(pending).unwrap_or(Value::Null));
            let veto = pending.after.as_ref().and_then(|a| a.get("observerVeto")).and_then(Value::as_str) == Some(RECORDER_VETO);
            if veto {
                return Err(Refusal { status: 400, message: "Refused by the test observer.".into(), data: Map::new() });
            }
            Ok(())
        })
    }

    fn after(&self, committed: &Committed) {
        self.push("after", serde_json::to_value(committed).unwrap_or(Value::Null));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: Action) -> Change {
        Change {
            action,
            collection_id: "c1".into(),
            record_id: "r1".into(),
            columns: vec![("id".into(), SqlValue::Text("r1".into())), ("n".into(), SqlValue::Integer(2))],
            before: (action == Action::Update).then(|| vec![("id".into(), SqlValue::Text("r1".into())), ("n".into(), SqlValue::Integer(1))]),
        }
    }

    #[test]
    fn committed_events_carry_the_record_before_and_after() {
        let u = Committed::of(Source::Rest, &change(Action::Update));
        assert_eq!(u.before.as_ref().and_then(|b| b.get("n")), Some(&Value::from(1)));
        assert_eq!(u.after.as_ref().and_then(|a| a.get("n")), Some(&Value::from(2)));
        let d = Committed::of(Source::Batch, &change(Action::Delete));
        assert!(d.after.is_none());
        assert_eq!(d.before.as_ref().and_then(|b| b.get("n")), Some(&Value::from(2)));
        let c = Committed::of(Source::OAuth2, &change(Action::Create));
        assert!(c.before.is_none() && c.after.is_some());
    }

    #[test]
    fn every_observer_sees_every_change_once_in_order() {
        let dirs = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let (a, b) = (Arc::new(Recorder::new(dirs.0.path())), Arc::new(Recorder::new(dirs.1.path())));
        let obs = Observers::default();
        assert!(obs.is_empty());
        obs.register(a.clone());
        obs.register(b.clone());
        obs.after(Source::Rest, &[change(Action::Create), change(Action::Delete)]);
        for r in [a, b] {
            let seen = r.events();
            let actions: Vec<_> = seen.iter().map(|e| e["action"].clone()).collect();
            assert_eq!(actions, vec![Value::from("create"), Value::from("delete")]);
        }
    }
}
