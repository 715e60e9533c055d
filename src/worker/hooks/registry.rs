//! [`Registry`]: everything the hook files registered, immutable once loaded and shared by
//! `Arc` (a reload builds a new one). It holds source text and metadata only, never a JS value:
//! each executor runtime compiles the sources it needs (see `engine`).
//!
//! Lookups are cheap by design: a request for which no handler is registered must cost a
//! hash-map miss at most (`has`, `handlers`).

use std::collections::HashMap;
use std::path::PathBuf;

use super::pattern::Pattern;

/// Every `on<Name>` PocketBase exposes to JS. A name outside this list is a ReferenceError at
/// load, as in PocketBase.
pub const HOOK_NAMES: &[&str] = &[
    "onBootstrap", "onServe", "onTerminate", "onBackupCreate", "onBackupRestore", "onSettingsReload",
    "onModelValidate", "onModelCreate", "onModelCreateExecute", "onModelAfterCreateSuccess", "onModelAfterCreateError",
    "onModelUpdate", "onModelUpdateExecute", "onModelAfterUpdateSuccess", "onModelAfterUpdateError",
    "onModelDelete", "onModelDeleteExecute", "onModelAfterDeleteSuccess", "onModelAfterDeleteError",
    "onRecordEnrich", "onRecordValidate", "onRecordCreate", "onRecordCreateExecute", "onRecordAfterCreateSuccess",
    "onRecordAfterCreateError", "onRecordUpdate", "onRecordUpdateExecute", "onRecordAfterUpdateSuccess",
    "onRecordAfterUpdateError", "onRecordDelete", "onRecordDeleteExecute", "onRecordAfterDeleteSuccess",
    "onRecordAfterDeleteError",
    "onCollectionValidate", "onCollectionCreate", "onCollectionCreateExecute", "onCollectionAfterCreateSuccess",
    "onCollectionAfterCreateError", "onCollectionUpdate", "onCollectionUpdateExecute", "onCollectionAfterUpdateSuccess",
    "onCollectionAfterUpdateError", "onCollectionDelete", "onCollectionDeleteExecute", "onCollectionAfterDeleteSuccess",
    "onCollectionAfterDeleteError",
    "onMailerSend", "onMailerRecordAuthAlertSend", "onMailerRecordPasswordResetSend", "onMailerRecordVerificationSend",
    "onMailerRecordEmailChangeSend", "onMailerRecordOTPSend",
    "onRealtimeConnectRequest", "onRealtimeSubscribeRequest", "onRealtimeMessageSend",
    "onRecordAuthRequest", "onRecordAuthRefreshRequest", "onRecordAuthWithPasswordRequest", "onRecordAuthWithOAuth2Request",
    "onRecordRequestPasswordResetRequest", "onRecordConfirmPasswordResetRequest", "onRecordRequestVerificationRequest",
    "onRecordConfirmVerificationRequest", "onRecordRequestEmailChangeRequest", "onRecordConfirmEmailChangeRequest",
    "onRecordRequestOTPRequest", "onRecordAuthWithOTPRequest",
    "onRecordsListRequest", "onRecordViewRequest", "onRecordCreateRequest", "onRecordUpdateRequest", "onRecordDeleteRequest",
    "onCollectionsListRequest", "onCollectionViewRequest", "onCollectionCreateRequest", "onCollectionUpdateRequest",
    "onCollectionDeleteRequest", "onCollectionsImportRequest",
    "onSettingsListRequest", "onSettingsUpdateRequest", "onFileDownloadRequest", "onFileTokenRequest", "onBatchRequest",
];

/// The text of one handler and where it was written (for compile and error messages).
#[derive(Debug, Clone)]
pub struct Source {
    pub src: String,
    /// The hook file's path, or `<vaultbase>` for built-in middlewares such as `$apis.*`.
    pub file: String,
    /// 1-based line of the handler's first character in `file`.
    pub line: u32,
}

/// One `on<Name>(handler, ...tags)`.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Index into [`Registry::sources`].
    pub handler: usize,
    /// Collection ids or names (table names for model hooks); empty = every one.
    pub tags: Vec<String>,
    /// PocketBase gives JS hooks priority 0; ties keep registration order.
    pub priority: i32,
}

impl Hook {
    /// PocketBase's tag filter: an untagged hook fires for everything, a tagged one when any
    /// of its tags is among the event's.
    pub fn fires_for(&self, event_tags: &[&str]) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|t| event_tags.contains(&t.as_str()))
    }
}

/// A route or global middleware.
#[derive(Debug, Clone)]
pub struct Middleware {
    pub handler: usize,
    pub priority: i32,
    pub id: String,
}

/// One `routerAdd(method, path, handler, ...middlewares)`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Upper-cased; `None` for PocketBase's "*" / "" (any method).
    pub method: Option<String>,
    pub pattern: Pattern,
    pub handler: usize,
    pub middlewares: Vec<Middleware>,
}

/// One effective `cronAdd` (a later `cronRemove` of the same id deletes it at load).
#[derive(Debug, Clone)]
pub struct CronJob {
    pub id: String,
    pub expr: String,
    pub handler: usize,
}

/// One effective `jobsAdd(name, handler, {concurrency, timeout})` (a later one of the same
/// name replaces it at load).
#[derive(Debug, Clone)]
pub struct JobHandler {
    pub name: String,
    pub handler: usize,
    /// Jobs of this name running at once on one worker.
    pub concurrency: usize,
    /// An attempt still running after this long is stopped and retried.
    pub timeout: std::time::Duration,
}

/// What the hook files registered.
#[derive(Debug, Default)]
pub struct Registry {
    /// The hooks dir these came from.
    pub dir: PathBuf,
    /// The `*.pb.js` files that were loaded, in load order.
    pub files: Vec<PathBuf>,
    /// Handler sources; every other entry refers to them by index.
    pub sources: Vec<Source>,
    /// Per source: it calls `e.next()` as its last act and nowhere else ([`super::tail`]).
    tail_next: Vec<bool>,
    hooks: HashMap<String, Vec<Hook>>,
    pub routes: Vec<Route>,
    /// `routerUse` middlewares, in registration order.
    pub global_middlewares: Vec<Middleware>,
    pub crons: Vec<CronJob>,
    pub jobs: Vec<JobHandler>,
}

impl Registry {
    pub fn empty(dir: PathBuf) -> Registry {
        Registry { dir, ..Registry::default() }
    }

    /// Nothing to run: no runtime is ever needed.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn add_source(&mut self, source: Source) -> usize {
        self.tail_next.push(super::tail::ends_with_next(&source.src));
        self.sources.push(source);
        self.sources.len() - 1
    }

    pub fn add_hook(&mut self, name: &str, hook: Hook) {
        self.hooks.entry(name.to_owned()).or_default().push(hook);
    }

    /// Whether any handler is registered under `name`, for any tag.
    pub fn has_any(&self, name: &str) -> bool {
        self.hooks.get(name).is_some_and(|h| !h.is_empty())
    }

    /// Whether a record/collection event of `name` on this collection has a JS handler: the
    /// check a request makes before deciding to go through the pool at all.
    pub fn has(&self, name: &str, collection_id: &str, collection_name: &str) -> bool {
        match self.hooks.get(name) {
            None => false,
            Some(hooks) => hooks.iter().any(|h| h.fires_for(&[collection_id, collection_name])),
        }
    }

    /// Whether every handler of `name` that fires for `tags` calls `e.next()` as its last act
    /// and nowhere else: then nothing of theirs runs after the chain's default action.
    pub fn all_end_with_next(&self, name: &str, tags: &[&str]) -> bool {
        self.hooks.get(name).is_none_or(|hooks| hooks.iter().filter(|h| h.fires_for(tags)).all(|h| self.tail_next.get(h.handler).copied().unwrap_or(false)))
    }

    /// The handlers of `name` that fire for an event with `tags`, sorted by priority (stable:
    /// registration order breaks ties), as PocketBase's `hook.Hook` runs them.
    pub fn handlers(&self, name: &str, tags: &[&str]) -> Vec<&Hook> {
        let Some(hooks) = self.hooks.get(name) else { return Vec::new() };
        let mut out: Vec<&Hook> = hooks.iter().filter(|h| h.fires_for(tags)).collect();
        out.sort_by_key(|h| h.priority);
        out
    }

    /// The hook names with at least one handler.
    pub fn hook_names(&self) -> Vec<String> {
        self.hooks.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.clone()).collect()
    }

    /// Every registered hook name with its handler count (for the start-up log).
    pub fn hook_counts(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = self.hooks.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(reg: &mut Registry) -> usize {
        reg.add_source(Source { src: "function(e){}".into(), file: "a.pb.js".into(), line: 1 })
    }

    #[test]
    fn tags_and_priority_decide_which_handlers_run_in_which_order() {
        let mut reg = Registry::empty(PathBuf::new());
        let a = source(&mut reg);
        let b = source(&mut reg);
        let c = source(&mut reg);
        reg.add_hook("onRecordCreateRequest", Hook { handler: a, tags: vec!["posts".into()], priority: 0 });
        reg.add_hook("onRecordCreateRequest", Hook { handler: b, tags: vec![], priority: 0 });
        reg.add_hook("onRecordCreateRequest", Hook { handler: c, tags: vec![], priority: -5 });
        let ids: Vec<usize> = reg.handlers("onRecordCreateRequest", &["id1", "posts"]).iter().map(|h| h.handler).collect();
        assert_eq!(ids, vec![c, a, b]);
        let ids: Vec<usize> = reg.handlers("onRecordCreateRequest", &["id2", "users"]).iter().map(|h| h.handler).collect();
        assert_eq!(ids, vec![c, b]);
        assert!(reg.has("onRecordCreateRequest", "x", "users"));
        assert!(!reg.has("onRecordUpdateRequest", "x", "posts"));
        assert!(reg.handlers("onRecordUpdateRequest", &[]).is_empty());
    }
}
