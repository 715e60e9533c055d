//! The dispatcher: one task per worker that turns committed changes into frames in clients'
//! outboxes, in the cluster-wide commit order ([`super::order`] restores it from the
//! sequence numbers the writes stamped).
//!
//! Per batch of changes it finds every (client, subscription) a change matches and groups
//! them into variants — equal (auth identity, rule kind, options) see the same thing — then
//! one reader-thread job checks each variant's rule and filter against the record as
//! captured and renders its payload once; the per-client work is only framing. Auth identity
//! collapses to "any non-superuser" when neither the rule nor the options can tell users
//! apart (no `@request.auth` in the rule, no expand, no filter through a relation — it meets
//! the target's list rule — and not an auth collection), so a thousand
//! guests or users on a public collection cost one rule check and one render per change.
//!
//! It also keeps clients' auth current: an update of a client's auth record refreshes it,
//! a changed tokenKey or a delete makes the client a guest. It must not write to sockets or
//! wait on a client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;

use super::client::{Client, Transport};
use super::topic::SubOptions;
use crate::worker::actor::{Actor, AuthRecord};
use crate::worker::records::cache::Snapshot;
use crate::worker::versioned::STALE_VERSION;
use super::order::Reorder;
use crate::worker::records::changes::{self, Action, Change, Stamped};
use crate::worker::records::crud::{self, CrudError, Requester, RuleKind};
use crate::worker::records::query::RequestContext;
use crate::worker::records::schema::{Collection, CollectionType};
use crate::worker::records::{filter, rows};
use super::Host;

/// Most changes the dispatcher takes into one round (one reader job).
pub const MAX_BATCH_CHANGES: usize = 512;

/// Runs until the change channel closes.
pub async fn run(state: impl Host, mut rx: mpsc::UnboundedReceiver<Arc<Stamped>>) {
    // Everything committed before now was committed before any client here could subscribe.
    let mut order = match state.db().read(|conn| changes::current_sequence(conn).map_err(CrudError::from)).await {
        Ok(last) => Reorder::starting_after(last),
        Err(e) => {
            tracing::warn!(error = %e, "reading the realtime sequence failed; starting from the first change heard");
            Reorder::default()
        }
    };
    let mut skipped = 0;
    loop {
        let deadline = order.deadline();
        let mut ready = tokio::select! {
            msg = rx.recv() => match msg {
                Some(set) => order.push(set, std::time::Instant::now()),
                None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                let now = std::time::Instant::now();
                match order.gap() {
                    // A set in the gap is arriving in parts: worth waiting for.
                    Some(gap) if state.realtime().arriving(gap.clone()) => {
                        order.postpone(now);
                        Vec::new()
                    }
                    _ => order.expire(now),
                }
            }
        };
        // Whatever else is already queued joins this round (one reader job for all of it).
        while ready.iter().map(|s| s.changes.len()).sum::<usize>() < MAX_BATCH_CHANGES {
            match rx.try_recv() {
                Ok(set) => ready.extend(order.push(set, std::time::Instant::now())),
                Err(_) => break,
            }
        }
        if order.skipped > skipped {
            tracing::warn!(worker_id = state.worker_id(), skipped_total = order.skipped, "realtime changes never arrived; their events are lost");
            skipped = order.skipped;
        }
        if ready.is_empty() || state.realtime().registry.is_empty() {
            continue;
        }
        let changes: Vec<Change> = ready.iter().flat_map(|s| s.changes.iter().cloned()).collect();
        if let Err(e) = deliver(&state, changes).await {
            tracing::warn!(worker_id = state.worker_id(), error = %e, "realtime delivery round failed; its events are lost");
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// Who sees one variant: a requester standing for every subscriber in it.
struct Variant {
    actor: Actor,
    kind: RuleKind,
    options: Arc<SubOptions>,
    /// (client, subscription string) pairs that receive this variant's payload.
    targets: Vec<(Arc<Client>, String)>,
}

#[derive(Hash, PartialEq, Eq)]
struct VariantKey {
    auth: String,
    kind: RuleKind,
    options: String,
}

/// One change and its variants.
struct Planned {
    change: Change,
    variants: Vec<Variant>,
}

/// What an auth-record change does to the clients holding that record.
enum AuthFix {
    /// Reload the record (an update that kept its tokenKey).
    Reload { collection: Arc<Collection>, id: String },
    /// Deleted, or its tokenKey changed: the clients become guests.
    Revoke { collection_id: String, id: String },
}

/// Delivers `changes` in commit order. A change to an auth record (update or delete) may
/// revoke or alter the auth of the clients bound to it, and every change committed after it
/// must be judged with that auth: so a round ends at each such change and its fixes are
/// applied before the next round is judged. (Auth records change rarely; other writes still
/// share one round.)
async fn deliver(state: &impl Host, changes: Vec<Change>) -> Result<(), CrudError> {
    let snap = state.schema().snapshot();
    let mut round = Vec::with_capacity(changes.len());
    for change in changes {
        let touches_auth = change.action != Action::Create && snap.get(&change.collection_id).is_some_and(|c| c.kind == CollectionType::Auth);
        round.push(change);
        if touches_auth {
            deliver_round(state, std::mem::take(&mut round)).await?;
        }
    }
    if !round.is_empty() {
        deliver_round(state, round).await?;
    }
    Ok(())
}

async fn deliver_round(state: &impl Host, changes: Vec<Change>) -> Result<(), CrudError> {
    let clients = state.realtime().registry.all();
    // The held snapshot saves a database hop per round; the render job checks its version in
    // its own read transaction, and a stale plan is made again with a fresh snapshot (the
    // grouping reads the rules too). A collection the held one does not know yet (created
    // since) makes the round start fresh.
    let mut snap = state.schema().snapshot();
    if snap.version == STALE_VERSION || changes.iter().any(|ch| snap.get(&ch.collection_id).is_none()) {
        snap = fresh(state).await?;
    }
    for attempt in 0..2 {
        let (planned, fixes) = plan_round(&snap, &clients, &changes);
        if planned.is_empty() {
            apply_auth_fixes(state, &clients, fixes).await;
            return Ok(());
        }
        let (job_snap, job_planned) = (snap.clone(), planned_inputs(&planned));
        match state.db().read(move |conn| crud::read_snapshot(conn, |conn| render(conn, &job_snap, &job_planned))).await {
            Err(CrudError::Stale(_)) if attempt == 0 => {
                state.schema().invalidate();
                snap = fresh(state).await?;
            }
            Err(e) => return Err(e),
            Ok(rendered) => {
                // With an `onRealtimeMessageSend` hook, the round's messages go through it
                // first, in order, in one dispatch (awaited: later rounds stay behind).
                let filter = state.realtime().active_filter();
                let mut held = Vec::new();
                for (p, payloads) in planned.iter().zip(rendered) {
                    for (v, payload) in p.variants.iter().zip(payloads) {
                        if let Some(record) = payload {
                            let hold = filter.as_ref().map(|_| &mut held);
                            send(state.realtime(), v, p.change.action, &snap, &p.change.collection_id, &record, hold);
                        }
                    }
                }
                if let Some(f) = filter {
                    for out in f.run(held).await {
                        super::custom::queue(state.realtime(), out);
                    }
                }
                apply_auth_fixes(state, &clients, fixes).await;
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn fresh(state: &impl Host) -> Result<Arc<Snapshot>, CrudError> {
    state.schema().fresh(state.db()).await.map_err(|e| CrudError::BadQuery(e.to_string()))
}

/// Every change's variants under `snap`, and the auth fixes the round owes its clients.
fn plan_round(snap: &Snapshot, clients: &[Arc<Client>], changes: &[Change]) -> (Vec<Planned>, Vec<AuthFix>) {
    let mut planned = Vec::with_capacity(changes.len());
    let mut fixes = Vec::new();
    for change in changes {
        let Some(c) = snap.get(&change.collection_id).cloned() else { continue };
        if c.kind == CollectionType::Auth && change.action != Action::Create {
            fixes.push(auth_fix(&c, change));
        }
        let variants = plan(clients, &c, change);
        if !variants.is_empty() {
            planned.push(Planned { change: change.clone(), variants });
        }
    }
    (planned, fixes)
}

/// Groups the subscriptions `change` matches into variants.
fn plan(clients: &[Arc<Client>], c: &Collection, change: &Change) -> Vec<Variant> {
    let mut variants: Vec<Variant> = Vec::new();
    let mut index: HashMap<VariantKey, usize> = HashMap::new();
    for client in clients {
        let st = client.state();
        for sub in &st.subs {
            if !sub.matches(&c.name, &c.id, &change.record_id) {
                continue;
            }
            let kind = sub.rule_kind();
            let key = VariantKey { auth: auth_key(&st.actor, c, kind, &sub.options), kind, options: sub.options_key.clone() };
            let i = *index.entry(key).or_insert_with(|| {
                variants.push(Variant { actor: st.actor.clone(), kind, options: sub.options.clone(), targets: Vec::new() });
                variants.len() - 1
            });
            if let Some(v) = variants.get_mut(i) {
                v.targets.push((client.clone(), sub.raw.clone()));
            }
        }
    }
    variants
}

/// The part of a subscriber's identity that can change what it sees of a change in `c`.
fn auth_key(actor: &Actor, c: &Collection, kind: RuleKind, options: &SubOptions) -> String {
    let identity = || match actor.auth() {
        Some(a) => format!("{}/{}", a.collection.id, a.id()),
        None => "guest".to_owned(),
    };
    if actor.is_superuser() {
        return format!("superuser:{}", identity());
    }
    let rule = if kind == RuleKind::List { &c.list_rule } else { &c.view_rule };
    let rule_reads_auth = rule.as_deref().is_some_and(|r| r.contains("@request.auth"));
    let expands = options.shape.as_ref().is_some_and(|s| !s.expand.is_empty());
    // A client filter that walks a relation is ANDed with the target's list rule for this
    // subscriber (and an auth target's emails show only to their owner), so it may answer
    // differently per identity even when the collection's own rule cannot.
    if rule_reads_auth || expands || c.kind == CollectionType::Auth || walks_relations(&options.filter) {
        identity()
    } else {
        "any".to_owned()
    }
}

/// Whether a filter's text may follow a relation: a `.` that continues an identifier
/// (`author.name`, not `1.5`) or a back-relation (`x_via_y`) outside quoted strings. Errs on
/// the side of yes — a false yes only costs a separate render.
fn walks_relations(filter: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut chars = filter.chars().peekable();
    let mut word = String::new();
    while let Some(ch) = chars.next() {
        match quote {
            Some(q) => {
                if ch == '\\' {
                    chars.next();
                } else if ch == q {
                    quote = None;
                }
            }
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '.' => {
                let next_is_name = chars.peek().is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '@');
                if next_is_name && !prev.is_ascii_digit() {
                    return true;
                }
            }
            None => {}
        }
        if quote.is_none() && (ch.is_alphanumeric() || ch == '_') {
            word.push(ch);
            if word.contains("_via_") {
                return true;
            }
        } else {
            word.clear();
        }
        prev = ch;
    }
    false
}

/// What the reader job needs of one variant (owned, to cross to the database thread).
struct VariantInput {
    actor: Actor,
    kind: RuleKind,
    options: Arc<SubOptions>,
}

struct PlannedInput {
    change: Change,
    variants: Vec<VariantInput>,
}

fn planned_inputs(planned: &[Planned]) -> Vec<PlannedInput> {
    planned
        .iter()
        .map(|p| PlannedInput {
            change: p.change.clone(),
            variants: p.variants.iter().map(|v| VariantInput { actor: v.actor.clone(), kind: v.kind, options: v.options.clone() }).collect(),
        })
        .collect()
}

/// On a reader thread: each variant's record JSON, or `None` where it may not see it.
fn render(conn: &rusqlite::Connection, snap: &Snapshot, planned: &[PlannedInput]) -> Result<Vec<Vec<Option<Vec<u8>>>>, CrudError> {
    snap.check(conn)?;
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(planned.len());
    for p in planned {
        let Some(c) = snap.get(&p.change.collection_id) else {
            out.push(vec![None; p.variants.len()]);
            continue;
        };
        let mut row = Vec::with_capacity(p.variants.len());
        for v in &p.variants {
            row.push(render_one(conn, snap, c, &p.change, v, now).unwrap_or_else(|e| {
                if e.is_expand_too_large() {
                    // The subscriber's own `expand` is past the bounds a response has: the event
                    // is skipped for it, as an HTTP request would get a 400.
                    tracing::warn!(collection = %c.name, error = %e, "realtime event not delivered to a subscriber: its expand is too large");
                } else {
                    tracing::debug!(error = %e, "realtime rule or filter failed for a subscriber; not delivered");
                }
                None
            }));
        }
        out.push(row);
    }
    Ok(out)
}

fn render_one(
    conn: &rusqlite::Connection,
    snap: &Snapshot,
    c: &Collection,
    change: &Change,
    v: &VariantInput,
    now: SystemTime,
) -> Result<Option<Vec<u8>>, CrudError> {
    let Some(shape) = v.options.shape.as_ref() else { return Ok(None) };
    let req = requester(&v.actor, &v.options, now);
    let filter_expr = if v.options.filter.trim().is_empty() {
        None
    } else {
        // PocketBase refuses these in a non-superuser's filter; for a subscription that
        // means it never matches.
        if !req.superuser && (v.options.filter.contains("@collection.") || v.options.filter.contains("@request.")) {
            return Ok(None);
        }
        Some(filter::parse(&v.options.filter).map_err(|e| CrudError::BadQuery(e.to_string()))?)
    };
    crud::view_change(conn, snap, c, &req, &change.columns, change.action == Action::Delete, v.kind, filter_expr.as_ref(), shape)
}

/// A subscriber as a requester: its auth, its options as `@request.query/headers`, method
/// GET and context `realtime`, as PocketBase builds it.
fn requester(actor: &Actor, options: &SubOptions, now: SystemTime) -> Requester {
    let mut ctx = RequestContext::new(now);
    ctx.auth = actor.auth().map(|a| a.rule_context());
    ctx.query = options.query.clone();
    ctx.headers = options.headers.clone();
    ctx.method = "GET".to_owned();
    ctx.context = "realtime".to_owned();
    Requester { ctx, superuser: actor.is_superuser() }
}

/// Frames one variant's payload for each of its targets: queued at once, or held in `hold`
/// for the message filter.
fn send(rt: &super::Realtime, v: &Variant, action: Action, snap: &Snapshot, collection_id: &str, record: &[u8], mut hold: Option<&mut Vec<super::custom::Outgoing>>) {
    let mut sse = BytesMut::with_capacity(record.len() + 32);
    sse.put_slice(b"{\"action\":\"");
    sse.put_slice(action.as_str().as_bytes());
    sse.put_slice(b"\",\"record\":");
    sse.put_slice(record);
    sse.put_u8(b'}');
    let sse = sse.freeze();
    let name = snap.get(collection_id).map(|c| c.name.clone()).unwrap_or_default();
    for (client, topic) in &v.targets {
        if let Some(held) = hold.as_mut() {
            let ws = (client.transport == Transport::Ws).then(|| ws_message(action, &name, topic, record));
            held.push(super::custom::Outgoing { client: client.clone(), name: topic.to_string(), data: sse.clone(), ws });
            continue;
        }
        let alive = match client.transport {
            Transport::Sse => client.push_sse(topic, &sse),
            Transport::Ws => client.push_ws(ws_message(action, &name, topic, record)),
        };
        if !alive {
            rt.cut_off(client);
        }
    }
}

/// `{"type":…,"action":…,"collection":…,"topic":…,"record":…}`: the TS original's event
/// shape, plus the subscription it answers.
fn ws_message(action: Action, collection: &str, topic: &str, record: &[u8]) -> Bytes {
    let mut m = BytesMut::with_capacity(record.len() + topic.len() + collection.len() + 64);
    m.put_slice(b"{\"type\":\"");
    m.put_slice(action.as_str().as_bytes());
    m.put_slice(b"\",\"action\":\"");
    m.put_slice(action.as_str().as_bytes());
    m.put_slice(b"\",\"collection\":");
    m.put_slice(serde_json::to_string(collection).unwrap_or_default().as_bytes());
    m.put_slice(b",\"topic\":");
    m.put_slice(serde_json::to_string(topic).unwrap_or_default().as_bytes());
    m.put_slice(b",\"record\":");
    m.put_slice(record);
    m.put_u8(b'}');
    m.freeze()
}

fn auth_fix(c: &Arc<Collection>, change: &Change) -> AuthFix {
    let revoke = AuthFix::Revoke { collection_id: c.id.clone(), id: change.record_id.clone() };
    match change.action {
        Action::Delete => revoke,
        _ => AuthFix::Reload { collection: c.clone(), id: change.record_id.clone() },
    }
}

/// Applies auth-record changes to the clients bound to those records.
async fn apply_auth_fixes(state: &impl Host, clients: &[Arc<Client>], fixes: Vec<AuthFix>) {
    for fix in fixes {
        let (collection_id, id) = match &fix {
            AuthFix::Reload { collection, id } => (collection.id.clone(), id.clone()),
            AuthFix::Revoke { collection_id, id } => (collection_id.clone(), id.clone()),
        };
        let holders: Vec<&Arc<Client>> = clients
            .iter()
            .filter(|c| c.state().actor.auth().is_some_and(|a| a.collection.id == collection_id && a.id() == id))
            .collect();
        if holders.is_empty() {
            continue;
        }
        let fresh = match fix {
            AuthFix::Revoke { .. } => None,
            AuthFix::Reload { collection, id } => {
                let c = collection.clone();
                match state.db().read(move |conn| rows::load(conn, &c, &id).map_err(CrudError::from)).await {
                    Ok(record) => record.map(|r| (collection, r)),
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading a realtime client's auth record failed; it becomes a guest");
                        None
                    }
                }
            }
        };
        for client in holders {
            let mut st = client.state();
            let Actor::Auth(old) = &st.actor else { continue };
            st.actor = match &fresh {
                // A new tokenKey revokes every token issued before it: the client is a guest.
                Some((collection, record)) if record.get("tokenKey").and_then(|v| v.as_str()) == Some(old.token_key()) => {
                    Actor::Auth(Arc::new(AuthRecord { collection: collection.clone(), record: record.clone(), refreshable: old.refreshable, token: old.token.clone() }))
                }
                _ => Actor::Guest,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::records::schema::Collection;

    fn user(id: &str) -> Actor {
        let c = Arc::new(Collection::scaffold(CollectionType::Auth, "users"));
        let mut record = serde_json::Map::new();
        record.insert("id".into(), serde_json::Value::String(id.into()));
        Actor::Auth(Arc::new(AuthRecord { collection: c, record, refreshable: true, token: String::new() }))
    }

    #[test]
    fn subscribers_who_see_the_same_share_one_variant() {
        let mut posts = Collection::scaffold(CollectionType::Base, "posts");
        posts.list_rule = Some("title != ''".into());
        posts.view_rule = Some("owner = @request.auth.id".into());
        let plain = SubOptions { shape: Some(crud::Shape::default()), ..SubOptions::default() };
        // The list rule cannot tell users apart: guests and users share a key.
        let (a, b, g) = (user("a"), user("b"), Actor::Guest);
        let list = |who: &Actor| auth_key(who, &posts, RuleKind::List, &plain);
        assert_eq!(list(&a), list(&b));
        assert_eq!(list(&a), list(&g));
        // The view rule reads @request.auth: each identity is its own variant.
        let view = |who: &Actor| auth_key(who, &posts, RuleKind::View, &plain);
        assert_ne!(view(&a), view(&b));
        assert_ne!(view(&a), view(&g));
        // Expanding checks related rules with the subscriber's auth: identities again.
        let expanding = SubOptions {
            shape: Some(crud::Shape { expand: crate::worker::records::expand::ExpandTree::parse("owner"), ..crud::Shape::default() }),
            ..SubOptions::default()
        };
        assert_ne!(auth_key(&a, &posts, RuleKind::List, &expanding), auth_key(&b, &posts, RuleKind::List, &expanding));
        // Auth collections show the owner her email: identities.
        let users = Collection::scaffold(CollectionType::Auth, "users");
        assert_ne!(auth_key(&a, &users, RuleKind::List, &plain), auth_key(&b, &users, RuleKind::List, &plain));
        // A filter through a relation meets the target's list rule, which may read the auth.
        let through = SubOptions { filter: "author.name != ''".into(), ..plain.clone() };
        assert_ne!(list(&a), auth_key(&a, &posts, RuleKind::List, &through));
        assert_ne!(auth_key(&a, &posts, RuleKind::List, &through), auth_key(&b, &posts, RuleKind::List, &through));
        let local = SubOptions { filter: "title = 'a.b' && n > 1.5".into(), ..plain.clone() };
        assert_eq!(auth_key(&a, &posts, RuleKind::List, &local), auth_key(&b, &posts, RuleKind::List, &local));
    }

    #[test]
    fn relation_walks_are_found_outside_strings_only() {
        for f in ["author.name != ''", "a.b.c = 1", "comments_via_post.id != ''", "x = 'q' && author.id = 'z'"] {
            assert!(walks_relations(f), "{f}");
        }
        for f in ["", "title = 'a.b'", "n > 1.5", "title = \"x_via_y\"", "title ~ 'it\\'s.x'"] {
            assert!(!walks_relations(f), "{f}");
        }
    }
}
