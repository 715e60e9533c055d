//! `/api/collections…`: superuser-only management of collection definitions, in
//! PocketBase's shapes and messages. Each handler: parse → require a superuser → call the
//! store in one write transaction → tell the other workers (bus `Invalidate`) → respond.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::shared::bus::BusMsg;
use crate::worker::http::body::{json, json_bytes, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{json_object, list_envelope, ListParams, Query};
use crate::worker::records::cache::INVALIDATE_COLLECTIONS;
use crate::worker::records::query::CLIENT_ERROR_MESSAGE;
use crate::worker::records::schema::{Collection, CollectionType, Invalid, SchemaErrors};
use crate::worker::records::store::{self, StoreError};
use crate::worker::state::AppState;

const BAD_FORMAT: &str = "Failed to load the collection type data due to invalid formatting.";

/// Runs `f` in one write transaction; a store error rolls it back and is returned as is.
async fn in_write_tx<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    state.db.write(f).await
}

fn store_error(e: StoreError, message: &str) -> ApiError {
    match e {
        StoreError::Invalid(errors) => ApiError::validation(message, errors.to_data()),
        StoreError::Refused(m) => ApiError::validation(m, Map::new()),
        StoreError::BadFilter(_) => ApiError::bad_request(CLIENT_ERROR_MESSAGE),
        other => ApiError::internal(other),
    }
}

fn changed(state: &AppState) {
    state.schema.invalidate();
    state.bus.send(&BusMsg::Invalidate { origin: state.worker_id, what: INVALIDATE_COLLECTIONS.to_owned() });
}

/// The scaffold for `kind`/`name` with `body` merged over it; system fields missing from a
/// sent `fields` array are put back in front, as PocketBase's scaffold merge does.
/// Write-only secrets are not in `base`'s JSON, so a PATCH that does not resend them would
/// blank them: [`Collection::keep_secrets_from`] keeps the stored ones.
fn merged(base: &Collection, body: Map<String, Value>) -> Result<Collection, StoreError> {
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

fn parse_kind(body: &Map<String, Value>) -> Result<CollectionType, ApiError> {
    match body.get("type") {
        None | Some(Value::Null) => Ok(CollectionType::Base),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            let mut data = Map::new();
            data.insert("type".into(), serde_json::json!({"code": "validation_in_invalid", "message": "Must be a valid value."}));
            ApiError::validation("Failed to create collection.", data)
        }),
    }
}

/// `GET /api/collections`
pub async fn list(state: &AppState, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let params = ListParams::from_query(&Query::parse(req.uri().query()))?;
    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    let mut items: Vec<&Collection> = snap.all().iter().map(|c| c.as_ref()).collect();
    if !params.filter.trim().is_empty() {
        let filter = params.filter.clone();
        let ids = state.db.read(move |conn| store::filter_ids(conn, &filter)).await.map_err(|e| match e {
            StoreError::BadFilter(reason) => {
                tracing::debug!(%reason, "collections filter refused");
                ApiError::bad_request(CLIENT_ERROR_MESSAGE)
            }
            other => ApiError::internal(other),
        })?;
        items.retain(|c| ids.contains(&c.id));
    }
    sort_collections(&mut items, &params.sort)?;
    let total = items.len() as u64;
    let page: Vec<&Collection> = items.into_iter().skip(params.offset() as usize).take(params.per_page as usize).collect();
    let body = serde_json::to_vec(&page).map_err(ApiError::internal)?;
    Ok(json_bytes(StatusCode::OK, list_envelope(&params, (!params.skip_total).then_some(total), &body)))
}

fn sort_collections(items: &mut [&Collection], sort: &str) -> Result<(), ApiError> {
    let mut keys: Vec<(&str, bool)> = Vec::new();
    for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (desc, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        if !["id", "created", "updated", "name", "system", "type"].contains(&name) {
            return Err(ApiError::bad_request(CLIENT_ERROR_MESSAGE));
        }
        keys.push((name, desc));
    }
    items.sort_by(|a, b| {
        for (key, desc) in &keys {
            let ord = match *key {
                "id" => a.id.cmp(&b.id),
                "created" => a.created.cmp(&b.created),
                "updated" => a.updated.cmp(&b.updated),
                "name" => a.name.cmp(&b.name),
                "system" => a.system.cmp(&b.system),
                _ => a.kind.as_str().cmp(b.kind.as_str()),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

/// `GET /api/collections/{idOrName}`
pub async fn view(state: &AppState, id_or_name: &str) -> Result<Response<ResBody>, ApiError> {
    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    let c = snap.get(id_or_name).ok_or_else(ApiError::not_found)?;
    Ok(json(StatusCode::OK, c.as_ref()))
}

/// `POST /api/collections`
pub async fn create(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, BAD_FORMAT).await?;
    let kind = parse_kind(&body)?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let chosen_id = body.get("id").and_then(Value::as_str).is_some_and(|id| !id.is_empty());
    let mut c = merged(&Collection::scaffold(kind, &name), body).map_err(|e| store_error(e, "Failed to create collection."))?;
    if !chosen_id {
        // Left empty, the store derives the default id and steps past one already taken.
        c.id.clear();
    }
    match in_write_tx(state, move |tx| store::create(tx, c)).await {
        Ok(created) => {
            changed(state);
            Ok(json(StatusCode::OK, &created))
        }
        Err(e) => Err(store_error(e, "Failed to create collection.")),
    }
}

/// `PATCH /api/collections/{idOrName}`
pub async fn update(state: &AppState, id_or_name: &str, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, BAD_FORMAT).await?;
    let key = id_or_name.to_owned();
    let outcome = in_write_tx(state, move |tx| {
        let Some(old) = store::find(tx, &key)? else { return Ok(None) };
        let new = merged(&old, body)?;
        store::update(tx, &old, new).map(Some)
    })
    .await;
    match outcome {
        Ok(None) => Err(ApiError::not_found()),
        Ok(Some(updated)) => {
            changed(state);
            Ok(json(StatusCode::OK, &updated))
        }
        Err(e) => Err(store_error(e, "Failed to update collection.")),
    }
}

/// `DELETE /api/collections/{idOrName}`
pub async fn delete(state: &AppState, id_or_name: &str) -> Result<Response<ResBody>, ApiError> {
    let key = id_or_name.to_owned();
    let outcome = in_write_tx(state, move |tx| {
        let Some(c) = store::find(tx, &key)? else { return Ok(None) };
        store::delete(tx, &c).map(|_| Some(c.id.clone()))
    })
    .await;
    match outcome {
        Ok(None) => Err(ApiError::not_found()),
        Ok(Some(collection_id)) => {
            changed(state);
            crate::worker::files::delete_collection_files(state.storage_source(), &collection_id).await;
            Ok(no_content())
        }
        Err(StoreError::SystemCollection) => Err(ApiError::bad_request("Failed to delete collection.")),
        Err(e) => Err(store_error(e, "Failed to delete collection.")),
    }
}

/// `DELETE /api/collections/{idOrName}/truncate`
pub async fn truncate(state: &AppState, id_or_name: &str) -> Result<Response<ResBody>, ApiError> {
    let key = id_or_name.to_owned();
    let outcome = in_write_tx(state, move |tx| {
        let Some(c) = store::find(tx, &key)? else { return Ok(None) };
        store::truncate(tx, &c).map(|_| Some(c.id.clone()))
    })
    .await;
    match outcome {
        Ok(None) => Err(ApiError::not_found()),
        Ok(Some(collection_id)) => {
            crate::worker::files::delete_collection_files(state.storage_source(), &collection_id).await;
            Ok(no_content())
        }
        Err(e) => Err(store_error(e, "Failed to truncate collection.")),
    }
}

/// `GET /api/collections/meta/scaffolds`
pub fn scaffolds() -> Response<ResBody> {
    let mut out = Map::new();
    for kind in [CollectionType::Base, CollectionType::Auth, CollectionType::View] {
        let mut c = Collection::scaffold(kind, "");
        c.id.clear();
        out.insert(kind.as_str().to_owned(), serde_json::to_value(&c).unwrap_or(Value::Null));
    }
    json(StatusCode::OK, &Value::Object(out))
}

fn no_content() -> Response<ResBody> {
    let mut res = json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new());
    res.headers_mut().remove(hyper::header::CONTENT_TYPE);
    res
}

/// `PUT /api/collections/import`: `{collections: [...], deleteMissing: bool}`, 204.
pub async fn import(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, BAD_FORMAT).await?;
    let delete_missing = body.get("deleteMissing").and_then(Value::as_bool).unwrap_or(false);
    let list = match body.get("collections") {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        _ => {
            let mut data = Map::new();
            data.insert("collections".into(), serde_json::json!({"code": "validation_required", "message": "Cannot be blank."}));
            return Err(ApiError::validation("Failed to import collections.", data));
        }
    };
    let mut incoming = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        match serde_json::from_value::<Collection>(item) {
            Ok(c) => incoming.push(c),
            Err(e) => {
                let mut data = Map::new();
                data.insert("collections".into(), serde_json::json!({ i.to_string(): {"code": "validation_invalid_value", "message": format!("Invalid collection: {e}.")} }));
                return Err(ApiError::validation("Failed to import collections.", data));
            }
        }
    }
    match in_write_tx(state, move |tx| store::import(tx, incoming, delete_missing)).await {
        Ok(()) => {
            changed(state);
            Ok(no_content())
        }
        Err(e) => Err(store_error(e, "Failed to import collections.")),
    }
}
