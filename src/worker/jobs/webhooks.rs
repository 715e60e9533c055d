//! Webhooks: the outbox step that turns the record changes of a write into one
//! `webhook.deliver` job per matching webhook inside that write's transaction, the delivery
//! handler (signed POST, SSRF guard, delivery log, pausing a webhook that keeps failing), and
//! the per-worker cache of the active set. The definitions are records of the `_webhooks`
//! system collection (`records::webhooks_collection`), written through the record API and
//! the write pipeline, which announces each write to them to [`ActiveCache`]. The handler's
//! own writes to `_webhooks` are of two kinds: the failure count, bookkeeping beside the
//! delivery log in the runner's batch (no event), and the pause, a record update through the
//! pipeline ([`pause`]).
//!
//! A rolled-back write enqueues nothing, and a committed one has its deliveries queued
//! durably before the client is answered; a delivery is retried with the job queue's backoff
//! and carries the same event id on every attempt, so a receiver de-duplicates by
//! `X-Vaultbase-Event-Id` (delivery is at least once). The signature is
//! `X-Vaultbase-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! It must not deliver to loopback, private, link-local or metadata addresses unless
//! `VAULTBASE_WEBHOOKS_ALLOW_PRIVATE=1`: the check runs on the addresses the name resolves to,
//! the request is pinned to the checked address, and redirects are followed by hand with the
//! same check. It must never deliver changes of `_webhooks` itself (they hold the secrets).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::{enqueue, handler_fn, now_ms, truncate, EnqueueOptions, HandlerOptions, Job, Jobs};
use crate::worker::app::observe::columns_map;
use crate::worker::records::changes::Change;
use crate::worker::records::webhooks_collection;
use crate::worker::state::AppState;

/// The job that delivers one event to one webhook.
pub const DELIVER_JOB: &str = "webhook.deliver";
/// Attempts per delivery.
pub const DELIVERY_MAX_ATTEMPTS: u32 = 8;
/// The first retry's delay; doubled for each further one.
pub const DELIVERY_BACKOFF_MS: i64 = 1000;
/// A receiver must answer within this.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries running at once on the worker that leads them (one per cluster, see
/// `jobs::lead`): they mostly wait on receivers, so a backlog drains through many at once.
pub const DELIVERY_CONCURRENCY: usize = 64;
/// A webhook whose deliveries failed this many times in a row is paused.
pub const PAUSE_AFTER_FAILURES: i64 = 10;
/// Redirects followed per delivery.
pub const MAX_REDIRECTS: usize = 5;
/// The response body kept in the delivery log.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;
/// Columns never sent to a receiver.
const SECRET_COLUMNS: [&str; 2] = ["password", "tokenKey"];

/// Registers the delivery handler.
pub fn register(jobs: &Jobs) {
    jobs.add_handler(DELIVER_JOB, handler_fn(deliver), HandlerOptions { concurrency: DELIVERY_CONCURRENCY, timeout: DELIVERY_TIMEOUT * 2, led: true });
}

/// An active webhook, as the outbox matches it.
#[derive(Debug, Clone)]
pub struct Active {
    pub id: String,
    pub events: Vec<String>,
}

/// The active set is read again at least this often even when no change was announced, so a
/// change made around the API (raw SQL on the table) is in force within this.
pub const ACTIVE_RECHECK: Duration = Duration::from_secs(5);
/// The data-dir file holding the change counter every worker of a cluster maps.
pub const EPOCH_FILE: &str = ".webhooks.epoch";

/// This worker's copy of the active webhooks, so that a write with no webhook to deliver to
/// does not query the table: one atomic load of a change counter shared by every worker of
/// the data dir (a [`SharedMap`](crate::shared::db::shm::SharedMap)) decides whether the copy
/// still holds.
///
/// Coherence rests on SQLite's write lock: a change bumps the counter inside its write
/// transaction, before COMMIT ([`ActiveCache::changed`]), and [`ActiveCache::get`] is called
/// only inside write transactions. A write that starts after the change committed therefore
/// sees the bumped counter and reloads in its own transaction; one that ran before the change
/// did not need it. A change that rolls back costs one needless reload.
#[derive(Default)]
pub struct ActiveCache {
    epoch: std::sync::OnceLock<crate::shared::db::shm::SharedMap>,
    held: std::sync::Mutex<Option<Held>>,
    /// Collection names by id as of one collections version, for the outbox (see
    /// [`ActiveCache::collection_name`]).
    names: std::sync::Mutex<(i64, std::collections::HashMap<String, Option<String>>)>,
}

struct Held {
    epoch: u64,
    at: Instant,
    hooks: std::sync::Arc<Vec<Active>>,
}

impl ActiveCache {
    /// Maps the data dir's counter; until this succeeds every [`ActiveCache::get`] queries.
    pub fn map(&self, data_dir: &std::path::Path) {
        match crate::shared::db::shm::SharedMap::open(&data_dir.join(EPOCH_FILE), 4096) {
            Ok(m) => {
                let _ = self.epoch.set(m);
            }
            Err(e) => tracing::error!(error = %e, "mapping the webhooks change counter failed; every write reads the webhooks table"),
        }
    }

    /// The active webhooks. `conn` must be a write transaction (see the type's docs).
    pub fn get(&self, conn: &Connection) -> rusqlite::Result<std::sync::Arc<Vec<Active>>> {
        let Some(map) = self.epoch.get() else { return Ok(std::sync::Arc::new(active(conn)?)) };
        let epoch = map.u64_at(0).load(std::sync::atomic::Ordering::Acquire);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = held.as_ref().filter(|h| h.epoch == epoch && h.at.elapsed() < ACTIVE_RECHECK) {
            return Ok(h.hooks.clone());
        }
        let hooks = std::sync::Arc::new(active(conn)?);
        *held = Some(Held { epoch, at: Instant::now(), hooks: hooks.clone() });
        Ok(hooks)
    }

    /// The name of collection `id` (None: no such collection), for the outbox inside a write
    /// transaction on `conn`. Kept per collections version, which a rename or delete bumps in
    /// its own transaction: the write's plan check has just read that version row, so looking
    /// at it again reads a cached page, where `_collections` would be read again after every
    /// commit of another worker (which empties SQLite's page cache).
    pub fn collection_name(&self, conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
        let version = crate::worker::records::store::version(conn)?;
        {
            let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            if names.0 == version {
                if let Some(n) = names.1.get(id) {
                    return Ok(n.clone());
                }
            }
        }
        let name: Option<String> = conn.prepare_cached("SELECT name FROM _collections WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.0 != version {
            *names = (version, std::collections::HashMap::new());
        }
        names.1.insert(id.to_owned(), name.clone());
        Ok(name)
    }

    /// The shared change counter as it is now (None until mapped).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch.get().map(|m| m.u64_at(0).load(std::sync::atomic::Ordering::Acquire))
    }

    /// Announces a change of the webhooks; call it inside the transaction making the change.
    pub fn changed(&self) {
        if let Some(map) = self.epoch.get() {
            map.u64_at(0).fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The active webhooks, read on `conn` (always current).
pub fn active(conn: &Connection) -> rusqlite::Result<Vec<Active>> {
    conn.prepare_cached("SELECT id, events FROM _webhooks WHERE active = 1")?
        .query_map([], |r| {
            let events: Option<String> = r.get(1)?;
            Ok(Active { id: r.get(0)?, events: events.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default() })
        })?
        .collect()
}

/// Whether the event pattern `pattern` (`collection.action`, either part may be `*`) matches.
pub fn matches(pattern: &str, collection: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((c, a)) = pattern.split_once('.') else { return false };
    (c == "*" || c == collection) && (a == "*" || a == action)
}

/// Whether pattern `pattern` can match an `action` of some collection.
fn may_match_action(pattern: &str, action: &str) -> bool {
    pattern == "*" || pattern.split_once('.').is_some_and(|(_, a)| a == "*" || a == action)
}

/// A fresh random event id.
pub fn event_id() -> String {
    let b: [u8; 12] = super::random_bytes();
    let mut id = String::with_capacity(4 + 24);
    id.push_str("evt_");
    id.push_str(&hex(&b));
    id
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0x0f)]));
    }
    s
}

/// The stored columns as a plain map, secrets removed: the body's record when the collection
/// is gone by the time of the delivery (rendering needs its definition).
fn raw_record(columns: &[(String, crate::worker::records::sql_value::SqlValue)]) -> Value {
    let mut m = columns_map(columns);
    for c in SECRET_COLUMNS {
        m.remove(c);
    }
    Value::Object(m)
}

/// A delivery job's payload as the outbox writes it: serialised straight from the change
/// (the columns as stored), with no JSON tree built in the write's transaction. The delivery
/// renders the record JSON, off the writer thread.
#[derive(Serialize)]
struct OutboxPayload<'a> {
    webhook: &'a str,
    #[serde(rename = "eventId")]
    event_id: &'a str,
    body: OutboxBody<'a>,
    change: &'a Change,
    previous: Option<&'a Change>,
}

#[derive(Serialize)]
struct OutboxBody<'a> {
    id: &'a str,
    event: &'a str,
    collection: &'a str,
    time: &'a str,
}

/// The outbox step: for each change and each matching webhook, one delivery job, inserted on
/// `conn` (the write's transaction). Answers how many were enqueued.
pub fn outbox(conn: &Connection, cache: &ActiveCache, hooks: &[Active], changes: &[Change], now: i64) -> rusqlite::Result<usize> {
    if hooks.is_empty() || changes.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    let time = iso(now);
    let plan = EnqueueOptions { max_attempts: Some(DELIVERY_MAX_ATTEMPTS), backoff: Some(DELIVERY_BACKOFF_MS), ..Default::default() }
        .plan(now)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    // The collection of the last change: a batch writes to few collections, mostly one.
    let mut named: Option<(String, Option<String>)> = None;
    for change in changes {
        let action = change.action.as_str();
        // No webhook listens to this action: no need to know the collection's name.
        if !hooks.iter().any(|h| h.events.iter().any(|p| may_match_action(p, action))) {
            continue;
        }
        if named.as_ref().is_none_or(|(id, _)| *id != change.collection_id) {
            named = Some((change.collection_id.clone(), cache.collection_name(conn, &change.collection_id)?));
        }
        // The definitions' own changes are never delivered: they carry the secrets.
        let Some(name) = named.as_ref().and_then(|(_, n)| n.as_deref()).filter(|n| *n != webhooks_collection::NAME) else { continue };
        let previous = change.before.as_ref().map(|cols| Change { action: change.action, collection_id: change.collection_id.clone(), record_id: change.record_id.clone(), columns: cols.clone(), before: None });
        for hook in hooks.iter().filter(|h| h.events.iter().any(|p| matches(p, name, action))) {
            let id = event_id();
            let payload = OutboxPayload {
                webhook: &hook.id,
                event_id: &id,
                body: OutboxBody { id: &id, event: action, collection: name, time: &time },
                change,
                previous: previous.as_ref(),
            };
            let json = serde_json::to_string(&payload).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            super::store::outbox_insert(conn, DELIVER_JOB, &json, &plan, now)?;
            n += 1;
        }
    }
    Ok(n)
}

/// An auth event: `record` of collection `collection` signed in with `method` (password, otp,
/// oauth2). Enqueues one delivery per matching active webhook (`collection.auth`) in a write
/// of its own — a sign-in writes nothing else to join — and wakes the runners. Never fails
/// the sign-in: a problem is logged.
pub async fn auth_event(state: &AppState, collection: &str, record: Map<String, Value>, method: &str) {
    let (collection, method) = (collection.to_owned(), method.to_owned());
    let now = now_ms();
    let cache = state.jobs.clone();
    let enqueued = state
        .db
        .write(move |tx| -> Result<usize, super::EnqueueFailure> {
            let hooks = cache.webhooks.get(tx)?;
            let mut n = 0;
            for hook in hooks.iter().filter(|h| h.events.iter().any(|p| matches(p, &collection, "auth"))) {
                let id = event_id();
                let body = json!({ "id": id, "event": "auth", "collection": collection, "method": method, "record": record, "time": iso(now) });
                let payload = json!({ "webhook": hook.id, "eventId": id, "body": body });
                let opts = EnqueueOptions { max_attempts: Some(DELIVERY_MAX_ATTEMPTS), backoff: Some(DELIVERY_BACKOFF_MS), ..Default::default() };
                enqueue(tx, DELIVER_JOB, &payload, &opts, now)?;
                n += 1;
            }
            Ok(n)
        })
        .await;
    match enqueued {
        Ok(0) => {}
        Ok(_) => state.jobs.wake(),
        Err(e) => tracing::warn!(error = %e, "enqueueing an auth webhook event failed"),
    }
}

/// PocketBase's datetime text (`2024-01-02 15:04:05.000Z`), as the record API writes dates.
fn iso(ms: i64) -> String {
    crate::worker::records::values::datetime::format_datetime(ms)
}

/// Whether deliveries may go to `ip` by default: not loopback, private, link-local (cloud
/// metadata lives there), shared (CGNAT), unspecified, broadcast or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The signature header value for `body` sent at unix second `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

struct Target {
    url: String,
    secret: String,
    headers: Map<String, Value>,
    active: bool,
}

fn target(conn: &Connection, id: &str) -> rusqlite::Result<Option<Target>> {
    conn.query_row("SELECT url, secret, headers, active FROM _webhooks WHERE id = ?1", [id], |r| {
        let headers: Option<String> = r.get(2)?;
        Ok(Target { url: r.get(0)?, secret: r.get(1)?, headers: headers.and_then(|h| serde_json::from_str(&h).ok()).unwrap_or_default(), active: r.get(3)? })
    })
    .optional()
}

/// A delivery reuses a webhook's definition read this recently, unless the webhooks changed
/// meanwhile (the shared change counter moved).
pub const TARGET_RECHECK: Duration = Duration::from_secs(1);
/// HTTP clients kept, at most: one per (host, checked address), each with its own pool of
/// kept-alive connections. Past it they are all dropped and built again as needed.
pub const MAX_CLIENTS: usize = 256;

/// What deliveries keep between attempts on one worker: a client per (host, checked address)
/// — the address a client connects to is pinned, so the SSRF check holds for every request
/// it makes, and its connections stay open for the next delivery — and the definitions read
/// lately.
#[derive(Default)]
pub struct Delivery {
    clients: std::sync::Mutex<std::collections::HashMap<(String, SocketAddr), reqwest::Client>>,
    targets: std::sync::Mutex<std::collections::HashMap<String, HeldTarget>>,
}

/// A definition as read (None: no such webhook), with the change counter and the time then.
type HeldTarget = (Option<u64>, Instant, Option<std::sync::Arc<Target>>);

impl Delivery {
    fn client(&self, host: &str, addr: SocketAddr) -> Result<reqwest::Client, reqwest::Error> {
        let key = (host.to_owned(), addr);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(DELIVERY_TIMEOUT).resolve(host, addr).build()?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, c.clone());
        Ok(c)
    }

    async fn target(&self, state: &AppState, id: &str) -> Result<Option<std::sync::Arc<Target>>, String> {
        let epoch = state.jobs.webhooks.epoch();
        {
            let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((e, at, t)) = targets.get(id) {
                if epoch.is_some() && *e == epoch && at.elapsed() < TARGET_RECHECK {
                    return Ok(t.clone());
                }
            }
        }
        let h = id.to_owned();
        let found = state.db.read(move |c| -> Result<_, crate::shared::db::DbError> { Ok(target(c, &h)?) }).await.map_err(|e| e.to_string())?.map(std::sync::Arc::new);
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if targets.len() >= MAX_CLIENTS {
            targets.clear();
        }
        targets.insert(id.to_owned(), (epoch, Instant::now(), found.clone()));
        Ok(found)
    }
}

/// One delivery attempt's result, for the log.
struct Sent {
    status: u16,
    response: String,
    error: String,
}

async fn deliver(state: AppState, job: Job) -> Result<(), String> {
    let hook = job.payload.get("webhook").and_then(Value::as_str).unwrap_or_default().to_owned();
    let event_id = job.payload.get("eventId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut body = job.payload.get("body").cloned().unwrap_or(Value::Null);
    render_records(&state, &job.payload, &mut body).await;
    let event = format!("{}.{}", body.get("collection").and_then(Value::as_str).unwrap_or("*"), body.get("event").and_then(Value::as_str).unwrap_or(""));
    let found = state.jobs.delivery.target(&state, &hook).await?;
    // A deleted webhook's pending deliveries end quietly.
    let Some(t) = found else { return Ok(()) };
    let started = Instant::now();
    let sent = if t.active || body.get("event").and_then(Value::as_str) == Some("test") {
        send(&state, &t, &event_id, &body).await
    } else {
        Sent { status: 0, response: String::new(), error: "skipped: the webhook is paused or inactive".into() }
    };
    let latency = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let ok = (200..300).contains(&sent.status);
    let skipped = !t.active && sent.status == 0 && body.get("event").and_then(Value::as_str) != Some("test");
    let (jid, attempt, error, response, status) = (job.id.clone(), job.attempt, sent.error.clone(), sent.response, sent.status);
    let counted_hook = hook.clone();
    // The log row and the failure count: bookkeeping, written with the runner's next batch,
    // which also records this attempt's end (in the same or a later write). The count is no
    // record edit (see `pause`): it raises no event. A failure that brings it to
    // PAUSE_AFTER_FAILURES on an active webhook hands the reason to the pause below.
    let (due, pause_due) = tokio::sync::oneshot::channel::<String>();
    let log = move |tx: &Connection| -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO _vb_webhook_deliveries (webhook, job, event_id, event, attempt, status, latency_ms, response, error, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![hook, jid, event_id, event, attempt, status, latency, response, error, now_ms()],
        )?;
        if skipped {
            return Ok(());
        }
        if ok {
            tx.execute("UPDATE _webhooks SET failures = 0 WHERE id = ?1 AND failures != 0", [&hook])?;
        } else {
            let counted: Option<(i64, bool)> = tx
                .query_row("UPDATE _webhooks SET failures = failures + 1 WHERE id = ?1 RETURNING failures, active", [&hook], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if counted.is_some_and(|(failures, active)| active && failures >= PAUSE_AFTER_FAILURES) {
                let last = if error.is_empty() { format!("HTTP {status}") } else { error.clone() };
                let _ = due.send(format!("paused after {PAUSE_AFTER_FAILURES} failed deliveries in a row; the last: {last}"));
            }
        }
        Ok(())
    };
    if let Err(log) = state.jobs.runner.record(Box::new(log)) {
        state.db.write(move |tx| -> Result<(), crate::shared::db::DbError> { Ok(log(tx)?) }).await.map_err(|e| e.to_string())?;
    }
    if !ok && !skipped {
        // Told while the count's write is still open (or never, if the step did not run): the
        // pause is a write of its own queued behind it, which checks the count again.
        let pauser = state.clone();
        tokio::spawn(async move {
            if let Ok(reason) = pause_due.await {
                pause(&pauser, &counted_hook, reason).await;
            }
        });
    }
    if ok || skipped {
        Ok(())
    } else if sent.error.is_empty() {
        Err(format!("the receiver answered HTTP {}", sent.status))
    } else {
        Err(sent.error)
    }
}

/// Pauses webhook `id` (`active` false, `reason` in `pausedReason`, `updated` moved) as a
/// record update through the write pipeline's transaction stage, a system write: realtime
/// subscribers to `_webhooks` get an `update` event, after-update hooks and observers run,
/// and every worker's active set reloads before its next write (the pipeline announces
/// writes to `_webhooks`, see [`ActiveCache`]). Its own change is never delivered (the
/// outbox skips `_webhooks`), so a pause cannot feed a webhook.
///
/// Only the pause is a record update; the failure count moves as bookkeeping, beside the
/// delivery log, without an event: one event (and one hook run) per delivery would be noise
/// at the delivery rate, and a hook that writes to a watched collection on every change of
/// `_webhooks` would turn each failed delivery into a new delivery.
///
/// The update happens only while the webhook is active and its count still stands at the
/// threshold or above, checked in its own transaction: concurrent failures pause it once, a
/// success in between (count reset) or a resume cancels it, and a pause lost to a stop of the
/// worker is made by the next failed delivery. Problems are logged.
async fn pause(state: &AppState, id: &str, reason: String) {
    use crate::worker::app::observe::Source;
    use crate::worker::records::changes::{self, Action};
    let snap = match state.schema.for_job(&state.db, webhooks_collection::ID, false).await {
        Ok(s) => s,
        Err(e) => return tracing::warn!(webhook = %id, error = %e, "pausing a failing webhook: loading its collection failed"),
    };
    let Some(c) = snap.get(webhooks_collection::ID).cloned() else { return };
    let hook = id.to_owned();
    let paused = state
        .writes()
        .commit(Source::System, move |tx, changes| -> Result<bool, crate::shared::db::DbError> {
            let before = changes.before(tx, &c, &hook)?;
            let now = crate::worker::records::values::datetime::format_datetime(crate::worker::records::values::datetime::now_millis());
            let n = tx.execute(
                "UPDATE _webhooks SET active = 0, pausedReason = ?2, updated = ?3 WHERE id = ?1 AND active = 1 AND failures >= ?4",
                params![hook, reason, now, PAUSE_AFTER_FAILURES],
            )?;
            if n == 0 {
                return Ok(false);
            }
            changes::record_after(tx, &c, &hook, Action::Update, before, changes)?;
            Ok(true)
        })
        .await;
    match paused {
        Ok(true) => tracing::warn!(webhook = %id, "webhook paused after {PAUSE_AFTER_FAILURES} failed deliveries in a row"),
        Ok(false) => {}
        Err(e) => tracing::warn!(webhook = %id, error = %e, "pausing a failing webhook failed; the next failed delivery tries again"),
    }
}

/// Puts `record` (and `previous` for an update) into `body`: each as the record API shows it
/// to a superuser (types decoded, encrypted fields opened, `password`/`tokenKey` never), or as
/// the raw stored columns if the collection is gone.
async fn render_records(state: &AppState, payload: &Value, body: &mut Value) {
    let Some(change) = payload.get("change").and_then(|c| serde_json::from_value::<Change>(c.clone()).ok()) else { return };
    let previous = payload.get("previous").and_then(|c| serde_json::from_value::<Change>(c.clone()).ok());
    let record = render(state, &change).await;
    let previous = match previous {
        Some(p) => Some(render(state, &p).await),
        None => None,
    };
    if let Some(m) = body.as_object_mut() {
        m.insert("record".into(), record);
        if let Some(p) = previous {
            m.insert("previous".into(), p);
        }
    }
}

async fn render(state: &AppState, change: &Change) -> Value {
    use crate::worker::records::crud::{self, Requester, RuleKind, Shape};
    let raw = raw_record(&change.columns);
    let Ok(snap) = state.schema.for_job(&state.db, &change.collection_id, false).await else { return raw };
    let Some(c) = snap.get(&change.collection_id).cloned() else { return raw };
    let req = Requester { ctx: crate::worker::records::query::RequestContext::new(std::time::SystemTime::now()), superuser: true };
    let (columns, deleted) = (change.columns.clone(), change.action == crate::worker::records::changes::Action::Delete);
    let rendered = state
        .db
        .read(move |conn| crud::view_change(conn, &snap, &c, &req, &columns, deleted, RuleKind::View, None, &Shape::default()))
        .await;
    match rendered {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or(raw),
        _ => raw,
    }
}

/// Why a URL may not be delivered to.
fn refuse(why: impl Into<String>) -> Sent {
    Sent { status: 0, response: String::new(), error: why.into() }
}

async fn send(state: &AppState, t: &Target, event_id: &str, body: &Value) -> Sent {
    let bytes = body.to_string().into_bytes();
    let ts = now_ms() / 1000;
    let sig = signature(&t.secret, ts, &bytes);
    let mut url = match reqwest::Url::parse(&t.url) {
        Ok(u) => u,
        Err(e) => return refuse(format!("invalid url: {e}")),
    };
    for _ in 0..=MAX_REDIRECTS {
        let addr = match checked_address(&url, state.config.webhooks_allow_private).await {
            Ok(a) => a,
            Err(why) => return refuse(why),
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let client = match state.jobs.delivery.client(&host, addr) {
            Ok(c) => c,
            Err(e) => return refuse(format!("building the client: {e}")),
        };
        let mut req = client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("user-agent", concat!("vaultbase-webhooks/", env!("CARGO_PKG_VERSION")))
            .header("x-vaultbase-event-id", event_id)
            .header("x-vaultbase-signature", &sig);
        for (k, v) in &t.headers {
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
        let res = match req.body(bytes.clone()).send().await {
            Ok(r) => r,
            Err(e) => return refuse(if e.is_timeout() { "the receiver did not answer in time".to_owned() } else { format!("sending: {e}") }),
        };
        let status = res.status();
        if status.is_redirection() {
            let next = res.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).and_then(|l| url.join(l).ok());
            match next {
                Some(n) => {
                    url = n;
                    continue;
                }
                None => return Sent { status: status.as_u16(), response: String::new(), error: "a redirect without a usable Location".into() },
            }
        }
        let text = res.text().await.unwrap_or_default();
        return Sent { status: status.as_u16(), response: truncate(text, RESPONSE_EXCERPT_BYTES), error: String::new() };
    }
    refuse(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Resolves `url`'s host and answers the address to connect to, refusing non-public ones
/// unless allowed. Every resolved address must pass (a name with one private address is
/// refused), so DNS answers cannot be mixed to slip one through.
async fn checked_address(url: &reqwest::Url, allow_private: bool) -> Result<SocketAddr, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("refused: scheme {:?} (only http and https)", url.scheme()));
    }
    let host = url.host_str().ok_or("refused: the url has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port)).await.map_err(|e| format!("resolving {host}: {e}"))?.collect(),
    };
    let first = *addrs.first().ok_or_else(|| format!("resolving {host}: no addresses"))?;
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!("refused: {host} resolves to the non-public address {} (set VAULTBASE_WEBHOOKS_ALLOW_PRIVATE=1 to allow)", bad.ip()));
        }
    }
    Ok(first)
}

/// Whether webhook `id` exists.
pub fn exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM _webhooks WHERE id = ?1)", [id], |r| r.get(0))
}

/// One row of the delivery log.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRow {
    pub id: i64,
    pub job: String,
    pub event_id: String,
    pub event: String,
    pub attempt: u32,
    pub status: u16,
    pub latency_ms: i64,
    pub response: String,
    pub error: String,
    pub created: i64,
}

pub fn deliveries(conn: &Connection, hook: &str, limit: i64) -> rusqlite::Result<Vec<DeliveryRow>> {
    conn.prepare(
        "SELECT id, job, event_id, event, attempt, status, latency_ms, response, error, created
         FROM _vb_webhook_deliveries WHERE webhook = ?1 ORDER BY id DESC LIMIT ?2",
    )?
    .query_map(params![hook, limit], |r| {
        Ok(DeliveryRow {
            id: r.get(0)?,
            job: r.get(1)?,
            event_id: r.get(2)?,
            event: r.get(3)?,
            attempt: r.get(4)?,
            status: r.get(5)?,
            latency_ms: r.get(6)?,
            response: r.get(7)?,
            error: r.get(8)?,
            created: r.get(9)?,
        })
    })?
    .collect()
}

/// Enqueues a `test` event for webhook `id` (delivered even while it is paused); answers the
/// job id and the event id, or None if there is no such webhook.
pub fn enqueue_test(conn: &Connection, id: &str, now: i64) -> Result<Option<(String, String)>, super::EnqueueFailure> {
    if !exists(conn, id)? {
        return Ok(None);
    }
    let eid = event_id();
    let time = chrono::DateTime::from_timestamp_millis(now).map(|t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()).unwrap_or_default();
    let body = json!({ "id": eid, "event": "test", "collection": "", "record": {}, "time": time });
    let payload = json!({ "webhook": id, "eventId": eid, "body": body });
    let opts = EnqueueOptions { max_attempts: Some(1), ..Default::default() };
    let job = enqueue(conn, DELIVER_JOB, &payload, &opts, now)?;
    Ok(Some((job, eid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for bad in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1"] {
            assert!(!is_public(bad.parse().expect("ip")), "{bad}");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(good.parse().expect("ip")), "{good}");
        }
    }

    #[tokio::test]
    async fn every_hop_is_checked_before_connecting() {
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        // A redirect target is checked the same way as the first URL (see `send`).
        for bad in ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:8080/", "http://[::1]/", "http://10.0.0.1/"] {
            let refused = checked_address(&url(bad), false).await.expect_err(bad);
            assert!(refused.contains("refused"), "{refused}");
        }
        assert!(checked_address(&url("ftp://1.1.1.1/"), true).await.is_err(), "only http and https");
        assert_eq!(checked_address(&url("http://127.0.0.1:8080/"), true).await.expect("allowed"), "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(checked_address(&url("https://1.1.1.1/"), false).await.expect("public").port(), 443);
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(event_id().len(), "evt_".len() + 24);
    }

    #[test]
    fn event_patterns_match_collection_and_action() {
        assert!(matches("posts.create", "posts", "create"));
        assert!(matches("posts.*", "posts", "delete"));
        assert!(matches("*.update", "users", "update"));
        assert!(matches("*", "x", "create"));
        assert!(!matches("posts.create", "posts", "update"));
        assert!(!matches("posts", "posts", "create"));
        assert!(may_match_action("posts.*", "create") && may_match_action("*", "delete") && may_match_action("x.update", "update"));
        assert!(!may_match_action("posts.create", "update"));
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Known answer computed independently: HMAC-SHA256("secret", "1700000000.{}").
        let s = signature("secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature("secret", 1_700_000_001, b"{}"), "the timestamp is signed");
    }
}
