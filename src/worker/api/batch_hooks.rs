//! `POST /api/batch` when record request hooks fire for its items (PocketBase runs each item
//! through the same request handler, so `onRecordCreateRequest`, `…UpdateRequest` and
//! `…DeleteRequest` fire per item). `batch.rs` parses, stages and admits the items as for any
//! batch; this module hands them to one JS thread ([`hooks::record_requests::batch`]), where
//! one transaction runs each item's chain in order with the item's write — the same write a
//! batch without hooks makes, with the record as the hooks left it — as its default action.
//!
//! It owns only that hand-off and the item write it passes in; it must not decide which hooks
//! fire (the registry does) nor run JS itself.

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::batch::{failed_item, store_uploads, Action, FileCleanup, Kind, Prepared};
use super::records::crud_error;
use crate::worker::actor::Actor;
use crate::worker::app::data::save_body;
use crate::worker::files;
use crate::worker::hooks::app::collection_json;
use crate::worker::hooks::record_requests::{self, BatchItemCall, ItemWriter};
use crate::worker::hooks::routes::RouteRequest;
use crate::worker::http::body::{json_bytes, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::records::cache::Snapshot;
use crate::worker::records::changes::Changes;
use crate::worker::records::crud::{self, CrudError, Requester, Shape};
use crate::worker::records::schema::FieldKind;
use crate::worker::records::values::to_string_list;
use crate::worker::records::write::{self, Uploaded};
use crate::worker::state::AppState;

/// The record request hooks a batch item can fire.
const ITEM_HOOKS: [&str; 3] = ["onRecordCreateRequest", "onRecordUpdateRequest", "onRecordDeleteRequest"];

/// The outer request's head when some record request hook is registered (None otherwise:
/// the batch runs without JS).
pub async fn head(state: &AppState, req: &Request<Incoming>, actor: &Actor) -> Option<RouteRequest> {
    let loaded = state.hooks.current();
    if loaded.registry.is_empty() || !ITEM_HOOKS.iter().any(|h| loaded.registry.has_any(h)) {
        return None;
    }
    Some(super::record_hooks::request_head(state, req, actor).await)
}

/// Whether a request hook fires for one of `actions`.
pub(super) fn fires(state: &AppState, snap: &Snapshot, actions: &[Action]) -> bool {
    let loaded = state.hooks.current();
    actions.iter().any(|a| {
        let Some(c) = snap.get(&a.collection) else { return false };
        let names: &[&str] = match a.kind {
            Kind::Create => &ITEM_HOOKS[..1],
            Kind::Update => &ITEM_HOOKS[1..2],
            Kind::Delete => &ITEM_HOOKS[2..],
            Kind::Upsert => &ITEM_HOOKS[..2],
        };
        names.iter().any(|h| loaded.registry.has(h, &c.id, &c.name))
    })
}

/// What one item's write needs besides the record.
struct ItemContext {
    collection: String,
    requester: Requester,
    shape: Shape,
    names: Vec<String>,
    preset_id: Option<String>,
}

/// The status, message and data of an item's failed write, as a single request answers.
fn parts(e: CrudError, failed: &str) -> (u16, String, Map<String, Value>) {
    let (status, envelope) = crud_error(e, failed).envelope(0);
    let message = envelope.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
    let data = envelope.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    (status.as_u16(), message, data)
}

/// Runs the batch on a JS thread; answers as `batch.rs` does.
pub(super) async fn run(state: &AppState, snap: Arc<Snapshot>, prepared: Prepared, head: RouteRequest, request_id: u64) -> Result<Response<ResBody>, ApiError> {
    let Prepared { actions, requesters, hashes, access } = prepared;
    // An item whose upload broke its field's limits fails the batch before anything runs.
    let doomed = actions.iter().position(|a| a.file_error.is_some());
    if let Some(i) = doomed {
        let failed = if actions.get(i).is_some_and(|a| a.kind == Kind::Update) { "Failed to update record." } else { "Failed to create record." };
        let e = actions.into_iter().nth(i).and_then(|a| a.file_error).unwrap_or(CrudError::NotFound);
        return Err(failed_item(i, crud_error(e, failed), request_id));
    }
    let mut stored: Vec<String> = Vec::new();
    let storage = if actions.iter().any(|a| !a.uploads.is_empty()) {
        Some(store_uploads(state, &snap, &actions, &mut stored).await.map_err(ApiError::internal)?)
    } else {
        None
    };
    let mut calls = Vec::with_capacity(actions.len());
    let mut contexts = Vec::with_capacity(actions.len());
    for (i, (a, requester)) in actions.into_iter().zip(requesters).enumerate() {
        let Some(c) = snap.get(&a.collection) else {
            if let Some(storage) = &storage {
                files::record::discard(storage, &stored).await;
            }
            return Err(failed_item(i, ApiError::new(StatusCode::NOT_FOUND, "Missing collection context."), request_id));
        };
        let (kind, path) = match a.kind {
            Kind::Create => ("create", format!("/api/collections/{}/records", a.collection)),
            Kind::Upsert => ("upsert", format!("/api/collections/{}/records", a.collection)),
            Kind::Update => ("update", format!("/api/collections/{}/records/{}", a.collection, a.id.clone().unwrap_or_default())),
            Kind::Delete => ("delete", format!("/api/collections/{}/records/{}", a.collection, a.id.clone().unwrap_or_default())),
        };
        let method = match a.kind {
            Kind::Create => "POST",
            Kind::Upsert => "PUT",
            Kind::Update => "PATCH",
            Kind::Delete => "DELETE",
        };
        let id = match a.kind {
            Kind::Upsert => a.body.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            _ => a.id.clone().unwrap_or_default(),
        };
        let body_text = Value::Object(a.body.clone()).to_string();
        let mut headers = head.headers.clone();
        for (k, v) in &a.headers {
            headers.push((k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()));
        }
        let request = RouteRequest {
            method: method.into(),
            path,
            raw_query: String::new(),
            query: Vec::new(),
            headers,
            body_length: body_text.len(),
            body: body_text,
            ..head.clone()
        };
        let mut body = a.body.clone();
        if let (Some(preset), Kind::Create | Kind::Upsert) = (&a.preset_id, a.kind) {
            body.entry("id").or_insert_with(|| Value::String(preset.clone()));
        }
        calls.push(BatchItemCall { kind, collection: collection_json(c), id, request, body });
        contexts.push(ItemContext { collection: c.id.clone(), requester, shape: a.shape, names: files::record::upload_names(&a.uploads), preset_id: a.preset_id });
    }
    let cleanup = Arc::new(Mutex::new(FileCleanup::default()));
    let writer = item_writer(Arc::new(contexts), Arc::new(hashes), access, cleanup.clone());
    let loaded = state.hooks.current();
    match record_requests::batch(&loaded, calls, writer).await {
        Ok(items) => {
            let cleanup = std::mem::take(&mut *cleanup.lock().unwrap_or_else(|p| p.into_inner()));
            cleanup.run(state, &snap).await;
            Ok(json_bytes(StatusCode::OK, serde_json::to_vec(&items).map_err(ApiError::internal)?))
        }
        Err((i, answer)) => {
            if let Some(storage) = &storage {
                files::record::discard(storage, &stored).await;
            }
            let envelope: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|_| json!({}));
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
            let message = envelope.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
            let data = envelope.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
            Err(failed_item(i, ApiError::Public { status, message, data, retry_after_secs: None }, request_id))
        }
    }
}

/// The write of item `i` as a batch without hooks makes it (rules under the outer request's
/// auth, validation, stored uploads), with the fields its hooks left; files it drops are noted
/// in `cleanup`, deleted after the commit.
fn item_writer(contexts: Arc<Vec<ItemContext>>, hashes: Arc<write::Passwords>, access: crate::worker::records::values::Access, cleanup: Arc<Mutex<FileCleanup>>) -> ItemWriter {
    Arc::new(move |tx: &rusqlite::Transaction<'_>, snap: &Snapshot, changes: &mut Changes, i: usize, kind: &str, fields: Map<String, Value>, original: Option<Map<String, Value>>| {
        let Some(item) = contexts.get(i) else { return Err((400, "Unknown batch item.".into(), Map::new())) };
        let Some(c) = snap.get(&item.collection).cloned() else { return Err((404, "Missing collection context.".into(), Map::new())) };
        let mut req = item.requester.clone();
        let id_of = |m: Option<&Map<String, Value>>| m.and_then(|m| m.get("id")).and_then(Value::as_str).unwrap_or_default().to_owned();
        if kind == "delete" {
            let id = id_of(original.as_ref().or(Some(&fields)));
            let deleted = crud::delete(tx, snap, &c, &req, &id, changes).map_err(|e| parts(e, "Failed to delete record."))?;
            cleanup.lock().unwrap_or_else(|p| p.into_inner()).records.extend(deleted);
            return Ok(Vec::new());
        }
        let update = kind == "update";
        let mut body = save_body(&c, &fields, if update { original.as_ref() } else { None });
        if let Some(Value::String(pc)) = fields.get("passwordConfirm") {
            body.insert("passwordConfirm".into(), Value::String(pc.clone()));
        }
        let uploaded = Uploaded { names: &item.names, id: item.preset_id.as_deref() };
        let has_files = c.fields.iter().any(|f| matches!(f.kind, FieldKind::File(_)));
        let (bytes, id, before) = if update {
            let id = id_of(original.as_ref());
            let before = if has_files { crud::existing(tx, &c, &id).map_err(|e| parts(e, "Failed to update record."))? } else { None };
            let bytes = write::update(tx, snap, &c, &mut req, &id, body, access, &hashes, &item.shape, changes, uploaded).map_err(|e| parts(e, "Failed to update record."))?;
            (bytes, id, before)
        } else {
            let bytes = write::create(tx, snap, &c, &mut req, body, access, &hashes, &item.shape, changes, uploaded).map_err(|e| parts(e, "Failed to create record."))?;
            let id = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned)).unwrap_or_default();
            (bytes, id, None)
        };
        if has_files && (before.is_some() || !item.names.is_empty()) {
            let after = crud::existing(tx, &c, &id).map_err(|e| parts(e, "Failed to update record."))?.unwrap_or_default();
            let mut dropped = match &before {
                Some(before) => files::record::removed(&c, before, &after),
                None => Vec::new(),
            };
            let held: Vec<String> = c.fields.iter().filter(|f| matches!(f.kind, FieldKind::File(_))).filter_map(|f| after.get(&f.name)).flat_map(to_string_list).collect();
            dropped.extend(item.names.iter().filter(|n| !held.contains(n)).cloned());
            if !dropped.is_empty() {
                cleanup.lock().unwrap_or_else(|p| p.into_inner()).names.push((c.id.clone(), id.clone(), dropped));
            }
        }
        Ok(bytes)
    })
}
